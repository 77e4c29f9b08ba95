// The long-context engine for the byte-level model: streams a prompt through the model in chunks and keeps,
// in each gated global block, only the reference points its hard hash gate selects (the model config's
// gate_threshold; 0 keeps every position). Answers equal the model's own (float32; bf16 rounds chunked and
// whole runs apart). Run: ctest -R ByteEngine
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hashhop/model/byte_model.h"

namespace hashhop::engine {

struct ByteEngineOptions {
  std::size_t chunk_bytes = 65536;  // prompt bytes per forward pass; answers do not depend on it
};

struct ByteEngineStats {
  std::uint64_t bytes = 0;                   // prompt bytes streamed (with the "\n" the completion starts at)
  std::vector<std::int64_t> reference_points;  // keys kept, per gated global block
  std::int64_t cache_bytes = 0;              // device memory of the whole cache (every block)
  double bytes_per_reference_point() const;  // cache_bytes over the largest reference_points
};

class ByteEngine {
 public:
  ByteEngine(model::ByteModel net, torch::Device device, ByteEngineOptions options = {});

  // Streams prompt + "\n" (the line the completion block starts on) through the model, chunk by chunk:
  // each chunk continues from the state the earlier ones left (window keys, canon tails, kept global
  // keys), as ByteModel::hidden_after does. Starts afresh on every call.
  void prefill(std::string_view prompt);
  // The completion block with the greedy answer for every key (model::answer_queries_bytes's protocol).
  std::string answer(int hops, bool cot, const std::vector<std::string>& keys);

  const model::ByteCache& cache() const { return cache_; }
  const ByteEngineStats& stats() const { return stats_; }

 private:
  void drop_ungated(std::int64_t chunk_length);

  model::ByteModel net_;
  torch::Device device_;
  ByteEngineOptions options_;
  model::ByteCache cache_;
  ByteEngineStats stats_;
};

}  // namespace hashhop::engine
