// ReferenceStore (see reference_store.h): an append-only arena of run letters, parallel entry arrays
// and attn::CodeTable (open addressing, linear probing, chained entries) as the index.
#include "hashhop/engine/reference_store.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "hashhop/core/mix64.h"

namespace hashhop::engine {

std::uint64_t ReferenceStore::default_hash(std::string_view letters) {
  // 8 bytes at a time through the generator's 64-bit mixer; the length keeps "a" and "a\0" apart.
  std::uint64_t h = core::mix64(letters.size() ^ 0x9e3779b97f4a7c15ULL);
  std::size_t i = 0;
  for (; i + 8 <= letters.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, letters.data() + i, 8);
    h = core::mix64(h ^ word);
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, letters.data() + i, letters.size() - i);
  return core::mix64(h ^ tail ^ (static_cast<std::uint64_t>(letters.size() - i) << 56));
}

ReferenceStore::ReferenceStore(ContentHash hash) : hash_(hash ? std::move(hash) : ContentHash(default_hash)) {}

std::uint32_t ReferenceStore::add_run(std::string_view letters) {
  if (run_begin_.size() >= std::numeric_limits<std::uint32_t>::max()) throw std::length_error("engine: more than 2^32 runs");
  run_begin_.push_back(letters_.size());
  letters_.append(letters);
  return static_cast<std::uint32_t>(run_begin_.size() - 1);
}

std::string_view ReferenceStore::run(std::uint32_t id) const {
  const std::uint64_t begin = run_begin_[id];
  const std::uint64_t end = id + 1 < run_begin_.size() ? run_begin_[id + 1] : letters_.size();
  return std::string_view(letters_).substr(begin, end - begin);
}

std::uint32_t ReferenceStore::add_entry(std::uint32_t key_run, std::uint32_t value_run, float log_gate) {
  // CodeTable ids are ints: 2^31 entries is the limit (300M characters of HashHop make about 8M).
  if (log_gate_.size() >= static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::length_error("engine: more than 2^31 reference points");
  const auto entry = static_cast<std::uint32_t>(log_gate_.size());
  key_run_.push_back(key_run);
  value_run_.push_back(value_run);
  log_gate_.push_back(log_gate);
  index_.insert(hash_(run(key_run)), static_cast<int>(entry));
  return entry;
}

void ReferenceStore::merge_gate(std::uint32_t entry, float log_gate) {
  // Two positions with one key and one value are one term of the softmax with gate σ1 + σ2.
  float& g = log_gate_[entry];
  const float hi = std::max(g, log_gate), lo = std::min(g, log_gate);
  g = hi + std::log1p(std::exp(lo - hi));
}

std::size_t ReferenceStore::find(std::string_view key_letters, std::vector<std::uint32_t>& out,
                                 std::size_t limit) const {
  thread_local std::vector<int> chain;
  chain.clear();
  index_.find(hash_(key_letters), chain);
  std::size_t found = 0;
  for (const int entry : chain) {
    if (run(key_run_[static_cast<std::size_t>(entry)]) != key_letters) continue;  // a hash collision
    if (found++ < limit) out.push_back(static_cast<std::uint32_t>(entry));
  }
  return found;
}

StoreBytes ReferenceStore::bytes() const {
  StoreBytes b;
  b.letters = letters_.capacity();
  b.runs = run_begin_.capacity() * sizeof(std::uint64_t);
  b.entries = key_run_.capacity() * sizeof(std::uint32_t) + value_run_.capacity() * sizeof(std::uint32_t) +
              log_gate_.capacity() * sizeof(float);
  b.index = index_.memory_bytes();
  return b;
}

}  // namespace hashhop::engine
