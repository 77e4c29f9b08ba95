// Hash tables and hash-index attention reference (see hash_index.h).
// Tested by tests/attn/test_attention.cpp.
#include "hashhop/attn/hash_index.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "hashhop/core/feistel.h"

namespace hashhop::attn {
namespace {
std::size_t slot_of(std::uint64_t code, std::size_t capacity) {
  return static_cast<std::size_t>(core::mix64(code)) & (capacity - 1);
}
}  // namespace

CodeTable::CodeTable(std::size_t expected_keys) {
  std::size_t capacity = 16;
  while (capacity < 2 * expected_keys) capacity *= 2;  // load factor <= 1/2 keeps probes short
  slots_.resize(capacity);
}

void CodeTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.size() * 2, Slot{});
  for (const Slot& slot : old) {
    if (slot.head < 0) continue;
    std::size_t s = slot_of(slot.code, slots_.size());
    while (slots_[s].head >= 0) s = (s + 1) & (slots_.size() - 1);
    slots_[s] = slot;
  }
}

void CodeTable::insert(std::uint64_t code, int key) {
  if (key < 0) throw std::invalid_argument("key: must be >= 0");
  if (static_cast<std::size_t>(key) >= next_.size()) next_.resize(static_cast<std::size_t>(key) + 1, -1);
  if (2 * (used_slots_ + 1) > slots_.size()) grow();
  std::size_t s = slot_of(code, slots_.size());
  std::size_t probes = 0;
  while (slots_[s].head >= 0 && slots_[s].code != code) {
    s = (s + 1) & (slots_.size() - 1);
    ++probes;
  }
  max_probe_ = std::max(max_probe_, probes);
  Slot& slot = slots_[s];
  if (slot.head < 0) {
    slot = Slot{code, key, key};
    ++used_slots_;
  } else {
    next_[static_cast<std::size_t>(slot.tail)] = key;
    slot.tail = key;
  }
  next_[static_cast<std::size_t>(key)] = -1;
  ++keys_;
}

void CodeTable::find(std::uint64_t code, std::vector<int>& out) const {
  std::size_t s = slot_of(code, slots_.size());
  while (slots_[s].head >= 0) {
    if (slots_[s].code == code) {
      for (int key = slots_[s].head; key >= 0; key = next_[static_cast<std::size_t>(key)]) out.push_back(key);
      return;
    }
    s = (s + 1) & (slots_.size() - 1);
  }
}

std::vector<std::vector<int>> sampled_bit_positions(const IndexConfig& config) {
  std::vector<std::vector<int>> sampled;
  for (int t = 0; t < config.tables; ++t) {
    const core::FeistelPermutation perm(static_cast<std::uint64_t>(config.bits), core::mix64(config.seed + static_cast<std::uint64_t>(t)));
    std::vector<int> bits;
    for (int b = 0; b < config.bits_per_table; ++b) bits.push_back(static_cast<int>(perm(static_cast<std::uint64_t>(b))));
    sampled.push_back(bits);
  }
  return sampled;
}

SignatureIndex::SignatureIndex(const IndexConfig& config) : config_(config) {
  if (config.bits < 1 || config.bits > 64) throw std::invalid_argument("bits: the index keys on at most 64 bits");
  if (config.tables < 0) throw std::invalid_argument("tables: must be >= 0");
  if (config.tables > 0 && (config.bits_per_table < 1 || config.bits_per_table > config.bits)) {
    throw std::invalid_argument("bits_per_table: must be in [1, bits]");
  }
  tables_.assign(static_cast<std::size_t>(std::max(config.tables, 1)), CodeTable());
  sampled_bits_ = sampled_bit_positions(config);
}

std::uint64_t SignatureIndex::table_code(int table, std::uint64_t signature) const {
  const std::uint64_t mask = config_.bits == 64 ? ~0ULL : ((1ULL << config_.bits) - 1);
  if (config_.tables == 0) return signature & mask;
  std::uint64_t code = 0;
  const auto& bits = sampled_bits_[static_cast<std::size_t>(table)];
  for (std::size_t b = 0; b < bits.size(); ++b) code |= ((signature >> bits[b]) & 1ULL) << b;
  return code;
}

void SignatureIndex::insert(std::uint64_t signature, int key) {
  for (std::size_t t = 0; t < tables_.size(); ++t) tables_[t].insert(table_code(static_cast<int>(t), signature), key);
  ++size_;
}

std::vector<int> SignatureIndex::candidates(std::uint64_t signature) const {
  std::vector<int> out;
  for (std::size_t t = 0; t < tables_.size(); ++t) tables_[t].find(table_code(static_cast<int>(t), signature), out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<int> SignatureIndex::candidates_up_to(std::uint64_t signature, int last_key) const {
  std::vector<int> out = candidates(signature);
  out.erase(std::upper_bound(out.begin(), out.end(), last_key), out.end());  // ascending: cut the tail
  return out;
}

std::vector<SignatureIndex> build_head_indexes(const std::uint64_t* k_signatures, int heads_kv, int n_k, const IndexConfig& config) {
  std::vector<SignatureIndex> indexes;
  for (int kv = 0; kv < heads_kv; ++kv) {
    SignatureIndex index(config);
    for (int j = 0; j < n_k; ++j) index.insert(k_signatures[static_cast<std::int64_t>(kv) * n_k + j], j);
    indexes.push_back(std::move(index));
  }
  return indexes;
}

void index_attention(const AttentionProblem& p, const std::uint64_t* q_signatures, const std::uint64_t* k_signatures,
                     const IndexConfig& config, double* out, double* lse) {
  validate(p);
  const std::vector<SignatureIndex> indexes = build_head_indexes(k_signatures, p.heads_kv, p.n_k, config);
  attend_selected(p, [&](int h, int i, std::vector<int>& keys) {
    const std::vector<int> found =
        indexes[static_cast<std::size_t>(p.kv_head(h))].candidates_up_to(q_signatures[static_cast<std::int64_t>(h) * p.n_q + i], p.last_key(i));
    keys.insert(keys.end(), found.begin(), found.end());
  }, out, lse);
}

}  // namespace hashhop::attn
