// The named retrieval mechanisms (attn/retrieval.h) on LibTorch tensors: dense against a hand-written
// masked softmax, each selecting mechanism at its dense limit and at its selecting rule. Run: ctest -R Retrieval
#include <gtest/gtest.h>

#include <limits>

#include "hashhop/attn/retrieval.h"

namespace attn = hashhop::attn;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// B = 2 rows of Q = 3 queries over one segment of N = 10 keys, values stored per key (rows = keys).
struct Problem {
  torch::Tensor q, log_scale;
  attn::RetrievalSegment segment;
};

Problem make_problem(std::int64_t n = 10, std::int64_t dim = 16) {
  torch::manual_seed(7);
  Problem p;
  p.q = torch::randn({2, 3, dim});
  p.log_scale = torch::full({1}, std::log(0.5));
  p.segment.keys = torch::randn({2, n, dim});
  p.segment.bias = torch::randn({2, 3, n});
  p.segment.bias.index_put_({0, 0, torch::indexing::Slice(n - 3)}, -kInf);  // a query that sees fewer keys
  p.segment.value_rows = torch::arange(n).view({1, n}).expand({2, n});
  p.segment.values = torch::randn({2, n, 5});
  return p;
}

torch::Tensor masked_softmax_read(const Problem& p, const torch::Tensor& bias) {
  const auto scores = torch::matmul(p.q, p.segment.keys.transpose(1, 2)) * p.log_scale.exp() + bias;
  return torch::matmul(torch::softmax(scores, -1), p.segment.values);
}

}  // namespace

TEST(Retrieval, DenseIsTheMaskedSoftmax) {
  const auto p = make_problem();
  const auto dense = attn::make_retriever("dense");
  EXPECT_EQ(dense->name(), "dense");
  EXPECT_TRUE(torch::allclose(dense->read(p.q, p.log_scale, {p.segment}), masked_softmax_read(p, p.segment.bias), 1e-5, 1e-6));
}

TEST(Retrieval, ValueRowsAddWeightsOfKeysSharingARow) {
  auto p = make_problem();
  // Keys 2k and 2k+1 share row k: the read equals the per-key read with each value duplicated.
  auto shared = p.segment;
  shared.value_rows = torch::div(torch::arange(10), 2, "floor").view({1, 10}).expand({2, 10});
  shared.values = p.segment.values.narrow(1, 0, 5);
  const auto per_key_values = shared.values.repeat_interleave(2, 1);
  Problem expanded = p;
  expanded.segment.values = per_key_values;
  EXPECT_TRUE(torch::allclose(attn::make_retriever("dense")->read(p.q, p.log_scale, {shared}),
                              masked_softmax_read(expanded, p.segment.bias), 1e-5, 1e-6));
}

TEST(Retrieval, EachMechanismAtItsDenseLimitIsDense) {
  const auto p = make_problem();
  const auto want = attn::make_retriever("dense")->read(p.q, p.log_scale, {p.segment});
  attn::RetrieverOptions all_keys;
  all_keys.top_k = 10;       // k >= n
  all_keys.bucket_bits = 0;  // one bucket
  for (const char* name : {"signature_topk", "bucket"})
    EXPECT_TRUE(torch::equal(attn::make_retriever(name, all_keys)->read(p.q, p.log_scale, {p.segment}), want)) << name;
  // Every query equal to every key: one code for all.
  auto same = p;
  same.segment.keys = torch::ones_like(p.segment.keys);
  same.q = torch::ones_like(p.q);
  EXPECT_TRUE(torch::equal(attn::make_retriever("index")->read(same.q, same.log_scale, {same.segment}),
                           attn::make_retriever("dense")->read(same.q, same.log_scale, {same.segment})));
}

TEST(Retrieval, SelectingMechanismsKeepWhatTheirRuleKeeps) {
  const auto p = make_problem(40, 16);
  attn::RetrieverOptions options;
  options.top_k = 3;
  options.bits = 16;
  options.bucket_bits = 3;
  const auto visible = (p.segment.bias > -kInf);
  const auto topk = attn::make_retriever("signature_topk", options)->select(p.q, {p.segment})[0];
  EXPECT_TRUE(torch::equal((topk > -kInf).sum(-1), torch::full({2, 3}, 3, torch::kLong)));
  EXPECT_TRUE(torch::equal((topk > -kInf) & visible, topk > -kInf));  // never reads an invisible key
  const auto bucket = attn::make_retriever("bucket", options)->select(p.q, {p.segment})[0];
  EXPECT_LT((bucket > -kInf).sum().item<std::int64_t>(), visible.sum().item<std::int64_t>());
  // A query equal to key 5 finds it in the index (its code is the key's), and the read is that key's value
  // where no other key shares the code.
  auto exact = p;
  exact.q = p.segment.keys.narrow(1, 5, 1).expand({2, 3, 16}).clone();
  exact.segment.bias = torch::zeros({2, 3, 40});
  options.bits = 64;
  const auto index = attn::make_retriever("index", options)->select(exact.q, {exact.segment})[0];
  EXPECT_TRUE(torch::equal(index.narrow(2, 5, 1), torch::zeros({2, 3, 1})));
  EXPECT_EQ((index > -kInf).sum().item<std::int64_t>(), 6);
  const auto read = attn::make_retriever("index", options)->read(exact.q, exact.log_scale, {exact.segment});
  EXPECT_TRUE(torch::allclose(read, exact.segment.values.narrow(1, 5, 1).expand({2, 3, 5})));
}

TEST(Retrieval, UnknownNamesAreRefusedNamingTheChoices) {
  EXPECT_EQ(attn::retriever_names(), (std::vector<std::string>{"dense", "signature_topk", "bucket", "index"}));
  try {
    attn::make_retriever("sparse");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dense, signature_topk, bucket or index"), std::string::npos);
  }
}
