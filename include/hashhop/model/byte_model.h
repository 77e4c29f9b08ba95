// The byte-level HashHop model: reads raw bytes only (no lexer, no hand-made features). A byte
// embedding, then blocks from ByteModelConfig::layers (local window attention, gated global attention,
// hop blocks with a learned hash projection), each with optional canon convs and an MLP; next-byte logits.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "hashhop/model/byte_config.h"

namespace hashhop::model {

// Causal depthwise convolution over time with a residual ("canon layer", Physics of LMs 4.1): lets a
// byte see its few predecessors at the cost of a handful of weights per channel.
class CanonConvImpl : public torch::nn::Module {
 public:
  CanonConvImpl(int dim, int kernel);
  // x [B, T, dim] -> [B, T, dim]. `past` holds the kernel - 1 inputs before x (zeros at the start of a
  // text; undefined means that); `tail`, if given, receives the kernel - 1 inputs that end x for the next call.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& past = {}, torch::Tensor* tail = nullptr);

 private:
  torch::nn::Conv1d conv_{nullptr};
  int kernel_;
};
TORCH_MODULE(CanonConv);

// Rotary tables for positions [first, first + T): cos and sin [T, rotated_dims / 2].
struct Rotary {
  torch::Tensor cos, sin;
};

// What one block keeps of the text before the current call (prefill once, then answer many queries):
// the attention's keys (with the gate column, see ByteAttentionImpl) and values, and the canon convs' tails.
struct ByteLayerCache {
  torch::Tensor keys, values;            // [1, H, n, padded head dim]
  torch::Tensor canon_attn, canon_mlp;   // [1, kernel - 1, dim]
  // Global layers of a cache grown by ByteModel::extend: keys and values are views of the first n rows of
  // stores with spare capacity (doubled when full), so each extend writes only its new rows (O(n) in all,
  // not O(n²/chunk)). `store_length` is shared by every cache viewing the stores: a cache appends in place
  // only while it is the newest (its n equals it); an older copy extended again gets stores of its own.
  torch::Tensor key_store, value_store;  // [1, H, capacity, padded head dim]
  std::shared_ptr<std::int64_t> store_length;
};
struct ByteCache {
  std::int64_t length = 0;               // bytes prefilled
  std::vector<ByteLayerCache> layers;    // one per block
  std::int64_t bytes() const;            // device memory held, for reports
};

// Context parallel (engine/byte_engine.h): a global block's read of keys that other ranks hold, all of
// them before the queries. `out` [1, H, T, padded head dim] float32, already normalized, and its log-sum-exp
// `lse` [1, H, T] (-inf, with out 0, where no key is visible).
struct RemoteRead {
  torch::Tensor out, lse;
};
// (block index, the block's queries [1, H, T, padded head dim] as SDPA gets them) -> those keys' read.
using RemoteAttention = std::function<RemoteRead(std::size_t block, const torch::Tensor& queries)>;

// A read of no key, out [B, H, T, D] = `sizes`: out 0 and lse -inf (float32, on `options`' device), the
// identity of merge_reads.
RemoteRead empty_read(torch::IntArrayRef sizes, const torch::TensorOptions& options);

// Softmax attention with its log-sum-exp, in float32 and row blocks (scores near 2^27 elements at once):
// query row i sees key j when j <= i + past_length. A row that sees no key reads 0 with lse -inf.
RemoteRead read_with_lse(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                         std::int64_t past_length);
// One read over the union of two reads' keys: the softmax of all of them, exactly.
RemoteRead merge_reads(const RemoteRead& a, const RemoteRead& b);

// Attention of one block. Local: causal window, RoPE on every dim. Global: causal over all earlier
// bytes, RoPE on global_rope_fraction of the dims (pairs up to global_rope_max_wavelength), keys biased by
// log σ(gate). Hop: global, asked `hops` times with query_h+1 = W_q x + P(read_h).
//
// The gate bias rides in one extra head dimension (query 1, key log σ(g)·sqrt(head dim)), so scores equal
// q·k/sqrt(hd) + log σ(g) while SDPA keeps its fused causal kernels: no [T, T] mask is ever built.
class ByteAttentionImpl : public torch::nn::Module {
 public:
  ByteAttentionImpl(const ByteModelConfig& config, char kind);
  // x [B, T, dim] at positions first.. first + T - 1. With `past` (batch 1), x also sees the cached keys;
  // with `record`, the keys and values of past + x are stored there.
  torch::Tensor forward(const torch::Tensor& x, std::int64_t first = 0, const ByteLayerCache* past = nullptr,
                        ByteLayerCache* record = nullptr);
  // log σ(gate) per position of the last forward ([B, T]); undefined for local layers or without a gate.
  // With gate "hard_concrete": log P(z != 0), the L0 penalty's term.
  torch::Tensor last_log_gate() const { return last_log_gate_; }
  // [B, T] bool: the keys of the last forward that the gate keeps at inference (σ > gate_threshold, or 1/2
  // when soft; hard_concrete: z > 0); undefined without a gate.
  torch::Tensor last_kept() const { return last_kept_; }
  char kind() const { return kind_; }
  void set_global_topk(int topk) { config_.global_topk = topk; }
  void set_gate_threshold(double threshold) { config_.gate_threshold = threshold; }
  // Global blocks: every read also merges `remote`'s (context parallel); an empty function stops that.
  void set_remote(std::function<RemoteRead(const torch::Tensor&)> remote) { remote_ = std::move(remote); }
  // Global blocks: `observer` sees every read's queries [B, H, T, padded head dim] as attend() scores them,
  // and the read goes on as it would (capture_global_vectors); an empty function stops that.
  void set_query_observer(std::function<void(const torch::Tensor&)> observer) { query_observer_ = std::move(observer); }
  // Global blocks, continuations of a cache: read only the last `keys` cached keys (0: all, the model itself).
  // An approximation the engine's prefill can opt into (ByteEngineOptions::prefill_window).
  void set_read_window(std::int64_t keys) { read_window_ = keys; }
  // Hop blocks, forwards without a cache: for the probed rows (`rows` int64 [B, R]: positions in each
  // sample; -1 pads) every hop's log attention weights per head are kept, [B, H, R, T] per hop
  // (hop_weights(); a padding row's are those of position 0; -inf on keys after the row), differentiable:
  // ByteModelConfig::hop_supervision's loss reads them. Undefined rows: off. The dense softmax: a config
  // with hop_supervision refuses topk_in_training.
  void set_hop_probe(const torch::Tensor& rows) { probe_rows_ = rows; }
  const std::vector<torch::Tensor>& hop_weights() const { return hop_weights_; }
  // Global blocks, forwards without a cache: for the probed rows (`rows` as set_hop_probe's) the queries
  // [B, H, R, padded head dim] and every key [B, H, T, padded head dim] as attend() scores them (RoPE and
  // the gate column in), float32, differentiable: ByteModelConfig::match_contrast's loss scores them
  // against other prompts' keys too. Undefined rows: off.
  void set_match_probe(const torch::Tensor& rows) { match_rows_ = rows; }  // what a forward kept stays until the next
  const torch::Tensor& match_queries() const { return match_queries_; }
  const torch::Tensor& match_keys() const { return match_keys_; }

 private:
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       std::int64_t past_length) const;
  torch::Tensor rotate(const torch::Tensor& x, std::int64_t first) const;  // [B, H, T, hd]
  torch::Tensor extend(const torch::Tensor& x, const torch::Tensor& column) const;  // [B, H, T, padded]
  // With global_qk_norm: x [B, H, T, hd] at RMS 1 per head, a query also times its head's gain; else x.
  torch::Tensor normalize(const torch::Tensor& x, bool query) const;
  // Each query's softmax over only its global_topk best visible keys, in row chunks (inference only).
  torch::Tensor attend_topk(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            std::int64_t past_length, double scale) const;

  ByteModelConfig config_;
  char kind_;
  int head_dim_, rotated_, padded_dim_;
  mutable torch::Tensor inverse_frequencies_;  // float64 [rotated / 2], 0 beyond the wavelength cap; moves to x's device
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, out_{nullptr}, gate_{nullptr}, hash_projection_{nullptr};
  torch::Tensor qk_gain_;  // [heads], global_qk_norm only
  torch::Tensor last_log_gate_, last_kept_;
  std::function<RemoteRead(const torch::Tensor&)> remote_;
  std::function<void(const torch::Tensor&)> query_observer_;
  std::int64_t read_window_ = 0;
  torch::Tensor probe_rows_;
  std::vector<torch::Tensor> hop_weights_;
  torch::Tensor match_rows_, match_queries_, match_keys_;
};
TORCH_MODULE(ByteAttention);

class ByteBlockImpl : public torch::nn::Module {
 public:
  ByteBlockImpl(const ByteModelConfig& config, char kind);
  torch::Tensor forward(const torch::Tensor& x, std::int64_t first = 0, const ByteLayerCache* past = nullptr,
                        ByteLayerCache* record = nullptr);
  const ByteAttention& attention() const { return attention_; }
  ByteAttention& attention() { return attention_; }

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
  // Changes how many keys global layers read at inference (ByteModelConfig::global_topk; 0 = dense).
  void set_global_topk(int topk);
  // Makes the hash gate hard at inference (ByteModelConfig::gate_threshold; 0 = soft).
  void set_gate_threshold(double threshold);
  // Context parallel: every global block's attention also reads what `remote` returns for its queries
  // (keys before this text's first byte, held by other ranks); an empty function turns that off.
  void set_remote_attention(const RemoteAttention& remote);
  // Every global block's read queries go to `observer` (its block index, the queries as
  // ByteAttentionImpl::set_query_observer gives them), the model's reads unchanged; an empty function stops that.
  using QueryObserver = std::function<void(std::size_t block, const torch::Tensor& queries)>;
  void set_query_observer(const QueryObserver& observer);
  // Every global block reads only the last `keys` keys of a cache it continues (0: all keys, exact). Not the
  // model: an engine's prefill may opt into it (ByteEngineOptions::prefill_window) and must turn it off after.
  void set_read_window(std::int64_t keys);
  // One global block's reads, also not the model (ByteEngineOptions::block_window, block_topk): a read window
  // (0: all keys) and a top-k read at inference (0: dense). reset_reads() restores the model's own reads.
  void set_block_read_window(std::size_t block, std::int64_t keys);
  void set_block_topk(std::size_t block, int topk);
  void reset_reads();
  // The attention scale of global blocks (1/sqrt(head dim)), for ranks that serve remote reads.
  double attention_scale() const;
  // Runs a text's bytes [1, n] once and keeps what later bytes need (ByteCache).
  ByteCache prefill(const torch::Tensor& bytes);
  // Hidden states [1, s, dim] of bytes [1, s] that follow the prefilled text: equal to the last s rows of
  // hidden(text + bytes), at the cost of s rows, so many queries share one prefill of a long prompt.
  torch::Tensor hidden_after(const ByteCache& cache, const torch::Tensor& bytes);
  // Appends bytes [1, s] to a prefilled cache (an empty cache: a fresh text), so a long prompt can be
  // prefilled in chunks: the result equals prefill(text + bytes) (the engine, byte_engine.h). Global layers
  // write only the new rows, into stores that double when full (ByteLayerCache), so n bytes cost O(n)
  // copying in any chunk size; local layers keep their window. Returns the new bytes' hidden states [1, s, dim]
  // (hidden_after's, so greedy decoding can grow one cache a byte at a time).
  torch::Tensor extend(ByteCache& cache, const torch::Tensor& bytes);
  // Copies every global block's keys and values of `cache` into stores with room for `extra` more rows, so
  // that cache (and copies of it) can be extended in place `extra` bytes; rewind() drops what was appended.
  // Greedy decoding reserves once per call and rewinds per query: one copy of the cache, not one a query.
  void reserve(ByteCache& cache, std::int64_t extra) const;
  // Back to the length `cache` had when reserved: the stores' rows beyond it are free again. Only for a
  // cache from reserve() whose appended copies are no longer used.
  static void rewind(const ByteCache& cache);
  // Share of positions whose key the gate keeps at inference (ByteAttention::last_kept: σ(g) above the
  // threshold, 1/2 when soft; z > 0 for a hard concrete gate) in each gated block of the last forward, over
  // the positions where `valid` ([B, T] bool) is true (padding is not text); empty without gates.
  std::vector<double> kept_share(const torch::Tensor& valid) const;
  // Mean of exp(last_log_gate) (σ(gate); P(z != 0) for a hard concrete gate) over the `valid` positions of
  // the last forward, averaged over gated blocks, each times its gate_sparsity_blocks weight when there are
  // weights; differentiable (the gate_sparsity penalty). Undefined without gates.
  torch::Tensor mean_gate(const torch::Tensor& valid) const;
  // Every hop block's probe (ByteAttentionImpl::set_hop_probe; undefined = off), and what the last forward
  // kept: per hop block, per hop, [B, H, R, T] log weights.
  void set_hop_probe(const torch::Tensor& rows);
  std::vector<std::vector<torch::Tensor>> hop_weights() const;
  // Block `block`'s match probe (ByteAttentionImpl::set_match_probe; undefined rows = off), and what the
  // last forward kept there: {queries at the rows, all keys}.
  void set_match_probe(std::size_t block, const torch::Tensor& rows);
  std::pair<torch::Tensor, torch::Tensor> match_vectors(std::size_t block) const;
  const ByteModelConfig& config() const { return config_; }

 private:
  torch::Tensor run(const torch::Tensor& bytes, const ByteCache* past, ByteCache* record);

  ByteModelConfig config_;
  torch::nn::Embedding embed_{nullptr};
  std::vector<ByteBlock> blocks_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(ByteModel);

}  // namespace hashhop::model
