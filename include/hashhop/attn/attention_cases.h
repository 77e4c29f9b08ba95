// The one registry of attention cases (after ggml's test-backend-ops): every (mechanism, shape, options)
// that the CPU and CUDA harnesses, GoogleTest, the Python tests and attn-bench run. Test: ctest -R AttentionCases
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hashhop/attn/bucket_attention.h"

namespace hashhop::attn {

enum class Mechanism { dense, bucket, signature_topk, index };
// "dense", "bucket", "signature_topk", "index" (retrieval.h's names).
const char* mechanism_name(Mechanism mechanism);

// What a case's output is compared with. Every harness builds it independently of the code under test.
enum class Expectation {
  dense,       // the mechanism at a setting that keeps every visible key: dense attention itself
  rule,        // a brute-force masked softmax over the keys the mechanism's rule keeps (dense: all of them)
  bucket_ids,  // CUDA: the LSH argmax kernel against bucket_ids(); the error is the share of rows that differ
};
const char* expectation_name(Expectation expectation);

// How signature cases draw their signatures.
enum class SignatureDraw {
  random,        // uniform bits
  identical,     // one code for every query and key (an index then keeps every key: dense)
  few_distinct,  // codes below 2^distinct_bits: exact matches and masses of ties happen
  pool,          // CUDA index: keys from a pool of n_k/3 codes holding ~0; queries members, near-members, strangers
};

// Layouts as AttentionProblem: q [heads_q, n_q, dim], k/v [heads_kv, n_k, dim]; causal queries sit at the end.
struct CaseShape {
  int heads_q = 1, heads_kv = 1, n_q = 1, n_k = 1, dim = 8;
  bool causal = false;
  bool identical_keys = false;  // every key equals the first: one bucket holds them all
};

// A mechanism's settings; the others' fields keep their defaults.
struct CaseOptions {
  // bucket
  int bucket_bits = 0, rounds = 1;
  BucketFunction bucket_function = BucketFunction::lsh;
  std::uint64_t seed = 0;  // bucket projection / LSH bit sampling; 0 = the harness draws one
  int dense_heads = 0;     // bucket: mixed heads, the last ones dense (BucketConfig::dense_heads)
  // signature top-k and index
  int bits = 64;
  int sinks = 0, window = 0, top_k = 0;
  double top_fraction = 0.0;
  int tables = 0, bits_per_table = 16;  // index: 0 tables = exact
  SignatureDraw signatures = SignatureDraw::random;
  int distinct_bits = 2;  // few_distinct
};

// Tolerances, after flash-attention's tests: a float64 path must agree with the float64 reference to
// `float64_abs` (the same sums in another order); a low-precision path (bf16 inputs on CUDA, float32
// ops from Python) must satisfy |fast - ref64| <= lowprec_factor · max|lowprec_ref - ref64| + lowprec_abs,
// where lowprec_ref is the reference's own low-precision result (CUDA: ref64 rounded to bf16; Python: the
// masked softmax computed in float32). Kept-key lists and candidate sets are compared exactly.
struct Tolerance {
  double float64_abs = 1e-12;
  double lowprec_factor = 2.0;
  double lowprec_abs = 1e-5;
};

// Which harnesses run a case.
enum Backend : unsigned {
  kCpuBackend = 1,    // src/attn/consistency.cpp: float64 references (attn-check, tests/attn)
  kCudaBackend = 2,   // src/attn/cuda/consistency_cuda.cu: the kernels (attn-check --device cuda)
  kTorchBackend = 4,  // tests/python/test_attention_cases.py: torch.ops.hashhop.* on the CPU
};

struct AttentionCase {
  std::string label;  // mechanism and options, the harness tables' first column: "bucket/lsh b=3 r=3"
  std::string name;   // unique: label [shape]
  Mechanism mechanism = Mechanism::dense;
  CaseShape shape;
  CaseOptions options;
  Expectation expectation = Expectation::rule;
  unsigned backends = kCpuBackend | kTorchBackend;
  Tolerance tolerance;
  std::string shape_name() const;  // "hq2 hkv1 q5 k9 d4 causal"
};

// attn-bench: what one benchmark table times, and at which sizes (tokens).
struct BenchmarkCase {
  std::string name;  // "decode/signature_topk", "decode/index", "prefill/bucket"
  Mechanism mechanism = Mechanism::dense;
  int heads = 8, dim = 128;
  std::vector<std::int64_t> sizes;  // cached tokens (decode) or tokens (prefill)
  CaseOptions options;
  double top_fraction_of_keys = 0;      // signature top-k: top_k = n · this
  int max_candidates = 0;               // index: candidate list width
  int bucket_size = 0;                  // bucket: mean keys per bucket, 2^bits = n / this
  std::vector<int> rounds;              // bucket: one column group per round count
  std::vector<int> dense_heads;         // bucket: mixed-head rows, one per count of dense heads (of `heads`)
};

// The registry. Adding a mechanism: its reference (src/attn), its entries here, its kernels; every
// harness picks the entries up (a harness that does not know a mechanism fails loudly).
const std::vector<AttentionCase>& attention_cases();
std::vector<AttentionCase> attention_cases(Backend backend);  // the cases one harness runs
// The seed a harness draws a case's inputs from: its own seed and the case's name (FNV-1a), so a case run
// alone (one GoogleTest parameter) draws what it draws in the full table.
std::uint64_t case_seed(const AttentionCase& c, unsigned seed);
const std::vector<BenchmarkCase>& benchmark_cases();
const BenchmarkCase& benchmark_case(const std::string& name);  // throws std::invalid_argument naming it

}  // namespace hashhop::attn
