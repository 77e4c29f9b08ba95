// Exact HashHop solver (see reference_solver.h).
#include "hashhop/bench/reference_solver.h"

#include "hashhop/bench/magic_format.h"

namespace hashhop::bench {

std::string solve_exactly(std::string_view prompt, std::string_view expected_completion) {
  const ParsedPrompt parsed = parse_prompt(prompt);
  ParsedCompletion completion = parse_completion(expected_completion);
  for (auto& query : completion.queries) query.answer = follow_chain(parsed, query.key, completion.hops, completion.cot);
  return format_completion(completion.hops, completion.cot, completion.queries);
}

}  // namespace hashhop::bench
