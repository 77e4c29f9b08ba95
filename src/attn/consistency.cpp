// The CPU consistency harness (see consistency.h): every mechanism against dense attention, or against
// a brute-force masked softmax where the mechanism is meant to differ from dense.
#include "hashhop/attn/consistency.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>

#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/attn/signature_attention.h"

namespace hashhop::attn {
namespace {

// Tolerance for float64 paths that compute the same sums in a different order.
constexpr double kFloat64Tolerance = 1e-12;

struct Shape {
  int heads_q, heads_kv, n_q, n_k, dim;
  bool causal;
  bool identical_keys = false;
  std::string name() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "hq%d hkv%d q%d k%d d%d%s%s", heads_q, heads_kv, n_q, n_k, dim,
                  causal ? " causal" : "", identical_keys ? " same-keys" : "");
    return buf;
  }
};

struct Inputs {
  std::vector<double> q, k, v, bias;
  AttentionProblem problem;
};

Inputs make_inputs(const Shape& s, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  Inputs in;
  auto fill = [&](std::vector<double>& x, std::size_t n) {
    x.resize(n);
    for (auto& value : x) value = normal(rng);
  };
  fill(in.q, static_cast<std::size_t>(s.heads_q) * s.n_q * s.dim);
  fill(in.k, static_cast<std::size_t>(s.heads_kv) * s.n_k * s.dim);
  fill(in.v, static_cast<std::size_t>(s.heads_kv) * s.n_k * s.dim);
  fill(in.bias, static_cast<std::size_t>(s.n_k));
  if (s.identical_keys) {
    for (std::size_t i = 0; i < in.k.size(); ++i) in.k[i] = in.k[i % static_cast<std::size_t>(s.dim)];
  }
  in.problem = AttentionProblem{in.q.data(), in.k.data(), in.v.data(), in.bias.data(), s.heads_q, s.heads_kv,
                                s.n_q, s.n_k, s.dim, s.causal, 1.0 / std::sqrt(static_cast<double>(s.dim))};
  return in;
}

// Independent of attend_selected: full score matrix, -inf where the mask says no.
std::vector<double> masked_dense(const AttentionProblem& p, const std::function<bool(int, int, int)>& allowed) {
  std::vector<double> out(p.out_size(), 0.0);
  for (int h = 0; h < p.heads_q; ++h) {
    for (int i = 0; i < p.n_q; ++i) {
      std::vector<double> scores(static_cast<std::size_t>(p.n_k), -std::numeric_limits<double>::infinity());
      double max_score = -std::numeric_limits<double>::infinity();
      for (int j = 0; j < p.n_k; ++j) {
        if (j > p.last_key(i) || !allowed(h, i, j)) continue;
        double dot = 0;
        for (int d = 0; d < p.dim; ++d) dot += p.q_row(h, i)[d] * p.k_row(p.kv_head(h), j)[d];
        scores[j] = dot * p.scale + p.key_bias[j];
        max_score = std::max(max_score, scores[j]);
      }
      if (std::isinf(max_score)) continue;
      double sum = 0;
      for (int j = 0; j < p.n_k; ++j) sum += std::exp(scores[j] - max_score);
      double* o = out.data() + (static_cast<std::size_t>(h) * p.n_q + i) * p.dim;
      for (int j = 0; j < p.n_k; ++j) {
        const double w = std::exp(scores[j] - max_score) / sum;
        for (int d = 0; d < p.dim; ++d) o[d] += w * p.v_row(p.kv_head(h), j)[d];
      }
    }
  }
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

std::vector<std::uint64_t> random_signatures(std::size_t n, int bits, std::mt19937_64& rng) {
  std::vector<std::uint64_t> s(n * static_cast<std::size_t>(signature_words(bits)));
  for (auto& w : s) w = rng();
  if (bits % 64 != 0) {
    for (std::size_t i = signature_words(bits) - 1; i < s.size(); i += signature_words(bits)) s[i] &= (1ULL << (bits % 64)) - 1;
  }
  return s;
}

}  // namespace

std::vector<ConsistencyResult> run_cpu_consistency(unsigned seed) {
  std::mt19937_64 rng(seed);
  const std::vector<Shape> shapes = {
      {2, 1, 5, 9, 4, true},  {4, 2, 1, 1, 8, false},  {2, 2, 16, 16, 16, false},
      {4, 4, 1, 64, 32, true}, {2, 1, 8, 8, 8, true, true},
  };
  std::vector<ConsistencyResult> results;
  auto add = [&](const std::string& mechanism, const Shape& s, const std::string& expectation, double error) {
    results.push_back({mechanism, s.name(), expectation, error, kFloat64Tolerance});
  };
  for (const Shape& s : shapes) {
    Inputs in = make_inputs(s, rng);
    const AttentionProblem& p = in.problem;
    std::vector<double> dense(p.out_size()), out(p.out_size());
    dense_attention(p, dense.data());
    add("dense", s, "masked softmax", max_abs_diff(dense, masked_dense(p, [](int, int, int) { return true; })));

    for (auto [name, fn] : {std::pair{"bucket/lsh", BucketFunction::lsh}, std::pair{"bucket/lsh+sha256", BucketFunction::lsh_sha256},
                            std::pair{"bucket/quant+sha256", BucketFunction::quantized_sha256}}) {
      BucketConfig one_bucket{0, 1, fn, 7};
      bucket_attention(p, one_bucket, out.data());
      add(std::string(name) + " b=0", s, "dense", max_abs_diff(out, dense));
      BucketConfig config{3, 3, fn, 11};
      bucket_attention(p, config, out.data());
      const ProblemBuckets buckets = problem_buckets(p, config);
      const auto expected = masked_dense(p, [&](int h, int i, int j) {
        for (int r = 0; r < config.rounds; ++r) {
          if (buckets.query(r, h)[i] == buckets.key(r, p.kv_head(h))[j]) return true;
        }
        return false;
      });
      add(std::string(name) + " b=3 r=3", s, "union of buckets", max_abs_diff(out, expected));
    }

    for (int bits : {32, 64, 128}) {
      const auto qs = random_signatures(static_cast<std::size_t>(p.heads_q) * p.n_q, bits, rng);
      const auto ks = random_signatures(static_cast<std::size_t>(p.heads_kv) * p.n_k, bits, rng);
      signature_attention(p, qs.data(), ks.data(), SignatureConfig{bits, 0, 0, p.n_k}, out.data());
      add("signature/" + std::to_string(bits) + " k=n", s, "dense", max_abs_diff(out, dense));
      signature_attention(p, qs.data(), ks.data(), SignatureConfig{bits, 1, 1, 0, 1.0}, out.data());
      add("signature/" + std::to_string(bits) + " frac=1", s, "dense", max_abs_diff(out, dense));
      const SignatureConfig top2{bits, 1, 2, 2};
      signature_attention(p, qs.data(), ks.data(), top2, out.data());
      const int words = signature_words(bits);
      const auto expected = masked_dense(p, [&](int h, int i, int j) {
        // Brute force: j is kept if sink/window, or fewer than k other candidates beat it.
        const int last = p.last_key(i);
        if (j < top2.sinks || j > last - top2.window) return true;
        const auto sim = [&](int key) {
          return hamming_similarity(qs.data() + (static_cast<std::size_t>(h) * p.n_q + i) * words,
                                    ks.data() + (static_cast<std::size_t>(p.kv_head(h)) * p.n_k + key) * words, bits);
        };
        int better = 0;
        for (int other = top2.sinks; other <= last - top2.window; ++other) {
          if (other != j && (sim(other) > sim(j) || (sim(other) == sim(j) && other < j))) ++better;
        }
        return better < top2.top_k;
      });
      add("signature/" + std::to_string(bits) + " k=2", s, "brute-force top-k", max_abs_diff(out, expected));
    }

    {
      const auto qs = random_signatures(static_cast<std::size_t>(p.heads_q) * p.n_q, 64, rng);
      std::vector<std::uint64_t> ks(static_cast<std::size_t>(p.heads_kv) * p.n_k, 42);
      std::vector<std::uint64_t> qsame(qs.size(), 42);
      index_attention(p, qsame.data(), ks.data(), IndexConfig{64, 0}, out.data());
      add("index/exact same-sig", s, "dense", max_abs_diff(out, dense));
      // Few distinct signatures so exact matches happen: 2 bits of entropy.
      std::vector<std::uint64_t> ksmall(ks.size()), qsmall(qs.size());
      for (auto& w : ksmall) w = rng() & 3;
      for (auto& w : qsmall) w = rng() & 3;
      index_attention(p, qsmall.data(), ksmall.data(), IndexConfig{64, 0}, out.data());
      add("index/exact", s, "keys with equal signature", max_abs_diff(out, masked_dense(p, [&](int h, int i, int j) {
        return qsmall[static_cast<std::size_t>(h) * p.n_q + i] == ksmall[static_cast<std::size_t>(p.kv_head(h)) * p.n_k + j];
      })));
      const IndexConfig lsh{16, 4, 2, 3};
      for (auto& w : ksmall) w = rng() & 0xffff;
      for (auto& w : qsmall) w = rng() & 0xffff;
      index_attention(p, qsmall.data(), ksmall.data(), lsh, out.data());
      add("index/lsh L=4 K=2", s, "any table code equal", max_abs_diff(out, masked_dense(p, [&](int h, int i, int j) {
        SignatureIndex single(lsh);
        single.insert(ksmall[static_cast<std::size_t>(p.kv_head(h)) * p.n_k + j], 0);
        return !single.candidates(qsmall[static_cast<std::size_t>(h) * p.n_q + i]).empty();
      })));
    }
  }
  return results;
}

std::string format_consistency_table(const std::vector<ConsistencyResult>& results) {
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-28s %-34s %-26s %10s %9s %s\n", "mechanism", "shape", "compared with", "max error", "tolerance", "result");
  out += buf;
  for (const auto& r : results) {
    std::snprintf(buf, sizeof buf, "%-28s %-34s %-26s %10.2e %9.0e %s\n", r.mechanism.c_str(), r.shape.c_str(),
                  r.expectation.c_str(), r.max_error, r.tolerance, r.passed() ? "PASS" : "FAIL");
    out += buf;
  }
  return out;
}

}  // namespace hashhop::attn
