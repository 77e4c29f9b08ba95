// `hashhop sweep`: accuracy and latency of a model over (context size x hops x CoT), one results JSON.
// Example: hashhop sweep --sizes 1K,4K,16K --hops 1,2,4 --cot both --samples 4 --model models/demo --out results.json
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "command.h"
#include "device_option.h"
#include "hashhop/bench/reference_solver.h"
#include "hashhop/bench/sweep.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/progress.h"
#include "model_answerer.h"
#include "run_info.h"
#include "size_option.h"

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
  std::string model_dir;
  bool solver = false;
  std::string endpoint;
  std::string device = "auto";
  AnswerPath path;
  std::string out;
  bool json = false;
};

bench::SweepSpec make_spec(const Options& o) {
  bench::SweepSpec spec;
  for (const auto& size : o.sizes) spec.sizes.push_back(parse_size("--sizes", size));
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
  // The answerer is chosen here; the sweep itself only sees "record -> completion text" (bench::Answerer),
  // so an HTTP endpoint can plug in beside the model without touching the sweep.
  if (!o.endpoint.empty())
    throw std::invalid_argument("--endpoint: not supported by sweep yet; answer with --model DIR (or --solver)");
  if (o.model_dir.empty() == !o.solver) throw std::invalid_argument("exactly one of --model DIR or --solver is required");
  const bench::SweepSpec spec = make_spec(o);

  nlohmann::json meta = run_info();
  std::unique_ptr<ModelAnswerer> model;
  bench::Answerer answer;
  if (o.solver) {
    meta["answerer"] = "exact reference solver";
    answer = [](const bench::DataRecord& record) {
      return bench::solve_exactly(bench::parse_prompt(record.prompt), bench::ParsedCompletion(record.expected));
    };
  } else {
    const auto device = parse_device(o.device);
    model = std::make_unique<ModelAnswerer>(o.model_dir, device, o.path);
    meta["answerer"] = "model";
    meta["model"] = o.model_dir;
    meta["device"] = device.str();
    meta["torch_threads"] = torch::get_num_threads();
    if (device.is_cuda()) meta["gpu"] = gpu_name();
    answer = [&model](const bench::DataRecord& record) {
      model->check("generated record", 0, record);
      return model->answer(record);
    };
  }
  // Opened before the work so an unwritable --out fails in a second, not after the sweep.
  std::optional<io::AtomicOutput> out;
  if (!o.out.empty()) out.emplace(o.out);
  io::ProgressBar bar("sweep", bench::sweep_cells(spec).size() * spec.samples, "records");
  const auto result = bench::run_sweep(spec, answer, [&](std::uint64_t done, std::uint64_t) { bar.update(done); });
  bar.finish();
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
  app->add_option("--sizes", o->sizes, "Context sizes in characters, comma-separated; K/M/G suffixes allowed")
      ->delimiter(',')
      ->capture_default_str();
  app->add_option("--hops", o->hops, "Hop counts, comma-separated")->delimiter(',')->capture_default_str();
  app->add_option("--cot", o->cot, "Chain-of-thought cells: both, on or off")
      ->check(CLI::IsMember({"both", "on", "off"}))
      ->capture_default_str();
  app->add_option("--samples", o->samples, "Records per cell")->check(at_least(1))->capture_default_str();
  app->add_option("--queries", o->queries, "Queries per record")->check(at_least(1))->capture_default_str();
  app->add_option("--hash-len", o->hash_len, "Characters per hash")->check(at_least(1))->capture_default_str();
  app->add_option("--seed", o->seed, "Base seed; each cell's seeds follow from it and the cell (see the results' `gen`)")
      ->capture_default_str();
  app->add_option("--model", o->model_dir, "Model directory (config.json + model.pt), e.g. models/demo; either family");
  app->add_flag("--solver", o->solver, "Answer with the exact reference solver instead of a model (the ceiling)");
  app->add_option("--endpoint", o->endpoint, "OpenAI-compatible endpoint (not supported by sweep yet)");
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  o->path.add_options(app);
  app->add_option("--out", o->out, "Write the results JSON here (atomically); `hashhop plot` draws it");
  app->add_flag("--json", o->json, "Print the results JSON on stdout (the table goes to stderr)");
  app->footer("Exactly one of --model or --solver. Seeds are fixed: a rerun gives the same data and, on the same device, the same answers.");
  return {app, [o] { return run_sweep(*o); }};
}

}  // namespace hashhop::cli
