// Parser for Magic's HashHop text format: prompt lines "K = V" / "K = 'V'" and the completion block.
// Accepts our generator's output and Magic's own; used by score, demo, eval and the tests.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hashhop::bench {

// A format error inside one text (prompt or completion); line is 1-based within that text, 0 when the
// error is about the text as a whole (a broken chain).
class FormatError : public std::runtime_error {
 public:
  FormatError(std::uint64_t line, const std::string& message)
      : std::runtime_error(line > 0 ? "line " + std::to_string(line) + ": " + message : message), line_(line) {}
  std::uint64_t line() const { return line_; }

 private:
  std::uint64_t line_;
};

struct PromptLink {
  std::string_view value;
  bool is_final = false;  // the value was quoted: the chain ends here
};

// Views into the prompt text, which must outlive this object.
struct ParsedPrompt {
  std::unordered_map<std::string_view, PromptLink> next;
  std::vector<std::string_view> chain_starts;  // keys that are nobody's value, in prompt order
  std::size_t n_lines = 0;
};

ParsedPrompt parse_prompt(std::string_view prompt);

// A hash as the format writes it: one or more ASCII letters.
bool is_hash(std::string_view s);

// A cheap check that a text is a HashHop prompt: its first and last lines are "HASH = HASH" links.
// For commands that answer a prompt without parsing all of it (eval, answer). Throws FormatError.
void check_prompt_ends(std::string_view prompt);

// Follows `hops` links from start; returns Magic's target ("H(hops)" or "H1 = … = H(hops)" with CoT).
// Throws FormatError(0, …) if the chain is broken or ends early.
std::string follow_chain(const ParsedPrompt& prompt, std::string_view start, int hops, bool cot);

struct CompletionQuery {
  std::string key;
  std::string answer;  // text between the quotes
};

struct ParsedCompletion {
  int hops = 0;
  bool cot = false;
  std::vector<CompletionQuery> queries;
};

// Strict: "COMPLETION:\nHops=H\n\nCoT=True|False\n\n" then "K = 'A'" lines and a final newline.
ParsedCompletion parse_completion(std::string_view completion);

// Lenient, for model predictions: every line of the form "K = 'A'" anywhere in the text, header or not.
std::unordered_map<std::string, std::string> parse_answer_lines(std::string_view text);

// Formats a completion block in Magic's layout.
std::string format_completion(int hops, bool cot, const std::vector<CompletionQuery>& queries);

// The last hash of an answer ("B = C = D" -> "D").
std::string_view final_hash(std::string_view answer);

}  // namespace hashhop::bench
