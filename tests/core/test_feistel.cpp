// The Feistel permutation is a bijection on [0, n) for every n, deterministic and key-dependent.
// Run: ctest -R Feistel
#include <gtest/gtest.h>

#include <vector>

#include "hashhop/core/feistel.h"

using hashhop::core::FeistelPermutation;

TEST(Feistel, IsABijectionForManyDomainSizes) {
  for (std::uint64_t n : {1ULL, 2ULL, 3ULL, 4ULL, 5ULL, 7ULL, 52ULL, 63ULL, 64ULL, 65ULL, 1000ULL, 4095ULL, 4096ULL, 100003ULL}) {
    const FeistelPermutation perm(n, 12345 + n);
    std::vector<bool> seen(n, false);
    for (std::uint64_t x = 0; x < n; ++x) {
      const std::uint64_t y = perm(x);
      ASSERT_LT(y, n) << "n=" << n << " x=" << x;
      ASSERT_FALSE(seen[y]) << "n=" << n << " x=" << x << " collides at " << y;
      seen[y] = true;
    }
  }
}

TEST(Feistel, KeyChangesTheOrderAndSameKeyRepeatsIt) {
  const FeistelPermutation a(10000, 1), b(10000, 1), c(10000, 2);
  int differing = 0;
  for (std::uint64_t x = 0; x < 10000; ++x) {
    ASSERT_EQ(a(x), b(x));
    differing += a(x) != c(x) ? 1 : 0;
  }
  EXPECT_GT(differing, 9900);
}

TEST(Feistel, ShufflesNeighboursApart) {
  // Consecutive inputs must not map to nearby outputs (the prompt's line order must look random).
  const std::uint64_t n = 1 << 20;
  const FeistelPermutation perm(n, 99);
  int close = 0;
  for (std::uint64_t x = 0; x + 1 < 10000; ++x) {
    const auto a = static_cast<std::int64_t>(perm(x)), b = static_cast<std::int64_t>(perm(x + 1));
    close += std::llabs(a - b) < static_cast<std::int64_t>(n / 100) ? 1 : 0;
  }
  EXPECT_LT(close, 10000 * 3 / 100);  // ~2% expected for independent uniform pairs
}

TEST(Feistel, RejectsAnEmptyDomain) { EXPECT_THROW(FeistelPermutation(0, 1), std::invalid_argument); }
