// The `hashhop` command line: one command, one file per subcommand. Run `hashhop --help`.
// Errors print one line ("hashhop gen: error: …") and exit non-zero; usage errors exit 2.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "command.h"
#include "process_setup.h"
#include "torch_exec.h"
#include "version.h"

// Subcommands that run LibTorch (torch_commands.h): the lean `hashhop` (HASHHOP_LEAN) lists them and
// execs hashhop-torch to run them; hashhop-torch, the same main without HASHHOP_LEAN, runs everything.
#ifdef HASHHOP_LEAN
#define HASHHOP_TORCH_COMMAND(name, add) hashhop::cli::placeholder_command(root, name)
#else
#define HASHHOP_TORCH_COMMAND(name, add) add(root)
#endif

namespace {

// CLI11 2.1 reads integer options with strtoll/strtoull in base 0: "-1" wraps to 2^64-1 in an unsigned
// option, "010" is octal, "0x10" hex, and a value past the type's range saturates instead of failing.
// Every INT/UINT option of every subcommand gets this check first, so such text is a usage error naming
// the option: "--seed: expected a decimal integer >= 0, got -1".
void check_integer_options(CLI::App& root) {
  for (CLI::App* sub : root.get_subcommands({})) {
    for (CLI::Option* option : sub->get_options()) {
      const std::string type = option->get_type_name();
      const bool is_unsigned = type.rfind("UINT", 0) == 0;
      if (!is_unsigned && type.rfind("INT", 0) != 0) continue;
      option->check([is_unsigned](const std::string& text) -> std::string {
        const std::string want = is_unsigned ? "expected a decimal integer >= 0, got " : "expected a decimal integer, got ";
        const std::size_t digits = !is_unsigned && !text.empty() && text[0] == '-' ? 1 : 0;
        if (text.size() == digits || text.find_first_not_of("0123456789", digits) != std::string::npos ||
            (text[digits] == '0' && text.size() > digits + 1))
          return want + text;
        errno = 0;
        if (is_unsigned)
          (void)std::strtoull(text.c_str(), nullptr, 10);
        else
          (void)std::strtoll(text.c_str(), nullptr, 10);
        if (errno == ERANGE) return "out of range: " + text;
        return "";
      });
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef HASHHOP_LEAN
  if (const char* sub = hashhop::cli::subcommand_of(argc, argv); sub != nullptr && hashhop::cli::needs_torch_binary(argc, argv, sub))
    return hashhop::cli::exec_torch_binary(argv, sub);
#else
  hashhop::cli::prepare_process(argv);
#endif
  CLI::App root{"hashhop: the HashHop benchmark and hash-attention retrieval over ultra-long contexts", "hashhop"};
  root.require_subcommand(1);
  root.set_version_flag("--version", hashhop::cli::version_line(), "Print the version and the git commit, then exit");
  std::vector<hashhop::cli::Command> commands = {
      hashhop::cli::add_gen_command(root),
      hashhop::cli::add_score_command(root),
      hashhop::cli::add_solve_command(root),
      HASHHOP_TORCH_COMMAND("demo", hashhop::cli::add_demo_command),
      hashhop::cli::add_attn_check_command(root),
      HASHHOP_TORCH_COMMAND("attn-bench", hashhop::cli::add_attn_bench_command),
      HASHHOP_TORCH_COMMAND("train", hashhop::cli::add_train_command),
      HASHHOP_TORCH_COMMAND("eval", hashhop::cli::add_eval_command),
      HASHHOP_TORCH_COMMAND("answer", hashhop::cli::add_answer_command),
      HASHHOP_TORCH_COMMAND("engine-bench", hashhop::cli::add_engine_bench_command),
      HASHHOP_TORCH_COMMAND("serve", hashhop::cli::add_serve_command),
      HASHHOP_TORCH_COMMAND("signature-recall", hashhop::cli::add_signature_recall_command),
      HASHHOP_TORCH_COMMAND("hop-probe", hashhop::cli::add_hop_probe_command),
      HASHHOP_TORCH_COMMAND("margin-probe", hashhop::cli::add_margin_probe_command),
      HASHHOP_TORCH_COMMAND("compact", hashhop::cli::add_compact_command),
      hashhop::cli::add_sweep_command(root),  // both binaries: --model runs in hashhop-torch (torch_commands.h)
      hashhop::cli::add_plot_command(root),
  };
  check_integer_options(root);
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
    bool in_command = false;
    for (const auto& command : commands)
      if (command.app->parsed()) prefix += " " + command.app->get_name(), in_command = true;
    std::string message = e.what();
    // "A subcommand is required" for `hashhop nope` or `hashhop --bogus`: name what was typed instead.
    if (!in_command && argc > 1 && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr)
      message = std::string(argv[1]).rfind('-', 0) == 0 ? "unknown option '" + std::string(argv[1]) + "'; a subcommand is required"
                                                         : "unknown subcommand '" + std::string(argv[1]) + "'";
    std::fprintf(stderr, "%s: error: %s (see --help)\n", prefix.c_str(), hashhop::cli::first_line(message.c_str()).c_str());
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
