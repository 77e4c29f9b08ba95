// Prompt encoding and greedy decoding (see inference.h). The completion is re-encoded from the prompt's
// end state at every decoding step; it is short, and this keeps one code path for training and answering.
#include "hashhop/model/inference.h"

#include <stdexcept>

#include <algorithm>
#include <cmath>

#include "hashhop/bench/magic_format.h"

namespace hashhop::model {

std::string completion_header(int hops, bool cot) {
  return "COMPLETION:\nHops=" + std::to_string(hops) + "\n\nCoT=" + (cot ? "True" : "False") + "\n\n";
}

PromptMemory encode_prompt(HashHopTransformer& model, std::string_view text, const PromptOptions& options) {
  torch::NoGradGuard no_grad;
  PromptMemory out;
  out.carry = model->empty_carry();
  std::vector<torch::Tensor> keys, gates, rows, values;
  const double log_threshold = std::log(options.gate_threshold);
  const std::size_t chunk_bytes = std::max<std::size_t>(1, options.chunk_bytes);
  for (std::size_t begin = 0; begin < text.size(); begin += chunk_bytes) {
    const auto chunk = lex_chunk(text.substr(begin, chunk_bytes), out.state, model->config().max_run);
    auto encoded = model->encode({&chunk}, {out.carry});
    out.carry = encoded.carry_out[0];
    const Memory& m = encoded.memory;
    torch::Tensor chunk_rows = m.value_rows[0], chunk_values = m.run_values[0];
    torch::Tensor chunk_keys = m.keys[0], chunk_gates = m.log_gate[0];
    if (options.gated_only) {
      const auto kept = (chunk_gates > log_threshold).nonzero().squeeze(1);
      chunk_keys = chunk_keys.index_select(0, kept);
      chunk_gates = chunk_gates.index_select(0, kept);
      // Keep only the runs the kept positions read: memory grows with reference points, not text.
      auto [unique_rows, inverse, counts] = at::_unique2(chunk_rows.index_select(0, kept), true, true, false);
      chunk_values = chunk_values.index_select(0, unique_rows);
      chunk_rows = inverse;
    }
    keys.push_back(chunk_keys);
    gates.push_back(chunk_gates);
    rows.push_back(chunk_rows + out.runs);
    values.push_back(chunk_values);
    out.positions += chunk_keys.size(0);
    out.runs += chunk_values.size(0);
  }
  out.bytes = static_cast<std::int64_t>(text.size());
  const auto options_f = model->parameters().front().options();
  if (keys.empty()) {  // an empty prompt: one inert position keeps the shapes valid
    keys.push_back(torch::zeros({1, model->config().fp_dim}, options_f));
    gates.push_back(torch::full({1}, -std::numeric_limits<float>::infinity(), options_f));
    rows.push_back(torch::zeros({1}, options_f.dtype(torch::kInt64)));
    values.push_back(torch::zeros({1, model->value_dim()}, options_f));
  }
  out.memory.keys = torch::cat(keys).unsqueeze(0);
  out.memory.log_gate = torch::cat(gates).unsqueeze(0);
  out.memory.value_rows = torch::cat(rows).unsqueeze(0);
  out.memory.run_values = torch::cat(values).unsqueeze(0);
  return out;
}

Continuations encode_continuations(HashHopTransformer& model, const std::vector<std::string>& texts,
                                   const LexState& state, const RunCarry& carry) {
  Continuations out;
  out.lexed.reserve(texts.size());
  std::vector<std::int64_t> last_position;
  std::vector<const LexedChunk*> chunks;
  for (const auto& text : texts) {
    LexState continued = state;
    out.lexed.push_back(lex_chunk(text, continued, model->config().max_run));
    last_position.push_back(static_cast<std::int64_t>(out.lexed.back().size()) - 1);
  }
  for (const auto& l : out.lexed) chunks.push_back(&l);
  out.encoded = model->encode(chunks, std::vector<RunCarry>(texts.size(), carry));
  out.last_position = torch::tensor(last_position).to(carry.prev.device()).view({-1, 1});
  return out;
}

std::vector<std::string> greedy_decode(const std::vector<std::string>& prefixes, int max_bytes,
                                       const NextLogits& next_logits) {
  std::vector<std::string> answers(prefixes.size()), texts = prefixes;
  std::vector<bool> done(prefixes.size(), false);
  for (int step = 0; step < max_bytes && !prefixes.empty(); ++step) {
    const auto next = next_logits(texts).argmax(-1).to(torch::kCPU);
    bool all_done = true;
    for (std::size_t i = 0; i < prefixes.size(); ++i) {
      if (done[i]) continue;
      const char c = static_cast<char>(next[static_cast<std::int64_t>(i)][0].item<std::int64_t>());
      if (ends_answer(c)) {
        done[i] = true;
        continue;
      }
      answers[i] += c;
      texts[i] += c;
      all_done = false;
    }
    if (all_done) break;
  }
  return answers;
}

std::vector<std::string> drafted_greedy_decode(const std::vector<std::string>& prefixes, int max_bytes,
                                               const DraftedLogits& step, DecodeCalls* counts,
                                               std::vector<std::string> first_drafts, std::size_t max_draft) {
  const std::size_t n = prefixes.size();
  const auto limit = static_cast<std::size_t>(std::max(0, max_bytes));
  if (!first_drafts.empty() && first_drafts.size() != n)
    throw std::invalid_argument("drafted_greedy_decode: " + std::to_string(first_drafts.size()) + " first drafts for " +
                                std::to_string(n) + " prefixes");
  std::vector<std::string> answers(n), drafts = first_drafts.empty() ? std::vector<std::string>(n) : std::move(first_drafts);
  std::vector<bool> done(n, limit == 0);
  while (true) {
    // Rows: each unfinished text, then that text extended by 1, 2, ... bytes of its draft (as many as
    // the byte limit leaves room to check, at most max_draft; the rest of a longer draft waits).
    std::vector<std::string> rows;
    std::vector<std::size_t> first_row(n, 0), checked(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      first_row[i] = rows.size();
      checked[i] = std::min({drafts[i].size(), limit - answers[i].size() - 1, max_draft});
      const std::string text = prefixes[i] + answers[i];
      for (std::size_t j = 0; j <= checked[i]; ++j) rows.push_back(text + drafts[i].substr(0, j));
      if (drafts[i].size() > limit - answers[i].size() - 1) drafts[i].resize(limit - answers[i].size() - 1);
    }
    if (rows.empty()) break;
    const auto out = step(rows);
    if (out.guesses.size() != rows.size())
      throw std::logic_error("drafted_greedy_decode: step returned " + std::to_string(out.guesses.size()) +
                             " guesses for " + std::to_string(rows.size()) + " texts");
    const auto next = out.logits.argmax(-1).to(torch::kCPU).contiguous();
    const auto* y = next.data_ptr<std::int64_t>();
    if (counts != nullptr) ++counts->calls;
    for (std::size_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      const std::string draft = std::move(drafts[i]);
      std::size_t j = 0;  // the checked draft bytes the model wrote too are kept, up to an answer's end
      while (j < checked[i] && static_cast<char>(y[first_row[i] + j]) == draft[j] && !ends_answer(draft[j])) ++j;
      answers[i] += draft.substr(0, j);
      const char c = static_cast<char>(y[first_row[i] + j]);
      const std::string& guess = out.guesses[first_row[i] + j];
      if (ends_answer(c)) {
        done[i] = true;
        continue;
      }
      answers[i] += c;
      // The model's byte goes on with the draft (past the checked window): keep the rest of the draft;
      // otherwise the row's own guess, if it starts with that byte.
      if (j < draft.size() && draft[j] == c) drafts[i] = draft.substr(j + 1);
      else drafts[i] = !guess.empty() && guess[0] == c ? guess.substr(1) : std::string();
      done[i] = answers[i].size() >= limit;
    }
  }
  return answers;
}

std::vector<std::string> greedy_answers(HashHopTransformer& model, const PromptMemory& prompt,
                                        const std::vector<std::string>& prefixes, int max_bytes) {
  torch::NoGradGuard no_grad;
  const std::int64_t prompt_positions = prompt.memory.keys.size(1);
  return greedy_decode(prefixes, max_bytes, [&](const std::vector<std::string>& texts) {
    const auto c = encode_continuations(model, texts, prompt.state, prompt.carry);
    const auto prompt_limit = torch::full_like(c.last_position, prompt_positions - 1);
    return model->logits_at(c.encoded, c.last_position, {&prompt.memory, &c.encoded.memory},
                            {prompt_limit, c.last_position});
  });
}

std::vector<std::string> query_prefixes(int hops, bool cot, const std::vector<std::string>& keys) {
  const std::string header = completion_header(hops, cot);
  std::vector<std::string> prefixes;
  for (const auto& key : keys) prefixes.push_back(header + key + " = '");
  return prefixes;
}

std::optional<PrefixQuery> parse_query_prefix(std::string_view prefix) {
  constexpr std::string_view open = " = '";
  const std::string any_header = completion_header(0, false);
  const std::string_view start = std::string_view(any_header).substr(0, any_header.find('=') + 1);  // "COMPLETION:\nHops="
  const auto at = prefix.rfind(start);
  if (at == std::string_view::npos || !prefix.ends_with(open)) return std::nullopt;
  int hops = 0;
  // At most 4 digits are read: a larger count matches no header below, so index_draft never walks a huge chain.
  for (std::size_t i = at + start.size(); i < prefix.size() && prefix[i] >= '0' && prefix[i] <= '9' && hops < 1000; ++i)
    hops = hops * 10 + (prefix[i] - '0');
  for (const bool cot : {false, true}) {
    const std::string header = completion_header(hops, cot);
    const std::size_t body = at + header.size();
    if (prefix.compare(at, header.size(), header) != 0 || body > prefix.size() - open.size()) continue;
    const std::string_view lines = prefix.substr(body, prefix.size() - open.size() - body);
    const auto newline = lines.rfind('\n');
    return PrefixQuery{hops, cot, std::string(newline == std::string_view::npos ? lines : lines.substr(newline + 1))};
  }
  return std::nullopt;
}

std::string completion_text(int hops, bool cot, const std::vector<std::string>& keys,
                            const std::vector<std::string>& answers) {
  std::vector<bench::CompletionQuery> queries;
  for (std::size_t i = 0; i < keys.size(); ++i) queries.push_back({keys[i], answers[i]});
  return bench::format_completion(hops, cot, queries);
}

void check_query_hops(const ModelConfig& config, int hops, bool cot) {
  if (hops < 1) throw std::invalid_argument("hops: must be >= 1, got " + std::to_string(hops));
  if (!cot && hops > config.max_hops)
    throw std::invalid_argument("hops: " + std::to_string(hops) + " is more than this model's max_hops " +
                                std::to_string(config.max_hops) + " (more hops need CoT)");
  if (cot && hops > kMaxCotHops)
    throw std::invalid_argument("hops: " + std::to_string(hops) + " is more than " + std::to_string(kMaxCotHops) +
                                " (CoT answers write every hop)");
}

void check_query_keys(const ModelConfig& config, const std::vector<std::string>& keys) {
  for (const auto& key : keys)
    if (key.size() > static_cast<std::size_t>(config.max_run))
      throw std::invalid_argument("hash_len: query '" + key.substr(0, 16) + (key.size() > 16 ? "...'" : "'") + " has " +
                                  std::to_string(key.size()) + " letters, more than this model's max_run " +
                                  std::to_string(config.max_run) + " (its lexer keeps max_run letters of a hash)");
}

int answer_byte_limit(const ModelConfig& config, int hops, bool cot) {
  check_query_hops(config, hops, cot);  // also keeps hops * hash_bytes from overflowing
  const int hash_bytes = config.max_run + 3;
  return cot ? hops * hash_bytes : hash_bytes;
}

std::string answer_queries(HashHopTransformer& model, std::string_view prompt, int hops, bool cot,
                           const std::vector<std::string>& keys, const PromptOptions& options) {
  const PromptMemory memory = encode_prompt(model, std::string(prompt) + "\n", options);
  const auto answers =
      greedy_answers(model, memory, query_prefixes(hops, cot, keys), answer_byte_limit(model->config(), hops, cot));
  return completion_text(hops, cot, keys, answers);
}

}  // namespace hashhop::model
