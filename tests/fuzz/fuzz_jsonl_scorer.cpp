// libFuzzer harness for JSONL records and the scorer: io::parse_json, the streamed JsonlReader against it, bench::read_data_record,
// bench::Scorer, the report formatters.
// Build and run: `make fuzz` (FUZZ_SECONDS=600) or build-fuzz/tests/fuzz/fuzz_jsonl_scorer CORPUS_DIR; see tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

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

// The streamed reader (score's: a skipped prompt is never held) must agree with the string parser on one
// line: the same value and skipped sizes, or an InputError from both. The line goes through a memfd.
void check_streamed(const std::string& line) {
  if (line.find('\0') != std::string::npos || line.find_first_not_of(" \t\r") == std::string::npos) return;
  static const int fd = memfd_create("fuzz_jsonl", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size())) return;
  // Errors must name the same byte ("(byte N)"; the streamed one may add why after it).
  const auto byte_of = [](const std::string& error) {
    const auto at = error.find("(byte ");
    return at == std::string::npos ? std::string() : error.substr(at, error.find(')', at) - at);
  };
  std::optional<io::JsonlRecord> want;
  std::string want_error, got_error;
  try {
    io::JsonlRecord record;
    if (parse_record(line, true, record)) want = std::move(record);
  } catch (const io::InputError& e) {
    want_error = byte_of(e.what());
  }
  std::optional<io::JsonlRecord> got;
  try {
    io::JsonlReader reader("/proc/self/fd/" + std::to_string(fd));
    reader.skip_fields({"prompt", "targets"});
    got = reader.next();
  } catch (const io::InputError& e) {
    got_error = byte_of(e.what());
  }
  if (want.has_value() != got.has_value() || want_error != got_error) __builtin_trap();
  if (want && (want->value != got->value || want->skipped_string_sizes != got->skipped_string_sizes)) __builtin_trap();
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
  if (score_mode) check_streamed(data_line);
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
