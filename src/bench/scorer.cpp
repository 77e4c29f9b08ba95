// Scorer for HashHop predictions (see scorer.h). Tested by tests/bench/test_scorer.cpp.
#include "hashhop/bench/scorer.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <set>

#include "hashhop/bench/generator.h"
#include "hashhop/io/files.h"
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

std::size_t count_links(std::string_view answer) {  // "B = C = D" -> 3
  std::size_t n = 1;
  for (std::size_t at = answer.find(" = "); at != std::string_view::npos; at = answer.find(" = ", at + 3)) ++n;
  return n;
}

// Magic's `targets` (chain start -> target) as the queries of a completion; see read_data_record.
ParsedCompletion completion_from_targets(const std::string& path, const io::JsonlRecord& record) {
  const auto& targets = record.value.at("targets");
  if (!targets.is_object()) throw io::InputError(path, record.line, "targets", "expected an object of query -> target");
  ParsedCompletion out;
  bool chains = false;
  for (const auto& [key, value] : targets.items()) {
    if (!is_hash(key)) throw io::InputError(path, record.line, "targets", "key '" + key.substr(0, 40) + "' is not a hash");
    if (!value.is_string())
      throw io::InputError(path, record.line, "targets", "'" + key.substr(0, 40) + "': expected a string, got " + value.type_name());
    const auto& target = value.get_ref<const std::string&>();
    for (std::size_t start = 0, n = count_links(target), i = 0; i < n; ++i) {  // every hash of "B = C" is a hash
      const std::size_t end = std::min(target.find(" = ", start), target.size());
      if (!is_hash(std::string_view(target).substr(start, end - start)))
        throw io::InputError(path, record.line, "targets", "'" + key.substr(0, 40) + "': '" + target.substr(0, 60) + "' is not a hash or a chain 'B = C'");
      start = end + 3;
    }
    chains = chains || count_links(target) > 1;
    out.queries.push_back({key, target});
  }
  if (out.queries.empty()) throw io::InputError(path, record.line, "targets", "has no queries");
  out.cot = record.value.contains("cot") ? io::get_bool(path, record, "cot") : chains;
  if (record.value.contains("hops")) {
    const std::int64_t hops = io::get_int(path, record, "hops");
    if (hops < 1 || hops > 1'000'000) throw io::InputError(path, record.line, "hops", "must be in 1..1000000, got " + std::to_string(hops));
    out.hops = static_cast<int>(hops);
  } else if (out.cot) {
    out.hops = static_cast<int>(count_links(out.queries.front().answer));
  } else {
    throw io::InputError(path, record.line, "hops", "missing (a record without completion needs it unless its targets are CoT chains 'B = C')");
  }
  for (const auto& q : out.queries) {
    const std::size_t links = count_links(q.answer);
    if (links != (out.cot ? static_cast<std::size_t>(out.hops) : 1))
      throw io::InputError(path, record.line, "targets", "'" + q.key.substr(0, 40) + "': " + std::to_string(links) + " hashes, but hops " +
                                                              std::to_string(out.hops) + (out.cot ? " with CoT" : " without CoT") + " needs " +
                                                              std::to_string(out.cot ? out.hops : 1));
  }
  return out;
}

using AnswerMap = std::unordered_map<std::string, std::string>;

// A codelion-style answer: the target text, tolerating surrounding blanks and one pair of quotes.
std::string clean_answer(std::string text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  text = text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
  if (text.size() >= 2 && (text.front() == '\'' || text.front() == '"') && text.back() == text.front())
    text = text.substr(1, text.size() - 2);
  return text;
}

// A JSON object of query -> answer (null: not answered). Errors name the query as the field.
AnswerMap answer_map(const std::string& path, std::uint64_t line, const nlohmann::json& object) {
  AnswerMap answers;
  for (const auto& [key, value] : object.items()) {
    if (value.is_null()) continue;
    if (!value.is_string()) throw io::InputError(path, line, key.substr(0, 40), "expected a string answer, got " + std::string(value.type_name()));
    answers.emplace(key, clean_answer(value.get<std::string>()));
  }
  return answers;
}

bool answers_any_query(const nlohmann::json& object, const ParsedCompletion& expected) {
  if (object.empty()) return true;  // nothing answered
  for (const auto& q : expected.queries)
    if (object.contains(q.key)) return true;
  return false;
}

}  // namespace

std::string describe_chars(std::uint64_t n_chars) {
  return human(n_chars) + " chars (" + human(n_chars / kCharsPerToken) + " tok)";
}

void Scorer::add(const ParsedCompletion& expected, std::string_view predicted, std::uint64_t n_chars) {
  add_answers(expected, parse_answer_lines(predicted), n_chars);
}

void Scorer::add_answers(const ParsedCompletion& expected, const std::unordered_map<std::string, std::string>& answers,
                         std::uint64_t n_chars) {
  ++report_.records;
  for (const auto& query : expected.queries) {
    auto it = answers.find(query.key);
    const bool exact = it != answers.end() && it->second == query.answer;
    const bool final_ok = it != answers.end() && final_hash(it->second) == final_hash(query.answer);
    count(report_.overall, exact, final_ok);
    count(report_.by_hops[expected.hops], exact, final_ok);
    count(report_.by_cot[expected.cot], exact, final_ok);
    count(report_.by_chars[n_chars], exact, final_ok);
    count(report_.by_hash_len[query.key.size()], exact, final_ok);
  }
}

DataRecord read_data_record(const std::string& path, const io::JsonlRecord& record, bool need_prompt) {
  DataRecord out;
  if (need_prompt) out.prompt = io::get_string(path, record, "prompt");  // a missing prompt is reported first
  if (!record.value.contains("completion") && record.value.contains("targets")) {
    out.expected = completion_from_targets(path, record);
  } else {
    try {
      out.expected = parse_completion(io::get_string(path, record, "completion"));
    } catch (const FormatError& e) {
      throw io::InputError(path, record.line, "completion", e.what());
    }
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

namespace {
// Scoring needs the completion and the prompt's size, not the prompt or the targets: leaving them out
// of the parsed records keeps memory near one line of text instead of ~8x it. Targets are kept only
// for files whose first record has no completion (they are then the queries).
std::set<std::string> score_skips(const std::string& data_path) {
  io::JsonlReader peek(data_path);
  peek.skip_fields({"prompt", "targets"});
  const auto first = peek.next();
  if (first && !first->value.contains("completion")) return {"prompt"};
  return {"prompt", "targets"};
}
}  // namespace

ScoreReport score_files(const std::string& data_path, const std::string& predictions_path,
                        const std::function<void(std::uint64_t, std::uint64_t)>& on_progress) {
  io::JsonlReader data(data_path);
  data.skip_fields(score_skips(data_path));
  io::JsonlReader predictions(predictions_path);
  // The predictions' form is told by their first line: JSONL, or one JSON object over the whole file.
  std::optional<io::JsonlRecord> first;
  std::optional<AnswerMap> whole_file;  // one query -> answer map for every record
  try {
    first = predictions.next();
  } catch (const io::InputError& e) {
    // Only a regular file can hold one JSON object over several lines (a device or pipe cannot be reread).
    if (e.line() != 1 || predictions.size_bytes() == 0) throw;
    nlohmann::json value;
    try {
      value = io::parse_json(io::read_file_limited(predictions_path, 1ULL << 32, predictions_path), predictions_path, 0);
    } catch (const io::InputError&) {
      throw e;  // neither JSONL nor one JSON value: report the first line
    }
    if (!value.is_object()) throw io::InputError(predictions_path, 0, "", "expected JSONL or one JSON object of query -> answer");
    whole_file = answer_map(predictions_path, 0, value);
  }
  Scorer scorer;
  std::uint64_t index = 0;
  std::optional<nlohmann::json> first_map;  // the first line when it is a query -> answer map
  while (auto record = data.next()) {
    const DataRecord data_record = read_data_record(data_path, *record, /*need_prompt=*/false);
    if (whole_file) {
      scorer.add_answers(data_record.expected, *whole_file, data_record.n_chars);
    } else {
      auto prediction = index == 0 ? std::move(first) : predictions.next();
      if (!prediction && index == 1 && first_map) {
        // A single-line file holding one map answers every record (the one-object form on one line).
        whole_file = answer_map(predictions_path, 1, *first_map);
        scorer.add_answers(data_record.expected, *whole_file, data_record.n_chars);
      } else if (!prediction) {
        throw io::InputError(predictions_path, 0, "", "has fewer records than " + data_path + " (ends before record " + std::to_string(index + 1) + ")");
      } else if (prediction->value.contains("completion") || !answers_any_query(prediction->value, data_record.expected)) {
        scorer.add(data_record.expected, io::get_string(predictions_path, *prediction, "completion"), data_record.n_chars);
      } else {
        if (index == 0) first_map = prediction->value;
        scorer.add_answers(data_record.expected, answer_map(predictions_path, prediction->line, prediction->value), data_record.n_chars);
      }
    }
    ++index;
    if (on_progress) on_progress(data.bytes_read(), data.size_bytes());
  }
  if (index == 0) throw io::InputError(data_path, 0, "", "has no records");
  if (!whole_file && predictions.next()) throw io::InputError(predictions_path, 0, "", "has more records than " + data_path);
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
  for (const auto& [len, c] : report.by_hash_len) out += row("hash_len=" + std::to_string(len), c);
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
  for (const auto& [len, c] : report.by_hash_len) out["by_hash_len"][std::to_string(len)] = counts_json(c);
  return out;
}

}  // namespace hashhop::bench
