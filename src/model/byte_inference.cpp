// Greedy answers of the byte-level model (see byte_inference.h): the prompt is prefilled once and every
// query continues from its own copy of that cache, a byte a step.
#include "hashhop/model/byte_inference.h"

#include <algorithm>

#include "hashhop/model/autocast.h"
#include "hashhop/model/inference.h"

namespace hashhop::model {

torch::Tensor as_bytes(std::string_view text, const torch::Device& device) {
  std::vector<std::int64_t> bytes(text.begin(), text.end());
  for (auto& b : bytes) b &= 0xff;  // char may be signed
  return torch::tensor(bytes, torch::kInt64).view({1, static_cast<std::int64_t>(bytes.size())}).to(device);
}

ByteCache prefill_prompt(ByteModel& net, std::string_view prompt, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  // On CUDA the model runs as it was trained, under bf16 autocast: SDPA's fused kernels then take the
  // long prompts; on the CPU everything stays float32. The queries run under the same scope.
  AutocastScope autocast(device.is_cuda());
  return net->prefill(as_bytes(std::string(prompt) + "\n", device));
}

std::string answer_queries_bytes(ByteModel& net, const ByteCache& prompt_cache, int hops, bool cot,
                                 const std::vector<std::string>& keys, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  AutocastScope autocast(device.is_cuda());
  std::size_t hash_len = 1;
  for (const auto& k : keys) hash_len = std::max(hash_len, k.size());
  const int max_bytes = static_cast<int>(cot ? hops * (hash_len + 3) : hash_len) + 2;
  // Each query grows the prompt's cache a byte at a time (ByteModel::extend): one step runs one row.
  // Re-reading the whole query text after the shared cache on every step (hidden_after) gives the same
  // answer but runs ~50 rows a step and concatenates every global layer's keys each time. The global keys
  // are copied once per call, into stores with room for the longest query (reserve); each query appends
  // there in place and is rewound after, so the caller's cache is never written.
  const auto prefixes = query_prefixes(hops, cot, keys);
  std::size_t longest = 0;
  for (const auto& p : prefixes) longest = std::max(longest, p.size());
  ByteCache base = prompt_cache;
  net->reserve(base, static_cast<std::int64_t>(longest) + max_bytes);
  std::vector<std::string> answers;
  for (const auto& prefix : prefixes) {
    ByteModelImpl::rewind(base);
    ByteCache cache = base;
    auto hidden = net->extend(cache, as_bytes(prefix, device));
    std::string answer;
    for (int step = 0; step < max_bytes; ++step) {
      const auto next = net->logits(hidden.select(1, -1)).to(torch::kFloat32).argmax(-1).item<std::int64_t>();
      const char c = static_cast<char>(next);
      if (ends_answer(c)) break;
      answer += c;
      if (step + 1 < max_bytes) hidden = net->extend(cache, as_bytes(std::string(1, c), device));
    }
    answers.push_back(std::move(answer));
  }
  return completion_text(hops, cot, keys, answers);
}

std::string answer_queries_bytes(ByteModel& net, std::string_view prompt, int hops, bool cot,
                                 const std::vector<std::string>& keys, const torch::Device& device) {
  const ByteCache cache = prefill_prompt(net, prompt, device);
  return answer_queries_bytes(net, cache, hops, cot, keys, device);
}

}  // namespace hashhop::model
