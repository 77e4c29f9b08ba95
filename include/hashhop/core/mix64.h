// SplitMix64's finaliser, the project's one 64-bit mixing function (generator keys, hash-index slots,
// engine content hashes, training data seeds). Torch-free; tested through tests/core/test_feistel.cpp.
#pragma once

#include <cstdint>

namespace hashhop::core {

// A bijection on 64-bit words with good avalanche; used as the Feistel round keys' source and to derive
// independent keys from one seed.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace hashhop::core
