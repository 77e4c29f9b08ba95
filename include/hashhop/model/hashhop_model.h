// HashHopTransformer: embeddings + run pooling (the local layer that turns a hash's letters into one
// fingerprint), one HashHop attention block (hash gate, explicit multi-hop retrieval with a hash
// projection between hops, feed-forward) and the output projection. See docs/model.md.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "hashhop/attn/retrieval.h"
#include "hashhop/model/config.h"
#include "hashhop/model/lexer.h"

namespace hashhop::model {

// What a chunk continues from: the letters (one-hot by position, [max_run·52]) of the last two
// completed runs and of the run still open at the previous chunk's end.
struct RunCarry {
  torch::Tensor prev, last, open;
};

// What retrieval reads: one key and gate per position, and the value of each position as a row of a
// run table (positions share the value of their last completed run, so values are stored per run).
struct Memory {
  torch::Tensor keys;        // [B, N, fp_dim], unit norm: the second-last completed run
  torch::Tensor log_gate;    // [B, N]: log σ(hash gate); -inf on padding
  torch::Tensor value_rows;  // [B, N] int64: row of run_values holding the position's value
  torch::Tensor run_values;  // [B, R, (max_run+1)·53]: letters of a run, one-hot per position, then "end"
};

// The lexer's per-position features, each [B, T] int64: what the structural embedding is made of.
struct PositionFeatures {
  torch::Tensor byte, run_len, eq, quotes, hops, cot;
};

// Per-position tensors of a batch of chunks, padded to the longest ([B, T, ...]).
struct Encoded {
  Memory memory;
  torch::Tensor queries;    // [B, T, fp_dim], unit norm: the last completed run, asked as a query
  torch::Tensor structure;  // [B, T, model_dim]
  torch::Tensor run_len;    // [B, T] int64: index of the next letter within the open run
  std::vector<RunCarry> carry_out;  // per chunk, to continue after it
};

// Where each hop reads from: the model's own path reads the same memories at every hop; the engine
// (engine/engine.h) looks candidates up in its hash index before each hop. Either reads through an
// attn::Retriever (attn/retrieval.h).
class HopReader {
 public:
  virtual ~HopReader() = default;
  // What hop `hop` reads for queries q [B, Q, fp_dim], [B, Q, value_dim]; previous_read is the last
  // hop's read (undefined at hop 0).
  virtual torch::Tensor read_hop(int hop, const torch::Tensor& q, const torch::Tensor& previous_read) = 0;
  // The hops' reads mixed as the answer copies from them ([B, Q, value_dim]), once per answer_logits.
  virtual void copied_read(const torch::Tensor& /*read*/) {}
};

class HashHopTransformerImpl : public torch::nn::Module {
 public:
  explicit HashHopTransformerImpl(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  std::int64_t value_dim() const { return (config_.max_run + 1) * (kLetters + 1); }

  RunCarry empty_carry() const;

  // Encodes lexed chunks; carry_in (empty = fresh start) continues each from an earlier chunk.
  Encoded encode(const std::vector<const LexedChunk*>& chunks, const std::vector<RunCarry>& carry_in = {});

  // Per-run tensors from a run table [R, max_run·52] (a run's letters, one-hot by position in the run;
  // lexer.h's letter_slot): the key positions after the run carry, and the value they read.
  torch::Tensor run_keys(const torch::Tensor& table);    // [R, fp_dim], unit norm
  torch::Tensor run_values(const torch::Tensor& table);  // [R, value_dim]

  // The structural embedding [B, T, model_dim] and the hash gate's log σ [B, T] at those positions.
  torch::Tensor structure(const PositionFeatures& features);
  torch::Tensor log_gate(const torch::Tensor& structure);

  // The retrieval mechanism every read goes through, by attn::make_retriever's name ("dense" by default:
  // what the model is trained with; "signature_topk", "bucket", "index" select keys first).
  void set_retrieval(const std::string& name, const attn::RetrieverOptions& options = {});
  const attn::Retriever& retriever() const { return *retriever_; }

  // One retrieval: a softmax over the positions of all memory segments, returning the values read
  // [B, Q, value_dim]. In segment i, positions n <= key_limits[i][b, q] are visible. Reads through
  // `retriever` if given, else the model's own.
  torch::Tensor read(const torch::Tensor& q, const std::vector<const Memory*>& memories,
                     const std::vector<torch::Tensor>& key_limits, const attn::Retriever* retriever = nullptr);

  // The hops, each reading what `reader` gives for its queries, then the output projection.
  torch::Tensor answer_logits(const torch::Tensor& queries, const torch::Tensor& structure,
                              const torch::Tensor& run_len, HopReader& reader);

  // Logits for the next byte at query positions ([B, Q, ...] inputs gathered from an Encoded).
  // Retrieval reads one softmax over the positions of all memory segments (a prompt encoded once and
  // the completion so far, say); in segment i, positions n <= key_limits[i][b, q] are visible.
  // Segments may have batch 1 and are then shared by every query row.
  torch::Tensor answer_logits(const torch::Tensor& queries, const torch::Tensor& structure,
                              const torch::Tensor& run_len, const std::vector<const Memory*>& memories,
                              const std::vector<torch::Tensor>& key_limits);

  // answer_logits at positions [B, Q] of an encoded batch (its queries, structure and run_len there).
  torch::Tensor logits_at(const Encoded& encoded, const torch::Tensor& positions,
                          const std::vector<const Memory*>& memories, const std::vector<torch::Tensor>& key_limits);

  // First-hop attention weights over one memory's positions, for diagnostics ([B, Q, N]).
  torch::Tensor first_hop_attention(const torch::Tensor& queries, const Memory& memory, const torch::Tensor& key_limit);

  std::int64_t parameter_count();

 private:
  torch::Tensor fingerprints(const torch::Tensor& letters);  // [R, max_run·52] -> unit [R, fp_dim]
  // Memories as retrieval segments: keys, bias = log gate masked past the key limit, values per run.
  std::vector<attn::RetrievalSegment> segments(const std::vector<const Memory*>& memories,
                                               const std::vector<torch::Tensor>& biases) const;
  torch::Tensor attention_bias(const torch::Tensor& log_gate, const torch::Tensor& key_limit, std::int64_t n_queries);
  std::vector<torch::Tensor> attention_biases(const std::vector<const Memory*>& memories,
                                              const std::vector<torch::Tensor>& key_limits, std::int64_t n_queries);

  ModelConfig config_;
  torch::Tensor fingerprint_table_;  // [max_run·52, fp_dim]: (position in run, letter) -> vector
  torch::nn::Linear w_q_{nullptr}, w_k_{nullptr}, hash_projection_{nullptr};
  torch::Tensor log_logit_scale_, log_copy_scale_;
  torch::nn::Embedding byte_emb_{nullptr}, run_len_emb_{nullptr}, eq_emb_{nullptr}, quote_emb_{nullptr},
      hops_emb_{nullptr}, cot_emb_{nullptr};
  torch::nn::Linear gate_{nullptr}, hop_mix_{nullptr};
  torch::nn::Linear ffn_in_{nullptr}, ffn_out_{nullptr};  // feed-forward: structure + retrieved letter -> bytes
  torch::Tensor letter_bytes_;  // [52] byte id of each letter (where copied letters land in the output)
  std::shared_ptr<const attn::Retriever> retriever_ = attn::make_retriever("dense");
};
TORCH_MODULE(HashHopTransformer);

// x[b, positions[b, q], ...] for x of shape [B, T, D]: [B, Q, D].
torch::Tensor gather_positions(const torch::Tensor& x, const torch::Tensor& positions);

}  // namespace hashhop::model
