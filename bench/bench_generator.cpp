// Generator throughput in bytes of prompt text per second on one core (Google Benchmark).
// Run: build/bench/bench_generator   — results go to docs/results/generator.md.
#include <benchmark/benchmark.h>

#include "hashhop/bench/generator.h"

namespace {

void BM_stream_prompt(benchmark::State& state) {
  hashhop::bench::GenConfig config;
  config.n_chars = 30'000'000;
  config.hops = static_cast<int>(state.range(0));
  config.hash_len = static_cast<int>(state.range(1));
  const hashhop::bench::HashHopProblem problem(config);
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    std::uint64_t checksum = 0;
    problem.stream_prompt([&](std::string_view chunk) {
      bytes += chunk.size();
      checksum += static_cast<unsigned char>(chunk.back());  // keeps the work observable
    }, "\n");
    benchmark::DoNotOptimize(checksum);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

}  // namespace

BENCHMARK(BM_stream_prompt)->ArgNames({"hops", "hash_len"})
    ->Args({1, 8})->Args({2, 16})->Args({1, 16})->Args({4, 16})->Args({2, 32})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
