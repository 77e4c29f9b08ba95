// `hashhop eval --model DIR --data FILE.jsonl`: greedy answers from a trained model for every query of
// every record (ours or Magic's files), scored like `hashhop score`. Run `hashhop eval --help`.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <cstdio>
#include <memory>
#include <string>

#include "answer_path.h"
#include "model_answerer.h"
#include "command.h"
#include "device_option.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/scorer.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/jsonl.h"
#include "hashhop/io/progress.h"

namespace hashhop::cli {
namespace {

std::uint64_t count_lines(const std::string& path) {  // for the progress bar's total
  std::ifstream in(path, std::ios::binary);
  std::uint64_t lines = 0;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0)
    lines += std::count(buffer, buffer + in.gcount(), '\n');
  return lines;
}

struct Options {
  std::string model_dir;
  std::string data;
  std::string predictions;
  std::string device = "auto";
  AnswerPath path;
  bool json = false;
};

int run_eval(const Options& o) {
  const auto device = parse_device(o.device);
  io::check_distinct_files(o.predictions, "--predictions", o.data, "--data");
  // Either model family, loaded once (model_answerer.h: shared with `hashhop sweep`).
  ModelAnswerer model(o.model_dir, device, o.path);
  io::JsonlReader data(o.data);
  data.skip_fields({"targets"});  // every chain's answer: as large as the prompt, and unused here
  std::unique_ptr<io::AtomicOutput> predictions;
  if (!o.predictions.empty()) predictions = std::make_unique<io::AtomicOutput>(o.predictions);
  bench::Scorer scorer;
  io::ProgressBar bar("eval", count_lines(o.data), "records");
  std::uint64_t records = 0, queries = 0;
  const auto start = std::chrono::steady_clock::now();
  while (auto record = data.next()) {
    const bench::DataRecord data_record = bench::read_data_record(data.path(), *record, /*need_prompt=*/true);
    const auto& expected = data_record.expected;
    model.check(data.path(), record->line, data_record);
    const std::string predicted = model.answer(data_record);
    scorer.add(expected, predicted, data_record.n_chars);
    if (predictions) predictions->write(bench::prediction_line(predicted));
    ++records;
    queries += expected.queries.size();
    bar.update(records, "exact " + std::to_string(scorer.report().overall.exact_rate()).substr(0, 5));
  }
  bar.finish();
  if (predictions) predictions->commit();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    auto j = bench::score_to_json(scorer.report());
    j["model"] = o.model_dir;
    j["seconds"] = seconds;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", bench::format_score_table(scorer.report()).c_str());
    std::printf("model %s on %s: %llu records, %llu queries in %.2f s\n", o.model_dir.c_str(), device.str().c_str(),
                static_cast<unsigned long long>(records), static_cast<unsigned long long>(queries), seconds);
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("eval", "Answer every query of a HashHop JSONL with a trained model and score it");
  app->add_option("--model", o->model_dir, "Model directory (config.json + model.pt), e.g. models/demo; either model family")->required();
  app->add_option("--data", o->data, "HashHop JSONL (ours or Magic's): prompt and completion fields")->required();
  app->add_option("--predictions", o->predictions, "Also write the predicted completions as JSONL (atomically)");
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  o->path.add_options(app);
  app->add_flag("--json", o->json, "Print the score as JSON");
  return {app, [o] { return run_eval(*o); }};
}

}  // namespace hashhop::cli
