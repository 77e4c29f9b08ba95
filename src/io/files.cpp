// POSIX file helpers (see files.h for why not std::filesystem) and the temporary-file registry with its
// signal cleanup and stale-temporary sweep (see temp_files.h). Tested by tests/io/test_io.cpp.
#include "hashhop/io/files.h"
#include "hashhop/io/temp_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hashhop::io {

bool file_exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

void make_directories(const std::string& path) {
  for (std::size_t slash = path.find('/', 1); ; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST)
      throw std::runtime_error(prefix + ": cannot create directory (" + std::strerror(errno) + ")");
    if (slash == std::string::npos) break;
  }
  struct stat info;
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
    throw std::runtime_error(path + ": not a directory");
}

void rename_file(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    throw std::runtime_error(to + ": cannot move " + from + " into place (" + std::strerror(errno) + ")");
}

void remove_file_quietly(const std::string& path) { ::unlink(path.c_str()); }

bool is_directory(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

void check_size(const std::string& what, std::uint64_t value, std::uint64_t limit, const std::string& unit,
                const std::string& remedy) {
  if (value <= limit) return;
  throw std::invalid_argument(what + ": " + std::to_string(value) + " " + unit + " is more than the limit of " +
                              std::to_string(limit) + " " + unit + (remedy.empty() ? "" : " (" + remedy + ")"));
}

std::string read_file_limited(const std::string& path, std::uint64_t max_bytes, const std::string& option) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::invalid_argument(path + ": cannot read (" + std::strerror(errno) + ")");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw std::invalid_argument(path + ": cannot read (" + std::strerror(errno) + ")");
  if (S_ISDIR(info.st_mode)) throw std::invalid_argument(path + ": is a directory, not a file");
  const std::string what = path + " (" + option + ")";
  std::string text;
  if (S_ISREG(info.st_mode)) {
    check_size(what, static_cast<std::uint64_t>(info.st_size), max_bytes, "bytes", "raise " + option + "-limit");
    text.reserve(static_cast<std::size_t>(info.st_size));
  }
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw std::invalid_argument(path + ": read failed (" + std::strerror(errno) + ")");
    if (got == 0) break;
    // A device or pipe reports no size: stop as soon as it passes the limit instead of filling memory.
    check_size(what, text.size() + static_cast<std::uint64_t>(got), max_bytes, "bytes", "raise " + option + "-limit");
    text.append(buffer, static_cast<std::size_t>(got));
  }
  return text;
}

void check_distinct_files(const std::string& output, const std::string& output_option, const std::string& input,
                          const std::string& input_option) {
  if (output.empty() || output == "-") return;
  struct stat out_info, in_info;
  if (::stat(output.c_str(), &out_info) != 0 || ::stat(input.c_str(), &in_info) != 0) return;
  if (!S_ISREG(out_info.st_mode)) return;  // /dev/null and pipes are written in place, never truncated
  if (out_info.st_dev == in_info.st_dev && out_info.st_ino == in_info.st_ino)
    throw std::invalid_argument(output_option + " " + output + ": is the same file as " + input_option + " " + input +
                                " (it would be overwritten before it is read)");
}

std::uint64_t free_bytes_at(const std::string& path) {
  struct statvfs info {};
  std::string where = path;
  if (::statvfs(where.c_str(), &info) != 0) {
    const std::size_t slash = path.rfind('/');
    where = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    if (::statvfs(where.c_str(), &info) != 0) return UINT64_MAX;
  }
  if (info.f_blocks == 0) return UINT64_MAX;  // pseudo filesystems report no size at all: unknown, not full
  const unsigned __int128 bytes = static_cast<unsigned __int128>(info.f_bavail) * info.f_frsize;
  return bytes > UINT64_MAX ? UINT64_MAX : static_cast<std::uint64_t>(bytes);
}

// --- zip archives (check_zip_archive) ---
namespace {

// CRC-32 (IEEE, as zip uses), slicing by 8 bytes: about 1-2 GB/s, so checking a model costs less than
// LibTorch reading it.
struct Crc32Tables {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  Crc32Tables() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
      for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  }
};

std::uint32_t crc32(const unsigned char* p, std::size_t n) {
  static const Crc32Tables tables;
  const auto& t = tables.t;
  std::uint32_t c = 0xFFFFFFFFu;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
        t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; n > 0; --n, ++p) c = t[0][(c ^ *p) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::uint64_t le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// miniz compares entry names without regard to ASCII case.
std::string ascii_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// The file's bytes, mapped read-only for the check.
struct Mapped {
  const unsigned char* data = nullptr;
  std::uint64_t size = 0;
  ~Mapped() {
    if (data != nullptr) ::munmap(const_cast<unsigned char*>(data), size);
  }
};

}  // namespace

void check_zip_archive(const std::string& path, Inflate inflate) {
  const auto invalid = [&](const std::string& why) { return std::runtime_error(path + ": not a valid archive (" + why + ")"); };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open for reading: " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw invalid("not a regular file");
  }
  Mapped file;
  file.size = static_cast<std::uint64_t>(info.st_size);
  if (file.size < 22) {
    ::close(fd);
    throw invalid(std::to_string(file.size) + " bytes, too short");
  }
  void* mapped = ::mmap(nullptr, file.size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapped == MAP_FAILED) throw std::runtime_error(path + ": cannot map for reading: " + std::strerror(errno));
  file.data = static_cast<const unsigned char*>(mapped);
  const unsigned char* d = file.data;
  const std::uint64_t size = file.size;

  // End of central directory: the last signature within 64 KB + 22 bytes of the end whose comment ends the file.
  std::uint64_t eocd = UINT64_MAX;
  for (std::uint64_t i = size - 22 + 1; i-- > 0 && size - i <= 65535 + 22;) {
    if (le(d + i, 4) == 0x06054b50 && i + 22 + le(d + i + 20, 2) == size) {
      eocd = i;
      break;
    }
  }
  if (eocd == UINT64_MAX) throw invalid("no end-of-central-directory record");
  std::uint64_t entries = le(d + eocd + 10, 2), cd_size = le(d + eocd + 12, 4), cd_offset = le(d + eocd + 16, 4);
  std::uint64_t cd_end_limit = eocd;
  // Zip64 whenever its locator precedes the end record, as miniz (LibTorch's reader) decides, not only when a
  // field overflows: LibTorch writes zip64 records into every file, and miniz then takes the entry count and
  // directory from them. A zip64 record that says "no entries" under a normal end record passed this check,
  // and LibTorch's reader threw after allocating state it never frees (a leak found by fuzz_checkpoint).
  const bool zip64_locator = eocd >= 20 && le(d + eocd - 20, 4) == 0x07064b50;
  if (zip64_locator || entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {  // zip64
    if (eocd < 20 || le(d + eocd - 20, 4) != 0x07064b50) throw invalid("zip64 locator missing");
    const std::uint64_t z = le(d + eocd - 20 + 8, 8);
    if (z > eocd - 20 || eocd - 20 - z < 56 || le(d + z, 4) != 0x06064b50) throw invalid("zip64 end record missing");
    entries = le(d + z + 32, 8);
    cd_size = le(d + z + 40, 8);
    cd_offset = le(d + z + 48, 8);
    cd_end_limit = z;
  }
  if (cd_offset > cd_end_limit || cd_size > cd_end_limit - cd_offset) throw invalid("central directory outside the file");
  if (entries == 0) throw invalid("no entries");
  std::uint64_t pos = cd_offset;
  const std::uint64_t cd_end = cd_offset + cd_size;
  std::string folder, lowercase_folder;        // the first entry's folder: LibTorch looks up every record under it
  std::map<std::string, std::string> versions;  // "folder/version" and "folder/.data/version" (lower case): contents
  for (std::uint64_t e = 0; e < entries; ++e) {
    const std::string where = "entry " + std::to_string(e + 1);
    if (cd_end - pos < 46 || le(d + pos, 4) != 0x02014b50) throw invalid(where + ": bad central directory header");
    const std::uint64_t method = le(d + pos + 10, 2), crc = le(d + pos + 16, 4);
    std::uint64_t compressed = le(d + pos + 20, 4), uncompressed = le(d + pos + 24, 4);
    const std::uint64_t name_len = le(d + pos + 28, 2), extra_len = le(d + pos + 30, 2), comment_len = le(d + pos + 32, 2);
    std::uint64_t local = le(d + pos + 42, 4);
    if (cd_end - pos - 46 < name_len + extra_len + comment_len) throw invalid(where + ": central directory header overruns");
    const std::string name(reinterpret_cast<const char*>(d + pos + 46), name_len);
    // LibTorch passes names on as C strings (a NUL would cut them) and miniz matches them without regard to
    // case: names it would read differently from this check are refused.
    if (name.find('\0') != std::string::npos) throw invalid(where + ": name contains a NUL byte");
    if (e == 0) {
      const auto slash = name.find('/');
      if (slash == std::string::npos) throw invalid(where + " (" + name + "): not inside a folder");
      folder = name.substr(0, slash);
      lowercase_folder = ascii_lower(folder);
    }
    // Zip64 sizes and offset, in this order, for the fields that hold 0xFFFFFFFF.
    for (std::uint64_t x = pos + 46 + name_len, x_end = x + extra_len; x + 4 <= x_end;) {
      const std::uint64_t id = le(d + x, 2), len = le(d + x + 2, 2);
      if (x_end - x - 4 < len) throw invalid(where + " (" + name + "): bad extra field");
      if (id == 0x0001) {
        std::uint64_t q = x + 4;
        const auto take = [&](std::uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (q + 8 > x + 4 + len) throw invalid(where + " (" + name + "): bad zip64 field");
          field = le(d + q, 8);
          q += 8;
        };
        take(uncompressed);
        take(compressed);
        take(local);
      }
      x += 4 + len;
    }
    if (!(method == 0 && compressed == uncompressed) && method != 8) throw invalid(where + " (" + name + "): unknown compression");
    // Encrypted (bits 0 and 6) or masked-header (bit 13) entries: no writer of ours makes them, and LibTorch's
    // reader throws on them after allocating state it never frees (a leak per file, found by fuzz_checkpoint).
    constexpr std::uint64_t kUnsupportedFlags = 0x0001 | 0x0040 | 0x2000;
    if ((le(d + pos + 8, 2) & kUnsupportedFlags) != 0) throw invalid(where + " (" + name + "): encrypted entry");
    if (const auto disk = le(d + pos + 34, 2); disk != 0 && disk != 0xFFFF)
      throw invalid(where + " (" + name + "): entry on another disk (multi-disk archive)");
    if (local >= cd_offset || cd_offset - local < 30 || le(d + local, 4) != 0x04034b50)
      throw invalid(where + " (" + name + "): bad local header");
    if ((le(d + local + 6, 2) & kUnsupportedFlags) != 0) throw invalid(where + " (" + name + "): encrypted entry");
    const std::uint64_t local_name = le(d + local + 26, 2), local_extra = le(d + local + 28, 2);
    const std::uint64_t start = local + 30 + local_name + local_extra;
    if (start > cd_offset || compressed > cd_offset - start) throw invalid(where + " (" + name + "): data outside the file");
    if (local_name != name_len || std::memcmp(d + local + 30, name.data(), name_len) != 0)
      throw invalid(where + " (" + name + "): local header names another file");
    const auto damaged = [&] { return std::runtime_error(path + ": checksum mismatch, the file is corrupted (the CRC-32 of " + name + " differs from the one written with it)"); };
    const std::string lower = ascii_lower(name);
    const bool version = lower == lowercase_folder + "/version" || lower == lowercase_folder + "/.data/version";
    if (version && versions.count(lower) != 0) throw invalid(where + " (" + name + "): a second version record");
    if (method == 0) {
      if (crc32(d + start, compressed) != crc) throw damaged();
      if (version) versions[lower].assign(reinterpret_cast<const char*>(d + start), std::min<std::uint64_t>(compressed, 64));
    } else if (inflate != nullptr) {  // deflate: LibTorch compresses only its small TorchScript sources
      if (uncompressed > (std::uint64_t{1} << 30)) throw invalid(where + " (" + name + "): compressed entry larger than 1 GiB");
      std::vector<unsigned char> plain(static_cast<std::size_t>(uncompressed));
      if (!inflate(d + start, compressed, plain.data(), plain.size()) || crc32(plain.data(), plain.size()) != crc) throw damaged();
      if (version) versions[lower].assign(reinterpret_cast<const char*>(plain.data()), std::min<std::size_t>(plain.size(), 64));
    } else if (version) {
      versions[lower] = std::to_string(kMinArchiveVersion);  // unreadable here without INFLATE: its presence is checked
    }
    pos += 46 + name_len + extra_len + comment_len;
  }
  if (pos != cd_end) throw invalid("central directory size disagrees with its entries");
  // LibTorch's reader throws on a missing or unsupported version record after allocating state it never
  // frees (a leak per file, found by fuzz_checkpoint), so that record is checked here as it reads it:
  // FOLDER/.data/version first, else FOLDER/version; a decimal number in the supported range.
  auto found = versions.find(lowercase_folder + "/.data/version");
  if (found == versions.end()) found = versions.find(lowercase_folder + "/version");
  if (found == versions.end()) throw invalid("no version record (" + folder + "/version)");
  const std::string& text = found->second;
  std::size_t digits = 0;
  while (digits < text.size() && digits < 19 && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const bool trailing_space = text.find_first_not_of(" \t\r\n", digits) == std::string::npos;
  const std::uint64_t number = digits == 0 ? 0 : std::stoull(text.substr(0, digits));
  if (digits == 0 || !trailing_space || number < kMinArchiveVersion || number > kMaxArchiveVersion)
    throw invalid(found->first + ": version \"" + text.substr(0, 20) + "\" is not a number from " +
                  std::to_string(kMinArchiveVersion) + " to " + std::to_string(kMaxArchiveVersion));
  // The seal (seal_zip_archive), checked last so that a damaged structure is named as such: a CRC-32 of
  // every byte before it, so a flipped byte that no entry's CRC covers (a local header's padding, a time
  // stamp, a directory field LibTorch ignores) is refused too. LibTorch writes no comment, so any other
  // comment is damage; files written before seals (models/demo) load without this check.
  if (const std::uint64_t comment_len = le(d + eocd + 20, 2); comment_len != 0) {
    const std::string comment(reinterpret_cast<const char*>(d + eocd + 22), comment_len);
    const std::string_view prefix = kSealPrefix;
    if (comment_len != prefix.size() + 8 || comment.compare(0, prefix.size(), prefix) != 0 ||
        comment.find_first_not_of("0123456789abcdef", prefix.size()) != std::string::npos)
      throw invalid("unknown archive comment; the seal is damaged");
    if (std::stoul(comment.substr(prefix.size()), nullptr, 16) != crc32(d, eocd + 22))
      throw std::runtime_error(path + ": checksum mismatch, the file is corrupted (its sealed CRC-32 differs)");
  }
}

void seal_zip_archive(std::string& bytes) {
  // LibTorch ends its archives with a comment-less end-of-central-directory record: the last 22 bytes.
  if (bytes.size() < 22) throw std::invalid_argument("seal_zip_archive: too short for a zip archive");
  auto* end = reinterpret_cast<unsigned char*>(bytes.data() + bytes.size() - 22);
  if (le(end, 4) != 0x06054b50 || le(end + 20, 2) != 0)
    throw std::invalid_argument("seal_zip_archive: the archive does not end with a comment-less end record");
  const std::string_view prefix = kSealPrefix;
  const std::uint64_t comment_len = prefix.size() + 8;
  end[20] = static_cast<unsigned char>(comment_len & 0xFF);
  end[21] = static_cast<unsigned char>(comment_len >> 8);
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", crc32(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
  bytes.append(prefix);
  bytes.append(hex, 8);
}

// --- temporary files (temp_files.h) ---
namespace {

// The handler may only call async-signal-safe functions, so paths live in fixed buffers it can read
// without locks; a slot is published by setting `used` after its path is written.
constexpr int kSlots = 64;
constexpr std::size_t kMaxPath = 4096;
char g_paths[kSlots][kMaxPath];
char g_unless[kSlots][kMaxPath];  // "" or a path whose existence keeps g_paths[i] (a run's first checkpoint)
volatile sig_atomic_t g_used[kSlots];
std::mutex g_mutex;
bool g_installed = false;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGPIPE, SIGHUP};

void cleanup_and_reraise(int signal_number) {
  // Files first, then directories (rmdir removes only an empty one, and fails harmlessly on a file).
  for (int pass = 0; pass < 2; ++pass)
    for (int i = 0; i < kSlots; ++i)
      if (g_used[i] && (g_unless[i][0] == '\0' || ::access(g_unless[i], F_OK) != 0)) {
        if (pass == 0) ::unlink(g_paths[i]);
        else ::rmdir(g_paths[i]);
      }
  // Die of the same signal, so the parent sees the usual status (130 for Ctrl-C in a shell).
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  ::sigaction(signal_number, &action, nullptr);
  ::raise(signal_number);
}

void install_handlers_locked() {
  if (g_installed) return;
  g_installed = true;
  for (const int s : kSignals) {
    struct sigaction old {};
    if (::sigaction(s, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    struct sigaction action {};
    action.sa_handler = cleanup_and_reraise;
    sigemptyset(&action.sa_mask);
    for (const int blocked : kSignals) sigaddset(&action.sa_mask, blocked);
    ::sigaction(s, &action, nullptr);
  }
}

bool all_digits(const char* s) {
  if (*s == '\0') return false;
  for (; *s; ++s)
    if (*s < '0' || *s > '9') return false;
  return true;
}

}  // namespace

std::string temp_path_for(const std::string& target) { return target + ".partial." + std::to_string(::getpid()); }

int register_temp_file(const std::string& path, const std::string& unless_exists) {
  std::lock_guard<std::mutex> lock(g_mutex);
  install_handlers_locked();
  if (path.size() >= kMaxPath || unless_exists.size() >= kMaxPath) return -1;  // too long; the sweep still finds it later
  for (int i = 0; i < kSlots; ++i) {
    if (g_used[i]) continue;
    std::memcpy(g_paths[i], path.c_str(), path.size() + 1);
    std::memcpy(g_unless[i], unless_exists.c_str(), unless_exists.size() + 1);
    g_used[i] = 1;
    return i;
  }
  return -1;
}

void unregister_temp_file(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_used[slot] = 0;
}

int sweep_stale_temp_files(const std::string& target) {
  const std::size_t slash = target.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : target.substr(0, slash));
  const std::string prefix = (slash == std::string::npos ? target : target.substr(slash + 1)) + ".partial.";
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return 0;
  int removed = 0;
  while (const dirent* entry = ::readdir(listing)) {
    const char* name = entry->d_name;
    if (std::strncmp(name, prefix.c_str(), prefix.size()) != 0 || !all_digits(name + prefix.size())) continue;
    const long pid = std::strtol(name + prefix.size(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    if (::unlink((dir + "/" + name).c_str()) == 0) ++removed;
  }
  ::closedir(listing);
  return removed;
}

}  // namespace hashhop::io
