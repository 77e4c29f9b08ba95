// Answering HashHop queries with the byte-level model: greedy decoding of "KEY = '" prefixes after the
// prompt and completion header, the same protocol as the lexer model's dense path (inference.h).
#pragma once

#include <torch/torch.h>

#include <string>
#include <string_view>
#include <vector>

#include "hashhop/model/byte_model.h"

namespace hashhop::model {

// The completion block (Magic's layout) with the model's greedy answer for every key. Each query is
// decoded from prompt + "\n" + header + "KEY = '" up to the closing quote, at most the bytes a right
// answer has (one hash, or hops hashes with their " = " with CoT) plus two. The prompt is prefilled once
// (ByteModel::prefill) and each query runs only its own bytes against that cache.
std::string answer_queries_bytes(ByteModel& net, std::string_view prompt, int hops, bool cot,
                                 const std::vector<std::string>& keys, const torch::Device& device);

}  // namespace hashhop::model
