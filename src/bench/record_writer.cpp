// JSONL / text record serialisation (see record_writer.h). The prompt and the targets are streamed so a
// 300M-character record never sits in memory. Tested by tests/bench/test_generator.cpp.
#include "hashhop/bench/record_writer.h"

#include <string>

#include "hashhop/io/jsonl.h"

namespace hashhop::bench {

void write_record(const HashHopProblem& problem, RecordFormat format,
                  const std::function<void(std::string_view)>& sink,
                  const std::function<void(std::uint64_t)>& on_progress) {
  const GenConfig& config = problem.config();
  if (format == RecordFormat::text) {
    problem.stream_prompt(sink, "\n", on_progress);
    sink("\n");
    sink(problem.completion());
    return;
  }
  // Hashes are letters only, so the prompt needs no escaping beyond its newlines.
  sink("{\"prompt\": \"");
  problem.stream_prompt(sink, "\\n", on_progress);
  std::string tail = "\", \"completion\": ";
  io::append_json_string(tail, problem.completion());
  tail += ", \"targets\": {";
  sink(tail);
  std::string chunk;
  for (std::uint64_t chain = 0; chain < problem.n_chains(); ++chain) {
    if (chain > 0) chunk += ", ";
    chunk += '"' + problem.hash(chain, 0) + "\": \"" + problem.target(chain) + '"';
    if (chunk.size() >= (1 << 20)) {
      sink(chunk);
      chunk.clear();
    }
  }
  chunk += "}, \"hops\": " + std::to_string(config.hops) + ", \"cot\": " + (config.cot ? "true" : "false") +
           ", \"hash_len\": " + std::to_string(config.hash_len) + ", \"n_chars_problem\": " +
           std::to_string(config.n_chars) + ", \"num_queries\": " + std::to_string(config.num_queries) +
           ", \"seed\": " + std::to_string(config.seed) + "}\n";
  sink(chunk);
}

}  // namespace hashhop::bench
