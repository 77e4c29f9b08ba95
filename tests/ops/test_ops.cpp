// torch.ops.hashhop.*: each op against its float64 CPU reference, gradients by central finite
// differences in float64, the straight-through sign, dispatcher registration and argument errors.
// Run: build/tests/test_ops (ctest runs it)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "hashhop/attn/attention_problem.h"
#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/attn/signature_attention.h"
#include "hashhop/ops/attention_grads.h"
#include "hashhop/ops/attention_ops.h"

namespace hashhop::ops {
namespace {

const auto f64 = torch::dtype(torch::kFloat64);

struct Inputs {
  torch::Tensor q, k, v, bias;
};

Inputs random_inputs(int64_t heads_q, int64_t heads_kv, int64_t n_q, int64_t n_k, int64_t dim, uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({heads_q, n_q, dim}, f64), torch::randn({heads_kv, n_k, dim}, f64),
          torch::randn({heads_kv, n_k, dim}, f64), torch::randn({n_k}, f64)};
}

attn::AttentionProblem problem_of(const Inputs& in, bool causal, double scale, bool bias) {
  attn::AttentionProblem p;
  p.q = in.q.data_ptr<double>();
  p.k = in.k.data_ptr<double>();
  p.v = in.v.data_ptr<double>();
  p.key_bias = bias ? in.bias.data_ptr<double>() : nullptr;
  p.heads_q = static_cast<int>(in.q.size(0));
  p.heads_kv = static_cast<int>(in.k.size(0));
  p.n_q = static_cast<int>(in.q.size(1));
  p.n_k = static_cast<int>(in.k.size(1));
  p.dim = static_cast<int>(in.q.size(2));
  p.causal = causal;
  p.scale = scale;
  return p;
}

double max_error(const torch::Tensor& a, const std::vector<double>& b) {
  return (a.contiguous().view({-1}) - torch::tensor(b, f64)).abs().max().item<double>();
}

// Tolerance 1e-12: both sides are float64 and sum in a similar order.
TEST(Ops, DenseAttentionEqualsTheReference) {
  for (const bool causal : {false, true})
    for (const bool bias : {false, true}) {
      const auto in = random_inputs(4, 2, 5, 9, 8, 1 + causal + 2 * bias);
      std::vector<double> expected(4 * 5 * 8);
      attn::dense_attention(problem_of(in, causal, 0.3, bias), expected.data());
      const auto out = dense_attention(in.q, in.k, in.v, bias ? std::optional(in.bias) : std::nullopt, causal, 0.3);
      EXPECT_LT(max_error(out, expected), 1e-12) << "causal " << causal << " bias " << bias;
    }
}

TEST(Ops, BucketAttentionEqualsTheReferenceAndOneBucketIsDense) {
  const auto in = random_inputs(2, 1, 12, 12, 8, 7);
  for (const auto& [fn, name] : {std::pair{attn::BucketFunction::lsh, "lsh"},
                                 std::pair{attn::BucketFunction::lsh_sha256, "lsh_sha256"}})
    for (const bool causal : {false, true}) {
      attn::BucketConfig config;
      config.bucket_bits = 2;
      config.rounds = 2;
      config.function = fn;
      config.seed = 3;
      std::vector<double> expected(2 * 12 * 8);
      attn::bucket_attention(problem_of(in, causal, 0.5, false), config, expected.data());
      const auto out = bucket_attention(in.q, in.k, in.v, 2, 2, name, 3, causal, 0.5);
      EXPECT_LT(max_error(out, expected), 1e-12) << name << " causal " << causal;
    }
  const auto one_bucket = bucket_attention(in.q, in.k, in.v, 0, 1, "lsh", 0, true, 0.5);
  const auto dense = dense_attention(in.q, in.k, in.v, std::nullopt, true, 0.5);
  EXPECT_LT((one_bucket - dense).abs().max().item<double>(), 1e-12);
}

TEST(Ops, MixedHeadsAreDenseWhereAskedAndHashedElsewhere) {
  const auto in = random_inputs(4, 2, 16, 16, 8, 11);
  const auto hashed = bucket_attention(in.q, in.k, in.v, 3, 2, "lsh", 5, true, 0.5);
  const auto dense = dense_attention(in.q, in.k, in.v, std::nullopt, true, 0.5);
  const auto mixed = bucket_attention(in.q, in.k, in.v, 3, 2, "lsh", 5, true, 0.5, 2);
  EXPECT_LT((mixed.narrow(0, 0, 2) - hashed.narrow(0, 0, 2)).abs().max().item<double>(), 1e-12);
  EXPECT_LT((mixed.narrow(0, 2, 2) - dense.narrow(0, 2, 2)).abs().max().item<double>(), 1e-12);
  EXPECT_GT((hashed.narrow(0, 2, 2) - dense.narrow(0, 2, 2)).abs().max().item<double>(), 1e-3);  // else this proves nothing
  attn::BucketConfig config;
  config.bucket_bits = 3;
  config.rounds = 2;
  config.seed = 5;
  config.dense_heads = 2;
  std::vector<double> expected(4 * 16 * 8);
  attn::bucket_attention(problem_of(in, true, 0.5, false), config, expected.data());
  EXPECT_LT(max_error(mixed, expected), 1e-12);
  // Batched [B, heads, n, dim]: dense_heads counts within each sequence's heads, as for one sequence.
  const auto other = random_inputs(4, 2, 16, 16, 8, 12);
  const auto batched = bucket_attention(torch::stack({in.q, other.q}), torch::stack({in.k, other.k}), torch::stack({in.v, other.v}), 3, 2,
                                        "lsh", 5, true, 0.5, 2);
  EXPECT_LT((batched[0] - mixed).abs().max().item<double>(), 1e-12);
  EXPECT_LT((batched[1] - bucket_attention(other.q, other.k, other.v, 3, 2, "lsh", 5, true, 0.5, 2)).abs().max().item<double>(), 1e-12);
}

// Random packed signatures: few distinct values, so top-k ties and shared index codes happen.
torch::Tensor random_signatures(std::vector<int64_t> shape, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 4, shape, torch::kInt64) * static_cast<int64_t>(0x1e3779b97f4a7c15LL);
}

TEST(Ops, SignatureAttentionEqualsTheReference) {
  const auto in = random_inputs(4, 2, 6, 20, 8, 31);
  const auto qs = random_signatures({4, 6, 2}, 32), ks = random_signatures({2, 20, 2}, 33);
  for (const bool causal : {false, true}) {
    auto p = problem_of(in, causal, 0.4, false);
    const attn::SignatureConfig config{100, 1, 2, 3, 0.0};
    std::vector<double> expected(p.out_size());
    attn::signature_attention(p, reinterpret_cast<const std::uint64_t*>(qs.data_ptr<int64_t>()),
                              reinterpret_cast<const std::uint64_t*>(ks.data_ptr<int64_t>()), config, expected.data());
    const auto out = signature_attention(in.q, in.k, in.v, qs, ks, 100, 1, 2, 3, 0.0, causal, 0.4);
    EXPECT_LT(max_error(out, expected), 1e-12) << "causal " << causal;
  }
  // k >= n keeps every key: dense.
  const auto all = signature_attention(in.q, in.k, in.v, qs, ks, 100, 0, 0, 20, 0.0, true, 0.4);
  EXPECT_LT((all - dense_attention(in.q, in.k, in.v, std::nullopt, true, 0.4)).abs().max().item<double>(), 1e-12);
}

TEST(Ops, IndexAttentionEqualsTheReference) {
  const auto in = random_inputs(2, 1, 5, 16, 8, 37);
  const auto qs = random_signatures({2, 5}, 38), ks = random_signatures({1, 16}, 39);
  for (const int tables : {0, 3}) {
    attn::IndexConfig config;
    config.tables = tables;
    config.bits_per_table = 8;
    config.seed = 4;
    auto p = problem_of(in, true, 0.6, false);
    std::vector<double> expected(p.out_size());
    attn::index_attention(p, reinterpret_cast<const std::uint64_t*>(qs.data_ptr<int64_t>()),
                          reinterpret_cast<const std::uint64_t*>(ks.data_ptr<int64_t>()), config, expected.data());
    const auto out = index_attention(in.q, in.k, in.v, qs, ks, 64, tables, 8, 4, true, 0.6);
    EXPECT_LT(max_error(out, expected), 1e-12) << "tables " << tables;
  }
}

// Central differences of sum(out · w) for a fixed random w, against autograd; step 1e-6, float64.
void expect_gradient(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
                     std::vector<torch::Tensor> inputs, const std::string& what) {
  for (auto& x : inputs) x = x.clone().requires_grad_(true);
  const auto w = torch::randn_like(f(inputs).detach());
  (f(inputs) * w).sum().backward();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto analytic = inputs[i].grad().contiguous().view({-1});
    auto flat = inputs[i].detach().clone().contiguous();
    auto view = flat.view({-1});
    double worst = 0;
    for (int64_t j = 0; j < view.size(0); ++j) {
      const double saved = view[j].item<double>();
      std::vector<torch::Tensor> probe;
      for (std::size_t m = 0; m < inputs.size(); ++m) probe.push_back(m == i ? flat : inputs[m].detach());
      view[j] = saved + 1e-6;
      const double up = (f(probe) * w).sum().item<double>();
      view[j] = saved - 1e-6;
      const double down = (f(probe) * w).sum().item<double>();
      view[j] = saved;
      worst = std::max(worst, std::abs((up - down) / 2e-6 - analytic[j].item<double>()));
    }
    EXPECT_LT(worst, 1e-6) << what << ", input " << i;  // central differences: error O(h²) + rounding/h
  }
}

TEST(Ops, DenseGradientsMatchFiniteDifferences) {
  const auto in = random_inputs(2, 1, 3, 5, 4, 11);
  expect_gradient([](const std::vector<torch::Tensor>& x) { return dense_attention(x[0], x[1], x[2], x[3], true, 0.7); },
                  {in.q, in.k, in.v, in.bias}, "dense causal with bias");
}

TEST(Ops, BucketGradientsMatchFiniteDifferences) {
  // Buckets are constants of q and k: a 1e-6 step moves no random-data vector across a bucket border.
  const auto in = random_inputs(2, 2, 6, 6, 4, 13);
  expect_gradient(
      [](const std::vector<torch::Tensor>& x) { return bucket_attention(x[0], x[1], x[2], 1, 2, "lsh", 5, true, 0.7); },
      {in.q, in.k, in.v}, "bucket lsh causal");
}

TEST(Ops, SignatureAndIndexGradientsMatchFiniteDifferences) {
  const auto in = random_inputs(2, 1, 3, 8, 4, 41);
  const auto qs = random_signatures({2, 3, 1}, 42), ks = random_signatures({1, 8, 1}, 43);
  expect_gradient([&](const std::vector<torch::Tensor>& x) { return signature_attention(x[0], x[1], x[2], qs, ks, 64, 1, 1, 2, 0.0, true, 0.7); },
                  {in.q, in.k, in.v}, "signature top-k causal");
  expect_gradient([&](const std::vector<torch::Tensor>& x) { return index_attention(x[0], x[1], x[2], qs.squeeze(2), ks.squeeze(2), 64, 0, 16, 0, true, 0.7); },
                  {in.q, in.k, in.v}, "index exact causal");
}

// The pieces the CUDA ops run on device tensors (attention_grads.h), checked here on CPU float64 tensors
// against the reference ops: key lists from the CPU selection, stored in shuffled order with junk past each
// row's count (as the CUDA index writes them), in chunks of 2 rows. Tolerance 1e-12: float64 on both sides.
TEST(Ops, SelectedAttentionAndItsBackwardEqualTheSignatureOp) {
  const auto in = random_inputs(4, 2, 5, 12, 8, 51);
  const auto qs = random_signatures({4, 5, 1}, 52), ks = random_signatures({2, 12, 1}, 53);
  const auto* qw = reinterpret_cast<const std::uint64_t*>(qs.data_ptr<int64_t>());
  const auto* kw = reinterpret_cast<const std::uint64_t*>(ks.data_ptr<int64_t>());
  struct Case { int sinks, window, top_k; double fraction; bool causal; };
  for (const Case c : {Case{1, 2, 3, 0.0, true}, Case{0, 1, 0, 0.25, false}, Case{0, 0, 0, 0.0, true}}) {
    const attn::SignatureConfig config{64, c.sinks, c.window, c.top_k, c.fraction};
    auto selected = torch::full({20, 12}, -7, torch::kInt32);
    auto counts = torch::zeros({20}, torch::kInt32);
    for (int h = 0; h < 4; ++h)
      for (int i = 0; i < 5; ++i) {
        auto keys = attn::select_signature_keys(qw + h * 5 + i, kw + (h / 2) * 12, c.causal ? 12 - 5 + i : 11, config);
        std::reverse(keys.begin(), keys.end());
        for (std::size_t j = 0; j < keys.size(); ++j) selected[h * 5 + i][static_cast<int64_t>(j)] = keys[j];
        counts[h * 5 + i] = static_cast<int>(keys.size());
      }
    auto q = in.q.clone().requires_grad_(true), k = in.k.clone().requires_grad_(true), v = in.v.clone().requires_grad_(true);
    const auto expected = signature_attention(q, k, v, qs, ks, 64, c.sinks, c.window, c.top_k, c.fraction, c.causal, 0.4);
    const auto out = selected_attention_forward(in.q, in.k, in.v, selected, counts, 0.4, 2);
    EXPECT_LT((out - expected).abs().max().item<double>(), 1e-12) << "sinks " << c.sinks;
    const auto grad_out = torch::randn_like(expected);
    expected.backward(grad_out);
    const auto grads = selected_attention_backward(in.q, in.k, in.v, selected, counts, grad_out, 0.4, 2);
    EXPECT_LT((grads.dq - q.grad()).abs().max().item<double>(), 1e-12) << "sinks " << c.sinks;
    EXPECT_LT((grads.dk - k.grad()).abs().max().item<double>(), 1e-12) << "sinks " << c.sinks;
    EXPECT_LT((grads.dv - v.grad()).abs().max().item<double>(), 1e-12) << "sinks " << c.sinks;
  }
}

// bucket_visible + masked_attention_backward (the CUDA bucket op's backward) against the CPU op's autograd.
TEST(Ops, BucketMaskAndBackwardEqualTheBucketOp) {
  const auto in = random_inputs(4, 2, 6, 10, 8, 57);
  attn::BucketConfig config;
  config.bucket_bits = 2, config.rounds = 2, config.seed = 3;
  const auto p = problem_of(in, true, 0.5, false);
  const auto buckets = attn::problem_buckets(p, config);
  auto qb = torch::empty({2, 4, 6}, torch::kInt32), kb = torch::empty({2, 2, 10}, torch::kInt32);
  for (int r = 0; r < 2; ++r) {
    for (int h = 0; h < 4; ++h)
      for (int i = 0; i < 6; ++i) qb[r][h][i] = static_cast<int>(buckets.query(r, h)[i]);
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 10; ++j) kb[r][h][j] = static_cast<int>(buckets.key(r, h)[j]);
  }
  auto q = in.q.clone().requires_grad_(true), k = in.k.clone().requires_grad_(true), v = in.v.clone().requires_grad_(true);
  const auto expected = bucket_attention(q, k, v, 2, 2, "lsh", 3, true, 0.5);
  const auto visible = bucket_visible(qb, kb, true);
  EXPECT_LT((attend_visible(in.q, in.k, in.v, visible, std::nullopt, 0.5) - expected).abs().max().item<double>(), 1e-12);
  const auto grad_out = torch::randn_like(expected);
  expected.backward(grad_out);
  const auto grads = masked_attention_backward(in.q, in.k, in.v, visible, grad_out, 0.5);
  EXPECT_LT((grads.dq - q.grad()).abs().max().item<double>(), 1e-12);
  EXPECT_LT((grads.dk - k.grad()).abs().max().item<double>(), 1e-12);
  EXPECT_LT((grads.dv - v.grad()).abs().max().item<double>(), 1e-12);
}

// A batch [batch, heads, n, dim] is the same as one call per sequence (folded heads keep their own kv heads).
TEST(Ops, BatchedInputsEqualOneCallPerSequence) {
  torch::manual_seed(61);
  const auto q = torch::randn({3, 4, 5, 8}, f64), k = torch::randn({3, 2, 9, 8}, f64), v = torch::randn({3, 2, 9, 8}, f64);
  const auto qs = random_signatures({3, 4, 5, 1}, 62), ks = random_signatures({3, 2, 9, 1}, 63);
  const std::vector<std::pair<std::string, std::function<torch::Tensor(int64_t)>>> ops = {
      {"dense", [&](int64_t b) { return b < 0 ? dense_attention(q, k, v, std::nullopt, true, 0.3) : dense_attention(q[b], k[b], v[b], std::nullopt, true, 0.3); }},
      {"bucket", [&](int64_t b) { return b < 0 ? bucket_attention(q, k, v, 2, 2, "lsh", 1, true, 0.3) : bucket_attention(q[b], k[b], v[b], 2, 2, "lsh", 1, true, 0.3); }},
      {"signature", [&](int64_t b) {
         return b < 0 ? signature_attention(q, k, v, qs, ks, 64, 1, 1, 2, 0.0, true, 0.3)
                      : signature_attention(q[b], k[b], v[b], qs[b], ks[b], 64, 1, 1, 2, 0.0, true, 0.3);
       }},
      {"index", [&](int64_t b) {
         return b < 0 ? index_attention(q, k, v, qs.squeeze(3), ks.squeeze(3), 64, 0, 16, 0, true, 0.3)
                      : index_attention(q[b], k[b], v[b], qs[b].squeeze(2), ks[b].squeeze(2), 64, 0, 16, 0, true, 0.3);
       }},
  };
  for (const auto& [name, op] : ops) {
    const auto batched = op(-1);
    ASSERT_EQ(batched.sizes(), q.sizes()) << name;
    for (int64_t b = 0; b < 3; ++b) EXPECT_TRUE(torch::equal(batched[b], op(b))) << name << " batch " << b;
  }
  try {
    signature_attention(q, k[0], v, qs, ks, 64, 1, 1, 2, 0.0, true, 0.3);
    ADD_FAILURE() << "no error for a 3-D k beside a batched q";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("signature_attention: with a batched q [batch, heads, n, dim], k must be 4-D"),
              std::string::npos) << e.what_without_backtrace();
  }
}

TEST(Ops, SignSteIsSignForwardAndClippedIdentityBackward) {
  const auto x = torch::tensor({-2.0, -0.5, 0.0, 0.25, 1.0, 3.0}, f64).requires_grad_(true);
  const auto y = sign_ste(x);
  EXPECT_TRUE(torch::equal(y.detach(), torch::tensor({-1.0, -1.0, 1.0, 1.0, 1.0, 1.0}, f64)));
  (y * torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, f64)).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.0, 2.0, 3.0, 4.0, 5.0, 0.0}, f64)));
}

TEST(Ops, PackSignaturesMatchesTheReference) {
  torch::manual_seed(17);
  const auto logits = torch::randn({5, 70}, f64);
  std::vector<std::uint64_t> expected(5 * 2);
  attn::pack_signatures(logits.data_ptr<double>(), 5, 70, expected.data());
  const auto packed = pack_signatures(logits);
  ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{5, 2}));
  for (int64_t i = 0; i < 10; ++i)
    EXPECT_EQ(static_cast<std::uint64_t>(packed.view({-1})[i].item<int64_t>()), expected[static_cast<std::size_t>(i)]);
}

TEST(Ops, NonContiguousInputsGiveTheSameResult) {
  const auto in = random_inputs(2, 2, 4, 6, 8, 19);
  const auto q_t = in.q.transpose(1, 2).contiguous().transpose(1, 2);  // same values, other strides
  ASSERT_FALSE(q_t.is_contiguous());
  EXPECT_TRUE(torch::allclose(dense_attention(q_t, in.k, in.v, std::nullopt, false, 1.0),
                              dense_attention(in.q, in.k, in.v, std::nullopt, false, 1.0), 0, 1e-14));
  EXPECT_TRUE(torch::allclose(bucket_attention(q_t, in.k, in.v, 2, 1, "lsh", 0, false, 1.0),
                              bucket_attention(in.q, in.k, in.v, 2, 1, "lsh", 0, false, 1.0), 0, 1e-14));
}

TEST(Ops, RegisteredAsTorchOpsHashhop) {
  const auto in = random_inputs(2, 1, 3, 4, 4, 23);
  auto op = c10::Dispatcher::singleton()
                .findSchemaOrThrow("hashhop::dense_attention", "")
                .typed<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                     const std::optional<torch::Tensor>&, bool, double)>();
  EXPECT_TRUE(torch::equal(op.call(in.q, in.k, in.v, std::nullopt, true, 0.5),
                           dense_attention(in.q, in.k, in.v, std::nullopt, true, 0.5)));
  for (const char* name : {"hashhop::bucket_attention", "hashhop::signature_attention", "hashhop::index_attention", "hashhop::sign_ste",
                           "hashhop::pack_signatures", "hashhop::signature_bce_loss"})
    EXPECT_NO_THROW(c10::Dispatcher::singleton().findSchemaOrThrow(name, "")) << name;
}

void expect_error(const std::function<void()>& call, const std::string& text) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one mentioning: " << text;
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find(text), std::string::npos) << e.what_without_backtrace();
  }
}

TEST(Ops, BadArgumentsGiveClearErrors) {
  const auto in = random_inputs(4, 2, 3, 5, 8, 29);
  expect_error([&] { dense_attention(in.q[0], in.k, in.v, std::nullopt, false, 1); }, "dense_attention: q, k and v must be [heads, n, dim]");
  expect_error([&] { dense_attention(in.q, in.k.to(torch::kFloat32), in.v, std::nullopt, false, 1); }, "must share one dtype");
  expect_error([&] { dense_attention(in.q.to(torch::kInt64), in.k, in.v, std::nullopt, false, 1); }, "q must be a floating-point tensor");
  expect_error([&] { dense_attention(in.q, in.k, in.v.narrow(1, 0, 4), std::nullopt, false, 1); }, "k and v must have one shape");
  expect_error([&] { dense_attention(in.q.narrow(0, 0, 3), in.k, in.v, std::nullopt, false, 1); }, "heads_q (3) must be a multiple of heads_kv (2)");
  expect_error([&] { dense_attention(in.q, in.k, in.v, in.bias.narrow(0, 0, 4), false, 1); }, "key_bias must be [n_k]");
  expect_error([&] { bucket_attention(in.q, in.k, in.v, 2, 0, "lsh", 0, false, 1); }, "rounds must be >= 1");
  expect_error([&] { bucket_attention(in.q, in.k, in.v, 2, 1, "md5", 0, false, 1); }, "bucket_fn must be lsh");
  expect_error([&] { bucket_attention(in.q, in.k, in.v, 2, 1, "lsh", 0, false, 1, 1); },
               "bucket_attention: dense_heads must be a multiple of heads_q / heads_kv = 2");
  expect_error([&] { bucket_attention(in.q, in.k, in.v, 2, 1, "lsh", 0, false, 1, 6); }, "dense_heads must be in [0, heads_q = 4]");
  expect_error([&] { sign_ste(torch::ones({2}, torch::kInt64)); }, "sign_ste: x must be a floating-point tensor");
  const auto qs = random_signatures({4, 3, 1}, 1), ks = random_signatures({2, 5, 1}, 2);
  expect_error([&] { signature_attention(in.q, in.k, in.v, qs.to(torch::kInt32), ks, 64, 0, 0, 2, 0, false, 1); }, "q_signatures must be int64");
  expect_error([&] { signature_attention(in.q, in.k, in.v, qs, ks.narrow(1, 0, 4), 64, 0, 0, 2, 0, false, 1); }, "k_signatures must be [2, 5, 1]");
  expect_error([&] { signature_attention(in.q, in.k, in.v, qs, ks, 64, 0, 0, 2, 1.5, false, 1); }, "top_fraction in [0, 1]");
  expect_error([&] { index_attention(in.q, in.k, in.v, qs, ks.squeeze(2), 64, 0, 16, 0, false, 1); }, "q_signatures must be [4, 3]");
  expect_error([&] { index_attention(in.q, in.k, in.v, qs.squeeze(2), ks.squeeze(2), 64, 2, 70, 0, false, 1); }, "index_attention: bits_per_table");
  expect_error([&] { pack_signatures(torch::ones({3}, f64)); }, "pack_signatures: logits must be [n, bits]");
}

}  // namespace
}  // namespace hashhop::ops
