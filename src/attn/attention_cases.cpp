// The registry of attention cases (attention_cases.h): small shapes for the float64 harness and the
// Python ops tests, large ones for the CUDA kernels, the attn-bench tables. Test: ctest -R AttentionCases
#include "hashhop/attn/attention_cases.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <tuple>
#include <stdexcept>

namespace hashhop::attn {
namespace {

AttentionCase make_case(std::string label, Mechanism mechanism, const CaseShape& shape, const CaseOptions& options,
                        Expectation expectation, unsigned backends, Tolerance tolerance = {}) {
  AttentionCase c;
  c.label = std::move(label);
  c.mechanism = mechanism;
  c.shape = shape;
  c.options = options;
  c.expectation = expectation;
  c.backends = backends;
  c.tolerance = tolerance;
  c.name = c.label + " [" + c.shape_name() + "]";
  return c;
}

// Small shapes, every mechanism, float64 (attn-check, tests/attn) and the ops from Python: length 1,
// grouped heads, causal, decode over a longer cache, identical keys.
void add_small_cases(std::vector<AttentionCase>& cases) {
  const CaseShape shapes[] = {
      {2, 1, 5, 9, 4, true},  {4, 2, 1, 1, 8, false},  {2, 2, 16, 16, 16, false},
      {4, 4, 1, 64, 32, true}, {2, 1, 8, 8, 8, true, true},
  };
  constexpr unsigned kSmall = kCpuBackend | kTorchBackend;
  for (const CaseShape& s : shapes) {
    cases.push_back(make_case("dense", Mechanism::dense, s, {}, Expectation::rule, kSmall));
    for (auto [name, fn] : {std::pair{"bucket/lsh", BucketFunction::lsh}, std::pair{"bucket/lsh+sha256", BucketFunction::lsh_sha256},
                            std::pair{"bucket/quant+sha256", BucketFunction::quantized_sha256}}) {
      CaseOptions one_bucket;
      one_bucket.bucket_bits = 0;
      one_bucket.bucket_function = fn;
      one_bucket.seed = 7;
      cases.push_back(make_case(std::string(name) + " b=0", Mechanism::bucket, s, one_bucket, Expectation::dense, kSmall));
      CaseOptions buckets = one_bucket;
      buckets.bucket_bits = 3;
      buckets.rounds = 3;
      buckets.seed = 11;
      cases.push_back(make_case(std::string(name) + " b=3 r=3", Mechanism::bucket, s, buckets, Expectation::rule, kSmall));
    }
    {  // mixed heads: about half the query heads dense, in whole groups of a kv head (as the ops need); where one
       // group holds every head ({2, 1, ...}) that is all of them, the edge where no head hashes
      const int group = s.heads_q / s.heads_kv;
      CaseOptions mixed;
      mixed.bucket_bits = 3;
      mixed.rounds = 2;
      mixed.seed = 13;
      mixed.dense_heads = std::max(group, s.heads_q / 2 / group * group);
      cases.push_back(make_case("bucket/lsh b=3 r=2 dense_heads=" + std::to_string(mixed.dense_heads), Mechanism::bucket, s, mixed,
                                Expectation::rule, kSmall));
    }
    for (int bits : {32, 64, 128}) {
      const std::string label = "signature/" + std::to_string(bits);
      CaseOptions all;
      all.bits = bits;
      all.top_k = s.n_k;  // k >= n
      cases.push_back(make_case(label + " k=n", Mechanism::signature_topk, s, all, Expectation::dense, kSmall));
      CaseOptions fraction;
      fraction.bits = bits;
      fraction.sinks = 1;
      fraction.window = 1;
      fraction.top_fraction = 1.0;
      cases.push_back(make_case(label + " frac=1", Mechanism::signature_topk, s, fraction, Expectation::dense, kSmall));
      CaseOptions top2;
      top2.bits = bits;
      top2.sinks = 1;
      top2.window = 2;
      top2.top_k = 2;
      cases.push_back(make_case(label + " k=2", Mechanism::signature_topk, s, top2, Expectation::rule, kSmall));
    }
    CaseOptions same;
    same.signatures = SignatureDraw::identical;
    cases.push_back(make_case("index/exact same-sig", Mechanism::index, s, same, Expectation::dense, kSmall));
    CaseOptions exact;
    exact.signatures = SignatureDraw::few_distinct;
    exact.distinct_bits = 2;  // 2 bits of entropy: exact matches happen
    cases.push_back(make_case("index/exact", Mechanism::index, s, exact, Expectation::rule, kSmall));
    CaseOptions lsh;
    lsh.bits = 16;
    lsh.tables = 4;
    lsh.bits_per_table = 2;
    lsh.seed = 3;
    lsh.signatures = SignatureDraw::few_distinct;
    lsh.distinct_bits = 16;
    cases.push_back(make_case("index/lsh L=4 K=2", Mechanism::index, s, lsh, Expectation::rule, kSmall));
  }
}

// The CUDA kernels at sizes that exercise their tiling, chunking and tie rules (bf16 inputs).
void add_cuda_cases(std::vector<AttentionCase>& cases) {
  struct Signature {
    int heads_q, heads_kv, n_keys, dim, bits, sinks, window, top_k;
    bool few_distinct;  // 3-bit signatures: masses of ties exercise the deterministic tie rule
  };
  const Signature signatures[] = {
      {1, 1, 1, 64, 64, 0, 0, 1, false},        {2, 1, 100, 128, 32, 2, 3, 10, false},
      {8, 8, 5000, 128, 64, 4, 16, 160, false}, {8, 2, 70000, 128, 128, 4, 64, 2000, false},
      {4, 4, 9000, 64, 64, 1, 1, 300, true},    {2, 2, 300, 128, 64, 0, 0, 1000, false},  // k >= n
  };
  for (const auto& c : signatures) {
    CaseOptions o;
    o.bits = c.bits;
    o.sinks = c.sinks;
    o.window = c.window;
    o.top_k = c.top_k;
    if (c.few_distinct) {
      o.signatures = SignatureDraw::few_distinct;
      o.distinct_bits = 3;
    }
    cases.push_back(make_case("signature top-k (cuda) b" + std::to_string(c.bits) + " top" + std::to_string(c.top_k) + (c.few_distinct ? " ties" : ""),
                              Mechanism::signature_topk, {c.heads_q, c.heads_kv, 1, c.n_keys, c.dim, false}, o, Expectation::rule, kCudaBackend));
  }
  struct Bucket {
    int heads_q, heads_kv, n_q, n_k, dim, bucket_bits, rounds;
    bool causal, identical_keys;
  };
  const Bucket buckets[] = {
      {1, 1, 1, 1, 64, 2, 1, true, false},          // length 1
      {2, 2, 517, 517, 128, 0, 1, true, false},     // one bucket = dense
      {4, 2, 300, 300, 64, 3, 1, true, false},      // grouped heads
      {4, 2, 1000, 1000, 128, 4, 3, true, false},   // three rounds, each key once
      {8, 8, 2048, 2048, 128, 6, 2, false, false},  // not causal
      {2, 1, 100, 700, 128, 3, 2, true, false},     // chunked prefill: queries at the end of the keys
      {2, 2, 200, 200, 64, 3, 1, true, true},       // identical keys: one bucket holds them all
      {4, 4, 1, 5000, 128, 8, 2, true, false},      // decode, mostly empty buckets
  };
  for (const auto& c : buckets) {
    CaseOptions o;
    o.bucket_bits = c.bucket_bits;
    o.rounds = c.rounds;
    cases.push_back(make_case("bucket (cuda) b" + std::to_string(c.bucket_bits) + " r" + std::to_string(c.rounds), Mechanism::bucket,
                              {c.heads_q, c.heads_kv, c.n_q, c.n_k, c.dim, c.causal, c.identical_keys}, o,
                              c.bucket_bits == 0 ? Expectation::dense : Expectation::rule, kCudaBackend));
  }
  for (auto [n, dim, bits] : {std::tuple{4096, 128, 6}, std::tuple{1000, 64, 10}, std::tuple{300, 128, 1}}) {
    CaseOptions o;
    o.bucket_bits = bits;
    Tolerance share;  // float32 projections can flip a bucket only at a near-tie: 1 row in 1000
    share.float64_abs = 1e-3;
    cases.push_back(make_case("lsh bucket ids (cuda) b" + std::to_string(bits), Mechanism::bucket, {1, 1, n, n, dim, false}, o,
                              Expectation::bucket_ids, kCudaBackend, share));
  }
  struct Index {
    int heads_q, heads_kv, n_q, n_k, bits, tables, bits_per_table;
    bool causal;
  };
  const Index indexes[] = {
      {4, 2, 1, 5000, 64, 0, 0, false},   // exact, decode
      {2, 2, 64, 3000, 20, 0, 0, true},   // exact on 20 bits, causal prefill
      {4, 4, 1, 4000, 64, 4, 12, false},  // LSH 4 tables x 12 bits, decode
      {2, 1, 32, 2000, 64, 6, 8, true},   // LSH, causal
  };
  for (const auto& c : indexes) {
    CaseOptions o;
    o.bits = c.bits;
    o.tables = c.tables;
    o.bits_per_table = c.bits_per_table;
    o.signatures = SignatureDraw::pool;
    const std::string label = c.tables ? "index lsh (cuda) L" + std::to_string(c.tables) + "xK" + std::to_string(c.bits_per_table)
                                       : "index exact (cuda) b" + std::to_string(c.bits);
    cases.push_back(make_case(label, Mechanism::index, {c.heads_q, c.heads_kv, c.n_q, c.n_k, 128, c.causal}, o, Expectation::rule, kCudaBackend));
  }
}

std::vector<AttentionCase> build_cases() {
  std::vector<AttentionCase> cases;
  add_small_cases(cases);
  add_cuda_cases(cases);
  std::set<std::string> names;
  for (const auto& c : cases)
    if (!names.insert(c.name).second) throw std::logic_error("attention_cases: duplicate case " + c.name);
  return cases;
}

std::vector<BenchmarkCase> build_benchmarks() {
  const std::vector<std::int64_t> decode_sizes = {1 << 16, 1 << 20, 1 << 22, 1 << 24};
  std::vector<BenchmarkCase> out;
  BenchmarkCase topk;
  topk.name = "decode/signature_topk";
  topk.mechanism = Mechanism::signature_topk;
  topk.sizes = decode_sizes;
  topk.options.bits = 64;
  topk.top_fraction_of_keys = 1.0 / 32;
  out.push_back(topk);
  BenchmarkCase index;
  index.name = "decode/index";
  index.mechanism = Mechanism::index;
  index.sizes = decode_sizes;
  index.options.bits = 64;  // exact: the same SimHash words as the top-k table
  index.max_candidates = 256;
  out.push_back(index);
  BenchmarkCase bucket;
  bucket.name = "prefill/bucket";
  bucket.mechanism = Mechanism::bucket;
  bucket.sizes = {1 << 15, 1 << 17, 1 << 19, 1 << 20};
  bucket.bucket_size = 1024;
  bucket.rounds = {1, 2};
  bucket.dense_heads = {2, 4};  // of 8: 75% and 50% of the heads hashed (1 round), the rest through SDPA
  out.push_back(bucket);
  return out;
}

}  // namespace

const char* mechanism_name(Mechanism mechanism) {
  switch (mechanism) {
    case Mechanism::dense: return "dense";
    case Mechanism::bucket: return "bucket";
    case Mechanism::signature_topk: return "signature_topk";
    case Mechanism::index: return "index";
  }
  return "?";
}

const char* expectation_name(Expectation expectation) {
  switch (expectation) {
    case Expectation::dense: return "dense";
    case Expectation::rule: return "rule";
    case Expectation::bucket_ids: return "bucket_ids";
  }
  return "?";
}

std::string AttentionCase::shape_name() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "hq%d hkv%d q%d k%d d%d%s%s", shape.heads_q, shape.heads_kv, shape.n_q, shape.n_k, shape.dim,
                shape.causal ? " causal" : "", shape.identical_keys ? " same-keys" : "");
  return buf;
}

const std::vector<AttentionCase>& attention_cases() {
  static const std::vector<AttentionCase> cases = build_cases();
  return cases;
}

std::vector<AttentionCase> attention_cases(Backend backend) {
  std::vector<AttentionCase> out;
  for (const auto& c : attention_cases())
    if (c.backends & backend) out.push_back(c);
  return out;
}

std::uint64_t case_seed(const AttentionCase& c, unsigned seed) {
  std::uint64_t h = 1469598103934665603ULL ^ seed;
  for (const unsigned char ch : c.name) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

const std::vector<BenchmarkCase>& benchmark_cases() {
  static const std::vector<BenchmarkCase> cases = build_benchmarks();
  return cases;
}

const BenchmarkCase& benchmark_case(const std::string& name) {
  for (const auto& c : benchmark_cases())
    if (c.name == name) return c;
  throw std::invalid_argument("benchmark case '" + name + "' is not in the registry (attention_cases.cpp)");
}

}  // namespace hashhop::attn
