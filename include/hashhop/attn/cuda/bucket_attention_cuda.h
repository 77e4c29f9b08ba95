// CUDA path of bucket hash attention (sm_90), prefill or decode: stable radix sorts by (round, head, bucket),
// then tiled exact softmax over each query's bucket (tensor cores for bf16/fp16). Torch-free params.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hashhop/attn/cuda/element.h"

namespace hashhop::attn::cuda {

// Layouts as in attention_problem.h: q [heads_q, n_q, dim], k/v [heads_kv, n_k, dim]; with `causal`,
// query i sits at key position n_k - n_q + i. Bucket ids come from the caller (the float64 reference,
// lsh_bucket_ids below, or any other bucket function), so both paths can agree on every bucket.
// A query attends to the keys sharing its bucket in any round, each key once (counted in the first
// round it shares), exactly the set of the CPU reference; rounds are merged by log-sum-exp.
struct BucketAttentionParams {
  const void* q = nullptr;  // of `element`, 16-byte aligned
  const void* k = nullptr;
  const void* v = nullptr;
  const std::uint32_t* q_buckets = nullptr;  // [rounds, heads_q, n_q], each < 2^bucket_bits
  const std::uint32_t* k_buckets = nullptr;  // [rounds, heads_kv, n_k]
  int heads_q = 1, heads_kv = 1, n_q = 1, n_k = 1, dim = 128;  // dim: 64 or 128
  int bucket_bits = 4, rounds = 1;
  bool causal = false;
  float scale = 1.0f;
  float* out = nullptr;       // [heads_q, n_q, dim]; a query with no keys gets zeros
  float* lse = nullptr;       // [heads_q, n_q] or null; -inf for a query with no keys
  void* workspace = nullptr;  // bucket_workspace_bytes(...) bytes
  Element element = Element::bf16;
  // bf16/fp16 on tensor cores (mma.sync tiles); false keeps them on the fp32-FMA tiles, as fp32 always is
  // (attn-check compares both with the reference; attn-bench times both, its "FMA tiles" column).
  bool tensor_cores = true;
};

// Throws std::invalid_argument naming the field (sizes, dim, bucket_bits + log2(rounds * heads) > 32).
std::size_t bucket_workspace_bytes(const BucketAttentionParams& params);
void bucket_attention(const BucketAttentionParams& params, cudaStream_t stream);

// Reformer's angular LSH from projections x·R ([n, columns] float, R from attn::bucket_projection):
// bucket = argmax over [xR, -xR], ties to the first in the reference's order (+c before -c, c ascending).
void lsh_bucket_ids(const float* projected, int n, int columns, std::uint32_t* ids, cudaStream_t stream);
// The same over float64 projections (what the ops use, so bucket ids equal the float64 reference's).
void lsh_bucket_ids(const double* projected, int n, int columns, std::uint32_t* ids, cudaStream_t stream);

// The same argmax from bf16 rows x [rows, dim] (dim 64 or 128) on tensor cores, with no projection written:
// R as two bf16 parts (split_rotation: [2][columns][dim], R^T rounded, then the rounding's remainder), so
// x·R keeps ~16 bits of R and flips a bucket only at a near-tie, as float32 projections do. For bucket_bits >= 1
// (columns = 2^(bucket_bits - 1) <= 2^23); with 0 bits every id is 0, which is the caller's to write.
std::vector<__nv_bfloat16> split_rotation(const std::vector<double>& rotation, int dim, int columns);  // R: [dim, columns]
void lsh_bucket_ids(const __nv_bfloat16* x, int rows, int dim, const __nv_bfloat16* rotation_split, int columns, std::uint32_t* ids,
                    cudaStream_t stream);

}  // namespace hashhop::attn::cuda
