// The exact reference solver: a hash map over the parsed prompt, following each query's chain.
// It is the accuracy ceiling every model is compared with (and what `hashhop demo` runs before a model exists).
#pragma once

#include <string>
#include <string_view>

#include "hashhop/bench/magic_format.h"

namespace hashhop::bench {

// Answers every query of `expected_completion` (its keys, hops and CoT flag) from the prompt alone and
// returns a completion in Magic's format. Throws FormatError on a malformed prompt or completion.
std::string solve_exactly(std::string_view prompt, std::string_view expected_completion);

// The same on already parsed texts (callers that attribute errors to the prompt or the completion).
// Throws FormatError if a queried chain is broken.
std::string solve_exactly(const ParsedPrompt& prompt, ParsedCompletion completion);

}  // namespace hashhop::bench
