// The context-parallel engine on the CPU with Gloo: N ranks (threads of this process, each its own model
// and process group) answer exactly what one engine answers. Run: build/tests/test_dist --gtest_filter='ContextParallel*'
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "hashhop/bench/generator.h"
#include "hashhop/dist/launcher.h"
#include "hashhop/dist/process_group.h"
#include "hashhop/engine/engine.h"
#include "hashhop/model/inference.h"
#include "hashhop/train/checkpoint.h"
#include "join_rank.h"

namespace hashhop::engine {
namespace {

struct Problem {
  std::string prompt;
  std::vector<std::string> prefixes;
  int limit = 0;
};

Problem make_problem(int hops, bool cot, std::uint64_t chars, std::uint64_t seed) {
  bench::GenConfig config;
  config.n_chars = chars;
  config.num_queries = 6;
  config.hops = hops;
  config.hash_len = 8;
  config.cot = cot;
  config.seed = seed;
  const bench::HashHopProblem problem(config);
  std::vector<std::string> keys;
  for (std::uint64_t c = 0; c < config.num_queries; ++c) keys.push_back(problem.hash(c, 0));
  const auto model = train::load_model(HASHHOP_DEMO_MODEL, torch::kCPU).model;
  return {problem.prompt() + "\n", model::query_prefixes(hops, cot, keys), model::answer_byte_limit(model->config(), hops, cot)};
}

// Small samples, so that the dropped positions' stride grows past 1 on every rank and the merge matters.
// A low gate threshold keeps several positions per line, which merge into one entry (also across a
// shard boundary: the gates then go to the previous rank's entry).
EngineOptions options(bool background_on_hits, std::size_t halo, double gate_threshold = 0.5) {
  EngineOptions o;
  o.gate_threshold = gate_threshold;
  o.chunk_bytes = 4093;
  o.background_samples = 16;
  o.background_on_hits = background_on_hits;
  o.halo_bytes = halo;
  return o;
}

struct Entry {
  std::string key, value;
  float log_gate;
  bool operator==(const Entry&) const = default;
};
std::vector<Entry> entries_of(const ReferenceStore& store) {
  std::vector<Entry> out;
  for (std::uint32_t e = 0; e < store.entries(); ++e)
    out.push_back({std::string(store.run(store.key_run(e))), std::string(store.run(store.value_run(e))), store.log_gate(e)});
  return out;
}

std::vector<std::string> one_engine(const Problem& p, const EngineOptions& o, EngineStats* stats,
                                    Engine::BackgroundSample* background, std::vector<Entry>* entries) {
  Engine engine(train::load_model(HASHHOP_DEMO_MODEL, torch::kCPU).model, o);
  engine.prefill(p.prompt);
  *stats = engine.stats();
  *background = engine.background_sample();
  *entries = entries_of(engine.store());
  return engine.answer(p.prefixes, p.limit);
}

struct RankResult {
  std::vector<std::string> answers;  // rank 0
  Engine::BackgroundSample background;  // rank 0
  std::vector<Entry> entries;           // this rank's store
  EngineStats stats;
  std::string error;
};

// N ranks as threads, each streaming the whole prompt in odd-sized pieces; with `widen`, through
// prefill_sharded (a halo that is too short grows until it reaches).
std::vector<RankResult> ranks(const Problem& p, const EngineOptions& o, int n, bool widen = false) {
  std::vector<RankResult> results(static_cast<std::size_t>(n));
  const auto errors = on_ranks(n, [&](int r, dist::ProcessGroup& group) {
    auto& out = results[static_cast<std::size_t>(r)];
    std::vector<std::string_view> pieces;
    for (std::size_t at = 0; at < p.prompt.size(); at += 7919) pieces.push_back(std::string_view(p.prompt).substr(at, 7919));
    const auto model = train::load_model(HASHHOP_DEMO_MODEL, torch::kCPU).model;
    std::unique_ptr<Engine> built;
    if (widen) {
      built = prefill_sharded(model, pieces, o, group);
    } else {
      built = std::make_unique<Engine>(model, group, p.prompt.size(), o);
      for (const auto piece : pieces) built->prefill(piece);
      built->finish_prompt();
    }
    auto& engine = *built;
    out.stats = engine.stats();
    out.entries = entries_of(engine.store());
    if (r == 0) {
      out.background = engine.background_sample();
      out.answers = engine.answer(p.prefixes, p.limit);
      engine.end_answers();
    } else {
      engine.serve();
    }
  });
  for (int r = 0; r < n; ++r) results[static_cast<std::size_t>(r)].error = errors[static_cast<std::size_t>(r)];
  return results;
}

TEST(ContextParallel, TwoAndThreeRanksAnswerAsOneEngine) {
  int right = 0, total = 0;
  for (const auto& p : {make_problem(2, false, 120000, 31), make_problem(3, true, 90000, 32)})
    for (const auto& [on_hits, threshold] : {std::pair{false, 0.5}, std::pair{true, 0.5}, std::pair{true, 1e-4}}) {
      const auto o = options(on_hits, 512, threshold);
      EngineStats single_stats;
      Engine::BackgroundSample single_background;
      std::vector<Entry> single_entries;
      const auto single = one_engine(p, o, &single_stats, &single_background, &single_entries);
      ASSERT_GT(single_background.dropped_seen, 4 * single_background.dropped.size()) << "the dropped sample's stride grew";
      for (const int n : {2, 3}) {
        const auto results = ranks(p, o, n);
        std::vector<Entry> entries;  // the ranks' stores in rank order: the one store, gates merged alike
        for (const auto& r : results) ASSERT_EQ(r.error, "") << n << " ranks";
        for (const auto& r : results) entries.insert(entries.end(), r.entries.begin(), r.entries.end());
        EXPECT_TRUE(entries == single_entries) << n << " ranks, threshold " << threshold;
        EXPECT_EQ(results[0].answers, single) << n << " ranks, background on hits " << on_hits << ", threshold " << threshold;
        // The background is the one engine's, sample for sample (answers alone barely depend on it).
        const auto& b = results[0].background;
        EXPECT_EQ(b.ids, single_background.ids);
        EXPECT_EQ(b.keys, single_background.keys);
        EXPECT_EQ(b.values, single_background.values);
        EXPECT_EQ(b.log_gates, single_background.log_gates);
        EXPECT_EQ(b.entries, single_background.entries);
        EXPECT_EQ(b.dropped_seen, single_background.dropped_seen);
        ASSERT_EQ(b.dropped.size(), single_background.dropped.size()) << n << " ranks";
        for (std::size_t i = 0; i < b.dropped.size(); ++i) {
          EXPECT_EQ(b.dropped[i].position, single_background.dropped[i].position);
          EXPECT_EQ(b.dropped[i].key, single_background.dropped[i].key);
          EXPECT_EQ(b.dropped[i].value, single_background.dropped[i].value);
          EXPECT_EQ(b.dropped[i].log_gate, single_background.dropped[i].log_gate);
        }
        EXPECT_EQ(results[0].stats.gated_positions, single_stats.gated_positions);
        EXPECT_EQ(results[0].stats.dropped_positions, single_stats.dropped_positions);
      }
      for (std::size_t i = 0; i < single.size(); ++i) total += 1, right += !single[i].empty();
    }
  EXPECT_EQ(right, total);  // the answers compared are real answers, not empty ones
}

// Shards shorter than a line (12 ranks over about 160 bytes: some ranks hold no entry and merges pass
// over them) or than the halo (3 ranks).
TEST(ContextParallel, TinyShardsAnswerAsOneEngine) {
  const auto p = make_problem(1, false, 160, 34);
  const auto o = options(true, 512);
  EngineStats single_stats;
  Engine::BackgroundSample single_background;
  std::vector<Entry> single_entries;
  const auto single = one_engine(p, o, &single_stats, &single_background, &single_entries);
  for (const int n : {3, 12}) {
    const auto results = ranks(p, o, n);
    std::vector<Entry> entries;
    int empty = 0;
    for (const auto& r : results) {
      ASSERT_EQ(r.error, "") << n << " ranks";
      entries.insert(entries.end(), r.entries.begin(), r.entries.end());
      empty += r.entries.empty();
    }
    EXPECT_TRUE(entries == single_entries) << n << " ranks";
    EXPECT_EQ(results[0].answers, single) << n << " ranks";
    if (n == 12) {
      EXPECT_GT(empty, 0) << "some shard holds no entry";
    }
  }
}

TEST(ContextParallel, AHaloTooShortIsAnErrorOnEveryRank) {
  const auto p = make_problem(1, false, 20000, 33);
  const auto results = ranks(p, options(false, 0), 2);
  for (const auto& r : results) EXPECT_NE(r.error.find("halo did not reach it"), std::string::npos) << r.error;
}

// The same prompt through prefill_sharded: the ranks widen the halo together (0, then 4 KB, ...) until
// every boundary's state is reached, and answer as one engine. (serve --nproc prefills this way.)
TEST(ContextParallel, PrefillShardedWidensAShortHalo) {
  const auto p = make_problem(1, false, 20000, 33);
  const auto o = options(false, 0);
  EngineStats stats;
  Engine::BackgroundSample background;
  std::vector<Entry> entries;
  const auto expected = one_engine(p, o, &stats, &background, &entries);
  for (const int n : {2, 3}) {
    const auto results = ranks(p, o, n, true);
    for (const auto& r : results) ASSERT_EQ(r.error, "");
    EXPECT_EQ(results[0].answers, expected) << n << " ranks";
  }
}

// Messages of every size: empty, within the one-collective slot, at its edge and past it (two rounds).
TEST(ContextParallel, ByteCollectivesCarryAnyLength) {
  const int n = 3;
  const std::vector<std::size_t> sizes = {0, 1, 4087, 4088, 4089, 100000};
  const auto message = [](int rank, std::size_t size) {
    std::string m(size, '\0');
    for (std::size_t i = 0; i < size; ++i) m[i] = static_cast<char>((i * 131 + static_cast<std::size_t>(rank) * 7) & 0xFF);
    return m;
  };
  const auto errors = on_ranks(n, [&](int r, dist::ProcessGroup& group) {
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      // Ranks send different lengths in one call (rank r: sizes[(i + r) % 6]).
      const auto all = group.all_gather_bytes(message(r, sizes[(i + static_cast<std::size_t>(r)) % sizes.size()]), "test");
      for (int q = 0; q < n; ++q)
        if (all[static_cast<std::size_t>(q)] != message(q, sizes[(i + static_cast<std::size_t>(q)) % sizes.size()]))
          throw std::runtime_error("all_gather_bytes: rank " + std::to_string(q) + "'s message differs, size " + std::to_string(sizes[i]));
      std::string b = r == 1 ? message(1, sizes[i]) : std::string("stale");
      group.broadcast_bytes(b, 1, "test");
      if (b != message(1, sizes[i])) throw std::runtime_error("broadcast_bytes differs, size " + std::to_string(sizes[i]));
    }
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(ContextParallel, ShardsCoverThePromptOnce) {
  for (const std::uint64_t total : {0ull, 1ull, 7ull, 1000003ull})
    for (const int n : {1, 2, 3, 8}) {
      std::uint64_t expected = 0;
      for (int r = 0; r < n; ++r) {
        const Shard s = shard_of(total, r, n, 100);
        EXPECT_EQ(s.begin, expected);
        EXPECT_LE(s.begin, s.end);
        EXPECT_EQ(s.halo_begin, s.begin - std::min<std::uint64_t>(s.begin, 100));
        expected = s.end;
      }
      EXPECT_EQ(expected, total);
    }
}

}  // namespace
}  // namespace hashhop::engine
