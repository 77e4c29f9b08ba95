// CPU references of every attention mechanism: the registry's cases (one test each), the consistency
// harness, edge cases and bad input.
// Run: ctest -R Attention
#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <random>
#include <set>
#include <string>

#include "hashhop/attn/attention_cases.h"
#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/consistency.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/attn/signature_attention.h"

using namespace hashhop::attn;

// GoogleTest prints a parameter by its registry name.
namespace hashhop::attn {
void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }
}  // namespace hashhop::attn

// One test per CPU case of the registry (attention_cases.h), as `hashhop attn-check` runs them.
class RegistryCase : public ::testing::TestWithParam<hashhop::attn::AttentionCase> {};

TEST_P(RegistryCase, MatchesItsExpectation) {
  for (unsigned seed : {0u, 1u, 2u}) {
    const auto r = run_cpu_case(GetParam(), seed);
    EXPECT_TRUE(r.passed()) << r.mechanism << " [" << r.shape << "] vs " << r.expectation << ": max error " << r.max_error
                            << " > " << r.tolerance << " (seed " << seed << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Attention, RegistryCase, ::testing::ValuesIn(attention_cases(kCpuBackend)),
                         [](const ::testing::TestParamInfo<hashhop::attn::AttentionCase>& info) {
                           std::string name = std::to_string(info.index) + "_";
                           for (const char ch : info.param.label) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return name;
                         });

TEST(AttentionCases, TheRegistryIsWellFormed) {
  std::set<std::string> names;
  std::set<Mechanism> cpu_mechanisms;
  for (const auto& c : attention_cases()) {
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate " << c.name;
    EXPECT_NE(c.backends, 0u) << c.name;
    EXPECT_GE(c.shape.heads_q % c.shape.heads_kv, 0);
    EXPECT_EQ(c.shape.heads_q % c.shape.heads_kv, 0) << c.name;
    EXPECT_GT(c.tolerance.lowprec_factor, 0) << c.name;
    if (c.backends & kCpuBackend) cpu_mechanisms.insert(c.mechanism);
  }
  // Every mechanism has float64 cases; the CUDA and Python harnesses have theirs.
  EXPECT_EQ(cpu_mechanisms.size(), 4u);
  EXPECT_GE(attention_cases(kCudaBackend).size(), 20u);
  EXPECT_EQ(attention_cases(kTorchBackend).size(), attention_cases(kCpuBackend).size());
  for (const char* name : {"decode/signature_topk", "decode/index", "prefill/bucket"}) EXPECT_FALSE(benchmark_case(name).sizes.empty()) << name;
  EXPECT_THROW(benchmark_case("decode/nothing"), std::invalid_argument);
  // A case's inputs depend on the harness seed and its name only.
  const auto& first = attention_cases().front();
  EXPECT_EQ(case_seed(first, 1), case_seed(first, 1));
  EXPECT_NE(case_seed(first, 1), case_seed(first, 2));
}

TEST(Attention, EveryConsistencyCasePasses) {
  for (unsigned seed : {0u, 1u, 2u}) {
    const auto results = run_cpu_consistency(seed);
    ASSERT_GT(results.size(), 50u);
    for (const auto& r : results) {
      EXPECT_TRUE(r.passed()) << r.mechanism << " [" << r.shape << "] vs " << r.expectation << ": max error " << r.max_error;
    }
  }
}

TEST(Attention, QueryWithNoKeysGivesZerosAndMinusInfinityLse) {
  std::vector<double> q = {1, 0}, k = {0, 1, 1, 0}, v = {3, 4, 5, 6};
  AttentionProblem p{q.data(), k.data(), v.data(), nullptr, 1, 1, 1, 2, 2, false, 1.0};
  std::vector<double> out(2, 9), lse(1, 0);
  attend_selected(p, [](int, int, std::vector<int>&) {}, out.data(), lse.data());
  EXPECT_EQ(out[0], 0.0);
  EXPECT_EQ(out[1], 0.0);
  EXPECT_TRUE(std::isinf(lse[0]) && lse[0] < 0);
}

TEST(Attention, EmptyBucketsGiveZeroOutput) {
  // Many buckets, one key: most queries find their bucket empty; none may produce NaN.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  std::vector<double> q(64 * 8), k(8), v(8);
  for (auto* x : {&q, &k, &v}) for (auto& value : *x) value = normal(rng);
  AttentionProblem p{q.data(), k.data(), v.data(), nullptr, 1, 1, 64, 1, 8, false, 0.35};
  std::vector<double> out(p.out_size());
  bucket_attention(p, BucketConfig{6, 1, BucketFunction::lsh, 1}, out.data());
  int zero_rows = 0;
  for (int i = 0; i < 64; ++i) {
    bool zero = true;
    for (int d = 0; d < 8; ++d) {
      ASSERT_FALSE(std::isnan(out[i * 8 + d]));
      zero = zero && out[i * 8 + d] == 0.0;
    }
    zero_rows += zero ? 1 : 0;
  }
  EXPECT_GT(zero_rows, 0);
  EXPECT_LT(zero_rows, 64);
}

TEST(Attention, MixedHeadsAreDenseHeadsBesideHashedHeads) {
  // 4 query heads over 2 kv heads, causal; the last 2 dense: those rows must be dense attention's, the first 2
  // the all-hashed config's, bit for bit (the same sums in the same order).
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal;
  const int heads_q = 4, heads_kv = 2, n = 40, dim = 8;
  std::vector<double> q(heads_q * n * dim), k(heads_kv * n * dim), v(heads_kv * n * dim);
  for (auto* x : {&q, &k, &v}) for (auto& value : *x) value = normal(rng);
  AttentionProblem p{q.data(), k.data(), v.data(), nullptr, heads_q, heads_kv, n, n, dim, true, 0.35};
  BucketConfig config{3, 2, BucketFunction::lsh, 4};
  std::vector<double> hashed(p.out_size()), dense(p.out_size()), mixed(p.out_size());
  bucket_attention(p, config, hashed.data());
  dense_attention(p, dense.data());
  config.dense_heads = 2;
  bucket_attention(p, config, mixed.data());
  const std::size_t head = static_cast<std::size_t>(n) * dim;
  for (std::size_t x = 0; x < mixed.size(); ++x) EXPECT_EQ(mixed[x], x < 2 * head ? hashed[x] : dense[x]) << x;
  EXPECT_NE(hashed[3 * head + head / 2], dense[3 * head + head / 2]);  // the heads differ, or the test proves nothing
  config.dense_heads = 5;
  EXPECT_THROW(bucket_attention(p, config, mixed.data()), std::invalid_argument);
}

TEST(Attention, QuantizedHashMakesEqualVectorsMeet) {
  std::vector<double> x = {0.5, -1.0, 0.5, -1.0, 2.0, 2.0};
  const auto ids = bucket_ids(x.data(), 3, 2, BucketConfig{12, 1, BucketFunction::quantized_sha256, 0}, 0);
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_NE(ids[0], ids[2]);  // 1 chance in 4096 of a collision; fixed inputs, so this is deterministic
}

TEST(Attention, PackedSignaturesAndHamming) {
  std::vector<double> logits(70, -1.0);
  logits[0] = 0.0;   // >= 0 is a one bit
  logits[65] = 2.0;
  std::vector<std::uint64_t> words(2);
  pack_signatures(logits.data(), 1, 70, words.data());
  EXPECT_EQ(words[0], 1ULL);
  EXPECT_EQ(words[1], 2ULL);
  const std::vector<std::uint64_t> zero(2, 0);
  EXPECT_EQ(hamming_similarity(words.data(), zero.data(), 70), 68);
}

TEST(Attention, SignatureTopKLargerThanNKeepsEverything) {
  const std::vector<std::uint64_t> keys = {1, 2, 3};
  const std::uint64_t query = 1;
  EXPECT_EQ(select_signature_keys(&query, keys.data(), 2, SignatureConfig{64, 0, 0, 100}), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(select_signature_keys(&query, keys.data(), 2, SignatureConfig{64, 0, 0, 1}), (std::vector<int>{0}));
  EXPECT_EQ(select_signature_keys(&query, keys.data(), 1, SignatureConfig{64, 0, 1, 1}), (std::vector<int>{0, 1}));
  EXPECT_TRUE(select_signature_keys(&query, keys.data(), -1, SignatureConfig{64, 2, 2, 2}).empty());
}

TEST(Attention, CodeTableFindsEveryKeyAndGrows) {
  CodeTable table(2);
  for (int key = 0; key < 1000; ++key) table.insert(static_cast<std::uint64_t>(key % 37) * 0x100000001ULL, key);
  EXPECT_EQ(table.size(), 1000u);
  EXPECT_GE(table.capacity(), 74u);
  std::vector<int> found;
  table.find(5 * 0x100000001ULL, found);
  ASSERT_EQ(found.size(), 27u);  // keys 5, 42, 79, ..., 967 in insertion order
  for (std::size_t n = 0; n < found.size(); ++n) EXPECT_EQ(found[n], 5 + 37 * static_cast<int>(n));
  found.clear();
  table.find(12345, found);
  EXPECT_TRUE(found.empty());
}

TEST(Attention, BadShapesAreClearErrors) {
  std::vector<double> x(64, 0.5);
  AttentionProblem p{x.data(), x.data(), x.data(), nullptr, 3, 2, 1, 4, 4, false, 1.0};
  std::vector<double> out(64);
  try {
    dense_attention(p, out.data());
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "heads_q: 3 is not a multiple of heads_kv 2");
  }
  p.heads_q = 2;
  p.n_q = 5;
  p.causal = true;
  EXPECT_THROW(dense_attention(p, out.data()), std::invalid_argument);
  EXPECT_THROW(SignatureIndex(IndexConfig{65, 0}), std::invalid_argument);
  EXPECT_THROW(bucket_ids(x.data(), 1, 4, BucketConfig{25}, 0), std::invalid_argument);
}
