// Exact HashHop solver (see reference_solver.h).
#include "hashhop/bench/reference_solver.h"

#include "hashhop/bench/magic_format.h"

namespace hashhop::bench {

std::string solve_exactly(const ParsedPrompt& prompt, ParsedCompletion completion) {
  for (auto& query : completion.queries) query.answer = follow_chain(prompt, query.key, completion.hops, completion.cot);
  return format_completion(completion.hops, completion.cot, completion.queries);
}

std::string solve_exactly(std::string_view prompt, std::string_view expected_completion) {
  return solve_exactly(parse_prompt(prompt), parse_completion(expected_completion));
}

}  // namespace hashhop::bench
