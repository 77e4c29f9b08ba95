// KV-cache append with fused signature packing (kv_cache_cuda.h): one block per new row copies the K and V
// rows into place and packs the row's sign bits; a second launch advances the lengths in stream order.
#include <stdexcept>

#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/kv_cache_cuda.h"

namespace hashhop::attn::cuda {
namespace {

// Block (j, kv, b): row j of sequence b, head kv. The position is read before the lengths kernel runs,
// so every block of one append sees the same lengths[b].
template <class T, class L>
__global__ void append_kernel(KvAppendParams p) {
  const int j = blockIdx.x, kv = blockIdx.y, b = blockIdx.z;
  // A length outside [0, capacity] (a caller's mistake) is clamped, as the CPU reference does; 64-bit so
  // nothing overflows near INT_MAX.
  const long long at = min(max(static_cast<long long>(p.lengths[b]), 0LL), static_cast<long long>(p.capacity));
  const long long position = at + j;
  if (position >= p.capacity) return;
  const std::size_t source = (static_cast<std::size_t>(b) * p.heads_kv + kv) * p.t + j;
  const std::size_t target = (static_cast<std::size_t>(b) * p.heads_kv + kv) * p.capacity + position;
  const T* k = static_cast<const T*>(p.k_new) + source * p.dim;
  const T* v = static_cast<const T*>(p.v_new) + source * p.dim;
  T* k_out = static_cast<T*>(p.k_cache) + target * p.dim;
  T* v_out = static_cast<T*>(p.v_cache) + target * p.dim;
  for (int d = threadIdx.x; d < p.dim; d += blockDim.x) {
    k_out[d] = k[d];
    v_out[d] = v[d];
  }
  // One warp packs the signature: 32 lanes take 32 bits at a time and __ballot_sync gathers them.
  if (threadIdx.x < 32) {
    const int words = (p.bits + 63) / 64;
    const L* logits = static_cast<const L*>(p.logits) + source * p.bits;
    std::uint64_t* out = p.signatures + target * words;
    for (int w = 0; w < words; ++w) {
      std::uint64_t word = 0;
      for (int half = 0; half < 2; ++half) {
        const int bit = w * 64 + half * 32 + static_cast<int>(threadIdx.x);
        // NaN compares false: bit 0, as pack_signatures does.
        const bool set = bit < p.bits && to_float(logits[bit]) >= 0.0f;
        word |= static_cast<std::uint64_t>(__ballot_sync(0xffffffffu, set)) << (32 * half);
      }
      if (threadIdx.x == 0) out[w] = word;
    }
  }
}

__global__ void advance_kernel(int* lengths, int* dropped, int batch, int t, int capacity) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  const long long at = min(max(static_cast<long long>(lengths[b]), 0LL), static_cast<long long>(capacity));
  const long long fit = min(static_cast<long long>(t), capacity - at);
  dropped[b] = static_cast<int>(t - fit);
  lengths[b] = static_cast<int>(at + fit);
}

template <class T>
void launch_typed(const KvAppendParams& p, const dim3& grid, int threads, cudaStream_t stream) {
  switch (p.logits_element) {
    case Element::bf16: append_kernel<T, __nv_bfloat16><<<grid, threads, 0, stream>>>(p); break;
    case Element::fp16: append_kernel<T, __half><<<grid, threads, 0, stream>>>(p); break;
    case Element::fp32: append_kernel<T, float><<<grid, threads, 0, stream>>>(p); break;
  }
}

}  // namespace

void kv_cache_append(const KvAppendParams& p, cudaStream_t stream) {
  if (p.batch < 1 || p.heads_kv < 1 || p.t < 0 || p.dim < 1 || p.capacity < 1)
    throw std::invalid_argument("batch, heads_kv, dim, capacity: must be >= 1 (t >= 0)");
  if (p.bits < 1) throw std::invalid_argument("bits: must be >= 1");
  if (p.heads_kv > 65535 || p.batch > 65535) throw std::invalid_argument("batch, heads_kv: at most 65535 on CUDA");
  if (p.t > 0) {
    const dim3 grid(static_cast<unsigned>(p.t), static_cast<unsigned>(p.heads_kv), static_cast<unsigned>(p.batch));
    const int threads = p.dim >= 128 ? 128 : 32 * ((p.dim + 31) / 32);
    switch (p.element) {
      case Element::bf16: launch_typed<__nv_bfloat16>(p, grid, threads, stream); break;
      case Element::fp16: launch_typed<__half>(p, grid, threads, stream); break;
      case Element::fp32: launch_typed<float>(p, grid, threads, stream); break;
    }
    HASHHOP_CUDA_CHECK(cudaGetLastError());
  }
  advance_kernel<<<(p.batch + 255) / 256, 256, 0, stream>>>(p.lengths, p.dropped, p.batch, p.t, p.capacity);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hashhop::attn::cuda
