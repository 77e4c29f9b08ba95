// libFuzzer harness for the Magic-format parser: parse_prompt (+ follow_chain), check_prompt_ends, parse_completion, parse_answer_lines.
// Build and run: `make fuzz` (FUZZ_SECONDS=600) or build-fuzz/tests/fuzz/fuzz_magic_format CORPUS_DIR; see tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "hashhop/bench/magic_format.h"

using hashhop::bench::FormatError;

// Every input goes through each entry point; FormatError is the documented rejection, anything else
// (another exception, a sanitizer report) escapes and crashes the run.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);  // owns the bytes the views point into
  namespace b = hashhop::bench;
  try {
    const b::ParsedPrompt prompt = b::parse_prompt(text);
    std::size_t n = 0;
    for (std::string_view start : prompt.chain_starts) {
      if (++n > 8) break;
      for (int hops = 1; hops <= 3; ++hops) {
        for (bool cot : {false, true}) {
          try {
            const std::string target = b::follow_chain(prompt, start, hops, cot);
            (void)b::final_hash(target);
          } catch (const FormatError&) {
          }
        }
      }
    }
  } catch (const FormatError&) {
  }
  try {
    b::check_prompt_ends(text);
  } catch (const FormatError&) {
  }
  try {
    const b::ParsedCompletion completion = b::parse_completion(text);
    // What the parser accepted must format and parse back to the same queries.
    const std::string again = b::format_completion(completion.hops, completion.cot, completion.queries);
    const b::ParsedCompletion reparsed = b::parse_completion(again);
    if (reparsed.hops != completion.hops || reparsed.cot != completion.cot ||
        reparsed.queries.size() != completion.queries.size()) {
      __builtin_trap();
    }
    for (const auto& q : completion.queries) (void)b::final_hash(q.answer);
  } catch (const FormatError&) {
  }
  for (const auto& [key, answer] : b::parse_answer_lines(text)) {  // lenient: never throws
    (void)key;
    (void)b::final_hash(answer);
  }
  (void)b::is_hash(text);
  return 0;
}
