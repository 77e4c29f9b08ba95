// Element types the CUDA attention kernels read (bf16, fp16, fp32), and the device-side loads that turn
// them into float, so one kernel template serves every dtype without a cast pass. Included by src/attn/cuda.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>

namespace hashhop::attn::cuda {

// The dtype of q, k and v (and of pack_signatures' logits). bf16 is the native, fastest path.
enum class Element { bf16, fp16, fp32 };

#ifdef __CUDACC__
// Eight consecutive elements as float: one 16-byte load for bf16/fp16, two for fp32 (callers keep the
// 8-element chunk layout of the bf16 kernels, so fp32 reads 32 bytes per chunk). `p` is 16-byte aligned.
template <class T>
__device__ inline void load8(const T* p, float out[8]);

template <>
__device__ inline void load8<__nv_bfloat16>(const __nv_bfloat16* p, float out[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
  for (int e = 0; e < 4; ++e) {
    const float2 f = __bfloat1622float2(pairs[e]);
    out[2 * e] = f.x, out[2 * e + 1] = f.y;
  }
}

template <>
__device__ inline void load8<__half>(const __half* p, float out[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const auto* pairs = reinterpret_cast<const __half2*>(&raw);
  for (int e = 0; e < 4; ++e) {
    const float2 f = __half22float2(pairs[e]);
    out[2 * e] = f.x, out[2 * e + 1] = f.y;
  }
}

template <>
__device__ inline void load8<float>(const float* p, float out[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
}

// Two consecutive elements as float2 (`p` 4-byte aligned for 16-bit types, 8-byte for fp32).
__device__ inline float2 load2(const __nv_bfloat16* p) { return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p)); }
__device__ inline float2 load2(const __half* p) { return __half22float2(*reinterpret_cast<const __half2*>(p)); }
__device__ inline float2 load2(const float* p) { return *reinterpret_cast<const float2*>(p); }

__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ inline float to_float(__half x) { return __half2float(x); }
__device__ inline float to_float(float x) { return x; }

// out[i] = x in element type e (round to nearest); e is uniform across a launch, so the branch costs nothing.
__device__ inline void store(void* out, std::size_t i, float x, Element e) {
  switch (e) {
    case Element::bf16: static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16(x); break;
    case Element::fp16: static_cast<__half*>(out)[i] = __float2half(x); break;
    case Element::fp32: static_cast<float*>(out)[i] = x; break;
  }
}
#endif

}  // namespace hashhop::attn::cuda
