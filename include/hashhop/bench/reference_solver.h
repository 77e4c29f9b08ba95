// The exact reference solver: a hash map over the parsed prompt, following each query's chain.
// It is the accuracy ceiling every model is compared with (and what `hashhop demo` runs before a model exists).
#pragma once

#include <string>
#include <string_view>

namespace hashhop::bench {

// Answers every query of `expected_completion` (its keys, hops and CoT flag) from the prompt alone and
// returns a completion in Magic's format. Throws FormatError on a malformed prompt or completion.
std::string solve_exactly(std::string_view prompt, std::string_view expected_completion);

}  // namespace hashhop::bench
