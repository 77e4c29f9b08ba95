// LibTorch ops of the attention library, registered as torch.ops.hashhop.* (TORCH_LIBRARY) so Python
// can call them after torch.ops.load_library("build/libhashhop_ops.so"). Autograd flows through dense
// and bucket attention (buckets are constants of the inputs) and through sign_ste (straight-through).
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

namespace hashhop::ops {

// q [heads_q, n_q, dim], k and v [heads_kv, n_k, dim] (heads_q a multiple of heads_kv), one floating
// dtype and device; key_bias [n_k]. Causal: query i sees keys up to n_k - n_q + i. A query that sees no
// key outputs zeros. Errors name the op and the offending argument.
torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const std::optional<torch::Tensor>& key_bias, bool causal, double scale);

// Softmax over the keys that share the query's bucket in any of `rounds` rounds; bucket_fn is "lsh",
// "lsh_sha256" or "quantized_sha256" (attn::BucketFunction), 2^bucket_bits buckets, seeded.
torch::Tensor bucket_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               int64_t bucket_bits, int64_t rounds, const std::string& bucket_fn, int64_t seed,
                               bool causal, double scale);

// sign(x) as ±1 (0 -> +1) forward; backward passes the gradient where |x| <= 1 (hardtanh's gradient),
// the straight-through estimator HashAttention trains its φ maps with.
torch::Tensor sign_ste(const torch::Tensor& x);

// Signature bits (logit >= 0) of [n, bits] logits packed into [n, ceil(bits/64)] int64 words, bit b
// of a row in word b/64 at position b%64 (attn::pack_signatures' layout). Not differentiable.
torch::Tensor pack_signatures(const torch::Tensor& logits);

}  // namespace hashhop::ops
