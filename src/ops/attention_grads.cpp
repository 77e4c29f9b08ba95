// Device-agnostic attention pieces of the ops (see attention_grads.h): plain ATen calls, so the same code
// serves CPU tensors (tested by tests/ops/test_ops.cpp) and CUDA tensors (tests/python/test_ops_cuda.py).
#include "hashhop/ops/attention_grads.h"

#include <algorithm>
#include <limits>

namespace hashhop::ops {
namespace {

// Gathered key/value rows per chunk of query rows: 3 float tensors of [rows, stride, dim] live at once.
constexpr int64_t kChunkBytes = int64_t{256} << 20;

torch::ScalarType math_type(const torch::Tensor& q) {
  return q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// One chunk of rows [r0, r0 + R): gathered keys/values, the flat key index of every slot and the weights.
struct Chunk {
  torch::Tensor flat, valid, keys, values, q, weights;
};

Chunk gather_chunk(const torch::Tensor& q_rows, const torch::Tensor& k_flat, const torch::Tensor& v_flat,
                   const torch::Tensor& selected, const torch::Tensor& counts, const torch::Tensor& row_kv, int64_t n_k,
                   int64_t r0, int64_t rows, double scale) {
  const auto math = q_rows.scalar_type();
  const int64_t stride = selected.size(1), dim = q_rows.size(1);
  const auto long_opts = torch::TensorOptions().dtype(torch::kInt64).device(selected.device());
  Chunk c;
  const auto sel = selected.narrow(0, r0, rows).to(torch::kInt64);
  c.valid = torch::arange(stride, long_opts).view({1, stride}) < counts.narrow(0, r0, rows).to(torch::kInt64).view({rows, 1});
  // Slots past a row's count point at key 0 of its head with weight 0, so gathers and scatters stay in range.
  c.flat = torch::where(c.valid, sel, torch::zeros_like(sel)) + row_kv.narrow(0, r0, rows).view({rows, 1}) * n_k;
  const auto index = c.flat.reshape({-1});
  c.keys = k_flat.index_select(0, index).view({rows, stride, dim}).to(math);
  c.values = v_flat.index_select(0, index).view({rows, stride, dim}).to(math);
  c.q = q_rows.narrow(0, r0, rows);
  auto scores = torch::bmm(c.keys, c.q.unsqueeze(2)).squeeze(2) * scale;
  scores = scores.masked_fill(c.valid.logical_not(), -std::numeric_limits<double>::infinity());
  auto top = std::get<0>(scores.max(1, /*keepdim=*/true));
  top = torch::where(torch::isfinite(top), top, torch::zeros_like(top));  // rows with no keys
  const auto e = torch::exp(scores - top);
  c.weights = e / e.sum(1, /*keepdim=*/true).clamp_min(std::numeric_limits<float>::min());
  return c;
}

struct Layout {
  int64_t heads_q, n_q, dim, heads_kv, n_k, rows, stride, chunk;
  torch::Tensor row_kv;  // [rows] kv head of each query row
};

Layout layout_of(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& selected, int64_t chunk_rows) {
  Layout l{};
  l.heads_q = q.size(0), l.n_q = q.size(1), l.dim = q.size(2), l.heads_kv = k.size(0), l.n_k = k.size(1);
  l.rows = l.heads_q * l.n_q;
  l.stride = std::max<int64_t>(1, selected.size(1));
  const int64_t element = q.scalar_type() == torch::kFloat64 ? 8 : 4;
  l.chunk = std::clamp<int64_t>(chunk_rows > 0 ? chunk_rows : kChunkBytes / (3 * l.stride * l.dim * element), 1,
                                std::max<int64_t>(1, l.rows));
  const auto long_opts = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  l.row_kv = torch::div(torch::arange(l.rows, long_opts), l.n_q * (l.heads_q / l.heads_kv), "floor");
  return l;
}

}  // namespace

torch::Tensor fold_batch(const char* op, const torch::Tensor& x, const char* name, int64_t dim, int64_t batch) {
  TORCH_CHECK(x.dim() == dim && x.size(0) == batch, op, ": with a batched q [batch, heads, n, dim], ", name, " must be ", dim,
              "-D with batch ", batch, " first, got ", x.sizes());
  return x.flatten(0, 1);
}

torch::Tensor unfold_batch(const torch::Tensor& x, int64_t batch) { return x.unflatten(0, {batch, -1}); }

torch::Tensor attend_visible(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& visible, const std::optional<torch::Tensor>& key_bias, double scale) {
  const int64_t group = q.size(0) / k.size(0);  // grouped queries: query head h reads kv head h / group
  const auto kq = group == 1 ? k : k.repeat_interleave(group, 0);
  const auto vq = group == 1 ? v : v.repeat_interleave(group, 0);
  auto scores = torch::matmul(q, kq.transpose(1, 2)) * scale;
  if (key_bias) scores = scores + key_bias->view({1, 1, -1});
  // A row that sees nothing gets zeros (as the references), not the NaN of an all -inf softmax.
  const auto any = visible.any(-1, /*keepdim=*/true);
  scores = scores.masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity());
  scores = torch::where(any, scores, torch::zeros_like(scores));
  const auto weights = torch::softmax(scores, -1) * any.to(scores.scalar_type());
  return torch::matmul(weights, vq);
}

torch::Tensor causal_visible(int64_t heads, int64_t n_q, int64_t n_k, bool causal, const torch::Device& device) {
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device);
  if (!causal) return torch::ones({heads, n_q, n_k}, opts.dtype(torch::kBool));
  const auto last = torch::arange(n_q, opts) + (n_k - n_q);  // inclusive
  return (torch::arange(n_k, opts).view({1, n_k}) <= last.view({n_q, 1})).unsqueeze(0).expand({heads, n_q, n_k});
}

torch::Tensor selected_attention_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& selected, const torch::Tensor& counts, double scale,
                                         int64_t chunk_rows) {
  const Layout l = layout_of(q, k, selected, chunk_rows);
  const auto math = math_type(q);
  const auto q_rows = q.reshape({l.rows, l.dim}).to(math);
  const auto k_flat = k.reshape({l.heads_kv * l.n_k, l.dim}), v_flat = v.reshape({l.heads_kv * l.n_k, l.dim});
  auto out = torch::empty({l.rows, l.dim}, q_rows.options());
  if (selected.size(1) == 0) return out.zero_().view({l.heads_q, l.n_q, l.dim}).to(q.scalar_type());
  for (int64_t r0 = 0; r0 < l.rows; r0 += l.chunk) {
    const int64_t rows = std::min(l.chunk, l.rows - r0);
    const Chunk c = gather_chunk(q_rows, k_flat, v_flat, selected, counts, l.row_kv, l.n_k, r0, rows, scale);
    out.narrow(0, r0, rows).copy_(torch::bmm(c.weights.unsqueeze(1), c.values).squeeze(1));
  }
  return out.view({l.heads_q, l.n_q, l.dim}).to(q.scalar_type());
}

AttentionGrads selected_attention_backward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                           const torch::Tensor& selected, const torch::Tensor& counts,
                                           const torch::Tensor& grad_out, double scale, int64_t chunk_rows) {
  const Layout l = layout_of(q, k, selected, chunk_rows);
  const auto math = math_type(q);
  const auto q_rows = q.reshape({l.rows, l.dim}).to(math);
  const auto go_rows = grad_out.reshape({l.rows, l.dim}).to(math);
  const auto k_flat = k.reshape({l.heads_kv * l.n_k, l.dim}), v_flat = v.reshape({l.heads_kv * l.n_k, l.dim});
  auto dq = torch::zeros({l.rows, l.dim}, q_rows.options());
  auto dk = torch::zeros({l.heads_kv * l.n_k, l.dim}, q_rows.options());
  auto dv = torch::zeros({l.heads_kv * l.n_k, l.dim}, q_rows.options());
  if (selected.size(1) > 0) {
    for (int64_t r0 = 0; r0 < l.rows; r0 += l.chunk) {
      const int64_t rows = std::min(l.chunk, l.rows - r0);
      const Chunk c = gather_chunk(q_rows, k_flat, v_flat, selected, counts, l.row_kv, l.n_k, r0, rows, scale);
      const auto go = go_rows.narrow(0, r0, rows);
      // Softmax backward: ds = p * (dp - sum(p * dp)), dp = dO . v_j; slots past a row's count have p = 0.
      const auto dp = torch::bmm(c.values, go.unsqueeze(2)).squeeze(2);
      const auto ds = c.weights * (dp - (c.weights * dp).sum(1, /*keepdim=*/true));
      dq.narrow(0, r0, rows).copy_(torch::bmm(ds.unsqueeze(1), c.keys).squeeze(1) * scale);
      const auto index = c.flat.reshape({-1});
      dk.index_add_(0, index, (ds.unsqueeze(2) * c.q.unsqueeze(1) * scale).reshape({-1, l.dim}));
      dv.index_add_(0, index, (c.weights.unsqueeze(2) * go.unsqueeze(1)).reshape({-1, l.dim}));
    }
  }
  return {dq.view(q.sizes()).to(q.scalar_type()), dk.view(k.sizes()).to(k.scalar_type()), dv.view(v.sizes()).to(v.scalar_type())};
}

torch::Tensor bucket_visible(const torch::Tensor& q_buckets, const torch::Tensor& k_buckets, bool causal) {
  const int64_t rounds = q_buckets.size(0), heads_q = q_buckets.size(1), n_q = q_buckets.size(2);
  const int64_t heads_kv = k_buckets.size(1), n_k = k_buckets.size(2), group = heads_q / heads_kv;
  auto same = torch::zeros({heads_q, n_q, n_k}, q_buckets.options().dtype(torch::kBool));
  for (int64_t r = 0; r < rounds; ++r) {
    const auto kb = group == 1 ? k_buckets[r] : k_buckets[r].repeat_interleave(group, 0);
    same |= q_buckets[r].unsqueeze(2) == kb.unsqueeze(1);
  }
  return same & causal_visible(heads_q, n_q, n_k, causal, q_buckets.device());
}

AttentionGrads masked_attention_backward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& visible, const torch::Tensor& grad_out, double scale) {
  const auto math = math_type(q);
  torch::AutoGradMode enable(true);
  auto qd = q.detach().to(math).requires_grad_(true);
  auto kd = k.detach().to(math).requires_grad_(true);
  auto vd = v.detach().to(math).requires_grad_(true);
  const auto out = attend_visible(qd, kd, vd, visible, std::nullopt, scale);
  const auto grads = torch::autograd::grad({out}, {qd, kd, vd}, {grad_out.to(math)});
  return {grads[0].to(q.scalar_type()), grads[1].to(k.scalar_type()), grads[2].to(v.scalar_type())};
}

}  // namespace hashhop::ops
