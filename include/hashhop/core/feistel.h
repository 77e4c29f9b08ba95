// Keyed pseudo-random permutation of [0, n) in O(1) memory: a Feistel network with cycle walking.
// It lets the generator shuffle billions of lines and draw collision-free hashes without storing either,
// and the hash index sample bit positions. Core library (no bench, no torch); tests/core/test_feistel.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hashhop/core/mix64.h"

namespace hashhop::core {

class FeistelPermutation {
 public:
  FeistelPermutation() = default;
  FeistelPermutation(std::uint64_t domain_size, std::uint64_t key);

  std::uint64_t domain_size() const { return domain_size_; }

  // Cycle walking: the network permutes [0, 2^bits) with 2^bits < 2n; re-encrypting until the value
  // falls back into [0, n) restricts it to a permutation of [0, n) after fewer than 2 walks on average.
  std::uint64_t operator()(std::uint64_t x) const {
    do {
      x = encrypt(x);
    } while (x >= domain_size_);
    return x;
  }

  // out[i] = (*this)(in[i]), the same values, faster: every lane's first encryption runs without a branch,
  // so independent multiplies overlap, and only the lanes that fell outside [0, n) walk again, as a
  // compacted list. The one-at-a-time loop mispredicts its exit on about half of the lines of a prompt.
  void apply(const std::uint64_t* in, std::uint64_t* out, std::size_t count) const {
    constexpr std::size_t kLanes = 64;
    // A local copy: stores through `out` could alias the members, which would be reloaded after each.
    const FeistelPermutation self = *this;
    for (std::size_t base = 0; base < count; base += kLanes) {
      const std::size_t lanes = std::min(kLanes, count - base);
      std::uint64_t* values = out + base;
      std::uint32_t pending[kLanes];
      std::size_t walking = 0;
      for (std::size_t i = 0; i < lanes; ++i) values[i] = self.encrypt(in[base + i]);
      for (std::size_t i = 0; i < lanes; ++i) {
        pending[walking] = static_cast<std::uint32_t>(i);
        walking += values[i] >= self.domain_size_;
      }
      while (walking > 0) {
        std::size_t still = 0;
        for (std::size_t j = 0; j < walking; ++j) {
          const std::uint32_t i = pending[j];
          values[i] = self.encrypt(values[i]);
          pending[still] = i;
          still += values[i] >= self.domain_size_;
        }
        walking = still;
      }
    }
  }

 private:
  static constexpr int kRounds = 4;  // four rounds: the Luby-Rackoff bound for a strong permutation

  // One multiply per round: the high half of a 64x64 product mixes every input bit into the low bits
  // we keep; four rounds make up for its weakness as a stand-alone hash.
  static std::uint64_t round_function(std::uint64_t x, std::uint64_t key) {
    const unsigned __int128 product = static_cast<unsigned __int128>(x ^ key) * 0x9e3779b97f4a7c15ULL;
    return static_cast<std::uint64_t>(product >> 64) ^ static_cast<std::uint64_t>(product);
  }

  // An unbalanced Feistel network without swaps: the low `low_bits_` and the high bits take turns
  // being xored with a keyed function of the other part, so any bit count works, odd ones too.
  std::uint64_t encrypt(std::uint64_t x) const {
    std::uint64_t high = x >> low_bits_;
    std::uint64_t low = x & low_mask_;
    for (int round = 0; round < kRounds; round += 2) {
      low ^= round_function(high, round_keys_[round]) & low_mask_;
      high ^= round_function(low, round_keys_[round + 1]) & high_mask_;
    }
    return (high << low_bits_) | low;
  }

  std::uint64_t domain_size_ = 1;
  int low_bits_ = 1;
  std::uint64_t low_mask_ = 1;
  std::uint64_t high_mask_ = 0;
  std::uint64_t round_keys_[kRounds] = {};
};

}  // namespace hashhop::core
