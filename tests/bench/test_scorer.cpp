// The scorer: exact match (whole CoT chain), final-hash accuracy, breakdowns, and file errors that
// name file, line and field. Run: ctest -R Scorer
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "hashhop/bench/scorer.h"
#include "hashhop/io/input_error.h"

using namespace hashhop::bench;

namespace {
std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& data, const std::string& predictions) {
  try {
    score_files(data, predictions);
  } catch (const hashhop::io::InputError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST(Scorer, CountsExactAndFinalHashAccuracyOnMagicSample) {
  const auto report = score_files(HASHHOP_TEST_DATA "/magic_sample.jsonl", HASHHOP_TEST_DATA "/predictions_magic_sample.jsonl");
  EXPECT_EQ(report.records, 2u);
  EXPECT_EQ(report.overall.queries, 4u);
  // Record 1: one right, one wrong. Record 2 (CoT): one whole chain right; the other has the right
  // final hash but a wrong middle, so it counts for final-hash accuracy only.
  EXPECT_EQ(report.overall.exact, 2u);
  EXPECT_EQ(report.overall.final_hash, 3u);
  EXPECT_EQ(report.by_cot.at(true).exact, 1u);
  EXPECT_EQ(report.by_cot.at(true).final_hash, 2u);
  EXPECT_EQ(report.by_hops.at(2).queries, 4u);
  const auto json = score_to_json(report);
  EXPECT_DOUBLE_EQ(json["overall"]["exact_rate"].get<double>(), 0.5);
  EXPECT_NE(format_score_table(report).find("CoT=True"), std::string::npos);
}

TEST(Scorer, MissingAnswersCountAsWrong) {
  Scorer scorer;
  scorer.add(parse_completion("COMPLETION:\nHops=1\n\nCoT=False\n\nabc = 'def'\nghi = 'jkl'\n"), "abc = 'def'\n", 100);
  EXPECT_EQ(scorer.report().overall.queries, 2u);
  EXPECT_EQ(scorer.report().overall.exact, 1u);
}

TEST(Scorer, BadFilesNameFileLineAndField) {
  const std::string good = HASHHOP_TEST_DATA "/magic_sample.jsonl";
  const std::string preds = HASHHOP_TEST_DATA "/predictions_magic_sample.jsonl";
  const auto not_json = write_temp("not_json.jsonl", "{\"completion\": \"x\"}\nnot json\n");
  EXPECT_NE(error_of(good, not_json).find("not_json.jsonl:2: not valid JSON"), std::string::npos) << error_of(good, not_json);
  const auto wrong_type = write_temp("wrong_type.jsonl", "{\"completion\": 3}\n{\"completion\": \"\"}\n");
  EXPECT_NE(error_of(good, wrong_type).find("wrong_type.jsonl:1: field 'completion': expected a string"), std::string::npos);
  const auto missing = write_temp("missing.jsonl", "{\"answer\": \"x\"}\n{\"completion\": \"\"}\n");
  EXPECT_NE(error_of(good, missing).find("missing.jsonl:1: field 'completion': missing"), std::string::npos);
  const auto short_preds = write_temp("short.jsonl", "{\"completion\": \"\"}\n");
  EXPECT_NE(error_of(good, short_preds).find("fewer records"), std::string::npos);
  const auto bad_data = write_temp("bad_data.jsonl", "{\"completion\": \"COMPLETION:\\nHops=0\\n\\nCoT=False\\n\\n\"}\n");
  EXPECT_NE(error_of(bad_data, preds).find("bad_data.jsonl:1: field 'completion': line 2"), std::string::npos) << error_of(bad_data, preds);
  EXPECT_NE(error_of(good, "/nonexistent/p.jsonl").find("/nonexistent/p.jsonl: cannot open"), std::string::npos);
}

TEST(Scorer, SilentlyAcceptedInputsAreErrors) {
  const std::string preds = HASHHOP_TEST_DATA "/predictions_magic_sample.jsonl";
  const std::string completion = "\"completion\": \"COMPLETION:\\nHops=1\\n\\nCoT=False\\n\\nabc = 'def'\\n\"";
  const auto negative = write_temp("negative.jsonl", "{" + completion + ", \"n_chars_problem\": -5}\n");
  EXPECT_NE(error_of(negative, preds).find("negative.jsonl:1: field 'n_chars_problem': must be >= 1"), std::string::npos)
      << error_of(negative, preds);
  const auto overflow = write_temp("overflow.jsonl", "{" + completion + ", \"n_chars_problem\": 1e999}\n");
  EXPECT_NE(error_of(overflow, preds).find("overflow.jsonl:1: field 'n_chars_problem': number out of range"), std::string::npos)
      << error_of(overflow, preds);
  const auto twice = write_temp("twice.jsonl", "{" + completion + ", " + completion + "}\n");
  EXPECT_NE(error_of(twice, preds).find("twice.jsonl:1: field 'completion': appears twice"), std::string::npos)
      << error_of(twice, preds);
  const auto no_queries =
      write_temp("no_queries.jsonl", "{\"completion\": \"COMPLETION:\\nHops=1\\n\\nCoT=False\\n\\n\", \"n_chars_problem\": 9}\n");
  EXPECT_NE(error_of(no_queries, preds).find("no_queries.jsonl:1: field 'completion': has no queries"), std::string::npos)
      << error_of(no_queries, preds);
  EXPECT_NE(error_of(::testing::TempDir(), preds).find("is a directory"), std::string::npos);
}

// Issue 13: codelion-style predictions (query -> answer maps), records scored from `targets`, hash length.
TEST(Scorer, AcceptsQueryAnswerMapsPerLineAndForTheWholeFile) {
  const std::string data = HASHHOP_TEST_DATA "/magic_sample.jsonl";
  // Per line: the same answers as predictions_magic_sample.jsonl, quotes and blanks tolerated.
  const auto per_line = write_temp("map_lines.jsonl",
                                   "{\"qWerTy\": \"LkjHgf\", \"MnbVcx\": \" 'AsdFgh' \"}\n"
                                   "{\"qWerTy\": \"AsdFgh = LkjHgf\", \"MnbVcx\": \"PoiUyt = PoiUyt\"}\n");
  auto report = score_files(data, per_line);
  EXPECT_EQ(report.overall.exact, 2u);
  EXPECT_EQ(report.overall.final_hash, 3u);
  // One object for the whole file, across lines: both records look their queries up in it.
  const auto whole = write_temp("map_whole.json", "{\n  \"qWerTy\": \"LkjHgf\",\n  \"MnbVcx\": null\n}\n");
  report = score_files(data, whole);
  EXPECT_EQ(report.overall.queries, 4u);
  EXPECT_EQ(report.overall.exact, 1u);        // record 1's qWerTy; record 2 wants the CoT chain
  EXPECT_EQ(report.overall.final_hash, 2u);   // the final hash is right in both
  const auto one_line = write_temp("map_one_line.json", "{\"qWerTy\": \"LkjHgf\", \"MnbVcx\": \"PoiUyt\"}\n");
  EXPECT_EQ(score_files(data, one_line).overall.exact, 2u);
  const auto bad = write_temp("map_bad.jsonl", "{\"qWerTy\": 5}\n{}\n");
  EXPECT_NE(error_of(data, bad).find("map_bad.jsonl:1: field 'qWerTy': expected a string answer"), std::string::npos)
      << error_of(data, bad);
}

TEST(Scorer, ReadsRecordsWithoutCompletionFromTargets) {
  const auto data = write_temp("targets_only.jsonl",
                               "{\"prompt\": \"x\", \"targets\": {\"qWerTy\": \"LkjHgf\", \"MnbVcx\": \"PoiUyt\"}, \"hops\": 2}\n"
                               "{\"targets\": {\"qWerTy\": \"AsdFgh = LkjHgf\", \"MnbVcx\": \"ZxcVbn = PoiUyt\"}, \"n_chars_problem\": 9}\n");
  const auto report = score_files(data, HASHHOP_TEST_DATA "/predictions_magic_sample.jsonl");
  EXPECT_EQ(report.overall.queries, 4u);
  EXPECT_EQ(report.overall.exact, 2u);
  EXPECT_EQ(report.by_cot.at(true).queries, 2u);
  EXPECT_EQ(report.by_hops.at(2).queries, 4u);  // CoT chains of two hashes: two hops
  const auto no_hops = write_temp("targets_no_hops.jsonl", "{\"prompt\": \"x\", \"targets\": {\"qWerTy\": \"LkjHgf\"}}\n");
  EXPECT_NE(error_of(no_hops, HASHHOP_TEST_DATA "/predictions_magic_sample.jsonl").find("targets_no_hops.jsonl:1: field 'hops': missing"),
            std::string::npos);
  const auto bad_chain = write_temp("targets_bad.jsonl", "{\"prompt\": \"x\", \"targets\": {\"qWerTy\": \"Lk = \"}, \"hops\": 1}\n");
  EXPECT_NE(error_of(bad_chain, HASHHOP_TEST_DATA "/predictions_magic_sample.jsonl").find("targets_bad.jsonl:1: field 'targets'"),
            std::string::npos);
}

TEST(Scorer, BreaksDownByHashLength) {
  Scorer scorer;
  scorer.add(parse_completion("COMPLETION:\nHops=1\n\nCoT=False\n\nabc = 'def'\nghij = 'klmn'\n"), "abc = 'def'\n", 100);
  const auto& report = scorer.report();
  EXPECT_EQ(report.by_hash_len.at(3).exact, 1u);
  EXPECT_EQ(report.by_hash_len.at(4).exact, 0u);
  EXPECT_NE(format_score_table(report).find("hash_len=4"), std::string::npos);
  EXPECT_EQ(score_to_json(report)["by_hash_len"]["3"]["exact_rate"].get<double>(), 1.0);
}
