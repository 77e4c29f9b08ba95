// The CPU consistency harness (see consistency.h): every CPU case of the registry (attention_cases.h)
// against dense attention or a brute-force masked softmax of its rule. Test: ctest -R Attention
#include "hashhop/attn/consistency.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>

#include "hashhop/attn/attention_cases.h"
#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/attn/signature_attention.h"

namespace hashhop::attn {
namespace {

struct Inputs {
  std::vector<double> q, k, v, bias;
  AttentionProblem problem;
};

Inputs make_inputs(const CaseShape& s, std::mt19937_64& rng) {
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

// Signatures of `rows` rows as the case draws them (index cases: one 64-bit word per row).
std::vector<std::uint64_t> draw_signatures(std::size_t rows, const CaseOptions& o, std::mt19937_64& rng) {
  const int words = signature_words(o.bits);
  std::vector<std::uint64_t> s(rows * static_cast<std::size_t>(words));
  for (auto& w : s) {
    switch (o.signatures) {
      case SignatureDraw::identical: w = 42; break;
      case SignatureDraw::few_distinct: w = rng() & ((1ULL << o.distinct_bits) - 1); break;
      default: w = rng();
    }
  }
  if (o.bits % 64 != 0) {
    for (std::size_t i = static_cast<std::size_t>(words) - 1; i < s.size(); i += static_cast<std::size_t>(words)) s[i] &= (1ULL << (o.bits % 64)) - 1;
  }
  return s;
}

}  // namespace

ConsistencyResult run_cpu_case(const AttentionCase& c, unsigned seed) {
  std::mt19937_64 rng(case_seed(c, seed));
  const CaseShape& s = c.shape;
  const CaseOptions& o = c.options;
  Inputs in = make_inputs(s, rng);
  const AttentionProblem& p = in.problem;
  std::vector<double> out(p.out_size()), expected;
  const auto all_keys = [](int, int, int) { return true; };
  switch (c.mechanism) {
    case Mechanism::dense: {
      dense_attention(p, out.data());
      expected = masked_dense(p, all_keys);
      break;
    }
    case Mechanism::bucket: {
      BucketConfig config{o.bucket_bits, o.rounds, o.bucket_function, o.seed};
      config.dense_heads = o.dense_heads;
      bucket_attention(p, config, out.data());
      const ProblemBuckets buckets = problem_buckets(p, config);
      expected = masked_dense(p, [&](int h, int i, int j) {
        if (h >= p.heads_q - o.dense_heads) return true;  // a dense head keeps every key
        for (int r = 0; r < config.rounds; ++r) {
          if (buckets.query(r, h)[i] == buckets.key(r, p.kv_head(h))[j]) return true;
        }
        return false;
      });
      break;
    }
    case Mechanism::signature_topk: {
      const auto qs = draw_signatures(static_cast<std::size_t>(p.heads_q) * p.n_q, o, rng);
      const auto ks = draw_signatures(static_cast<std::size_t>(p.heads_kv) * p.n_k, o, rng);
      const SignatureConfig config{o.bits, o.sinks, o.window, o.top_k, o.top_fraction};
      signature_attention(p, qs.data(), ks.data(), config, out.data());
      const int words = signature_words(o.bits);
      expected = masked_dense(p, [&](int h, int i, int j) {
        // Brute force: j is kept if sink/window, or fewer than k other candidates beat it.
        const int last = p.last_key(i);
        if (j < config.sinks || j > last - config.window) return true;
        const int k = config.top_k > 0 ? config.top_k : static_cast<int>(std::ceil(config.top_fraction * (last + 1)));
        const auto sim = [&](int key) {
          return hamming_similarity(qs.data() + (static_cast<std::size_t>(h) * p.n_q + i) * words,
                                    ks.data() + (static_cast<std::size_t>(p.kv_head(h)) * p.n_k + key) * words, config.bits);
        };
        int better = 0;
        for (int other = config.sinks; other <= last - config.window; ++other) {
          if (other != j && (sim(other) > sim(j) || (sim(other) == sim(j) && other < j))) ++better;
        }
        return better < k;
      });
      break;
    }
    case Mechanism::index: {
      if (o.bits > 64) throw std::invalid_argument(c.name + ": the index keys on at most 64 bits");
      const auto qs = draw_signatures(static_cast<std::size_t>(p.heads_q) * p.n_q, o, rng);
      const auto ks = draw_signatures(static_cast<std::size_t>(p.heads_kv) * p.n_k, o, rng);
      const IndexConfig config{o.bits, o.tables, o.bits_per_table, o.seed};
      index_attention(p, qs.data(), ks.data(), config, out.data());
      expected = masked_dense(p, [&](int h, int i, int j) {
        const std::uint64_t q_sig = qs[static_cast<std::size_t>(h) * p.n_q + i], k_sig = ks[static_cast<std::size_t>(p.kv_head(h)) * p.n_k + j];
        if (config.tables == 0) return q_sig == k_sig;
        SignatureIndex single(config);  // any table's sampled bits equal
        single.insert(k_sig, 0);
        return !single.candidates(q_sig).empty();
      });
      break;
    }
  }
  if (c.expectation == Expectation::dense) {
    std::vector<double> dense(p.out_size());
    dense_attention(p, dense.data());
    // The mechanism equals dense here; its own rule must agree too.
    expected.swap(dense);
  } else if (c.expectation != Expectation::rule) {
    throw std::invalid_argument(c.name + ": the CPU harness compares with dense or the mechanism's rule, not " +
                                expectation_name(c.expectation));
  }
  const std::string expectation = c.expectation == Expectation::dense ? "dense"
                                  : c.mechanism == Mechanism::dense   ? "masked softmax"
                                                                      : std::string("brute-force ") + mechanism_name(c.mechanism) + " rule";
  return {c.label, c.shape_name(), expectation, max_abs_diff(out, expected), c.tolerance.float64_abs};
}

std::vector<ConsistencyResult> run_cpu_consistency(unsigned seed) {
  std::vector<ConsistencyResult> results;
  for (const AttentionCase& c : attention_cases(kCpuBackend)) results.push_back(run_cpu_case(c, seed));
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
