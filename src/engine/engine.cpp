// Engine (see engine.h): the scan keeps reference points in a ReferenceStore; answering decodes
// greedily like the dense path, with each hop reading the entries an index lookup returns.
#include "hashhop/engine/engine.h"

#include <cctype>

#include <algorithm>
#include <cmath>
#include <limits>

#include "hashhop/bench/magic_format.h"
#include "hashhop/core/mix64.h"
#include "hashhop/dist/process_group.h"
#include "hashhop/model/inference.h"

namespace hashhop::engine {
namespace {

constexpr int kSymbols = model::kLetters + 1;

// Letters of the runs a lexed chunk refers to, by run-table index (0 and 1: the two completed runs
// carried in; 2 + r: the chunk's run r, which continues the carried open run when the chunk starts
// inside one).
class ChunkRuns {
 public:
  ChunkRuns(const model::LexedChunk& chunk, std::string_view text, std::string_view prev, std::string_view last,
            std::string_view open)
      : text_(text), prev_(prev), last_(last), open_(chunk.first_run_continues ? open : std::string_view()),
        begin_(static_cast<std::size_t>(chunk.n_runs), 0), end_(static_cast<std::size_t>(chunk.n_runs), 0) {
    std::vector<bool> seen(static_cast<std::size_t>(chunk.n_runs), false);
    for (std::size_t t = 0; t < chunk.size(); ++t) {
      const int r = chunk.run_of[t];
      if (r < 0) continue;
      if (!seen[r]) begin_[r] = t, seen[r] = true;
      end_[r] = t + 1;
    }
  }

  std::string_view letters(int index) {
    if (index == 0) return prev_;
    if (index == 1) return last_;
    const auto r = static_cast<std::size_t>(index - 2);
    const auto part = text_.substr(begin_[r], end_[r] - begin_[r]);
    if (r != 0 || open_.empty()) return part;
    scratch_.assign(open_);
    scratch_.append(part);
    return scratch_;
  }

 private:
  std::string_view text_, prev_, last_, open_;
  std::vector<std::size_t> begin_, end_;
  std::string scratch_;
};

// One-hot run tables [runs, max_run·52] (the model's run_keys / run_values input).
torch::Tensor run_table(const std::vector<std::string_view>& runs, int max_run, const torch::TensorOptions& options) {
  const std::int64_t slots = static_cast<std::int64_t>(max_run) * model::kLetters;
  auto table = torch::zeros({static_cast<std::int64_t>(runs.size()), slots}, torch::kFloat32);
  auto cells = table.accessor<float, 2>();
  for (std::size_t r = 0; r < runs.size(); ++r)
    for (std::size_t i = 0; i < runs[r].size(); ++i) {
      const int letter = model::letter_index(static_cast<unsigned char>(runs[r][i]));
      if (letter >= 0) cells[static_cast<std::int64_t>(r)][model::letter_slot(static_cast<int>(i), letter, max_run)] += 1;
    }
  return table.to(options);
}

// The letters a read asks for next: per position in the run, the most likely symbol, up to "end".
std::vector<std::string> argmax_letters(const torch::Tensor& read, int max_run) {
  const auto symbols = read.view({read.size(0), max_run + 1, kSymbols}).argmax(-1).to(torch::kCPU).contiguous();
  const auto* s = symbols.data_ptr<std::int64_t>();
  std::vector<std::string> out(static_cast<std::size_t>(read.size(0)));
  for (std::size_t b = 0; b < out.size(); ++b)
    for (int i = 0; i < max_run; ++i) {
      const std::int64_t symbol = s[b * (max_run + 1) + i];
      if (symbol >= model::kLetters) break;
      out[b] += static_cast<char>(symbol < 26 ? 'a' + symbol : 'A' + (symbol - 26));
    }
  return out;
}

}  // namespace

Engine::Engine(model::HashHopTransformer model, EngineOptions options)
    : model_(std::move(model)), options_(options), gates_(model_),
      retriever_(attn::make_retriever(options_.retrieval, options_.retrieval_options)) {
  // Before any text the scan's runs are empty; their ids sit above every id a real run gets.
  prev_.id = std::numeric_limits<std::uint64_t>::max();
  last_.id = std::numeric_limits<std::uint64_t>::max() - 1;
  if (options_.chunk_bytes == 0) options_.chunk_bytes = 1;
}

void Engine::prefill(std::string_view text) {
  if (group_ != nullptr) return feed_shard(text);
  for (std::size_t begin = 0; begin < text.size(); begin += options_.chunk_bytes)
    scan(text.substr(begin, options_.chunk_bytes), true);
  stats_.bytes += text.size();
}

std::uint32_t Engine::stored_run(std::uint64_t id, std::string_view letters) {
  // Entries refer to the last few runs of the scan; a short list finds a run stored a moment ago.
  for (const auto& [scan_id, store_id] : recent_runs_)
    if (scan_id == id) return store_id;
  const std::uint32_t store_id = store_.add_run(letters);
  if (recent_runs_.size() == 4) recent_runs_.erase(recent_runs_.begin());
  recent_runs_.emplace_back(id, store_id);
  return store_id;
}

void Engine::scan(std::string_view text, bool record) {
  const std::uint64_t first_id = state_.completed_runs;  // scan id of the chunk's run 0
  const std::uint64_t first_position = state_.position;
  const auto chunk = model::lex_chunk(text, state_, model_->config().max_run);
  ChunkRuns runs(chunk, text, prev_.letters, last_.letters, open_letters_);
  auto run_id = [&](int index) { return index == 0 ? prev_.id : index == 1 ? last_.id : first_id + (index - 2); };

  thread_local std::vector<float> log_gates;
  gates_.log_gates(chunk, log_gates);
  const double threshold = std::log(options_.gate_threshold);
  const std::size_t max_dropped = 2 * std::max<std::size_t>(1, options_.background_samples);
  for (std::size_t t = 0; t < chunk.size(); ++t) {
    if (!(log_gates[t] > threshold)) {
      if (!record) continue;  // a halo only learns the state (the previous rank records these)
      ++dropped_seen_;
      const std::uint64_t position = first_position + t;
      if (!on_stride(position, dropped_stride_)) continue;
      dropped_.push_back({position, std::string(runs.letters(chunk.prev_run[t])), std::string(runs.letters(chunk.last_run[t])),
                          log_gates[t]});
      if (dropped_.size() >= max_dropped) thin_dropped(dropped_, dropped_stride_);  // full: double the stride
      continue;
    }
    const std::uint64_t key_id = run_id(chunk.prev_run[t]), value_id = run_id(chunk.last_run[t]);
    if (!record) {
      has_entry_ = true, newest_entry_local_ = false;
      last_entry_prev_ = key_id, last_entry_last_ = value_id;
      continue;
    }
    ++stats_.gated_positions;
    if (has_entry_ && key_id == last_entry_prev_ && value_id == last_entry_last_) {
      if (newest_entry_local_) store_.merge_gate(static_cast<std::uint32_t>(store_.entries() - 1), log_gates[t]);
      else leading_merges_.push_back(log_gates[t]);  // the entry is the previous shard's: finish_prompt() merges it there
      continue;
    }
    const std::uint32_t key_run = stored_run(key_id, runs.letters(chunk.prev_run[t]));
    const std::uint32_t value_run = stored_run(value_id, runs.letters(chunk.last_run[t]));
    store_.add_entry(key_run, value_run, log_gates[t]);
    has_entry_ = true, newest_entry_local_ = true;
    last_entry_prev_ = key_id;
    last_entry_last_ = value_id;
  }

  Run next_prev{run_id(chunk.end_prev_run), std::string(runs.letters(chunk.end_prev_run))};
  Run next_last{run_id(chunk.end_last_run), std::string(runs.letters(chunk.end_last_run))};
  std::string next_open = chunk.ends_in_run ? std::string(runs.letters(1 + chunk.n_runs)) : std::string();
  prev_ = std::move(next_prev);
  last_ = std::move(next_last);
  open_letters_ = std::move(next_open);
}

bool Engine::on_stride(std::uint64_t position, std::uint64_t stride) { return (core::mix64(position) & (stride - 1)) == 0; }

void Engine::thin_dropped(std::vector<Dropped>& sample, std::uint64_t& stride) const {
  const std::size_t max_dropped = 2 * std::max<std::size_t>(1, options_.background_samples);
  const auto off = [&](const Dropped& d) { return !on_stride(d.position, stride); };
  std::erase_if(sample, off);
  while (sample.size() >= max_dropped) {
    stride *= 2;
    std::erase_if(sample, off);
  }
}

Engine::BackgroundSample Engine::local_background() const {
  BackgroundSample sample;
  const std::size_t n = store_.entries();
  const std::size_t samples = std::min(n, std::max<std::size_t>(1, options_.background_samples));
  sample.entries = n;
  // Evenly spaced entries, each standing in for n / samples of them (exactly one when n <= samples).
  for (std::size_t i = 0; i < samples; ++i) {
    const auto e = static_cast<std::uint32_t>(i * n / samples);
    sample.ids.push_back(e);
    sample.keys.emplace_back(store_.run(store_.key_run(e)));
    sample.values.emplace_back(store_.run(store_.value_run(e)));
    sample.log_gates.push_back(store_.log_gate(e));
  }
  sample.dropped = dropped_;
  sample.dropped_seen = dropped_seen_;
  return sample;
}

const model::Memory& Engine::background() {
  if (background_built_at_ == stats_.bytes) return background_;
  const auto options = model_->parameters().front().options();
  const int max_run = model_->config().max_run;
  const BackgroundSample local = group_ == nullptr ? local_background() : BackgroundSample{};
  const BackgroundSample& sample = group_ == nullptr ? local : sample_;
  background_ids_ = sample.ids;
  std::vector<std::string_view> keys(sample.keys.begin(), sample.keys.end());
  std::vector<std::string_view> values(sample.values.begin(), sample.values.end());
  std::vector<float> gates;
  const std::size_t samples = sample.ids.size();
  const float entry_weight =
      samples > 0 ? static_cast<float>(std::log(static_cast<double>(sample.entries) / static_cast<double>(samples))) : 0.0f;
  for (const float g : sample.log_gates) gates.push_back(g + entry_weight);
  // Dropped positions: each sample stands for dropped_seen / (samples kept) of them.
  const float dropped_weight =
      sample.dropped.empty() ? 0.0f
                             : static_cast<float>(std::log(static_cast<double>(sample.dropped_seen) / static_cast<double>(sample.dropped.size())));
  for (const auto& d : sample.dropped) {
    keys.push_back(d.key);
    values.push_back(d.value);
    gates.push_back(d.log_gate + dropped_weight);
  }
  if (gates.empty()) {  // an empty prompt: one inert slot keeps the shapes valid
    keys.emplace_back();
    values.emplace_back();
    gates.push_back(-std::numeric_limits<float>::infinity());
  }
  const auto count = static_cast<std::int64_t>(gates.size());
  background_.keys = model_->run_keys(run_table(keys, max_run, options)).unsqueeze(0);
  background_.log_gate = torch::tensor(gates).to(options).view({1, count});
  background_.value_rows = torch::arange(count, options.dtype(torch::kInt64)).view({1, count});
  background_.run_values = model_->run_values(run_table(values, max_run, options)).unsqueeze(0);
  background_built_at_ = stats_.bytes;
  return background_;
}

std::vector<Engine::Found> Engine::local_lookup(const std::vector<std::string>& asked) const {
  std::vector<Found> found(asked.size());
  std::vector<std::uint32_t> entries;
  for (std::size_t b = 0; b < asked.size(); ++b) {
    entries.clear();
    found[b].total = store_.find(asked[b], entries, options_.max_candidates);
    for (const std::uint32_t e : entries) {
      found[b].ids.push_back(entry_offset_ + e);
      found[b].values.emplace_back(store_.run(store_.value_run(e)));
      found[b].log_gates.push_back(store_.log_gate(e));
    }
  }
  return found;
}

torch::Tensor Engine::read_candidates(int hop, const std::vector<std::string>& asked, const torch::Tensor& q,
                                      const model::Memory& completion, const torch::Tensor& completion_limit) {
  const auto options = model_->parameters().front().options();
  const int max_run = model_->config().max_run;
  const auto batch = static_cast<std::int64_t>(asked.size());
  const std::vector<Found> looked_up = lookup(asked);
  std::vector<std::vector<std::uint64_t>> found(asked.size());
  std::int64_t width = 1;  // candidates per row (a row without any reads one inert slot)
  for (std::size_t b = 0; b < asked.size(); ++b) {
    found[b] = looked_up[b].ids;
    const std::size_t n = looked_up[b].total;
    ++stats_.lookups;
    stats_.misses += n == 0;
    stats_.first_hop_misses += n == 0 && hop == 0;
    stats_.truncated += n > options_.max_candidates;
    width = std::max<std::int64_t>(width, static_cast<std::int64_t>(found[b].size()));
  }
  std::vector<std::string_view> key_letters(asked.begin(), asked.end());
  std::vector<std::string_view> value_letters(static_cast<std::size_t>(batch * width));
  std::vector<float> gates(static_cast<std::size_t>(batch * width), -std::numeric_limits<float>::infinity());
  for (std::size_t b = 0; b < found.size(); ++b)
    for (std::size_t c = 0; c < found[b].size(); ++c) {
      value_letters[b * width + c] = looked_up[b].values[c];
      gates[b * width + c] = looked_up[b].log_gates[c];
    }
  // Every candidate of a row has the asked letters as its key run, hence the same key.
  model::Memory candidates;
  candidates.keys = model_->run_keys(run_table(key_letters, max_run, options)).unsqueeze(1).expand({batch, width, -1});
  candidates.log_gate = torch::tensor(gates).to(options).view({batch, width});
  candidates.value_rows = torch::arange(width, options.dtype(torch::kInt64)).view({1, width}).expand({batch, width});
  candidates.run_values = model_->run_values(run_table(value_letters, max_run, options)).view({batch, width, -1});

  const auto all_visible = [&](std::int64_t n) { return torch::full({batch, 1}, n - 1, options.dtype(torch::kInt64)); };
  // Every row found its key and hits read only their bucket: the background would be all -inf, so the
  // common case skips it (and its S + 2S columns) altogether.
  const bool any_miss = std::any_of(found.begin(), found.end(), [](const auto& f) { return f.empty(); });
  if (!any_miss && !options_.background_on_hits)
    return model_->read(q, {&candidates, &completion}, {all_visible(width), completion_limit}, retriever_.get());

  // The background, for rows that missed (or all rows), without the entries a row already reads.
  model::Memory rest = background();
  const auto n_rest = rest.log_gate.size(1);
  std::vector<std::pair<std::int64_t, std::int64_t>> masked;  // (row, sample); sample -1 = the whole row
  for (std::size_t b = 0; b < found.size(); ++b) {
    if (!found[b].empty() && !options_.background_on_hits) {
      masked.emplace_back(static_cast<std::int64_t>(b), -1);
      continue;
    }
    for (const std::uint64_t e : found[b]) {
      const auto it = std::lower_bound(background_ids_.begin(), background_ids_.end(), e);
      if (it != background_ids_.end() && *it == e)
        masked.emplace_back(static_cast<std::int64_t>(b), it - background_ids_.begin());
    }
  }
  if (!masked.empty()) {
    auto gate_rows = rest.log_gate.expand({batch, n_rest}).to(torch::kCPU).clone();
    auto g = gate_rows.accessor<float, 2>();
    constexpr float kOff = -std::numeric_limits<float>::infinity();
    for (const auto& [row, sample] : masked) {
      if (sample >= 0) g[row][sample] = kOff;
      else for (std::int64_t i = 0; i < n_rest; ++i) g[row][i] = kOff;
    }
    rest.log_gate = gate_rows.to(options);
  }
  return model_->read(q, {&candidates, &rest, &completion}, {all_visible(width), all_visible(n_rest), completion_limit},
                     retriever_.get());
}

// Each hop asks the index for the letters it wants (hop 0: the last completed run; later hops: the
// argmax letters of the previous read) and reads the candidates through the engine's retriever.
class IndexHopReader final : public model::HopReader {
 public:
  IndexHopReader(Engine& engine, std::vector<std::string> asked, const model::Memory& completion,
                 const torch::Tensor& completion_limit)
      : engine_(engine), asked_(std::move(asked)), completion_(completion), completion_limit_(completion_limit) {}

  torch::Tensor read_hop(int hop, const torch::Tensor& q, const torch::Tensor& previous_read) override {
    if (hop > 0) asked_ = argmax_letters(previous_read, engine_.model_->config().max_run);
    return engine_.read_candidates(hop, asked_, q, completion_, completion_limit_);
  }
  void copied_read(const torch::Tensor& read) override { copied_ = read; }

  // The letters of the read the answer copies from: the hash each row is writing, whole.
  std::vector<std::string> copied_letters() const {
    return argmax_letters(copied_.reshape({-1, copied_.size(-1)}), engine_.model_->config().max_run);
  }

 private:
  Engine& engine_;
  std::vector<std::string> asked_;
  const model::Memory& completion_;
  const torch::Tensor& completion_limit_;
  torch::Tensor copied_;
};

// The bytes a text goes on to write, as the model's last read says: the rest of the hash it copies (the
// letters after those already written at the text's end), or "" when the read does not continue them.
std::string rest_of_read(const std::string& text, const std::string& read) {
  std::size_t written = 0;
  while (written < text.size() && std::isalpha(static_cast<unsigned char>(text[text.size() - 1 - written]))) ++written;
  if (written >= read.size() || text.compare(text.size() - written, written, read, 0, written) != 0) return {};
  return read.substr(written);
}

std::vector<std::string> Engine::answer(const std::vector<std::string>& prefixes, int max_bytes) {
  if (group_ != nullptr && (!finished_ || group_->rank() != 0))
    throw std::logic_error("Engine::answer: context parallel engines answer on rank 0, after finish_prompt()");
  torch::NoGradGuard no_grad;
  const auto options = model_->parameters().front().options();
  const int max_run = model_->config().max_run;
  const auto carry_tables = run_table({prev_.letters, last_.letters, open_letters_}, max_run, options);
  const model::RunCarry carry{carry_tables[0], carry_tables[1], carry_tables[2]};
  auto step = [&](const std::vector<std::string>& texts) {
    const auto c = model::encode_continuations(model_, texts, state_, carry);
    std::vector<std::string> asked;  // hop 0 asks for the last completed run at each text's end
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const auto& lexed = c.lexed[i];
      ChunkRuns runs(lexed, texts[i], prev_.letters, last_.letters, open_letters_);
      asked.emplace_back(runs.letters(lexed.last_run[lexed.size() - 1]));
    }
    const auto& e = c.encoded;
    IndexHopReader reader(*this, std::move(asked), e.memory, c.last_position);
    model::DraftedStep out;
    out.logits = model_->answer_logits(model::gather_positions(e.queries, c.last_position),
                                       model::gather_positions(e.structure, c.last_position),
                                       e.run_len.gather(1, c.last_position), reader);
    if (options_.drafts) {
      const auto letters = reader.copied_letters();
      for (std::size_t i = 0; i < texts.size(); ++i) out.guesses.push_back(rest_of_read(texts[i], letters[i]));
    } else {
      out.guesses.assign(texts.size(), std::string());
    }
    return out;
  };
  std::vector<std::string> first_drafts;
  if (options_.drafts)
    for (const auto& prefix : prefixes) first_drafts.push_back(index_draft(prefix));
  model::DecodeCalls calls;
  auto answers = model::drafted_greedy_decode(prefixes, max_bytes, step, &calls, std::move(first_drafts));
  stats_.decode_calls += calls.calls;
  return answers;
}

std::string Engine::index_draft(const std::string& prefix) const {
  const auto query = model::parse_query_prefix(prefix);  // "COMPLETION:...KEY = '": hops, CoT and the key
  if (!query) return {};
  const int hops = query->hops;
  const bool cot = query->cot;
  std::string hash = query->key, draft;
  std::vector<std::uint32_t> entries;
  for (int hop = 0; hop < hops; ++hop) {
    entries.clear();
    store_.find(hash, entries, options_.max_candidates);
    // A hash this store does not hold: a CoT draft stops there (its hashes so far stand); without CoT an
    // intermediate hash is no answer, so there is no draft.
    if (entries.empty()) return cot ? draft : std::string();
    std::uint32_t best = entries.front();
    for (const auto e : entries)
      if (store_.log_gate(e) > store_.log_gate(best)) best = e;
    hash = std::string(store_.run(store_.value_run(best)));
    if (cot && hop > 0) draft += " = ";
    if (cot || hop + 1 == hops) draft += hash;
  }
  return draft;
}

EngineStats Engine::stats() const {
  EngineStats s = stats_;
  s.reference_points = store_.entries();
  s.gate_evaluations = gates_.evaluations();
  s.dropped_positions = dropped_seen_;
  s.store = store_.bytes();
  return s;
}

std::string answer_queries(model::HashHopTransformer& model, std::string_view prompt, int hops, bool cot,
                           const std::vector<std::string>& keys, const EngineOptions& options) {
  Engine engine(model, options);
  engine.prefill(prompt);
  engine.prefill("\n");
  const auto answers =
      engine.answer(model::query_prefixes(hops, cot, keys), model::answer_byte_limit(model->config(), hops, cot));
  return model::completion_text(hops, cot, keys, answers);
}

}  // namespace hashhop::engine
