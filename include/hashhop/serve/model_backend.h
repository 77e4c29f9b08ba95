// The model behind `hashhop serve`: either family, loaded once, answering one HashHop query at a time
// (a mutex serializes model calls) with a prefix cache of prefilled prompts. Torch stays in the .cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "hashhop/serve/hashhop_prompt.h"

namespace hashhop::dist {
class ProcessGroup;
}

namespace hashhop::serve {

struct BackendOptions {
  std::string device = "cpu";            // cpu, cuda or cuda:N (resolved by the caller)
  std::function<bool(std::size_t)> use_engine;  // lexer family: engine for a prompt of this many bytes?
  std::size_t chunk_bytes = 1 << 16;     // dense path: bytes per forward pass
  bool gated_only = false;               // dense path: keep only gated positions
  std::size_t cache_entries = 8;         // prefilled prompts kept (least recently used goes first)
  std::uint64_t cache_bytes = 8000000000;  // and at most this many bytes of them (the newest always stays)
  // Context parallel (serve --nproc, lexer family): every rank holds a backend over this group, each prompt
  // goes through the engine sharded over the ranks, and every rank keeps the same prompts (cache_entries
  // only; cache_bytes is not applied: the ranks' shards differ in size). Rank 0 answers; the others follow().
  dist::ProcessGroup* group = nullptr;
  double heartbeat_seconds = 30;  // rank 0's idle message: the others' wait for the next request never times out
};

struct CacheStats {
  std::uint64_t hits = 0, misses = 0, evictions = 0, entries = 0;
  std::uint64_t bytes = 0;     // held by the entries (ByteCache::bytes(), PromptMemory tensors, engine store)
  double prefill_seconds = 0;  // spent prefilling (what the hits saved, once per hit)
};

class ModelBackend {
 public:
  ModelBackend(const std::string& model_dir, BackendOptions options);
  ~ModelBackend();
  ModelBackend(const ModelBackend&) = delete;
  ModelBackend& operator=(const ModelBackend&) = delete;

  // Whether the model can answer this query (hops, key length); throws std::invalid_argument why not.
  // Cheap and thread-safe: called before a request waits for the model.
  void check(const RawQuery& query) const;
  // The model's greedy answer (up to its closing quote, which is not included). Thread-safe (serialized).
  std::string answer(const RawQuery& query);

  // Context parallel, ranks other than 0: prefill and answer what rank 0 asks until rank 0 calls finish().
  void follow();
  // Context parallel, rank 0: releases the other ranks from follow(); once, after the server stopped.
  void finish();

  CacheStats cache_stats() const;
  std::string family() const;  // "lexer" or "bytes"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hashhop::serve
