// HashHop problem generation in Magic's format (see generator.h and docs/format.md).
// Throughput is measured by bench/bench_generator.cpp; correctness by tests/bench/test_generator.cpp.
#include "hashhop/bench/generator.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "hashhop/bench/magic_format.h"

namespace hashhop::bench {
namespace {

constexpr std::uint64_t kAlphabetSize = 52;
// Uniqueness is guaranteed by drawing the first P characters of every hash as a permutation of
// [0, 52^P); the rest are free random characters. P = 7 by default: 52^7 ≈ 1.03e12 sits just under 2^40,
// so the permutation needs ~1.07 cycle walks, and it exceeds any hash count we could write out; P grows
// only if a problem needs more hashes (and never beyond L).
constexpr int kDefaultUniquePrefix = 7;

std::uint64_t pow52(int exponent) {
  std::uint64_t value = 1;
  for (int i = 0; i < exponent; ++i) value *= kAlphabetSize;
  return value;
}

// Saturating 52^L, enough to compare against a hash count.
std::uint64_t capacity_for(int hash_len) {
  std::uint64_t value = 1;
  for (int i = 0; i < hash_len; ++i) {
    if (value > UINT64_MAX / kAlphabetSize) return UINT64_MAX;
    value *= kAlphabetSize;
  }
  return value;
}

std::uint64_t hash_count(const GenConfig& config, std::uint64_t n_chains) {
  return n_chains * static_cast<std::uint64_t>(config.hops + 1);
}

}  // namespace

namespace {
void validate_shape(const GenConfig& config, const GenFieldNames& names) {
  if (config.hops < 1) throw std::invalid_argument(names.hops + ": must be >= 1, got " + std::to_string(config.hops));
  if (config.hops > 1'000'000) throw std::invalid_argument(names.hops + ": must be <= 1000000, got " + std::to_string(config.hops));
  if (config.hash_len < 1) throw std::invalid_argument(names.hash_len + ": must be >= 1, got " + std::to_string(config.hash_len));
  if (config.hash_len > 4096) throw std::invalid_argument(names.hash_len + ": must be <= 4096, got " + std::to_string(config.hash_len));
}
}  // namespace

std::uint64_t chains_for(const GenConfig& config) {
  validate_shape(config, {});
  const std::uint64_t chars_per_chain = static_cast<std::uint64_t>(2 * config.hash_len + 3) * config.hops;
  return config.n_chars / chars_per_chain + (config.n_chars % chars_per_chain != 0);  // ceil without overflow
}

void validate(const GenConfig& config, const GenFieldNames& names) {
  validate_shape(config, names);
  if (config.n_chars < 1) throw std::invalid_argument(names.n_chars + ": must be >= 1");
  // A record without queries is one its own scorer and solver reject.
  if (config.num_queries < 1) throw std::invalid_argument(names.num_queries + ": must be >= 1");
  const std::uint64_t chains = chains_for(config);
  if (config.num_queries > chains) {
    throw std::invalid_argument(names.num_queries + ": " + std::to_string(config.num_queries) + " queries but only " +
                                std::to_string(chains) + " chains fit in " + std::to_string(config.n_chars) +
                                " characters");
  }
  if (chains > (1ULL << 40)) throw std::invalid_argument(names.n_chars + ": too large (over 2^40 chains)");
  const std::uint64_t needed = hash_count(config, chains);
  if (needed > capacity_for(config.hash_len)) {
    throw std::invalid_argument(names.hash_len + ": " + std::to_string(config.hash_len) + " characters give at most " +
                                std::to_string(capacity_for(config.hash_len)) + " distinct hashes, " +
                                std::to_string(needed) + " needed");
  }
}

HashHopProblem::HashHopProblem(const GenConfig& config) : config_(config) {
  validate(config_);
  n_chains_ = chains_for(config_);
  unique_prefix_len_ = std::min(config_.hash_len, kDefaultUniquePrefix);
  while (capacity_for(unique_prefix_len_) < hash_count(config_, n_chains_)) ++unique_prefix_len_;
  const std::uint64_t key = mix64(config_.seed ^ 0x68617368686f70ULL);  // "hashhop"
  line_order_ = FeistelPermutation(n_lines(), mix64(key + 1));
  hash_prefix_ = FeistelPermutation(pow52(unique_prefix_len_), mix64(key + 2));
  suffix_key_ = mix64(key + 3);
}

std::uint64_t HashHopProblem::prompt_size() const {
  const std::uint64_t link = 2 * static_cast<std::uint64_t>(config_.hash_len) + 3;  // "K = V"
  return n_lines() * link + 2 * n_chains_ /* quotes on final links */ + (n_lines() - 1) /* newlines */;
}

void HashHopProblem::write_hash(std::uint64_t chain, int level, char* out) const {
  const std::uint64_t id = chain * static_cast<std::uint64_t>(config_.hops + 1) + static_cast<std::uint64_t>(level);
  std::uint64_t prefix = hash_prefix_(id);
  for (int i = unique_prefix_len_ - 1; i >= 0; --i) {
    out[i] = kHashAlphabet[prefix % kAlphabetSize];
    prefix /= kAlphabetSize;
  }
  // The free suffix: successive base-52 digits of the fraction r/2^64; six digits per word keep the
  // bias below 52/2^34.
  std::uint64_t word_index = 0;
  for (int i = unique_prefix_len_; i < config_.hash_len;) {
    std::uint64_t fraction = mix64(id * 0x9e3779b97f4a7c15ULL + suffix_key_ + word_index++);
    for (int d = 0; d < 6 && i < config_.hash_len; ++d, ++i) {
      const unsigned __int128 product = static_cast<unsigned __int128>(fraction) * kAlphabetSize;
      out[i] = kHashAlphabet[static_cast<std::uint64_t>(product >> 64)];
      fraction = static_cast<std::uint64_t>(product);
    }
  }
}

std::string HashHopProblem::hash(std::uint64_t chain, int level) const {
  std::string out(static_cast<std::size_t>(config_.hash_len), '\0');
  write_hash(chain, level, out.data());
  return out;
}

std::size_t HashHopProblem::write_line(std::uint64_t position, char* out) const {
  const auto hops = static_cast<std::uint64_t>(config_.hops);
  const std::uint64_t line = line_at(position);
  const std::uint64_t chain = line / hops;
  const int link = static_cast<int>(line % hops);
  const auto len = static_cast<std::size_t>(config_.hash_len);
  char* p = out;
  write_hash(chain, link, p);
  p += len;
  std::memcpy(p, " = ", 3);
  p += 3;
  const bool final_link = link + 1 == config_.hops;
  if (final_link) *p++ = '\'';
  write_hash(chain, link + 1, p);
  p += len;
  if (final_link) *p++ = '\'';
  return static_cast<std::size_t>(p - out);
}

std::string HashHopProblem::target(std::uint64_t chain) const {
  if (!config_.cot) return hash(chain, config_.hops);
  std::string out = hash(chain, 1);
  for (int level = 2; level <= config_.hops; ++level) out += " = " + hash(chain, level);
  return out;
}

std::string HashHopProblem::completion() const {
  std::vector<CompletionQuery> queries;
  queries.reserve(config_.num_queries);
  for (std::uint64_t q = 0; q < config_.num_queries; ++q) queries.push_back({hash(q, 0), target(q)});
  return format_completion(config_.hops, config_.cot, queries);
}

std::string HashHopProblem::prompt() const {
  std::string out;
  out.reserve(prompt_size());
  stream_prompt([&](std::string_view chunk) { out.append(chunk); }, "\n");
  return out;
}

void HashHopProblem::stream_prompt(const std::function<void(std::string_view)>& sink, std::string_view newline,
                                   const std::function<void(std::uint64_t)>& on_progress,
                                   std::size_t chunk_bytes) const {
  const std::size_t max_line = 2 * static_cast<std::size_t>(config_.hash_len) + 5 + newline.size();
  std::vector<char> buffer(std::max(chunk_bytes, max_line) + max_line);
  std::size_t used = 0;
  const std::uint64_t lines = n_lines();
  for (std::uint64_t position = 0; position < lines; ++position) {
    if (position > 0) {
      std::memcpy(buffer.data() + used, newline.data(), newline.size());
      used += newline.size();
    }
    used += write_line(position, buffer.data() + used);
    if (used >= chunk_bytes) {
      sink(std::string_view(buffer.data(), used));
      used = 0;
      if (on_progress) on_progress(position + 1);
    }
  }
  if (used > 0) sink(std::string_view(buffer.data(), used));
  if (on_progress) on_progress(lines);
}

}  // namespace hashhop::bench
