// One HashHop query asked of an OpenAI-compatible server: the request (raw or chat template, completions
// or chat API) and the answer read from the reply. Shared by `eval --endpoint` and `sweep --endpoint`.
#pragma once

#include <cstddef>
#include <string>

#include "hashhop/bench/scorer.h"
#include "hashhop/serve/openai_client.h"

namespace hashhop::serve {

struct QueryOptions {
  std::string api = "completions";     // completions or chat
  std::string template_name = "raw";   // raw (Magic's form) or chat (instruction + few-shot)
  int max_tokens = 0;                  // 0: from the answer's length (raw) or generous (chat)
};

// Throws std::invalid_argument naming --api, --template or --parallel when the options cannot work.
void check_query_options(const QueryOptions& options, int parallel);

struct QueryReply {
  Completion completion;  // the server's reply (text, finish reason, usage, latency, attempts)
  std::string answer;     // read from it: raw, up to the first quote; chat, from free text
};

// The model to ask: `given`, else the first id of GET BASE/models (std::invalid_argument when none).
std::string resolve_model_name(const std::string& url, const ClientOptions& client, const std::string& given);

// Asks query `index` of the record. Throws ApiError when it fails after the client's retries.
QueryReply ask_query(OpenAIClient& client, const QueryOptions& options, const std::string& model_name,
                     const bench::DataRecord& record, std::size_t index);

}  // namespace hashhop::serve
