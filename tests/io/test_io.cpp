// Atomic output (nothing left behind on failure) and JSONL reading. Run: ctest -R AtomicOutput
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hashhop/io/atomic_output.h"
#include "hashhop/io/input_error.h"

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
