// Angular LSH ids straight from bf16 rows on tensor cores: x·R in 64-column tiles (R in two bf16 parts), the
// argmax over [xR, -xR] kept in registers, so no [rows, columns] projection is ever written. Checked by attn-check.
#include <cstdint>
#include <cmath>
#include <stdexcept>
#include <string>

#include "hashhop/attn/cuda/bucket_attention_cuda.h"
#include "hashhop/attn/cuda/cuda_check.h"
#include "mma_primitives.cuh"

namespace hashhop::attn::cuda {
namespace {

constexpr int kWarps = 8, kThreads = 32 * kWarps;
constexpr int kGroups = 2;                      // 16-row groups a warp: each rotation tile serves 256 rows a block
constexpr int kRowsPerBlock = kWarps * kGroups * 16;
constexpr int kColumns = 64;                    // rotation columns a tile
constexpr int kPad = 8;                         // as in the attention tiles: conflict-free ldmatrix rows

__device__ __forceinline__ void offer(float& best_value, int& best_rank, float value, int value_rank) {
  if (value > best_value || (value == best_value && value_rank < best_rank)) best_value = value, best_rank = value_rank;
}

// Lane (g = lane / 4, c = lane % 4) holds rows g and g + 8 of each group against columns 8j + 2c (+1) of a tile.
// A candidate's rank is 2c for +x·r_c and 2c + 1 for -x·r_c: the reference's order, so ties go the same way.
template <int D>
__global__ void __launch_bounds__(kThreads) lsh_ids_mma_kernel(const __nv_bfloat16* x, int rows, const __nv_bfloat16* rotation,
                                                                int columns, std::uint32_t* ids) {
  constexpr int S = D + kPad, kSteps = D / 16;
  extern __shared__ __align__(16) unsigned char smem[];
  auto* high = reinterpret_cast<__nv_bfloat16*>(smem);  // [kColumns][S]: R's columns as rows, rounded
  __nv_bfloat16* low = high + kColumns * S;              // what the rounding left out
  const int t = threadIdx.x, warp = t / 32, lane = t % 32, g = lane / 4, c = lane % 4;
  const long long first = static_cast<long long>(blockIdx.x) * kRowsPerBlock + warp * kGroups * 16;

  std::uint32_t xf[kGroups][kSteps][4];  // x rows as A fragments (zeros past the end)
  #pragma unroll
  for (int group = 0; group < kGroups; ++group) {
    const long long r0 = first + group * 16 + g, r1 = r0 + 8;
    const __nv_bfloat16* p0 = x + (r0 < rows ? r0 : 0) * D + 2 * c;
    const __nv_bfloat16* p1 = x + (r1 < rows ? r1 : 0) * D + 2 * c;
    #pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      xf[group][k][0] = r0 < rows ? *reinterpret_cast<const std::uint32_t*>(p0 + 16 * k) : 0u;
      xf[group][k][1] = r1 < rows ? *reinterpret_cast<const std::uint32_t*>(p1 + 16 * k) : 0u;
      xf[group][k][2] = r0 < rows ? *reinterpret_cast<const std::uint32_t*>(p0 + 16 * k + 8) : 0u;
      xf[group][k][3] = r1 < rows ? *reinterpret_cast<const std::uint32_t*>(p1 + 16 * k + 8) : 0u;
    }
  }
  float best[kGroups][2];  // (-inf, rank 0) as the reference starts: a row of NaNs gets id 0 there too
  int rank[kGroups][2];
  for (int group = 0; group < kGroups; ++group) best[group][0] = best[group][1] = -INFINITY, rank[group][0] = rank[group][1] = 0;

  for (int tile = 0; tile < columns; tile += kColumns) {
    for (int e = t; e < 2 * kColumns * (D / 8); e += kThreads) {  // 16-byte chunks of both parts' rows
      const int part = e / (kColumns * (D / 8)), row = (e / (D / 8)) % kColumns, chunk = (e % (D / 8)) * 8;
      const bool valid = tile + row < columns;
      const std::size_t src = valid ? (static_cast<std::size_t>(part) * columns + tile + row) * D + chunk : 0;
      cp_async16((part ? low : high) + row * S + chunk, rotation + src, valid);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    #pragma unroll
    for (int group = 0; group < kGroups; ++group) {
      float acc[8][4];
      for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
      #pragma unroll
      for (int k = 0; k < kSteps; ++k) {
        #pragma unroll
        for (int pair = 0; pair < 4; ++pair) {  // columns 16 pair ..: matrices (columns, dims) 00, 01, 10, 11
          const int offset = (16 * pair + (lane / 16) * 8 + lane % 8) * S + 16 * k + ((lane / 8) & 1) * 8;
          std::uint32_t b[4];
          ldmatrix_x4(b, high + offset);
          Mma<__nv_bfloat16>::run(acc[2 * pair], xf[group][k], b[0], b[1]);
          Mma<__nv_bfloat16>::run(acc[2 * pair + 1], xf[group][k], b[2], b[3]);
          ldmatrix_x4(b, low + offset);
          Mma<__nv_bfloat16>::run(acc[2 * pair], xf[group][k], b[0], b[1]);
          Mma<__nv_bfloat16>::run(acc[2 * pair + 1], xf[group][k], b[2], b[3]);
        }
      }
      #pragma unroll
      for (int j = 0; j < 8; ++j) {
        #pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int column = tile + 8 * j + 2 * c + e;
          if (column >= columns) continue;
          #pragma unroll
          for (int half = 0; half < 2; ++half) {
            const float value = acc[j][2 * half + e];
            offer(best[group][half], rank[group][half], value, 2 * column);
            offer(best[group][half], rank[group][half], -value, 2 * column + 1);
          }
        }
      }
    }
    __syncthreads();  // the next tile's copy overwrites these rows
  }
  #pragma unroll
  for (int group = 0; group < kGroups; ++group) {
    #pragma unroll
    for (int half = 0; half < 2; ++half) {
      float value = best[group][half];
      int value_rank = rank[group][half];
      for (int mask = 1; mask <= 2; mask *= 2) {  // the four lanes of a row hold its other columns
        const float other = __shfl_xor_sync(0xffffffffu, value, mask);
        const int other_rank = __shfl_xor_sync(0xffffffffu, value_rank, mask);
        offer(value, value_rank, other, other_rank);
      }
      const long long row = first + group * 16 + g + 8 * half;
      if (c == 0 && row < rows) ids[row] = value_rank % 2 == 0 ? static_cast<std::uint32_t>(value_rank / 2)
                                                                 : static_cast<std::uint32_t>(columns + value_rank / 2);
    }
  }
}

template <int D>
void launch(const __nv_bfloat16* x, int rows, const __nv_bfloat16* rotation, int columns, std::uint32_t* ids, cudaStream_t stream) {
  constexpr int bytes = 2 * kColumns * (D + kPad) * static_cast<int>(sizeof(__nv_bfloat16));
  const unsigned blocks = static_cast<unsigned>((static_cast<long long>(rows) + kRowsPerBlock - 1) / kRowsPerBlock);
  lsh_ids_mma_kernel<D><<<blocks, kThreads, bytes, stream>>>(x, rows, rotation, columns, ids);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

std::vector<__nv_bfloat16> split_rotation(const std::vector<double>& rotation, int dim, int columns) {
  if (dim < 1 || columns < 1 || rotation.size() != static_cast<std::size_t>(dim) * columns)
    throw std::invalid_argument("split_rotation: rotation must hold dim x columns values");
  std::vector<__nv_bfloat16> split(2 * rotation.size());
  for (int d = 0; d < dim; ++d) {
    for (int col = 0; col < columns; ++col) {
      const double value = rotation[static_cast<std::size_t>(d) * columns + col];
      const __nv_bfloat16 high = __float2bfloat16(static_cast<float>(value));
      split[static_cast<std::size_t>(col) * dim + d] = high;
      split[(static_cast<std::size_t>(columns) + col) * dim + d] = __float2bfloat16(static_cast<float>(value - static_cast<double>(__bfloat162float(high))));
    }
  }
  return split;
}

void lsh_bucket_ids(const __nv_bfloat16* x, int rows, int dim, const __nv_bfloat16* rotation_split, int columns, std::uint32_t* ids,
                    cudaStream_t stream) {
  if (rows < 0 || columns < 1 || columns > (1 << 23))
    throw std::invalid_argument("lsh_bucket_ids: rows must be >= 0 and columns in [1, 2^23] (bucket_bits 1..24)");
  if (rows > 0 && (!x || !rotation_split || !ids)) throw std::invalid_argument("lsh_bucket_ids: x, rotation_split and ids must be set");
  if (reinterpret_cast<std::uintptr_t>(x) % 4 || reinterpret_cast<std::uintptr_t>(rotation_split) % 16)  // word loads; cp.async
    throw std::invalid_argument("lsh_bucket_ids: x must be 4-byte and rotation_split 16-byte aligned");
  if (dim != 64 && dim != 128) throw std::invalid_argument("lsh_bucket_ids: dim must be 64 or 128, got " + std::to_string(dim));
  if (rows == 0) return;
  if (dim == 64) launch<64>(x, rows, rotation_split, columns, ids, stream); else launch<128>(x, rows, rotation_split, columns, ids, stream);
}

}  // namespace hashhop::attn::cuda
