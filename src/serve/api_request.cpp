// Parsing and checking OpenAI-compatible requests, and their replies (see api_request.h). Every bad
// field is a 400 naming it; tests/python/test_serve.py sends malformed, mistyped and missing fields.
#include "hashhop/serve/api_request.h"

#include <algorithm>
#include <ctime>

namespace hashhop::serve {
namespace {

using nlohmann::json;

std::string type_name(const json& v) { return v.type_name(); }

std::string text_content(const json& content, std::size_t index) {  // a chat message's content
  const std::string field = "messages[" + std::to_string(index) + "].content";
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {  // [{"type": "text", "text": "..."}]: the parts are joined
    std::string out;
    for (const auto& part : content) {
      if (!part.is_object() || !part.contains("text") || !part["text"].is_string())
        throw bad_request(field + ": expected a string or an array of {\"type\": \"text\", \"text\": ...} parts");
      out += part["text"].get<std::string>();
    }
    return out;
  }
  throw bad_request(field + ": expected a string, got " + type_name(content));
}

}  // namespace

std::string error_body(int status, const std::string& type, const std::string& message) {
  return json{{"error", {{"message", message}, {"type", type}, {"code", status}}}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

ApiRequest parse_api_request(std::string_view body, bool chat) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    std::string why = e.what();
    if (why.size() > 200) why.resize(200);
    throw bad_request("invalid JSON body: " + why);
  }
  if (!j.is_object()) throw bad_request("the request body must be a JSON object, got " + type_name(j));
  ApiRequest r;
  r.chat = chat;
  if (j.contains("model") && !j["model"].is_null()) {
    if (!j["model"].is_string()) throw bad_request("model: expected a string, got " + type_name(j["model"]));
    r.model = j["model"].get<std::string>();
  }
  if (chat) {
    if (!j.contains("messages")) throw bad_request("messages: missing");
    const auto& messages = j["messages"];
    if (!messages.is_array() || messages.empty()) throw bad_request("messages: expected a non-empty array");
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const auto& m = messages[i];
      const std::string field = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) throw bad_request(field + ": expected an object, got " + type_name(m));
      if (!m.contains("role") || !m["role"].is_string()) throw bad_request(field + ".role: missing or not a string");
      if (!m.contains("content")) throw bad_request(field + ".content: missing");
      const std::string content = text_content(m["content"], i);
      if (i + 1 == messages.size()) {
        if (m["role"] != "user") throw bad_request(field + ".role: the last message must be the user's question");
        r.prompts.push_back(content);
      }
    }
  } else {
    if (!j.contains("prompt")) throw bad_request("prompt: missing");
    const auto& prompt = j["prompt"];
    if (prompt.is_string()) {
      r.prompts.push_back(prompt.get<std::string>());
    } else if (prompt.is_array() && !prompt.empty() && std::all_of(prompt.begin(), prompt.end(), [](const json& p) { return p.is_string(); })) {
      if (prompt.size() > kMaxPromptsPerRequest)
        throw bad_request("prompt: at most " + std::to_string(kMaxPromptsPerRequest) + " prompts per request, got " + std::to_string(prompt.size()));
      for (const auto& p : prompt) r.prompts.push_back(p.get<std::string>());
    } else if (prompt.is_array() && !prompt.empty() && (prompt[0].is_number_integer() || prompt[0].is_array())) {
      throw bad_request("prompt: token ids are not supported (the model reads text): send a string");
    } else {
      throw bad_request("prompt: expected a string or a non-empty array of strings, got " + type_name(prompt));
    }
  }
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (!j.contains(name) || j[name].is_null()) continue;
    if (!j[name].is_number_integer() || j[name].get<std::int64_t>() < 0)
      throw bad_request(std::string(name) + ": expected a non-negative integer, got " + j[name].dump().substr(0, 40));
    r.max_tokens = j[name].get<std::int64_t>();
  }
  if (j.contains("stop") && !j["stop"].is_null()) {
    const auto& stop = j["stop"];
    if (stop.is_string()) {
      r.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array() && stop.size() <= 4 && std::all_of(stop.begin(), stop.end(), [](const json& s) { return s.is_string(); })) {
      for (const auto& s : stop) r.stop.push_back(s.get<std::string>());
    } else {
      throw bad_request("stop: expected a string or an array of at most 4 strings");
    }
  }
  for (const char* name : {"temperature", "top_p", "presence_penalty", "frequency_penalty"})
    if (j.contains(name) && !j[name].is_null() && !j[name].is_number())
      throw bad_request(std::string(name) + ": expected a number, got " + type_name(j[name]));
  if (j.contains("n") && !j["n"].is_null() && !(j["n"].is_number_integer() && j["n"].get<std::int64_t>() == 1))
    throw bad_request("n: only n=1 is supported (answers are greedy)");
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) throw bad_request("stream: expected a boolean, got " + type_name(j["stream"]));
    if (j["stream"].get<bool>()) throw bad_request("stream: streaming is not supported; send stream=false");
  }
  return r;
}

Choice make_choice(const ApiRequest& request, const RawQuery& query, const std::string& answer, std::size_t prompt_bytes) {
  Choice c;
  c.finish_reason = "stop";
  if (query.chat_form) {
    c.text = query.key + " = '" + answer + "'";
  } else {
    c.text = answer;
    // The model stops at its closing quote; a client that did not ask to stop there gets the quote too.
    if (std::find(request.stop.begin(), request.stop.end(), "'") == request.stop.end()) c.text += "'";
  }
  if (request.max_tokens && static_cast<std::size_t>(*request.max_tokens) < c.text.size()) {
    c.text.resize(static_cast<std::size_t>(*request.max_tokens));
    c.finish_reason = "length";
  }
  c.prompt_tokens = static_cast<std::int64_t>(prompt_bytes);
  c.completion_tokens = static_cast<std::int64_t>(c.text.size());
  return c;
}

json completion_reply(const ApiRequest& request, const std::string& model, const std::vector<Choice>& choices, std::uint64_t id) {
  json list = json::array();
  std::int64_t prompt_tokens = 0, completion_tokens = 0;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    const auto& c = choices[i];
    if (request.chat)
      list.push_back({{"index", i}, {"message", {{"role", "assistant"}, {"content", c.text}}}, {"finish_reason", c.finish_reason}});
    else
      list.push_back({{"index", i}, {"text", c.text}, {"logprobs", nullptr}, {"finish_reason", c.finish_reason}});
    prompt_tokens += c.prompt_tokens;
    completion_tokens += c.completion_tokens;
  }
  return {{"id", (request.chat ? "chatcmpl-" : "cmpl-") + std::to_string(id)},
          {"object", request.chat ? "chat.completion" : "text_completion"},
          {"created", static_cast<std::int64_t>(std::time(nullptr))},
          {"model", model},
          {"choices", list},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}, {"total_tokens", prompt_tokens + completion_tokens}}}};
}

}  // namespace hashhop::serve
