// `hashhop plot results.json -o fig.png|svg`: draws a `hashhop sweep` results file with matplotlib
// (scripts/plot_sweep.py, run with python3). Run `hashhop plot --help`.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

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

int run_plot(const std::string& results, const std::string& out) {
  if (!io::file_exists(results)) throw io::InputError(results, 0, "", "cannot open for reading");
  io::check_distinct_files(out, "-o", results, "RESULTS");  // the picture must not replace the results it is drawn from
  const std::string script = plot_script();
  std::string python = "python3", script_arg = script, results_arg = results, out_arg = out;
  char* argv[] = {python.data(), script_arg.data(), results_arg.data(), out_arg.data(), nullptr};
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, "python3", nullptr, nullptr, argv, environ);
  if (spawned != 0)
    throw std::runtime_error(std::string("python3: cannot run (") + std::strerror(spawned) +
                             "); install python3 and python3-matplotlib (scripts/setup.sh does)");
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("python3: waitpid failed: ") + std::strerror(errno));
  }
  // The script prints its own one-line "hashhop plot: error: ..." (a missing matplotlib, a bad results file).
  if (WIFEXITED(status)) return WEXITSTATUS(status) == 127 ? 1 : WEXITSTATUS(status);
  throw std::runtime_error("python3 " + script + ": killed by signal " + std::to_string(WTERMSIG(status)));
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
  app->footer("Needs python3 with matplotlib (Debian: python3-matplotlib, installed by scripts/setup.sh).");
  return {app, [o] { return run_plot(o->results, o->out); }};
}

}  // namespace hashhop::cli
