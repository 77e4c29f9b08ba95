// `hashhop eval --model DIR --data FILE.jsonl`: greedy answers from a trained model for every query of
// every record (ours or Magic's files), scored like `hashhop score`. Run `hashhop eval --help`.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "answer_path.h"
#include "model_answerer.h"
#include "command.h"
#include "context_parallel_option.h"
#include "device_option.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/scorer.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"
#include "hashhop/io/progress.h"
#include "hashhop/serve/endpoint_eval.h"

namespace hashhop::cli {
namespace {

std::uint64_t count_lines(const std::string& path) {  // for the progress bar's total
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return 0;  // a pipe or a device (/dev/zero) never ends
  std::ifstream in(path, std::ios::binary);
  std::uint64_t lines = 0;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0)
    lines += std::count(buffer, buffer + in.gcount(), '\n');
  return lines;
}

struct Options {
  std::string model_dir;
  std::string data;
  std::string predictions;
  std::string device = "auto";
  AnswerPath path;
  bool json = false;
  ContextParallelOption ranks;
  serve::EndpointEvalOptions endpoint;  // --endpoint: an OpenAI-compatible server instead of --model
  std::string api_key_env = "OPENAI_API_KEY";
};

// `eval --endpoint`: the same data, scorer and output, answers from a server (src/serve/endpoint_eval.cpp).
int run_endpoint(const Options& o) {
  serve::EndpointEvalOptions e = o.endpoint;
  e.data = o.data;
  e.predictions = o.predictions;
  if (const char* key = std::getenv(o.api_key_env.c_str())) e.client.api_key = key;
  const std::uint64_t lines = count_lines(o.data);
  e.progress_total = e.limit ? std::min<std::uint64_t>(e.limit, lines) : lines;
  const auto r = serve::run_endpoint_eval(e);
  if (o.json) {
    auto j = bench::score_to_json(r.report);
    j["model"] = r.model_name;
    j["endpoint"] = e.endpoint;
    j["seconds"] = r.seconds;
    j["requests"] = r.requests;
    j["resumed"] = r.resumed;
    j["retries"] = r.retries;
    j["latency_s"] = {{"mean", r.latency_mean_s}, {"p50", r.latency_p50_s}, {"p95", r.latency_p95_s}, {"max", r.latency_max_s}};
    j["prompt_tokens"] = r.prompt_tokens;
    j["completion_tokens"] = r.completion_tokens;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", bench::format_score_table(r.report).c_str());
    std::printf("model %s at %s: %llu records, %llu queries (%llu asked, %llu resumed, %llu retries) in %.2f s; latency mean %.3f s, p95 %.3f s\n",
                r.model_name.c_str(), e.endpoint.c_str(), static_cast<unsigned long long>(r.records),
                static_cast<unsigned long long>(r.queries), static_cast<unsigned long long>(r.requests),
                static_cast<unsigned long long>(r.resumed), static_cast<unsigned long long>(r.retries), r.seconds,
                r.latency_mean_s, r.latency_p95_s);
  }
  return 0;
}

int run_eval(const Options& o) {
  if (!o.endpoint.endpoint.empty()) {
    if (o.ranks.nproc > 1) throw std::invalid_argument("--nproc: only with --model (an endpoint answers on its own machines)");
    return run_endpoint(o);
  }
  // Context parallel (docs/distributed.md): every rank reads the data; engine prompts are sharded over
  // the ranks; rank 0 alone answers the rest, scores, prints and writes --predictions.
  auto joined = o.ranks.join_or_launch();
  if (!joined) return 0;
  const std::unique_ptr<dist::ProcessGroup> group = std::move(*joined);
  const bool rank0 = group == nullptr || group->rank() == 0;
  const auto device = ContextParallelOption::device_for(parse_device(o.device), group.get());
  io::check_distinct_files(o.predictions, "--predictions", o.data, "--data");
  // Either model family, loaded once (model_answerer.h: shared with `hashhop sweep`).
  AnswerPath path = o.path;
  path.group = group.get();
  if (group != nullptr && path.engine == "off")
    throw std::invalid_argument("--engine off: " + o.ranks.named() + " runs the context-parallel engine on every record; drop one");
  ModelAnswerer model(o.model_dir, device, path);
  io::JsonlReader data(o.data);
  data.skip_fields({"targets"});  // every chain's answer: as large as the prompt, and unused here
  std::unique_ptr<io::AtomicOutput> predictions;
  if (!o.predictions.empty() && rank0) predictions = std::make_unique<io::AtomicOutput>(o.predictions);
  bench::Scorer scorer;
  std::optional<io::ProgressBar> bar;
  if (rank0) bar.emplace("eval", count_lines(o.data), "records");
  std::uint64_t records = 0, queries = 0;
  const auto start = std::chrono::steady_clock::now();
  while (auto record = data.next()) {
    const bench::DataRecord data_record = bench::read_data_record(data.path(), *record, /*need_prompt=*/true);
    const auto& expected = data_record.expected;
    model.check(data.path(), record->line, data_record);
    const std::string predicted = model.answer(data_record);
    scorer.add(expected, predicted, data_record.n_chars);
    if (predictions) predictions->write(bench::prediction_line(predicted));
    ++records;
    queries += expected.queries.size();
    if (bar) bar->update(records, "exact " + std::to_string(scorer.report().overall.exact_rate()).substr(0, 5));
  }
  if (bar) bar->finish();
  if (records == 0) throw io::InputError(data.path(), 0, "", "has no records");
  if (!rank0) return 0;
  if (predictions) predictions->commit();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (const auto summary = model.engine_summary(); !summary.empty()) std::fprintf(stderr, "%s\n", summary.c_str());
  if (o.json) {
    auto j = bench::score_to_json(scorer.report());
    j["model"] = o.model_dir;
    j["seconds"] = seconds;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", bench::format_score_table(scorer.report()).c_str());
    std::printf("model %s on %s: %llu records, %llu queries in %.2f s%s\n", o.model_dir.c_str(), device.str().c_str(),
                static_cast<unsigned long long>(records), static_cast<unsigned long long>(queries), seconds,
                group ? (" (" + std::to_string(group->size()) + " ranks, context parallel)").c_str() : "");
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("eval", "Answer every query of a HashHop JSONL with a trained model and score it");
  auto* model = app->add_option("--model", o->model_dir, "Model directory (config.json + model.pt), e.g. models/demo; either model family");
  auto* endpoint = app->add_option("--endpoint", o->endpoint.endpoint,
                                   "Instead of --model: an OpenAI-compatible server's base URL, e.g. http://127.0.0.1:8000/v1 (docs/serving.md)");
  model->excludes(endpoint);
  app->add_option("--data", o->data, "HashHop JSONL (ours or Magic's): prompt and completion fields")->required();
  app->add_option("--predictions", o->predictions,
                  "--model: also write the predicted completions as JSONL (atomically); --endpoint: a resumable per-query log "
                  "(appended as answers come; a rerun skips what it holds)");
  app->add_option("--api", o->endpoint.api, "--endpoint: completions or chat")->check(CLI::IsMember({"completions", "chat"}))->capture_default_str();
  app->add_option("--template", o->endpoint.template_name, "--endpoint: raw (Magic's prompt + \"KEY = '\") or chat (instruction + few-shot; needs --api chat)")
      ->check(CLI::IsMember({"raw", "chat"}))
      ->capture_default_str();
  app->add_option("--model-name", o->endpoint.model_name, "--endpoint: the model to ask (default: the first of GET /v1/models)");
  app->add_option("--api-key-env", o->api_key_env, "--endpoint: environment variable holding the API key (sent as a bearer token)")->capture_default_str();
  app->add_option("--parallel", o->endpoint.parallel, "--endpoint: requests in flight")->check(at_least(1))->capture_default_str();
  app->add_option("--timeout", o->endpoint.client.timeout_s, "--endpoint: seconds per request attempt")->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--retries", o->endpoint.client.retries, "--endpoint: retries on 429, 5xx and connection errors (exponential backoff)")
      ->check(at_least(0))
      ->capture_default_str();
  app->add_option("--backoff", o->endpoint.client.backoff_s, "--endpoint: first retry wait in seconds (doubles per retry, at most 30 s)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--max-tokens", o->endpoint.max_tokens, "--endpoint: max_tokens per request (0: from the answer's length)")->check(at_least(0));
  app->add_option("--limit", o->endpoint.limit, "--endpoint: only the first N records (0: all)");
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  o->path.add_options(app);
  o->ranks.add(app, "--model (either family): ");
  app->add_flag("--json", o->json, "Print the score as JSON");
  app->callback([o] {
    if (o->model_dir.empty() && o->endpoint.endpoint.empty()) throw CLI::RequiredError("--model or --endpoint");
  });
  return {app, [o] { return run_eval(*o); }};
}

}  // namespace hashhop::cli
