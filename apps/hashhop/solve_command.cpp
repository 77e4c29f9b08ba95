// `hashhop solve`: answers every record of a HashHop JSONL file (ours or Magic's) with the exact
// reference solver and writes predictions for `hashhop score`. Example: hashhop solve --data hh.jsonl --out preds.jsonl
#include <memory>
#include <string>

#include "command.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/reference_solver.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"

namespace hashhop::cli {

Command add_solve_command(CLI::App& root) {
  struct Options {
    std::string data;
    std::string out = "-";
  };
  auto options = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("solve", "Answer a HashHop JSONL file with the exact reference solver (the accuracy ceiling)");
  app->add_option("--data", options->data, "HashHop JSONL with prompt and completion fields")->required();
  app->add_option("--out", options->out, "Predictions JSONL ('-' = stdout); written atomically")->capture_default_str();
  return {app, [options] {
            io::JsonlReader data(options->data);
            io::AtomicOutput out(options->out);
            while (auto record = data.next()) {
              const std::string prompt = io::get_string(data.path(), *record, "prompt");
              const std::string completion = io::get_string(data.path(), *record, "completion");
              bench::ParsedCompletion parsed_completion;
              try {
                parsed_completion = bench::parse_completion(completion);
              } catch (const bench::FormatError& e) {
                throw io::InputError(data.path(), record->line, "completion", e.what());
              }
              std::string answer;
              try {
                answer = bench::solve_exactly(bench::parse_prompt(prompt), std::move(parsed_completion));
              } catch (const bench::FormatError& e) {
                throw io::InputError(data.path(), record->line, "prompt", e.what());
              }
              std::string line = "{\"completion\": ";
              io::append_json_string(line, answer);
              out.write(line + "}\n");
            }
            out.commit();
            return 0;
          }};
}

}  // namespace hashhop::cli
