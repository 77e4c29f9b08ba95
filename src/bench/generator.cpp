// HashHop problem generation in Magic's format (see generator.h and docs/format.md).
// Throughput is measured by bench/bench_generator.cpp; correctness by tests/bench/test_generator.cpp.
#include "hashhop/bench/generator.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/ordered_render.h"

namespace hashhop::bench {
namespace {

constexpr std::uint64_t kAlphabetSize = 52;
// Uniqueness is guaranteed by drawing the first P characters of every hash as a permutation of
// [0, 52^P); the rest are free random characters. P = 7 by default: 52^7 ≈ 1.03e12 sits just under 2^40,
// so the permutation needs ~1.07 cycle walks, and it exceeds any hash count we could write out; P grows
// only if a problem needs more hashes (and never beyond L).
constexpr int kDefaultUniquePrefix = 7;

// Two base-52 digits at a time: entry d holds the characters of d / 52 and d % 52, so one table
// load and one division by 2704 replace two of each.
struct DigitPairs {
  char chars[52 * 52][2];
  constexpr DigitPairs() : chars{} {
    for (std::size_t d = 0; d < 52 * 52; ++d) {
      chars[d][0] = kHashAlphabet[d / 52];
      chars[d][1] = kHashAlphabet[d % 52];
    }
  }
};
constexpr DigitPairs kDigitPairs;

// Inlined into the line loop (write_lines): as a call it costs as much as the arithmetic, and inline the
// compiler overlaps the multiplies of neighbouring hashes.
[[gnu::always_inline]] inline void emit_hash(std::uint64_t id, std::uint64_t prefix, int unique_prefix_len,
                                             int hash_len, std::uint64_t suffix_key, char* out) {
  // The prefix: the permuted value's base-52 digits, most significant first, two per table entry.
  int i = unique_prefix_len;
  for (; i >= 2; i -= 2) {
    std::memcpy(out + i - 2, kDigitPairs.chars[prefix % (kAlphabetSize * kAlphabetSize)], 2);
    prefix /= kAlphabetSize * kAlphabetSize;
  }
  if (i == 1) out[0] = kHashAlphabet[prefix];
  // The free suffix: successive base-52 digits of the fraction r/2^64; six digits per word keep the
  // bias below 52/2^34. Two digits at once are exact: the high word of r·52² is 52·d1 + d2, and its
  // low word is the fraction left after both.
  std::uint64_t word_index = 0;
  for (int pos = unique_prefix_len; pos < hash_len;) {
    std::uint64_t fraction = core::mix64(id * 0x9e3779b97f4a7c15ULL + suffix_key + word_index++);
    const int digits = std::min(6, hash_len - pos);
    int d = 0;
    for (; d + 2 <= digits; d += 2, pos += 2) {
      const unsigned __int128 product = static_cast<unsigned __int128>(fraction) * (kAlphabetSize * kAlphabetSize);
      std::memcpy(out + pos, kDigitPairs.chars[static_cast<std::uint64_t>(product >> 64)], 2);
      fraction = static_cast<std::uint64_t>(product);
    }
    if (d < digits) {
      const unsigned __int128 product = static_cast<unsigned __int128>(fraction) * kAlphabetSize;
      out[pos++] = kHashAlphabet[static_cast<std::uint64_t>(product >> 64)];
    }
  }
}

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
  const std::uint64_t key = core::mix64(config_.seed ^ 0x68617368686f70ULL);  // "hashhop"
  line_order_ = core::FeistelPermutation(n_lines(), core::mix64(key + 1));
  hash_prefix_ = core::FeistelPermutation(pow52(unique_prefix_len_), core::mix64(key + 2));
  suffix_key_ = core::mix64(key + 3);
}

std::uint64_t HashHopProblem::prompt_size() const {
  const std::uint64_t link = 2 * static_cast<std::uint64_t>(config_.hash_len) + 3;  // "K = V"
  return n_lines() * link + 2 * n_chains_ /* quotes on final links */ + (n_lines() - 1) /* newlines */;
}

void HashHopProblem::write_hash(std::uint64_t chain, int level, char* out) const {
  const std::uint64_t id = chain * static_cast<std::uint64_t>(config_.hops + 1) + static_cast<std::uint64_t>(level);
  write_hash_with_prefix(id, hash_prefix_(id), out);
}

void HashHopProblem::write_hash_with_prefix(std::uint64_t id, std::uint64_t prefix, char* out) const {
  emit_hash(id, prefix, unique_prefix_len_, config_.hash_len, suffix_key_, out);
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

std::size_t HashHopProblem::write_lines(std::uint64_t begin, std::uint64_t end, std::string_view newline,
                                       char* out) const {
  // Lines go in batches whose permutations run side by side (FeistelPermutation::apply): one line at a
  // time, each cycle walk waits on the previous multiply and ends in a mispredicted branch.
  constexpr std::uint64_t kBatch = 64;
  const auto hops = static_cast<std::uint64_t>(config_.hops);
  const int hash_len = config_.hash_len, prefix_len = unique_prefix_len_;
  const std::uint64_t suffix_key = suffix_key_;
  const auto len = static_cast<std::size_t>(hash_len);
  // line / hops by a multiply with ceil(2^64 / hops): exact while line · hops < 2^64 (the error term
  // line/2^64 stays below 1/hops), which holds for every prompt that fits on a disk; else divide.
  const bool by_reciprocal = hops > 1 && static_cast<unsigned __int128>(n_lines()) * hops < (static_cast<unsigned __int128>(1) << 64);
  const std::uint64_t reciprocal = by_reciprocal ? UINT64_MAX / hops + 1 : 0;
  const auto chain_of = [&](std::uint64_t line) {
    if (by_reciprocal) return static_cast<std::uint64_t>((static_cast<unsigned __int128>(line) * reciprocal) >> 64);
    return hops == 1 ? line : line / hops;
  };
  std::uint64_t positions[kBatch], lines[kBatch], ids[2 * kBatch], prefixes[2 * kBatch];
  char* p = out;
  for (std::uint64_t base = begin; base < end; base += kBatch) {
    const std::size_t count = static_cast<std::size_t>(std::min(kBatch, end - base));
    for (std::size_t i = 0; i < count; ++i) positions[i] = base + i;
    line_order_.apply(positions, lines, count);
    for (std::size_t i = 0; i < count; ++i) {
      // Line (chain, link) joins hash ids chain·(hops+1) + link and the next one.
      const std::uint64_t chain = chain_of(lines[i]);
      ids[2 * i] = lines[i] + chain;
      ids[2 * i + 1] = lines[i] + chain + 1;
    }
    hash_prefix_.apply(ids, prefixes, 2 * count);
    for (std::size_t i = 0; i < count; ++i) {
      if (base + i > 0) {
        // "\n" or "\\n": two fixed-size stores instead of a memcpy call per line.
        if (newline.size() == 1) {
          p[0] = newline[0];
        } else if (newline.size() == 2) {
          p[0] = newline[0];
          p[1] = newline[1];
        } else {
          std::memcpy(p, newline.data(), newline.size());
        }
        p += newline.size();
      }
      const bool final_link = lines[i] - chain_of(lines[i]) * hops + 1 == hops;
      emit_hash(ids[2 * i], prefixes[2 * i], prefix_len, hash_len, suffix_key, p);
      p += len;
      std::memcpy(p, " = ", 3);
      p += 3;
      *p = '\'';
      p += final_link;
      emit_hash(ids[2 * i + 1], prefixes[2 * i + 1], prefix_len, hash_len, suffix_key, p);
      p += len;
      *p = '\'';
      p += final_link;
    }
  }
  return static_cast<std::size_t>(p - out);
}

void HashHopProblem::stream_prompt(const std::function<void(std::string_view)>& sink, std::string_view newline,
                                   const std::function<void(std::uint64_t)>& on_progress, std::size_t chunk_bytes,
                                   int threads) const {
  const std::size_t max_line = max_line_bytes(newline);
  const std::uint64_t lines_per_chunk = std::max<std::size_t>(chunk_bytes / max_line, 1);
  render_in_order(
      n_lines(), lines_per_chunk, static_cast<std::size_t>(lines_per_chunk) * max_line, threads,
      [&](std::uint64_t begin, std::uint64_t end, char* out) { return write_lines(begin, end, newline, out); },
      [&](std::string_view chunk, std::uint64_t lines_done) {
        sink(chunk);
        if (on_progress) on_progress(lines_done);
      });
}

}  // namespace hashhop::bench
