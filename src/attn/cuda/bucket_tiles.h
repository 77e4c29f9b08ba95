// Shared by the two tile kernels of bucket attention (bucket_attention.cu: fp32 FMAs; bucket_tiles_mma.cu:
// bf16/fp16 tensor cores): the sorted layout they read and the tensor-core launcher. Internal to src/attn/cuda.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "hashhop/attn/cuda/bucket_attention_cuda.h"

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

// The tensor-core tiles (mma.sync m16n8k16) for bf16 and fp16 inputs; the same keys and the same output
// layout as the fp32 tile kernel. Throws for fp32 (that stays on CUDA cores).
void launch_bucket_tiles_mma(const BucketAttentionParams& p, const BucketSorted& sorted, cudaStream_t stream);

}  // namespace hashhop::attn::cuda
