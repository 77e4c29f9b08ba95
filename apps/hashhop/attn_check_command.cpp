// `hashhop attn-check`: runs the attention consistency harness and prints one row per (mechanism,
// shape) with its max error and PASS/FAIL (--device cuda: the CUDA kernels). Exit status 1 if any fails.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "command.h"
#include "hashhop/attn/consistency.h"
#ifdef HASHHOP_WITH_CUDA_KERNELS
#include "hashhop/attn/cuda/consistency_cuda.h"
#endif

namespace hashhop::cli {

Command add_attn_check_command(CLI::App& root) {
  struct Options {
    std::string device = "cpu";
    unsigned seed = 0;
  };
  auto options = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("attn-check", "Check every attention mechanism against dense attention on random inputs");
  app->add_option("--device", options->device, "cpu: the float64 references against dense; cuda: every CUDA kernel against its CPU reference")
      ->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app->add_option("--seed", options->seed, "Seed of the random inputs")->capture_default_str();
  return {app, [options] {
            std::vector<attn::ConsistencyResult> results;
            if (options->device == "cuda") {
#ifdef HASHHOP_WITH_CUDA_KERNELS
              results = attn::cuda::run_cuda_consistency(options->seed);
#else
              throw std::invalid_argument("--device cuda: this hashhop was built without the CUDA kernels (no nvcc at configure time)");
#endif
            } else {
              results = attn::run_cpu_consistency(options->seed);
            }
            std::printf("%s", attn::format_consistency_table(results).c_str());
            int failed = 0;
            for (const auto& r : results) failed += r.passed() ? 0 : 1;
            std::printf("%zu passed, %d failed\n", results.size() - static_cast<std::size_t>(failed), failed);
            return failed == 0 ? 0 : 1;
          }};
}

}  // namespace hashhop::cli
