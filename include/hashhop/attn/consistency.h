// One parametrised consistency harness for every attention mechanism (after ggml's test-backend-ops):
// each case builds random float64 inputs, runs a mechanism and an independent expectation, and reports
// the max abs error against a written-down tolerance. Used by the tests and `hashhop attn-check`.
#pragma once

#include <string>
#include <vector>

namespace hashhop::attn {

struct ConsistencyResult {
  std::string mechanism;
  std::string shape;
  std::string expectation;  // what it is compared with
  double max_error = 0;
  double tolerance = 0;
  bool passed() const { return max_error <= tolerance; }
};

std::vector<ConsistencyResult> run_cpu_consistency(unsigned seed = 0);

std::string format_consistency_table(const std::vector<ConsistencyResult>& results);

}  // namespace hashhop::attn
