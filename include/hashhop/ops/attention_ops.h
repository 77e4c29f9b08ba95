// LibTorch ops of the attention library, registered as torch.ops.hashhop.* (TORCH_LIBRARY) so Python
// can call them after torch.ops.load_library("build/libhashhop_ops.so"). Autograd flows through dense
// and bucket attention (buckets are constants of the inputs) and through sign_ste (straight-through).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>

namespace hashhop::ops {

// q [heads_q, n_q, dim], k and v [heads_kv, n_k, dim] (heads_q a multiple of heads_kv), one floating
// dtype and device; key_bias [n_k]. Causal: query i sees keys up to n_k - n_q + i. A query that sees no
// key outputs zeros. Errors name the op and the offending argument.
torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const std::optional<torch::Tensor>& key_bias, bool causal, double scale);

// Softmax over the keys that share the query's bucket in any of `rounds` rounds; bucket_fn is "lsh",
// "lsh_sha256" or "quantized_sha256" (attn::BucketFunction), 2^bucket_bits buckets, seeded. Mixed heads: the
// last dense_heads query heads (whole groups of heads_q / heads_kv) attend densely (attn::BucketConfig).
torch::Tensor bucket_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               int64_t bucket_bits, int64_t rounds, const std::string& bucket_fn, int64_t seed,
                               bool causal, double scale, int64_t dense_heads = 0);

// The dense_heads argument's checks, shared by every device's op: in [0, heads_q], whole kv groups.
void check_dense_heads(const char* op, const torch::Tensor& q, const torch::Tensor& k, int64_t dense_heads);
// A batched op one sequence at a time: q [B, heads_q, n, dim], k and v folded to [B·heads_kv, n, dim] (fold_batch);
// returns the sequences' outputs concatenated, [B·heads_q, n, dim] (unfold_batch's input).
torch::Tensor per_sequence(int64_t batch, const torch::Tensor& q, const torch::Tensor& k_folded, const torch::Tensor& v_folded,
                           const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>& op);

// Signature top-k (HashAttention): each query keeps sinks, a recent window and its top_k keys (or
// top_fraction of its visible keys) by Hamming similarity of packed signatures (q_signatures
// [heads_q, n_q, words], k_signatures [heads_kv, n_k, words] int64, as pack_signatures makes them),
// then exact softmax over them. Selection from attn::select_signature_keys; autograd to q, k, v.
torch::Tensor signature_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& q_signatures, const torch::Tensor& k_signatures, int64_t bits,
                                  int64_t sinks, int64_t window, int64_t top_k, double top_fraction, bool causal,
                                  double scale);

// Hash-index attention: candidates from attn::SignatureIndex over one 64-bit signature per key
// (q_signatures [heads_q, n_q], k_signatures [heads_kv, n_k] int64); tables = 0 is exact matching,
// otherwise `tables` LSH tables of bits_per_table sampled bits. Autograd to q, k, v.
torch::Tensor index_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& q_signatures, const torch::Tensor& k_signatures, int64_t bits,
                              int64_t tables, int64_t bits_per_table, int64_t seed, bool causal, double scale);

// sign(x) as ±1 (0 -> +1) forward; backward passes the gradient where |x| <= 1 (hardtanh's gradient),
// the straight-through estimator HashAttention trains its φ maps with.
torch::Tensor sign_ste(const torch::Tensor& x);

// Signature bits (logit >= 0) of [n, bits] logits packed into [n, ceil(bits/64)] int64 words, bit b
// of a row in word b/64 at position b%64 (attn::pack_signatures' layout). Not differentiable.
torch::Tensor pack_signatures(const torch::Tensor& logits);

}  // namespace hashhop::ops
