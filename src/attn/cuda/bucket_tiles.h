// Shared by the two tile kernels of bucket attention (bucket_attention.cu: fp32 FMAs; bucket_tiles_mma.cu:
// bf16/fp16 tensor cores): the sorted layout they read and the tensor-core launcher. Internal to src/attn/cuda.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "hashhop/attn/cuda/bucket_attention_cuda.h"
#include "hashhop/attn/cuda/cuda_check.h"

namespace hashhop::attn::cuda {

constexpr int kBucketMaxRounds = 8;

// Queries and keys sorted by (round, head, bucket) code; [k_start, k_end) of each code in the sorted keys.
struct BucketSorted {
  const std::uint32_t* q_codes;
  const int* q_order;
  const int* k_order;
  const int* k_start;
  const int* k_end;
  float* out;  // [rounds or 1, heads_q, n_q, dim]
  float* lse;  // [rounds or 1, heads_q, n_q] or null
};

#ifdef __CUDACC__
constexpr int kBucketBlockRows = 64;  // sorted queries a block, in both tile kernels

// A block's sorted queries, in shared memory: position (-1 past n_q), [lo, hi) in the sorted keys (the bucket,
// cut at the causal position), the union of those ranges, and the ids of the earlier rounds (masked as buckets).
struct BucketBlockQueries {
  int index[kBucketBlockRows], lo[kBucketBlockRows], hi[kBucketBlockRows], range[2];
  std::uint32_t prev[kBucketMaxRounds - 1][kBucketBlockRows];
};

// Fills `b` for block (blockIdx.x: 64 sorted queries, blockIdx.y: round * heads_q + head); every thread calls it
// (blockDim >= 64) and it ends with a barrier.
__device__ inline void load_block_queries(const BucketAttentionParams& p, const BucketSorted& s, BucketBlockQueries& b) {
  const int segment = blockIdx.y, round = segment / p.heads_q, head = segment % p.heads_q;
  const int kv = head / (p.heads_q / p.heads_kv);
  const int t = threadIdx.x;
  const std::size_t q_base = static_cast<std::size_t>(segment) * p.n_q;
  const std::uint32_t mask = p.bucket_bits == 0 ? 0u : (1u << p.bucket_bits) - 1;
  if (t == 0) b.range[0] = INT_MAX, b.range[1] = INT_MIN;
  __syncthreads();
  if (t < kBucketBlockRows) {
    const int sorted = blockIdx.x * kBucketBlockRows + t;
    int lo = 0, hi = 0, i = -1;
    if (sorted < p.n_q) {
      i = s.q_order[q_base + sorted];
      const std::size_t table = (static_cast<std::size_t>(round * p.heads_kv + kv) << p.bucket_bits) | (s.q_codes[q_base + sorted] & mask);
      lo = s.k_start[table];
      hi = s.k_end[table];
      if (p.causal) {  // positions ascend within a bucket (stable sort): cut at the first one past the query
        const int last = p.n_k - p.n_q + i;
        int a = lo, z = hi;
        while (a < z) {
          const int m = (a + z) / 2;
          if (s.k_order[m] <= last) a = m + 1; else z = m;
        }
        hi = a;
      }
      if (lo < hi) atomicMin(&b.range[0], lo), atomicMax(&b.range[1], hi);
      for (int r = 0; r < round; ++r) b.prev[r][t] = p.q_buckets[(static_cast<std::size_t>(r) * p.heads_q + head) * p.n_q + i] & mask;
    }
    b.index[t] = i, b.lo[t] = lo, b.hi[t] = hi;
  }
  __syncthreads();
}

// One launch of a tile kernel: a block per 64 sorted queries (x) and per (round, head) (y).
template <class Kernel>
void launch_bucket_blocks(Kernel kernel, int threads, int shared_bytes, const BucketAttentionParams& p, const BucketSorted& s,
                          cudaStream_t stream) {
  HASHHOP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
  const dim3 grid(static_cast<unsigned>((static_cast<std::size_t>(p.n_q) + kBucketBlockRows - 1) / kBucketBlockRows),
                  static_cast<unsigned>(p.rounds * p.heads_q));
  kernel<<<grid, threads, shared_bytes, stream>>>(p, s);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}
#endif

// The tensor-core tiles (mma.sync m16n8k16) for bf16 and fp16 inputs; the same keys and the same output
// layout as the fp32 tile kernel. Throws for fp32 (that stays on CUDA cores).
void launch_bucket_tiles_mma(const BucketAttentionParams& p, const BucketSorted& sorted, cudaStream_t stream);

}  // namespace hashhop::attn::cuda
