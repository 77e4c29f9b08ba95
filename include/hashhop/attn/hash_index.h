// Hash-index attention (CPU reference): key signatures live in hash tables, a query finds its
// candidates in expected O(1) and attends over them. Exact mode: one open-addressing table (linear
// probing) keyed by the whole signature. Approximate mode: L tables of K sampled bits each (bit-sampling
// LSH for Hamming distance); candidates are the union. Insertion streams, one key at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "hashhop/attn/attention_problem.h"

namespace hashhop::attn {

// Open addressing with linear probing from a K-bit code (up to 64 bits) to the keys that have it;
// keys of one code are chained through `next_` in insertion order.
class CodeTable {
 public:
  explicit CodeTable(std::size_t expected_keys = 16);
  void insert(std::uint64_t code, int key);
  // Appends the keys stored under `code` (insertion order) to out.
  void find(std::uint64_t code, std::vector<int>& out) const;
  std::size_t size() const { return keys_; }
  std::size_t capacity() const { return slots_.size(); }
  std::size_t max_probe() const { return max_probe_; }
  std::size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot) + next_.capacity() * sizeof(int); }

 private:
  struct Slot {
    std::uint64_t code = 0;
    int head = -1;  // first key, -1 = empty slot
    int tail = -1;
  };
  void grow();
  std::vector<Slot> slots_;
  std::vector<int> next_;  // next key with the same code, -1 = end
  std::size_t used_slots_ = 0;
  std::size_t keys_ = 0;
  std::size_t max_probe_ = 0;
};

struct IndexConfig {
  int bits = 64;       // signature bits (exact mode keys on all of them; at most 64 here)
  int tables = 0;      // 0 = exact mode; otherwise L tables ...
  int bits_per_table = 16;  // ... of K sampled bit positions each
  std::uint64_t seed = 0;
};

// The K bit positions each LSH table samples (a keyed permutation of [0, bits), first K taken); empty in
// exact mode. Shared with the CUDA index so both find the same candidates.
std::vector<std::vector<int>> sampled_bit_positions(const IndexConfig& config);

// A streaming index over the signatures of one kv head.
class SignatureIndex {
 public:
  explicit SignatureIndex(const IndexConfig& config);
  void insert(std::uint64_t signature, int key);
  // Candidate keys for a query signature, ascending and without repeats.
  std::vector<int> candidates(std::uint64_t signature) const;
  // The same, cut at last_key (inclusive): what a causal query at that position may see.
  std::vector<int> candidates_up_to(std::uint64_t signature, int last_key) const;
  std::size_t size() const { return size_; }

 private:
  std::uint64_t table_code(int table, std::uint64_t signature) const;
  IndexConfig config_;
  std::vector<std::vector<int>> sampled_bits_;  // per table
  std::vector<CodeTable> tables_;
  std::size_t size_ = 0;
};

// One index per kv head over k_signatures [heads_kv, n_k], keys inserted in order 0 .. n_k - 1.
std::vector<SignatureIndex> build_head_indexes(const std::uint64_t* k_signatures, int heads_kv, int n_k, const IndexConfig& config);

// q_signatures [heads_q, n_q], k_signatures [heads_kv, n_k] (one 64-bit word each). Causal problems
// drop candidates after the query's position.
void index_attention(const AttentionProblem& problem, const std::uint64_t* q_signatures,
                     const std::uint64_t* k_signatures, const IndexConfig& config, double* out, double* lse = nullptr);

}  // namespace hashhop::attn
