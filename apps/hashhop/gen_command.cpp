// `hashhop gen`: writes HashHop samples in Magic's format as JSONL or text, streamed and atomic.
// Example: hashhop gen --tokens 100M --hops 2 --hash-len 16 --out hh.jsonl
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

#include "command.h"
#include "hashhop/bench/generator.h"
#include "hashhop/bench/record_writer.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/progress.h"
#include "size_option.h"

namespace hashhop::cli {
namespace {

struct GenOptions {
  std::string chars;
  std::string tokens;
  std::uint64_t queries = 5;
  int hops = 2;
  int hash_len = 16;
  bool cot = false;
  std::uint64_t seed = 0;
  std::uint64_t samples = 1;
  std::string out = "-";
  std::string format = "jsonl";
  int threads = 0;  // 0: every core
};

int run_gen(const GenOptions& options) {
  bench::GenConfig config;
  config.n_chars = options.chars.empty() ? parse_size("--tokens", options.tokens) * bench::kCharsPerToken
                                         : parse_size("--chars", options.chars);
  config.num_queries = options.queries;
  config.hops = options.hops;
  config.hash_len = options.hash_len;
  config.cot = options.cot;
  config.seed = options.seed;
  if (options.samples < 1) throw std::invalid_argument("--samples: must be >= 1");
  if (options.seed > UINT64_MAX - (options.samples - 1))
    throw std::invalid_argument("--seed: seed + samples - 1 overflows 64 bits");
  if (options.threads < 0) throw std::invalid_argument("--threads: must be >= 0, got " + std::to_string(options.threads));
  // The bytes do not depend on the thread count: line i is a pure function of (seed, i).
  const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto format = options.format == "text" ? bench::RecordFormat::text : bench::RecordFormat::jsonl;

  // Validate before the output file exists, so bad options leave nothing behind. Samples differ only
  // in their seed, which validation does not look at: one check covers them all, and nothing is kept
  // per sample, so memory stays flat for any --samples.
  bench::GenFieldNames names;
  names.n_chars = options.chars.empty() ? "--tokens" : "--chars";
  names.num_queries = "--queries";
  names.hops = "--hops";
  names.hash_len = "--hash-len";
  bench::validate(config, names);
  const bench::HashHopProblem first(config);
  // A request the disk cannot hold is refused up front instead of running for hours and failing.
  const unsigned __int128 total = static_cast<unsigned __int128>(first.prompt_size()) * options.samples;
  const std::uint64_t total_bytes = total > UINT64_MAX ? UINT64_MAX : static_cast<std::uint64_t>(total);
  if (options.out != "-" && !options.out.empty())
    io::check_size("--out " + options.out, total_bytes, io::free_bytes_at(options.out), "bytes",
                   "the free space on its filesystem; lower --samples or the size");
  io::AtomicOutput out(options.out);
  const unsigned __int128 total_lines = static_cast<unsigned __int128>(first.n_lines()) * options.samples;
  io::ProgressBar progress("gen", total_lines > UINT64_MAX ? UINT64_MAX : static_cast<std::uint64_t>(total_lines),
                           "lines");
  std::uint64_t lines_before = 0;
  for (std::uint64_t k = 0; k < options.samples; ++k) {
    config.seed = options.seed + k;  // sample k is exactly `--seed S+k --samples 1`
    const bench::HashHopProblem problem(config);
    bench::write_record(problem, format, [&](std::string_view chunk) { out.write(chunk); },
                        [&](std::uint64_t lines) { progress.update(lines_before + lines); }, threads);
    lines_before += problem.n_lines();
  }
  progress.finish();
  out.commit();
  return 0;
}

}  // namespace

Command add_gen_command(CLI::App& root) {
  auto options = std::make_shared<GenOptions>();
  CLI::App* app = root.add_subcommand("gen", "Generate HashHop samples (Magic's format; deterministic, collision-free, streamed)");
  auto* chars = app->add_option("--chars", options->chars, "Prompt size in characters (Magic's n_chars_problem); K/M/G suffixes allowed");
  auto* tokens = app->add_option("--tokens", options->tokens, "Prompt size in Magic tokens (3 characters each); K/M/G suffixes allowed");
  chars->excludes(tokens);
  tokens->excludes(chars);
  app->add_option("--queries", options->queries, "Queries in the completion")->capture_default_str();
  app->add_option("--hops", options->hops, "Links per chain (>= 1)")->capture_default_str();
  app->add_option("--hash-len", options->hash_len, "Characters per hash (>= 1)")->capture_default_str();
  app->add_flag("--cot", options->cot, "Chain-of-thought completion: H2 = H3 = ... = H(hops+1)");
  app->add_option("--seed", options->seed, "Seed; sample k uses seed+k, bit-identical everywhere")->capture_default_str();
  app->add_option("--samples", options->samples, "Number of records to write")->capture_default_str();
  app->add_option("--out", options->out, "Output file ('-' = stdout); written atomically")->capture_default_str();
  app->add_option("--threads", options->threads, "Threads rendering the output (0 = every core); the bytes are the same for any count")
      ->capture_default_str();
  app->add_option("--format", options->format, "Record format")->check(CLI::IsMember({"jsonl", "text"}))->capture_default_str();
  app->footer("Exactly one of --chars or --tokens is required.");
  return {app, [options] {
            if (options->chars.empty() && options->tokens.empty()) throw std::invalid_argument("one of --chars or --tokens is required");
            return run_gen(*options);
          }};
}

}  // namespace hashhop::cli
