// `hashhop demo`: generates a fresh HashHop benchmark (hops 1-4, CoT on and off, hash lengths 8 and 16),
// answers it with a trained model of either family (default models/demo) on the CPU, and scores it. Run
// `hashhop demo --help`. Without a model directory it answers with the exact reference solver instead, and says so.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "device_option.h"
#include "size_option.h"
#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/reference_solver.h"
#include "hashhop/bench/scorer.h"
#include "hashhop/io/files.h"
#include "model_answerer.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::string model_dir = "models/demo";
  std::uint64_t chars = 4000;
  std::uint64_t seed = 20261123;
  std::string device = "cpu";
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run_demo(const Options& o) {
  const auto device = parse_device(o.device);  // checked even when the solver answers
  if (io::file_exists(o.model_dir) && !io::is_directory(o.model_dir))
    throw std::invalid_argument("--model " + o.model_dir + ": not a directory (a model directory holds config.json and model.pt)");
  const bool have_model = io::file_exists(o.model_dir + "/model.pt");
  std::unique_ptr<ModelAnswerer> answerer;  // eval's answerer: the lexer family or the byte-level one
  if (have_model) {
    AnswerPath path;
    path.engine = "off";  // the dense path at every --chars, as the demo always answered
    answerer = std::make_unique<ModelAnswerer>(o.model_dir, device, path);
    std::printf("hashhop demo: generate -> answer with the trained %s model in %s (%lld parameters) -> score\n\n",
                answerer->byte_family() ? "byte-level" : "lexer", o.model_dir.c_str(),
                static_cast<long long>(answerer->parameter_count()));
  } else {
    std::printf("hashhop demo: no model in %s; answering with the exact reference solver (the ceiling)\n\n",
                o.model_dir.c_str());
  }
  // Every sample is checked before any work: the largest (hops 4, 16-letter hashes) must fit 8 queries.
  io::check_size("--chars", o.chars, 100'000'000, "characters", "the demo holds each prompt in memory");
  bench::GenFieldNames names;
  names.n_chars = names.num_queries = "--chars";
  for (int hops : {1, 2, 3, 4})
    for (int hash_len : {8, 16})
      bench::validate(bench::GenConfig{.n_chars = o.chars, .num_queries = 8, .hops = hops, .hash_len = hash_len}, names);
  bench::Scorer scorer;
  double generate_s = 0, answer_s = 0;
  std::uint64_t total_chars = 0, seed = o.seed;
  bool shown = false;
  for (int hops : {1, 2, 3, 4}) {
    for (bool cot : {false, true}) {
      for (int hash_len : {8, 16}) {
        bench::GenConfig config{.n_chars = o.chars, .num_queries = 8, .hops = hops, .hash_len = hash_len, .cot = cot,
                                .seed = seed++};
        auto start = std::chrono::steady_clock::now();
        const bench::HashHopProblem problem(config);
        const std::string prompt = problem.prompt(), completion = problem.completion();
        generate_s += seconds_since(start);
        total_chars += prompt.size();
        const auto expected = bench::parse_completion(completion);
        start = std::chrono::steady_clock::now();
        std::string predicted;
        if (answerer) {
          const bench::DataRecord record{prompt, expected, config.n_chars};
          answerer->check("demo", static_cast<std::uint64_t>(seed - o.seed), record);  // the lexer model's caps
          predicted = answerer->answer(record);
        } else {
          predicted = bench::solve_exactly(prompt, completion);
        }
        answer_s += seconds_since(start);
        scorer.add(expected, predicted, config.n_chars);
        if (!shown && hops == 2 && cot && hash_len == 8) {
          shown = true;
          std::size_t cut = 0;
          for (int line = 0; line < 4 && cut != std::string::npos; ++line) cut = prompt.find('\n', cut + 1);
          std::printf("--- sample (hops=2, CoT=True, hash_len=8, %zu prompt chars; first lines) ---\n%s\n...\n",
                      prompt.size(), prompt.substr(0, cut).c_str());
          const auto answers = bench::parse_answer_lines(predicted);
          for (std::size_t i = 0; i < 3 && i < expected.queries.size(); ++i) {
            const auto& q = expected.queries[i];
            const auto it = answers.find(q.key);
            const std::string got = it == answers.end() ? "(none)" : it->second;
            std::printf("%s = '%s'   expected '%s'  %s\n", q.key.c_str(), got.c_str(), q.answer.c_str(),
                        got == q.answer ? "ok" : "WRONG");
          }
        }
      }
    }
  }
  const auto& report = scorer.report();
  std::printf("\n--- score ---\n%s\n", bench::format_score_table(report).c_str());
  std::printf("generated %llu prompt chars in %.3f s; answered %llu queries in %.2f s (%s)\n",
              static_cast<unsigned long long>(total_chars), generate_s,
              static_cast<unsigned long long>(report.overall.queries), answer_s,
              have_model ? "trained model, greedy decoding" : "exact reference solver");
  if (!have_model && report.overall.exact != report.overall.queries) return 1;  // the solver must be perfect
  return 0;
}

}  // namespace

Command add_demo_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("demo", "Generate a small HashHop benchmark, answer it with the demo model and score it");
  app->add_option("--model", o->model_dir, "Model directory (the exact solver answers if it has no model.pt)")->capture_default_str();
  app->add_option("--chars", o->chars, "Prompt size of each sample in characters (K/M/G suffixes allowed)")
      ->transform(size_suffixes())
      ->capture_default_str();
  app->add_option("--seed", o->seed, "First seed")->capture_default_str();
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  return {app, [o] { return run_demo(*o); }};
}

}  // namespace hashhop::cli
