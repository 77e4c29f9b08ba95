// Answering HashHop queries with the byte-level model: greedy decoding of "KEY = '" prefixes after the
// prompt and completion header, the same protocol as the lexer model's dense path (inference.h).
#pragma once

#include <torch/torch.h>

#include <string>
#include <string_view>
#include <vector>

#include "hashhop/model/byte_model.h"

namespace hashhop::model {

// A text as the model's input: its bytes (0-255) as int64 [1, n] on device.
torch::Tensor as_bytes(std::string_view text, const torch::Device& device);

// Runs prompt + "\n" (where the completion starts) through the model once (ByteModel::prefill), under
// the same autocast as answering, so any number of queries can continue from it. `hashhop serve` keeps
// these in its prefix cache; ByteCache::bytes() is what one holds on the device.
ByteCache prefill_prompt(ByteModel& net, std::string_view prompt, const torch::Device& device);

// The completion block (Magic's layout) with the model's greedy answer for every key, continuing a
// prompt prefilled by prefill_prompt(). Each query is decoded from header + "KEY = '" up to the closing
// quote, at most the bytes a right answer has (one hash, or hops hashes with their " = " with CoT) plus
// two. Each query decodes on its own copy of the cache, grown a byte at a time (ByteModel::extend: a row a
// step); the caller's cache keeps its length and contents, so one cache serves any number of calls.
std::string answer_queries_bytes(ByteModel& net, const ByteCache& prompt_cache, int hops, bool cot,
                                 const std::vector<std::string>& keys, const torch::Device& device);

// Both steps for one prompt: prefill_prompt, then the queries above.
std::string answer_queries_bytes(ByteModel& net, std::string_view prompt, int hops, bool cot,
                                 const std::vector<std::string>& keys, const torch::Device& device);

}  // namespace hashhop::model
