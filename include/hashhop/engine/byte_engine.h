// The long-context engine for the byte-level model: streams a prompt through the model in chunks and keeps,
// in each gated global block, only the reference points its hard hash gate selects (the model config's
// gate_threshold; 0 keeps every position). Answers equal the model's own (float32; bf16 rounds chunked and
// whole runs apart). Context parallel over a process group: byte_context_parallel.cpp. Run: ctest -R ByteEngine
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "hashhop/model/byte_model.h"

namespace hashhop::dist {
class ProcessGroup;
}

namespace hashhop::engine {

struct ByteEngineOptions {
  std::size_t chunk_bytes = 65536;  // prompt bytes per forward pass; answers do not depend on it
  // Device memory for the global blocks' keys and values; when a chunk takes them past it, they move to host
  // memory (pinned on CUDA) and later reads fetch them back a slice at a time, merged by log-sum-exp (exact).
  // 0: no limit, everything stays on the device (and reads take SDPA's fused kernels).
  std::int64_t device_bytes = 0;
  // Not exact: while the prompt streams in, each gated global block reads only its last prefill_window kept keys
  // (queries still read every key). A prompt's bytes rarely need a far line to make their own keys, and the
  // window makes the prefill linear in the prompt instead of quadratic. 0: every key (the model's own answers).
  std::int64_t prefill_window = 0;
  // Not exact either: per global block (by index), a read window that holds while answering too (it replaces
  // prefill_window for that block), and a top-k read (each query's softmax over its k best keys, prefill and
  // answers). A lookup block's read over 10^6 keys is diluted by their sum; a block that pools nearby bytes
  // has no use for far keys. 0 or absent: the block reads as the others do (prefill_window while prefilling).
  std::map<int, std::int64_t> block_window{};
  std::map<int, int> block_topk{};
  // Any of the reads above asked for: the engine's answers are then not the model's own.
  bool approximate() const { return prefill_window > 0 || !block_window.empty() || !block_topk.empty(); }
};

// Throws std::invalid_argument for options no engine takes (a negative window; a window with a device budget;
// with `config`, a block_window or block_topk naming no global block of that model): the engine's constructor
// calls it, and a command may call it before its first record.
void check_options(const ByteEngineOptions& options, const model::ByteModelConfig* config = nullptr);

struct ByteEngineStats {
  std::uint64_t bytes = 0;                   // prompt bytes streamed (with the "\n" the completion starts at)
  std::vector<std::int64_t> reference_points;  // keys kept, per gated global block (context parallel: all ranks')
  std::int64_t cache_bytes = 0;              // device memory of the whole cache (every block; context parallel: all ranks')
  std::int64_t host_bytes = 0;               // global keys and values spilled to host memory (device_bytes; likewise)
  double bytes_per_reference_point() const;  // (cache_bytes + host_bytes) over the largest reference_points
};

class ByteEngine {
 public:
  ByteEngine(model::ByteModel net, torch::Device device, ByteEngineOptions options = {});
  // Context parallel (docs/distributed.md): every rank of `group` builds one over the same model and calls
  // prefill() and answer() with the same arguments. Rank r keeps its shard's global keys only (memory grows
  // with shards, not with one GPU); the ranks take turns in prompt order, each continuing from the previous
  // one's local state (window keys, canon tails) while the others serve its global blocks' reads of their
  // keys (an exact log-sum-exp merge). The last rank decodes; answer() returns the completion on every rank.
  // The net must be this engine's alone while it runs (its global blocks read through the group).
  ByteEngine(model::ByteModel net, torch::Device device, dist::ProcessGroup& group, ByteEngineOptions options = {});

  // Streams prompt + "\n" (the line the completion block starts on) through the model, chunk by chunk:
  // each chunk continues from the state the earlier ones left (window keys, canon tails, kept global
  // keys), as ByteModel::hidden_after does. Starts afresh on every call.
  void prefill(std::string_view prompt);
  // The completion block with the greedy answer for every key (model::answer_queries_bytes's protocol).
  std::string answer(int hops, bool cot, const std::vector<std::string>& keys);
  // Hidden states [1, n, dim] of `text` continuing the prompt, read as answer() reads it. Context parallel:
  // every rank calls it; the last rank gets them, the others an undefined tensor.
  torch::Tensor hidden_after(std::string_view text);

  const model::ByteCache& cache() const { return cache_; }
  const ByteEngineStats& stats() const { return stats_; }

 private:
  // Sets the net's reads for a phase (prefill: prefill_window and the block options; answers: the block
  // options only) until the returned guard is gone.
  struct Reads {
    explicit Reads(model::ByteModel n) : net(std::move(n)) {}
    Reads(const Reads&) = delete;
    Reads& operator=(const Reads&) = delete;
    ~Reads();
    model::ByteModel net;
  };
  Reads reads_for(bool prefill);
  void drop_ungated(std::int64_t chunk_length);
  void stream(std::string_view text);  // extends cache_ chunk by chunk
  // Moves every global block's keys and values to host memory once they pass options_.device_bytes.
  void spill();
  // A global block's read of its spilled keys (all before q), a device-sized slice at a time.
  model::RemoteRead read_spilled(std::size_t block, const torch::Tensor& q) const;
  // Runs `work` with the model's global blocks also reading the spilled keys and (context parallel) the
  // other ranks' keys; with neither possible it runs the model as it is.
  void with_reads(const std::function<void()>& work);
  // Context parallel: rank `driver` runs the model while the others serve its remote reads until it is done.
  void prefill_sharded(std::string_view prompt);
  std::string answer_sharded(int hops, bool cot, const std::vector<std::string>& keys);
  void serve_reads(int driver);
  model::RemoteRead remote_read(int driver, std::size_t block, const torch::Tensor& q);
  void drive(const std::function<void()>& work);

  dist::ProcessGroup* group_ = nullptr;

  model::ByteModel net_;
  torch::Device device_;
  ByteEngineOptions options_;
  model::ByteCache cache_;
  struct Spilled {
    torch::Tensor keys, values;  // [1, H, n, padded head dim], host
  };
  std::vector<std::vector<Spilled>> spilled_;  // per block, in prompt order
  ByteEngineStats stats_;
};

}  // namespace hashhop::engine
