// Split-K exact softmax attention of one query per head over a gathered list of keys (see
// signature_decode_cuda.h). Each warp streams whole key rows (dim bf16 = 256 bytes at dim 128);
// blocks write (max, sum, acc) partials that a second kernel merges.
#include <algorithm>
#include <cfloat>

#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/signature_decode_cuda.h"

namespace hashhop::attn::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kKeysPerSplit = 256;  // enough keys per block to amortise the merge, enough blocks to fill the GPU

struct Partials {
  float* acc;  // [heads_q, splits, dim]
  float* ml;   // [heads_q, splits, 2]: running max and sum
};

Partials carve(void* base, int heads_q, int dim, int splits) {
  auto* acc = static_cast<float*>(base);
  return {acc, acc + static_cast<std::size_t>(heads_q) * splits * dim};
}

template <int kPerLane>  // dim / 32 elements per lane
__global__ void decode_kernel(SparseDecodeParams p, Partials partials, int splits) {
  __shared__ float warp_acc[kWarps][kPerLane * 32];
  __shared__ float warp_ml[kWarps][2];
  const int head = blockIdx.y, split = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int kv = head / (p.heads_q / p.heads_kv);
  const int dim = kPerLane * 32;
  float q[kPerLane];
  for (int e = 0; e < kPerLane; ++e) q[e] = __bfloat162float(p.q[static_cast<std::size_t>(head) * dim + lane * kPerLane + e]) * p.scale;
  const int count = p.n_selected[head];
  const int begin = split * kKeysPerSplit, end = min(count, begin + kKeysPerSplit);
  const int* selected = p.selected + static_cast<std::size_t>(head) * p.selected_stride;
  const __nv_bfloat16* k_base = p.k + static_cast<std::size_t>(kv) * p.n_keys * dim;
  const __nv_bfloat16* v_base = p.v + static_cast<std::size_t>(kv) * p.n_keys * dim;
  float running_max = -FLT_MAX, running_sum = 0.f, acc[kPerLane] = {};
  for (int n = begin + warp; n < end; n += kWarps) {
    const std::size_t row = static_cast<std::size_t>(selected[n]) * dim + lane * kPerLane;
    float dot = 0.f;
    for (int e = 0; e < kPerLane; ++e) dot += q[e] * __bfloat162float(k_base[row + e]);
    for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    const float new_max = fmaxf(running_max, dot);
    const float correction = __expf(running_max - new_max);
    const float weight = __expf(dot - new_max);
    running_sum = running_sum * correction + weight;
    for (int e = 0; e < kPerLane; ++e) acc[e] = acc[e] * correction + weight * __bfloat162float(v_base[row + e]);
    running_max = new_max;
  }
  for (int e = 0; e < kPerLane; ++e) warp_acc[warp][lane * kPerLane + e] = acc[e];
  if (lane == 0) {
    warp_ml[warp][0] = running_max;
    warp_ml[warp][1] = running_sum;
  }
  __syncthreads();
  float block_max = -FLT_MAX;
  for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, warp_ml[w][0]);
  const std::size_t out_row = static_cast<std::size_t>(head) * splits + split;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float sum = 0.f;
    for (int w = 0; w < kWarps; ++w) sum += warp_acc[w][d] * __expf(warp_ml[w][0] - block_max);
    partials.acc[out_row * dim + d] = sum;
  }
  if (threadIdx.x == 0) {
    float sum = 0.f;
    for (int w = 0; w < kWarps; ++w) sum += warp_ml[w][1] * __expf(warp_ml[w][0] - block_max);
    partials.ml[out_row * 2] = block_max;
    partials.ml[out_row * 2 + 1] = sum;
  }
}

__global__ void combine_kernel(SparseDecodeParams p, Partials partials, int splits) {
  const int head = blockIdx.x;
  const int used = min(splits, (p.n_selected[head] + kKeysPerSplit - 1) / kKeysPerSplit);
  float global_max = -FLT_MAX;
  for (int s = 0; s < used; ++s) global_max = fmaxf(global_max, partials.ml[(static_cast<std::size_t>(head) * splits + s) * 2]);
  float total = 0.f;
  for (int s = 0; s < used; ++s) {
    const std::size_t row = static_cast<std::size_t>(head) * splits + s;
    total += partials.ml[row * 2 + 1] * __expf(partials.ml[row * 2] - global_max);
  }
  for (int d = threadIdx.x; d < p.dim; d += blockDim.x) {
    float value = 0.f;
    for (int s = 0; s < used; ++s) {
      const std::size_t row = static_cast<std::size_t>(head) * splits + s;
      value += partials.acc[row * p.dim + d] * __expf(partials.ml[row * 2] - global_max);
    }
    p.out[static_cast<std::size_t>(head) * p.dim + d] = total > 0.f ? value / total : 0.f;
  }
}

}  // namespace

int decode_splits(int selected_stride) { return std::max(1, (selected_stride + kKeysPerSplit - 1) / kKeysPerSplit); }

std::size_t decode_workspace_bytes(int heads_q, int dim, int selected_stride) {
  return static_cast<std::size_t>(heads_q) * decode_splits(selected_stride) * (dim + 2) * sizeof(float);
}

void sparse_decode(const SparseDecodeParams& p, cudaStream_t stream) {
  if (p.heads_q % p.heads_kv != 0) throw std::invalid_argument("heads_q: must be a multiple of heads_kv");
  const int splits = decode_splits(p.selected_stride);
  const Partials partials = carve(p.workspace, p.heads_q, p.dim, splits);
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(p.heads_q));
  switch (p.dim) {
    case 64: decode_kernel<2><<<grid, kWarps * 32, 0, stream>>>(p, partials, splits); break;
    case 128: decode_kernel<4><<<grid, kWarps * 32, 0, stream>>>(p, partials, splits); break;
    default: throw std::invalid_argument("dim: the CUDA decode supports 64 and 128");
  }
  HASHHOP_CUDA_CHECK(cudaGetLastError());
  combine_kernel<<<p.heads_q, 128, 0, stream>>>(p, partials, splits);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hashhop::attn::cuda
