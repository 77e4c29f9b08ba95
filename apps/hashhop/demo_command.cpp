// `hashhop demo`: generates a small HashHop benchmark, shows a sample, answers it and scores it.
// Until a trained checkpoint exists the answers come from the exact reference solver (the ceiling).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/reference_solver.h"
#include "hashhop/bench/scorer.h"

namespace hashhop::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void show_sample(const bench::HashHopProblem& problem, const std::string& prompt) {
  std::size_t cut = 0;
  for (int line = 0; line < 6 && cut != std::string::npos; ++line) cut = prompt.find('\n', cut + 1);
  std::printf("--- sample (hops=%d, CoT=%s, hash_len=%d, %zu prompt chars; first lines) ---\n%s\n...\n%s",
              problem.config().hops, problem.config().cot ? "True" : "False", problem.config().hash_len,
              prompt.size(), prompt.substr(0, cut).c_str(), problem.completion().c_str());
}

int run_demo(std::uint64_t n_chars, std::uint64_t seed) {
  std::printf("hashhop demo: generate -> answer (exact reference solver) -> score\n\n");
  bench::Scorer scorer;
  double generate_s = 0, solve_s = 0;
  std::uint64_t total_chars = 0;
  bool shown = false;
  for (int hops : {1, 2, 4}) {
    for (bool cot : {false, true}) {
      for (int hash_len : {8, 16}) {
        bench::GenConfig config;
        config.n_chars = n_chars;
        config.num_queries = 8;
        config.hops = hops;
        config.cot = cot;
        config.hash_len = hash_len;
        config.seed = seed++;
        auto start = std::chrono::steady_clock::now();
        const bench::HashHopProblem problem(config);
        const std::string prompt = problem.prompt();
        const std::string completion = problem.completion();
        generate_s += seconds_since(start);
        total_chars += prompt.size();
        if (!shown && hops == 2 && hash_len == 8) {
          show_sample(problem, prompt);
          shown = true;
        }
        start = std::chrono::steady_clock::now();
        const std::string answer = bench::solve_exactly(prompt, completion);
        solve_s += seconds_since(start);
        scorer.add(bench::parse_completion(completion), answer, config.n_chars);
      }
    }
  }
  std::printf("\n--- score ---\n%s\n", bench::format_score_table(scorer.report()).c_str());
  std::printf("generated %llu prompt chars in %.3f s (%.1f MB/s), solved %llu queries in %.3f s\n",
              static_cast<unsigned long long>(total_chars), generate_s, total_chars / generate_s / 1e6,
              static_cast<unsigned long long>(scorer.report().overall.queries), solve_s);
  std::printf("answers came from the exact reference solver; a trained model replaces it once models/demo exists\n");
  return scorer.report().overall.exact == scorer.report().overall.queries ? 0 : 1;
}

}  // namespace

Command add_demo_command(CLI::App& root) {
  struct Options {
    std::uint64_t chars = 100'000;
    std::uint64_t seed = 0;
  };
  auto options = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("demo", "Generate a small HashHop benchmark, answer it and score it");
  app->add_option("--chars", options->chars, "Prompt size of each sample in characters")->capture_default_str();
  app->add_option("--seed", options->seed, "First seed")->capture_default_str();
  return {app, [options] { return run_demo(options->chars, options->seed); }};
}

}  // namespace hashhop::cli
