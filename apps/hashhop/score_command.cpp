// `hashhop score`: exact-match and final-hash accuracy of predictions against a data file.
// Example: hashhop score --data hh.jsonl --predictions preds.jsonl [--json]
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "hashhop/bench/scorer.h"

namespace hashhop::cli {

Command add_score_command(CLI::App& root) {
  struct Options {
    std::string data, predictions;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("score", "Score predictions ({\"completion\": ...} per line, data order) against a HashHop JSONL file");
  app->add_option("--data", options->data, "HashHop JSONL (ours or Magic's fields: completion, optional n_chars_problem)")->required();
  app->add_option("--predictions", options->predictions, "Predictions JSONL, one record per data record")->required();
  app->add_flag("--json", options->json, "Print the report as JSON instead of a table");
  return {app, [options] {
            const auto report = bench::score_files(options->data, options->predictions);
            if (options->json) {
              std::printf("%s\n", bench::score_to_json(report).dump(2).c_str());
            } else {
              std::printf("%s", bench::format_score_table(report).c_str());
            }
            return 0;
          }};
}

}  // namespace hashhop::cli
