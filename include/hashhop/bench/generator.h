// The HashHop generator: Magic.dev's MultiHopEval.make_one text format, deterministic, collision-free and
// streaming (O(1) memory in the prompt length). Used by `hashhop gen`, the trainer and the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "hashhop/core/feistel.h"

namespace hashhop::bench {

inline constexpr int kCharsPerToken = 3;  // Magic's convention: "100M tokens" = 300M characters
inline constexpr std::string_view kHashAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

struct GenConfig {
  std::uint64_t n_chars = 0;      // requested prompt size (Magic's n_chars_problem)
  std::uint64_t num_queries = 5;  // queries in the completion
  int hops = 2;                   // links per chain
  int hash_len = 16;              // characters per hash (Magic's hash_pair_str_length)
  bool cot = false;               // chain-of-thought completion
  std::uint64_t seed = 0;
};

// What the fields are called where the config came from (CLI options, a config file's keys), so
// errors name what the user typed.
struct GenFieldNames {
  std::string n_chars = "n_chars", num_queries = "num_queries", hops = "hops", hash_len = "hash_len";
};

// Throws std::invalid_argument naming the offending field (e.g. "hops: must be >= 1, got 0").
void validate(const GenConfig& config, const GenFieldNames& names = {});

// Number of chains Magic's sizing rule gives: ceil(n_chars / ((2L+3)·hops)). Throws like validate()
// for hops or hash_len below 1 (the sizing would divide by zero).
std::uint64_t chains_for(const GenConfig& config);

// One HashHop problem, computed on demand. Chain c has hashes H(c,0) … H(c,hops); line (c, j) is
// "H(c,j) = H(c,j+1)", quoted on the last link. Lines are listed in a keyed pseudo-random order.
// Queries are chains 0 … num_queries-1 (their hashes are as random as any other chain's).
class HashHopProblem {
 public:
  explicit HashHopProblem(const GenConfig& config);

  const GenConfig& config() const { return config_; }
  std::uint64_t n_chains() const { return n_chains_; }
  std::uint64_t n_lines() const { return n_chains_ * static_cast<std::uint64_t>(config_.hops); }
  std::uint64_t prompt_size() const;  // exact characters of prompt()

  void write_hash(std::uint64_t chain, int level, char* out) const;
  // The same as write_hash for hash id chain·(hops+1) + level, given its permuted prefix value.
  void write_hash_with_prefix(std::uint64_t id, std::uint64_t prefix, char* out) const;
  std::string hash(std::uint64_t chain, int level) const;

  // Line id (chain·hops + link) shown at a prompt position.
  std::uint64_t line_at(std::uint64_t position) const { return line_order_(position); }
  // Writes the line at a prompt position (no newline) and returns its length.
  std::size_t write_line(std::uint64_t position, char* out) const;

  // What the completion expects for a chain: H(hops), or "H1 = H2 = … = H(hops)" with CoT.
  std::string target(std::uint64_t chain) const;
  std::string completion() const;
  std::string prompt() const;  // whole prompt in memory: for tests and small problems

  // Writes the lines at prompt positions [begin, end), each preceded by `newline` except position 0, and
  // returns the bytes written: at most (end - begin) · max_line_bytes(newline).
  std::size_t write_lines(std::uint64_t begin, std::uint64_t end, std::string_view newline, char* out) const;
  std::size_t max_line_bytes(std::string_view newline) const {
    return 2 * static_cast<std::size_t>(config_.hash_len) + 5 + newline.size();
  }

  // Streams the prompt in chunks of about chunk_bytes. `newline` separates lines ("\n", or "\\n"
  // inside a JSON string). on_progress, if set, gets the number of lines written so far. `threads`
  // renders chunks in parallel; the bytes are the same for any thread count and chunk size.
  void stream_prompt(const std::function<void(std::string_view)>& sink, std::string_view newline,
                     const std::function<void(std::uint64_t)>& on_progress = {},
                     std::size_t chunk_bytes = 1 << 20, int threads = 1) const;

 private:
  GenConfig config_;
  std::uint64_t n_chains_ = 0;
  int unique_prefix_len_ = 0;          // leading characters drawn without replacement
  core::FeistelPermutation line_order_;      // prompt position -> line id
  core::FeistelPermutation hash_prefix_;     // hash id -> unique prefix value in [0, 52^prefix)
  std::uint64_t suffix_key_ = 0;       // key of the free random characters after the prefix
};

}  // namespace hashhop::bench
