// Scorer for HashHop predictions (see scorer.h). Tested by tests/bench/test_scorer.cpp.
#include "hashhop/bench/scorer.h"

#include <cstdio>
#include <optional>

#include "hashhop/bench/generator.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"

namespace hashhop::bench {
namespace {

void count(ScoreCounts& counts, bool exact, bool final_ok) {
  ++counts.queries;
  counts.exact += exact ? 1 : 0;
  counts.final_hash += final_ok ? 1 : 0;
}

std::string human(std::uint64_t n) {
  char buf[32];
  if (n >= 1'000'000'000 && n % 1'000'000 == 0) std::snprintf(buf, sizeof buf, "%gG", static_cast<double>(n) / 1e9);
  else if (n >= 1'000'000 && n % 1000 == 0) std::snprintf(buf, sizeof buf, "%gM", static_cast<double>(n) / 1e6);
  else if (n >= 1000 && n % 10 == 0) std::snprintf(buf, sizeof buf, "%gK", static_cast<double>(n) / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  return buf;
}

nlohmann::json counts_json(const ScoreCounts& c) {
  return {{"queries", c.queries}, {"exact", c.exact}, {"exact_rate", c.exact_rate()},
          {"final_hash", c.final_hash}, {"final_hash_rate", c.final_rate()}};
}

std::string row(const std::string& group, const ScoreCounts& c) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-28s %8llu %8.2f%% %10.2f%%\n", group.c_str(),
                static_cast<unsigned long long>(c.queries), 100.0 * c.exact_rate(), 100.0 * c.final_rate());
  return buf;
}

}  // namespace

std::string describe_chars(std::uint64_t n_chars) {
  return human(n_chars) + " chars (" + human(n_chars / kCharsPerToken) + " tok)";
}

void Scorer::add(const ParsedCompletion& expected, std::string_view predicted, std::uint64_t n_chars) {
  const auto answers = parse_answer_lines(predicted);
  ++report_.records;
  for (const auto& query : expected.queries) {
    auto it = answers.find(query.key);
    const bool exact = it != answers.end() && it->second == query.answer;
    const bool final_ok = it != answers.end() && final_hash(it->second) == final_hash(query.answer);
    count(report_.overall, exact, final_ok);
    count(report_.by_hops[expected.hops], exact, final_ok);
    count(report_.by_cot[expected.cot], exact, final_ok);
    count(report_.by_chars[n_chars], exact, final_ok);
  }
}

DataRecord read_data_record(const std::string& path, const io::JsonlRecord& record, bool need_prompt) {
  DataRecord out;
  if (need_prompt) out.prompt = io::get_string(path, record, "prompt");  // a missing prompt is reported first
  try {
    out.expected = parse_completion(io::get_string(path, record, "completion"));
  } catch (const FormatError& e) {
    throw io::InputError(path, record.line, "completion", e.what());
  }
  std::optional<std::uint64_t> prompt_size;
  if (!need_prompt && !record.value.contains("n_chars_problem")) {
    const auto skipped = record.skipped_string_sizes.find("prompt");  // a reader told to skip prompts
    if (skipped != record.skipped_string_sizes.end()) prompt_size = skipped->second;
    else out.prompt = io::get_string(path, record, "prompt");
  }
  if (record.value.contains("n_chars_problem")) {
    const std::int64_t n_chars = io::get_int(path, record, "n_chars_problem");
    if (n_chars < 1) throw io::InputError(path, record.line, "n_chars_problem", "must be >= 1, got " + std::to_string(n_chars));
    out.n_chars = static_cast<std::uint64_t>(n_chars);
  } else {
    out.n_chars = prompt_size.value_or(static_cast<std::uint64_t>(out.prompt.size()));
  }
  if (out.expected.queries.empty()) throw io::InputError(path, record.line, "completion", "has no queries");
  if (record.value.contains("hops") && io::get_int(path, record, "hops") != out.expected.hops) {
    throw io::InputError(path, record.line, "hops", "disagrees with the completion's Hops=" + std::to_string(out.expected.hops));
  }
  return out;
}

std::string prediction_line(std::string_view completion) {
  std::string line = "{\"completion\": ";
  io::append_json_string(line, completion);
  return line + "}\n";
}

ScoreReport score_files(const std::string& data_path, const std::string& predictions_path) {
  io::JsonlReader data(data_path);
  // Scoring needs the completion and the prompt's size, not the prompt or the targets: leaving them out
  // of the parsed records keeps memory near one line of text instead of ~8x it.
  data.skip_fields({"prompt", "targets"});
  io::JsonlReader predictions(predictions_path);
  Scorer scorer;
  std::uint64_t index = 0;
  while (auto record = data.next()) {
    auto prediction = predictions.next();
    if (!prediction) {
      throw io::InputError(predictions_path, 0, "", "has fewer records than " + data_path + " (ends before record " + std::to_string(index + 1) + ")");
    }
    const DataRecord data_record = read_data_record(data_path, *record, /*need_prompt=*/false);
    scorer.add(data_record.expected, io::get_string(predictions_path, *prediction, "completion"), data_record.n_chars);
    ++index;
  }
  if (predictions.next()) throw io::InputError(predictions_path, 0, "", "has more records than " + data_path);
  return scorer.report();
}

std::string format_score_table(const ScoreReport& report) {
  std::string out;
  char buf[96];
  std::snprintf(buf, sizeof buf, "%-28s %8s %9s %11s\n", "group", "queries", "exact", "final-hash");
  out += buf;
  out += std::string(59, '-') + "\n";
  for (const auto& [hops, c] : report.by_hops) out += row("hops=" + std::to_string(hops), c);
  for (const auto& [cot, c] : report.by_cot) out += row(cot ? "CoT=True" : "CoT=False", c);
  for (const auto& [chars, c] : report.by_chars) out += row(describe_chars(chars), c);
  out += std::string(59, '-') + "\n";
  out += row("all (" + std::to_string(report.records) + " records)", report.overall);
  return out;
}

nlohmann::json score_to_json(const ScoreReport& report) {
  nlohmann::json out;
  out["records"] = report.records;
  out["overall"] = counts_json(report.overall);
  for (const auto& [hops, c] : report.by_hops) out["by_hops"][std::to_string(hops)] = counts_json(c);
  for (const auto& [cot, c] : report.by_cot) out["by_cot"][cot ? "True" : "False"] = counts_json(c);
  for (const auto& [chars, c] : report.by_chars) out["by_chars"][std::to_string(chars)] = counts_json(c);
  return out;
}

}  // namespace hashhop::bench
