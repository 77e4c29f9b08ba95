// The engine's memory: one entry per reference point (a position the hash gate keeps), holding the
// letters of the hash it keys on, the letters it returns and its gate, with an exact hash index.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "hashhop/attn/hash_index.h"

namespace hashhop::engine {

// Host bytes held, by part (what the memory-bookkeeping tests and engine-bench report).
struct StoreBytes {
  std::uint64_t letters = 0;  // run letters
  std::uint64_t runs = 0;     // run offsets
  std::uint64_t entries = 0;  // key run, value run and gate per entry
  std::uint64_t index = 0;    // hash table slots and chains
  std::uint64_t total() const { return letters + runs + entries + index; }
};

// Runs (letter strings) are stored once and shared by entries; the model's key is a function of the
// key run's letters alone, so equal letters mean equal keys and an exact lookup by letters finds
// every entry a query of those letters would score highest. Lookups verify the letters, so a 64-bit
// hash collision cannot return a wrong entry.
class ReferenceStore {
 public:
  using ContentHash = std::function<std::uint64_t(std::string_view)>;
  explicit ReferenceStore(ContentHash hash = {});

  std::uint32_t add_run(std::string_view letters);
  std::uint32_t add_entry(std::uint32_t key_run, std::uint32_t value_run, float log_gate);
  void merge_gate(std::uint32_t entry, float log_gate);  // another position with the same runs

  // Entries whose key run has exactly these letters, in insertion order; at most `limit` appended.
  // Returns how many exist (which may exceed limit).
  std::size_t find(std::string_view key_letters, std::vector<std::uint32_t>& out, std::size_t limit) const;

  std::string_view run(std::uint32_t id) const;
  std::uint32_t key_run(std::uint32_t entry) const { return key_run_[entry]; }
  std::uint32_t value_run(std::uint32_t entry) const { return value_run_[entry]; }
  float log_gate(std::uint32_t entry) const { return log_gate_[entry]; }
  std::size_t entries() const { return log_gate_.size(); }
  std::size_t runs() const { return run_begin_.size(); }
  StoreBytes bytes() const;

  static std::uint64_t default_hash(std::string_view letters);

 private:
  ContentHash hash_;
  std::string letters_;
  std::vector<std::uint64_t> run_begin_;  // run i = letters_[run_begin_[i], run_begin_[i + 1] or end)
  std::vector<std::uint32_t> key_run_, value_run_;
  std::vector<float> log_gate_;
  attn::CodeTable index_;  // content hash of the key run -> entries
};

}  // namespace hashhop::engine
