// `hashhop eval --endpoint URL`: every query of a HashHop JSONL asked of an OpenAI-compatible server,
// N at a time, logged to a resumable predictions file and scored with bench::Scorer.
#pragma once

#include <cstdint>
#include <string>

#include "hashhop/bench/scorer.h"
#include "hashhop/serve/openai_client.h"

namespace hashhop::serve {

struct EndpointEvalOptions {
  std::string data;              // HashHop JSONL (prompt + completion per record)
  std::string endpoint;          // base URL, e.g. http://127.0.0.1:8000/v1
  std::string api = "completions";  // completions or chat
  std::string template_name = "raw";  // raw (Magic's form) or chat (instruction + few-shot)
  std::string model_name;        // empty: the first id of GET /v1/models
  std::string predictions;       // resumable per-query JSONL; empty: none
  ClientOptions client;
  int parallel = 4;
  std::uint64_t limit = 0;       // records; 0: all
  int max_tokens = 0;            // 0: from the answer's length (raw) or generous (chat)
  std::uint64_t progress_total = 0;  // records expected, for the progress bar
};

struct EndpointEvalResult {
  bench::ScoreReport report;
  std::string model_name;
  std::uint64_t records = 0, queries = 0;
  std::uint64_t resumed = 0;     // answers taken from the predictions file
  std::uint64_t requests = 0;    // queries asked in this run
  std::uint64_t retries = 0;     // extra attempts
  double seconds = 0;
  double latency_mean_s = 0, latency_p50_s = 0, latency_p95_s = 0, latency_max_s = 0;
  std::int64_t prompt_tokens = 0, completion_tokens = 0;  // summed where the server reported usage
};

// Throws io::InputError for bad data (file, line, field), ApiError (with the record's file:line and key)
// when a query fails after its retries, std::invalid_argument for bad options.
EndpointEvalResult run_endpoint_eval(const EndpointEvalOptions& options);

}  // namespace hashhop::serve
