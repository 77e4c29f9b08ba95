// `hashhop engine-bench`: the long-context engine against the model's dense path at growing prompt
// lengths: prefill throughput, per-query latency, memory and accuracy. Run `hashhop engine-bench --help`.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.h"
#include "context_parallel_option.h"
#include "json_option.h"
#include "device_option.h"
#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/engine/engine.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/progress.h"
#include "hashhop/train/checkpoint.h"
#include "hashhop/model/inference.h"
#include "size_option.h"

namespace hashhop::cli {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

struct Options {
  std::string model_dir = "models/demo";
  std::string sizes = "1M,10M,100M,300M";
  std::string baseline = "4K";
  std::vector<int> hops = {1, 2};
  int hash_len = 16;
  std::uint64_t queries = 128;
  int single_queries = 16;
  std::string dense_max = "1M";
  std::string device = "auto";
  std::uint64_t seed = 7;
  bool no_drafts = false;  // --no-drafts: the engine decodes one call per answer byte (the A/B of drafting)
  ContextParallelOption ranks;
  JsonOption json;  // --json: rows on stdout (tables on stderr); --json FILE (scripts/plot-engine.py reads it)
};

struct Row {
  std::uint64_t chars = 0;
  int hops = 0;
  std::string path;             // engine, dense, dense (projected)
  double prefill_s = 0;         // text generated on the fly included (engine) / materialised first (dense)
  double generate_s = 0;        // the generator's share of prefill_s (engine rows)
  double query_ms_batch = 0;    // batch time / queries (all queries of a problem in one batch)
  double query_ms_single = 0;   // one query at a time
  std::uint64_t queries = 0, exact = 0, final_hash = 0;
  std::uint64_t single_differ = 0;  // queries answered alone otherwise than in their batch (should be 0)
  std::uint64_t reference_points = 0;
  double memory_mb = 0;         // engine: reference store; dense: the model's memory tensors
  double peak_rss_mb = 0;        // context parallel: the largest rank's
  bool projected = false;
  int ranks = 1;
};

struct Problems {  // enough problems of one size for `queries` queries
  std::vector<bench::GenConfig> configs;
};

Problems problems_for(std::uint64_t chars, int hops, const Options& o) {
  bench::GenConfig config;
  config.n_chars = chars;
  config.hops = hops;
  config.hash_len = o.hash_len;
  config.num_queries = 1;
  const std::uint64_t per_problem = std::min<std::uint64_t>(o.queries, bench::chains_for(config));
  Problems p;
  for (std::uint64_t done = 0, k = 0; done < o.queries; done += per_problem, ++k) {
    config.num_queries = std::min(per_problem, o.queries - done);
    config.seed = o.seed + k;
    bench::validate(config);
    p.configs.push_back(config);
  }
  return p;
}

void score(const bench::HashHopProblem& problem, const std::vector<std::string>& answers, Row& row) {
  for (std::size_t c = 0; c < answers.size(); ++c) {
    const std::string target = problem.target(c);
    row.exact += answers[c] == target;
    row.final_hash += bench::final_hash(answers[c]) == bench::final_hash(target);
    ++row.queries;
  }
}

std::vector<std::string> keys_of(const bench::HashHopProblem& problem) {
  std::vector<std::string> keys;
  for (std::uint64_t c = 0; c < problem.config().num_queries; ++c) keys.push_back(problem.hash(c, 0));
  return keys;
}

engine::EngineOptions engine_options(const Options& o) {
  engine::EngineOptions options;
  options.drafts = !o.no_drafts;
  return options;
}

// Times `answer(prefixes)` for the batch and for single queries (and counts single answers that differ
// from the batch's: the engine's answers must not depend on what else is in the batch).
template <typename Answer>
std::vector<std::string> timed_answers(const std::vector<std::string>& prefixes, int singles, Row& row, Answer answer) {
  auto start = Clock::now();
  auto answers = answer(prefixes);
  row.query_ms_batch += seconds_since(start) * 1e3;
  const std::size_t n_single = std::min<std::size_t>(static_cast<std::size_t>(singles), prefixes.size());
  double single_ms = 0;
  for (std::size_t i = 0; i < n_single; ++i) {
    start = Clock::now();
    const auto alone = answer(std::vector<std::string>{prefixes[i]});
    single_ms += seconds_since(start) * 1e3;
    row.single_differ += alone.at(0) != answers[i];
  }
  if (n_single > 0) row.query_ms_single = std::max(row.query_ms_single, single_ms / static_cast<double>(n_single));
  return answers;
}

// The largest value over the ranks (one rank: the value itself).
double max_over_ranks(dist::ProcessGroup* group, double value, const std::string& what) {
  if (group == nullptr) return value;
  auto t = torch::tensor({value}, torch::kFloat64);
  group->all_reduce_max(t, what);
  return t.item<double>();
}

// One engine, or (with a group) this rank's part of a context-parallel one: every rank generates the
// whole prompt and scans its shard; rank 0 answers while the others serve its lookups.
Row run_engine(model::HashHopTransformer& m, std::uint64_t chars, int hops, const Options& o, dist::ProcessGroup* group) {
  Row row{chars, hops, "engine"};
  const bool rank0 = group == nullptr || group->rank() == 0;
  if (group != nullptr) {
    row.ranks = group->size();
    row.path = "engine, " + std::to_string(row.ranks) + " ranks";
  }
  for (const auto& config : problems_for(chars, hops, o).configs) {
    const bench::HashHopProblem problem(config);
    auto start = Clock::now();
    static volatile std::uint64_t touched = 0;  // the generator alone, for its share of the prefill time
    problem.stream_prompt([&](std::string_view chunk) { touched = touched + static_cast<unsigned char>(chunk.back()); }, "\n");
    row.generate_s += seconds_since(start);

    std::optional<engine::Engine> engine;
    if (group != nullptr) engine.emplace(m, *group, problem.prompt_size() + 1, engine_options(o));
    else engine.emplace(m, engine_options(o));
    std::optional<io::ProgressBar> bar;
    if (rank0) bar.emplace("prefill " + std::to_string(chars) + " chars", problem.n_lines(), "lines");
    start = Clock::now();
    problem.stream_prompt([&](std::string_view chunk) { engine->prefill(chunk); }, "\n",
                          [&](std::uint64_t lines) { if (bar) bar->update(lines); });
    engine->prefill("\n");
    if (group != nullptr) engine->finish_prompt();  // waits for the slowest rank: the prefill's wall time
    row.prefill_s += seconds_since(start);
    if (bar) bar->finish();
    const auto stats = engine->stats();
    if (group != nullptr) {  // entries and store bytes summed over the ranks
      auto t = torch::tensor({static_cast<double>(stats.reference_points), static_cast<double>(stats.store.total())}, torch::kFloat64);
      group->all_reduce_sum(t, "the engine's store sizes");
      row.reference_points += static_cast<std::uint64_t>(t[0].item<double>());
      row.memory_mb = std::max(row.memory_mb, max_over_ranks(group, static_cast<double>(stats.store.total()) / 1e6, "store MB"));
    } else {
      row.reference_points += stats.reference_points;
      row.memory_mb = std::max(row.memory_mb, static_cast<double>(stats.store.total()) / 1e6);
    }
    if (!rank0) {
      engine->serve();
      continue;
    }
    const auto prefixes = model::query_prefixes(hops, false, keys_of(problem));
    const int limit = model::answer_byte_limit(m->config(), hops, false);
    const auto answers = timed_answers(prefixes, o.single_queries, row,
                                       [&](const std::vector<std::string>& p) { return engine->answer(p, limit); });
    if (group != nullptr) engine->end_answers();
    score(problem, answers, row);
  }
  if (row.queries > 0) row.query_ms_batch /= static_cast<double>(row.queries);
  row.peak_rss_mb = max_over_ranks(group, peak_rss_mb(), "peak RSS");
  return row;
}

double memory_mb(const model::Memory& memory) {
  double bytes = 0;
  for (const auto* t : {&memory.keys, &memory.log_gate, &memory.value_rows, &memory.run_values})
    bytes += static_cast<double>(t->numel() * t->element_size());
  return bytes / 1e6;
}

Row run_dense(model::HashHopTransformer& m, std::uint64_t chars, int hops, const Options& o) {
  Row row{chars, hops, "dense"};
  for (const auto& config : problems_for(chars, hops, o).configs) {
    const bench::HashHopProblem problem(config);
    const std::string prompt = problem.prompt() + "\n";
    auto start = Clock::now();
    const auto memory = model::encode_prompt(m, prompt);
    memory.memory.keys.sum().item<float>();  // waits for the device
    row.prefill_s += seconds_since(start);
    const auto prefixes = model::query_prefixes(hops, false, keys_of(problem));
    const int limit = model::answer_byte_limit(m->config(), hops, false);
    const auto answers = timed_answers(prefixes, o.single_queries, row, [&](const std::vector<std::string>& p) {
      return model::greedy_answers(m, memory, p, limit);
    });
    score(problem, answers, row);
    row.reference_points += static_cast<std::uint64_t>(memory.positions);
    row.memory_mb = std::max(row.memory_mb, memory_mb(memory.memory));
  }
  row.query_ms_batch /= static_cast<double>(row.queries);
  row.peak_rss_mb = peak_rss_mb();
  return row;
}

// The dense path where it was not run: its measured cost at `from` scaled linearly with length
// (memory and prefill are per position; a query's attention reads every position).
Row project_dense(const Row& from, std::uint64_t chars) {
  Row row = from;
  const double scale = static_cast<double>(chars) / static_cast<double>(from.chars);
  row.chars = chars;
  row.path = "dense (projected from " + std::to_string(from.chars) + ")";
  row.projected = true;
  row.prefill_s *= scale;
  row.query_ms_batch *= scale;
  row.query_ms_single *= scale;
  row.memory_mb *= scale;
  row.reference_points = static_cast<std::uint64_t>(static_cast<double>(row.reference_points) * scale);
  row.queries = row.exact = row.final_hash = 0;
  row.peak_rss_mb = 0;
  return row;
}

std::string percent(std::uint64_t n, std::uint64_t d) {
  if (d == 0) return "—";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100.0 * static_cast<double>(n) / static_cast<double>(d));
  return b;
}

std::string format_row(const Row& r) {
  char b[512];
  const double rate = r.prefill_s > 0 ? static_cast<double>(r.chars) / r.prefill_s / 1e6 : 0;
  std::snprintf(b, sizeof b, "| %s | %d | %s | %.2f | %.1f | %.2f | %.2f | %s | %s | %llu | %.1f | %s |",
                std::to_string(r.chars).c_str(), r.hops, r.path.c_str(), r.prefill_s, rate, r.query_ms_batch,
                r.query_ms_single, percent(r.exact, r.queries).c_str(), percent(r.final_hash, r.queries).c_str(),
                static_cast<unsigned long long>(r.reference_points), r.memory_mb,
                r.projected ? "—" : std::to_string(static_cast<long long>(r.peak_rss_mb)).c_str());
  return b;
}

nlohmann::json to_json(const Row& r) {
  return {{"chars", r.chars}, {"hops", r.hops}, {"path", r.path}, {"prefill_s", r.prefill_s},
          {"generate_s", r.generate_s}, {"query_ms_batch", r.query_ms_batch}, {"query_ms_single", r.query_ms_single},
          {"queries", r.queries}, {"exact", r.exact}, {"final_hash", r.final_hash},
          {"reference_points", r.reference_points}, {"memory_mb", r.memory_mb}, {"peak_rss_mb", r.peak_rss_mb},
          {"projected", r.projected}, {"ranks", r.ranks}, {"single_differ", r.single_differ}};
}

int run_engine_bench(const Options& o) {
  auto joined = o.ranks.join_or_launch();
  if (!joined) return 0;
  const std::unique_ptr<dist::ProcessGroup> group = std::move(*joined);
  const bool rank0 = group == nullptr || group->rank() == 0;
  std::optional<HumanTextToStderr> human;  // ranks other than 0 print nothing (their stdout is /dev/null)
  if (rank0) human.emplace(o.json.to_stdout());
  const auto sizes = parse_sizes("--sizes", o.sizes);
  const auto baseline = parse_size("--baseline", o.baseline);
  if (baseline < 1) throw std::invalid_argument("--baseline: must be >= 1");
  check_prompt_fits_memory("--baseline", baseline);
  const auto dense_max = parse_size("--dense-max", o.dense_max);
  if (o.queries < 1) throw std::invalid_argument("--queries: must be >= 1");
  for (const int hops : o.hops)  // the generator's sizing divides by the hop count
    if (hops < 1) throw std::invalid_argument("--hops: must be >= 1, got " + std::to_string(hops));
  if (o.hash_len < 1) throw std::invalid_argument("--hash-len: must be >= 1, got " + std::to_string(o.hash_len));
  if (o.single_queries < 0) throw std::invalid_argument("--single-queries: must be >= 0");
  const auto device = ContextParallelOption::device_for(parse_device(o.device), group.get());
  if (rank0) o.json.open();  // an unwritable --json FILE fails now, not after the benchmark
  auto loaded = train::load_model(o.model_dir, device);
  for (const int hops : o.hops) {
    try {
      model::check_query_hops(loaded.config.model, hops, false);
      model::check_query_keys(loaded.config.model, {std::string(static_cast<std::size_t>(o.hash_len), 'a')});
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--") + e.what());
    }
  }
  torch::NoGradGuard no_grad;

  std::vector<Row> rows;
  const char* header =
      "| chars | hops | path | prefill s | M chars/s | ms/query (batch) | ms/query (single) | exact | final hash | "
      "memory positions | memory MB | peak RSS MB |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
  std::printf("%s\n", header);
  auto add = [&](const Row& row) {
    rows.push_back(row);
    std::printf("%s\n", format_row(row).c_str());
    std::fflush(stdout);
  };
  for (const int hops : o.hops) {
    std::optional<Row> measured_dense;  // the longest dense row measured so far, projected from beyond
    std::vector<std::uint64_t> all = {baseline};
    all.insert(all.end(), sizes.begin(), sizes.end());
    for (const std::uint64_t chars : all) {
      add(run_engine(loaded.model, chars, hops, o, group.get()));
      if (group != nullptr) continue;  // the dense path is one process's: run it without --nproc
      if (chars <= dense_max) {
        measured_dense = run_dense(loaded.model, chars, hops, o);
        add(*measured_dense);
      } else if (measured_dense) {
        add(project_dense(*measured_dense, chars));
      }
    }
  }
  std::printf("\nmodel %s on %s; engine rows include generating the prompt on the fly; %llu queries per row%s\n",
              o.model_dir.c_str(), device.str().c_str(), static_cast<unsigned long long>(o.queries),
              group ? (", " + std::to_string(group->size()) + " ranks (context parallel; memory MB and peak RSS: the largest rank's)").c_str() : "");
  std::printf("engine answers %s\n", o.no_drafts ? "one model call per answer byte (--no-drafts)"
                                                  : "by checking drafts whole, one call each (the index's chain, then the read each hash copies)");
  for (const auto& r : rows)
    if (r.single_differ > 0)
      std::printf("WARNING: %llu queries answered alone differ from their batch's answer (%s, %llu chars, %d hops)\n",
                  static_cast<unsigned long long>(r.single_differ), r.path.c_str(),
                  static_cast<unsigned long long>(r.chars), r.hops);
  human.reset();
  if (rank0 && o.json.requested()) {
    nlohmann::json j;
    j["model"] = o.model_dir;
    j["device"] = device.str();
    j["hash_len"] = o.hash_len;
    j["drafts"] = !o.no_drafts;
    j["ranks"] = group ? group->size() : 1;
    j["rows"] = nlohmann::json::array();
    for (const auto& r : rows) j["rows"].push_back(to_json(r));
    o.json.emit(j);
  }
  return 0;
}

}  // namespace

Command add_engine_bench_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand(
      "engine-bench", "Benchmark the long-context engine against the dense path: prefill, latency, memory, accuracy");
  app->add_option("--model", o->model_dir, "Model directory")->capture_default_str();
  app->add_option("--sizes", o->sizes, "Prompt lengths in characters, comma-separated")->capture_default_str();
  app->add_option("--baseline", o->baseline, "Short prompt length every row is compared with")->capture_default_str();
  app->add_option("--hops", o->hops, "Hop counts to run (no CoT)")->capture_default_str()->delimiter(',');
  app->add_option("--hash-len", o->hash_len, "Hash length")->capture_default_str();
  app->add_option("--queries", o->queries, "Queries per row (several problems when one is too small)")
      ->capture_default_str();
  app->add_option("--single-queries", o->single_queries, "Queries also timed one at a time")->capture_default_str();
  app->add_option("--dense-max", o->dense_max, "Longest prompt the dense path runs; longer ones are projected")
      ->capture_default_str();
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  app->add_option("--seed", o->seed, "Seed of the first problem")->capture_default_str();
  app->add_flag("--no-drafts", o->no_drafts,
                "Engine: decode one model call per answer byte instead of checking drafts whole (the index's chain of "
                "entries, then the read each hash copies), one call each (same answers; for timing the two)");
  o->ranks.add(app, "Engine rows only (no dense rows): ");
  o->json.add(app, "the rows (scripts/plot-engine.py reads them)");
  return {app, [o] { return run_engine_bench(*o); }};
}

}  // namespace hashhop::cli
