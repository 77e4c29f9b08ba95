// `hashhop plot results.json -o fig.png|svg`: draws a `hashhop sweep` results file with matplotlib
// (scripts/plot_sweep.py, run with a python3 that has it). Run `hashhop plot --help`.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "command.h"
#include "hashhop/io/files.h"
#include "hashhop/io/input_error.h"

extern char** environ;

namespace hashhop::cli {
namespace {

// The plotting script: $HASHHOP_PLOT_SCRIPT, else the source tree's (the build knows where it is), else
// one beside an installed binary (bin/../scripts).
std::string plot_script() {
  if (const char* env = std::getenv("HASHHOP_PLOT_SCRIPT")) return env;
#ifdef HASHHOP_PLOT_SCRIPT
  if (io::file_exists(HASHHOP_PLOT_SCRIPT)) return HASHHOP_PLOT_SCRIPT;
#endif
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<std::size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    for (const char* rel : {"/../scripts/plot_sweep.py", "/scripts/plot_sweep.py"})
      if (io::file_exists(dir + rel)) return dir + rel;
  }
  throw std::runtime_error("scripts/plot_sweep.py not found (set HASHHOP_PLOT_SCRIPT to its path)");
}

// Runs argv[0] (looked up on PATH) and returns its wait status; `quiet` sends its output to /dev/null.
int spawn_and_wait(std::vector<std::string> args, bool quiet) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  if (quiet) {
    ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(args[0] + ": waitpid failed: " + std::strerror(errno));
  }
  return status;
}

// The interpreter: $HASHHOP_PYTHON, else the first of `python3` on PATH and /usr/bin/python3 that imports
// matplotlib. Both are tried because a pyenv or venv python3 often shadows the system one that
// python3-matplotlib (scripts/setup.sh) installs into. With neither, `python3` runs and the script says
// what is missing in one line.
std::string plot_python() {
  if (const char* env = std::getenv("HASHHOP_PYTHON"); env != nullptr && *env != '\0') return env;
  for (const char* candidate : {"python3", "/usr/bin/python3"}) {
    const int status = spawn_and_wait({candidate, "-c", "import matplotlib"}, true);
    if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return candidate;
  }
  return "python3";
}

int run_plot(const std::string& results, const std::string& out) {
  if (!io::file_exists(results)) throw io::InputError(results, 0, "", "cannot open for reading");
  io::check_distinct_files(out, "-o", results, "RESULTS");  // the picture must not replace the results it is drawn from
  const std::string script = plot_script();
  const std::string python = plot_python();
  const int status = spawn_and_wait({python, script, results, out}, false);
  if (status < 0)
    throw std::runtime_error(python + ": cannot run; install python3 and python3-matplotlib (scripts/setup.sh does)");
  // The script prints its own one-line "hashhop plot: error: ..." (a missing matplotlib, a bad results file).
  if (WIFEXITED(status)) return WEXITSTATUS(status) == 127 ? 1 : WEXITSTATUS(status);
  throw std::runtime_error(python + " " + script + ": killed by signal " + std::to_string(WTERMSIG(status)));
}

}  // namespace

Command add_plot_command(CLI::App& root) {
  struct Options {
    std::string results, out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("plot", "Draw a `hashhop sweep` results JSON: accuracy heatmaps and latency (matplotlib)");
  app->add_option("results", o->results, "Results JSON written by `hashhop sweep --out`")->required();
  app->add_option("-o,--out", o->out, "Picture to write: .png, .svg or .pdf (written atomically)")->required();
  app->footer("Needs python3 with matplotlib (Debian: python3-matplotlib, installed by scripts/setup.sh): $HASHHOP_PYTHON,\n"
              "else python3 on PATH or /usr/bin/python3, whichever imports matplotlib first.");
  return {app, [o] { return run_plot(o->results, o->out); }};
}

}  // namespace hashhop::cli
