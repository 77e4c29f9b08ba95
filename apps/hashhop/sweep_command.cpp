// `hashhop sweep`: accuracy and latency of a model over (context size x hops x CoT), one results JSON.
// Example: hashhop sweep --sizes 1K,4K,16K --hops 1,2,4 --cot both --samples 4 --model models/demo --out results.json
// Built into both binaries: with --endpoint or --solver it needs no LibTorch and runs in the lean hashhop.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "command.h"
#include "hashhop/bench/reference_solver.h"
#include "hashhop/bench/sweep.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/progress.h"
#include "hashhop/serve/endpoint_answerer.h"
#include "run_info.h"
#include "process_setup.h"
#include "size_option.h"
#include "sweep_answerers.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::vector<std::string> sizes = {"1K", "4K", "16K"};
  std::vector<int> hops = {1, 2, 4};
  std::string cot = "both";
  std::uint64_t samples = 4;
  std::uint64_t queries = 5;
  int hash_len = 16;
  std::uint64_t seed = 0;
  SweepModelOptions model;
  bool solver = false;
  serve::EndpointAnswererOptions endpoint;  // --endpoint: answers from an OpenAI-compatible server
  std::string api_key_env = "OPENAI_API_KEY";
  std::string out;
  bool json = false;
};

bench::SweepSpec make_spec(const Options& o) {
  bench::SweepSpec spec;
  for (const auto& size : o.sizes) {
    spec.sizes.push_back(parse_size("--sizes", size));
    check_prompt_fits_memory("--sizes", spec.sizes.back());
  }
  spec.hops = o.hops;
  if (o.cot == "both") spec.cots = {false, true};
  else spec.cots = {o.cot == "on"};
  spec.samples = o.samples;
  spec.queries = o.queries;
  spec.hash_len = o.hash_len;
  spec.seed = o.seed;
  bench::validate_sweep(spec);
  return spec;
}

int run_sweep(const Options& o) {
  // The answerer is chosen here; the sweep itself only sees "record -> completion text" (bench::Answerer).
  const bool endpoint = !o.endpoint.endpoint.empty();
  if (int(!o.model.model_dir.empty()) + int(o.solver) + int(endpoint) != 1)
    throw std::invalid_argument("exactly one of --model DIR, --endpoint URL or --solver is required");
  const bench::SweepSpec spec = make_spec(o);

  nlohmann::json meta = run_info();
  std::unique_ptr<serve::EndpointAnswerer> server;
  bench::Answerer answer;
  if (o.solver) {
    meta["answerer"] = "exact reference solver";
    answer = [](const bench::DataRecord& record) {
      return bench::solve_exactly(bench::parse_prompt(record.prompt), bench::ParsedCompletion(record.expected));
    };
  } else if (endpoint) {
    serve::EndpointAnswererOptions e = o.endpoint;
    if (const char* key = std::getenv(o.api_key_env.c_str())) e.client.api_key = key;
    server = std::make_unique<serve::EndpointAnswerer>(e);  // asks /v1/models now: a wrong URL fails before the sweep
    meta["answerer"] = "endpoint";
    meta["endpoint"] = e.endpoint;
    meta["model"] = server->model_name();
    meta["api"] = e.query.api;
    meta["template"] = e.query.template_name;
    answer = [&server](const bench::DataRecord& record) { return server->answer(record); };
  } else {
    answer = make_model_answerer(o.model, meta);
  }
  // Opened before the work so an unwritable --out fails in a second, not after the sweep.
  std::optional<io::AtomicOutput> out;
  if (!o.out.empty()) out.emplace(o.out);
  io::ProgressBar bar("sweep", bench::sweep_cells(spec).size() * spec.samples, "records");
  const auto result = bench::run_sweep(spec, answer, [&](std::uint64_t done, std::uint64_t) { bar.update(done); });
  bar.finish();
  if (server) {  // what the server reported, summed over the sweep
    meta["requests"] = server->stats().requests;
    meta["retries"] = server->stats().retries;
    meta["prompt_tokens"] = server->stats().prompt_tokens;
    meta["completion_tokens"] = server->stats().completion_tokens;
  }
  const auto json = bench::sweep_to_json(spec, result, meta);
  if (out) {
    out->write(json.dump(2) + "\n");
    out->commit();
  }
  // --json: the results on stdout, the table on stderr (every command's --json means this).
  const std::string table = bench::format_sweep_table(result);
  char summary[200];
  std::snprintf(summary, sizeof summary, "%zu cells, %llu queries, exact %.2f%%, in %.1f s\n", result.cells.size(),
                static_cast<unsigned long long>(result.report.overall.queries), 100.0 * result.report.overall.exact_rate(),
                result.seconds);
  if (o.json) {
    std::printf("%s\n", json.dump(2).c_str());
    // The results first: when stdout cannot take them (a full disk) the error is the only line on stderr.
    if (!flush_stdout()) throw std::runtime_error(std::string("<stdout>: write failed: ") + std::strerror(errno));
    std::fprintf(stderr, "%s%s", table.c_str(), summary);
  } else {
    std::printf("%s%s", table.c_str(), summary);
  }
  return 0;
}

}  // namespace

Command add_sweep_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("sweep", "Accuracy and latency of a model over context sizes x hops x CoT (one results JSON)");
  // Defaults spelled out: LibTorch's headers change how CLI11 prints a vector, and both binaries show this help.
  app->add_option("--sizes", o->sizes, "Context sizes in characters, comma-separated; K/M/G suffixes allowed")
      ->delimiter(',')
      ->default_str("1K,4K,16K");
  app->add_option("--hops", o->hops, "Hop counts, comma-separated")->delimiter(',')->default_str("1,2,4");
  app->add_option("--cot", o->cot, "Chain-of-thought cells: both, on or off")
      ->check(CLI::IsMember({"both", "on", "off"}))
      ->capture_default_str();
  app->add_option("--samples", o->samples, "Records per cell")->check(at_least(1))->capture_default_str();
  app->add_option("--queries", o->queries, "Queries per record")->check(at_least(1))->capture_default_str();
  app->add_option("--hash-len", o->hash_len, "Characters per hash")->check(at_least(1))->capture_default_str();
  app->add_option("--seed", o->seed, "Base seed; each cell's seeds follow from it and the cell (see the results' `gen`)")
      ->capture_default_str();
  auto* model = app->add_option("--model", o->model.model_dir, "Model directory (config.json + model.pt), e.g. models/demo; either family");
  auto* solver = app->add_flag("--solver", o->solver, "Answer with the exact reference solver instead of a model (the ceiling)");
  auto* endpoint = app->add_option("--endpoint", o->endpoint.endpoint,
                                   "Instead of --model: an OpenAI-compatible server's base URL, e.g. http://127.0.0.1:8000/v1 (docs/serving.md)");
  model->excludes(endpoint)->excludes(solver);
  endpoint->excludes(solver);
  app->add_option("--api", o->endpoint.query.api, "--endpoint: completions or chat")->check(CLI::IsMember({"completions", "chat"}))->capture_default_str();
  app->add_option("--template", o->endpoint.query.template_name,
                  "--endpoint: raw (Magic's prompt + \"KEY = '\") or chat (instruction + few-shot; needs --api chat)")
      ->check(CLI::IsMember({"raw", "chat"}))
      ->capture_default_str();
  app->add_option("--model-name", o->endpoint.model_name, "--endpoint: the model to ask (default: the first of GET /v1/models)");
  app->add_option("--api-key-env", o->api_key_env, "--endpoint: environment variable holding the API key (sent as a bearer token)")->capture_default_str();
  app->add_option("--parallel", o->endpoint.parallel, "--endpoint: queries of one record in flight")->check(at_least(1))->capture_default_str();
  app->add_option("--timeout", o->endpoint.client.timeout_s, "--endpoint: seconds per request attempt")->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--retries", o->endpoint.client.retries, "--endpoint: retries on 429, 5xx and connection errors (exponential backoff)")
      ->check(at_least(0))
      ->capture_default_str();
  app->add_option("--backoff", o->endpoint.client.backoff_s, "--endpoint: first retry wait in seconds (doubles per retry, at most 30 s)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--max-tokens", o->endpoint.query.max_tokens, "--endpoint: max_tokens per request (0: from the answer's length)")->check(at_least(0));
  app->add_option("--device", o->model.device, "--model: auto, cpu or cuda")->capture_default_str();
  o->model.path.add_options(app);
  app->add_option("--out", o->out, "Write the results JSON here (atomically); `hashhop plot` draws it");
  app->add_flag("--json", o->json, "Print the results JSON on stdout (the table goes to stderr)");
  app->footer("Exactly one of --model, --endpoint or --solver. Seeds are fixed: a rerun gives the same data and, on the same device, the same answers.");
  return {app, [o] { return run_sweep(*o); }};
}

}  // namespace hashhop::cli
