// GPU decode benchmark: one query per head (8 heads x 128 dims, bf16, batch 1) over long caches; PyTorch
// SDPA (flash, cuDNN) against bit-signature top-k (k = n/32) in the same process, CUDA-event medians.
// Run: build-gpu/bench/attn_bench [--sizes 65536,1048576] (scripts/gpu-check.sh); random data, labelled.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/signature_decode_cuda.h"

namespace {

constexpr int kHeads = 8, kDim = 128, kBits = 64, kWarmup = 3, kRepeats = 15;

double median_ms(const std::function<void()>& fn, cudaStream_t stream) {
  for (int i = 0; i < kWarmup; ++i) fn();
  cudaEvent_t start, stop;
  HASHHOP_CUDA_CHECK(cudaEventCreate(&start));
  HASHHOP_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> times;
  for (int i = 0; i < kRepeats; ++i) {
    HASHHOP_CUDA_CHECK(cudaEventRecord(start, stream));
    fn();
    HASHHOP_CUDA_CHECK(cudaEventRecord(stop, stream));
    HASHHOP_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    HASHHOP_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  HASHHOP_CUDA_CHECK(cudaEventDestroy(start));
  HASHHOP_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Device-to-device copy bandwidth (read + write bytes per second), the roofline for the scan.
double copy_bandwidth_gbs(cudaStream_t stream) {
  const std::size_t bytes = 1ULL << 30;
  void *a = nullptr, *b = nullptr;
  HASHHOP_CUDA_CHECK(cudaMalloc(&a, bytes));
  HASHHOP_CUDA_CHECK(cudaMalloc(&b, bytes));
  HASHHOP_CUDA_CHECK(cudaMemset(a, 1, bytes));
  const double ms = median_ms([&] { HASHHOP_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream)); }, stream);
  HASHHOP_CUDA_CHECK(cudaFree(a));
  HASHHOP_CUDA_CHECK(cudaFree(b));
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

// Dense SDPA with exactly one backend enabled; returns -1 if that backend refuses the shape.
double sdpa_ms(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool flash, at::Tensor* out, cudaStream_t stream) {
  auto& context = at::globalContext();
  context.setSDPUseFlash(flash);
  context.setSDPUseCuDNN(!flash);
  context.setSDPUseMemEfficient(false);
  context.setSDPUseMath(false);
  try {
    *out = at::scaled_dot_product_attention(q, k, v);
    return median_ms([&] { *out = at::scaled_dot_product_attention(q, k, v); }, stream);
  } catch (const std::exception&) {
    return -1;
  }
}

constexpr std::int64_t kChunkRows = 1 << 20;  // float32 temporaries in 1M-row chunks keep 16M tokens within 80 GB

at::Tensor simhash(const at::Tensor& x, const at::Tensor& planes) {
  // Sign bits of x·W, packed by our kernel: [rows, 64] float logits -> [rows] uint64 words.
  at::Tensor words = at::empty({x.size(0)}, x.options().dtype(at::kLong));
  for (std::int64_t begin = 0; begin < x.size(0); begin += kChunkRows) {
    const std::int64_t rows = std::min(kChunkRows, x.size(0) - begin);
    const at::Tensor logits = at::matmul(x.slice(0, begin, begin + rows).to(at::kFloat), planes).contiguous();
    hashhop::attn::cuda::pack_signatures(logits.data_ptr<float>(), static_cast<int>(rows), kBits,
                                         reinterpret_cast<std::uint64_t*>(words.data_ptr<std::int64_t>()) + begin,
                                         c10::cuda::getCurrentCUDAStream().stream());
  }
  return words;
}

// Exact scores q·k of one head, [n] float.
at::Tensor head_scores(const at::Tensor& k_head, const at::Tensor& q_vec) {
  std::vector<at::Tensor> parts;
  for (std::int64_t begin = 0; begin < k_head.size(0); begin += kChunkRows) {
    parts.push_back(at::matmul(k_head.slice(0, begin, std::min(k_head.size(0), begin + kChunkRows)).to(at::kFloat), q_vec.to(at::kFloat)));
  }
  return at::cat(parts);
}

void run_size(std::int64_t n, double copy_gbs, cudaStream_t stream) {
  namespace hc = hashhop::attn::cuda;
  const auto bf16 = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor q = at::randn({1, kHeads, 1, kDim}, bf16);
  const at::Tensor k = at::randn({1, kHeads, n, kDim}, bf16);
  const at::Tensor v = at::randn({1, kHeads, n, kDim}, bf16);
  at::Tensor dense_out, cudnn_out;
  const double flash_ms = sdpa_ms(q, k, v, true, &dense_out, stream);
  const double cudnn_ms = sdpa_ms(q, k, v, false, &cudnn_out, stream);

  const at::Tensor planes = at::randn({kDim, kBits}, bf16.dtype(at::kFloat));
  std::vector<at::Tensor> key_words;
  for (int h = 0; h < kHeads; ++h) key_words.push_back(simhash(k[0][h], planes));
  const at::Tensor key_sigs = at::stack(key_words).contiguous();               // [heads, n]
  const at::Tensor query_sigs = simhash(q[0].squeeze(1), planes).contiguous();  // [heads]
  const int top_k = static_cast<int>(n / 32);
  const int stride = hc::max_selected(static_cast<int>(n), 0, 0, top_k);
  const auto i32 = at::TensorOptions().device(at::kCUDA).dtype(at::kInt);
  at::Tensor selected = at::empty({kHeads, stride}, i32), counts = at::empty({kHeads}, i32);
  at::Tensor select_ws = at::empty({static_cast<std::int64_t>(hc::select_workspace_bytes(kHeads, static_cast<int>(n)))}, i32.dtype(at::kByte));
  at::Tensor decode_ws = at::empty({static_cast<std::int64_t>(hc::decode_workspace_bytes(kHeads, kDim, stride))}, i32.dtype(at::kByte));
  at::Tensor out = at::empty({kHeads, kDim}, i32.dtype(at::kFloat));
  hc::SignatureSelectParams select{reinterpret_cast<const std::uint64_t*>(key_sigs.data_ptr<std::int64_t>()),
                                   reinterpret_cast<const std::uint64_t*>(query_sigs.data_ptr<std::int64_t>()),
                                   kHeads, kHeads, static_cast<int>(n), kBits, 0, 0, top_k,
                                   selected.data_ptr<int>(), counts.data_ptr<int>(), select_ws.data_ptr()};
  hc::SparseDecodeParams decode{reinterpret_cast<const __nv_bfloat16*>(q.data_ptr()), reinterpret_cast<const __nv_bfloat16*>(k.data_ptr()),
                                reinterpret_cast<const __nv_bfloat16*>(v.data_ptr()), selected.data_ptr<int>(), counts.data_ptr<int>(),
                                stride, kHeads, kHeads, static_cast<int>(n), kDim, 1.0f / std::sqrt(static_cast<float>(kDim)),
                                out.data_ptr<float>(), decode_ws.data_ptr()};
  const double select_ms = median_ms([&] { hc::select_keys(select, stream); }, stream);
  const double total_ms = median_ms([&] { hc::select_keys(select, stream); hc::sparse_decode(decode, stream); }, stream);

  // Recall against the exact top-k by dot product, and output error against dense and against exact
  // attention over the same kept keys (the latter checks the kernel; the former the approximation).
  double recall = 0;
  double kernel_error = 0;
  for (int h = 0; h < kHeads; ++h) {
    const at::Tensor scores_h = head_scores(k[0][h], q[0][h][0]);
    const at::Tensor exact_top = std::get<1>(scores_h.topk(top_k));
    const at::Tensor kept = selected[h].slice(0, 0, counts[h].item<int>()).to(at::kLong);
    recall += at::isin(exact_top, kept).to(at::kFloat).mean().item<double>() / kHeads;
    const at::Tensor weights = at::softmax(scores_h.index_select(0, kept) / std::sqrt(static_cast<double>(kDim)), 0);
    const at::Tensor reference = at::matmul(weights, v[0][h].index_select(0, kept).to(at::kFloat));
    kernel_error = std::max(kernel_error, (reference - out[h]).abs().max().item<double>());
  }
  const double dense_error = dense_out.defined() ? (dense_out[0].squeeze(1).to(at::kFloat) - out).abs().max().item<double>() : -1;
  const double scan_bytes = static_cast<double>(n) * kHeads * (8 + 1);  // signatures read, similarities written
  const double scan_share = scan_bytes / (select_ms * 1e-3) / 1e9 / copy_gbs;
  const double best_dense = flash_ms > 0 && cudnn_ms > 0 ? std::min(flash_ms, cudnn_ms) : std::max(flash_ms, cudnn_ms);
  auto fmt = [](double ms) { return ms < 0 ? std::string("n/a") : std::to_string(ms).substr(0, 6); };
  std::printf("| %lld | %s | %s | %.3f | %.3f | %.1fx | %.0f%% | %.3f | %.1e | %.2f |\n", static_cast<long long>(n), fmt(flash_ms).c_str(),
              fmt(cudnn_ms).c_str(), select_ms, total_ms, best_dense / total_ms, 100 * scan_share, recall, kernel_error, dense_error);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> sizes = {1 << 16, 1 << 20, 1 << 22, 1 << 24};
  if (argc == 3 && std::string(argv[1]) == "--sizes") {
    sizes.clear();
    std::string list = argv[2];
    for (std::size_t start = 0; start < list.size();) {
      const std::size_t comma = std::min(list.find(',', start), list.size());
      sizes.push_back(std::stoll(list.substr(start, comma - start)));
      start = comma + 1;
    }
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: attn_bench [--sizes N,N,...]\n");
    return 2;
  }
  at::manual_seed(0);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  cudaDeviceProp prop{};
  HASHHOP_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbs = copy_bandwidth_gbs(stream);
  std::printf("device: %s; measured D2D copy bandwidth %.0f GB/s; random data (no trained model yet)\n", prop.name, copy_gbs);
  std::printf("decode, batch 1, %d heads x %d dims, bf16; signature top-k: %d-bit SimHash, k = n/32, no sinks/window\n\n", kHeads, kDim, kBits);
  std::printf("| cached tokens | SDPA flash ms | SDPA cuDNN ms | sig select ms | sig total ms | speed-up vs best SDPA | scan %% of copy BW | top-k recall | kernel err | err vs dense |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (std::int64_t n : sizes) {
    try {
      run_size(n, copy_gbs, stream);
    } catch (const std::exception& e) {
      std::string what = e.what();
      std::printf("| %lld | failed: %s |\n", static_cast<long long>(n), what.substr(0, what.find('\n')).c_str());
    }
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
  return 0;
}
