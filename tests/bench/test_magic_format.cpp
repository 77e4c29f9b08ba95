// The Magic-format parser: recovers pairs, chains and targets from Magic-layout text and reports
// malformed lines with their line number. Run: ctest -R MagicFormat
#include <gtest/gtest.h>

#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/reference_solver.h"

using namespace hashhop::bench;

namespace {
// Hand-written in the layout of Magic's MultiHopEval.make_one (2 chains, 2 hops).
constexpr std::string_view kPrompt = "qWerTy = AsdFgh\nZxcVbn = 'PoiUyt'\nAsdFgh = 'LkjHgf'\nMnbVcx = ZxcVbn";
constexpr std::string_view kCompletion = "COMPLETION:\nHops=2\n\nCoT=False\n\nqWerTy = 'LkjHgf'\nMnbVcx = 'PoiUyt'\n";

std::uint64_t error_line(std::string_view prompt) {
  try {
    parse_prompt(prompt);
  } catch (const FormatError& e) {
    return e.line();
  }
  return 0;
}
}  // namespace

TEST(MagicFormat, RecoversPairsChainsAndTargets) {
  const ParsedPrompt parsed = parse_prompt(kPrompt);
  EXPECT_EQ(parsed.n_lines, 4u);
  ASSERT_EQ(parsed.chain_starts.size(), 2u);
  EXPECT_EQ(parsed.chain_starts[0], "qWerTy");
  EXPECT_EQ(parsed.chain_starts[1], "MnbVcx");
  EXPECT_TRUE(parsed.next.at("ZxcVbn").is_final);
  EXPECT_FALSE(parsed.next.at("qWerTy").is_final);
  EXPECT_EQ(follow_chain(parsed, "qWerTy", 2, false), "LkjHgf");
  EXPECT_EQ(follow_chain(parsed, "MnbVcx", 2, true), "ZxcVbn = PoiUyt");
  EXPECT_EQ(follow_chain(parsed, "qWerTy", 1, false), "AsdFgh");
  EXPECT_THROW(follow_chain(parsed, "qWerTy", 3, false), FormatError);
  EXPECT_THROW(follow_chain(parsed, "nothere", 1, false), FormatError);
}

TEST(MagicFormat, ParsesTheCompletionBlock) {
  const ParsedCompletion completion = parse_completion(kCompletion);
  EXPECT_EQ(completion.hops, 2);
  EXPECT_FALSE(completion.cot);
  ASSERT_EQ(completion.queries.size(), 2u);
  EXPECT_EQ(completion.queries[1].key, "MnbVcx");
  EXPECT_EQ(completion.queries[1].answer, "PoiUyt");
  EXPECT_EQ(format_completion(completion.hops, completion.cot, completion.queries), kCompletion);
}

TEST(MagicFormat, ReferenceSolverAnswersExactly) {
  EXPECT_EQ(solve_exactly(kPrompt, kCompletion), kCompletion);
}

TEST(MagicFormat, ReportsTheLineOfAMalformedPrompt) {
  EXPECT_EQ(error_line("abc = def\nghi: jkl"), 2u);
  EXPECT_EQ(error_line("abc = def\nab1 = xyz"), 2u);
  EXPECT_EQ(error_line("abc = def\nxyz = 'q"), 2u);
  EXPECT_EQ(error_line("abc = def\nabc = xyz"), 2u);  // duplicate key
  EXPECT_EQ(error_line("abc = def\n"), 2u);           // trailing newline = empty last line
  EXPECT_EQ(error_line(""), 1u);
  EXPECT_EQ(error_line("abc = def"), 0u);
}

TEST(MagicFormat, RejectsMalformedCompletions) {
  EXPECT_THROW(parse_completion("COMPLETION:\nHops=2\n\nCoT=False\n\nabc = 'def'"), FormatError);  // no final newline
  EXPECT_THROW(parse_completion("COMPLETION:\nHops=x\n\nCoT=False\n\n"), FormatError);
  EXPECT_THROW(parse_completion("COMPLETION:\nHops=2\n\nCoT=maybe\n\n"), FormatError);
  EXPECT_THROW(parse_completion("COMPLETION:\nHops=2\n\nCoT=True\n\nabc = def\n"), FormatError);
  EXPECT_NO_THROW(parse_completion("COMPLETION:\nHops=2\n\nCoT=True\n\n"));
  // Signs, spaces and overflowing counts are not Magic's format (std::stoi alone accepted " +2").
  EXPECT_THROW(parse_completion("COMPLETION:\nHops= +2\n\nCoT=True\n\n"), FormatError);
  EXPECT_THROW(parse_completion("COMPLETION:\nHops=+2\n\nCoT=True\n\n"), FormatError);
  EXPECT_THROW(parse_completion("COMPLETION:\nHops=99999999999\n\nCoT=True\n\n"), FormatError);
}

TEST(MagicFormat, LenientAnswerParsingFindsQuotedAnswersAnywhere) {
  const auto answers = parse_answer_lines("noise\nabc = 'x = y'\nCOMPLETION:\ndef = 'z'\nbad = unquoted\n");
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers.at("abc"), "x = y");
  EXPECT_EQ(answers.at("def"), "z");
  EXPECT_EQ(final_hash("x = y"), "y");
  EXPECT_EQ(final_hash("z"), "z");
}

TEST(MagicFormat, PromptEndsCheckRejectsTextThatIsNotHashHop) {
  EXPECT_NO_THROW(check_prompt_ends("abc = def\ndef = 'ghi'"));
  EXPECT_NO_THROW(check_prompt_ends("abc = 'def'"));
  EXPECT_THROW(check_prompt_ends("Once upon a time"), FormatError);
  EXPECT_THROW(check_prompt_ends("abc = def\nthe end"), FormatError);
  EXPECT_THROW(check_prompt_ends(""), FormatError);
}
