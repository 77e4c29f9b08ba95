// ReferenceStore: the index finds exactly the entries whose key letters match (also when every hash
// collides), merged gates add, and the byte count is the sum of its parts.
// Run: build/tests/test_engine (ctest runs it)
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "hashhop/engine/reference_store.h"

namespace hashhop::engine {
namespace {

std::string random_run(std::mt19937_64& rng, int max_len) {
  // A three-letter alphabet and short runs make repeats (and so multi-entry chains) common.
  std::string s(1 + rng() % static_cast<unsigned>(max_len), 'a');
  for (auto& c : s) c = "abC"[rng() % 3];
  return s;
}

void expect_exact_lookups(ReferenceStore& store) {
  std::mt19937_64 rng(7);
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) {
    keys.push_back(random_run(rng, 4));
    const auto key = store.add_run(keys.back());
    const auto value = store.add_run(random_run(rng, 16));
    store.add_entry(key, value, -0.1f * static_cast<float>(i % 7));
  }
  for (int probe = 0; probe < 300; ++probe) {
    const std::string asked = probe % 10 == 0 ? "absent" : random_run(rng, 4);
    std::vector<std::uint32_t> expected;
    for (std::uint32_t e = 0; e < keys.size(); ++e)
      if (keys[e] == asked) expected.push_back(e);
    std::vector<std::uint32_t> found;
    EXPECT_EQ(store.find(asked, found, 1 << 20), expected.size()) << asked;
    EXPECT_EQ(found, expected) << asked;  // every match, in insertion order, nothing else
    if (expected.size() > 2) {
      std::vector<std::uint32_t> first_two;
      EXPECT_EQ(store.find(asked, first_two, 2), expected.size());  // the count is not capped
      EXPECT_EQ(first_two, std::vector<std::uint32_t>(expected.begin(), expected.begin() + 2));
    }
  }
}

TEST(ReferenceStore, FindsExactlyTheEntriesWithTheAskedKeyLetters) {
  ReferenceStore store;
  expect_exact_lookups(store);
}

TEST(ReferenceStore, HashCollisionsNeverReturnAWrongEntry) {
  ReferenceStore store([](std::string_view) { return std::uint64_t{42}; });  // everything collides
  expect_exact_lookups(store);
}

TEST(ReferenceStore, DefaultHashSeparatesLengthsAndTails) {
  EXPECT_NE(ReferenceStore::default_hash("a"), ReferenceStore::default_hash("aa"));
  EXPECT_NE(ReferenceStore::default_hash("abcdefgh"), ReferenceStore::default_hash("abcdefghi"));
  EXPECT_NE(ReferenceStore::default_hash(""), ReferenceStore::default_hash("a"));
  EXPECT_EQ(ReferenceStore::default_hash("abcdefghijk"), ReferenceStore::default_hash(std::string("abcdefghijk")));
}

TEST(ReferenceStore, MergedGatesAddInProbabilitySpace) {
  ReferenceStore store;
  const auto run = store.add_run("key");
  const auto entry = store.add_entry(run, store.add_run("value"), std::log(0.25f));
  store.merge_gate(entry, std::log(0.5f));
  EXPECT_NEAR(std::exp(store.log_gate(entry)), 0.75, 1e-6);
  EXPECT_EQ(store.entries(), 1u);
}

TEST(ReferenceStore, ByteCountIsTheSumOfItsParts) {
  ReferenceStore store;
  const StoreBytes empty = store.bytes();
  for (int i = 0; i < 1000; ++i) {
    const auto key = store.add_run("keykeykey");
    store.add_entry(key, store.add_run("valuevalue"), -1.0f);
  }
  const StoreBytes b = store.bytes();
  EXPECT_EQ(b.total(), b.letters + b.runs + b.entries + b.index);
  EXPECT_GE(b.letters, 1000u * 19u);
  EXPECT_GE(b.runs, 2000u * sizeof(std::uint64_t));
  EXPECT_GE(b.entries, 1000u * (2 * sizeof(std::uint32_t) + sizeof(float)));
  EXPECT_GT(b.index, empty.index);
  EXPECT_EQ(store.runs(), 2000u);
  EXPECT_EQ(store.run(1), "valuevalue");
}

}  // namespace
}  // namespace hashhop::engine
