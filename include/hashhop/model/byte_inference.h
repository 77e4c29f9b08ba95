// Answering HashHop queries with the byte-level model: greedy decoding of "KEY = '" prefixes after the
// prompt and completion header, the same protocol as the lexer model's dense path (inference.h).
#pragma once

#include <torch/torch.h>

#include <string>
#include <string_view>
#include <vector>

#include "hashhop/model/byte_model.h"

namespace hashhop::model {

// Next-byte logits [B, 1, 256] after each text (right-padded into one batch; attention is causal).
torch::Tensor byte_next_logits(ByteModel& net, const std::vector<std::string>& texts, const torch::Device& device);

// The completion block (Magic's layout) with the model's greedy answer for every key. Each query is
// decoded from prompt + "\n" + header + "KEY = '" up to the closing quote, at most the bytes a right
// answer has (one hash, or hops hashes with their " = " with CoT) plus two.
std::string answer_queries_bytes(ByteModel& net, std::string_view prompt, int hops, bool cot,
                                 const std::vector<std::string>& keys, const torch::Device& device);

}  // namespace hashhop::model
