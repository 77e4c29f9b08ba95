// The `hashhop` command line: one binary, one file per subcommand. Run `hashhop --help`.
// Errors print one line ("hashhop gen: error: …") and exit non-zero; usage errors exit 2.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "command.h"
#include "process_setup.h"
#include "version.h"

int main(int argc, char** argv) {
  hashhop::cli::prepare_process(argv);
  CLI::App root{"hashhop: the HashHop benchmark and hash-attention retrieval over ultra-long contexts", "hashhop"};
  root.require_subcommand(1);
  root.set_version_flag("--version", hashhop::cli::version_line(), "Print the version and the git commit, then exit");
  std::vector<hashhop::cli::Command> commands = {
      hashhop::cli::add_gen_command(root),
      hashhop::cli::add_score_command(root),
      hashhop::cli::add_solve_command(root),
      hashhop::cli::add_demo_command(root),
      hashhop::cli::add_attn_check_command(root),
      hashhop::cli::add_attn_bench_command(root),
      hashhop::cli::add_train_command(root),
      hashhop::cli::add_eval_command(root),
      hashhop::cli::add_answer_command(root),
      hashhop::cli::add_engine_bench_command(root),
      hashhop::cli::add_serve_command(root),
      hashhop::cli::add_sweep_command(root),
      hashhop::cli::add_plot_command(root),
  };
  try {
    root.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return root.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string prefix = "hashhop";  // "hashhop gen: error: ...", as the errors of a running command read
    for (const auto& command : commands)
      if (command.app->parsed()) prefix += " " + command.app->get_name();
    std::fprintf(stderr, "%s: error: %s (see --help)\n", prefix.c_str(), e.what());
    return 2;
  }
  for (const auto& command : commands) {
    if (!command.app->parsed()) continue;
    const std::string name = command.app->get_name();
    try {
      const int rc = command.run();
      if (!hashhop::cli::flush_stdout()) {
        std::fprintf(stderr, "hashhop %s: error: <stdout>: write failed: %s\n", name.c_str(), std::strerror(errno));
        return 1;
      }
      return rc;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "hashhop %s: error: out of memory\n", name.c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hashhop %s: error: %s\n", name.c_str(), hashhop::cli::first_line(e.what()).c_str());
      return 1;
    }
  }
  return 2;
}
