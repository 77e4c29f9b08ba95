// Process-wide settings of the `hashhop` binary, applied first thing in main(): OpenMP waits passively,
// errors print as one line, and a failed write to stdout (a full disk, EIO) fails the command.
// Covered by tests/cli/test_cli.sh ("stdout to /dev/full", "one-line torch errors").
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace hashhop::cli {

// libgomp reads OMP_WAIT_POLICY once, when it is loaded, i.e. before main(). Its default is to spin
// for a while after each parallel region; on a shared 2-core machine two spinning threads made eval 35x
// slower (26 s instead of 0.75 s). So when the user has not chosen a policy, set "passive" and exec this
// binary again so the runtime sees it. Only the subcommands that run LibTorch pay for the second start
// (gen, score and solve never enter OpenMP). HASHHOP_NO_REEXEC=1 turns this off (debuggers, profilers).
inline void prepare_process(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("HASHHOP_NO_REEXEC") != nullptr) return;
  if (argv == nullptr || argv[0] == nullptr || argv[1] == nullptr) return;
  const std::string sub = argv[1];
  if (sub != "train" && sub != "eval" && sub != "answer" && sub != "demo" && sub != "engine-bench" &&
      sub != "sweep" && sub != "serve") return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run on with the default policy
}

// The first line of an exception's message: c10::Error appends a 20-line C++ backtrace after it.
inline std::string first_line(const char* message) {
  std::string text = message == nullptr ? "" : message;
  const std::size_t newline = text.find('\n');
  if (newline != std::string::npos) text.resize(newline);
  return text;
}

// Flushes stdout; false (with errno set) when the output was lost, e.g. `> /dev/full`.
inline bool flush_stdout() { return std::fflush(stdout) == 0 && !std::ferror(stdout); }

}  // namespace hashhop::cli
