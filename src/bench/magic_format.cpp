// Magic-format parsing and formatting (see magic_format.h). Tested by tests/bench/test_magic_format.cpp.
#include "hashhop/bench/magic_format.h"

namespace hashhop::bench {
namespace {

bool is_hash_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Splits "K = V" into K and V; returns false if there is no " = ".
bool split_link(std::string_view line, std::string_view& key, std::string_view& value) {
  const auto eq = line.find(" = ");
  if (eq == std::string_view::npos) return false;
  key = line.substr(0, eq);
  value = line.substr(eq + 3);
  return true;
}

// Calls fn(line) for each '\n'-separated line. With keep_trailing_empty, text ending in '\n' yields a
// final empty line (a prompt must not end with a newline); without, it does not.
template <class Fn>
void for_each_line(std::string_view text, bool keep_trailing_empty, Fn&& fn) {
  std::size_t start = 0;
  while (keep_trailing_empty ? start <= text.size() : start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    fn(text.substr(start, end - start));
    start = end + 1;
  }
}

std::string shorten(std::string_view s) {
  return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 37)) + "...";
}

}  // namespace

bool is_hash(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_hash_char(c)) return false;
  }
  return true;
}

void check_prompt_ends(std::string_view prompt) {
  if (prompt.empty()) throw FormatError(1, "empty prompt");
  const auto check = [](std::string_view line, std::uint64_t line_no) {
    std::string_view key, value;
    if (!split_link(line, key, value)) throw FormatError(line_no, "expected 'KEY = VALUE', got '" + shorten(line) + "'");
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') value = value.substr(1, value.size() - 2);
    if (!is_hash(key) || !is_hash(value)) throw FormatError(line_no, "expected two hashes of letters, got '" + shorten(line) + "'");
  };
  const std::size_t first_end = prompt.find('\n');
  check(prompt.substr(0, first_end), 1);
  if (first_end != std::string_view::npos) {
    const std::size_t last_start = prompt.rfind('\n') + 1;
    check(prompt.substr(last_start), 0);  // its number would need a count of every newline
  }
}

ParsedPrompt parse_prompt(std::string_view prompt) {
  ParsedPrompt parsed;
  if (prompt.empty()) throw FormatError(1, "empty prompt");
  std::unordered_map<std::string_view, bool> is_value;
  std::vector<std::string_view> keys_in_order;
  std::uint64_t line_no = 0;
  for_each_line(prompt, true, [&](std::string_view line) {
    ++line_no;
    std::string_view key, value;
    if (!split_link(line, key, value)) throw FormatError(line_no, "expected 'KEY = VALUE', got '" + shorten(line) + "'");
    if (!is_hash(key)) throw FormatError(line_no, "key is not a hash of letters: '" + shorten(key) + "'");
    bool is_final = false;
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
      value = value.substr(1, value.size() - 2);
      is_final = true;
    }
    if (!is_hash(value)) throw FormatError(line_no, "value is not a hash of letters: '" + shorten(value) + "'");
    if (!parsed.next.emplace(key, PromptLink{value, is_final}).second) {
      throw FormatError(line_no, "key '" + shorten(key) + "' appears twice");
    }
    keys_in_order.push_back(key);
    is_value[value] = true;
  });
  parsed.n_lines = line_no;
  for (auto key : keys_in_order) {
    if (!is_value.count(key)) parsed.chain_starts.push_back(key);
  }
  return parsed;
}

std::string follow_chain(const ParsedPrompt& prompt, std::string_view start, int hops, bool cot) {
  std::string answer;
  std::string_view current = start;
  for (int hop = 0; hop < hops; ++hop) {
    auto it = prompt.next.find(current);
    if (it == prompt.next.end()) {
      throw FormatError(0, "chain from '" + shorten(start) + "' breaks after " + std::to_string(hop) + " hops at '" + shorten(current) + "'");
    }
    if (it->second.is_final && hop + 1 < hops) {
      throw FormatError(0, "chain from '" + shorten(start) + "' ends after " + std::to_string(hop + 1) + " of " + std::to_string(hops) + " hops");
    }
    current = it->second.value;
    if (cot && hop > 0) answer += " = ";
    if (cot || hop + 1 == hops) answer += current;
  }
  return answer;
}

ParsedCompletion parse_completion(std::string_view completion) {
  ParsedCompletion parsed;
  std::vector<std::string_view> lines;
  for_each_line(completion, false, [&](std::string_view line) { lines.push_back(line); });
  if (completion.empty() || completion.back() != '\n') throw FormatError(lines.size() + 1, "completion must end with a newline");
  if (lines.size() < 5) throw FormatError(lines.size() + 1, "completion header is incomplete");
  if (lines[0] != "COMPLETION:") throw FormatError(1, "expected 'COMPLETION:'");
  if (lines[1].substr(0, 5) != "Hops=") throw FormatError(2, "expected 'Hops=N'");
  // Digits only: std::stoi alone would also take " +2".
  const std::string_view digits = lines[1].substr(5);
  bool ok = !digits.empty() && digits.size() <= 9;
  for (const char c : digits) ok = ok && c >= '0' && c <= '9';
  if (ok) parsed.hops = std::stoi(std::string(digits));
  if (!ok || parsed.hops < 1) throw FormatError(2, "expected a positive integer after 'Hops='");
  if (!lines[2].empty()) throw FormatError(3, "expected an empty line");
  if (lines[3] == "CoT=True") {
    parsed.cot = true;
  } else if (lines[3] != "CoT=False") {
    throw FormatError(4, "expected 'CoT=True' or 'CoT=False'");
  }
  if (!lines[4].empty()) throw FormatError(5, "expected an empty line");
  for (std::size_t i = 5; i < lines.size(); ++i) {
    std::string_view key, answer;
    const auto line_no = static_cast<std::uint64_t>(i + 1);
    if (!split_link(lines[i], key, answer) || answer.size() < 2 || answer.front() != '\'' || answer.back() != '\'') {
      throw FormatError(line_no, "expected \"KEY = 'ANSWER'\", got '" + shorten(lines[i]) + "'");
    }
    if (!is_hash(key)) throw FormatError(line_no, "query key is not a hash of letters");
    parsed.queries.push_back({std::string(key), std::string(answer.substr(1, answer.size() - 2))});
  }
  return parsed;
}

std::unordered_map<std::string, std::string> parse_answer_lines(std::string_view text) {
  std::unordered_map<std::string, std::string> answers;
  for_each_line(text, false, [&](std::string_view line) {
    std::string_view key, answer;
    if (split_link(line, key, answer) && is_hash(key) && answer.size() >= 2 && answer.front() == '\'' && answer.back() == '\'') {
      answers.emplace(std::string(key), std::string(answer.substr(1, answer.size() - 2)));
    }
  });
  return answers;
}

std::string format_completion(int hops, bool cot, const std::vector<CompletionQuery>& queries) {
  std::string out = "COMPLETION:\nHops=" + std::to_string(hops) + "\n\nCoT=" + (cot ? "True" : "False") + "\n\n";
  for (std::size_t i = 0; i < queries.size(); ++i) {
    if (i > 0) out += '\n';
    out += queries[i].key + " = '" + queries[i].answer + "'";
  }
  return out + "\n";
}

std::string_view final_hash(std::string_view answer) {
  const auto eq = answer.rfind(" = ");
  return eq == std::string_view::npos ? answer : answer.substr(eq + 3);
}

}  // namespace hashhop::bench
