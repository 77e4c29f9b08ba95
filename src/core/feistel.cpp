// Key schedule and domain sizing of the Feistel permutation (see feistel.h).
// Tested by tests/core/test_feistel.cpp.
#include "hashhop/core/feistel.h"

#include <bit>
#include <stdexcept>

namespace hashhop::core {

FeistelPermutation::FeistelPermutation(std::uint64_t domain_size, std::uint64_t key) : domain_size_(domain_size) {
  if (domain_size == 0) throw std::invalid_argument("FeistelPermutation: empty domain");
  // Smallest bit count with 2^bits >= n (at least 2, so both parts exist), split as evenly as possible.
  int bits = domain_size <= 1 ? 1 : 64 - std::countl_zero(domain_size - 1);
  if (bits < 2) bits = 2;
  if (bits > 62) throw std::invalid_argument("FeistelPermutation: domain larger than 2^62");
  low_bits_ = bits / 2;
  low_mask_ = (1ULL << low_bits_) - 1;
  high_mask_ = (1ULL << (bits - low_bits_)) - 1;
  std::uint64_t state = key;
  for (auto& round_key : round_keys_) {
    state += 0x9e3779b97f4a7c15ULL;
    round_key = mix64(state);
  }
}

}  // namespace hashhop::core
