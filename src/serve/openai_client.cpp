// OpenAI-compatible HTTP client over cpp-httplib (see openai_client.h): JSON bodies, bearer auth,
// exponential backoff on 429/5xx/connection errors. Exercised by tests/serve (a real server on 127.0.0.1).
#include "hashhop/serve/openai_client.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

namespace hashhop::serve {
namespace {

using nlohmann::json;

std::string snippet(const std::string& body) {  // one line of a server's reply, for error messages
  std::string out;
  try {
    const json j = json::parse(body);
    if (j.is_object() && j.contains("error")) {
      const auto& e = j["error"];
      out = e.is_object() && e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : e.dump();
    }
  } catch (const std::exception&) {
  }
  if (out.empty()) out = body;
  if (out.size() > 200) out = out.substr(0, 200) + "...";
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

Completion read_completion(const std::string& body, bool chat) {
  Completion c;
  json j;
  try {
    j = json::parse(body);
  } catch (const std::exception& e) {
    throw ApiError(200, std::string("reply is not JSON: ") + snippet(body));
  }
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty())
    throw ApiError(200, "reply has no choices: " + snippet(body));
  const auto& choice = j["choices"][0];
  const json* text = nullptr;
  if (chat && choice.contains("message") && choice["message"].is_object() && choice["message"].contains("content"))
    text = &choice["message"]["content"];
  else if (!chat && choice.contains("text"))
    text = &choice["text"];
  if (text == nullptr || !(text->is_string() || text->is_null()))
    throw ApiError(200, std::string("reply has no ") + (chat ? "choices[0].message.content" : "choices[0].text") + ": " + snippet(body));
  if (text->is_string()) c.text = text->get<std::string>();
  if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) c.finish_reason = choice["finish_reason"];
  if (j.contains("usage") && j["usage"].is_object()) {
    const auto& u = j["usage"];
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer()) c.prompt_tokens = u["prompt_tokens"];
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) c.completion_tokens = u["completion_tokens"];
  }
  return c;
}

}  // namespace

Endpoint parse_endpoint(const std::string& url) {
  const auto fail = [&](const std::string& why) { throw std::invalid_argument("--endpoint: " + why + ", got '" + url + "'"); };
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) fail("expected a URL like http://127.0.0.1:8000/v1");
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") fail("the scheme must be http or https");
  const std::size_t path_at = url.find('/', scheme_end + 3);
  Endpoint e;
  e.scheme_host_port = url.substr(0, path_at);
  if (e.scheme_host_port.size() == scheme_end + 3) fail("no host");
  std::string path = path_at == std::string::npos ? "" : url.substr(path_at);
  while (!path.empty() && path.back() == '/') path.pop_back();
  e.base_path = path.empty() ? "/v1" : path;
  return e;
}

double backoff_seconds(const ClientOptions& options, int attempt, double retry_after_s) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const double base = std::min(options.backoff_max_s, options.backoff_s * std::pow(2.0, std::max(0, attempt - 1)));
  // Jitter spreads the retries of many parallel clients that failed together.
  const double wait = base * std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  return std::max(wait, std::min(retry_after_s, options.backoff_max_s));
}

OpenAIClient::OpenAIClient(const Endpoint& endpoint, ClientOptions options)
    : endpoint_(endpoint), options_(std::move(options)), http_(std::make_unique<httplib::Client>(endpoint.scheme_host_port)) {
  if (!http_->is_valid()) throw std::invalid_argument("--endpoint: cannot use '" + endpoint.scheme_host_port + "'");
  const auto seconds = static_cast<time_t>(options_.timeout_s);
  const auto micros = static_cast<time_t>((options_.timeout_s - static_cast<double>(seconds)) * 1e6);
  http_->set_connection_timeout(seconds, micros);
  http_->set_read_timeout(seconds, micros);
  http_->set_write_timeout(seconds, micros);
  http_->set_keep_alive(true);
  if (!options_.api_key.empty()) http_->set_bearer_token_auth(options_.api_key);
}

OpenAIClient::~OpenAIClient() = default;

std::string OpenAIClient::post(const std::string& path, const std::string& body, double* latency_s, int* attempts) {
  const std::string url_path = endpoint_.base_path + path;
  for (int attempt = 1;; ++attempt) {
    const auto start = std::chrono::steady_clock::now();
    auto result = http_->Post(url_path, body, "application/json");
    *latency_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    *attempts = attempt;
    std::string why;
    double retry_after = 0;
    int status = 0;
    if (!result) {
      why = "POST " + endpoint_.scheme_host_port + url_path + ": " + httplib::to_string(result.error());
    } else {
      status = result->status;
      if (status >= 200 && status < 300) return result->body;
      why = "POST " + endpoint_.scheme_host_port + url_path + ": HTTP " + std::to_string(status) + ": " + snippet(result->body);
      // Only overload and server faults are worth another try; other 4xx mean the request is wrong.
      if (status != 429 && status < 500) throw ApiError(status, why);
      try {
        retry_after = std::stod(result->get_header_value("Retry-After"));
      } catch (const std::exception&) {
      }
    }
    if (attempt > options_.retries) throw ApiError(status, why + " (after " + std::to_string(attempt) + " attempts)");
    std::this_thread::sleep_for(std::chrono::duration<double>(backoff_seconds(options_, attempt, retry_after)));
  }
}

std::string OpenAIClient::get(const std::string& path) {
  const std::string url_path = endpoint_.base_path + path;
  for (int attempt = 1;; ++attempt) {
    auto result = http_->Get(url_path);
    std::string why;
    if (!result) {
      why = "GET " + endpoint_.scheme_host_port + url_path + ": " + httplib::to_string(result.error());
    } else if (result->status >= 200 && result->status < 300) {
      return result->body;
    } else {
      why = "GET " + endpoint_.scheme_host_port + url_path + ": HTTP " + std::to_string(result->status) + ": " + snippet(result->body);
      if (result->status != 429 && result->status < 500) throw ApiError(result->status, why);
    }
    if (attempt > options_.retries) throw ApiError(result ? result->status : 0, why);
    std::this_thread::sleep_for(std::chrono::duration<double>(backoff_seconds(options_, attempt)));
  }
}

Completion OpenAIClient::complete(const std::string& model, const std::string& prompt, int max_tokens,
                                  const std::vector<std::string>& stop) {
  json request = {{"model", model}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
  if (!stop.empty()) request["stop"] = stop;
  double latency = 0;
  int attempts = 0;
  Completion c = read_completion(post("/completions", request.dump(), &latency, &attempts), false);
  c.latency_s = latency;
  c.attempts = attempts;
  return c;
}

Completion OpenAIClient::chat(const std::string& model, const std::vector<ChatMessage>& messages, int max_tokens) {
  json list = json::array();
  for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  const json request = {{"model", model}, {"messages", list}, {"max_tokens", max_tokens}, {"temperature", 0}};
  double latency = 0;
  int attempts = 0;
  Completion c = read_completion(post("/chat/completions", request.dump(), &latency, &attempts), true);
  c.latency_s = latency;
  c.attempts = attempts;
  return c;
}

std::vector<std::string> OpenAIClient::models() {
  const std::string body = get("/models");
  std::vector<std::string> ids;
  try {
    const json j = json::parse(body);
    for (const auto& m : j.at("data")) ids.push_back(m.at("id").get<std::string>());
  } catch (const std::exception&) {
    throw ApiError(200, "GET " + endpoint_.base_path + "/models: reply has no data[].id: " + snippet(body));
  }
  return ids;
}

}  // namespace hashhop::serve
