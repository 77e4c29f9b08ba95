// `hashhop attn-check`: runs the attention consistency harness and prints one row per (mechanism,
// shape) with its max error and PASS/FAIL. Exit status 1 if any case fails.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include "command.h"
#include "hashhop/attn/consistency.h"

namespace hashhop::cli {

Command add_attn_check_command(CLI::App& root) {
  struct Options {
    std::string device = "cpu";
    unsigned seed = 0;
  };
  auto options = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("attn-check", "Check every attention mechanism against dense attention on random inputs");
  app->add_option("--device", options->device, "cpu (float64 references); cuda needs a CUDA build")
      ->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app->add_option("--seed", options->seed, "Seed of the random inputs")->capture_default_str();
  return {app, [options] {
            if (options->device == "cuda") throw std::invalid_argument("--device cuda: this build has no CUDA attention kernels yet");
            const auto results = attn::run_cpu_consistency(options->seed);
            std::printf("%s", attn::format_consistency_table(results).c_str());
            int failed = 0;
            for (const auto& r : results) failed += r.passed() ? 0 : 1;
            std::printf("%zu passed, %d failed\n", results.size() - static_cast<std::size_t>(failed), failed);
            return failed == 0 ? 0 : 1;
          }};
}

}  // namespace hashhop::cli
