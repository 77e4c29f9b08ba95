// The sweep core: cells and their fixed seeds, scoring through any answerer, the results JSON.
// Run: ctest -R Sweep  (the CLI side, with the demo model, is in tests/cli/test_cli.sh)
#include <gtest/gtest.h>

#include <stdexcept>

#include "hashhop/bench/reference_solver.h"
#include "hashhop/bench/sweep.h"

using namespace hashhop::bench;

namespace {
SweepSpec tiny_spec() {
  SweepSpec spec;
  spec.sizes = {400, 1000};
  spec.hops = {1, 2};
  spec.cots = {false, true};
  spec.samples = 2;
  spec.queries = 3;
  spec.hash_len = 6;
  spec.seed = 5;
  return spec;
}
}  // namespace

TEST(Sweep, CellSeedsDependOnlyOnTheCell) {
  auto spec = tiny_spec();
  const auto all = sweep_cells(spec);
  ASSERT_EQ(all.size(), 8u);
  spec.sizes = {1000};
  spec.hops = {2};
  const auto one = sweep_cells(spec);
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(one[0].first_seed, all[6].first_seed);  // size 1000, hops 2, CoT off
  EXPECT_NE(all[0].first_seed, all[1].first_seed);
}

TEST(Sweep, ExactSolverScoresEveryCellPerfectly) {
  const auto spec = tiny_spec();
  std::uint64_t calls = 0, last_done = 0;
  const auto result = run_sweep(
      spec,
      [&](const DataRecord& record) {
        ++calls;
        return solve_exactly(parse_prompt(record.prompt), ParsedCompletion(record.expected));
      },
      [&](std::uint64_t done, std::uint64_t total) { last_done = done; EXPECT_EQ(total, 16u); });
  EXPECT_EQ(calls, 16u);
  EXPECT_EQ(last_done, 16u);
  ASSERT_EQ(result.cells.size(), 8u);
  for (const auto& cell : result.cells) {
    EXPECT_EQ(cell.counts.queries, 6u);
    EXPECT_EQ(cell.counts.exact, 6u);
    EXPECT_EQ(cell.answer_seconds.size(), 2u);
  }
  EXPECT_EQ(result.report.by_hash_len.at(6).queries, 48u);
  const auto json = sweep_to_json(spec, result, {{"command", "test"}});
  EXPECT_EQ(json["format"], "hashhop-sweep/1");
  EXPECT_EQ(json["command"], "test");
  EXPECT_EQ(json["cells"].size(), 8u);
  EXPECT_DOUBLE_EQ(json["cells"][3]["exact_rate"].get<double>(), 1.0);
  EXPECT_TRUE(json["cells"][3]["latency_s"].contains("mean_per_record"));
  // The cell's `gen` command names its seeds (sample k: first_seed + k).
  const auto& cell = result.cells[3];
  EXPECT_NE(json["cells"][3]["gen"].get<std::string>().find("--seed " + std::to_string(cell.cell.first_seed)), std::string::npos);
  EXPECT_GT(json["cells"][3]["mean_prompt_chars"].get<double>(), 0);
}

TEST(Sweep, WrongAnswersAndFailuresAreReported) {
  auto spec = tiny_spec();
  const auto result = run_sweep(spec, [](const DataRecord&) { return std::string("nothing"); });
  EXPECT_EQ(result.report.overall.exact, 0u);
  EXPECT_EQ(result.report.overall.queries, 48u);
  try {
    run_sweep(spec, [](const DataRecord&) -> std::string { throw std::invalid_argument("hops: too many\nbacktrace"); });
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find("cell size 400 hops 1 cot off seed"), 0u) << e.what();
    EXPECT_EQ(std::string(e.what()).find("backtrace"), std::string::npos);
  }
  spec.hops = {0};
  EXPECT_THROW(validate_sweep(spec), std::invalid_argument);
  spec = tiny_spec();
  spec.queries = 1000;
  EXPECT_THROW(validate_sweep(spec), std::invalid_argument);
}
