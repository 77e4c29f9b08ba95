// libFuzzer harness for JSONL records and the scorer: io::parse_json, bench::read_data_record, bench::Scorer, the report formatters.
// Build and run: `make fuzz` (FUZZ_SECONDS=600) or build-fuzz/tests/fuzz/fuzz_jsonl_scorer CORPUS_DIR; see tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

#include "hashhop/bench/scorer.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"

namespace b = hashhop::bench;
namespace io = hashhop::io;

namespace {

// One line as JsonlReader::next reads it: parsed strictly, refused unless it is an object.
bool parse_record(const std::string& line, bool skip_prompt, io::JsonlRecord& record) {
  io::JsonSkip skip;
  if (skip_prompt) {
    skip.fields = {"prompt", "targets"};
    skip.string_sizes = &record.skipped_string_sizes;
  }
  record.line = 1;
  record.value = io::parse_json(line, "fuzz.jsonl", 1, skip);
  return record.value.is_object();
}

}  // namespace

// Input: a data line, a newline, a predictions line (the same record pair score_files reads). The first
// data byte's low bit picks score's reading (prompt skipped) or solve's (prompt required).
// io::InputError is the documented rejection; anything else escapes and crashes the run.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = input.find('\n');
  const std::string data_line = input.substr(0, newline);
  const std::string pred_line = newline == std::string::npos ? std::string() : input.substr(newline + 1);
  const bool score_mode = size > 0 && (data[0] & 1) != 0;
  try {
    io::JsonlRecord record;
    if (!parse_record(data_line, score_mode, record)) return 0;
    const b::DataRecord expected = b::read_data_record("fuzz.jsonl", record, !score_mode);
    std::string predicted;
    io::JsonlRecord prediction;
    if (parse_record(pred_line, false, prediction)) predicted = io::get_string("pred.jsonl", prediction, "completion");
    b::Scorer scorer;
    scorer.add(expected.expected, predicted, expected.n_chars);
    const b::ScoreReport& report = scorer.report();
    if (report.overall.exact > report.overall.queries || report.overall.final_hash > report.overall.queries) {
      __builtin_trap();
    }
    (void)b::format_score_table(report);
    (void)b::score_to_json(report).dump();
    // A prediction line as score writes it must read back as the same completion.
    io::JsonlRecord back;
    if (!parse_record(b::prediction_line(predicted), false, back) ||
        io::get_string("back.jsonl", back, "completion") != predicted) {
      __builtin_trap();
    }
  } catch (const io::InputError&) {
  }
  return 0;
}
