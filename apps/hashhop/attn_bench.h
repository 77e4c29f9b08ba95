// `hashhop attn-bench` options and its GPU body (attn_bench_gpu.cpp), which exists only in builds against
// LibTorch with CUDA (scripts/gpu-build.sh defines HASHHOP_WITH_TORCH_CUDA); elsewhere it throws.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace hashhop::cli {

struct AttentionBenchOptions {
  std::vector<std::int64_t> decode_sizes = {1 << 16, 1 << 20, 1 << 22, 1 << 24};  // cached tokens
  std::vector<std::int64_t> prefill_sizes = {1 << 15, 1 << 17, 1 << 19, 1 << 20};
  int bucket_size = 1024;  // mean keys per bucket: bucket_bits = log2(n / bucket_size)
  int repeats = 15;        // decode timings (medians, after 3 warm-ups)
  int prefill_repeats = 3;
};

// Prints the tables (markdown) as it goes and returns every row as JSON.
nlohmann::json run_attention_bench(const AttentionBenchOptions& options);

}  // namespace hashhop::cli
