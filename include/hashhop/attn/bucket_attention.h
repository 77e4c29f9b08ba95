// Bucket hash attention (CPU reference): queries and keys are hashed to one of 2^b buckets per round;
// a query attends to the keys that share its bucket in any round (each key counted once). Optionally
// the last heads stay dense (mixed heads, BucketConfig::dense_heads).
#pragma once

#include <cstdint>
#include <vector>

#include "hashhop/attn/attention_problem.h"

namespace hashhop::attn {

enum class BucketFunction {
  lsh,               // random rotation, argmax over [xR, -xR] (Reformer's angular LSH)
  lsh_sha256,        // sign code of random hyperplanes, then SHA-256 of the code picks the bucket
  quantized_sha256,  // SHA-256 of the vector rounded to a grid: equal (or near-equal) vectors meet
};

struct BucketConfig {
  int bucket_bits = 4;  // 2^b buckets; b = 0 is a single bucket (= dense)
  int rounds = 1;
  BucketFunction function = BucketFunction::lsh;
  std::uint64_t seed = 0;
  double quantization_step = 0.25;  // grid of quantized_sha256
  bool mean_aggregation = false;    // average the bucket's values instead of softmax
  // Mixed heads: the last dense_heads query heads attend to every visible key, the others by bucket.
  // Hashing only some heads keeps exact attention where a head needs it, at dense cost for those heads.
  int dense_heads = 0;
};

// Bucket of each of n vectors [n, dim] in one round. Deterministic in (seed, round).
std::vector<std::uint32_t> bucket_ids(const double* x, int n, int dim, const BucketConfig& config, int round);

// The random rotation / hyperplanes of a round, [dim, columns] row-major, from a fixed Gaussian stream,
// so GPU paths can use the very same matrix.
std::vector<double> bucket_projection(int dim, const BucketConfig& config, int round);
int bucket_projection_columns(const BucketConfig& config);

// Bucket ids of every query and key in every round: query(round, head)[i], key(round, kv_head)[j].
struct ProblemBuckets {
  int heads_q = 1, heads_kv = 1;
  std::vector<std::vector<std::uint32_t>> queries, keys;  // [rounds * heads_q], [rounds * heads_kv]
  const std::vector<std::uint32_t>& query(int round, int head) const { return queries[static_cast<std::size_t>(round * heads_q + head)]; }
  const std::vector<std::uint32_t>& key(int round, int kv) const { return keys[static_cast<std::size_t>(round * heads_kv + kv)]; }
};
ProblemBuckets problem_buckets(const AttentionProblem& problem, const BucketConfig& config);

// Whether query head h of heads_q hashes (false: one of the config's dense heads).
inline bool head_is_hashed(const BucketConfig& config, int h, int heads_q) { return h < heads_q - config.dense_heads; }

void bucket_attention(const AttentionProblem& problem, const BucketConfig& config, double* out, double* lse = nullptr);

}  // namespace hashhop::attn
