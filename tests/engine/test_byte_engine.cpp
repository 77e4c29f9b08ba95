// The byte model's engine on the CPU: chunked prefill equals one prefill (chunk sizes 1, 7, 64, whole),
// extend appends in place, and a gate threshold drops exactly the keys whose gate is below it. Run: build/tests/test_engine
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "hashhop/engine/byte_engine.h"
#include "hashhop/model/byte_inference.h"
#include "byte_engine_fixtures.h"

namespace hashhop::engine {
namespace {

using testing::problem;
using testing::random_model;

TEST(ByteEngine, ChunkedPrefillEqualsOnePrefill) {
  const auto prompt = problem(300, 5);
  for (const std::string layers : {"LG", "GLH", "LLGG", "GLH+qknorm"}) {
    auto net = random_model(layers, 31);
    const auto whole = model::prefill_prompt(net, prompt.text, torch::kCPU);
    const auto expected = model::answer_queries_bytes(net, whole, 1, false, prompt.keys, torch::kCPU);
    for (const std::size_t chunk : {1, 7, 64, 100000}) {
      ByteEngine engine(net, torch::kCPU, {chunk});
      engine.prefill(prompt.text);
      const auto& cache = engine.cache();
      ASSERT_EQ(cache.length, whole.length);
      for (std::size_t i = 0; i < cache.layers.size(); ++i) {
        for (const auto field : {&model::ByteLayerCache::keys, &model::ByteLayerCache::values,
                                 &model::ByteLayerCache::canon_attn, &model::ByteLayerCache::canon_mlp}) {
          const auto& got = cache.layers[i].*field;
          const auto& want = whole.layers[i].*field;
          ASSERT_EQ(got.sizes(), want.sizes()) << layers << " chunk " << chunk << " block " << i;
          EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4))
              << layers << " chunk " << chunk << " block " << i << ": " << (got - want).abs().max().item<double>();
        }
      }
      EXPECT_EQ(engine.answer(1, false, prompt.keys), expected) << layers << " chunk " << chunk;
      EXPECT_EQ(engine.stats().bytes, prompt.text.size() + 1);
      // Once the prompt is in, the engine holds exact copies: no store with spare capacity.
      EXPECT_EQ(engine.stats().cache_bytes, whole.bytes()) << layers << " chunk " << chunk;
      for (const auto& layer : cache.layers) EXPECT_FALSE(layer.key_store.defined());
    }
  }
}

TEST(ByteEngine, HardGateKeepsOnlyKeptKeysAndAnswersAsTheModel) {
  // With gate_threshold the model's attention drops keys with σ(gate) at most the threshold (with a hard
  // concrete gate, those whose z is 0), and the engine stores only the others: for every chunk size its
  // continuation must equal the whole text run through the model, and the keys it holds must be exactly
  // those the gate keeps.
  for (const std::string spec : {"LGHG+hard", "LGHG+l0"}) {
    SCOPED_TRACE(spec);
    const auto prompt = problem(300, 6);
    auto net = random_model(spec, 32);
    const std::string text = prompt.text + "\n";
    std::vector<std::int64_t> all(text.begin(), text.end());
    const std::vector<std::int64_t> tail{'a', 'B', ' ', '=', ' ', '\''};
    all.insert(all.end(), tail.begin(), tail.end());
    torch::NoGradGuard no_grad;
    const auto whole = net->hidden(torch::tensor(all).view({1, -1}));
    std::vector<std::int64_t> kept;  // per gated block, from the whole run's gates over the prompt's bytes
    const auto valid = torch::arange(static_cast<std::int64_t>(all.size())).lt(static_cast<std::int64_t>(text.size())).view({1, -1});
    for (const double share : net->kept_share(valid))
      kept.push_back(std::llround(share * static_cast<double>(text.size())));
    ASSERT_EQ(kept.size(), 3u);
    EXPECT_GT(kept[0], 0);
    EXPECT_LT(kept[0], static_cast<std::int64_t>(text.size())) << "the test needs some keys dropped";
    const auto expected = model::answer_queries_bytes(net, prompt.text, 1, false, prompt.keys, torch::kCPU);
    for (const std::size_t chunk : {1, 7, 64, 100000}) {
      ByteEngine engine(net, torch::kCPU, {chunk});
      engine.prefill(prompt.text);
      EXPECT_EQ(engine.stats().reference_points, kept) << "chunk " << chunk;
      const auto got = net->hidden_after(engine.cache(), torch::tensor(tail).view({1, -1}));
      const auto want = whole.narrow(1, whole.size(1) - static_cast<std::int64_t>(tail.size()), static_cast<std::int64_t>(tail.size()));
      EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4)) << "chunk " << chunk << ": " << (got - want).abs().max().item<double>();
      EXPECT_EQ(engine.answer(1, false, prompt.keys), expected) << "chunk " << chunk;
    }
    ByteEngine soft(random_model("LGHG", 32), torch::kCPU, {64});
    soft.prefill(prompt.text);
    ByteEngine hard(net, torch::kCPU, {64});
    hard.prefill(prompt.text);
    EXPECT_LT(hard.stats().cache_bytes, soft.stats().cache_bytes);
    EXPECT_GT(hard.stats().bytes_per_reference_point(), 0.0);
  }
}

// With a device budget far below the prompt's keys, the engine moves them to host memory chunk after chunk
// and reads them back a slice at a time: the same answers (soft and hard gate), the same reference points,
// the device holding at most about a budget plus a chunk, the rest counted as host bytes.
TEST(ByteEngine, KeysSpilledToHostAnswerAsKeysKept) {
  const auto prompt = problem(600, 8);
  for (const std::string spec : {"LGHG", "LGHG+hard", "LGHG+l0"}) {
    const bool hard = spec != "LGHG";
    SCOPED_TRACE(spec);
    auto net = random_model(spec, 33);
    ByteEngine kept(net, torch::kCPU, {64});
    kept.prefill(prompt.text);
    const auto expected = kept.answer(1, false, prompt.keys);
    for (const std::int64_t budget : {4096, 200000}) {
      ByteEngine spilling(net, torch::kCPU, {64, budget});
      spilling.prefill(prompt.text);
      const auto& s = spilling.stats();
      EXPECT_EQ(spilling.answer(1, false, prompt.keys), expected) << "hard " << hard << ", budget " << budget;
      const std::string tail = "\nCOMPLETION:\nHops=1\n\nCoT=False\n\n" + prompt.keys[0] + " = '";
      const auto got = spilling.hidden_after(tail), want = kept.hidden_after(tail);
      EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4)) << "hard " << hard << ", budget " << budget << ": "
                                                          << (got - want).abs().max().item<double>();
      EXPECT_EQ(s.reference_points, kept.stats().reference_points) << "hard " << hard << ", budget " << budget;
      EXPECT_GT(s.host_bytes, 0) << "hard " << hard << ", budget " << budget;
      EXPECT_LT(s.cache_bytes, kept.stats().cache_bytes) << "hard " << hard << ", budget " << budget;
      // Global keys on the device: at most the budget plus one chunk's (64 rows of 3 blocks, keys and values).
      std::int64_t global = 0;
      for (std::size_t i = 0; i < spilling.cache().layers.size(); ++i)
        if (net->config().layers[i] != 'L' && spilling.cache().layers[i].keys.defined())
          global += 2 * spilling.cache().layers[i].keys.numel() * 4;
      EXPECT_LE(global, budget + 3 * 2 * 64 * 4 * 16 * 4) << "hard " << hard << ", budget " << budget;
    }
  }
}

// One exact engine over a random hard-gated model, its answers and its hidden states after a query line: what
// an approximate engine over the same net is compared with, and what that engine must leave as it found it.
struct ExactBaseline {
  testing::Prompt prompt = problem(600, 9);
  model::ByteModel net = random_model("LGHG+hard", 34);
  std::string tail = "\nCOMPLETION:\nHops=1\n\nCoT=False\n\n" + prompt.keys[0] + " = '";
  ByteEngine exact{net, torch::kCPU, {64}};
  std::string expected;
  torch::Tensor want;
  ExactBaseline() {
    exact.prefill(prompt.text);
    expected = exact.answer(1, false, prompt.keys);
    want = exact.hidden_after(tail);
  }
  double moved(ByteEngine& other) { return (other.hidden_after(tail) - want).abs().max().item<double>(); }
  // The exact engine's cache is the one from before; its reads go through the shared net, which a setting left
  // on would change: its answers and states must be what they were.
  void expect_unchanged(const std::string& why) {
    EXPECT_EQ(exact.answer(1, false, prompt.keys), expected) << why;
    EXPECT_TRUE(torch::allclose(exact.hidden_after(tail), want, 1e-5, 1e-5)) << why;
  }
};

// A prefill read window (not exact by design): a window wider than every block's keys changes nothing; a narrow
// one changes the cached keys of later blocks (so the test shows it reads less) and is switched off for the
// answers, so an exact engine over the same net afterwards answers as before it ran.
TEST(ByteEngine, PrefillReadWindowReadsLessAndEndsWithThePrefill) {
  ExactBaseline base;
  ByteEngine wide(base.net, torch::kCPU, {64, 0, 100000});
  wide.prefill(base.prompt.text);
  EXPECT_EQ(wide.answer(1, false, base.prompt.keys), base.expected);
  EXPECT_LT(base.moved(wide), 1e-5);
  ByteEngine narrow(base.net, torch::kCPU, {64, 0, 8});
  narrow.prefill(base.prompt.text);
  // The first gated block's gates come before any global read; later ones may move with the window.
  EXPECT_EQ(narrow.stats().reference_points.at(0), base.exact.stats().reference_points.at(0));
  EXPECT_GT(base.moved(narrow), 1e-3) << "a window of 8 keys changed nothing";
  narrow.answer(1, false, base.prompt.keys);
  base.expect_unchanged("the window outlived the prefill");
  EXPECT_THROW(ByteEngine(base.net, torch::kCPU, {64, 0, -1}), std::invalid_argument);
  EXPECT_THROW(ByteEngine(base.net, torch::kCPU, {64, 4096, 8}), std::invalid_argument);
}

// Per-block reads (not exact by design): a window or top-k wider than every key changes nothing; a narrow one on
// a block changes what that block reads while answering (hidden_after moves), and both are gone afterwards. A
// block that is not global, or a negative value, is refused by the engine.
TEST(ByteEngine, BlockReadWindowAndTopkReadLessAndEndWithTheEngine) {
  ExactBaseline base;
  const auto with = [](std::map<int, std::int64_t> window, std::map<int, int> topk) {
    ByteEngineOptions o;
    o.chunk_bytes = 64;
    o.block_window = std::move(window);
    o.block_topk = std::move(topk);
    return o;
  };
  for (int block : {2, 3}) {  // block 1 keeps no key in this model: nothing to read less of
    ByteEngine wide(base.net, torch::kCPU, with({{block, 100000}}, {{block, 100000}}));
    wide.prefill(base.prompt.text);
    EXPECT_EQ(wide.answer(1, false, base.prompt.keys), base.expected) << "block " << block;
    EXPECT_LT(base.moved(wide), 1e-5) << "block " << block;
    for (const auto& options : {with({{block, 4}}, {}), with({}, {{block, 2}})}) {
      ByteEngine narrow(base.net, torch::kCPU, options);
      narrow.prefill(base.prompt.text);
      EXPECT_GT(base.moved(narrow), 1e-4) << "block " << block << ": a narrow read changed nothing";
      narrow.answer(1, false, base.prompt.keys);
      base.expect_unchanged("block " + std::to_string(block) + ": the read outlived its engine");
    }
  }
  EXPECT_THROW(ByteEngine(base.net, torch::kCPU, with({{0, 8}}, {})), std::invalid_argument);  // block 0 is local
  EXPECT_THROW(ByteEngine(base.net, torch::kCPU, with({}, {{4, 8}})), std::invalid_argument);  // four blocks: 0-3
  EXPECT_THROW(ByteEngine(base.net, torch::kCPU, with({{1, -1}}, {})), std::invalid_argument);
  auto budget = with({}, {{1, 8}});
  budget.device_bytes = 4096;
  EXPECT_THROW(ByteEngine(base.net, torch::kCPU, budget), std::invalid_argument);
}

// extend() writes only the new rows of a global layer, into stores that double when full: 40 extends of a
// 400-byte text reallocate a handful of times, not 40, and end equal to one prefill. A copy of the cache
// taken before an extend, extended itself afterwards, gets stores of its own: both continuations stay right.
TEST(ByteEngine, ExtendAppendsInPlaceAndOlderCopiesStayRight) {
  auto net = random_model("LGH", 13);
  torch::NoGradGuard no_grad;
  const auto text = problem(400, 9).text.substr(0, 400);
  const auto probe = model::as_bytes("\nQ = '", torch::kCPU);
  const auto hidden_of = [&](const std::string& t) { return net->hidden_after(net->prefill(model::as_bytes(t, torch::kCPU)), probe); };
  model::ByteCache cache;
  std::vector<const void*> stores;
  for (std::size_t at = 0; at < text.size(); at += 10) {
    net->extend(cache, model::as_bytes(text.substr(at, 10), torch::kCPU));
    if (at == 0) continue;  // the first chunk is a plain prefill
    for (const std::size_t layer : {1, 2}) {
      const auto& c = cache.layers[layer];
      ASSERT_TRUE(c.key_store.defined()) << "layer " << layer << " at " << at;
      EXPECT_EQ(c.keys.data_ptr(), c.key_store.data_ptr()) << "keys are a view of the store";
      EXPECT_EQ(c.keys.size(2), static_cast<std::int64_t>(at + 10));
      EXPECT_EQ(*c.store_length, c.keys.size(2));
    }
    if (stores.empty() || stores.back() != cache.layers[1].key_store.data_ptr()) stores.push_back(cache.layers[1].key_store.data_ptr());
  }
  EXPECT_LE(stores.size(), 6u) << "a store per doubling, not per extend";
  EXPECT_TRUE(torch::allclose(net->hidden_after(cache, probe), hidden_of(text), 1e-5, 1e-5));
  EXPECT_LT(cache.layers[1].key_store.size(2), 2 * static_cast<std::int64_t>(text.size()) + 64);

  // Branches from one cache: the newest view appends in place, the older copy gets new stores.
  model::ByteCache branch = cache;
  net->extend(cache, model::as_bytes("abc = 'def'", torch::kCPU));
  net->extend(branch, model::as_bytes("xyz", torch::kCPU));
  EXPECT_NE(branch.layers[1].key_store.data_ptr(), cache.layers[1].key_store.data_ptr());
  EXPECT_TRUE(torch::allclose(net->hidden_after(cache, probe), hidden_of(text + "abc = 'def'"), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(net->hidden_after(branch, probe), hidden_of(text + "xyz"), 1e-5, 1e-5));
}

// On the GPU a global block after a cache reads through the fused kernel (causal from the bottom right, no
// mask) and a one-row continuation through plain SDPA: a chunked ByteModel::extend on CUDA (chunks 7 and 64),
// then its continuation, must equal the whole text run through the same model on the CPU, soft and hard
// gates (float32, no autocast; tolerance 1e-3 for the GPU's summation order). The hard-gated fixtures must
// drop keys (checked on any machine); the GPU part is skipped without a GPU.
TEST(ByteEngine, OnTheGpuChunkedExtendEqualsTheModelOnTheCpu) {
  const auto prompt = problem(300, 5);
  torch::NoGradGuard no_grad;
  const auto text = model::as_bytes(prompt.text, torch::kCPU);
  for (const std::string spec : {"LGHG+hard", "LGHG+l0"}) {
    auto cpu = random_model(spec, 34);
    cpu->hidden(text);
    const auto shares = cpu->kept_share(torch::ones_like(text, torch::kBool));
    EXPECT_LT(shares.at(0), 1.0) << spec << ": the fixture must drop keys";
  }
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const std::string spec : {"LGH", "LGHG+hard", "LGHG+l0"}) {
    SCOPED_TRACE(spec);
    auto cpu = random_model(spec, 34), gpu = random_model(spec, 34);
    gpu->to(torch::kCUDA);
    const auto tail = model::as_bytes("\nCOMPLETION:\nHops=1\n\nCoT=False\n\n" + prompt.keys[0] + " = '", torch::kCPU);
    const auto want = cpu->hidden(torch::cat({text, tail}, 1)).narrow(1, text.size(1), tail.size(1));
    for (const std::int64_t chunk : {7, 64}) {
      model::ByteCache cache;
      for (std::int64_t at = 0; at < text.size(1); at += chunk)
        gpu->extend(cache, text.narrow(1, at, std::min(chunk, text.size(1) - at)).to(torch::kCUDA));
      const auto many = gpu->hidden_after(cache, tail.to(torch::kCUDA)).cpu();
      EXPECT_TRUE(torch::allclose(many, want, 1e-3, 1e-3)) << "chunk " << chunk << ": " << (many - want).abs().max().item<double>();
      // Byte by byte: the one-row path.
      auto grown = cache;
      torch::Tensor last;
      for (std::int64_t i = 0; i < tail.size(1); ++i) last = gpu->extend(grown, tail.narrow(1, i, 1).to(torch::kCUDA));
      const auto one = last.cpu().narrow(1, last.size(1) - 1, 1), want_last = want.narrow(1, tail.size(1) - 1, 1);
      EXPECT_TRUE(torch::allclose(one, want_last, 1e-3, 1e-3)) << "chunk " << chunk << ", byte by byte: "
                                                               << (one - want_last).abs().max().item<double>();
    }
  }
}

}  // namespace
}  // namespace hashhop::engine
