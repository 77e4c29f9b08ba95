// `hashhop attn-bench` options and its GPU body (attn_bench_gpu.cpp), which exists only in builds against
// LibTorch with CUDA (the `gpu` CMake preset, HASHHOP_TORCH_CUDA=ON, defines HASHHOP_WITH_TORCH_CUDA); elsewhere it throws.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "hashhop/attn/attention_cases.h"

namespace hashhop::cli {

// Sizes and mechanism settings default to the registry's benchmark entries (attention_cases.h).
struct AttentionBenchOptions {
  std::vector<std::int64_t> decode_sizes = attn::benchmark_case("decode/signature_topk").sizes;  // cached tokens
  std::vector<std::int64_t> prefill_sizes = attn::benchmark_case("prefill/bucket").sizes;
  int bucket_size = attn::benchmark_case("prefill/bucket").bucket_size;  // mean keys per bucket: bits = log2(n / this)
  int repeats = 15;        // decode timings (medians, after 3 warm-ups)
  int prefill_repeats = 3;
};

// Prints the tables (markdown) as it goes and returns every row as JSON.
nlohmann::json run_attention_bench(const AttentionBenchOptions& options);

}  // namespace hashhop::cli
