// `hashhop serve`'s model (see model_backend.h). The prefix cache maps SHA-256(prompt body) to what the
// answer path needs from the prompt: for the lexer family the dense path's PromptMemory (encoded memory,
// lexer state, run carry) or the engine's prefilled Engine (its hash index); for the byte family the
// ByteCache of every block (keys, values, canon tails). A query then costs only its own decoding.
// Context parallel (--nproc): rank 0 broadcasts each request's command (the prompt's key, and the prompt when the
// ranks do not hold it yet), every rank prefills its shard, and rank 0 answers while the others serve its
// lookups. Tested by tests/python/test_serve.py.
#include "hashhop/serve/model_backend.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <list>
#include <mutex>
#include <thread>
#include <stdexcept>
#include <variant>

#include <torch/torch.h>

#include "hashhop/dist/process_group.h"
#include "hashhop/dist/wire.h"
#include "hashhop/engine/byte_engine.h"
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

using Prefilled = std::variant<model::PromptMemory, std::unique_ptr<engine::Engine>, model::ByteCache,
                               std::unique_ptr<engine::ByteEngine>>;

std::uint64_t tensor_bytes(const torch::Tensor& t) {
  return t.defined() ? static_cast<std::uint64_t>(t.numel()) * t.element_size() : 0;
}

// What an entry holds (device or host memory), for --cache-bytes.
std::uint64_t entry_bytes(const Prefilled& entry) {
  if (const auto* memory = std::get_if<model::PromptMemory>(&entry))
    return tensor_bytes(memory->memory.keys) + tensor_bytes(memory->memory.log_gate) + tensor_bytes(memory->memory.value_rows) +
           tensor_bytes(memory->memory.run_values);
  if (const auto* cache = std::get_if<model::ByteCache>(&entry)) return static_cast<std::uint64_t>(cache->bytes());
  if (const auto* bytes = std::get_if<std::unique_ptr<engine::ByteEngine>>(&entry))
    return static_cast<std::uint64_t>((*bytes)->stats().cache_bytes);  // every rank's shard
  return std::get<std::unique_ptr<engine::Engine>>(entry)->stats().store.total();
}

// Context parallel: a request as rank 0 broadcasts it. 'P' (prefill the prompt, then answer) or 'A' (a prompt
// every rank holds), the prompt's SHA-256, the query (the byte family's ranks all decode it), then the
// prompt itself after 'P'.
struct Request {
  char op = '?';
  std::string sha;
  std::uint32_t hops = 0;
  bool cot = false;
  std::string key;
  std::string_view body;
};

std::string encode(const Request& r) {
  dist::Writer w;
  w.put(r.op);
  w.put_string(r.sha);
  w.put(r.hops);
  w.put(r.cot);
  w.put_string(r.key);
  w.put_string(r.body);
  return w.take();
}

// `text` must outlive the result (its body views it); throws on anything rank 0 would not have sent.
Request decode(std::string_view text, const std::string& who) {
  Request r;
  try {
    dist::Reader in(text);
    r.op = in.get<char>();
    r.sha = in.get_string();
    r.hops = in.get<std::uint32_t>();
    r.cot = in.get<bool>();
    r.key = in.get_string();
    r.body = in.get_view();
    if ((r.op != 'P' && r.op != 'A') || !in.done()) throw std::runtime_error("bad request");
  } catch (const std::runtime_error&) {
    throw std::runtime_error(who + ": unreadable request from rank 0");
  }
  return r;
}

// The byte family's answer to its one query: the value of its line in the completion ("" when none).
std::string answer_of(const std::string& completion, const std::string& key) {
  const auto answers = bench::parse_answer_lines(completion);
  const auto found = answers.find(key);
  return found == answers.end() ? std::string() : found->second;
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

  // Context parallel: rank 0's commands to the others, one broadcast each: a Request ('P': prefill the prompt
  // and answer; 'A': a prompt every rank holds, answer); 'H': idle, nothing to do; 'S': stop.
  std::condition_variable wake;  // the heartbeat's sleep, cut short by finish()
  std::thread heartbeat;
  bool finished = false;
  std::chrono::steady_clock::time_point last_command = std::chrono::steady_clock::now();
  void send(std::string command) {
    options.group->broadcast_bytes(command, 0, "request for the other ranks");
    last_command = std::chrono::steady_clock::now();
  }
  bool holds(const std::string& key) const {
    for (const auto& entry : cache)
      if (entry.key == key) return true;
    return false;
  }
  // After each request's prefill every rank tells the others whether it failed, so an error that every rank
  // raises at the same point (a prompt the engine cannot shard) costs that request only: the ranks drop it
  // together and serve the next. Ranks that disagree are out of step, and the group with them.
  // Returns the first rank's error ("" when none failed).
  std::string agree(const std::string& error) {
    const auto all = options.group->all_gather_bytes(error.empty() ? "K" : "E" + error, "the request's outcome");
    std::string first;
    int failed = 0, failed_rank = -1;
    for (std::size_t q = 0; q < all.size(); ++q) {
      if (all[q].empty() || all[q][0] != 'E') continue;
      if (failed++ == 0) first = all[q].substr(1), failed_rank = static_cast<int>(q);
    }
    if (failed != 0 && failed != options.group->size())
      throw dist::GroupError("rank " + std::to_string(options.group->rank()) + " of " + std::to_string(options.group->size()) +
                             ": the ranks are out of step: rank " + std::to_string(failed_rank) + " failed a request the others served (" +
                             first + ")");
    return first;
  }
  // A failed collective leaves the group unusable and the other ranks exiting: so does rank 0, in one line.
  [[noreturn]] static void group_failed(const std::exception& e) {
    std::fprintf(stderr, "hashhop serve: error: %s\n", e.what());
    std::fflush(stderr);
    std::_Exit(1);
  }

  std::shared_ptr<Prefilled> prefill(std::string_view body) { return prefill(sha256(body), body); }
  std::shared_ptr<Prefilled> prefill(const std::string& key, std::string_view body) {
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
    if (bytes_family && options.group != nullptr) {
      auto e = std::make_unique<engine::ByteEngine>(bytes.net, device, *options.group);
      e->prefill(body);
      entry->emplace<std::unique_ptr<engine::ByteEngine>>(std::move(e));
    } else if (bytes_family) {
      entry->emplace<model::ByteCache>(model::prefill_prompt(bytes.net, body, device));
    } else if (options.group != nullptr) {
      entry->emplace<std::unique_ptr<engine::Engine>>(engine::prefill_sharded(lexer.model, {text}, {}, *options.group));
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
    // Context parallel: by count only, so that every rank drops the same prompts.
    const auto over_bytes = [&] { return options.group == nullptr && cache_bytes > options.cache_bytes; };
    while (cache.size() > 1 && (cache.size() > std::max<std::size_t>(1, options.cache_entries) || over_bytes())) {
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
  m.device = torch::Device(m.options.device);  // cpu, cuda, cuda:N
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
  if (m.options.group != nullptr && m.options.group->rank() == 0) {
    // Rank 0's heartbeat: while no request comes, an empty command every heartbeat_seconds keeps the other
    // ranks' wait (bounded by --dist-timeout) from expiring. It takes the model's mutex like a request.
    m.heartbeat = std::thread([&m] {
      const auto period = std::chrono::duration<double>(std::max(0.05, m.options.heartbeat_seconds));
      const auto every = std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
      std::unique_lock lock(m.mutex);
      while (!m.finished) {
        // A period after the last command, whatever sent it: the others never wait longer than that.
        m.wake.wait_until(lock, m.last_command + every);
        if (m.finished || std::chrono::steady_clock::now() - m.last_command < every) continue;
        try {
          m.send("H");
        } catch (const std::exception& e) {
          Impl::group_failed(e);
        }
      }
    });
  }
}

ModelBackend::~ModelBackend() {
  if (impl_->options.group != nullptr && impl_->options.group->rank() == 0) {
    try {
      finish();
    } catch (const std::exception&) {  // a destructor must not throw; the others time out and exit
    }
  }
}

void ModelBackend::finish() {
  auto& m = *impl_;
  if (m.options.group == nullptr || m.options.group->rank() != 0) return;
  std::exception_ptr failed;  // a dead peer fails the send: the heartbeat thread must still be joined
  {
    std::lock_guard lock(m.mutex);
    if (!m.finished) {
      m.finished = true;
      try {
        m.send("S");
      } catch (...) {
        failed = std::current_exception();
      }
    }
  }
  m.wake.notify_all();
  if (m.heartbeat.joinable()) m.heartbeat.join();
  if (failed) std::rethrow_exception(failed);
}

void ModelBackend::follow() {
  auto& m = *impl_;
  if (m.options.group == nullptr || m.options.group->rank() == 0) throw std::logic_error("follow(): context parallel ranks other than 0 only");
  const auto who = "rank " + std::to_string(m.options.group->rank());
  torch::NoGradGuard no_grad;
  for (;;) {
    std::string command;
    m.options.group->broadcast_bytes(command, 0, "the next request from rank 0");
    const char op = command.empty() ? '?' : command[0];
    if (op == 'H') continue;
    if (op == 'S') return;
    const Request request = decode(command, who);
    if (request.op == 'A' && !m.holds(request.sha)) throw std::runtime_error(who + ": its prefix cache is out of step with rank 0's");
    std::lock_guard lock(m.mutex);
    std::shared_ptr<Prefilled> entry;
    std::string error;
    try {
      entry = m.prefill(request.sha, request.body);
    } catch (const dist::GroupError&) {
      throw;
    } catch (const std::exception& e) {  // rank 0 has it too and replies with it (agree)
      error = e.what();
    }
    if (!m.agree(error).empty()) continue;
    if (auto* bytes = std::get_if<std::unique_ptr<engine::ByteEngine>>(entry.get())) {
      try {
        (*bytes)->answer(static_cast<int>(request.hops), request.cot, {request.key});  // the last rank decodes; all read
      } catch (const dist::GroupError&) {
        throw;
      } catch (const std::exception&) {  // the decoding rank's error, on every rank: rank 0 replies with it
      }
    } else
      std::get<std::unique_ptr<engine::Engine>>(*entry)->serve();
  }
}

void ModelBackend::check(const RawQuery& query) const {
  model::check_query_hops(impl_->limits, query.hops, query.cot);
  model::check_query_keys(impl_->limits, {query.key});
}

std::string ModelBackend::answer(const RawQuery& query) {
  auto& m = *impl_;
  check(query);
  std::lock_guard lock(m.mutex);
  torch::NoGradGuard no_grad;
  if (m.options.group != nullptr) {
    // Only a failed collective ends the server. A prefill error comes from every rank at once (agree) and an
    // answer error from rank 0 alone, after which end_answers() still releases the others: either is this
    // request's reply (400 or 500, as one process would give it) and the ranks go on together.
    const int max_bytes = model::answer_byte_limit(m.limits, query.hops, query.cot);
    std::exception_ptr failed;
    try {
      const std::string key = sha256(query.body);
      const bool held = m.holds(key);
      m.send(encode({held ? 'A' : 'P', key, static_cast<std::uint32_t>(query.hops), query.cot, query.key,
                     held ? std::string_view() : query.body}));
      std::shared_ptr<Prefilled> entry;
      std::string error;
      try {
        entry = m.prefill(key, query.body);
      } catch (const dist::GroupError&) {
        throw;
      } catch (const std::exception& e) {
        failed = std::current_exception();
        error = e.what();
      }
      m.agree(error);
      if (!failed && m.bytes_family) {  // every rank decodes with the last one (no rank-0-only error path)
        auto& engine = *std::get<std::unique_ptr<engine::ByteEngine>>(*entry);
        return answer_of(engine.answer(query.hops, query.cot, {query.key}), query.key);
      }
      if (!failed) {
        auto& engine = *std::get<std::unique_ptr<engine::Engine>>(*entry);
        std::string answer;
        try {
          answer = engine.answer({query.completion}, max_bytes).at(0);
        } catch (const dist::GroupError&) {
          throw;
        } catch (const std::exception&) {
          failed = std::current_exception();
        }
        engine.end_answers();
        if (!failed) return answer;
      }
    } catch (const dist::GroupError& e) {
      Impl::group_failed(e);
    }
    std::rethrow_exception(failed);
  }
  const auto entry = m.prefill(query.body);
  if (m.bytes_family) {
    // The byte family reads the query from header + "KEY = '" (answered lines before it are not passed on).
    const auto& cache = std::get<model::ByteCache>(*entry);
    return answer_of(model::answer_queries_bytes(m.bytes.net, cache, query.hops, query.cot, {query.key}, m.device), query.key);
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
