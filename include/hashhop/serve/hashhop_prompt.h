// HashHop prompts as an OpenAI-compatible API carries them: Magic's raw form (prompt, "\n", completion
// header, "KEY = '") and a chat form (instruction + few-shot examples). Used by `hashhop eval --endpoint` and `hashhop serve`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hashhop::serve {

// "COMPLETION:\nHops=H\n\nCoT=True|False\n\n": the header the scorer and the models read hops and CoT from.
std::string completion_header(int hops, bool cot);

// Magic's raw form of one query: body + "\n" + header + KEY + " = '". The answer ends at the next "'".
std::string raw_prompt(std::string_view body, int hops, bool cot, std::string_view key);

// A raw-form prompt taken apart (views into the text). `completion` runs from the header to the open
// "KEY = '" and may hold answered "K = 'A'" lines before it (a model continues all of it).
struct RawQuery {
  std::string_view body;        // the HashHop prompt, without the "\n" before the header
  std::string completion;       // header ... "KEY = '"
  int hops = 0;
  bool cot = false;
  std::string key;
  bool chat_form = false;       // parsed from chat_messages()'s question (answer as "KEY = 'A'")
};
// Throws std::invalid_argument with a one-line reason for anything else (no header, a bad Hops= or
// CoT= line, no open "KEY = '" at the end, a body that is not a HashHop prompt).
RawQuery parse_raw_prompt(std::string_view text);

// The question chat_messages() ends with ("Context:\n" BODY "\n\nQuery: KEY (hops=H...)..."), taken apart
// the same way, so `hashhop serve` answers the chat template too. Throws std::invalid_argument.
RawQuery parse_chat_question(std::string_view content);

// The answer in a raw-form completion: the text before the first "'" or newline, trimmed.
std::string raw_answer(std::string_view completion);

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
};
// Instruction, two solved examples of the same hops/CoT/hash length (generated, fixed seeds), then the
// question. The examples show the answer format: KEY = 'ANSWER'.
std::vector<ChatMessage> chat_messages(std::string_view body, int hops, bool cot, std::string_view key);

// The answer read from free text: the last "KEY = '...'" quote for this key, else the last '...' quote,
// else the last run of hash letters (with CoT: the last "A = B = ..." chain of them). Empty if none.
std::string free_text_answer(std::string_view text, std::string_view key);

}  // namespace hashhop::serve
