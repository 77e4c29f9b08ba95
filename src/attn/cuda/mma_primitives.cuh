// The warp-level tensor-core pieces our tiled kernels share (bucket_tiles_mma.cu, lsh_ids_mma.cu): cp.async,
// ldmatrix and mma.sync m16n8k16 for bf16/fp16 with float accumulators. Internal to src/attn/cuda.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "the tensor-core kernels need sm_80 or newer (bf16 mma.sync); build with CMAKE_CUDA_ARCHITECTURES=90"
#endif

namespace hashhop::attn::cuda {

__device__ inline std::uint32_t smem_address(const void* p) { return static_cast<std::uint32_t>(__cvta_generic_to_shared(p)); }

// 16 bytes global -> shared without a register stop; a source size of 0 writes zeros (rows past the range).
__device__ inline void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ inline void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Four 8x8 16-bit matrices; lane L gives the address of row L % 8 of matrix L / 8, r[j] is matrix j.
__device__ inline void ldmatrix_x4(std::uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}
// The same, each matrix transposed on the way (V's rows are keys; the PV product wants them as columns).
__device__ inline void ldmatrix_x4_trans(std::uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}

// c += a (16x16, row-major fragments) x b (16x8, column fragments), float accumulators.
template <class T>
struct Mma;

template <>
struct Mma<__nv_bfloat16> {
  __device__ static void run(float c[4], const std::uint32_t a[4], std::uint32_t b0, std::uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  // (x, y) rounded into one register, x in the low half; `rest` gets what the rounding left out.
  __device__ static std::uint32_t pack(float x, float y, float2& rest) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
    const float2 back = __bfloat1622float2(h);
    rest = make_float2(x - back.x, y - back.y);
    return reinterpret_cast<const std::uint32_t&>(h);
  }
};

template <>
struct Mma<__half> {
  __device__ static void run(float c[4], const std::uint32_t a[4], std::uint32_t b0, std::uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ static std::uint32_t pack(float x, float y, float2& rest) {
    const __half2 h = __floats2half2_rn(x, y);
    const float2 back = __half22float2(h);
    rest = make_float2(x - back.x, y - back.y);
    return reinterpret_cast<const std::uint32_t&>(h);
  }
};

}  // namespace hashhop::attn::cuda
