// The lean `hashhop` hands subcommands that run LibTorch to `hashhop-torch` (built beside it): exec with the
// same arguments, stdio and pid, so the user sees one command. Used by main.cpp when built with HASHHOP_LEAN.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "command.h"
#include "torch_commands.h"

namespace hashhop::cli {

// The subcommand named on the command line: the first argument that is not an option (the root takes
// only --help and --version, neither with a value). nullptr when there is none.
inline const char* subcommand_of(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') return argv[i];
  return nullptr;
}

// Whether the lean binary must hand this command line to hashhop-torch: a LibTorch subcommand, unless it
// names a torch_option (sweep: --model) that is absent from the arguments ("--model DIR" or "--model=DIR").
inline bool needs_torch_binary(int argc, char** argv, const char* subcommand) {
  const TorchCommand* command = find_torch_command(subcommand);
  if (command == nullptr) return false;
  if (command->torch_option == nullptr) return true;
  const std::string option = command->torch_option;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == option || arg.rfind(option + "=", 0) == 0) return true;
  }
  return false;
}

// Replaces this process with hashhop-torch; returns 1 (after a one-line error) only when that fails.
inline int exec_torch_binary(char** argv, const char* subcommand) {
  std::string path;
  if (const char* env = std::getenv("HASHHOP_TORCH_BINARY")) {
    path = env;
  } else {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    path = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string(argv[0]);
    path = path.substr(0, path.rfind('/') + 1) + "hashhop-torch";
  }
  // OpenMP must see its wait policy when it loads (process_setup.h explains why); set it here so
  // hashhop-torch need not exec itself a second time.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("HASHHOP_NO_REEXEC") == nullptr)
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv(path.c_str(), argv);
  std::fprintf(stderr, "hashhop %s: error: %s: cannot run (%s); it is built beside hashhop and runs the commands that need LibTorch\n",
               subcommand, path.c_str(), std::strerror(errno));
  return 1;
}

// A stand-in for a LibTorch subcommand in the lean binary, so `hashhop --help` lists every command. It is
// never run: main execs hashhop-torch before parsing when such a subcommand is named.
inline Command placeholder_command(CLI::App& root, const char* name) {
  const TorchCommand* command = find_torch_command(name);
  CLI::App* app = root.add_subcommand(name, command ? command->description : "");
  app->allow_extras();
  return {app, [name] () -> int { throw std::runtime_error(std::string("internal: ") + name + " runs in hashhop-torch"); }};
}

}  // namespace hashhop::cli
