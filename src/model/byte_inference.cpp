// Greedy answers of the byte-level model (see byte_inference.h), through inference.h's shared decoder.
#include "hashhop/model/byte_inference.h"

#include <algorithm>

#include "hashhop/model/inference.h"

namespace hashhop::model {

torch::Tensor byte_next_logits(ByteModel& net, const std::vector<std::string>& texts, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const auto batch = static_cast<std::int64_t>(texts.size());
  std::int64_t length = 1;
  for (const auto& t : texts) length = std::max<std::int64_t>(length, static_cast<std::int64_t>(t.size()));
  std::vector<std::int64_t> bytes(static_cast<std::size_t>(batch * length), 0), last(static_cast<std::size_t>(batch));
  for (std::int64_t b = 0; b < batch; ++b) {
    const auto& t = texts[static_cast<std::size_t>(b)];
    for (std::size_t i = 0; i < t.size(); ++i) bytes[b * length + i] = static_cast<unsigned char>(t[i]);
    last[b] = b * length + static_cast<std::int64_t>(t.size()) - 1;
  }
  const auto hidden = net->hidden(torch::tensor(bytes).view({batch, length}).to(device)).reshape({batch * length, -1});
  return net->logits(hidden.index_select(0, torch::tensor(last).to(device))).to(torch::kFloat32).view({batch, 1, -1});
}

std::string answer_queries_bytes(ByteModel& net, std::string_view prompt, int hops, bool cot,
                                 const std::vector<std::string>& keys, const torch::Device& device) {
  std::size_t hash_len = 1;
  for (const auto& k : keys) hash_len = std::max(hash_len, k.size());
  const int max_bytes = static_cast<int>(cot ? hops * (hash_len + 3) : hash_len) + 2;
  std::vector<std::string> prefixes;
  for (const auto& p : query_prefixes(hops, cot, keys)) prefixes.push_back(std::string(prompt) + "\n" + p);
  const auto answers = greedy_decode(prefixes, max_bytes, [&](const std::vector<std::string>& texts) {
    return byte_next_logits(net, texts, device);
  });
  return completion_text(hops, cot, keys, answers);
}

}  // namespace hashhop::model
