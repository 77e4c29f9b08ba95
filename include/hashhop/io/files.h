// Small POSIX file helpers for code that links LibTorch. PyPI's LibTorch exports its own copy of parts
// of std::filesystem, and mixing it with the system libstdc++'s copy corrupts memory (seen on the GPU
// machine: "free(): invalid pointer"), so nothing that links torch uses std::filesystem.
#pragma once

#include <string>

namespace hashhop::io {

bool file_exists(const std::string& path);
void make_directories(const std::string& path);  // mkdir -p; throws naming the path
void rename_file(const std::string& from, const std::string& to);  // throws naming both paths
void remove_file_quietly(const std::string& path);

}  // namespace hashhop::io
