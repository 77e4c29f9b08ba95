// Every CUDA attention kernel against its float64 CPU reference (the CUDA consistency harness, the same
// rows `hashhop attn-check --device cuda` prints), plus the multi-query, strided and fp16/fp32 kernel paths
// the LibTorch ops use. Skips itself on machines without a GPU.
// Run: build/tests/test_attention_cuda (scripts/gpu-check.sh runs it there, also under compute-sanitizer).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <stdexcept>
#include <vector>

#include "hashhop/attn/attention_cases.h"
#include "hashhop/attn/attention_problem.h"
#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/cuda/bucket_attention_cuda.h"
#include "hashhop/attn/cuda/consistency_cuda.h"
#include "hashhop/attn/cuda/device_buffer.h"
#include "hashhop/attn/cuda/signature_select_cuda.h"
#include "hashhop/attn/cuda/sparse_decode_cuda.h"
#include "hashhop/attn/signature_attention.h"

// GoogleTest prints a parameter by its registry name.
namespace hashhop::attn {
void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }
}  // namespace hashhop::attn

// One test per CUDA case of the registry (attention_cases.h), as `attn-check --device cuda` runs them.
class AttentionCudaCase : public ::testing::TestWithParam<hashhop::attn::AttentionCase> {};

TEST_P(AttentionCudaCase, MatchesItsCpuReference) {
  if (!hashhop::attn::cuda::cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto& r : hashhop::attn::cuda::run_cuda_case(GetParam(), 3)) {
    EXPECT_TRUE(r.passed()) << r.mechanism << " [" << r.shape << "] vs " << r.expectation << ": " << r.max_error << " > " << r.tolerance;
  }
}

INSTANTIATE_TEST_SUITE_P(AttentionCuda, AttentionCudaCase, ::testing::ValuesIn(hashhop::attn::attention_cases(hashhop::attn::kCudaBackend)),
                         [](const ::testing::TestParamInfo<hashhop::attn::AttentionCase>& info) {
                           std::string name = std::to_string(info.index) + "_";
                           for (const char ch : info.param.label) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return name;
                         });

TEST(AttentionCuda, EveryKernelMatchesItsCpuReference) {
  if (!hashhop::attn::cuda::cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  const auto results = hashhop::attn::cuda::run_cuda_consistency(3);
  ASSERT_GE(results.size(), 20u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.passed()) << r.mechanism << " [" << r.shape << "] vs " << r.expectation << ": " << r.max_error << " > " << r.tolerance;
  }
}

// ---- kernel paths the LibTorch ops use (src/ops/attention_ops_cuda.cpp), checked without torch ----

namespace hashhop::attn::cuda {
namespace {

// Random values already rounded to the element type, so the float64 reference sees what the kernel reads.
struct Typed {
  std::vector<double> values;          // rounded, as doubles
  std::vector<unsigned char> storage;  // the same values in the element type's bytes
};

Typed typed_normal(std::size_t count, Element element, std::mt19937_64& rng) {
  std::normal_distribution<float> normal;
  Typed t;
  const std::size_t size = element == Element::fp32 ? 4 : 2;
  t.values.resize(count);
  t.storage.resize(count * size);
  for (std::size_t i = 0; i < count; ++i) {
    const float x = normal(rng);
    if (element == Element::bf16) {
      const __nv_bfloat16 b = __float2bfloat16(x);
      t.values[i] = __bfloat162float(b);
      std::memcpy(&t.storage[i * size], &b, size);
    } else if (element == Element::fp16) {
      const __half h = __float2half(x);
      t.values[i] = __half2float(h);
      std::memcpy(&t.storage[i * size], &h, size);
    } else {
      t.values[i] = x;
      std::memcpy(&t.storage[i * size], &x, size);
    }
  }
  return t;
}

struct SelectCase {
  int heads_q, heads_kv, n_q, n_keys, key_stride, bits, sinks, window, top_k;
  double top_fraction;
  bool causal;
  int workspace_rows;
};

// Many queries per head, each in its own causal frame, with a key stride, in chunks of rows: exactly the
// CPU selection (select_signature_keys) for every row, through the one-block-per-row kernel (rows up to 16K
// keys), the fused two-kernel path (up to 32 tiles, 64K keys, at most 2,048 blocks a launch) and the
// count/write kernels (longer rows or bigger launches; up to and past 256 tiles).
TEST(AttentionCuda, MultiQuerySelectionEqualsTheCpuSelection) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937_64 rng(17);
  for (const SelectCase c : {SelectCase{4, 2, 37, 3001, 3001, 64, 2, 5, 20, 0.0, true, 5},
                             SelectCase{4, 2, 37, 3000, 3004, 64, 0, 3, 0, 0.1, true, 0},
                             SelectCase{2, 1, 9, 777, 780, 100, 1, 1, 33, 0.0, false, 4},
                             SelectCase{3, 3, 64, 64, 64, 128, 0, 0, 0, 0.5, true, 7},
                             // Past 16K keys a row is tiled: causal frames, two-word signatures, an odd key
                             // stride (unpaired loads) and row chunks there too.
                             SelectCase{4, 2, 5, 20000, 20001, 128, 2, 5, 40, 0.0, true, 3},
                             SelectCase{2, 2, 3, 17000, 17003, 64, 0, 7, 0, 0.02, true, 2},
                             // 2,500 causal frames (17,501 to 20,000 keys): early rows see none of the last
                             // tile (a tile past the visible keys must count nothing). Chunks of 200 rows take
                             // the fused path (10 tiles a row, 2,000 blocks), chunks of 700 the count/write path.
                             SelectCase{2, 1, 2500, 20000, 20000, 64, 1, 3, 0, 0.03, true, 200},
                             SelectCase{2, 1, 2500, 20000, 20000, 64, 1, 3, 0, 0.03, true, 700},
                             // 32 tiles exactly (the last fused size, odd stride), and one key more (count/write).
                             SelectCase{2, 1, 2, 65536, 65537, 64, 4, 64, 2048, 0.0, true, 0},
                             SelectCase{2, 1, 2, 65537, 65538, 64, 4, 64, 0, 0.03125, true, 0},
                             // 256 tiles of 2,048 keys: the write blocks sum the earlier tiles themselves; one
                             // key more and tile_scan_kernel runs (both paths of select_keys).
                             SelectCase{2, 1, 1, 524288, 524288, 64, 4, 64, 3000, 0.0, false, 0},
                             SelectCase{2, 1, 1, 524289, 524290, 64, 4, 64, 0, 0.01, false, 1}}) {
    const int words = signature_words(c.bits), rows = c.heads_q * c.n_q;
    std::vector<std::uint64_t> keys(static_cast<std::size_t>(c.heads_kv) * c.key_stride * words), queries(static_cast<std::size_t>(rows) * words);
    const std::uint64_t last_mask = c.bits % 64 ? (1ULL << (c.bits % 64)) - 1 : ~0ULL;
    for (std::size_t i = 0; i < keys.size(); ++i) keys[i] = rng() & (i % words == static_cast<std::size_t>(words - 1) ? last_mask : ~0ULL);
    for (std::size_t i = 0; i < queries.size(); ++i) queries[i] = rng() & (i % words == static_cast<std::size_t>(words - 1) ? last_mask : ~0ULL);
    SignatureSelectParams p;
    p.heads_q = c.heads_q, p.heads_kv = c.heads_kv, p.n_q = c.n_q, p.n_keys = c.n_keys, p.key_stride = c.key_stride;
    p.bits = c.bits, p.sinks = c.sinks, p.window = c.window, p.top_k = c.top_k, p.top_fraction = c.top_fraction;
    p.causal = c.causal, p.workspace_rows = c.workspace_rows;
    const int stride = selected_stride(p);
    DeviceBuffer<std::uint64_t> d_keys(keys), d_queries(queries);
    DeviceBuffer<int> d_selected(static_cast<std::size_t>(rows) * stride), d_counts(static_cast<std::size_t>(rows));
    DeviceBuffer<char> d_ws(select_workspace_bytes(c.workspace_rows > 0 ? c.workspace_rows : rows, c.n_keys));
    p.key_signatures = d_keys.get(), p.query_signatures = d_queries.get();
    DeviceBuffer<int> d_arrivals(std::vector<int>(static_cast<std::size_t>(rows), 7));  // garbage the selection must clear
    p.selected = d_selected.get(), p.n_selected = d_counts.get(), p.workspace = d_ws.get(), p.decode_arrivals = d_arrivals.get();
    select_keys(p, nullptr);
    const auto selected = d_selected.to_host();
    const auto counts = d_counts.to_host();
    const auto arrivals = d_arrivals.to_host();
    EXPECT_TRUE(std::all_of(arrivals.begin(), arrivals.end(), [](int a) { return a == 0; })) << "case n_keys " << c.n_keys;
    const SignatureConfig config{c.bits, c.sinks, c.window, c.top_k, c.top_fraction};
    for (int row = 0; row < rows; ++row) {
      const int head = row / c.n_q, i = row % c.n_q, kv = head / (c.heads_q / c.heads_kv);
      const int last = c.causal ? c.n_keys - c.n_q + i : c.n_keys - 1;
      const auto want = select_signature_keys(queries.data() + static_cast<std::size_t>(row) * words,
                                              keys.data() + static_cast<std::size_t>(kv) * c.key_stride * words, last, config);
      ASSERT_EQ(counts[row], static_cast<int>(want.size())) << "case n_keys " << c.n_keys << " row " << row;
      EXPECT_TRUE(std::equal(want.begin(), want.end(), selected.begin() + static_cast<std::ptrdiff_t>(row) * stride))
          << "case n_keys " << c.n_keys << " row " << row;
    }
  }
}

double worst_difference(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]));
  return worst;
}

struct DecodeShape {
  int heads_q, heads_kv, n_q, n_keys, stride, workspace_rows;
};

// Sparse decode over causal multi-query selections, every element type and head dim, in row chunks,
// against attend_selected in float64 on the same (rounded) values. Float32 math: tolerance 2e-4.
// Shapes: 20 rows in chunks of 3 (64 keys a split block: five splits of the 300-key lists), and 128 rows
// in one chunk (the launch doubles the keys a block to keep the grid near its target: 256 keys, three
// splits of 600-key lists; 512 keys, four splits of 2,000-key lists; 1,024 keys, the most, five splits of
// 5,000-key lists).
TEST(AttentionCuda, SparseDecodeInEveryElementTypeEqualsTheReference) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937_64 rng(23);
  for (const DecodeShape shape : {DecodeShape{4, 2, 5, 700, 300, 3}, DecodeShape{64, 8, 2, 1400, 600, 128},
                                   DecodeShape{64, 8, 2, 4200, 2000, 128}, DecodeShape{64, 8, 2, 10400, 5000, 128}}) {
    const int heads_q = shape.heads_q, heads_kv = shape.heads_kv, n_q = shape.n_q, n_keys = shape.n_keys;
    for (const Element element : {Element::bf16, Element::fp16, Element::fp32}) {
      for (const int dim : {64, 128}) {
        const Typed q = typed_normal(static_cast<std::size_t>(heads_q) * n_q * dim, element, rng);
        const Typed k = typed_normal(static_cast<std::size_t>(heads_kv) * n_keys * dim, element, rng);
        const Typed v = typed_normal(static_cast<std::size_t>(heads_kv) * n_keys * dim, element, rng);
        // Every other visible key, in descending order (lists need not be sorted), `stride` at most.
        const int rows = heads_q * n_q, stride = shape.stride;
        std::vector<int> selected(static_cast<std::size_t>(rows) * stride, 0), counts(rows, 0);
        std::vector<std::vector<int>> lists(rows);
        for (int row = 0; row < rows; ++row) {
          for (int j = n_keys - n_q + row % n_q; j >= 0 && static_cast<int>(lists[row].size()) < stride; j -= 2) lists[row].push_back(j);
          std::copy(lists[row].begin(), lists[row].end(), selected.begin() + static_cast<std::ptrdiff_t>(row) * stride);
          counts[row] = static_cast<int>(lists[row].size());
        }
        counts[3] = 0;  // a row with no keys outputs zeros
        lists[3].clear();
        DeviceBuffer<unsigned char> d_q(q.storage), d_k(k.storage), d_v(v.storage);
        DeviceBuffer<int> d_selected(selected), d_counts(counts);
        DeviceBuffer<char> d_ws(decode_workspace_bytes(shape.workspace_rows, dim, stride));
        DeviceBuffer<float> d_out(static_cast<std::size_t>(rows) * dim), d_lse(static_cast<std::size_t>(rows));
        SparseDecodeParams p;
        p.q = d_q.get(), p.k = d_k.get(), p.v = d_v.get(), p.selected = d_selected.get(), p.n_selected = d_counts.get();
        p.selected_stride = stride, p.heads_q = heads_q, p.heads_kv = heads_kv, p.n_q = n_q, p.n_keys = n_keys, p.dim = dim;
        p.scale = 0.11f, p.out = d_out.get(), p.workspace = d_ws.get(), p.workspace_rows = shape.workspace_rows, p.element = element, p.lse = d_lse.get();
        sparse_decode(p, nullptr);
        AttentionProblem problem;
        problem.q = q.values.data(), problem.k = k.values.data(), problem.v = v.values.data();
        problem.heads_q = heads_q, problem.heads_kv = heads_kv, problem.n_q = n_q, problem.n_k = n_keys, problem.dim = dim;
        problem.causal = true, problem.scale = 0.11f;
        std::vector<double> expected(problem.out_size()), lse(static_cast<std::size_t>(rows));
        attend_selected(problem, [&](int h, int i, std::vector<int>& keys) { keys = lists[h * n_q + i]; }, expected.data(), lse.data());
        EXPECT_LT(worst_difference(d_out.to_host(), expected), 2e-4) << "element " << static_cast<int>(element) << " dim " << dim;
        const auto got_lse = d_lse.to_host();
        for (int row = 0; row < rows; ++row) {
          if (row == 3) EXPECT_TRUE(std::isinf(got_lse[row]) && got_lse[row] < 0);
          else EXPECT_NEAR(got_lse[row], lse[row], 2e-4) << "row " << row;
        }
        const std::vector<float> out32 = d_out.to_host();
        // Fused merge (arrival counters, no merge kernel), twice in a row (the last block re-zeroes the counters):
        // the same merge code in the same order, so the very same floats.
        DeviceBuffer<int> d_arrivals(std::vector<int>(static_cast<std::size_t>(rows), 0));
        p.arrivals = d_arrivals.get();
        for (int step = 0; step < 2; ++step) {
          // NaN-filled, so a merge that did not run (a counter left non-zero by the step before) cannot pass.
          DeviceBuffer<float> d_fused(std::vector<float>(static_cast<std::size_t>(rows) * dim, std::nanf("")));
          p.out = d_fused.get();
          sparse_decode(p, nullptr);
          ASSERT_EQ(d_fused.to_host(), out32) << "fused merge, step " << step << " element " << static_cast<int>(element) << " dim " << dim;
          const auto arrivals = d_arrivals.to_host();
          ASSERT_TRUE(std::all_of(arrivals.begin(), arrivals.end(), [](int a) { return a == 0; })) << "counters left set, step " << step;
        }
        p.arrivals = nullptr;
        // The merge can also write q's dtype (what the torch ops ask for): the float result, rounded to nearest.
        const std::size_t size = element == Element::fp32 ? 4 : 2;
        DeviceBuffer<unsigned char> d_typed(out32.size() * size);
        p.out = d_typed.get(), p.out_element = element, p.lse = nullptr;
        sparse_decode(p, nullptr);
        const auto typed = d_typed.to_host();
        for (std::size_t i = 0; i < out32.size(); ++i) {
          float got = 0, want = out32[i];
          if (element == Element::bf16) {
            __nv_bfloat16 b;
            std::memcpy(&b, &typed[i * size], size);
            got = __bfloat162float(b), want = __bfloat162float(__float2bfloat16(out32[i]));
          } else if (element == Element::fp16) {
            __half h;
            std::memcpy(&h, &typed[i * size], size);
            got = __half2float(h), want = __half2float(__float2half(out32[i]));
          } else {
            std::memcpy(&got, &typed[i * size], size);
          }
          ASSERT_EQ(got, want) << "typed output, element " << static_cast<int>(element) << " dim " << dim << " at " << i;
        }
      }
    }
  }
}

// Bucket attention in fp16 (tensor-core and fp32-FMA tiles) and fp32 (bf16 is the consistency harness's),
// ids from the CPU reference. 2e-4: the fp16 probabilities enter PV in two parts (~21 bits), not one (11).
TEST(AttentionCuda, BucketAttentionInFp16AndFp32EqualsTheReference) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937_64 rng(29);
  const int heads_q = 4, heads_kv = 2, n_q = 150, n_k = 230;
  for (const Element element : {Element::fp16, Element::fp32}) {
    for (const int dim : {64, 128}) {
      const Typed q = typed_normal(static_cast<std::size_t>(heads_q) * n_q * dim, element, rng);
      const Typed k = typed_normal(static_cast<std::size_t>(heads_kv) * n_k * dim, element, rng);
      const Typed v = typed_normal(static_cast<std::size_t>(heads_kv) * n_k * dim, element, rng);
      AttentionProblem problem;
      problem.q = q.values.data(), problem.k = k.values.data(), problem.v = v.values.data();
      problem.heads_q = heads_q, problem.heads_kv = heads_kv, problem.n_q = n_q, problem.n_k = n_k, problem.dim = dim;
      problem.causal = true, problem.scale = 0.09f;
      BucketConfig config;
      config.bucket_bits = 2, config.rounds = 2, config.seed = 5;
      const ProblemBuckets buckets = problem_buckets(problem, config);
      std::vector<std::uint32_t> q_ids, k_ids;
      for (const auto& ids : buckets.queries) q_ids.insert(q_ids.end(), ids.begin(), ids.end());
      for (const auto& ids : buckets.keys) k_ids.insert(k_ids.end(), ids.begin(), ids.end());
      DeviceBuffer<unsigned char> d_q(q.storage), d_k(k.storage), d_v(v.storage);
      DeviceBuffer<std::uint32_t> d_qb(q_ids), d_kb(k_ids);
      DeviceBuffer<float> d_out(problem.out_size());
      BucketAttentionParams p;
      p.q = d_q.get(), p.k = d_k.get(), p.v = d_v.get(), p.q_buckets = d_qb.get(), p.k_buckets = d_kb.get();
      p.heads_q = heads_q, p.heads_kv = heads_kv, p.n_q = n_q, p.n_k = n_k, p.dim = dim, p.bucket_bits = 2, p.rounds = 2;
      p.causal = true, p.scale = 0.09f, p.out = d_out.get(), p.element = element;
      DeviceBuffer<char> d_ws(bucket_workspace_bytes(p));
      p.workspace = d_ws.get();
      std::vector<double> expected(problem.out_size());
      hashhop::attn::bucket_attention(problem, config, expected.data());
      for (const bool tensor_cores : {true, false}) {
        p.tensor_cores = tensor_cores;
        bucket_attention(p, nullptr);
        EXPECT_LT(worst_difference(d_out.to_host(), expected), 2e-4)
            << "element " << static_cast<int>(element) << " dim " << dim << (tensor_cores ? " tensor cores" : " fp32 FMAs");
      }
    }
  }
}

// Ids carry only bucket_bits bits: bits above them (a caller's hash, unmasked) change nothing, in the bucket
// lookup or in the earlier rounds' each-key-once rule, on either tile kernel.
TEST(AttentionCuda, BucketIdsAboveBucketBitsAreIgnored) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937_64 rng(43);
  const int heads = 2, n = 300, dim = 64, bits = 3, rounds = 3;
  const Typed q = typed_normal(static_cast<std::size_t>(heads) * n * dim, Element::bf16, rng);
  const Typed k = typed_normal(static_cast<std::size_t>(heads) * n * dim, Element::bf16, rng);
  const Typed v = typed_normal(static_cast<std::size_t>(heads) * n * dim, Element::bf16, rng);
  std::vector<std::uint32_t> q_ids(static_cast<std::size_t>(rounds) * heads * n), k_ids(q_ids.size());
  for (auto* ids : {&q_ids, &k_ids})
    for (auto& id : *ids) id = static_cast<std::uint32_t>(rng() % (1u << bits));
  auto noisy = [&](std::vector<std::uint32_t> ids) {
    for (auto& id : ids) id |= static_cast<std::uint32_t>(rng() % 1000) << bits;
    return ids;
  };
  for (const bool tensor_cores : {true, false}) {
    std::vector<float> outputs[2];
    for (int run = 0; run < 2; ++run) {
      DeviceBuffer<unsigned char> d_q(q.storage), d_k(k.storage), d_v(v.storage);
      DeviceBuffer<std::uint32_t> d_qb(run ? noisy(q_ids) : q_ids), d_kb(run ? noisy(k_ids) : k_ids);
      DeviceBuffer<float> d_out(static_cast<std::size_t>(heads) * n * dim);
      BucketAttentionParams p;
      p.q = d_q.get(), p.k = d_k.get(), p.v = d_v.get(), p.q_buckets = d_qb.get(), p.k_buckets = d_kb.get();
      p.heads_q = heads, p.heads_kv = heads, p.n_q = n, p.n_k = n, p.dim = dim, p.bucket_bits = bits, p.rounds = rounds;
      p.causal = true, p.scale = 0.125f, p.out = d_out.get(), p.element = Element::bf16, p.tensor_cores = tensor_cores;
      DeviceBuffer<char> d_ws(bucket_workspace_bytes(p));
      p.workspace = d_ws.get();
      bucket_attention(p, nullptr);
      outputs[run] = d_out.to_host();
    }
    EXPECT_EQ(outputs[0], outputs[1]) << (tensor_cores ? "tensor cores" : "fp32 FMAs");
  }
}

// The fused LSH kernel's rotation (host code: runs without a GPU): R^T rounded to bf16, then the rounding's
// remainder, so hi + lo is R to ~2^-17 relative (two 8-bit mantissas), at [col][d] and [columns + col][d].
TEST(AttentionCuda, SplitRotationHoldsRInTwoBf16Parts) {
  std::mt19937_64 rng(41);
  std::normal_distribution<double> normal;
  const int dim = 128, columns = 37;
  std::vector<double> rotation(static_cast<std::size_t>(dim) * columns);
  for (auto& value : rotation) value = normal(rng);
  const std::vector<__nv_bfloat16> split = split_rotation(rotation, dim, columns);
  ASSERT_EQ(split.size(), 2 * rotation.size());
  double worst = 0;
  for (int d = 0; d < dim; ++d) {
    for (int col = 0; col < columns; ++col) {
      const double want = rotation[static_cast<std::size_t>(d) * columns + col];
      const double high = __bfloat162float(split[static_cast<std::size_t>(col) * dim + d]);
      const double low = __bfloat162float(split[(static_cast<std::size_t>(columns) + col) * dim + d]);
      EXPECT_LE(std::abs(high - want), std::ldexp(std::abs(want), -8)) << "d " << d << " col " << col;  // hi alone: bf16 rounding
      worst = std::max(worst, std::abs(high + low - want) / std::abs(want));
    }
  }
  EXPECT_LT(worst, std::ldexp(1.0, -16));
  EXPECT_THROW(split_rotation(rotation, dim, columns + 1), std::invalid_argument);
}

}  // namespace
}  // namespace hashhop::attn::cuda
