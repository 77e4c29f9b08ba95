// One parametrised consistency harness for every attention mechanism (after ggml's test-backend-ops):
// each case of the registry (attention_cases.h) builds random float64 inputs, runs a mechanism and an
// independent expectation, and reports the max abs error against the case's tolerance. Used by the tests
// and `hashhop attn-check`.
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

struct AttentionCase;

// One registry case (attention_cases.h) on the float64 references; inputs drawn from seed and the case's name.
ConsistencyResult run_cpu_case(const AttentionCase& c, unsigned seed = 0);
// Every case the registry marks for the CPU backend.
std::vector<ConsistencyResult> run_cpu_consistency(unsigned seed = 0);

std::string format_consistency_table(const std::vector<ConsistencyResult>& results);

}  // namespace hashhop::attn
