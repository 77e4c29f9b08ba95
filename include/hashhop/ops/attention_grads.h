// Device-agnostic LibTorch pieces shared by the CPU ops (attention_ops.cpp) and the CUDA ops
// (attention_ops_cuda.cpp): masked dense attention, and attention over per-row key lists with its backward.
#pragma once

#include <torch/torch.h>

#include <optional>

namespace hashhop::ops {

// The optional batch dimension: q [batch, heads_q, n_q, dim] runs as batch * heads_q heads over k/v
// [batch, heads_kv, n_k, dim] as batch * heads_kv heads. Folded head b * heads_q + h reads folded kv head
// (b * heads_q + h) / group = b * heads_kv + h / group, its own sequence's kv head, so folding is exact.
// fold_batch checks `x` is `dim`-D and leads with `batch`, naming op and argument; unfold_batch undoes it.
torch::Tensor fold_batch(const char* op, const torch::Tensor& x, const char* name, int64_t dim, int64_t batch);
torch::Tensor unfold_batch(const torch::Tensor& x, int64_t batch);

// Softmax attention of every query over the keys `visible` allows ([heads_q, n_q, n_k] bool); grouped
// query heads read kv head h / (heads_q / heads_kv). A row that sees nothing outputs zeros. Differentiable.
torch::Tensor attend_visible(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& visible, const std::optional<torch::Tensor>& key_bias, double scale);

// [heads, n_q, n_k] bool: everything, or with `causal` query i sees keys up to n_k - n_q + i.
torch::Tensor causal_visible(int64_t heads, int64_t n_q, int64_t n_k, bool causal, const torch::Device& device);

// Per-row key lists: row r = head * n_q + i of q [heads_q, n_q, dim] attends to keys selected[r, :counts[r]]
// of its kv head (any order, no repeats). selected [heads_q * n_q, stride] and counts [heads_q * n_q], int32
// or int64, on q's device. Math in float32 (float64 for float64 inputs); rows are processed in chunks so
// the gathered keys stay within a fixed memory budget (chunk_rows > 0 sets the chunk instead). No host sync.
torch::Tensor selected_attention_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& selected, const torch::Tensor& counts, double scale,
                                         int64_t chunk_rows = 0);

struct AttentionGrads {
  torch::Tensor dq, dk, dv;  // in the dtypes of q, k, v
};

// Gradients of selected_attention_forward with the selection held constant (what the signature and index
// ops' CUDA backward use).
AttentionGrads selected_attention_backward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                           const torch::Tensor& selected, const torch::Tensor& counts,
                                           const torch::Tensor& grad_out, double scale, int64_t chunk_rows = 0);

// Which keys share a bucket with each query in any round: q_buckets [rounds, heads_q, n_q], k_buckets
// [rounds, heads_kv, n_k] (integers), cut causally. [heads_q, n_q, n_k] bool on the buckets' device.
torch::Tensor bucket_visible(const torch::Tensor& q_buckets, const torch::Tensor& k_buckets, bool causal);

// Gradients of attend_visible (recomputed in float32, or float64 for float64 inputs).
AttentionGrads masked_attention_backward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& visible, const torch::Tensor& grad_out, double scale);

}  // namespace hashhop::ops
