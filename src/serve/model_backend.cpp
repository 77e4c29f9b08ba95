// `hashhop serve`'s model (see model_backend.h). The prefix cache maps SHA-256(prompt body) to what the
// answer path needs from the prompt: for the lexer family the dense path's PromptMemory (encoded memory,
// lexer state, run carry) or the engine's prefilled Engine (its hash index); for the byte family the
// ByteCache of every block (keys, values, canon tails). A query then costs only its own decoding.
// Tested by tests/python/test_serve.py.
#include "hashhop/serve/model_backend.h"

#include <openssl/evp.h>

#include <chrono>
#include <limits>
#include <list>
#include <mutex>
#include <stdexcept>
#include <variant>

#include <torch/torch.h>

#include "hashhop/engine/engine.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/train/byte_config.h"
#include "hashhop/model/byte_inference.h"
#include "hashhop/train/checkpoint.h"
#include "hashhop/model/inference.h"
#include "hashhop/train/byte_trainer.h"

namespace hashhop::serve {
namespace {

std::string sha256(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr) != 1) throw std::runtime_error("SHA-256 failed");
  return std::string(reinterpret_cast<const char*>(digest), size);
}

using Prefilled = std::variant<model::PromptMemory, std::unique_ptr<engine::Engine>, model::ByteCache>;

std::uint64_t tensor_bytes(const torch::Tensor& t) {
  return t.defined() ? static_cast<std::uint64_t>(t.numel()) * t.element_size() : 0;
}

// What an entry holds (device or host memory), for --cache-bytes.
std::uint64_t entry_bytes(const Prefilled& entry) {
  if (const auto* memory = std::get_if<model::PromptMemory>(&entry))
    return tensor_bytes(memory->memory.keys) + tensor_bytes(memory->memory.log_gate) + tensor_bytes(memory->memory.value_rows) +
           tensor_bytes(memory->memory.run_values);
  if (const auto* cache = std::get_if<model::ByteCache>(&entry)) return static_cast<std::uint64_t>(cache->bytes());
  return std::get<std::unique_ptr<engine::Engine>>(entry)->stats().store.total();
}

struct CacheEntry {
  std::string key;  // SHA-256 of the prompt body
  std::shared_ptr<Prefilled> value;
  std::uint64_t bytes = 0;
};

}  // namespace

struct ModelBackend::Impl {
  BackendOptions options;
  torch::Device device{torch::kCPU};
  bool bytes_family = false;
  train::LoadedModel lexer;
  train::LoadedByteModel bytes;
  model::ModelConfig limits;  // what check() holds queries to

  std::mutex mutex;  // one model call at a time; guards the cache
  std::list<CacheEntry> cache;  // most recent first
  std::uint64_t cache_bytes = 0;  // sum of the entries' bytes
  mutable std::mutex stats_mutex;  // its own lock: /health must not wait for a long prefill
  CacheStats stats;
  void count(const std::function<void(CacheStats&)>& change) {
    std::lock_guard lock(stats_mutex);
    change(stats);
  }

  std::shared_ptr<Prefilled> prefill(std::string_view body) {
    const std::string key = sha256(body);
    for (auto it = cache.begin(); it != cache.end(); ++it) {
      if (it->key != key) continue;
      cache.splice(cache.begin(), cache, it);
      count([](CacheStats& s) { ++s.hits; });
      return cache.front().value;
    }
    count([](CacheStats& s) { ++s.misses; });
    const auto start = std::chrono::steady_clock::now();
    auto entry = std::make_shared<Prefilled>();
    std::string text(body);
    text += '\n';  // the prompt ends where the completion starts
    if (bytes_family) {
      entry->emplace<model::ByteCache>(model::prefill_prompt(bytes.net, body, device));
    } else if (options.use_engine && options.use_engine(body.size())) {
      auto e = std::make_unique<engine::Engine>(lexer.model);
      e->prefill(text);
      entry->emplace<std::unique_ptr<engine::Engine>>(std::move(e));
    } else {
      model::PromptOptions po;
      po.chunk_bytes = options.chunk_bytes;
      po.gated_only = options.gated_only;
      entry->emplace<model::PromptMemory>(model::encode_prompt(lexer.model, text, po));
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::uint64_t size = entry_bytes(*entry);
    cache.push_front({key, entry, size});
    cache_bytes += size;
    // Least recently used first out, by count and by bytes; the new entry always stays (this request
    // needs it, and a prompt over --cache-bytes must still be answered).
    std::uint64_t evicted = 0;
    while (cache.size() > 1 && (cache.size() > std::max<std::size_t>(1, options.cache_entries) || cache_bytes > options.cache_bytes)) {
      cache_bytes -= cache.back().bytes;
      cache.pop_back();
      ++evicted;
    }
    count([&](CacheStats& s) {
      s.prefill_seconds += seconds;
      s.evictions += evicted;
      s.entries = cache.size();
      s.bytes = cache_bytes;
    });
    return entry;
  }
};

ModelBackend::ModelBackend(const std::string& model_dir, BackendOptions options) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.options = std::move(options);
  m.device = m.options.device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  m.bytes_family = train::is_byte_config(model_dir + "/config.json");
  if (m.bytes_family) {
    m.bytes = train::load_byte_model(model_dir, m.device);
    m.bytes.net->eval();
    // As `hashhop eval` holds the byte family: no run-length cap, no-CoT hops up to kMaxHopsFeature.
    m.limits.max_hops = model::kMaxHopsFeature;
    m.limits.max_run = std::numeric_limits<int>::max();
  } else {
    m.lexer = train::load_model(model_dir, m.device);
    m.limits = m.lexer.config.model;
  }
}

ModelBackend::~ModelBackend() = default;

void ModelBackend::check(const RawQuery& query) const {
  model::check_query_hops(impl_->limits, query.hops, query.cot);
  model::check_query_keys(impl_->limits, {query.key});
}

std::string ModelBackend::answer(const RawQuery& query) {
  auto& m = *impl_;
  check(query);
  std::lock_guard lock(m.mutex);
  torch::NoGradGuard no_grad;
  const auto entry = m.prefill(query.body);
  if (m.bytes_family) {
    // The byte family reads the query from header + "KEY = '" (answered lines before it are not passed on).
    const auto& cache = std::get<model::ByteCache>(*entry);
    const std::string completion = model::answer_queries_bytes(m.bytes.net, cache, query.hops, query.cot, {query.key}, m.device);
    const auto answers = bench::parse_answer_lines(completion);
    const auto found = answers.find(query.key);
    return found == answers.end() ? std::string() : found->second;
  }
  const int max_bytes = model::answer_byte_limit(m.limits, query.hops, query.cot);
  if (auto* memory = std::get_if<model::PromptMemory>(entry.get()))
    return model::greedy_answers(m.lexer.model, *memory, {query.completion}, max_bytes).at(0);
  return std::get<std::unique_ptr<engine::Engine>>(*entry)->answer({query.completion}, max_bytes).at(0);
}

CacheStats ModelBackend::cache_stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

std::string ModelBackend::family() const { return impl_->bytes_family ? "bytes" : "lexer"; }

}  // namespace hashhop::serve
