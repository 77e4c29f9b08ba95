// Raw and chat forms of HashHop queries for OpenAI-compatible APIs, and reading answers back (see
// hashhop_prompt.h). Torch-free; used by `hashhop eval --endpoint` (client) and `hashhop serve` (server).
#include "hashhop/serve/hashhop_prompt.h"

#include <cctype>
#include <stdexcept>

#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"

namespace hashhop::serve {
namespace {

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// A CoT chain "A = B = C" or a single hash: what a quoted answer may hold.
bool is_chain(std::string_view s) {
  if (s.empty()) return false;
  std::size_t i = 0;
  while (true) {
    const std::size_t start = i;
    while (i < s.size() && is_letter(s[i])) ++i;
    if (i == start) return false;
    if (i == s.size()) return true;
    if (s.substr(i, 3) != " = ") return false;
    i += 3;
  }
}

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string question(std::string_view key, int hops, bool cot) {
  return "Query: " + std::string(key) + " (hops=" + std::to_string(hops) + (cot ? ", write every hash on the way" : "") +
         "). Answer in the form " + std::string(key) + " = '" + (cot ? "H1 = H2 = ..." : "HASH") + "'.";
}

}  // namespace

std::string completion_header(int hops, bool cot) {
  std::string header = bench::format_completion(hops, cot, {});  // the header and a final "\n"
  header.pop_back();
  return header;
}

std::string raw_prompt(std::string_view body, int hops, bool cot, std::string_view key) {
  std::string out;
  out.reserve(body.size() + 64 + key.size());
  out.append(body).append("\n").append(completion_header(hops, cot)).append(key).append(" = '");
  return out;
}

RawQuery parse_raw_prompt(std::string_view text) {
  static constexpr std::string_view kMark = "\nCOMPLETION:\nHops=";
  const std::size_t at = text.rfind(kMark);
  if (at == std::string_view::npos)
    throw std::invalid_argument("not a HashHop prompt: no \"\\nCOMPLETION:\\nHops=\" header after the prompt");
  RawQuery q;
  q.body = text.substr(0, at);
  q.completion = std::string(text.substr(at + 1));
  std::size_t i = at + kMark.size();
  const std::size_t digits = i;
  while (i < text.size() && i - digits < 9 && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == digits || text.substr(i, 6) != "\n\nCoT=") throw std::invalid_argument("completion header: expected Hops=N then a blank line and CoT=");
  q.hops = std::stoi(std::string(text.substr(digits, i - digits)));
  i += 6;
  if (text.substr(i, 4) == "True") {
    q.cot = true;
    i += 4;
  } else if (text.substr(i, 5) == "False") {
    i += 5;
  } else {
    throw std::invalid_argument("completion header: CoT must be True or False");
  }
  if (text.substr(i, 2) != "\n\n") throw std::invalid_argument("completion header: expected a blank line after CoT=");
  i += 2;
  const std::string_view rest = text.substr(i);
  if (rest.size() < 4 || rest.substr(rest.size() - 4) != " = '")
    throw std::invalid_argument("the prompt must end with an open query \"KEY = '\" after the completion header");
  const std::size_t line_start = rest.rfind('\n') == std::string_view::npos ? 0 : rest.rfind('\n') + 1;
  q.key = std::string(rest.substr(line_start, rest.size() - 4 - line_start));
  if (!bench::is_hash(q.key)) throw std::invalid_argument("query key '" + q.key.substr(0, 40) + "' is not a hash");
  try {
    bench::check_prompt_ends(q.body);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("not a HashHop prompt: ") + e.what());
  }
  return q;
}

RawQuery parse_chat_question(std::string_view content) {
  static constexpr std::string_view kContext = "Context:\n", kQuery = "\n\nQuery: ", kHops = " (hops=", kCot = ", write every hash on the way";
  const std::size_t at = content.rfind(kQuery);
  if (content.substr(0, kContext.size()) != kContext || at == std::string_view::npos || at < kContext.size())
    throw std::invalid_argument("not a HashHop question: expected \"Context:\\n\" + prompt + \"\\n\\nQuery: KEY (hops=H)\" (or a raw HashHop prompt)");
  RawQuery q;
  q.chat_form = true;
  q.body = content.substr(kContext.size(), at - kContext.size());
  const std::string_view rest = content.substr(at + kQuery.size());
  const std::size_t hops_at = rest.find(kHops);
  if (hops_at == std::string_view::npos) throw std::invalid_argument("question: expected \"Query: KEY (hops=H)\"");
  q.key = std::string(rest.substr(0, hops_at));
  std::size_t i = hops_at + kHops.size();
  const std::size_t digits = i;
  while (i < rest.size() && i - digits < 9 && std::isdigit(static_cast<unsigned char>(rest[i]))) ++i;
  if (i == digits) throw std::invalid_argument("question: expected a number after hops=");
  q.hops = std::stoi(std::string(rest.substr(digits, i - digits)));
  q.cot = rest.substr(i, kCot.size()) == kCot;
  if (!bench::is_hash(q.key)) throw std::invalid_argument("query key '" + q.key.substr(0, 40) + "' is not a hash");
  try {
    bench::check_prompt_ends(q.body);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("not a HashHop prompt: ") + e.what());
  }
  q.completion = completion_header(q.hops, q.cot) + q.key + " = '";
  return q;
}

std::string raw_answer(std::string_view completion) {
  const std::size_t end = completion.find_first_of("'\n");
  return trim(completion.substr(0, end));
}

std::vector<ChatMessage> chat_messages(std::string_view body, int hops, bool cot, std::string_view key) {
  std::vector<ChatMessage> out;
  out.push_back({"system",
                 "You answer HashHop questions. Each line of the context assigns a hash to another hash: `A = B` means "
                 "A points to B, and a quoted value ends its chain. Start at the query hash and follow the links exactly "
                 "the number of hops asked. " +
                     std::string(cot ? "Write every hash you pass, in order, separated by \" = \"; the last one is the hash you reach. "
                                     : "Write only the hash you reach. ") +
                     "Reply with one line of the form KEY = 'ANSWER' and nothing else."});
  // Two solved examples in the same shape as the question (fixed seeds: every run sends the same prompt).
  for (std::uint64_t seed = 1; seed <= 2; ++seed) {
    bench::GenConfig config;
    config.hops = hops;
    config.cot = cot;
    config.hash_len = static_cast<int>(std::max<std::size_t>(2, std::min<std::size_t>(key.size(), 16)));
    config.num_queries = 1;
    config.n_chars = static_cast<std::uint64_t>((2 * config.hash_len + 3) * hops * 6);
    config.seed = seed;
    const bench::HashHopProblem problem(config);
    const std::string example_key = problem.hash(0, 0);
    out.push_back({"user", "Context:\n" + problem.prompt() + "\n\n" + question(example_key, hops, cot)});
    out.push_back({"assistant", example_key + " = '" + problem.target(0) + "'"});
  }
  out.push_back({"user", "Context:\n" + std::string(body) + "\n\n" + question(key, hops, cot)});
  return out;
}

std::string free_text_answer(std::string_view text, std::string_view key) {
  // 1. "KEY = '...'" for this key (the requested form), the last one.
  const std::string marker = std::string(key) + " = '";
  for (std::size_t at = text.rfind(marker); at != std::string_view::npos; at = at == 0 ? std::string_view::npos : text.rfind(marker, at - 1)) {
    const std::size_t begin = at + marker.size();
    const std::size_t end = text.find('\'', begin);
    if (end != std::string_view::npos && is_chain(text.substr(begin, end - begin))) return std::string(text.substr(begin, end - begin));
  }
  // 2. The last quoted hash or chain.
  for (std::size_t close = text.rfind('\''); close != std::string_view::npos && close > 0; close = text.rfind('\'', close - 1)) {
    const std::size_t open = text.rfind('\'', close - 1);
    if (open == std::string_view::npos) break;
    const auto inside = text.substr(open + 1, close - open - 1);
    if (is_chain(inside) && inside != key) return std::string(inside);
  }
  // 3. The last run of hash letters (a chain "A = B" if it ends one) that is not the key itself.
  std::size_t end = text.size();
  while (end > 0) {
    while (end > 0 && !is_letter(text[end - 1])) --end;
    std::size_t begin = end;
    while (begin > 0 && is_letter(text[begin - 1])) --begin;
    if (begin == end) break;
    if (text.substr(begin, end - begin) != key) {
      while (begin >= 3 + 1 && text.substr(begin - 3, 3) == " = " && is_letter(text[begin - 4])) {
        std::size_t b = begin - 3;
        while (b > 0 && is_letter(text[b - 1])) --b;
        if (text.substr(b, begin - 3 - b) == key) break;
        begin = b;
      }
      return std::string(text.substr(begin, end - begin));
    }
    end = begin;
  }
  return "";
}

}  // namespace hashhop::serve
