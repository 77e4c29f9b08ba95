// A client for OpenAI-compatible servers (vLLM, llama.cpp, TGI, SGLang, `hashhop serve`): /v1/completions,
// /v1/chat/completions and /v1/models over cpp-httplib, with timeouts and retries. Used by `hashhop eval --endpoint`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hashhop/serve/hashhop_prompt.h"

namespace httplib {
class Client;
}

namespace hashhop::serve {

// "http://host:port" or "http://host:port/v1" (OpenAI's base_url): requests go to BASE/completions etc.
// A URL with no path gets "/v1". Throws std::invalid_argument naming --endpoint.
struct Endpoint {
  std::string scheme_host_port;  // "http://127.0.0.1:8080"
  std::string base_path;         // "/v1"
};
Endpoint parse_endpoint(const std::string& url);

struct ClientOptions {
  double timeout_s = 600;       // connect, read and write timeouts of one attempt
  int retries = 5;              // attempts after the first, on 429, 5xx and connection errors
  double backoff_s = 0.5;       // first wait; doubles per attempt (with jitter), capped at backoff_max_s
  double backoff_max_s = 30;
  std::string api_key;          // sent as "Authorization: Bearer KEY" when not empty
};

struct Completion {
  std::string text;               // choices[0].text or choices[0].message.content
  std::string finish_reason;
  std::int64_t prompt_tokens = -1;      // usage, -1 where the server reported none
  std::int64_t completion_tokens = -1;
  double latency_s = 0;           // of the successful attempt
  int attempts = 0;
};

// Failure after the retries (or at once for a 4xx other than 429): one line with the HTTP status and
// the server's error message.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }  // 0: no HTTP response (connection error, timeout)

 private:
  int status_;
};

// One connection (keep-alive); not thread-safe: use one client per thread.
class OpenAIClient {
 public:
  OpenAIClient(const Endpoint& endpoint, ClientOptions options);
  ~OpenAIClient();
  OpenAIClient(const OpenAIClient&) = delete;
  OpenAIClient& operator=(const OpenAIClient&) = delete;

  Completion complete(const std::string& model, const std::string& prompt, int max_tokens, const std::vector<std::string>& stop);
  Completion chat(const std::string& model, const std::vector<ChatMessage>& messages, int max_tokens);
  std::vector<std::string> models();  // GET /v1/models: the ids

 private:
  std::string post(const std::string& path, const std::string& body, double* latency_s, int* attempts);
  std::string get(const std::string& path);

  Endpoint endpoint_;
  ClientOptions options_;
  std::unique_ptr<httplib::Client> http_;
};

// The wait before retry `attempt` (1-based): backoff_s·2^(attempt-1), at most backoff_max_s, times a
// jitter factor in [0.5, 1]; a Retry-After header (seconds) is honoured when longer.
double backoff_seconds(const ClientOptions& options, int attempt, double retry_after_s = 0);

}  // namespace hashhop::serve
