// The byte-level HashHop model: reads raw bytes only (no lexer, no hand-made features). A byte
// embedding, then blocks from ByteModelConfig::layers (local window attention, gated global attention,
// hop blocks with a learned hash projection), each with optional canon convs and an MLP; next-byte logits.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "hashhop/model/byte_config.h"

namespace hashhop::model {

// Causal depthwise convolution over time with a residual ("canon layer", Physics of LMs 4.1): lets a
// byte see its few predecessors at the cost of a handful of weights per channel.
class CanonConvImpl : public torch::nn::Module {
 public:
  CanonConvImpl(int dim, int kernel);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, dim] -> [B, T, dim]

 private:
  torch::nn::Conv1d conv_{nullptr};
  int kernel_;
};
TORCH_MODULE(CanonConv);

// Rotary tables for positions [0, T): cos and sin [T, rotated_dims / 2].
struct Rotary {
  torch::Tensor cos, sin;
};

// Attention of one block. Local: causal window, RoPE on every dim. Global: causal over all earlier
// bytes, RoPE on global_rope_fraction of the dims, keys biased by log σ(gate). Hop: global, asked
// `hops` times with query_h+1 = W_q x + P(read_h).
class ByteAttentionImpl : public torch::nn::Module {
 public:
  ByteAttentionImpl(const ByteModelConfig& config, char kind);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_bias);
  // log σ(gate) per position of the last forward ([B, T]); undefined for local layers or without a gate.
  torch::Tensor last_log_gate() const { return last_log_gate_; }
  char kind() const { return kind_; }

 private:
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& mask) const;
  torch::Tensor rotate(const torch::Tensor& x) const;  // [B, H, T, hd]

  ByteModelConfig config_;
  char kind_;
  int head_dim_, rotated_;
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, out_{nullptr}, gate_{nullptr}, hash_projection_{nullptr};
  torch::Tensor last_log_gate_;
};
TORCH_MODULE(ByteAttention);

class ByteBlockImpl : public torch::nn::Module {
 public:
  ByteBlockImpl(const ByteModelConfig& config, char kind);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_bias, const torch::Tensor& local_bias);
  const ByteAttention& attention() const { return attention_; }

 private:
  char kind_;
  CanonConv canon_attn_{nullptr}, canon_mlp_{nullptr};
  torch::nn::LayerNorm norm_attn_{nullptr}, norm_mlp_{nullptr};
  ByteAttention attention_{nullptr};
  torch::nn::Linear up_{nullptr}, down_{nullptr};
};
TORCH_MODULE(ByteBlock);

class ByteModelImpl : public torch::nn::Module {
 public:
  explicit ByteModelImpl(const ByteModelConfig& config);
  // bytes [B, T] (int64, 0..255) -> final hidden states [B, T, dim].
  torch::Tensor hidden(const torch::Tensor& bytes);
  // Next-byte logits [..., 256] of hidden rows.
  torch::Tensor logits(const torch::Tensor& hidden_rows);
  torch::Tensor forward(const torch::Tensor& bytes) { return logits(hidden(bytes)); }
  // Share of positions whose hash gate σ(g) > 1/2 in each gated block of the last forward, over the
  // positions where `valid` ([B, T] bool) is true (padding is not text); empty without gates.
  std::vector<double> kept_share(const torch::Tensor& valid) const;
  const ByteModelConfig& config() const { return config_; }

 private:
  ByteModelConfig config_;
  torch::nn::Embedding embed_{nullptr};
  std::vector<ByteBlock> blocks_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(ByteModel);

}  // namespace hashhop::model
