// One query of a HashHop record asked of a server (see endpoint_query.h): the prompt template, max_tokens
// and the stop strings chosen here, so eval and sweep send the same requests.
#include "hashhop/serve/endpoint_query.h"

#include <stdexcept>

namespace hashhop::serve {
namespace {

int default_max_tokens(const QueryOptions& o, const bench::DataRecord& r, std::size_t key_len) {
  if (o.max_tokens > 0) return o.max_tokens;
  const int answer_bytes = static_cast<int>(r.expected.cot ? r.expected.hops * (key_len + 3) : key_len);
  // Tokens are at most bytes for any tokenizer here; a chat reply also writes "KEY = '...'" and may explain.
  return o.template_name == "raw" ? answer_bytes + 16 : 4 * answer_bytes + 256;
}

}  // namespace

void check_query_options(const QueryOptions& o, int parallel) {
  if (o.api != "completions" && o.api != "chat") throw std::invalid_argument("--api: expected completions or chat, got '" + o.api + "'");
  if (o.template_name != "raw" && o.template_name != "chat")
    throw std::invalid_argument("--template: expected raw or chat, got '" + o.template_name + "'");
  if (o.template_name == "chat" && o.api != "chat") throw std::invalid_argument("--template chat: needs --api chat (it sends messages)");
  if (parallel < 1) throw std::invalid_argument("--parallel: must be >= 1");
}

std::string resolve_model_name(const std::string& url, const ClientOptions& client, const std::string& given) {
  if (!given.empty()) return given;
  OpenAIClient probe(parse_endpoint(url), client);
  const auto ids = probe.models();
  if (ids.empty()) throw std::invalid_argument("--model-name: not given, and " + url + "/models lists no model");
  return ids.front();
}

QueryReply ask_query(OpenAIClient& client, const QueryOptions& o, const std::string& model_name,
                     const bench::DataRecord& record, std::size_t index) {
  const auto& expected = record.expected;
  const std::string& key = expected.queries.at(index).key;
  const int max_tokens = default_max_tokens(o, record, key.size());
  QueryReply reply;
  if (o.template_name == "raw") {
    const std::string prompt = raw_prompt(record.prompt, expected.hops, expected.cot, key);
    reply.completion = o.api == "completions" ? client.complete(model_name, prompt, max_tokens, {"'", "\n"})
                                              : client.chat(model_name, {{"user", prompt}}, max_tokens);
    reply.answer = raw_answer(reply.completion.text);
  } else {
    reply.completion = client.chat(model_name, chat_messages(record.prompt, expected.hops, expected.cot, key), max_tokens);
    reply.answer = free_text_answer(reply.completion.text, key);
  }
  return reply;
}

}  // namespace hashhop::serve
