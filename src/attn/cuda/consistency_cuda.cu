// CUDA kernels against the float64 CPU references (see consistency_cuda.h), over the registry's CUDA cases
// (attention_cases.h). Inputs are bf16 on the GPU and the very same bf16 values in float64 on the CPU, so
// differences are the kernels' own: fp32 accumulation and __expf. Kept-key lists and candidate sets must
// be identical (tolerance 0); outputs within the case's tolerance of the reference's own bf16 rounding.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include "hashhop/attn/attention_cases.h"
#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/cuda/bucket_attention_cuda.h"
#include "hashhop/attn/cuda/consistency_cuda.h"
#include "hashhop/attn/cuda/device_buffer.h"
#include "hashhop/attn/cuda/hash_index_cuda.h"
#include "hashhop/attn/cuda/signature_select_cuda.h"
#include "hashhop/attn/cuda/sparse_decode_cuda.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/attn/signature_attention.h"

namespace hashhop::attn::cuda {
namespace {

constexpr double kMismatch = std::numeric_limits<double>::infinity();

struct Inputs {
  std::vector<__nv_bfloat16> q, k, v;
  std::vector<double> qd, kd, vd;  // the same bf16 values, widened
  AttentionProblem problem(int heads_q, int heads_kv, int n_q, int n_k, int dim, bool causal) const {
    return AttentionProblem{qd.data(), kd.data(), vd.data(), nullptr, heads_q, heads_kv, n_q, n_k, dim, causal, 1.0 / std::sqrt(static_cast<double>(dim))};
  }
};

Inputs random_inputs(int heads_q, int heads_kv, int n_q, int n_k, int dim, std::mt19937_64& rng, bool identical_keys = false) {
  std::normal_distribution<float> normal;
  Inputs in;
  auto fill = [&](std::vector<__nv_bfloat16>& x, std::vector<double>& xd, std::size_t n) {
    x.resize(n);
    xd.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = __float2bfloat16(normal(rng));
      xd[i] = __bfloat162float(x[i]);
    }
  };
  fill(in.q, in.qd, static_cast<std::size_t>(heads_q) * n_q * dim);
  fill(in.k, in.kd, static_cast<std::size_t>(heads_kv) * n_k * dim);
  fill(in.v, in.vd, static_cast<std::size_t>(heads_kv) * n_k * dim);
  if (identical_keys) {
    for (std::size_t i = 0; i < in.k.size(); ++i) in.k[i] = in.k[i % static_cast<std::size_t>(dim)], in.kd[i] = in.kd[i % static_cast<std::size_t>(dim)];
  }
  return in;
}

// Max |got - want| over outputs; -inf on both sides (an empty key set's lse) counts as equal.
double max_error(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]) && got[i] == static_cast<float>(want[i])) continue;
    const double diff = std::abs(static_cast<double>(got[i]) - want[i]);
    worst = std::isnan(diff) ? kMismatch : std::max(worst, diff);
  }
  return worst;
}

// flash-attention's rule: factor · (what rounding the float64 reference to bf16 costs) + a floor.
double lowprec_tolerance(const Tolerance& t, const std::vector<std::vector<double>>& references) {
  double rounding = 0;
  for (const auto& ref : references)
    for (const double x : ref)
      if (std::isfinite(x)) rounding = std::max(rounding, std::abs(static_cast<double>(__bfloat162float(__float2bfloat16(static_cast<float>(x)))) - x));
  return t.lowprec_factor * rounding + t.lowprec_abs;
}

// ---- signature top-k decode ----

struct SignatureCase {
  int heads_q, heads_kv, n_keys, dim, bits, sinks, window, top_k;
  bool few_distinct;  // 3-bit signatures: masses of ties exercise the deterministic tie rule
  int distinct_bits;
};

ConsistencyResult signature_case(const AttentionCase& registry_case, std::mt19937_64& rng) {
  const CaseOptions& o = registry_case.options;
  const CaseShape& s = registry_case.shape;
  if (s.n_q != 1 || s.causal) throw std::invalid_argument(registry_case.name + ": the CUDA signature path decodes one query per head");
  const SignatureCase c{s.heads_q, s.heads_kv, s.n_k, s.dim, o.bits, o.sinks, o.window, o.top_k,
                        o.signatures == SignatureDraw::few_distinct, o.distinct_bits};
  const int words = signature_words(c.bits);
  std::vector<std::uint64_t> key_sigs(static_cast<std::size_t>(c.heads_kv) * c.n_keys * words), query_sigs(static_cast<std::size_t>(c.heads_q) * words);
  const std::uint64_t mask = c.few_distinct ? (1ULL << c.distinct_bits) - 1 : (c.bits % 64 ? (1ULL << (c.bits % 64)) - 1 : ~0ULL);
  for (auto* sigs : {&key_sigs, &query_sigs}) {
    for (std::size_t i = 0; i < sigs->size(); ++i) (*sigs)[i] = rng() & ((i % words == static_cast<std::size_t>(words - 1)) ? mask : ~0ULL);
  }
  const Inputs in = random_inputs(c.heads_q, c.heads_kv, 1, c.n_keys, c.dim, rng);
  const int stride = max_selected(c.n_keys, c.sinks, c.window, c.top_k);
  DeviceBuffer<std::uint64_t> d_keys(key_sigs), d_queries(query_sigs);
  DeviceBuffer<__nv_bfloat16> d_q(in.q), d_k(in.k), d_v(in.v);
  DeviceBuffer<int> d_selected(static_cast<std::size_t>(c.heads_q) * stride), d_count(static_cast<std::size_t>(c.heads_q));
  DeviceBuffer<char> d_select_ws(select_workspace_bytes(c.heads_q, c.n_keys)), d_decode_ws(decode_workspace_bytes(c.heads_q, c.dim, stride));
  DeviceBuffer<float> d_out(static_cast<std::size_t>(c.heads_q) * c.dim);
  select_keys({d_keys.get(), d_queries.get(), c.heads_q, c.heads_kv, c.n_keys, c.bits, c.sinks, c.window, c.top_k, d_selected.get(), d_count.get(), d_select_ws.get()}, nullptr);
  const AttentionProblem problem = in.problem(c.heads_q, c.heads_kv, 1, c.n_keys, c.dim, false);
  sparse_decode({d_q.get(), d_k.get(), d_v.get(), d_selected.get(), d_count.get(), stride, c.heads_q, c.heads_kv, c.n_keys, c.dim,
                 static_cast<float>(problem.scale), d_out.get(), d_decode_ws.get()}, nullptr);
  HASHHOP_CUDA_CHECK(cudaDeviceSynchronize());
  const auto selected = d_selected.to_host();
  const auto counts = d_count.to_host();
  const SignatureConfig config{c.bits, c.sinks, c.window, c.top_k};
  std::vector<double> expected(problem.out_size());
  signature_attention(problem, query_sigs.data(), key_sigs.data(), config, expected.data());
  ConsistencyResult result{registry_case.label, registry_case.shape_name(), "cpu ref: same keys, out", 0,
                           lowprec_tolerance(registry_case.tolerance, {expected})};
  for (int h = 0; h < c.heads_q; ++h) {
    const auto want = select_signature_keys(query_sigs.data() + static_cast<std::size_t>(h) * words,
                                            key_sigs.data() + static_cast<std::size_t>(problem.kv_head(h)) * c.n_keys * words, c.n_keys - 1, config);
    const auto begin = selected.begin() + static_cast<std::ptrdiff_t>(h) * stride;
    if (counts[h] != static_cast<int>(want.size()) || !std::equal(want.begin(), want.end(), begin)) result.max_error = kMismatch;
  }
  result.max_error = std::max(result.max_error, max_error(d_out.to_host(), expected));
  return result;
}

// ---- bucket attention ----

struct BucketCase {
  int heads_q, heads_kv, n_q, n_k, dim, bucket_bits, rounds;
  bool causal, identical_keys;
};

std::vector<ConsistencyResult> bucket_case(const AttentionCase& registry_case, std::mt19937_64& rng) {
  const CaseShape& s = registry_case.shape;
  const BucketCase c{s.heads_q, s.heads_kv, s.n_q, s.n_k, s.dim, registry_case.options.bucket_bits, registry_case.options.rounds,
                     s.causal, s.identical_keys};
  if (registry_case.options.bucket_function != BucketFunction::lsh)
    throw std::invalid_argument(registry_case.name + ": the CUDA bucket kernel takes ids; the registry's CUDA cases use lsh");
  if (registry_case.options.dense_heads != 0)
    throw std::invalid_argument(registry_case.name + ": mixed heads run through the torch op (dense heads by SDPA), not this harness");
  const Inputs in = random_inputs(c.heads_q, c.heads_kv, c.n_q, c.n_k, c.dim, rng, c.identical_keys);
  const AttentionProblem problem = in.problem(c.heads_q, c.heads_kv, c.n_q, c.n_k, c.dim, c.causal);
  BucketConfig config;
  config.bucket_bits = c.bucket_bits;
  config.rounds = c.rounds;
  config.seed = registry_case.options.seed ? registry_case.options.seed : rng();
  const ProblemBuckets buckets = problem_buckets(problem, config);
  std::vector<std::uint32_t> q_ids, k_ids;
  for (const auto& ids : buckets.queries) q_ids.insert(q_ids.end(), ids.begin(), ids.end());
  for (const auto& ids : buckets.keys) k_ids.insert(k_ids.end(), ids.begin(), ids.end());

  DeviceBuffer<__nv_bfloat16> d_q(in.q), d_k(in.k), d_v(in.v);
  DeviceBuffer<std::uint32_t> d_qb(q_ids), d_kb(k_ids);
  std::vector<double> expected(problem.out_size()), expected_lse(static_cast<std::size_t>(c.heads_q) * c.n_q);
  attn::bucket_attention(problem, config, expected.data(), expected_lse.data());
  std::vector<double> dense;
  if (registry_case.expectation == Expectation::dense) {  // one bucket must also be dense attention itself
    dense.resize(problem.out_size());
    dense_attention(problem, dense.data());
  }
  // Outputs and lse each against their own reference's bf16 rounding; the row reports the lse error in
  // output units (scaled by the ratio of the two tolerances), so one column holds both.
  const double out_tolerance = lowprec_tolerance(registry_case.tolerance, {expected});
  const double lse_tolerance = lowprec_tolerance(registry_case.tolerance, {expected_lse});
  std::vector<ConsistencyResult> results;
  for (const bool tensor_cores : {true, false}) {  // both tile kernels see the same inputs and ids
    DeviceBuffer<float> d_out(problem.out_size()), d_lse(static_cast<std::size_t>(c.heads_q) * c.n_q);
    BucketAttentionParams params{d_q.get(), d_k.get(), d_v.get(), d_qb.get(), d_kb.get(), c.heads_q, c.heads_kv, c.n_q, c.n_k, c.dim,
                                 c.bucket_bits, c.rounds, c.causal, static_cast<float>(problem.scale), d_out.get(), d_lse.get(), nullptr};
    params.tensor_cores = tensor_cores;
    DeviceBuffer<char> workspace(bucket_workspace_bytes(params));
    params.workspace = workspace.get();
    bucket_attention(params, nullptr);
    HASHHOP_CUDA_CHECK(cudaDeviceSynchronize());
    const std::string tiles = tensor_cores ? " (tensor-core tiles)" : " (fp32-FMA tiles)";
    ConsistencyResult result{registry_case.label, registry_case.shape_name(),
                             (registry_case.expectation == Expectation::dense ? "cpu ref (= dense): out, lse" : "cpu ref: out, lse") + tiles, 0,
                             out_tolerance};
    const std::vector<float> out = d_out.to_host();
    result.max_error = std::max(max_error(out, expected), max_error(d_lse.to_host(), expected_lse) * out_tolerance / lse_tolerance);
    if (!dense.empty()) result.max_error = std::max(result.max_error, max_error(out, dense));
    results.push_back(std::move(result));
  }
  return results;
}

// The argmax kernels of angular LSH against bucket_ids: over float32 projections, and fused from bf16 rows
// on tensor cores. x is drawn in bf16, so every path sees the same values.
std::vector<ConsistencyResult> lsh_ids_case(const AttentionCase& registry_case, std::mt19937_64& rng) {
  const int n = registry_case.shape.n_k, dim = registry_case.shape.dim, bucket_bits = registry_case.options.bucket_bits;
  std::normal_distribution<double> normal;
  std::vector<double> x(static_cast<std::size_t>(n) * dim);
  std::vector<__nv_bfloat16> x_bf16(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x_bf16[i] = __float2bfloat16(static_cast<float>(normal(rng)));
    x[i] = __bfloat162float(x_bf16[i]);
  }
  BucketConfig config;
  config.bucket_bits = bucket_bits;
  config.seed = registry_case.options.seed ? registry_case.options.seed : rng();
  const int columns = bucket_projection_columns(config);
  const std::vector<double> projection = bucket_projection(dim, config, 0);
  std::vector<float> projected(static_cast<std::size_t>(n) * columns);
  for (int i = 0; i < n; ++i) {
    for (int c = 0; c < columns; ++c) {
      double dot = 0;
      for (int d = 0; d < dim; ++d) dot += x[static_cast<std::size_t>(i) * dim + d] * projection[static_cast<std::size_t>(d) * columns + c];
      projected[static_cast<std::size_t>(i) * columns + c] = static_cast<float>(dot);
    }
  }
  const auto want = bucket_ids(x.data(), n, dim, config, 0);
  DeviceBuffer<float> d_projected(projected);
  DeviceBuffer<__nv_bfloat16> d_x(x_bf16), d_rotation(split_rotation(projection, dim, columns));
  std::vector<ConsistencyResult> results;
  for (const bool fused : {false, true}) {
    DeviceBuffer<std::uint32_t> d_ids(static_cast<std::size_t>(n));
    if (fused) lsh_bucket_ids(d_x.get(), n, dim, d_rotation.get(), columns, d_ids.get(), nullptr);
    else lsh_bucket_ids(d_projected.get(), n, columns, d_ids.get(), nullptr);
    const auto got = d_ids.to_host();
    int differing = 0;
    for (int i = 0; i < n; ++i) differing += got[i] != want[i];
    // float32 projections, or R in two bf16 parts (~16 bits), flip a bucket only at a near-tie: the registry allows 1 in 1000.
    results.push_back({registry_case.label, "n" + std::to_string(n) + " d" + std::to_string(dim),
                       fused ? "bucket_ids: share differing (bf16 rows, tensor cores)" : "bucket_ids: share differing (float32 projections)",
                       static_cast<double>(differing) / n, registry_case.tolerance.float64_abs});
  }
  return results;
}

// ---- hash index ----

struct IndexCase {
  int heads_q, heads_kv, n_q, n_k, bits, tables, bits_per_table;
  bool causal;
};

// Key signatures from a small pool (so codes repeat and chains are long; the pool holds ~0, the code
// with its own slot); queries are pool members, near-members (2 bits flipped) or strangers.
std::vector<ConsistencyResult> index_case(const AttentionCase& registry_case, std::mt19937_64& rng) {
  const CaseShape& s = registry_case.shape;
  const CaseOptions& o = registry_case.options;
  if (o.signatures != SignatureDraw::pool) throw std::invalid_argument(registry_case.name + ": the CUDA index cases draw from a pool");
  const IndexCase c{s.heads_q, s.heads_kv, s.n_q, s.n_k, o.bits, o.tables, o.bits_per_table, s.causal};
  std::vector<std::uint64_t> pool(static_cast<std::size_t>(std::max(2, c.n_k / 3)));
  for (auto& value : pool) value = rng();
  pool[0] = ~0ULL;
  std::vector<std::uint64_t> key_sigs(static_cast<std::size_t>(c.heads_kv) * c.n_k), query_sigs(static_cast<std::size_t>(c.heads_q) * c.n_q);
  for (auto& sig : key_sigs) sig = pool[rng() % pool.size()];
  for (std::size_t i = 0; i < query_sigs.size(); ++i) {
    const std::uint64_t member = pool[rng() % pool.size()];
    query_sigs[i] = i % 3 == 0 ? member : i % 3 == 1 ? member ^ (1ULL << (rng() % 64)) ^ (1ULL << (rng() % 64)) : rng();
  }
  IndexConfig config;
  config.bits = c.bits;
  config.tables = c.tables;
  config.bits_per_table = c.bits_per_table;
  config.seed = o.seed ? o.seed : rng();
  const auto sampled = sampled_bit_positions(config);
  const DeviceIndexLayout layout = index_layout(c.heads_kv, c.bits, c.n_k, sampled);
  DeviceBuffer<char> memory(index_bytes(layout));
  const DeviceIndex index = make_index(layout, memory.get(), sampled, nullptr);
  DeviceBuffer<std::uint64_t> d_keys(key_sigs), d_queries(query_sigs);
  const int batches[] = {0, c.n_k / 5, c.n_k / 2, c.n_k};  // streamed: three inserts
  for (int b = 0; b < 3; ++b) index_insert(index, d_keys.get(), c.n_k, batches[b], batches[b + 1] - batches[b], nullptr);
  const int rows = c.heads_q * c.n_q;
  DeviceBuffer<int> d_candidates(static_cast<std::size_t>(rows) * c.n_k), d_counts(static_cast<std::size_t>(rows)), d_totals(static_cast<std::size_t>(rows));
  IndexLookupParams lookup{d_keys.get(), c.n_k, d_queries.get(), c.heads_q, c.n_q, c.n_k, c.causal, c.n_k, d_candidates.get(), d_counts.get(), d_totals.get()};
  index_lookup(index, lookup, nullptr);
  HASHHOP_CUDA_CHECK(cudaDeviceSynchronize());
  const auto candidates = d_candidates.to_host();
  const auto counts = d_counts.to_host();

  const std::vector<SignatureIndex> reference = build_head_indexes(key_sigs.data(), c.heads_kv, c.n_k, config);
  int differing = 0;
  for (int row = 0; row < rows; ++row) {
    const int head = row / c.n_q, query = row % c.n_q;
    const int last = c.causal ? c.n_k - c.n_q + query : c.n_k - 1;
    const std::vector<int> want = reference[static_cast<std::size_t>(head / (c.heads_q / c.heads_kv))].candidates_up_to(query_sigs[static_cast<std::size_t>(row)], last);
    std::vector<int> got(candidates.begin() + static_cast<std::ptrdiff_t>(row) * c.n_k, candidates.begin() + static_cast<std::ptrdiff_t>(row) * c.n_k + counts[row]);
    std::sort(got.begin(), got.end());
    differing += got != want;
  }
  const std::string shape = registry_case.shape_name();
  std::vector<ConsistencyResult> results{{registry_case.label + " lookup", shape, "cpu index: rows differing", static_cast<double>(differing), 0}};
  if (c.n_q == 1) {  // decode: attention over the candidates with the sparse decode kernel
    const int kDim = s.dim;
    const Inputs in = random_inputs(c.heads_q, c.heads_kv, 1, c.n_k, kDim, rng);
    const AttentionProblem problem = in.problem(c.heads_q, c.heads_kv, 1, c.n_k, kDim, c.causal);
    DeviceBuffer<__nv_bfloat16> d_q(in.q), d_k(in.k), d_v(in.v);
    DeviceBuffer<char> workspace(decode_workspace_bytes(c.heads_q, kDim, c.n_k));
    DeviceBuffer<float> d_out(problem.out_size());
    sparse_decode({d_q.get(), d_k.get(), d_v.get(), d_candidates.get(), d_counts.get(), c.n_k, c.heads_q, c.heads_kv, c.n_k, kDim,
                   static_cast<float>(problem.scale), d_out.get(), workspace.get()}, nullptr);
    HASHHOP_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<double> expected(problem.out_size());
    index_attention(problem, query_sigs.data(), key_sigs.data(), config, expected.data());
    results.push_back({registry_case.label + " decode", shape, "index_attention: out", max_error(d_out.to_host(), expected),
                       lowprec_tolerance(registry_case.tolerance, {expected})});
  }
  return results;
}

}  // namespace

std::vector<ConsistencyResult> run_cuda_case(const AttentionCase& c, unsigned seed) {
  if (!cuda_device_available()) throw std::runtime_error("--device cuda: no CUDA device on this machine");
  std::mt19937_64 rng(case_seed(c, seed));
  if (c.expectation == Expectation::bucket_ids) return lsh_ids_case(c, rng);
  switch (c.mechanism) {
    case Mechanism::signature_topk: return {signature_case(c, rng)};
    case Mechanism::bucket: return bucket_case(c, rng);
    case Mechanism::index: return index_case(c, rng);
    case Mechanism::dense: break;
  }
  throw std::invalid_argument(c.name + ": the CUDA harness has no kernel for mechanism " + mechanism_name(c.mechanism));
}

std::vector<ConsistencyResult> run_cuda_consistency(unsigned seed) {
  if (!cuda_device_available()) throw std::runtime_error("--device cuda: no CUDA device on this machine");
  std::vector<ConsistencyResult> results;
  for (const AttentionCase& c : attention_cases(kCudaBackend))
    for (auto& r : run_cuda_case(c, seed)) results.push_back(std::move(r));
  return results;
}

}  // namespace hashhop::attn::cuda
