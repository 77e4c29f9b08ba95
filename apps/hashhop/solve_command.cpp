// `hashhop solve`: answers every record of a HashHop JSONL file (ours or Magic's) with the exact
// reference solver and writes predictions for `hashhop score`. Example: hashhop solve --data hh.jsonl --out preds.jsonl
#include <algorithm>
#include <memory>
#include <string>

#include "command.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/reference_solver.h"
#include "hashhop/bench/scorer.h"
#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"
#include "hashhop/io/progress.h"

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
            io::check_distinct_files(options->out, "--out", options->data, "--data");
            io::JsonlReader data(options->data);
            data.skip_fields({"targets"});  // every chain's answer: as large as the prompt, and unused here
            io::AtomicOutput out(options->out);
            // A 300M-character record takes seconds to solve: a progress bar over the data file's bytes.
            io::ProgressBar bar("solve", std::max<std::uint64_t>(data.size_bytes() >> 20, 1), "MB");
            std::uint64_t answered = 0;
            while (auto record = data.next()) {
              bench::DataRecord data_record = bench::read_data_record(data.path(), *record, /*need_prompt=*/true);
              std::string answer;
              try {
                answer = bench::solve_exactly(bench::parse_prompt(data_record.prompt), std::move(data_record.expected));
              } catch (const bench::FormatError& e) {
                throw io::InputError(data.path(), record->line, "prompt", e.what());
              }
              out.write(bench::prediction_line(answer));
              bar.update(std::min(data.bytes_read(), data.size_bytes()) >> 20, std::to_string(++answered) + " records");
            }
            bar.finish();
            if (answered == 0) throw io::InputError(data.path(), 0, "", "has no records");
            out.commit();
            return 0;
          }};
}

}  // namespace hashhop::cli
