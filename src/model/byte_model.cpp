// The byte-level HashHop model (see byte_model.h). Attention goes through ATen's scaled_dot_product_attention
// with boolean masks (local window, causal) or an additive mask when the hash gate biases the keys.
#include "hashhop/model/byte_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace hashhop::model {

CanonConvImpl::CanonConvImpl(int dim, int kernel) : kernel_(kernel) {
  // PyTorch's default init (uniform in ±1/sqrt(kernel)): the conv mixes neighbours from step 0. An
  // init near zero left the 1-hop plateau unbroken for 2,000 steps (docs/learning-log.md, section 8).
  conv_ = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(dim, dim, kernel).groups(dim).padding(kernel - 1)));
}

torch::Tensor CanonConvImpl::forward(const torch::Tensor& x) {
  const auto t = x.size(1);
  // Padding both sides by kernel-1 and keeping the first T outputs makes output t see inputs t-k+1..t.
  const auto y = conv_->forward(x.transpose(1, 2)).narrow(2, 0, t).transpose(1, 2);
  return x + y;
}

namespace {

Rotary rotary_tables(std::int64_t t, int rotated, double base, const torch::Device& device) {
  const auto half = rotated / 2;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto inv = torch::pow(base, -torch::arange(half, opts) * 2.0 / rotated);
  const auto angles = torch::outer(torch::arange(t, opts), inv);
  return {angles.cos(), angles.sin()};
}

}  // namespace

ByteAttentionImpl::ByteAttentionImpl(const ByteModelConfig& config, char kind) : config_(config), kind_(kind) {
  head_dim_ = config.dim / config.heads;
  const double fraction = kind == 'L' ? 1.0 : config.global_rope_fraction;
  rotated_ = 2 * static_cast<int>(std::lround(fraction * head_dim_ / 2));
  q_ = register_module("q", torch::nn::Linear(torch::nn::LinearOptions(config.dim, config.dim).bias(false)));
  k_ = register_module("k", torch::nn::Linear(torch::nn::LinearOptions(config.dim, config.dim).bias(false)));
  v_ = register_module("v", torch::nn::Linear(torch::nn::LinearOptions(config.dim, config.dim).bias(false)));
  const int reads = kind == 'H' ? config.hops : 1;
  out_ = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(config.dim * reads, config.dim).bias(false)));
  if (kind != 'L' && config.hash_gate) {
    gate_ = register_module("gate", torch::nn::Linear(config.dim, 1));
    // σ(4) ≈ 0.98: every position starts as a reference point; training learns which to drop.
    torch::NoGradGuard no_grad;
    gate_->weight.normal_(0.0, 0.02);
    gate_->bias.fill_(4.0);
  }
  if (kind == 'H')
    hash_projection_ = register_module("hash_projection",
                                       torch::nn::Linear(torch::nn::LinearOptions(config.dim, config.dim).bias(false)));
}

torch::Tensor ByteAttentionImpl::rotate(const torch::Tensor& x) const {
  if (rotated_ == 0) return x;
  const auto t = x.size(2);
  const auto tables = rotary_tables(t, rotated_, config_.rope_base, x.device());
  const auto cos = tables.cos.to(x.scalar_type()), sin = tables.sin.to(x.scalar_type());
  const int half = rotated_ / 2;
  const auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
  if (rotated_ == head_dim_) return rotated;
  return torch::cat({rotated, x.narrow(-1, rotated_, head_dim_ - rotated_)}, -1);
}

torch::Tensor ByteAttentionImpl::attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        const torch::Tensor& mask) const {
  if (!mask.defined()) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  // SDPA takes a boolean mask as is and an additive one only in the query's dtype (bf16 under autocast).
  return at::scaled_dot_product_attention(q, k, v, mask.scalar_type() == torch::kBool ? mask : mask.to(q.scalar_type()));
}

torch::Tensor ByteAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask_in) {
  const auto b = x.size(0), t = x.size(1);
  const auto split = [&](const torch::Tensor& y) { return y.view({b, t, config_.heads, head_dim_}).transpose(1, 2); };
  const auto merge = [&](const torch::Tensor& y) { return y.transpose(1, 2).reshape({b, t, config_.dim}); };
  torch::Tensor mask = mask_in;  // local: boolean window; global: undefined = plain causal
  if (gate_) {
    last_log_gate_ = torch::log_sigmoid(gate_->forward(x).squeeze(-1).to(torch::kFloat32));  // [B, T]
    const auto causal = torch::ones({t, t}, torch::TensorOptions().dtype(torch::kBool).device(x.device())).tril();
    const auto bias = torch::zeros({t, t}, torch::TensorOptions().dtype(torch::kFloat32).device(x.device()))
                          .masked_fill(causal.logical_not(), -std::numeric_limits<float>::infinity());
    mask = (bias.view({1, 1, t, t}) + last_log_gate_.view({b, 1, 1, t}));
  }
  const auto query_base = q_->forward(x);
  const auto k = rotate(split(k_->forward(x)));
  const auto v = split(v_->forward(x));
  if (kind_ != 'H') return out_->forward(merge(attend(rotate(split(query_base)), k, v, mask)));
  std::vector<torch::Tensor> reads;
  torch::Tensor query = query_base;
  for (int hop = 0; hop < config_.hops; ++hop) {
    const auto read = merge(attend(rotate(split(query)), k, v, mask));
    reads.push_back(read);
    query = query_base + hash_projection_->forward(read);  // the next hop asks for what this one found
  }
  return out_->forward(torch::cat(reads, -1));
}

ByteBlockImpl::ByteBlockImpl(const ByteModelConfig& config, char kind) : kind_(kind) {
  if (config.canon_kernel > 0) {
    canon_attn_ = register_module("canon_attn", CanonConv(config.dim, config.canon_kernel));
    canon_mlp_ = register_module("canon_mlp", CanonConv(config.dim, config.canon_kernel));
  }
  norm_attn_ = register_module("norm_attn", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim})));
  norm_mlp_ = register_module("norm_mlp", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim})));
  attention_ = register_module("attention", ByteAttention(config, kind));
  up_ = register_module("up", torch::nn::Linear(config.dim, config.dim * config.mlp_mult));
  down_ = register_module("down", torch::nn::Linear(config.dim * config.mlp_mult, config.dim));
}

torch::Tensor ByteBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& causal_bias,
                                     const torch::Tensor& local_bias) {
  auto x = x_in;
  if (canon_attn_) x = canon_attn_->forward(x);
  x = x + attention_->forward(norm_attn_->forward(x), kind_ == 'L' ? local_bias : causal_bias);
  if (canon_mlp_) x = canon_mlp_->forward(x);
  return x + down_->forward(torch::gelu(up_->forward(norm_mlp_->forward(x))));
}

ByteModelImpl::ByteModelImpl(const ByteModelConfig& config) : config_(config) {
  embed_ = register_module("embed", torch::nn::Embedding(256, config.dim));
  for (std::size_t i = 0; i < config.layers.size(); ++i)
    blocks_.push_back(register_module("block" + std::to_string(i), ByteBlock(config, config.layers[i])));
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim})));
  head_ = register_module("head", torch::nn::Linear(config.dim, 256));
  torch::NoGradGuard no_grad;
  embed_->weight.normal_(0.0, 0.02);
  // Output projections start small so every block starts close to the identity (GPT-2's scaling).
  const double scale = 0.02 / std::sqrt(2.0 * static_cast<double>(config.layers.size()));
  for (auto& item : named_parameters()) {
    const auto& name = item.key();
    auto& p = item.value();
    if (p.dim() == 2 && name.find("embed") == std::string::npos && name.find("gate") == std::string::npos)
      p.normal_(0.0, (name.find(".out.") != std::string::npos || name.find(".down.") != std::string::npos) ? scale : 0.02);
  // (dim() == 2 skips the canon convs' [dim, 1, kernel] weights, which keep their default init.)
  }
}

torch::Tensor ByteModelImpl::hidden(const torch::Tensor& bytes) {
  TORCH_CHECK(bytes.dim() == 2, "byte model: input must be [batch, length] bytes");
  const auto t = bytes.size(1);
  const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(bytes.device());
  const auto pos = torch::arange(t, opts);
  const auto diff = pos.view({t, 1}) - pos.view({1, t});  // query - key
  // Local window: key within `window` bytes before the query (itself included). Global layers without a
  // gate use SDPA's own causal path; with a gate the attention builds its additive mask itself.
  const auto local = (diff >= 0) & (diff < config_.window);
  auto x = embed_->forward(bytes);
  for (auto& block : blocks_) x = block->forward(x, torch::Tensor(), local);
  return norm_->forward(x);
}

torch::Tensor ByteModelImpl::logits(const torch::Tensor& hidden_rows) { return head_->forward(hidden_rows); }

std::vector<double> ByteModelImpl::kept_share(const torch::Tensor& valid) const {
  std::vector<double> shares;
  for (const auto& block : blocks_) {
    const auto gate = block->attention()->last_log_gate();
    if (!gate.defined()) continue;
    const auto mask = valid.to(gate.device());
    shares.push_back(((gate > std::log(0.5)) & mask).sum().item<double>() / std::max<double>(1.0, mask.sum().item<double>()));
  }
  return shares;
}

}  // namespace hashhop::model
