// CUDA kernels against the float64 CPU references (see consistency_cuda.h). Inputs are bf16 on the
// GPU and the very same bf16 values in float64 on the CPU, so differences are the kernels' own: fp32
// accumulation and __expf. Kept-key lists and candidate sets must be identical (tolerance 0).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/cuda/bucket_attention_cuda.h"
#include "hashhop/attn/cuda/consistency_cuda.h"
#include "hashhop/attn/cuda/device_buffer.h"
#include "hashhop/attn/cuda/hash_index_cuda.h"
#include "hashhop/attn/cuda/signature_decode_cuda.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/attn/signature_attention.h"

namespace hashhop::attn::cuda {
namespace {

constexpr double kKernelTolerance = 2e-3;
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

std::string shape_name(const char* format, int a, int b, int c, int d, int e) {
  char buf[96];
  std::snprintf(buf, sizeof buf, format, a, b, c, d, e);
  return buf;
}

// ---- signature top-k decode ----

struct SignatureCase {
  int heads_q, heads_kv, n_keys, dim, bits, sinks, window, top_k;
  bool few_distinct;  // 3-bit signatures: masses of ties exercise the deterministic tie rule
};

ConsistencyResult signature_case(const SignatureCase& c, std::mt19937_64& rng) {
  const int words = signature_words(c.bits);
  std::vector<std::uint64_t> key_sigs(static_cast<std::size_t>(c.heads_kv) * c.n_keys * words), query_sigs(static_cast<std::size_t>(c.heads_q) * words);
  const std::uint64_t mask = c.few_distinct ? 7 : (c.bits % 64 ? (1ULL << (c.bits % 64)) - 1 : ~0ULL);
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
  ConsistencyResult result{"signature top-k (cuda)", shape_name("hq%d hkv%d k%d b%d top%d", c.heads_q, c.heads_kv, c.n_keys, c.bits, c.top_k),
                           "cpu ref: same keys, out", 0, kKernelTolerance};
  if (c.few_distinct) result.shape += " ties";
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

ConsistencyResult bucket_case(const BucketCase& c, std::mt19937_64& rng) {
  const Inputs in = random_inputs(c.heads_q, c.heads_kv, c.n_q, c.n_k, c.dim, rng, c.identical_keys);
  const AttentionProblem problem = in.problem(c.heads_q, c.heads_kv, c.n_q, c.n_k, c.dim, c.causal);
  BucketConfig config;
  config.bucket_bits = c.bucket_bits;
  config.rounds = c.rounds;
  config.seed = rng();
  const ProblemBuckets buckets = problem_buckets(problem, config);
  std::vector<std::uint32_t> q_ids, k_ids;
  for (const auto& ids : buckets.queries) q_ids.insert(q_ids.end(), ids.begin(), ids.end());
  for (const auto& ids : buckets.keys) k_ids.insert(k_ids.end(), ids.begin(), ids.end());

  DeviceBuffer<__nv_bfloat16> d_q(in.q), d_k(in.k), d_v(in.v);
  DeviceBuffer<std::uint32_t> d_qb(q_ids), d_kb(k_ids);
  DeviceBuffer<float> d_out(problem.out_size()), d_lse(static_cast<std::size_t>(c.heads_q) * c.n_q);
  BucketAttentionParams params{d_q.get(), d_k.get(), d_v.get(), d_qb.get(), d_kb.get(), c.heads_q, c.heads_kv, c.n_q, c.n_k, c.dim,
                               c.bucket_bits, c.rounds, c.causal, static_cast<float>(problem.scale), d_out.get(), d_lse.get(), nullptr};
  DeviceBuffer<char> workspace(bucket_workspace_bytes(params));
  params.workspace = workspace.get();
  bucket_attention(params, nullptr);
  HASHHOP_CUDA_CHECK(cudaDeviceSynchronize());

  std::vector<double> expected(problem.out_size()), expected_lse(static_cast<std::size_t>(c.heads_q) * c.n_q);
  attn::bucket_attention(problem, config, expected.data(), expected_lse.data());
  char shape[96];
  std::snprintf(shape, sizeof shape, "hq%d hkv%d q%d k%d d%d b%d r%d%s%s", c.heads_q, c.heads_kv, c.n_q, c.n_k, c.dim, c.bucket_bits, c.rounds,
                c.causal ? " causal" : "", c.identical_keys ? " same-keys" : "");
  ConsistencyResult result{"bucket (cuda)", shape, c.bucket_bits == 0 ? "cpu ref (= dense): out, lse" : "cpu ref: out, lse", 0, kKernelTolerance};
  result.max_error = std::max(max_error(d_out.to_host(), expected), max_error(d_lse.to_host(), expected_lse));
  if (c.bucket_bits == 0) {  // one bucket must also be dense attention itself
    std::vector<double> dense(problem.out_size());
    dense_attention(problem, dense.data());
    result.max_error = std::max(result.max_error, max_error(d_out.to_host(), dense));
  }
  return result;
}

// The argmax kernel of angular LSH against bucket_ids on the same projections.
ConsistencyResult lsh_ids_case(int n, int dim, int bucket_bits, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  std::vector<double> x(static_cast<std::size_t>(n) * dim);
  for (auto& value : x) value = normal(rng);
  BucketConfig config;
  config.bucket_bits = bucket_bits;
  config.seed = rng();
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
  DeviceBuffer<float> d_projected(projected);
  DeviceBuffer<std::uint32_t> d_ids(static_cast<std::size_t>(n));
  lsh_bucket_ids(d_projected.get(), n, columns, d_ids.get(), nullptr);
  const auto got = d_ids.to_host();
  const auto want = bucket_ids(x.data(), n, dim, config, 0);
  int differing = 0;
  for (int i = 0; i < n; ++i) differing += got[i] != want[i];
  // Float32 projections can only flip a bucket at a near-tie; allow 1 in 1000.
  return {"lsh bucket ids (cuda)", "n" + std::to_string(n) + " d" + std::to_string(dim) + " b" + std::to_string(bucket_bits), "bucket_ids: share differing",
          static_cast<double>(differing) / n, 1e-3};
}

// ---- hash index ----

struct IndexCase {
  int heads_q, heads_kv, n_q, n_k, bits, tables, bits_per_table;
  bool causal;
};

// Key signatures from a small pool (so codes repeat and chains are long; the pool holds ~0, the code
// with its own slot); queries are pool members, near-members (2 bits flipped) or strangers.
std::vector<ConsistencyResult> index_case(const IndexCase& c, std::mt19937_64& rng) {
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
  config.seed = rng();
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
  char shape[96];
  std::snprintf(shape, sizeof shape, "hq%d hkv%d q%d k%d %s%s", c.heads_q, c.heads_kv, c.n_q, c.n_k,
                c.tables ? ("L" + std::to_string(c.tables) + "xK" + std::to_string(c.bits_per_table)).c_str() : ("exact b" + std::to_string(c.bits)).c_str(),
                c.causal ? " causal" : "");
  std::vector<ConsistencyResult> results{{c.tables ? "index lsh lookup (cuda)" : "index exact lookup (cuda)", shape, "cpu index: rows differing", static_cast<double>(differing), 0}};
  if (c.n_q == 1) {  // decode: attention over the candidates with the sparse decode kernel
    constexpr int kDim = 128;
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
    results.push_back({c.tables ? "index lsh decode (cuda)" : "index exact decode (cuda)", shape, "index_attention: out",
                       max_error(d_out.to_host(), expected), kKernelTolerance});
  }
  return results;
}

}  // namespace

std::vector<ConsistencyResult> run_cuda_consistency(unsigned seed) {
  if (!cuda_device_available()) throw std::runtime_error("--device cuda: no CUDA device on this machine");
  std::mt19937_64 rng(seed * 7919ULL + 17);
  std::vector<ConsistencyResult> results;
  const SignatureCase signature_cases[] = {
      {1, 1, 1, 64, 64, 0, 0, 1, false},        {2, 1, 100, 128, 32, 2, 3, 10, false},
      {8, 8, 5000, 128, 64, 4, 16, 160, false}, {8, 2, 70000, 128, 128, 4, 64, 2000, false},
      {4, 4, 9000, 64, 64, 1, 1, 300, true},    {2, 2, 300, 128, 64, 0, 0, 1000, false},  // k >= n
  };
  for (const auto& c : signature_cases) results.push_back(signature_case(c, rng));
  const BucketCase bucket_cases[] = {
      {1, 1, 1, 1, 64, 2, 1, true, false},          // length 1
      {2, 2, 517, 517, 128, 0, 1, true, false},     // one bucket = dense
      {4, 2, 300, 300, 64, 3, 1, true, false},      // grouped heads
      {4, 2, 1000, 1000, 128, 4, 3, true, false},   // three rounds, each key once
      {8, 8, 2048, 2048, 128, 6, 2, false, false},  // not causal
      {2, 1, 100, 700, 128, 3, 2, true, false},     // chunked prefill: queries at the end of the keys
      {2, 2, 200, 200, 64, 3, 1, true, true},       // identical keys: one bucket holds them all
      {4, 4, 1, 5000, 128, 8, 2, true, false},      // decode, mostly empty buckets
  };
  for (const auto& c : bucket_cases) results.push_back(bucket_case(c, rng));
  results.push_back(lsh_ids_case(4096, 128, 6, rng));
  results.push_back(lsh_ids_case(1000, 64, 10, rng));
  const IndexCase index_cases[] = {
      {4, 2, 1, 5000, 64, 0, 0, false},   // exact, decode
      {2, 2, 64, 3000, 20, 0, 0, true},   // exact on 20 bits, causal prefill
      {4, 4, 1, 4000, 64, 4, 12, false},  // LSH 4 tables x 12 bits, decode
      {2, 1, 32, 2000, 64, 6, 8, true},   // LSH, causal
  };
  for (const auto& c : index_cases) {
    for (auto& r : index_case(c, rng)) results.push_back(std::move(r));
  }
  return results;
}

}  // namespace hashhop::attn::cuda
