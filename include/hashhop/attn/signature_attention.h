// Learned bit-signature top-k attention (HashAttention), CPU reference: signatures are sign bits packed
// into 64-bit words; a query keeps sink tokens, a recent window and the top-k keys by Hamming
// similarity (ties: lower index first), then runs exact softmax attention over what it kept.
#pragma once

#include <cstdint>
#include <vector>

#include "hashhop/attn/attention_problem.h"

namespace hashhop::attn {

inline int signature_words(int bits) { return (bits + 63) / 64; }

// logits [n, bits] -> words [n, signature_words(bits)]; bit b of a row is 1 iff logit >= 0.
void pack_signatures(const double* logits, int n, int bits, std::uint64_t* words);

// Matching bits between two signatures (bits - popcount(xor)).
int hamming_similarity(const std::uint64_t* a, const std::uint64_t* b, int bits);

struct SignatureConfig {
  int bits = 64;
  int sinks = 0;               // first keys always kept
  int window = 0;              // last keys up to the query always kept
  int top_k = 0;               // keys kept by similarity (besides sinks and window) ...
  double top_fraction = 0.0;   // ... or this share of the visible keys, if top_k == 0
};

// Keys kept for one query: its visible keys are [0, last_key]. Sorted ascending.
std::vector<int> select_signature_keys(const std::uint64_t* query_signature, const std::uint64_t* key_signatures,
                                       int last_key, const SignatureConfig& config);

// q_signatures [heads_q, n_q, words], k_signatures [heads_kv, n_k, words].
void signature_attention(const AttentionProblem& problem, const std::uint64_t* q_signatures,
                         const std::uint64_t* k_signatures, const SignatureConfig& config, double* out,
                         double* lse = nullptr);

}  // namespace hashhop::attn
