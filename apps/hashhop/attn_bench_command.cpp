// `hashhop attn-bench`: GPU attention benchmark, PyTorch SDPA (flash, cuDNN) against our CUDA kernels in
// one process: decode (signature top-k, hash index) and causal prefill (bucket). Run `hashhop attn-bench --help`.
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "attn_bench.h"
#include "command.h"
#include "json_option.h"
#include "size_option.h"
#include "hashhop/io/atomic_output.h"

namespace hashhop::cli {
namespace {

// "65536,1048576" -> sizes; "" -> none (skips that section). Errors name the option and the item.
std::vector<std::int64_t> parse_token_counts(const std::string& option, const std::string& text) {
  std::vector<std::int64_t> sizes;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    std::uint64_t value = 0;
    try {
      value = parse_size(option, item);  // 65536, 64K (= 64000), 1M
    } catch (const std::invalid_argument&) {
      value = 0;
    }
    if (value < 64 || value > (1ULL << 30)) {
      throw std::invalid_argument(option + ": expected token counts in [64, 2^30] separated by commas (K/M/G suffixes allowed), got '" + item + "'");
    }
    sizes.push_back(static_cast<std::int64_t>(value));
    start = comma + 1;
  }
  return sizes;
}

std::string join_sizes(const std::vector<std::int64_t>& sizes) {
  std::string out;
  for (const auto n : sizes) out += (out.empty() ? "" : ",") + std::to_string(n);
  return out;
}

}  // namespace

Command add_attn_bench_command(CLI::App& root) {
  struct Options {  // defaults: the registry's benchmark entries (attention_cases.h)
    std::string decode = join_sizes(attn::benchmark_case("decode/signature_topk").sizes);
    std::string prefill = join_sizes(attn::benchmark_case("prefill/bucket").sizes);
    AttentionBenchOptions bench;
    JsonOption json;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("attn-bench", "GPU benchmark: SDPA flash/cuDNN vs signature top-k, hash index and bucket attention");
  app->add_option("--decode-sizes", o->decode, "Cached tokens for the decode table (comma list; empty skips it)")->capture_default_str();
  app->add_option("--prefill-sizes", o->prefill, "Tokens for the causal prefill table (comma list; empty skips it)")->capture_default_str();
  app->add_option("--bucket-size", o->bench.bucket_size, "Mean keys per bucket in prefill: 2^bits = tokens / this")
      ->check(CLI::Range(16, 1 << 20))->capture_default_str();
  app->add_option("--repeats", o->bench.repeats, "Timed runs per decode measurement (median reported)")->check(CLI::Range(1, 1000))->capture_default_str();
  app->add_option("--prefill-repeats", o->bench.prefill_repeats, "Timed runs per prefill measurement")->check(CLI::Range(1, 100))->capture_default_str();
  o->json.add(app, "every row");
  return {app, [o] {
            o->bench.decode_sizes = parse_token_counts("--decode-sizes", o->decode);
            o->bench.prefill_sizes = parse_token_counts("--prefill-sizes", o->prefill);
            o->json.open();
            std::optional<HumanTextToStderr> human(std::in_place, o->json.to_stdout());  // --json: tables on stderr
            const nlohmann::json report = run_attention_bench(o->bench);
            human.reset();
            o->json.emit(report);
            return 0;
          }};
}

}  // namespace hashhop::cli
