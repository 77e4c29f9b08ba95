// JSONL / text record serialisation (see record_writer.h). The prompt and the targets are streamed so a
// 300M-character record never sits in memory. Tested by tests/bench/test_generator.cpp.
#include "hashhop/bench/record_writer.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "hashhop/bench/ordered_render.h"
#include "hashhop/io/jsonl.h"

namespace hashhop::bench {
namespace {

constexpr std::size_t kChunkBytes = 1 << 20;

// Bytes of one `"H0": "TARGET"` entry with its ", " separator, at most.
std::size_t max_target_bytes(const GenConfig& config) {
  const auto len = static_cast<std::size_t>(config.hash_len);
  const std::size_t target = config.cot ? config.hops * len + 3 * (config.hops - 1) : len;
  return 2 + 1 + len + 4 + target + 1;
}

// The targets object's entries for chains [begin, end), written straight into the chunk: no string per
// chain (which cost as much as the hashes).
std::size_t write_targets(const HashHopProblem& problem, std::uint64_t begin, std::uint64_t end, char* out) {
  const GenConfig& config = problem.config();
  const auto len = static_cast<std::size_t>(config.hash_len);
  char* p = out;
  for (std::uint64_t chain = begin; chain < end; ++chain) {
    if (chain > 0) {
      std::memcpy(p, ", ", 2);
      p += 2;
    }
    *p++ = '"';
    problem.write_hash(chain, 0, p);
    p += len;
    std::memcpy(p, "\": \"", 4);
    p += 4;
    for (int level = config.cot ? 1 : config.hops; level <= config.hops; ++level) {
      if (level > 1 && config.cot) {
        std::memcpy(p, " = ", 3);
        p += 3;
      }
      problem.write_hash(chain, level, p);
      p += len;
    }
    *p++ = '"';
  }
  return static_cast<std::size_t>(p - out);
}

}  // namespace

void write_record(const HashHopProblem& problem, RecordFormat format,
                  const std::function<void(std::string_view)>& sink,
                  const std::function<void(std::uint64_t)>& on_progress, int threads) {
  const GenConfig& config = problem.config();
  if (format == RecordFormat::text) {
    problem.stream_prompt(sink, "\n", on_progress, kChunkBytes, threads);
    sink("\n");
    sink(problem.completion());
    return;
  }
  // Hashes are letters only, so the prompt needs no escaping beyond its newlines.
  sink("{\"prompt\": \"");
  problem.stream_prompt(sink, "\\n", on_progress, kChunkBytes, threads);
  std::string tail = "\", \"completion\": ";
  io::append_json_string(tail, problem.completion());
  tail += ", \"targets\": {";
  sink(tail);
  const std::size_t per_chain = max_target_bytes(config);
  const std::uint64_t chains_per_chunk = std::max<std::size_t>(kChunkBytes / per_chain, 1);
  render_in_order(
      problem.n_chains(), chains_per_chunk, static_cast<std::size_t>(chains_per_chunk) * per_chain, threads,
      [&](std::uint64_t begin, std::uint64_t end, char* out) { return write_targets(problem, begin, end, out); },
      [&](std::string_view chunk, std::uint64_t) { sink(chunk); });
  sink("}, \"hops\": " + std::to_string(config.hops) + ", \"cot\": " + (config.cot ? "true" : "false") +
       ", \"hash_len\": " + std::to_string(config.hash_len) + ", \"n_chars_problem\": " +
       std::to_string(config.n_chars) + ", \"num_queries\": " + std::to_string(config.num_queries) +
       ", \"seed\": " + std::to_string(config.seed) + "}\n");
}

}  // namespace hashhop::bench
