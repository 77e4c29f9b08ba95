// Small POSIX file helpers for code that links LibTorch. PyPI's LibTorch exports its own copy of parts
// of std::filesystem, and mixing it with the system libstdc++'s copy corrupts memory (seen on the GPU
// machine: "free(): invalid pointer"), so nothing that links torch uses std::filesystem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hashhop::io {

bool file_exists(const std::string& path);
void make_directories(const std::string& path);  // mkdir -p; throws naming the path
void rename_file(const std::string& from, const std::string& to);  // throws naming both paths
void remove_file_quietly(const std::string& path);
bool is_directory(const std::string& path);

// The one "too large" check: throws std::invalid_argument "WHAT: N UNIT is more than the limit of
// LIMIT UNIT (REMEDY)" when value > limit. Every bounded request (gen's output, a prompt read into
// memory) goes through it so the errors read alike.
void check_size(const std::string& what, std::uint64_t value, std::uint64_t limit, const std::string& unit,
                const std::string& remedy);

// Reads a whole file into memory, refusing (through check_size) one larger than max_bytes before
// reading it, or, for a device or pipe that has no size (/dev/zero), as soon as more arrives.
std::string read_file_limited(const std::string& path, std::uint64_t max_bytes, const std::string& option);

// Refuses to write OUTPUT when it is the same file as INPUT (also through another name or a link):
// the input would be truncated before it is read. A missing output or "-" (stdout) is fine.
void check_distinct_files(const std::string& output, const std::string& output_option, const std::string& input,
                          const std::string& input_option);

// Checks that PATH is a well-formed zip archive as LibTorch writes them (model.pt, checkpoint.pt) before
// any of it reaches LibTorch's reader: the end-of-central-directory record (zip64 too), every entry's
// central and local headers within the file and agreeing, stored (uncompressed) data, and each entry's
// CRC-32. Throws std::runtime_error "PATH: not a valid archive (...)" or "PATH: checksum mismatch, ...". A
// flipped byte, a truncated or empty file, or random bytes are refused here; LibTorch's zip reader does
// not check the CRCs, and its TorchScript and pickle readers are not meant for damaged input.
// Entries are stored, except archive/code/__torch__.py, which LibTorch deflates: INFLATE (raw deflate of
// IN into exactly OUT_SIZE bytes of OUT; false when the data is damaged) lets those be checked too; this
// library is torch-free, so the caller brings it (train/checkpoint.cpp passes LibTorch's miniz).
// The archive must also be laid out as LibTorch reads it: a first entry inside a folder and, in that folder, a
// version record holding a number from kMinArchiveVersion to kMaxArchiveVersion (LibTorch's own range;
// train/checkpoint.cpp checks at compile time that they agree with the LibTorch it is built against).
inline constexpr std::uint64_t kMinArchiveVersion = 1;
inline constexpr std::uint64_t kMaxArchiveVersion = 10;
using Inflate = bool (*)(const unsigned char* in, std::size_t in_size, unsigned char* out, std::size_t out_size);
void check_zip_archive(const std::string& path, Inflate inflate = nullptr);

// Seals a LibTorch archive held in BYTES before it is written: its end record gets a comment
// "hashhop-crc32:" + 8 hex digits, the CRC-32 of every byte before the comment. check_zip_archive then
// covers the whole file, not only each entry's data. Throws std::invalid_argument if BYTES does not end
// with a comment-less end record (LibTorch's layout).
inline constexpr const char* kSealPrefix = "hashhop-crc32:";
void seal_zip_archive(std::string& bytes);

// Bytes free to this user on the filesystem that holds PATH (its directory when PATH does not exist
// yet); UINT64_MAX when unknown.
std::uint64_t free_bytes_at(const std::string& path);

}  // namespace hashhop::io
