// Prompt encoding and greedy decoding (see inference.h). The completion is re-encoded from the prompt's
// end state at every decoding step; it is short, and this keeps one code path for training and answering.
#include "hashhop/model/inference.h"

#include <algorithm>
#include <cmath>

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

std::vector<std::string> greedy_answers(HashHopTransformer& model, const PromptMemory& prompt,
                                        const std::vector<std::string>& prefixes, int max_bytes) {
  torch::NoGradGuard no_grad;
  const auto device = prompt.memory.keys.device();
  const std::int64_t batch = static_cast<std::int64_t>(prefixes.size());
  std::vector<std::string> answers(prefixes.size());
  std::vector<bool> done(prefixes.size(), false);
  const std::int64_t prompt_positions = prompt.memory.keys.size(1);
  for (int step = 0; step < max_bytes && batch > 0; ++step) {
    std::vector<LexedChunk> lexed;
    lexed.reserve(prefixes.size());
    std::vector<std::int64_t> last_position;
    for (std::size_t i = 0; i < prefixes.size(); ++i) {
      LexState state = prompt.state;
      lexed.push_back(lex_chunk(prefixes[i] + answers[i], state, model->config().max_run));
      last_position.push_back(static_cast<std::int64_t>(lexed.back().size()) - 1);
    }
    std::vector<const LexedChunk*> chunks;
    for (const auto& l : lexed) chunks.push_back(&l);
    const auto encoded = model->encode(chunks, std::vector<RunCarry>(prefixes.size(), prompt.carry));
    const auto pos = torch::tensor(last_position).to(device).view({batch, 1});
    const auto prompt_limit = torch::full({batch, 1}, prompt_positions - 1, pos.options());
    const auto logits = model->logits_at(encoded, pos, {&prompt.memory, &encoded.memory}, {prompt_limit, pos});
    const auto next = logits.argmax(-1).to(torch::kCPU);
    bool all_done = true;
    for (std::int64_t i = 0; i < batch; ++i) {
      if (done[i]) continue;
      const char c = static_cast<char>(next[i][0].item<std::int64_t>());
      if (c == '\'' || c == '\n') {
        done[i] = true;
        continue;
      }
      answers[i] += c;
      all_done = false;
    }
    if (all_done) break;
  }
  return answers;
}

}  // namespace hashhop::model

#include "hashhop/bench/magic_format.h"

namespace hashhop::model {

std::string answer_queries(HashHopTransformer& model, std::string_view prompt, int hops, bool cot,
                           const std::vector<std::string>& keys, const PromptOptions& options) {
  const PromptMemory memory = encode_prompt(model, std::string(prompt) + "\n", options);
  const std::string header = completion_header(hops, cot);
  std::vector<std::string> prefixes;
  for (const auto& key : keys) prefixes.push_back(header + key + " = '");
  const int hash_bytes = model->config().max_run + 3;  // a hash and its " = " separator
  const auto answers = greedy_answers(model, memory, prefixes, cot ? hops * hash_bytes : hash_bytes);
  std::vector<bench::CompletionQuery> queries;
  for (std::size_t i = 0; i < keys.size(); ++i) queries.push_back({keys[i], answers[i]});
  return bench::format_completion(hops, cot, queries);
}

}  // namespace hashhop::model
