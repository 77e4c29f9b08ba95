// The shared view every attention mechanism works on (float64 CPU references), and the one exact
// softmax-over-selected-keys routine they all end in. Torch-free; see docs/attention.md.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace hashhop::attn {

// Contiguous layouts: q and out [heads_q, n_q, dim]; k and v [heads_kv, n_k, dim]; key_bias [n_k] or null.
// Grouped queries: query head h reads kv head h / (heads_q / heads_kv). With `causal`, query i sits at
// key position n_k - n_q + i and sees keys up to it (decode: n_q = 1 sees every key).
struct AttentionProblem {
  const double* q = nullptr;
  const double* k = nullptr;
  const double* v = nullptr;
  const double* key_bias = nullptr;
  int heads_q = 1, heads_kv = 1, n_q = 1, n_k = 1, dim = 1;
  bool causal = false;
  double scale = 1.0;

  int kv_head(int head) const { return head / (heads_q / heads_kv); }
  int last_key(int query) const { return causal ? n_k - n_q + query : n_k - 1; }  // inclusive; < 0: none
  const double* q_row(int head, int query) const { return q + (static_cast<std::int64_t>(head) * n_q + query) * dim; }
  const double* k_row(int kv, int key) const { return k + (static_cast<std::int64_t>(kv) * n_k + key) * dim; }
  const double* v_row(int kv, int key) const { return v + (static_cast<std::int64_t>(kv) * n_k + key) * dim; }
  std::size_t out_size() const { return static_cast<std::size_t>(heads_q) * n_q * dim; }
};

// Throws std::invalid_argument naming the bad size (heads not divisible, non-positive sizes, ...).
void validate(const AttentionProblem& problem);

// Picks the keys query (head, query) attends to; must append indices in [0, last_key] without repeats.
using KeySelector = std::function<void(int head, int query, std::vector<int>& keys)>;

// Exact softmax attention of every query over its selected keys. A query with no keys outputs zeros
// and lse = -inf. lse, if given, is [heads_q, n_q].
void attend_selected(const AttentionProblem& problem, const KeySelector& select, double* out, double* lse = nullptr);

// The mean of the selected values (the "mean aggregation" variant of bucket attention).
void average_selected(const AttentionProblem& problem, const KeySelector& select, double* out);

// Dense softmax attention: every key up to last_key. The reference all mechanisms are checked against.
void dense_attention(const AttentionProblem& problem, double* out, double* lse = nullptr);

}  // namespace hashhop::attn
