// Bit-signature top-k attention reference (see signature_attention.h).
// Tested by tests/attn/test_attention.cpp; the CUDA path (src/attn/cuda) is compared with it.
#include "hashhop/attn/signature_attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace hashhop::attn {

void pack_signatures(const double* logits, int n, int bits, std::uint64_t* words) {
  const int n_words = signature_words(bits);
  for (int i = 0; i < n; ++i) {
    std::uint64_t* row = words + static_cast<std::int64_t>(i) * n_words;
    std::fill(row, row + n_words, 0ULL);
    for (int b = 0; b < bits; ++b) {
      if (logits[static_cast<std::int64_t>(i) * bits + b] >= 0) row[b / 64] |= 1ULL << (b % 64);
    }
  }
}

int hamming_similarity(const std::uint64_t* a, const std::uint64_t* b, int bits) {
  int differing = 0;
  for (int w = 0; w < signature_words(bits); ++w) differing += std::popcount(a[w] ^ b[w]);
  // Words packed from more than `bits` logits can differ in more than `bits` places: such keys rank last
  // (0), as on the GPU, whose similarities are bytes.
  return std::max(bits - differing, 0);
}

std::vector<int> select_signature_keys(const std::uint64_t* query_signature, const std::uint64_t* key_signatures,
                                       int last_key, const SignatureConfig& config) {
  std::vector<int> kept;
  if (last_key < 0) return kept;
  const int visible = last_key + 1;
  const int n_words = signature_words(config.bits);
  std::vector<char> is_kept(static_cast<std::size_t>(visible), 0);
  for (int j = 0; j < std::min(config.sinks, visible); ++j) is_kept[j] = 1;
  for (int j = std::max(0, visible - config.window); j < visible; ++j) is_kept[j] = 1;
  const int budget = config.top_k > 0 ? config.top_k
                                      : static_cast<int>(std::ceil(config.top_fraction * visible));
  std::vector<std::pair<int, int>> candidates;  // (-similarity, index): sorts best first, lower index on ties
  for (int j = 0; j < visible; ++j) {
    if (is_kept[j]) continue;
    candidates.emplace_back(-hamming_similarity(query_signature, key_signatures + static_cast<std::int64_t>(j) * n_words, config.bits), j);
  }
  const std::size_t take = std::min(candidates.size(), static_cast<std::size_t>(std::max(budget, 0)));
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(take), candidates.end());
  for (std::size_t n = 0; n < take; ++n) is_kept[candidates[n].second] = 1;
  for (int j = 0; j < visible; ++j) {
    if (is_kept[j]) kept.push_back(j);
  }
  return kept;
}

void signature_attention(const AttentionProblem& p, const std::uint64_t* q_signatures,
                         const std::uint64_t* k_signatures, const SignatureConfig& config, double* out, double* lse) {
  if (config.bits < 1 || config.bits > 1024) throw std::invalid_argument("bits: must be in [1, 1024]");
  const int n_words = signature_words(config.bits);
  attend_selected(p, [&](int h, int i, std::vector<int>& keys) {
    const std::uint64_t* qs = q_signatures + (static_cast<std::int64_t>(h) * p.n_q + i) * n_words;
    const std::uint64_t* ks = k_signatures + static_cast<std::int64_t>(p.kv_head(h)) * p.n_k * n_words;
    keys = select_signature_keys(qs, ks, p.last_key(i), config);
  }, out, lse);
}

}  // namespace hashhop::attn
