// The engine across ranks (engine.h, docs/distributed.md): shards of the prompt, the boundary-state check,
// cross-boundary gate merges, the gathered background and the broadcast lookups. Tests: tests/dist.
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "hashhop/dist/process_group.h"
#include "hashhop/dist/wire.h"
#include "hashhop/engine/engine.h"
#include "hashhop/model/inference.h"

namespace hashhop::engine {
namespace {

using dist::Reader;
using dist::Writer;

constexpr std::uint64_t kNoRun = std::numeric_limits<std::uint64_t>::max() - 2;  // ids at or above: no run yet

// A scan id relative to the scan's run counter, so states reached from different starts compare.
std::uint64_t relative(std::uint64_t id, std::uint64_t completed) { return id >= kNoRun ? id : completed - id; }

constexpr char kLookup = 'L', kDone = 'D';

}  // namespace

// One rank's answer to a lookup (global ids, values, gates); rank 0 merges them in rank order.
std::string Engine::encode_found(const std::vector<Found>& found) {
  Writer w;
  for (const auto& f : found) {
    w.put<std::uint64_t>(f.total);
    w.put<std::uint64_t>(f.ids.size());
    for (std::size_t c = 0; c < f.ids.size(); ++c) {
      w.put(f.ids[c]);
      w.put_string(f.values[c]);
      w.put(f.log_gates[c]);
    }
  }
  return w.take();
}

Shard shard_of(std::uint64_t total, int rank, int ranks, std::uint64_t halo_bytes) {
  Shard s;
  const auto r = static_cast<unsigned __int128>(rank), n = static_cast<unsigned __int128>(ranks);
  s.begin = static_cast<std::uint64_t>(r * total / n);
  s.end = static_cast<std::uint64_t>((r + 1) * total / n);
  s.halo_begin = s.begin - std::min(s.begin, halo_bytes);
  return s;
}

Engine::Engine(model::HashHopTransformer model, dist::ProcessGroup& group, std::uint64_t prompt_bytes, EngineOptions options)
    : Engine(std::move(model), options) {
  group_ = &group;
  prompt_bytes_ = prompt_bytes;
  shard_ = shard_of(prompt_bytes, group.rank(), group.size(), options_.halo_bytes);
  state_.position = shard_.halo_begin;  // positions are the prompt's (the dropped sample hashes them)
  if (shard_.halo_begin == shard_.begin) start_state_ = scan_state(true);
}

// The scan state without the run counter (ids relative to it): what must agree at a boundary.
std::string Engine::scan_state(bool with_letters) const {
  Writer w;
  // Field by field: the struct's padding bytes are not part of the state.
  const model::LexState& lex = state_;
  for (const int field : {lex.open_run_len, lex.eq_in_line, lex.quotes_in_line, lex.hops, lex.cot, lex.header_field, lex.last_word_len})
    w.put(field);
  w.put_string(std::string_view(lex.last_word, sizeof lex.last_word));
  w.put(lex.position);
  w.put(relative(prev_.id, state_.completed_runs));
  w.put(relative(last_.id, state_.completed_runs));
  w.put(has_entry_);
  w.put(has_entry_ ? relative(last_entry_prev_, state_.completed_runs) : 0);
  w.put(has_entry_ ? relative(last_entry_last_, state_.completed_runs) : 0);
  if (with_letters) {
    w.put_string(prev_.letters);
    w.put_string(last_.letters);
    w.put_string(open_letters_);
  }
  return w.take();
}

void Engine::set_final_state(const std::string& state, std::uint64_t completed_runs) {
  Reader r(state);
  for (int* field : {&state_.open_run_len, &state_.eq_in_line, &state_.quotes_in_line, &state_.hops, &state_.cot,
                     &state_.header_field, &state_.last_word_len})
    *field = r.get<int>();
  const std::string word = r.get_string();
  std::memcpy(state_.last_word, word.data(), sizeof state_.last_word);
  state_.position = r.get<std::uint64_t>();
  state_.completed_runs = completed_runs;
  const auto absolute = [&](std::uint64_t rel) { return rel >= kNoRun ? rel : completed_runs - rel; };
  prev_.id = absolute(r.get<std::uint64_t>());
  last_.id = absolute(r.get<std::uint64_t>());
  has_entry_ = r.get<bool>();
  last_entry_prev_ = absolute(r.get<std::uint64_t>());
  last_entry_last_ = absolute(r.get<std::uint64_t>());
  prev_.letters = r.get_string();
  last_.letters = r.get_string();
  open_letters_ = r.get_string();
}

void Engine::feed_shard(std::string_view text) {
  if (finished_) throw std::logic_error("Engine::prefill: the prompt was finished (finish_prompt)");
  const std::uint64_t at = fed_;
  fed_ += text.size();
  // The part of [at, fed_) inside [halo_begin, begin) is scanned without recording, the part inside
  // [begin, end) recorded, in chunks of at most chunk_bytes.
  const auto part = [&](std::uint64_t from, std::uint64_t to, bool record) {
    from = std::max(from, at), to = std::min(to, fed_);
    for (std::uint64_t b = from; b < to; b += options_.chunk_bytes)
      scan(text.substr(b - at, std::min<std::uint64_t>(options_.chunk_bytes, to - b)), record);
    if (record && to > from) stats_.bytes += to - from;
  };
  part(shard_.halo_begin, shard_.begin, false);
  if (at <= shard_.begin && shard_.begin < fed_ && start_state_.empty() && shard_.halo_begin < shard_.begin) {
    start_state_ = scan_state(true);  // what the halo says the state is at the shard's first byte
    start_runs_ = state_.completed_runs;
    recent_runs_.clear();  // those ids map to nothing stored here
  }
  part(shard_.begin, shard_.end, true);
}

void Engine::finish_prompt() {
  if (group_ == nullptr) throw std::logic_error("Engine::finish_prompt: only for context-parallel engines");
  if (finished_) throw std::logic_error("Engine::finish_prompt: called twice");
  auto& group = *group_;
  const int ranks = group.size(), me = group.rank();
  // Every rank sees the same count, so all of them throw together.
  if (fed_ != prompt_bytes_)
    throw std::invalid_argument("context-parallel engine: prefill() saw " + std::to_string(fed_) + " bytes, the prompt has " +
                                std::to_string(prompt_bytes_) + " (every rank streams the whole prompt, and only it)");
  if (start_state_.empty()) start_state_ = scan_state(true), start_runs_ = state_.completed_runs;  // an empty shard

  // Round 1: each rank's boundary states, counts, leading merges and dropped sample.
  Writer w;
  w.put_string(start_state_);
  w.put_string(scan_state(true));
  w.put<std::uint64_t>(state_.completed_runs - start_runs_);
  w.put<std::uint64_t>(store_.entries());
  w.put<std::uint64_t>(stats_.gated_positions);
  w.put<std::uint64_t>(dropped_seen_);
  w.put<std::uint64_t>(gates_.evaluations());
  w.put<std::uint64_t>(leading_merges_.size());
  for (const float g : leading_merges_) w.put(g);
  w.put<std::uint64_t>(dropped_stride_);
  w.put<std::uint64_t>(dropped_.size());
  for (const auto& d : dropped_) {
    w.put(d.position);
    w.put_string(d.key);
    w.put_string(d.value);
    w.put(d.log_gate);
  }
  const auto all = group.all_gather_bytes(w.take(), "the engine's shard summaries");
  struct Summary {
    std::string start, end;
    std::uint64_t runs = 0, entries = 0, gated = 0, dropped_seen = 0, evaluations = 0, dropped_stride = 1;
    std::vector<float> merges;
    std::vector<Dropped> dropped;
  };
  std::vector<Summary> s(static_cast<std::size_t>(ranks));
  for (int q = 0; q < ranks; ++q) {
    Reader r(all[static_cast<std::size_t>(q)]);
    auto& x = s[static_cast<std::size_t>(q)];
    x.start = r.get_string();
    x.end = r.get_string();
    x.runs = r.get<std::uint64_t>();
    x.entries = r.get<std::uint64_t>();
    x.gated = r.get<std::uint64_t>();
    x.dropped_seen = r.get<std::uint64_t>();
    x.evaluations = r.get<std::uint64_t>();
    x.merges.resize(r.get<std::uint64_t>());
    for (auto& g : x.merges) g = r.get<float>();
    x.dropped_stride = r.get<std::uint64_t>();
    x.dropped.resize(r.get<std::uint64_t>());
    for (auto& d : x.dropped) {
      d.position = r.get<std::uint64_t>();
      d.key = r.get_string();
      d.value = r.get_string();
      d.log_gate = r.get<float>();
    }
  }
  // Each shard was scanned from the state its halo reached; it is the one-process scan only if that
  // equals the state the previous shard ended in (then, by induction, every shard is).
  for (int q = 1; q < ranks; ++q)
    if (s[static_cast<std::size_t>(q)].start != s[static_cast<std::size_t>(q - 1)].end) {
      throw HaloTooShort("context-parallel engine: rank " + std::to_string(q) + "'s scan state at byte " +
                               std::to_string(shard_of(fed_, q, ranks, 0).begin) + " differs from where rank " +
                               std::to_string(q - 1) + " ended (the " + std::to_string(options_.halo_bytes) +
                               "-byte halo did not reach it; raise halo_bytes)");
    }

  // Global entry ids; gates of positions that merge into an entry held by an earlier rank, in order.
  std::uint64_t entries = 0, completed = 0;
  for (int q = 0; q < ranks; ++q) {
    if (q == me) entry_offset_ = entries;
    entries += s[static_cast<std::size_t>(q)].entries;
    completed += s[static_cast<std::size_t>(q)].runs;
  }
  for (int q = 1; q < ranks; ++q) {
    int owner = q - 1;
    while (owner >= 0 && s[static_cast<std::size_t>(owner)].entries == 0) --owner;
    if (owner == me && store_.entries() > 0)
      for (const float g : s[static_cast<std::size_t>(q)].merges) store_.merge_gate(static_cast<std::uint32_t>(store_.entries() - 1), g);
  }

  // Round 2: the evenly spaced entries of the background (global ids i·n/S), from the ranks holding them.
  const std::size_t samples = std::min<std::uint64_t>(entries, std::max<std::size_t>(1, options_.background_samples));
  Writer mine;
  std::vector<std::uint64_t> ids;
  for (std::size_t i = 0; i < samples; ++i) {
    const std::uint64_t e = static_cast<std::uint64_t>(static_cast<unsigned __int128>(i) * entries / samples);
    if (e < entry_offset_ || e >= entry_offset_ + store_.entries()) continue;
    const auto local = static_cast<std::uint32_t>(e - entry_offset_);
    mine.put(e);
    mine.put_string(store_.run(store_.key_run(local)));
    mine.put_string(store_.run(store_.value_run(local)));
    mine.put(store_.log_gate(local));
  }
  const auto picked = group.all_gather_bytes(mine.take(), "the engine's background entries");

  if (me == 0) {
    sample_ = {};
    sample_.entries = entries;
    for (const auto& bytes : picked) {  // rank order is id order
      for (Reader r(bytes); !r.done();) {
        sample_.ids.push_back(r.get<std::uint64_t>());
        sample_.keys.push_back(r.get_string());
        sample_.values.push_back(r.get_string());
        sample_.log_gates.push_back(r.get<float>());
      }
    }
    // The dropped sample of the whole prompt. One engine ends at the smallest power-of-two stride that
    // keeps fewer than 2S positions; no rank's stride exceeds it (a shard has fewer positions at any
    // stride), and each rank's sample holds every position at its own stride, so filtering their union
    // from the largest rank stride up gives one engine's sample.
    std::uint64_t stride = 1;
    for (const auto& x : s) {
      sample_.dropped_seen += x.dropped_seen;
      stride = std::max(stride, x.dropped_stride);
      for (const auto& d : x.dropped) sample_.dropped.push_back(d);
    }
    thin_dropped(sample_.dropped, stride);
    dropped_stride_ = stride;
    set_final_state(s.back().end, completed);
  }
  stats_.bytes = fed_;
  stats_.gated_positions = 0;
  dropped_seen_ = 0;
  for (const auto& x : s) stats_.gated_positions += x.gated, dropped_seen_ += x.dropped_seen;
  finished_ = true;
}

std::vector<Engine::Found> Engine::lookup(const std::vector<std::string>& asked) {
  if (group_ == nullptr) return local_lookup(asked);
  Writer w;
  w.put(kLookup);
  w.put<std::uint64_t>(asked.size());
  for (const auto& a : asked) w.put_string(a);
  std::string request = w.take();
  group_->broadcast_bytes(request, 0, "a lookup");
  const auto all = group_->all_gather_bytes(encode_found(local_lookup(asked)), "the lookup's entries");
  // Rank order is prompt order: concatenated and cut at max_candidates, as one store's find() returns them.
  std::vector<Found> merged(asked.size());
  for (const auto& bytes : all) {
    Reader r(bytes);
    for (auto& m : merged) {
      m.total += r.get<std::uint64_t>();
      const auto n = r.get<std::uint64_t>();
      for (std::uint64_t c = 0; c < n; ++c) {
        const auto id = r.get<std::uint64_t>();
        auto value = r.get_string();
        const auto gate = r.get<float>();
        if (m.ids.size() >= options_.max_candidates) continue;
        m.ids.push_back(id);
        m.values.push_back(std::move(value));
        m.log_gates.push_back(gate);
      }
    }
  }
  return merged;
}

void Engine::serve() {
  if (group_ == nullptr || group_->rank() == 0) throw std::logic_error("Engine::serve: for context-parallel ranks other than 0");
  if (!finished_) throw std::logic_error("Engine::serve: call finish_prompt() first");
  while (true) {
    std::string request;
    group_->broadcast_bytes(request, 0, "a lookup");
    Reader r(request);
    if (r.get<char>() == kDone) return;
    std::vector<std::string> asked(r.get<std::uint64_t>());
    for (auto& a : asked) a = r.get_string();
    group_->all_gather_bytes(encode_found(local_lookup(asked)), "the lookup's entries");
  }
}

void Engine::end_answers() {
  if (group_ == nullptr || group_->rank() != 0) throw std::logic_error("Engine::end_answers: for context-parallel rank 0");
  std::string done(1, kDone);
  group_->broadcast_bytes(done, 0, "the end of the answers");
}

std::unique_ptr<Engine> prefill_sharded(model::HashHopTransformer model, const std::vector<std::string_view>& pieces,
                                        EngineOptions options, dist::ProcessGroup& group) {
  std::uint64_t total = 0;
  for (const auto piece : pieces) total += piece.size();
  for (;;) {
    auto engine = std::make_unique<Engine>(model, group, total, options);
    for (const auto piece : pieces) engine->prefill(piece);
    try {
      engine->finish_prompt();
      return engine;
    } catch (const HaloTooShort&) {
      if (options.halo_bytes >= total) throw;  // cannot happen: a halo from byte 0 scans what one engine scans
      options.halo_bytes = static_cast<std::size_t>(std::min<std::uint64_t>(total, std::max<std::uint64_t>(std::uint64_t{options.halo_bytes} * 8, 4096)));
    }
  }
}

std::string answer_queries(model::HashHopTransformer& model, std::string_view prompt, int hops, bool cot,
                           const std::vector<std::string>& keys, const EngineOptions& options, dist::ProcessGroup& group) {
  const auto sharded = prefill_sharded(model, {prompt, "\n"}, options, group);
  auto& engine = *sharded;
  if (group.rank() != 0) {
    engine.serve();
    return "";
  }
  const auto answers =
      engine.answer(model::query_prefixes(hops, cot, keys), model::answer_byte_limit(model->config(), hops, cot));
  engine.end_answers();
  return model::completion_text(hops, cot, keys, answers);
}

}  // namespace hashhop::engine
