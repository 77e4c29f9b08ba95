// The byte model's context-parallel engine on the CPU with Gloo (ranks as threads): 2 and 3 ranks give the
// answers of one ByteEngine, and together hold exactly its global keys. Run: ctest -R ByteContextParallel
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "hashhop/dist/dist_env.h"
#include "hashhop/dist/launcher.h"
#include "hashhop/dist/process_group.h"
#include "hashhop/engine/byte_engine.h"
#include "hashhop/engine/engine.h"
#include "hashhop/model/byte_model.h"
#include "../engine/byte_engine_fixtures.h"
#include "join_rank.h"

namespace hashhop::engine {
namespace {

using testing::problem;
using testing::Prompt;

// The same weights for every call (built on one thread: the seed is global). Each rank needs a model of its
// own: its engine sets the global blocks' remote reads.
model::ByteModel random_model(const std::string& spec) { return testing::random_model(spec, 41); }

struct RankResult {
  std::string completion;
  torch::Tensor hidden;  // the last rank's, after the prompt (ByteEngine::hidden_after)
  std::vector<torch::Tensor> global_keys;  // per global block, this rank's
  std::string error;
};

const std::string kTail = "\nCOMPLETION:\nHops=2\n\nCoT=False\n\nab = '";

// `rank1_spec`, when given, is rank 1's model instead (a fault: its blocks do not match the others').
std::vector<RankResult> run_ranks(const std::string& spec, const Prompt& p, int n, std::size_t chunk, std::int64_t device_bytes = 0,
                                  const std::string& rank1_spec = "") {
  std::vector<RankResult> results(static_cast<std::size_t>(n));
  std::vector<model::ByteModel> nets;
  for (int r = 0; r < n; ++r) nets.push_back(random_model(r == 1 && !rank1_spec.empty() ? rank1_spec : spec));
  const auto errors = on_ranks(n, [&](int r, dist::ProcessGroup& group) {
    auto& out = results[static_cast<std::size_t>(r)];
    auto& net = nets[static_cast<std::size_t>(r)];
    ByteEngine engine(net, torch::kCPU, group, {chunk, device_bytes});
    engine.prefill(p.text);
    for (std::size_t i = 0; i < engine.cache().layers.size(); ++i)
      if (net->config().layers[i] != 'L') out.global_keys.push_back(engine.cache().layers[i].keys);
    out.completion = engine.answer(2, false, p.keys);
    out.hidden = engine.hidden_after(kTail);
  });
  for (int r = 0; r < n; ++r) results[static_cast<std::size_t>(r)].error = errors[static_cast<std::size_t>(r)];
  return results;
}

TEST(ByteContextParallel, TwoAndThreeRanksAnswerAsOneEngine) {
  const auto p = problem(400, 7, 2);
  for (const std::string spec : {"LGHG", "GLH+qknorm", "LGHG+hard", "LGHG+l0"}) {
    auto net = random_model(spec);
    ByteEngine one(net, torch::kCPU, {64});
    one.prefill(p.text);
    const auto expected = one.answer(2, false, p.keys);
    const auto expected_hidden = one.hidden_after(kTail);
    std::vector<torch::Tensor> whole;
    for (std::size_t i = 0; i < one.cache().layers.size(); ++i)
      if (net->config().layers[i] != 'L') whole.push_back(one.cache().layers[i].keys);
    for (const int n : {2, 3}) {
      const auto results = run_ranks(spec, p, n, 64);
      for (const auto& r : results) ASSERT_EQ(r.error, "") << spec << ", " << n << " ranks";
      for (const auto& r : results) EXPECT_EQ(r.completion, expected) << spec << ", " << n << " ranks";
      const auto& hidden = results.back().hidden;
      EXPECT_TRUE(torch::allclose(hidden, expected_hidden, 1e-4, 1e-4))
          << spec << ", " << n << " ranks: " << (hidden - expected_hidden).abs().max().item<double>();
      // The ranks' keys, in rank order, are the one engine's (the kept ones, with the hard gate): each
      // global key was computed once, on the rank whose shard holds its byte, from the same inputs.
      for (std::size_t g = 0; g < whole.size(); ++g) {
        std::vector<torch::Tensor> parts;
        for (const auto& r : results) parts.push_back(r.global_keys[g]);
        const auto joined = torch::cat(parts, 2);
        ASSERT_EQ(joined.sizes(), whole[g].sizes()) << spec << ", " << n << " ranks, global block " << g;
        EXPECT_TRUE(torch::allclose(joined, whole[g], 1e-4, 1e-4))
            << spec << ", " << n << " ranks, global block " << g << ": " << (joined - whole[g]).abs().max().item<double>();
        for (int r = 0; r < n; ++r) {  // each rank holds its shard's keys only
          const auto shard = shard_of(p.text.size() + 1, r, n, 0);
          EXPECT_LE(results[static_cast<std::size_t>(r)].global_keys[g].size(2), static_cast<std::int64_t>(shard.end - shard.begin));
        }
      }
    }
  }
}

// Context parallel with a device budget far below each shard's keys: every rank spills its keys to host
// memory and serves the others' reads from there too.
TEST(ByteContextParallel, RanksThatSpillToHostAnswerAsOneEngine) {
  const auto p = problem(400, 7, 2);
  for (const std::string spec : {"LGHG", "LGHG+hard"}) {
    auto net = random_model(spec);
    ByteEngine one(net, torch::kCPU, {64});
    one.prefill(p.text);
    const auto expected = one.answer(2, false, p.keys);
    const auto expected_hidden = one.hidden_after(kTail);
    const auto results = run_ranks(spec, p, 3, 64, 4096);
    for (const auto& r : results) ASSERT_EQ(r.error, "") << spec;
    for (const auto& r : results) EXPECT_EQ(r.completion, expected) << spec;
    EXPECT_TRUE(torch::allclose(results.back().hidden, expected_hidden, 1e-4, 1e-4))
        << spec << ": " << (results.back().hidden - expected_hidden).abs().max().item<double>();
  }
}

// Shards shorter than the local window and the canon kernel: the local state a rank hands on must carry
// what the ranks before it handed on, and a rank with an empty shard passes it on unchanged.
TEST(ByteContextParallel, ShardsShorterThanTheWindowAnswerAsOneEngine) {
  // 16 bytes with the "\n" on 5 ranks (3 or 4 each); 6 bytes on 8 ranks (2 of them hold nothing).
  const std::vector<std::pair<Prompt, int>> cases = {{{"ab = cd\nef = gh", {"ab", "ef"}}, 5}, {{"a = b", {"a"}}, 8}};
  for (const auto& [p, n] : cases) {
    auto net = random_model("LGH");
    ByteEngine one(net, torch::kCPU, {3});
    one.prefill(p.text);
    const auto expected = one.answer(2, false, p.keys);
    const auto expected_hidden = one.hidden_after(kTail);
    const auto results = run_ranks("LGH", p, n, 3);
    for (std::size_t r = 0; r < results.size(); ++r) ASSERT_EQ(results[r].error, "") << "rank " << r << " of " << n;
    for (const auto& r : results) EXPECT_EQ(r.completion, expected) << n << " ranks";
    EXPECT_TRUE(torch::allclose(results.back().hidden, expected_hidden, 1e-4, 1e-4))
        << n << " ranks: " << (results.back().hidden - expected_hidden).abs().max().item<double>();
  }
}

// A rank whose own work fails in its turn (here: a model of other blocks than the state it is handed) sends
// its error to the others, which are waiting for its reads: every rank ends with that one error at once,
// not with a timeout (a server then replies with it and goes on, docs/serving.md).
TEST(ByteContextParallel, AFailedTurnIsEveryRanksError) {
  const auto p = problem(200, 7, 2);
  const auto start = std::chrono::steady_clock::now();
  const auto results = run_ranks("LGHG", p, 3, 64, 0, "LGHGG");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (std::size_t r = 0; r < results.size(); ++r)
    EXPECT_NE(results[r].error.find("the cache belongs to another model"), std::string::npos) << "rank " << r << ": " << results[r].error;
  EXPECT_LT(seconds, 30.0);  // the group's timeout is 60 s
}

// The log-sum-exp merge is exact: reading keys split in two parts and merging equals reading them at once.
TEST(ByteContextParallel, MergedReadsEqualOneRead) {
  torch::manual_seed(3);
  const auto q = torch::randn({1, 2, 5, 8}, torch::kFloat64), k = torch::randn({1, 2, 9, 8}, torch::kFloat64);
  const auto v = torch::randn({1, 2, 9, 8}, torch::kFloat64);
  const auto all = model::read_with_lse(q, k, v, 0.35, 9);
  const auto merged = model::merge_reads(model::read_with_lse(q, k.narrow(2, 0, 4), v.narrow(2, 0, 4), 0.35, 9),
                                         model::read_with_lse(q, k.narrow(2, 4, 5), v.narrow(2, 4, 5), 0.35, 9));
  EXPECT_TRUE(torch::allclose(merged.out.to(torch::kFloat64), all.out.to(torch::kFloat64), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(merged.lse, all.lse, 1e-5, 1e-6));
  // Against the definition, in float64: softmax(q k^T scale) v.
  const auto want = torch::softmax(torch::matmul(q, k.transpose(-1, -2)) * 0.35, -1).matmul(v);
  EXPECT_TRUE(torch::allclose(all.out.to(torch::kFloat64), want, 1e-5, 1e-5));
  // No key visible (causal past_length -5 hides all from the first rows): out 0 and lse -inf, not NaN.
  const auto none = model::read_with_lse(q, k, v, 0.35, -5);
  EXPECT_FALSE(torch::isnan(none.out).any().item<bool>());
  EXPECT_TRUE(torch::isinf(none.lse.select(2, 0)).all().item<bool>());
  const auto with_empty = model::merge_reads(all, none);
  EXPECT_TRUE(torch::allclose(with_empty.out.to(torch::kFloat64), all.out.to(torch::kFloat64), 1e-5, 1e-6));
}

}  // namespace
}  // namespace hashhop::engine
