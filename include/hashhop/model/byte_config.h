// The byte-level model's shape (byte_model.h). Its run configuration (presets, JSON with "family": "bytes",
// training settings) is train/byte_config.h's; tested by tests/model/test_byte_model.cpp.
#pragma once

#include <string>
#include <vector>

namespace hashhop::model {

// The layer plan is one letter per block: L = local (causal sliding-window attention with RoPE),
// G = global (causal attention over every earlier byte, scores biased by log σ(hash gate) of the key),
// H = hop block (global attention asked `hops` times, each hop's query = W_q x + P(read of the last
// hop): the learned hash projection). Nothing is computed from the text by hand: the input is bytes.
struct ByteModelConfig {
  int dim = 256;
  int heads = 8;
  int mlp_mult = 4;
  std::string layers = "GGGGGG";
  int window = 64;                     // bytes a local layer sees (itself included)
  double global_rope_fraction = 1.0;   // share of each global head's dims rotated by RoPE; 0 = position-free
  double rope_base = 10000.0;
  // Global layers rotate only RoPE pairs whose wavelength (2π / frequency) is at most this many bytes;
  // longer ones stay position-free ("p-RoPE"). Pairs whose whole period training has seen behave alike at
  // every distance, so the global match no longer depends on distances beyond the training length. 0 = all.
  double global_rope_max_wavelength = 0.0;
  // At inference (and in training with topk_in_training), global and hop layers read only each query's `global_topk`
  // highest-scoring keys: the softmax then no longer dilutes over every key of a long prompt. 0 = dense.
  int global_topk = 0;
  // Read the top global_topk keys in training too, so what the model learns is what it runs at length
  // (a model trained dense leans on spread-out reads that a top-k read then changes: learning-log §10).
  bool topk_in_training = false;
  // At inference, a global key whose σ(gate) is at most this is dropped (its score -inf): the hash gate made
  // hard, so the engine (engine/byte_engine.h) stores only the kept keys and answers as this model does. 0 = soft.
  double gate_threshold = 0.0;
  // Training only: the loss adds gate_sparsity × the mean σ(gate) over every gated block's text positions.
  // Without it the gates keep nearly every byte (learning-log §12: 73–100%). Alone it does not make a hard
  // gate work: a softmax ignores a shift common to every key's log σ(g), so the penalty lowers all gates
  // alike (run 12b': every gate below 1/2 within 300 steps; learning-log §14). Not with --nproc.
  double gate_sparsity = 0.0;
  // The penalty's weight per gated block, in order (empty = 1 each): a block whose keys everything reads
  // (run 15c's block 1 kept every byte under one shared weight) can be pushed harder than the rest.
  std::vector<double> gate_sparsity_blocks;
  // Training only: the loss adds hop_supervision × the mean over 2+-hop answers without CoT, over every H
  // block's hops h (up to `hops`), of -log(the attention weight, averaged over heads, that hop h puts at the
  // answer's first row on the h-th line of the query's chain). The chain's lines come from the generated
  // text, as the answer bytes do: a training signal for the first hop's target, which the answer loss
  // alone did not supply (run 15a, learning-log §17). Nothing of it is an input at inference. 0 = off.
  double hop_supervision = 0.0;
  // What of the h-th line hop h is trained to weigh: "line" (all of "K = V"), "value" (V's letters, quotes
  // aside) or "first_letter" (V's first letter). Run 16a trained "line", and its last hop settled on the key
  // K (8- and 16-letter hashes) or on the quotes around V (4 letters): positions that cannot hold the
  // answer's letters (`hashhop hop-probe`). A letter of V sees its key to the left, and holds itself: what a
  // read must hit to carry V onwards, as a 1-hop copy does.
  std::string hop_supervision_target = "line";
  // Training only: the loss adds match_contrast × -log(the share of global block match_contrast_block's
  // attention, averaged over heads, on the query's prompt line) at the three rows of each completion line's
  // " = " (1-3 bytes before the answer's opening quote: where a trained model does its lookup, `hashhop
  // margin-probe --row-offset`), in a softmax that holds, beside the row's own visible keys, every key of
  // the batch's other prompts (lines holding the query's hash left out). So the match is trained against
  // batch× more wrong keys than one prompt holds: the length failure is a wrong key's score overtaking the
  // right one's as keys multiply (learning-log §19), and a prompt's length caps how many training shows.
  // Nothing of it is an input at inference. 0 = off.
  double match_contrast = 0.0;
  int match_contrast_block = 1;  // which block (a G) the contrast trains: 17c's lookup block
  // Each of the other prompts' keys counts as this many keys in the contrast's softmax (ln of it added to its
  // score), so the batch's wrong keys stand for a prompt this many times longer. Run 18: the lookup's weight
  // on the line with 7-15 other prompts' keys in sat at 0.85 while 1M characters still failed; the wrong key
  // that outscores the line there is a tail event a 32K batch rarely holds. 1 = each key once.
  double match_contrast_upweight = 1.0;
  // The gate's form. "sigmoid": key bias log σ(g), soft unless gate_threshold is set. "hard_concrete": an L0
  // gate (Louizos et al. 2018): bias log z, z = clamp(σ((g + logistic noise)/β)·1.2 - 0.1, 0, 1) in training
  // and σ(g)·1.2 - 0.1 at inference, so z is exactly 0 for a dropped key; gate_sparsity then weighs the
  // expected share of nonzero z. Its level is pinned (a needed key at z = 0 costs loss), so hard at inference
  // means what training saw. Not with --nproc (each rank would draw other noise).
  std::string gate = "sigmoid";
  // Whether the gated blocks drop keys at inference (a dropped key scores -inf, and the engine stores only
  // the others): a threshold on σ, or a hard concrete gate, which is hard by construction.
  bool gate_drops_keys() const { return hash_gate && (gate_threshold > 0 || gate == "hard_concrete"); }
  // Global and hop layers normalise each head's query and key to RMS 1 (the query then times a learned gain
  // per head), so a score is gain·sqrt(head dim)·cos(q, k): no key can outscore the match by its length
  // alone, however many keys a long prompt holds (learning-log §13). Local layers keep plain dot products.
  bool global_qk_norm = false;
  int canon_kernel = 4;                // causal depthwise conv before attention and MLP; 0 = none
  int hops = 2;                        // queries asked by an H block
  bool hash_gate = true;               // log σ(gate(x_key)) added to global scores
  // Initialisation of a fresh model (loaded weights replace it): "fan_in" (matrices N(0, 1/fan_in), output
  // projections also / sqrt(2·layers), biases 0), "gpt2" (matrices N(0, 0.02²), as runs 1-11 were trained) or
  // "torch" (LibTorch's own defaults, as PyTorch draws them: Linear and conv weights and biases uniform in
  // ±1/sqrt(fan_in); with embed_std 1 this is the PyTorch twin that learned 1 hop in 1,400 steps, run 13d).
  std::string init = "fan_in";
  // The byte embedding's std at initialisation, for every init (PyTorch's nn.Embedding draws 1; runs 1-12
  // used 0.02). Under pre-norm layers it sets how loud a byte's identity is next to what the first blocks add
  // to the residual stream.
  double embed_std = 0.02;
};

}  // namespace hashhop::model
