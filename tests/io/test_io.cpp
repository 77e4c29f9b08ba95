// Atomic output (nothing left behind on failure) and JSONL reading. Run: ctest -R AtomicOutput
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <random>
#include <vector>
#include <map>
#include <fstream>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "hashhop/io/atomic_output.h"
#include "hashhop/io/files.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"
#include "hashhop/io/temp_files.h"

using hashhop::io::AtomicOutput;
namespace fs = std::filesystem;

TEST(AtomicOutput, CommitRenamesAndAbandonLeavesNothing) {
  const fs::path dir = fs::path(::testing::TempDir()) / "atomic_output_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "out.txt").string();
  {
    AtomicOutput out(path);
    out.write("partial");
    // destroyed without commit, as when an exception unwinds
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(dir)) << "temporary file left behind";
  {
    AtomicOutput out(path);
    out.write("whole");
    out.commit();
  }
  std::ifstream in(path);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "whole");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

// Past several writeback ranges (8 MB each), in odd-sized random pieces: the file holds exactly what was
// written, and an output abandoned after its writeback started still leaves nothing.
TEST(AtomicOutput, LongOutputsSurviveEarlyWriteback) {
  const fs::path dir = fs::path(::testing::TempDir()) / "atomic_output_writeback";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "big.bin").string();
  std::mt19937_64 rng(7);
  std::string bytes(27'000'001, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  for (const bool commit : {false, true}) {
    AtomicOutput out(path);
    for (std::size_t at = 0; at < bytes.size();) {
      const std::size_t piece = std::min<std::size_t>(bytes.size() - at, 1 + rng() % 3'000'000);
      out.write(std::string_view(bytes).substr(at, piece));
      at += piece;
    }
    if (commit) out.commit();
  }
  std::ifstream in(path, std::ios::binary);
  const std::string read((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(read == bytes) << "read " << read.size() << " bytes";
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1) << "temporary file left behind";
  fs::remove_all(dir);
}

TEST(AtomicOutput, UnwritablePathIsAClearError) {
  try {
    AtomicOutput out("/nonexistent-dir/out.jsonl");
    FAIL() << "expected an error";
  } catch (const hashhop::io::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/out.jsonl: cannot write"), std::string::npos);
  }
}

TEST(AtomicOutput, DevicesAreWrittenInPlaceNotReplaced) {
  {
    AtomicOutput out("/dev/null");
    out.write("discarded");
    out.commit();
  }
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
}

namespace {
fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST(TempFiles, SignalRemovesRegisteredTemporaries) {
  const fs::path dir = fresh_dir("temp_files_signal");
  const std::string target = (dir / "out.jsonl").string();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    AtomicOutput out(target);  // creates out.jsonl.partial.PID, then the signal comes mid-write
    out.write("half");
    ::raise(SIGTERM);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << "the process must still die of the signal";
  EXPECT_TRUE(fs::is_empty(dir)) << "temporary left behind";
}

TEST(TempFiles, SweepRemovesOnlyDeadProcessesTemporaries) {
  const fs::path dir = fresh_dir("temp_files_sweep");
  const std::string target = (dir / "out.jsonl").string();
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  std::ofstream(target + ".partial." + std::to_string(dead)) << "x";
  std::ofstream(target + ".partial." + std::to_string(::getppid())) << "x";  // alive
  std::ofstream(target + ".partial.notapid") << "x";
  std::ofstream((dir / "other.jsonl.partial.1").string()) << "x";  // another target: not ours to judge
  EXPECT_EQ(hashhop::io::sweep_stale_temp_files(target), 1);
  EXPECT_FALSE(fs::exists(target + ".partial." + std::to_string(dead)));
  EXPECT_TRUE(fs::exists(target + ".partial." + std::to_string(::getppid())));
  EXPECT_TRUE(fs::exists(target + ".partial.notapid"));
}

TEST(Files, ReadLimitedStopsOnDevicesWithoutASize) {
  const std::string error = error_of([] { hashhop::io::read_file_limited("/dev/zero", 1 << 20, "--prompt"); });
  EXPECT_NE(error.find("/dev/zero (--prompt): "), std::string::npos) << error;
  EXPECT_NE(error.find("is more than the limit of 1048576 bytes"), std::string::npos) << error;
  const fs::path dir = fresh_dir("read_limited");
  std::ofstream((dir / "small.txt").string()) << "abc";
  EXPECT_EQ(hashhop::io::read_file_limited((dir / "small.txt").string(), 3, "--prompt"), "abc");
  EXPECT_NE(error_of([&] { hashhop::io::read_file_limited((dir / "small.txt").string(), 2, "--prompt"); }).find("3 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([&] { hashhop::io::read_file_limited(dir.string(), 2, "--prompt"); }).find("is a directory"),
            std::string::npos);
}

TEST(Files, OutputEqualToInputIsRefused) {
  const fs::path dir = fresh_dir("distinct_files");
  const std::string data = (dir / "data.jsonl").string();
  std::ofstream(data) << "{}\n";
  fs::create_symlink(data, dir / "link.jsonl");
  EXPECT_THROW(hashhop::io::check_distinct_files(data, "--out", data, "--data"), std::invalid_argument);
  EXPECT_THROW(hashhop::io::check_distinct_files((dir / "link.jsonl").string(), "--out", data, "--data"),
               std::invalid_argument);
  EXPECT_NO_THROW(hashhop::io::check_distinct_files((dir / "new.jsonl").string(), "--out", data, "--data"));
  EXPECT_NO_THROW(hashhop::io::check_distinct_files("-", "--out", data, "--data"));
  EXPECT_NO_THROW(hashhop::io::check_distinct_files("/dev/null", "--out", "/dev/null", "--data"));
}

TEST(Jsonl, StrictParsingNamesTheField) {
  const auto error = [](const std::string& text) {
    return error_of([&] { hashhop::io::parse_json(text, "f.jsonl", 7); });
  };
  EXPECT_EQ(error(R"({"a": {"n": 1e999}})"), "f.jsonl:7: field 'n': number out of range");
  EXPECT_EQ(error(R"({"a": 1, "b": 2, "a": 3})"), "f.jsonl:7: field 'a': appears twice in one object");
  EXPECT_EQ(error(R"({"a": 1, "b": {"a": 2}})"), "no error");  // the same key in another object is fine
  EXPECT_NE(error(R"({"a": )").find("f.jsonl:7: field 'a': not valid JSON"), std::string::npos);
}

TEST(Jsonl, SkippedFieldsAreLeftOutButStillChecked) {
  std::map<std::string, std::uint64_t> sizes;
  const hashhop::io::JsonSkip skip{{"prompt", "targets"}, &sizes};
  const auto value = hashhop::io::parse_json(R"({"prompt": "abcdef", "targets": {"a": "b", "c": {"d": 1}}, "n": 2})",
                                             "f.jsonl", 1, skip);
  EXPECT_FALSE(value.contains("prompt"));
  EXPECT_FALSE(value.contains("targets"));
  EXPECT_EQ(value.at("n"), 2);
  EXPECT_EQ(sizes.at("prompt"), 6u);
  // Inside a skipped object only the syntax is checked (its keys are not held); a duplicate after it is an error.
  EXPECT_EQ(error_of([&] { hashhop::io::parse_json(R"({"targets": {"a": 1, "a": 2}})", "f.jsonl", 1, skip); }), "no error");
  EXPECT_NE(error_of([&] { hashhop::io::parse_json(R"({"targets": {"a": 1, }})", "f.jsonl", 1, skip); }).find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] { hashhop::io::parse_json(R"({"targets": {"a": {}}, "n": 1, "n": 2})", "f.jsonl", 1, skip); })
                .find("field 'n': appears twice"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { hashhop::io::parse_json(R"({"targets": {"n": {}}, "n": 1})", "f.jsonl", 1, skip); }),
            "no error");
}

namespace {
// Every record of FILE read twice: streamed with prompt/targets skipped, and line by line through parse_json
// with the same skip (the string path). Both must agree on values, sizes and line numbers.
void expect_streaming_matches_strings(const fs::path& file) {
  hashhop::io::JsonlReader streamed(file.string());
  streamed.skip_fields({"prompt", "targets"});
  std::ifstream lines(file);
  std::string text;
  std::uint64_t line = 0;
  while (std::getline(lines, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::map<std::string, std::uint64_t> sizes;
    const auto want = hashhop::io::parse_json(text, file.string(), line, {{"prompt", "targets"}, &sizes});
    const auto got = streamed.next();
    ASSERT_TRUE(got.has_value()) << "line " << line;
    EXPECT_EQ(got->line, line);
    EXPECT_EQ(got->value, want) << "line " << line;
    EXPECT_EQ(got->skipped_string_sizes, sizes) << "line " << line;
  }
  EXPECT_FALSE(streamed.next().has_value());
}
}  // namespace

// The streamed reader (what score uses: prompts never held) against the string parser, on records with
// escapes, surrogate pairs, raw UTF-8, blank and CRLF lines, a nested "prompt" that is not skipped and an
// escaped key that the parser skips instead.
TEST(Jsonl, StreamingReaderMatchesTheStringParser) {
  const fs::path dir = fresh_dir("jsonl_streaming");
  {
    std::ofstream out(dir / "data.jsonl", std::ios::binary);
    out << R"({"prompt": "ab\ncd\"\\\/\b\f\r\t \u00e9\u20ac\ud83d\ude00 \u0041", "completion": "x", "n": 1})" << "\n";
    out << "\n   \t\r\n";
    out << "  " << R"({"n": 2, "targets": {"a": "b", "c": ["d", {"e": 1}]}, "prompt": "\u00e9 )"
        << "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}\r\n";
    out << R"({"meta": {"prompt": "kept"}, "prompt": "", "list": ["prompt", {"prompt": "x"}]})" << "\n";
    out << R"({"pro\u006dpt": "escaped key", "completion": "y"})" << "\n";
    out << R"({"completion": "z", "prompt": "last line without a newline"})";
  }
  expect_streaming_matches_strings(dir / "data.jsonl");
  // Random prompts built from the awkward cases, many lines.
  std::mt19937 rng(5);
  const std::vector<std::string> pieces = {"a", "Z", " ", "\\n", "\\\"", "\\\\", "\\u00e9", "\\ud83d\\ude00", "\xc3\xa9",
                                           "\xe2\x82\xac", "\xf0\x9f\x98\x80", "=", "'", "\\u0000", "\\/", ",", "}", "]", ":"};
  {
    std::ofstream out(dir / "random.jsonl", std::ios::binary);
    for (int i = 0; i < 300; ++i) {
      std::string prompt;
      const int n = static_cast<int>(rng() % 40);
      for (int j = 0; j < n; ++j) prompt += pieces[rng() % pieces.size()];
      out << (i % 2 ? R"({"prompt": ")" + prompt + R"(", "i": )" + std::to_string(i) + "}"
                    : R"({"i": )" + std::to_string(i) + R"(, "targets": {"k": ")" + prompt + R"("}, "prompt": ")" + prompt + "\"}")
          << "\n";
    }
  }
  expect_streaming_matches_strings(dir / "random.jsonl");
}

// A dropped prompt is still checked as a JSON string: each bad one is a one-line error naming file, line and
// field, as the string parser's is.
TEST(Jsonl, StreamingReaderChecksDroppedStrings) {
  const fs::path dir = fresh_dir("jsonl_streaming_bad");
  const std::vector<std::string> bad = {R"({"prompt": "no end)", "{\"prompt\": \"a\x01\"}", "  {\"prompt\": \"\x01\"}", R"({"prompt": "\x"})",
                                        R"({"prompt": "\udc00"})", R"({"prompt": "\ud83d x"})", R"({"prompt": "\u12g4"})",
                                        "{\"prompt\": \"\xff\"}", "{\"prompt\": \"\xc0\x80\"}", "{\"prompt\": \"\xe2\x82\"}", "{\"prompt\": \"ab\xf1", R"({"prompt": "ab\)", R"({"prompt": "\u12)",
                                        R"({"prompt": "\ud83d)", R"({"prompt": "\ud83d\)",
                                        R"({"prompt": "ok"} trailing)", R"({"prompt": "ok", "prompt": "again"})"};
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const fs::path file = dir / ("bad" + std::to_string(i) + ".jsonl");
    {
      std::ofstream out(file, std::ios::binary);
      out << "{\"n\": 1}\n" << bad[i] << "\n";
    }
    EXPECT_NE(error_of([&] { hashhop::io::parse_json(bad[i], file.string(), 2, {{"prompt"}, nullptr}); }), "no error") << i;
    hashhop::io::JsonlReader reader(file.string());
    reader.skip_fields({"prompt"});
    ASSERT_TRUE(reader.next().has_value());
    const std::string error = error_of([&] { reader.next(); });
    EXPECT_EQ(error.rfind(file.string() + ":2: field 'prompt': ", 0), 0u) << i << ": " << error;
    // The same byte as the string parser names.
    const std::string want = error_of([&] { hashhop::io::parse_json(bad[i], file.string(), 2, {{"prompt"}, nullptr}); });
    const auto byte = [](const std::string& e) { const auto at = e.find("(byte "); return at == std::string::npos ? e : e.substr(at, e.find(')', at) - at); };
    EXPECT_EQ(byte(error), byte(want)) << i << ": " << error << " | " << want;
    EXPECT_FALSE(reader.next().has_value()) << i;  // the bad line was read past: nothing follows it
  }
  // A byte-order mark is allowed only at a line's first byte (nlohmann's rule), after whitespace it is an error.
  const fs::path bom = dir / "bom.jsonl";
  {
    std::ofstream out(bom, std::ios::binary);
    out << " \xEF\xBB\xBF{\"n\": 1}\n";
  }
  hashhop::io::JsonlReader reader(bom.string());
  reader.skip_fields({"prompt"});
  EXPECT_NE(error_of([&] { reader.next(); }), "no error");
}

TEST(Jsonl, StringsThatAreNotUtf8StayValidJson) {
  // A byte model's completion may hold any byte (0x9A broke `eval --predictions` once): the bytes that are
  // not UTF-8 become U+FFFD, the rest (UTF-8 included) survive, and the line parses.
  std::string line;
  hashhop::io::append_json_string(line, std::string("ab\x9A\xff") + "\"q\"\n\xc3\xa9");
  const auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed.get<std::string>(), "ab\xEF\xBF\xBD\xEF\xBF\xBD\"q\"\n\xc3\xa9");
}
