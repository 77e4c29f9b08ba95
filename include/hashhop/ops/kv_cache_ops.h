// The decode API over real KV caches, registered as torch.ops.hashhop.kv_cache_append / signature_decode:
// batched caches with per-sequence lengths and a signature cache beside them (docs/attention.md, "Decode API").
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace hashhop::ops {

// A cache: k_cache, v_cache [batch, heads_kv, capacity, dim] of one floating dtype; signature_cache
// [batch, heads_kv, capacity, words] int64 (packed sign bits, pack_signatures' layout); lengths [batch] int32:
// how many rows of each sequence are filled. All on one device.
struct CacheShape {
  int64_t batch = 0, heads_kv = 0, capacity = 0, dim = 0, words = 0;
};

// Checks a cache's tensors and returns its sizes; errors name the op and the argument.
CacheShape check_cache(const char* op, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                       const torch::Tensor& signature_cache, const torch::Tensor& lengths);

// Appends k, v [batch, heads_kv, t, dim] at each sequence's length and the signature bits of k_logits
// [batch, heads_kv, t, bits] (bit = logit >= 0) beside them, then advances lengths. Rows past the capacity
// are dropped: the result [batch] int32 counts them (zeros when everything fit). Not differentiable.
torch::Tensor kv_cache_append(torch::Tensor& k_cache, torch::Tensor& v_cache, torch::Tensor& signature_cache,
                              torch::Tensor& lengths, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& k_logits);

// One decode step for every sequence: q [batch, heads_q, dim] (heads_q a multiple of heads_kv) with packed
// q_signatures [batch, heads_q, words]; sequence b reads keys [0, lengths[b]) of its cache, keeping its sinks,
// recent window and top_k (or top_fraction of lengths[b]) keys by Hamming similarity, exactly as
// signature_attention does over the filled rows; softmax over the kept keys. A sequence of length 0 outputs
// zeros. Returns [batch, heads_q, dim] in q's dtype. Not differentiable.
torch::Tensor signature_decode(const torch::Tensor& q, const torch::Tensor& q_signatures, const torch::Tensor& k_cache,
                               const torch::Tensor& v_cache, const torch::Tensor& signature_cache,
                               const torch::Tensor& lengths, int64_t bits, int64_t sinks, int64_t window, int64_t top_k,
                               double top_fraction, double scale);

// Shape and argument checks of the two ops, shared by the CPU and CUDA implementations.
void check_append_args(const CacheShape& cache, const torch::Tensor& k_cache, const torch::Tensor& k,
                       const torch::Tensor& v, const torch::Tensor& k_logits);
void check_decode_args(const CacheShape& cache, const torch::Tensor& k_cache, const torch::Tensor& q,
                       const torch::Tensor& q_signatures, int64_t bits, int64_t sinks, int64_t window, int64_t top_k,
                       double top_fraction);

}  // namespace hashhop::ops
