// An OpenAI-compatible server as a bench::Answerer: every query of a record asked with the same requests
// as `eval --endpoint` (endpoint_query.h), up to `parallel` at a time. `hashhop sweep --endpoint` uses it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hashhop/bench/scorer.h"
#include "hashhop/serve/endpoint_query.h"
#include "hashhop/serve/openai_client.h"

namespace hashhop::serve {

struct EndpointAnswererOptions {
  std::string endpoint;       // base URL, e.g. http://127.0.0.1:8000/v1
  std::string model_name;     // empty: the first id of GET /v1/models
  QueryOptions query;         // API, template, max_tokens
  ClientOptions client;       // timeout, retries, backoff, API key
  int parallel = 4;           // queries of one record in flight (one keep-alive connection each)
};

struct EndpointAnswererStats {
  std::uint64_t requests = 0, retries = 0;
  std::int64_t prompt_tokens = 0, completion_tokens = 0;  // summed where the server reported usage
};

class EndpointAnswerer {
 public:
  // Checks the options and resolves the model name (asks /v1/models when none is given), so a wrong URL
  // fails before any work. Throws std::invalid_argument or ApiError.
  explicit EndpointAnswerer(EndpointAnswererOptions options);
  ~EndpointAnswerer();

  // The completion text (Magic's layout) with the server's answer for each query of the record. Throws
  // ApiError naming the query's key when one fails after its retries. Not thread-safe.
  std::string answer(const bench::DataRecord& record);

  const std::string& model_name() const { return options_.model_name; }
  const EndpointAnswererStats& stats() const { return stats_; }

 private:
  EndpointAnswererOptions options_;
  Endpoint endpoint_;
  std::vector<std::unique_ptr<OpenAIClient>> clients_;  // one per parallel slot, kept across records
  EndpointAnswererStats stats_;
};

}  // namespace hashhop::serve
