// Exact attention over selected keys, and dense attention (see attention_problem.h).
// Tested by tests/attn/test_attention.cpp.
#include "hashhop/attn/attention_problem.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace hashhop::attn {

void validate(const AttentionProblem& p) {
  auto positive = [](int value, const char* name) {
    if (value < 1) throw std::invalid_argument(std::string(name) + ": must be >= 1, got " + std::to_string(value));
  };
  positive(p.heads_q, "heads_q");
  positive(p.heads_kv, "heads_kv");
  positive(p.n_q, "n_q");
  positive(p.n_k, "n_k");
  positive(p.dim, "dim");
  if (p.heads_q % p.heads_kv != 0) {
    throw std::invalid_argument("heads_q: " + std::to_string(p.heads_q) + " is not a multiple of heads_kv " + std::to_string(p.heads_kv));
  }
  if (p.causal && p.n_q > p.n_k) throw std::invalid_argument("n_q: causal attention needs n_q <= n_k");
  if (!p.q || !p.k || !p.v) throw std::invalid_argument("q, k, v: null pointer");
}

void attend_selected(const AttentionProblem& p, const KeySelector& select, double* out, double* lse) {
  validate(p);
  std::vector<int> keys;
  std::vector<double> logits;
  for (int h = 0; h < p.heads_q; ++h) {
    const int kv = p.kv_head(h);
    for (int i = 0; i < p.n_q; ++i) {
      keys.clear();
      select(h, i, keys);
      double* o = out + (static_cast<std::int64_t>(h) * p.n_q + i) * p.dim;
      std::fill(o, o + p.dim, 0.0);
      const std::int64_t row = static_cast<std::int64_t>(h) * p.n_q + i;
      if (keys.empty()) {
        if (lse) lse[row] = -std::numeric_limits<double>::infinity();
        continue;
      }
      const double* qr = p.q_row(h, i);
      logits.resize(keys.size());
      double max_logit = -std::numeric_limits<double>::infinity();
      for (std::size_t n = 0; n < keys.size(); ++n) {
        const double* kr = p.k_row(kv, keys[n]);
        double dot = 0;
        for (int d = 0; d < p.dim; ++d) dot += qr[d] * kr[d];
        logits[n] = dot * p.scale + (p.key_bias ? p.key_bias[keys[n]] : 0.0);
        max_logit = std::max(max_logit, logits[n]);
      }
      double sum = 0;
      for (std::size_t n = 0; n < keys.size(); ++n) {
        const double w = std::exp(logits[n] - max_logit);
        sum += w;
        const double* vr = p.v_row(kv, keys[n]);
        for (int d = 0; d < p.dim; ++d) o[d] += w * vr[d];
      }
      for (int d = 0; d < p.dim; ++d) o[d] /= sum;
      if (lse) lse[row] = max_logit + std::log(sum);
    }
  }
}

void average_selected(const AttentionProblem& p, const KeySelector& select, double* out) {
  validate(p);
  std::vector<int> keys;
  for (int h = 0; h < p.heads_q; ++h) {
    for (int i = 0; i < p.n_q; ++i) {
      keys.clear();
      select(h, i, keys);
      double* o = out + (static_cast<std::int64_t>(h) * p.n_q + i) * p.dim;
      std::fill(o, o + p.dim, 0.0);
      for (int key : keys) {
        const double* vr = p.v_row(p.kv_head(h), key);
        for (int d = 0; d < p.dim; ++d) o[d] += vr[d] / static_cast<double>(keys.size());
      }
    }
  }
}

void dense_attention(const AttentionProblem& p, double* out, double* lse) {
  attend_selected(p, [&](int, int i, std::vector<int>& keys) {
    for (int j = 0; j <= p.last_key(i); ++j) keys.push_back(j);
  }, out, lse);
}

}  // namespace hashhop::attn
