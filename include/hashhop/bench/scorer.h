// Scoring of HashHop predictions against expected completions: exact match per query (a CoT answer
// counts only if the whole chain is right) and final-hash accuracy, broken down by hops, CoT and size.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "hashhop/bench/magic_format.h"
#include "hashhop/io/jsonl.h"

namespace hashhop::bench {

struct ScoreCounts {
  std::uint64_t queries = 0;
  std::uint64_t exact = 0;
  std::uint64_t final_hash = 0;
  double exact_rate() const { return queries ? static_cast<double>(exact) / static_cast<double>(queries) : 0.0; }
  double final_rate() const { return queries ? static_cast<double>(final_hash) / static_cast<double>(queries) : 0.0; }
};

struct ScoreReport {
  std::uint64_t records = 0;
  ScoreCounts overall;
  std::map<int, ScoreCounts> by_hops;
  std::map<bool, ScoreCounts> by_cot;
  std::map<std::uint64_t, ScoreCounts> by_chars;  // n_chars_problem
  std::map<std::size_t, ScoreCounts> by_hash_len;  // length of each query's hash
};

class Scorer {
 public:
  // Scores one record: expected completion (strict) against the predicted text (lenient).
  void add(const ParsedCompletion& expected, std::string_view predicted, std::uint64_t n_chars);
  // The same with answers already read (a codelion-style query -> answer map); a missing key is wrong.
  void add_answers(const ParsedCompletion& expected, const std::unordered_map<std::string, std::string>& answers,
                   std::uint64_t n_chars);
  const ScoreReport& report() const { return report_; }

 private:
  ScoreReport report_;
};

// One record of a HashHop data JSONL (ours or Magic's), read the way score, solve and eval all need it.
struct DataRecord {
  std::string prompt;  // empty when not needed and absent
  ParsedCompletion expected;
  std::uint64_t n_chars = 0;  // n_chars_problem when present, else the prompt's length
};

// Throws io::InputError naming the file, line and field (a malformed completion, a bad
// n_chars_problem, a "hops" field that disagrees with the completion's Hops=).
// A record without `completion` is read from `targets` (Magic's map of every chain start to its target):
// every key is a query; hops from the `hops` field (or the length of CoT targets "B = C = D"), CoT from
// `cot` (or targets that contain " = ").
// need_prompt: the prompt field is required (solve, eval); score needs it only without n_chars_problem.
DataRecord read_data_record(const std::string& path, const io::JsonlRecord& record, bool need_prompt);

// A predictions JSONL line, {"completion": "..."}, as score reads it back.
std::string prediction_line(std::string_view completion);

// Scores a data JSONL against predictions, which are one of
//  - JSONL, one line per data record in its order: {"completion": "..."} (answer lines "K = 'A'" in the text)
//    or a codelion-style map {"QUERY": "ANSWER", ...};
//  - one JSON object (a file of one value, which may span lines) mapping every query of the data to its answer.
// Throws io::InputError naming the file, line and field of any bad input. on_progress(bytes, total) follows
// the data file.
ScoreReport score_files(const std::string& data_path, const std::string& predictions_path,
                        const std::function<void(std::uint64_t bytes, std::uint64_t total)>& on_progress = {});

std::string format_score_table(const ScoreReport& report);
nlohmann::json score_to_json(const ScoreReport& report);

// "3000" -> "3K chars (1K tok)"; used in tables.
std::string describe_chars(std::uint64_t n_chars);

}  // namespace hashhop::bench
