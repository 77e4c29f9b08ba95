// Bucket hash attention reference (see bucket_attention.h). SHA-256 comes from OpenSSL.
// Tested by tests/attn/test_attention.cpp; `hashhop attn-check` runs the same cases.
#include "hashhop/attn/bucket_attention.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "hashhop/attn/gaussian.h"

namespace hashhop::attn {
namespace {

std::uint32_t sha256_bucket(const void* bytes, std::size_t size, int round, int bucket_bits) {
  std::vector<unsigned char> message(sizeof(int) + size);
  std::memcpy(message.data(), &round, sizeof(int));
  std::memcpy(message.data() + sizeof(int), bytes, size);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(message.data(), message.size(), digest);
  std::uint32_t word = 0;
  std::memcpy(&word, digest, sizeof word);
  return bucket_bits == 0 ? 0 : word & ((1u << bucket_bits) - 1);
}

}  // namespace

int bucket_projection_columns(const BucketConfig& config) {
  // lsh: 2^b / 2 rotation columns (argmax over ± gives 2^b buckets); lsh_sha256: b hyperplanes.
  if (config.function == BucketFunction::lsh) return std::max(1, (1 << config.bucket_bits) / 2);
  return std::max(1, config.bucket_bits);
}

std::vector<double> bucket_projection(int dim, const BucketConfig& config, int round) {
  const int columns = bucket_projection_columns(config);
  std::vector<double> projection(static_cast<std::size_t>(dim) * columns);
  GaussianStream gaussian(config.seed * 1000003ULL + static_cast<std::uint64_t>(round));
  for (auto& value : projection) value = gaussian.next();
  return projection;
}

std::vector<std::uint32_t> bucket_ids(const double* x, int n, int dim, const BucketConfig& config, int round) {
  if (config.bucket_bits < 0 || config.bucket_bits > 24) throw std::invalid_argument("bucket_bits: must be in [0, 24]");
  std::vector<std::uint32_t> ids(static_cast<std::size_t>(n), 0);
  if (config.bucket_bits == 0) return ids;
  const int columns = bucket_projection_columns(config);
  const std::vector<double> projection = config.function == BucketFunction::quantized_sha256
                                             ? std::vector<double>{}
                                             : bucket_projection(dim, config, round);
  std::vector<double> projected(static_cast<std::size_t>(columns));
  for (int i = 0; i < n; ++i) {
    const double* row = x + static_cast<std::int64_t>(i) * dim;
    if (config.function == BucketFunction::quantized_sha256) {
      std::vector<std::int64_t> grid(static_cast<std::size_t>(dim));
      for (int d = 0; d < dim; ++d) grid[d] = std::llround(row[d] / config.quantization_step);
      ids[i] = sha256_bucket(grid.data(), grid.size() * sizeof(std::int64_t), round, config.bucket_bits);
      continue;
    }
    for (int c = 0; c < columns; ++c) {
      double dot = 0;
      for (int d = 0; d < dim; ++d) dot += row[d] * projection[static_cast<std::size_t>(d) * columns + c];
      projected[c] = dot;
    }
    if (config.function == BucketFunction::lsh) {
      // argmax over [xR, -xR]: index c for +, columns + c for -.
      std::uint32_t best = 0;
      double best_value = -INFINITY;
      for (int c = 0; c < columns; ++c) {
        if (projected[c] > best_value) { best_value = projected[c]; best = static_cast<std::uint32_t>(c); }
        if (-projected[c] > best_value) { best_value = -projected[c]; best = static_cast<std::uint32_t>(columns + c); }
      }
      ids[i] = best;
    } else {
      std::uint32_t code = 0;
      for (int c = 0; c < columns; ++c) code |= (projected[c] >= 0 ? 1u : 0u) << c;
      ids[i] = sha256_bucket(&code, sizeof code, round, config.bucket_bits);
    }
  }
  return ids;
}

ProblemBuckets problem_buckets(const AttentionProblem& p, const BucketConfig& config) {
  ProblemBuckets buckets{p.heads_q, p.heads_kv, {}, {}};
  for (int r = 0; r < config.rounds; ++r) {
    for (int h = 0; h < p.heads_q; ++h) buckets.queries.push_back(bucket_ids(p.q_row(h, 0), p.n_q, p.dim, config, r));
    for (int h = 0; h < p.heads_kv; ++h) buckets.keys.push_back(bucket_ids(p.k_row(h, 0), p.n_k, p.dim, config, r));
  }
  return buckets;
}

void bucket_attention(const AttentionProblem& p, const BucketConfig& config, double* out, double* lse) {
  validate(p);
  if (config.rounds < 1) throw std::invalid_argument("rounds: must be >= 1");
  if (config.dense_heads < 0 || config.dense_heads > p.heads_q) throw std::invalid_argument("dense_heads: must be in [0, heads_q]");
  const ProblemBuckets buckets = problem_buckets(p, config);
  const KeySelector select = [&](int h, int i, std::vector<int>& keys) {
    const int kv = p.kv_head(h);
    const bool hashed = head_is_hashed(config, h, p.heads_q);
    for (int j = 0; j <= p.last_key(i); ++j) {
      if (!hashed) {
        keys.push_back(j);
        continue;
      }
      for (int r = 0; r < config.rounds; ++r) {
        if (buckets.query(r, h)[i] == buckets.key(r, kv)[j]) {
          keys.push_back(j);  // once, however many rounds it collides in
          break;
        }
      }
    }
  };
  if (config.mean_aggregation) {
    average_selected(p, select, out);
  } else {
    attend_selected(p, select, out, lse);
  }
}

}  // namespace hashhop::attn
