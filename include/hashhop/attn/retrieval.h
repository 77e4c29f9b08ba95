// Named retrieval over LibTorch tensors: which keys a query reads (dense, signature top-k, bucket, index),
// then one softmax over them, as the models and the engine call it. Tested by tests/attn/test_retrieval.cpp.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hashhop::attn {

// One block of keys a query row may read. Values are stored per row of `values` and each key names the
// row it reads (the lexer model stores one value per run, shared by the run's positions).
struct RetrievalSegment {
  torch::Tensor keys;        // [B or 1, N, D]
  torch::Tensor bias;        // [B, Q, N]: added to the scaled score; -inf = not visible to that query
  torch::Tensor value_rows;  // [B or 1, N] int64: row of `values` each key reads
  torch::Tensor values;      // [B or 1, R, V]
};

// Settings of the selecting mechanisms (dense ignores them). Signatures are SimHash sign bits of a fixed
// Gaussian projection (gaussian.h, `seed`), the same for queries and keys.
struct RetrieverOptions {
  int bits = 64;         // signature bits: signature top-k (1..128) and index (1..64, the exact code)
  int top_k = 32;        // signature top-k: keys kept per query by Hamming similarity (ties: earlier key)
  int bucket_bits = 4;   // bucket: 2^b angular-LSH buckets (bucket_attention.h's `lsh`) ...
  int rounds = 1;        // ... in this many rounds; a key sharing a bucket in any round is kept
  std::uint64_t seed = 0;
};

// Choose keys, then exact softmax over them: every mechanism differs only in select().
class Retriever {
 public:
  virtual ~Retriever() = default;
  virtual std::string name() const = 0;

  // The biases with -inf where this mechanism drops a visible key (dense returns them unchanged). Selection
  // runs on float64 CPU copies through the attention library's references and is not differentiated.
  virtual std::vector<torch::Tensor> select(const torch::Tensor& q, const std::vector<RetrievalSegment>& segments) const = 0;

  // Softmax weights over the kept keys of all segments, split per segment ([B, Q, N_i] each):
  // softmax(cat_i(float32(q·k_iᵀ) · exp(log_scale) + bias_i)). The scale is a temperature in log space
  // (a model's learned parameter: autograd flows into it; pass log(1/√D) for the usual scaling).
  std::vector<torch::Tensor> weights(const torch::Tensor& q, const torch::Tensor& log_scale,
                                     const std::vector<RetrievalSegment>& segments) const;

  // What the queries [B, Q, D] read: Σ_i (weights_i summed per value row) · values_i, [B, Q, V].
  torch::Tensor read(const torch::Tensor& q, const torch::Tensor& log_scale, const std::vector<RetrievalSegment>& segments) const;
};

// "dense", "signature_topk", "bucket" or "index"; throws std::invalid_argument naming the choices otherwise.
std::shared_ptr<const Retriever> make_retriever(const std::string& name, const RetrieverOptions& options = {});
std::vector<std::string> retriever_names();

}  // namespace hashhop::attn
