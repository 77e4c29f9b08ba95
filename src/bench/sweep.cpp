// A HashHop sweep over (size, hops, CoT) cells (see sweep.h). Tested by tests/bench/test_sweep.cpp.
#include "hashhop/bench/sweep.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"

namespace hashhop::bench {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr std::uint64_t kCellSeedRange = 1ULL << 40;  // a cell's seed offset; leaves room for seed + samples

GenConfig cell_config(const SweepSpec& spec, const SweepCell& cell, std::uint64_t sample) {
  return GenConfig{.n_chars = cell.n_chars, .num_queries = spec.queries, .hops = cell.hops, .hash_len = spec.hash_len,
                   .cot = cell.cot, .seed = cell.first_seed + sample};
}

double quantile(std::vector<double> values, double q) {  // nearest rank; 0 for none
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

nlohmann::json counts_json(const ScoreCounts& c) {
  return {{"queries", c.queries}, {"exact", c.exact}, {"exact_rate", c.exact_rate()},
          {"final_hash", c.final_hash}, {"final_hash_rate", c.final_rate()}};
}

}  // namespace

std::vector<SweepCell> sweep_cells(const SweepSpec& spec) {
  std::vector<SweepCell> cells;
  for (const auto n_chars : spec.sizes)
    for (const int hops : spec.hops)
      for (const bool cot : spec.cots) {
        const std::uint64_t key = (n_chars << 8) ^ (static_cast<std::uint64_t>(hops) << 1) ^ (cot ? 1 : 0);
        cells.push_back({n_chars, hops, cot, spec.seed + splitmix64(key) % kCellSeedRange});
      }
  return cells;
}

void validate_sweep(const SweepSpec& spec) {
  if (spec.sizes.empty()) throw std::invalid_argument("--sizes: at least one size");
  if (spec.hops.empty()) throw std::invalid_argument("--hops: at least one hop count");
  if (spec.cots.empty()) throw std::invalid_argument("--cot: at least one of on, off");
  if (spec.samples < 1) throw std::invalid_argument("--samples: must be >= 1");
  if (spec.seed > UINT64_MAX - kCellSeedRange - spec.samples) throw std::invalid_argument("--seed: too large");
  GenFieldNames names;
  names.n_chars = "--sizes";
  names.num_queries = "--queries";
  names.hops = "--hops";
  names.hash_len = "--hash-len";
  for (const auto& cell : sweep_cells(spec)) {
    try {
      validate(cell_config(spec, cell, 0), names);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(e.what()) + " (cell size " + std::to_string(cell.n_chars) + ", hops " +
                                  std::to_string(cell.hops) + ")");
    }
  }
}

SweepResult run_sweep(const SweepSpec& spec, const Answerer& answer,
                      const std::function<void(std::uint64_t, std::uint64_t)>& on_record) {
  validate_sweep(spec);
  const auto start = std::chrono::steady_clock::now();
  const auto cells = sweep_cells(spec);
  const std::uint64_t total = cells.size() * spec.samples;
  SweepResult result;
  Scorer all;
  std::uint64_t done = 0;
  for (const auto& cell : cells) {
    CellResult cell_result;
    cell_result.cell = cell;
    Scorer scorer;
    for (std::uint64_t k = 0; k < spec.samples; ++k) {
      const HashHopProblem problem(cell_config(spec, cell, k));
      DataRecord record;
      record.prompt = problem.prompt();
      record.expected = parse_completion(problem.completion());
      record.n_chars = cell.n_chars;
      const auto t0 = std::chrono::steady_clock::now();
      std::string predicted;
      try {
        predicted = answer(record);
      } catch (const std::exception& e) {
        // Says which cell failed; the first line of the cause is kept whole (torch appends a backtrace).
        std::string what = e.what();
        what = what.substr(0, what.find('\n'));
        throw std::runtime_error("cell size " + std::to_string(cell.n_chars) + " hops " + std::to_string(cell.hops) +
                                 " cot " + (cell.cot ? "on" : "off") + " seed " + std::to_string(cell.first_seed + k) +
                                 ": " + what);
      }
      cell_result.answer_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      scorer.add(record.expected, predicted, cell.n_chars);
      all.add(record.expected, predicted, cell.n_chars);
      cell_result.prompt_chars += record.prompt.size();
      ++cell_result.records;
      if (on_record) on_record(++done, total);
    }
    cell_result.counts = scorer.report().overall;
    result.cells.push_back(std::move(cell_result));
  }
  result.report = all.report();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

nlohmann::json sweep_to_json(const SweepSpec& spec, const SweepResult& result, const nlohmann::json& meta) {
  nlohmann::json out = {{"format", "hashhop-sweep/1"}};
  for (const auto& [key, value] : meta.items()) out[key] = value;
  out["spec"] = {{"sizes", spec.sizes}, {"hops", spec.hops}, {"cot", spec.cots}, {"samples", spec.samples},
                 {"queries", spec.queries}, {"hash_len", spec.hash_len}, {"seed", spec.seed}};
  nlohmann::json cells = nlohmann::json::array();
  for (const auto& c : result.cells) {
    double sum = 0;
    for (double s : c.answer_seconds) sum += s;
    const double records = static_cast<double>(std::max<std::uint64_t>(c.records, 1));
    const double queries = static_cast<double>(std::max<std::uint64_t>(c.counts.queries, 1));
    nlohmann::json cell = {{"n_chars", c.cell.n_chars}, {"hops", c.cell.hops}, {"cot", c.cell.cot},
                           {"records", c.records}, {"mean_prompt_chars", static_cast<double>(c.prompt_chars) / records}};
    cell.update(counts_json(c.counts));
    cell["latency_s"] = {{"total", sum}, {"mean_per_record", sum / records}, {"p50_per_record", quantile(c.answer_seconds, 0.5)},
                         {"max_per_record", quantile(c.answer_seconds, 1.0)}, {"mean_per_query", sum / queries}};
    char gen[256];
    std::snprintf(gen, sizeof gen, "hashhop gen --chars %llu --hops %d%s --hash-len %d --queries %llu --seed %llu --samples %llu",
                  static_cast<unsigned long long>(c.cell.n_chars), c.cell.hops, c.cell.cot ? " --cot" : "", spec.hash_len,
                  static_cast<unsigned long long>(spec.queries), static_cast<unsigned long long>(c.cell.first_seed),
                  static_cast<unsigned long long>(c.records));
    cell["first_seed"] = c.cell.first_seed;
    cell["gen"] = gen;  // regenerates this cell's data exactly
    cells.push_back(std::move(cell));
  }
  out["cells"] = std::move(cells);
  out["score"] = score_to_json(result.report);
  out["seconds"] = result.seconds;
  return out;
}

std::string format_sweep_table(const SweepResult& result) {
  std::string out;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-24s %5s %4s %8s %9s %11s %12s\n", "size", "hops", "cot", "queries", "exact",
                "final-hash", "s/record");
  out += buf;
  for (const auto& c : result.cells) {
    double sum = 0;
    for (double s : c.answer_seconds) sum += s;
    std::snprintf(buf, sizeof buf, "%-24s %5d %4s %8llu %8.2f%% %10.2f%% %12.4f\n", describe_chars(c.cell.n_chars).c_str(),
                  c.cell.hops, c.cell.cot ? "on" : "off", static_cast<unsigned long long>(c.counts.queries),
                  100.0 * c.counts.exact_rate(), 100.0 * c.counts.final_rate(),
                  sum / static_cast<double>(std::max<std::uint64_t>(c.records, 1)));
    out += buf;
  }
  return out;
}

}  // namespace hashhop::bench
