// Requests and replies of the OpenAI-compatible API that `hashhop serve` speaks: strict field checks
// (every error is a 4xx with a one-line message naming the field) and the reply JSON. Torch-free.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "hashhop/serve/hashhop_prompt.h"

namespace hashhop::serve {

// An error reply: HTTP status, OpenAI's error type, message. Body: {"error": {"message", "type", "code"}}.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, std::string type, const std::string& message)
      : std::runtime_error(message), status_(status), type_(std::move(type)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string type_;
};
std::string error_body(int status, const std::string& type, const std::string& message);
inline HttpError bad_request(const std::string& message) { return HttpError(400, "invalid_request_error", message); }

struct ApiRequest {
  bool chat = false;                 // /v1/chat/completions
  std::string model;                 // empty when absent
  std::vector<std::string> prompts;  // completions: the prompt(s); chat: the last user message
  std::optional<std::int64_t> max_tokens;
  std::vector<std::string> stop;
};
inline constexpr std::size_t kMaxPromptsPerRequest = 64;

// Parses and checks a request body (throws HttpError 400 naming the field). Unknown fields are ignored,
// as OpenAI's clients send many; stream=true, n>1 and token-id prompts are refused.
ApiRequest parse_api_request(std::string_view body, bool chat);

// One answered prompt of a request.
struct Choice {
  std::string text;
  std::string finish_reason;  // stop or length
  std::int64_t prompt_tokens = 0, completion_tokens = 0;  // bytes: the models read bytes
};
// The reply text for a query: the answer the model wrote up to its closing quote. A raw prompt gets it
// as a completion continues it (with the closing quote unless "'" is a stop string); a chat-template
// question gets "KEY = 'ANSWER'"; then max_tokens (bytes) cuts it.
Choice make_choice(const ApiRequest& request, const RawQuery& query, const std::string& answer, std::size_t prompt_bytes);

nlohmann::json completion_reply(const ApiRequest& request, const std::string& model, const std::vector<Choice>& choices,
                                std::uint64_t id);

}  // namespace hashhop::serve
