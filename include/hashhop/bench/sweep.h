// A HashHop sweep: every (context size, hops, CoT) cell generated with fixed seeds, answered by any
// answerer (a model, later an endpoint) and scored. Torch-free; `hashhop sweep` drives it, tests/bench tests it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hashhop/bench/scorer.h"

namespace hashhop::bench {

// Answers one data record (prompt + expected queries) with a completion text, read like a prediction
// by the scorer. What eval does with a model; an HTTP endpoint fits the same signature.
using Answerer = std::function<std::string(const DataRecord& record)>;

struct SweepSpec {
  std::vector<std::uint64_t> sizes;  // n_chars_problem of each cell
  std::vector<int> hops;
  std::vector<bool> cots;
  std::uint64_t samples = 4;  // records per cell
  std::uint64_t queries = 5;  // queries per record
  int hash_len = 16;
  std::uint64_t seed = 0;  // base seed; each cell's seeds derive from it and the cell alone
};

struct SweepCell {
  std::uint64_t n_chars = 0;
  int hops = 0;
  bool cot = false;
  std::uint64_t first_seed = 0;  // sample k uses first_seed + k (`hashhop gen --seed first_seed --samples N`)
};

struct CellResult {
  SweepCell cell;
  ScoreCounts counts;
  std::uint64_t records = 0;
  std::uint64_t prompt_chars = 0;          // sum of actual prompt lengths
  std::vector<double> answer_seconds;      // per record: the answerer's wall time
};

struct SweepResult {
  std::vector<CellResult> cells;
  ScoreReport report;  // all cells together (by hops, CoT, size, hash length)
  double seconds = 0;  // whole sweep, generation included
};

// The cells in run order (sizes outer, then hops, then CoT) with their seeds. A cell's seed depends on
// the base seed and the cell's own parameters, not on which other cells are swept, so a cell of a
// small sweep holds the same data as the same cell of a large one.
std::vector<SweepCell> sweep_cells(const SweepSpec& spec);

// Checks every cell's generator parameters up front (std::invalid_argument naming the option).
void validate_sweep(const SweepSpec& spec);

// Runs the sweep. on_record(done, total) is called after each answered record (for a progress bar).
// An exception from the answerer propagates, prefixed with the cell that was being answered.
SweepResult run_sweep(const SweepSpec& spec, const Answerer& answer,
                      const std::function<void(std::uint64_t done, std::uint64_t total)>& on_record = {});

// The results JSON (format "hashhop-sweep/1"; fields in docs/format.md). meta is merged in at the top
// level (command, date, commit, device, model, ...).
nlohmann::json sweep_to_json(const SweepSpec& spec, const SweepResult& result, const nlohmann::json& meta);

// A short text table of the cells (stderr of `hashhop sweep`).
std::string format_sweep_table(const SweepResult& result);

}  // namespace hashhop::bench
