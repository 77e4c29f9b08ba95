// Greedy answers of the byte-level model (see byte_inference.h): the prompt is prefilled once and every
// query continues from its cache, through inference.h's shared greedy decoder.
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
  const auto answers = greedy_decode(query_prefixes(hops, cot, keys), max_bytes, [&](const std::vector<std::string>& texts) {
    std::vector<torch::Tensor> rows;
    for (const auto& text : texts) rows.push_back(net->hidden_after(prompt_cache, as_bytes(text, device)).select(1, -1));
    return net->logits(torch::cat(rows, 0)).to(torch::kFloat32).unsqueeze(1);  // [B, 1, 256]
  });
  return completion_text(hops, cot, keys, answers);
}

std::string answer_queries_bytes(ByteModel& net, std::string_view prompt, int hops, bool cot,
                                 const std::vector<std::string>& keys, const torch::Device& device) {
  const ByteCache cache = prefill_prompt(net, prompt, device);
  return answer_queries_bytes(net, cache, hops, cot, keys, device);
}

}  // namespace hashhop::model
