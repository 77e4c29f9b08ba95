// CUDA signature top-k decode against the CPU reference on random inputs: the selected key lists must
// be identical; outputs within 2e-3 (bf16 inputs, fp32 accumulation, __expf). Skips without a GPU.
// Run: build/tests/test_signature_cuda (scripts/gpu-check.sh runs it, also under compute-sanitizer).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "hashhop/attn/attention_problem.h"
#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/signature_decode_cuda.h"
#include "hashhop/attn/signature_attention.h"

namespace {

bool have_gpu() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

template <class T>
T* to_device(const std::vector<T>& host) {
  T* device = nullptr;
  HASHHOP_CUDA_CHECK(cudaMalloc(&device, host.size() * sizeof(T)));
  HASHHOP_CUDA_CHECK(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return device;
}

template <class T>
std::vector<T> to_host(const T* device, std::size_t n) {
  std::vector<T> host(n);
  HASHHOP_CUDA_CHECK(cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

struct Case {
  int heads_q, heads_kv, n_keys, dim, bits, sinks, window, top_k;
  bool few_distinct;  // 3-bit signatures: masses of ties exercise the deterministic tie rule
};

void run_case(const Case& c, unsigned seed) {
  using namespace hashhop::attn;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  const int words = signature_words(c.bits);
  std::vector<std::uint64_t> key_sigs(static_cast<std::size_t>(c.heads_kv) * c.n_keys * words), query_sigs(static_cast<std::size_t>(c.heads_q) * words);
  const std::uint64_t mask = c.few_distinct ? 7 : (c.bits % 64 ? (1ULL << (c.bits % 64)) - 1 : ~0ULL);
  for (std::size_t i = 0; i < key_sigs.size(); ++i) key_sigs[i] = rng() & ((i % words == static_cast<std::size_t>(words - 1)) ? mask : ~0ULL);
  for (std::size_t i = 0; i < query_sigs.size(); ++i) query_sigs[i] = rng() & ((i % words == static_cast<std::size_t>(words - 1)) ? mask : ~0ULL);
  std::vector<__nv_bfloat16> q(static_cast<std::size_t>(c.heads_q) * c.dim), k(static_cast<std::size_t>(c.heads_kv) * c.n_keys * c.dim), v(k.size());
  for (auto* x : {&q, &k, &v}) for (auto& value : *x) value = __float2bfloat16(normal(rng));

  const int stride = cuda::max_selected(c.n_keys, c.sinks, c.window, c.top_k);
  auto* d_keys = to_device(key_sigs);
  auto* d_queries = to_device(query_sigs);
  auto *d_q = to_device(q), *d_k = to_device(k), *d_v = to_device(v);
  int *d_selected = nullptr, *d_count = nullptr;
  void *d_select_ws = nullptr, *d_decode_ws = nullptr;
  float* d_out = nullptr;
  HASHHOP_CUDA_CHECK(cudaMalloc(&d_selected, static_cast<std::size_t>(c.heads_q) * stride * sizeof(int)));
  HASHHOP_CUDA_CHECK(cudaMalloc(&d_count, c.heads_q * sizeof(int)));
  HASHHOP_CUDA_CHECK(cudaMalloc(&d_select_ws, cuda::select_workspace_bytes(c.heads_q, c.n_keys)));
  HASHHOP_CUDA_CHECK(cudaMalloc(&d_decode_ws, cuda::decode_workspace_bytes(c.heads_q, c.dim, stride)));
  HASHHOP_CUDA_CHECK(cudaMalloc(&d_out, static_cast<std::size_t>(c.heads_q) * c.dim * sizeof(float)));

  cuda::SignatureSelectParams select{d_keys, d_queries, c.heads_q, c.heads_kv, c.n_keys, c.bits, c.sinks, c.window, c.top_k, d_selected, d_count, d_select_ws};
  cuda::select_keys(select, nullptr);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
  cuda::SparseDecodeParams decode{d_q, d_k, d_v, d_selected, d_count, stride, c.heads_q, c.heads_kv, c.n_keys, c.dim, scale, d_out, d_decode_ws};
  cuda::sparse_decode(decode, nullptr);
  HASHHOP_CUDA_CHECK(cudaDeviceSynchronize());
  const auto selected = to_host(d_selected, static_cast<std::size_t>(c.heads_q) * stride);
  const auto counts = to_host(d_count, static_cast<std::size_t>(c.heads_q));
  const auto out = to_host(d_out, static_cast<std::size_t>(c.heads_q) * c.dim);

  // CPU reference in float64 on the same bf16-rounded values.
  std::vector<double> qd(q.size()), kd(k.size()), vd(v.size());
  for (std::size_t i = 0; i < q.size(); ++i) qd[i] = __bfloat162float(q[i]);
  for (std::size_t i = 0; i < k.size(); ++i) kd[i] = __bfloat162float(k[i]), vd[i] = __bfloat162float(v[i]);
  const SignatureConfig config{c.bits, c.sinks, c.window, c.top_k};
  AttentionProblem problem{qd.data(), kd.data(), vd.data(), nullptr, c.heads_q, c.heads_kv, 1, c.n_keys, c.dim, false, scale};
  std::vector<double> expected(problem.out_size());
  signature_attention(problem, query_sigs.data(), key_sigs.data(), config, expected.data());
  for (int h = 0; h < c.heads_q; ++h) {
    const auto want = select_signature_keys(query_sigs.data() + static_cast<std::size_t>(h) * words,
                                            key_sigs.data() + static_cast<std::size_t>(problem.kv_head(h)) * c.n_keys * words, c.n_keys - 1, config);
    ASSERT_EQ(counts[h], static_cast<int>(want.size())) << "head " << h;
    const std::vector<int> got(selected.begin() + static_cast<std::ptrdiff_t>(h) * stride, selected.begin() + static_cast<std::ptrdiff_t>(h) * stride + counts[h]);
    ASSERT_EQ(got, want) << "head " << h;
  }
  double worst = 0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (std::abs(out[i] - expected[i]) > worst) worst = std::abs(out[i] - expected[i]), worst_at = i;
  }
  EXPECT_LT(worst, 2e-3) << "worst at " << worst_at << ": " << out[worst_at] << " vs " << expected[worst_at];
  for (void* p : {static_cast<void*>(d_keys), static_cast<void*>(d_queries), static_cast<void*>(d_q), static_cast<void*>(d_k), static_cast<void*>(d_v),
                  static_cast<void*>(d_selected), static_cast<void*>(d_count), d_select_ws, d_decode_ws, static_cast<void*>(d_out)}) {
    HASHHOP_CUDA_CHECK(cudaFree(p));
  }
}

}  // namespace

TEST(SignatureCuda, MatchesCpuReference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const std::vector<Case> cases = {
      {1, 1, 1, 64, 64, 0, 0, 1, false},        {2, 1, 100, 128, 32, 2, 3, 10, false},
      {8, 8, 5000, 128, 64, 4, 16, 160, false}, {8, 2, 70000, 128, 128, 4, 64, 2000, false},
      {4, 4, 9000, 64, 64, 1, 1, 300, true},    {2, 2, 300, 128, 64, 0, 0, 1000, false},  // k >= n
  };
  unsigned seed = 1;
  for (const auto& c : cases) {
    SCOPED_TRACE("n_keys=" + std::to_string(c.n_keys) + " bits=" + std::to_string(c.bits) + " k=" + std::to_string(c.top_k));
    run_case(c, seed++);
  }
}
