// What a results file records about the run that made it: the command line, UTC date, version and commit,
// the CPU (and GPU, when one was used). Torch-free; used by `hashhop sweep`.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "version.h"

namespace hashhop::cli {

// The process's own command line (Linux /proc/self/cmdline), argv[0] shown as "hashhop".
inline std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out = "hashhop";
  std::size_t start = all.find('\0');
  while (start != std::string::npos && start + 1 < all.size()) {
    const std::size_t end = all.find('\0', start + 1);
    std::string arg = all.substr(start + 1, end - start - 1);
    const bool plain = !arg.empty() && arg.find_first_of(" \t'\"\\$`") == std::string::npos;
    out += " " + (plain ? arg : "'" + arg + "'");
    start = end;
  }
  return out;
}

inline std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) return line.substr(line.find(':') + 2);
  return "unknown";
}

// The first GPU's name from nvidia-smi; empty when there is none (only asked when CUDA is used).
inline std::string gpu_name() {
  std::FILE* pipe = ::popen("nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null", "r");
  if (pipe == nullptr) return "";
  char buf[256] = {};
  std::string name = std::fgets(buf, sizeof buf, pipe) ? buf : "";
  ::pclose(pipe);
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
  return name;
}

inline nlohmann::json run_info() {
  return {{"command", command_line()}, {"date", utc_now()}, {"version", version()}, {"commit", commit()},
          {"cpu", cpu_model()}, {"cpu_cores", static_cast<long>(::sysconf(_SC_NPROCESSORS_ONLN))}};
}

}  // namespace hashhop::cli
