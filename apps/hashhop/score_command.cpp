// `hashhop score`: exact-match and final-hash accuracy of predictions against a data file.
// Example: hashhop score --data hh.jsonl --predictions preds.jsonl [--json]
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "command.h"
#include "hashhop/io/files.h"
#include "hashhop/bench/scorer.h"
#include "hashhop/io/progress.h"
#include "json_option.h"

namespace hashhop::cli {

Command add_score_command(CLI::App& root) {
  struct Options {
    std::string data, predictions;
    JsonOption json;
  };
  auto options = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("score", "Score predictions against a HashHop JSONL file (by hops, CoT, size and hash length)");
  app->add_option("--data", options->data,
                  "HashHop JSONL (ours or Magic's): completion, or targets when there is no completion; optional n_chars_problem")
      ->required();
  app->add_option("--predictions", options->predictions,
                  "Predictions: JSONL in data order of {\"completion\": ...} or {\"QUERY\": \"ANSWER\", ...}, or one JSON object "
                  "mapping every query to its answer")
      ->required();
  options->json.add(app, "the report");
  return {app, [options] {
            if (options->json.requested() && !options->json.to_stdout()) {  // --json FILE must not overwrite an input
              io::check_distinct_files(options->json.path(), "--json", options->data, "--data");
              io::check_distinct_files(options->json.path(), "--json", options->predictions, "--predictions");
              options->json.open();
            }
            // Large files take minutes: a progress bar over the data file's bytes (stderr, terminals only).
            std::optional<io::ProgressBar> bar;
            const auto report = bench::score_files(options->data, options->predictions, [&](std::uint64_t done, std::uint64_t total) {
              if (total < (16u << 20)) return;  // small files are done before a bar could be read
              if (!bar) bar.emplace("score", total >> 20, "MB");
              bar->update(std::min(done, total) >> 20);
            });
            if (bar) bar->finish();
            if (options->json.to_stdout()) {
              std::printf("%s\n", bench::score_to_json(report).dump(2).c_str());
            } else {
              std::printf("%s", bench::format_score_table(report).c_str());
              options->json.emit(bench::score_to_json(report));
            }
            return 0;
          }};
}

}  // namespace hashhop::cli
