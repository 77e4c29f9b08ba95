// `hashhop eval --endpoint` (see endpoint_eval.h): the data file is read once, its queries go to a
// bounded job queue, --parallel workers (one HTTP client each) answer them; a record is scored when its
// last answer arrives. Tested end to end against `hashhop serve` by tests/python/test_serve.py.
#include "hashhop/serve/endpoint_eval.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "hashhop/bench/magic_format.h"
#include "hashhop/io/files.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"
#include "hashhop/io/progress.h"
#include "hashhop/serve/endpoint_query.h"
#include "hashhop/serve/predictions_log.h"

namespace hashhop::serve {
namespace {

struct Record {
  std::uint64_t line = 0;
  bench::DataRecord data;
  std::vector<std::string> answers;  // per query, in the completion's order
  std::size_t remaining = 0;         // answers still to come (guarded by State::mutex)
};

struct Job {
  std::shared_ptr<Record> record;
  std::size_t query = 0;
};

// Shared by the reader (main thread) and the workers.
struct State {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Job> jobs;
  bool reading_done = false;
  std::exception_ptr error;
  bench::Scorer scorer;
  std::uint64_t records_scored = 0, requests = 0, retries = 0;
  std::vector<double> latencies;
  std::int64_t prompt_tokens = 0, completion_tokens = 0;
};

QueryOptions query_options(const EndpointEvalOptions& o) { return {o.api, o.template_name, o.max_tokens}; }

void score_record(State& s, const Record& r) {  // with s.mutex held
  std::vector<bench::CompletionQuery> queries;
  for (std::size_t i = 0; i < r.answers.size(); ++i) queries.push_back({r.data.expected.queries[i].key, r.answers[i]});
  s.scorer.add(r.data.expected, bench::format_completion(r.data.expected.hops, r.data.expected.cot, queries), r.data.n_chars);
  ++s.records_scored;
}

void worker(const EndpointEvalOptions& o, const Endpoint& endpoint, const std::string& model_name, State& s,
            PredictionsLog* log) {
  try {
    OpenAIClient client(endpoint, o.client);
    while (true) {
      Job job;
      {
        std::unique_lock lock(s.mutex);
        s.changed.wait(lock, [&] { return !s.jobs.empty() || s.reading_done || s.error; });
        if (s.error || s.jobs.empty()) return;
        job = std::move(s.jobs.front());
        s.jobs.pop_front();
      }
      s.changed.notify_all();  // the reader may add more
      const Record& r = *job.record;
      const std::string& key = r.data.expected.queries[job.query].key;
      Completion reply;
      std::string answer;
      try {
        QueryReply asked = ask_query(client, query_options(o), model_name, r.data, job.query);
        reply = std::move(asked.completion);
        answer = std::move(asked.answer);
      } catch (const ApiError& e) {
        throw ApiError(e.status(), o.data + ":" + std::to_string(r.line) + ": query '" + key + "': " + e.what());
      }
      if (log != nullptr) {
        nlohmann::json line = {{"line", r.line}, {"key", key}, {"answer", answer}, {"latency_s", reply.latency_s},
                               {"attempts", reply.attempts}, {"finish_reason", reply.finish_reason},
                               {"text", reply.text.substr(0, 2000)}};
        if (reply.prompt_tokens >= 0) line["prompt_tokens"] = reply.prompt_tokens;
        if (reply.completion_tokens >= 0) line["completion_tokens"] = reply.completion_tokens;
        log->append(line);  // before it counts: what is scored is on disk
      }
      std::lock_guard lock(s.mutex);
      job.record->answers[job.query] = answer;
      ++s.requests;
      s.retries += static_cast<std::uint64_t>(std::max(0, reply.attempts - 1));
      s.latencies.push_back(reply.latency_s);
      s.prompt_tokens += std::max<std::int64_t>(0, reply.prompt_tokens);
      s.completion_tokens += std::max<std::int64_t>(0, reply.completion_tokens);
      if (--job.record->remaining == 0) score_record(s, *job.record);
      s.changed.notify_all();
    }
  } catch (...) {
    std::lock_guard lock(s.mutex);
    if (!s.error) s.error = std::current_exception();
    s.changed.notify_all();
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

}  // namespace

EndpointEvalResult run_endpoint_eval(const EndpointEvalOptions& o) {
  check_query_options(query_options(o), o.parallel);
  const Endpoint endpoint = parse_endpoint(o.endpoint);
  // A server that closes a connection mid-request is a connection error to retry, not a fatal SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  if (!o.predictions.empty()) io::check_distinct_files(o.predictions, "--predictions", o.data, "--data");
  io::JsonlReader data(o.data);  // before any request: a missing file fails fast
  data.skip_fields({"targets"});

  EndpointEvalResult result;
  result.model_name = resolve_model_name(o.endpoint, o.client, o.model_name);
  std::unique_ptr<PredictionsLog> log;
  if (!o.predictions.empty()) log = std::make_unique<PredictionsLog>(o.predictions);

  State s;
  io::ProgressBar bar("eval", o.progress_total, "records");
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int i = 0; i < o.parallel; ++i) workers.emplace_back(worker, std::cref(o), std::cref(endpoint), std::cref(result.model_name), std::ref(s), log.get());
  const auto stop_workers = [&] {
    {
      std::lock_guard lock(s.mutex);
      s.reading_done = true;
    }
    s.changed.notify_all();
    for (auto& t : workers) t.join();
  };
  const std::size_t max_jobs = 2 * static_cast<std::size_t>(o.parallel);  // bounds the records held in memory
  try {
    while (o.limit == 0 || result.records < o.limit) {
      auto raw = data.next();
      if (!raw) break;
      auto record = std::make_shared<Record>();
      record->line = raw->line;
      record->data = bench::read_data_record(data.path(), *raw, /*need_prompt=*/true);
      const auto& queries = record->data.expected.queries;
      record->answers.resize(queries.size());
      std::vector<std::size_t> todo;
      std::set<std::string> keys;
      for (std::size_t i = 0; i < queries.size(); ++i) {
        keys.insert(queries[i].key);
        if (log) {
          const auto found = log->done().find({record->line, queries[i].key});
          if (found != log->done().end()) {
            record->answers[i] = found->second;
            ++result.resumed;
            continue;
          }
        }
        todo.push_back(i);
      }
      if (log) {  // a predictions file of another data file would be scored against the wrong questions
        for (auto it = log->done().lower_bound({record->line, ""}); it != log->done().end() && it->first.first == record->line; ++it)
          if (!keys.count(it->first.second))
            throw io::InputError(o.predictions, 0, "key", "'" + it->first.second + "' is no query of " + o.data + ":" +
                                                             std::to_string(record->line) + " (predictions of another data file?)");
      }
      ++result.records;
      result.queries += queries.size();
      std::unique_lock lock(s.mutex);
      record->remaining = todo.size();
      if (todo.empty()) score_record(s, *record);
      for (const std::size_t i : todo) {
        s.changed.wait(lock, [&] { return s.jobs.size() < max_jobs || s.error; });
        if (s.error) break;
        s.jobs.push_back({record, i});
        s.changed.notify_all();
      }
      if (s.error) break;
      bar.update(s.records_scored);
    }
  } catch (...) {
    stop_workers();
    throw;
  }
  // Wait for the last answers, updating the bar.
  {
    std::unique_lock lock(s.mutex);
    while (!s.error && (s.records_scored < result.records)) {
      s.changed.wait_for(lock, std::chrono::milliseconds(200));
      bar.update(s.records_scored);
    }
  }
  stop_workers();
  if (s.error) std::rethrow_exception(s.error);
  bar.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.report = s.scorer.report();
  result.requests = s.requests;
  result.retries = s.retries;
  result.prompt_tokens = s.prompt_tokens;
  result.completion_tokens = s.completion_tokens;
  if (!s.latencies.empty()) {
    double sum = 0;
    for (const double l : s.latencies) sum += l;
    result.latency_mean_s = sum / static_cast<double>(s.latencies.size());
    result.latency_p50_s = percentile(s.latencies, 0.5);
    result.latency_p95_s = percentile(s.latencies, 0.95);
    result.latency_max_s = *std::max_element(s.latencies.begin(), s.latencies.end());
  }
  return result;
}

}  // namespace hashhop::serve
