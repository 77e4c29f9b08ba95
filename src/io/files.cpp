// POSIX file helpers (see files.h for why not std::filesystem) and the temporary-file registry with its
// signal cleanup and stale-temporary sweep (see temp_files.h). Tested by tests/io/test_io.cpp.
#include "hashhop/io/files.h"
#include "hashhop/io/temp_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

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
