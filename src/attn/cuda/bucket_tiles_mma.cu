// Bucket attention's tiles on tensor cores (bf16/fp16 inputs): flash-attention's online softmax with
// mma.sync m16n8k16 over 64 sorted queries x 64 sorted keys, keys gathered by cp.async into a 2-stage ring.
// Same keys, rounds and outputs as the fp32 tile kernel; checked by `hashhop attn-check --device cuda`.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cmath>
#include <stdexcept>

#include "bucket_tiles.h"
#include "hashhop/attn/cuda/cuda_check.h"
#include "mma_primitives.cuh"

namespace hashhop::attn::cuda {
namespace {

constexpr int kKeys = 64;  // sorted keys a tile
constexpr int kThreads = 128;
constexpr int kPad = 8;  // 16 bytes a shared row, so ldmatrix's 8 row addresses fall in 8 different bank quads

template <int D>
__host__ __device__ constexpr int row_stride() { return D + kPad; }
template <int D>
__host__ __device__ constexpr int stage_elements() { return 2 * kKeys * row_stride<D>(); }  // K then V of one tile
template <int D>
__host__ __device__ constexpr int shared_bytes() { return 2 * stage_elements<D>() * 2; }  // two stages of 16-bit elements

__device__ inline float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ inline float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// One block: 64 consecutive sorted queries of one (round, head), as in the fp32 tile kernel; warp w owns
// rows 16w..16w+15 and, in mma's fragment layout, lane (g = lane / 4, c = lane % 4) holds rows g and g + 8,
// key (or output) columns 8j + 2c and 8j + 2c + 1 of every 8-column tile j.
// Scores are exact bf16/fp16 products summed in float; the probabilities enter the PV product as two
// 16-bit parts (rounded, then the rounding's remainder), so they keep ~16 bits, not 8: the output stays
// within the fp32 kernel's tolerance of the float64 reference at twice the PV mma count.
template <class T, int D>
__global__ void __launch_bounds__(kThreads) bucket_mma_kernel(BucketAttentionParams p, BucketSorted s) {
  constexpr int S = row_stride<D>(), kSteps = D / 16, kOutTiles = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* stages = reinterpret_cast<T*>(smem);
  __shared__ BucketBlockQueries queries;
  __shared__ std::uint32_t k_prev[2][kBucketMaxRounds - 1][kKeys];
  const T* q_data = static_cast<const T*>(p.q);
  const T* k_data = static_cast<const T*>(p.k);
  const T* v_data = static_cast<const T*>(p.v);

  const int segment = blockIdx.y, round = segment / p.heads_q, head = segment % p.heads_q;
  const int kv = head / (p.heads_q / p.heads_kv);
  const int t = threadIdx.x, warp = t / 32, lane = t % 32, g = lane / 4, c = lane % 4;
  const std::size_t q_base = static_cast<std::size_t>(segment) * p.n_q;
  const std::uint32_t mask = p.bucket_bits == 0 ? 0u : (1u << p.bucket_bits) - 1;
  load_block_queries(p, s, queries);  // 64 sorted queries: 4 warps x 16 rows
  const int lo = queries.range[0], hi = queries.range[1];
  int warp_lo = INT_MAX, warp_hi = INT_MIN;  // a tile outside the warp's own rows' keys costs it no mma
  for (int r = warp * 16; r < warp * 16 + 16; ++r)
    if (queries.lo[r] < queries.hi[r]) warp_lo = min(warp_lo, queries.lo[r]), warp_hi = max(warp_hi, queries.hi[r]);
  const int row0 = warp * 16 + g, row1 = row0 + 8;
  const int lo0 = queries.lo[row0], hi0 = queries.hi[row0], lo1 = queries.lo[row1], hi1 = queries.hi[row1];
  const int i0 = queries.index[row0], i1 = queries.index[row1];

  std::uint32_t qf[kSteps][4];  // this warp's 16 query rows as A fragments, read once (zeros past n_q)
  {
    const T* r0 = q_data + (static_cast<std::size_t>(head) * p.n_q + max(i0, 0)) * D + 2 * c;
    const T* r1 = q_data + (static_cast<std::size_t>(head) * p.n_q + max(i1, 0)) * D + 2 * c;
    for (int k = 0; k < kSteps; ++k) {
      qf[k][0] = i0 >= 0 ? *reinterpret_cast<const std::uint32_t*>(r0 + 16 * k) : 0u;
      qf[k][1] = i1 >= 0 ? *reinterpret_cast<const std::uint32_t*>(r1 + 16 * k) : 0u;
      qf[k][2] = i0 >= 0 ? *reinterpret_cast<const std::uint32_t*>(r0 + 16 * k + 8) : 0u;
      qf[k][3] = i1 >= 0 ? *reinterpret_cast<const std::uint32_t*>(r1 + 16 * k + 8) : 0u;
    }
  }
  float o[kOutTiles][4];
  for (int j = 0; j < kOutTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // running max (log2 units) and this lane's sums
  const float scale = p.scale * 1.4426950408889634f;        // scores in log2 units, so exp2 below

  const std::size_t kv_base = static_cast<std::size_t>(kv) * p.n_k;
  auto load_tile = [&](int tile, int stage) {
    T* ks = stages + stage * stage_elements<D>();
    T* vs = ks + kKeys * S;
    for (int e = t; e < kKeys * (D / 8); e += kThreads) {
      const int row = e / (D / 8), chunk = (e % (D / 8)) * 8;
      const bool valid = tile + row < hi;
      const std::size_t src = valid ? (kv_base + s.k_order[tile + row]) * D + chunk : 0;
      cp_async16(ks + row * S + chunk, k_data + src, valid);
      cp_async16(vs + row * S + chunk, v_data + src, valid);
    }
    if (t < kKeys && round > 0) {
      const int position = tile + t < hi ? s.k_order[tile + t] : 0;
      for (int r = 0; r < round; ++r) k_prev[stage][r][t] = p.k_buckets[(static_cast<std::size_t>(r) * p.heads_kv + kv) * p.n_k + position] & mask;
    }
    cp_async_commit();
  };

  if (lo < hi) load_tile(lo, 0);
  int stage = 0;
  for (int tile = lo; tile < hi; tile += kKeys, stage ^= 1) {
    if (tile + kKeys < hi) {  // the next tile streams in while this one is multiplied
      load_tile(tile + kKeys, stage ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (tile < warp_hi && tile + kKeys > warp_lo) {
      const T* ks = stages + stage * stage_elements<D>();
      const T* vs = ks + kKeys * S;
      float sc[8][4];  // scores of rows g, g + 8 against keys 8j + 2c, 8j + 2c + 1 of the tile
      for (int j = 0; j < 8; ++j) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
      for (int k = 0; k < kSteps; ++k) {
        for (int pair = 0; pair < 4; ++pair) {  // keys 16 pair .. 16 pair + 15: matrices (keys, dims) 00, 01, 10, 11
          std::uint32_t b[4];
          ldmatrix_x4(b, ks + (16 * pair + (lane / 16) * 8 + lane % 8) * S + 16 * k + ((lane / 8) & 1) * 8);
          Mma<T>::run(sc[2 * pair], qf[k], b[0], b[1]);
          Mma<T>::run(sc[2 * pair + 1], qf[k], b[2], b[3]);
        }
      }
      float max0 = -INFINITY, max1 = -INFINITY;
      for (int j = 0; j < 8; ++j) {
        for (int e = 0; e < 2; ++e) {
          const int col = 8 * j + 2 * c + e, sorted = tile + col;
          bool valid0 = sorted >= lo0 && sorted < hi0, valid1 = sorted >= lo1 && sorted < hi1;
          for (int pr = 0; pr < round; ++pr) {  // a key shared in an earlier round was counted there (ids masked)
            const std::uint32_t key_bucket = k_prev[stage][pr][col];
            valid0 = valid0 && queries.prev[pr][row0] != key_bucket;
            valid1 = valid1 && queries.prev[pr][row1] != key_bucket;
          }
          sc[j][e] = valid0 ? sc[j][e] * scale : -INFINITY;
          sc[j][2 + e] = valid1 ? sc[j][2 + e] * scale : -INFINITY;
          max0 = fmaxf(max0, sc[j][e]);
          max1 = fmaxf(max1, sc[j][2 + e]);
        }
      }
      const float new0 = fmaxf(m0, quad_max(max0)), new1 = fmaxf(m1, quad_max(max1));
      const float base0 = new0 == -INFINITY ? 0.f : new0, base1 = new1 == -INFINITY ? 0.f : new1;
      const float correction0 = exp2f(m0 - base0), correction1 = exp2f(m1 - base1);  // 0 while a row had no key
      m0 = new0, m1 = new1;
      l0 *= correction0, l1 *= correction1;
      for (int j = 0; j < kOutTiles; ++j) o[j][0] *= correction0, o[j][1] *= correction0, o[j][2] *= correction1, o[j][3] *= correction1;
      for (int j = 0; j < 8; ++j) {
        sc[j][0] = exp2f(sc[j][0] - base0), sc[j][1] = exp2f(sc[j][1] - base0);
        sc[j][2] = exp2f(sc[j][2] - base1), sc[j][3] = exp2f(sc[j][3] - base1);
        l0 += sc[j][0] + sc[j][1], l1 += sc[j][2] + sc[j][3];
      }
      for (int k = 0; k < 4; ++k) {  // keys 16k .. 16k + 15: score tiles 2k and 2k + 1 are the A fragment
        std::uint32_t high[4], low[4];
        float2 rest;
        high[0] = Mma<T>::pack(sc[2 * k][0], sc[2 * k][1], rest), low[0] = Mma<T>::pack(rest.x, rest.y, rest);
        high[1] = Mma<T>::pack(sc[2 * k][2], sc[2 * k][3], rest), low[1] = Mma<T>::pack(rest.x, rest.y, rest);
        high[2] = Mma<T>::pack(sc[2 * k + 1][0], sc[2 * k + 1][1], rest), low[2] = Mma<T>::pack(rest.x, rest.y, rest);
        high[3] = Mma<T>::pack(sc[2 * k + 1][2], sc[2 * k + 1][3], rest), low[3] = Mma<T>::pack(rest.x, rest.y, rest);
        for (int pair = 0; pair < D / 16; ++pair) {  // dims 16 pair ..: matrices (keys, dims) 00, 10, 01, 11
          std::uint32_t b[4];
          ldmatrix_x4_trans(b, vs + (16 * k + ((lane / 8) & 1) * 8 + lane % 8) * S + 16 * pair + (lane / 16) * 8);
          Mma<T>::run(o[2 * pair], high, b[0], b[1]);
          Mma<T>::run(o[2 * pair], low, b[0], b[1]);
          Mma<T>::run(o[2 * pair + 1], high, b[2], b[3]);
          Mma<T>::run(o[2 * pair + 1], low, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next iteration's copy overwrites it
  }
  l0 = quad_sum(l0), l1 = quad_sum(l1);
  const float ln2 = 0.6931471805599453f;
  for (int half = 0; half < 2; ++half) {
    const int i = half ? i1 : i0;
    if (i < 0) continue;
    const float l = half ? l1 : l0, m = half ? m1 : m0, inverse = l > 0.f ? 1.f / l : 0.f;
    float* out = s.out + (q_base + i) * D + 2 * c;
    for (int j = 0; j < kOutTiles; ++j)
      *reinterpret_cast<float2*>(out + 8 * j) = make_float2(o[j][2 * half] * inverse, o[j][2 * half + 1] * inverse);
    if (s.lse && c == 0) s.lse[q_base + i] = l > 0.f ? (m + log2f(l)) * ln2 : -INFINITY;
  }
}

template <class T, int D>
void launch(const BucketAttentionParams& p, const BucketSorted& sorted, cudaStream_t stream) {
  launch_bucket_blocks(bucket_mma_kernel<T, D>, kThreads, shared_bytes<D>(), p, sorted, stream);
}

template <class T>
void launch(const BucketAttentionParams& p, const BucketSorted& sorted, cudaStream_t stream) {
  if (p.dim == 64) launch<T, 64>(p, sorted, stream); else launch<T, 128>(p, sorted, stream);
}

}  // namespace

void launch_bucket_tiles_mma(const BucketAttentionParams& p, const BucketSorted& sorted, cudaStream_t stream) {
  switch (p.element) {
    case Element::bf16: launch<__nv_bfloat16>(p, sorted, stream); return;
    case Element::fp16: launch<__half>(p, sorted, stream); return;
    case Element::fp32: break;
  }
  throw std::invalid_argument("bucket_attention: the tensor-core tiles take bf16 or fp16 (fp32 runs on CUDA cores)");
}

}  // namespace hashhop::attn::cuda
