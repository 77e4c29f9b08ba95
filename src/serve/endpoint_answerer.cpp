// A server as a sweep's answerer (see endpoint_answerer.h): a record's queries are split over up to
// `parallel` threads, each with its own keep-alive client; the first failure is rethrown after all join.
#include "hashhop/serve/endpoint_answerer.h"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <exception>
#include <mutex>
#include <thread>

#include "hashhop/bench/magic_format.h"

namespace hashhop::serve {

EndpointAnswerer::EndpointAnswerer(EndpointAnswererOptions options) : options_(std::move(options)) {
  check_query_options(options_.query, options_.parallel);
  endpoint_ = parse_endpoint(options_.endpoint);
  // A server that closes a connection mid-request is a connection error to retry, not a fatal SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  options_.model_name = resolve_model_name(options_.endpoint, options_.client, options_.model_name);
}

EndpointAnswerer::~EndpointAnswerer() = default;

std::string EndpointAnswerer::answer(const bench::DataRecord& record) {
  const auto& queries = record.expected.queries;
  std::vector<QueryReply> replies(queries.size());
  const std::size_t threads = std::min<std::size_t>(static_cast<std::size_t>(options_.parallel), queries.size());
  while (clients_.size() < threads) clients_.push_back(std::make_unique<OpenAIClient>(endpoint_, options_.client));
  std::atomic<std::size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  const auto work = [&](OpenAIClient& client) {
    for (std::size_t i = next++; i < queries.size(); i = next++) {
      try {
        replies[i] = ask_query(client, options_.query, options_.model_name, record, i);
      } catch (const ApiError& e) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::make_exception_ptr(ApiError(e.status(), "query '" + queries[i].key + "': " + e.what()));
        next = queries.size();  // the others stop after their request in flight
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        next = queries.size();
      }
    }
  };
  if (threads <= 1) {
    if (threads == 1) work(*clients_[0]);
  } else {
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < threads; ++t) pool.emplace_back(work, std::ref(*clients_[t]));
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
  std::vector<bench::CompletionQuery> answered;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const auto& c = replies[i].completion;
    ++stats_.requests;
    stats_.retries += static_cast<std::uint64_t>(std::max(0, c.attempts - 1));
    stats_.prompt_tokens += std::max<std::int64_t>(0, c.prompt_tokens);
    stats_.completion_tokens += std::max<std::int64_t>(0, c.completion_tokens);
    answered.push_back({queries[i].key, replies[i].answer});
  }
  return bench::format_completion(record.expected.hops, record.expected.cot, answered);
}

}  // namespace hashhop::serve
