// The generator: Magic's layout, golden output, chains that reproduce the targets, uniqueness,
// determinism, streaming equal to in-memory, and validation. Run: ctest -R Generator
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_set>

#include "hashhop/bench/generator.h"
#include "hashhop/bench/magic_format.h"
#include "hashhop/bench/record_writer.h"
#include "sha256.h"

using namespace hashhop::bench;

namespace {

GenConfig make_config(std::uint64_t n_chars, int hops, int hash_len, bool cot, std::uint64_t seed, std::uint64_t queries = 3) {
  GenConfig config;
  config.n_chars = n_chars;
  config.hops = hops;
  config.hash_len = hash_len;
  config.cot = cot;
  config.seed = seed;
  config.num_queries = queries;
  return config;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string record_text(const HashHopProblem& problem, RecordFormat format) {
  std::string out;
  write_record(problem, format, [&](std::string_view chunk) { out.append(chunk); });
  return out;
}

}  // namespace

TEST(Generator, MatchesGoldenSamples) {
  // Golden files pin the exact bytes for fixed seeds: any change to the hash or shuffle order shows
  // up here and must be a deliberate format version change (docs/format.md).
  const HashHopProblem two_hops(make_config(300, 2, 6, false, 7));
  EXPECT_EQ(record_text(two_hops, RecordFormat::text), read_file(HASHHOP_TEST_DATA "/golden_hops2_len6_seed7.txt"));
  const HashHopProblem cot(make_config(200, 3, 4, true, 11, 2));
  EXPECT_EQ(record_text(cot, RecordFormat::text), read_file(HASHHOP_TEST_DATA "/golden_hops3_len4_cot_seed11.txt"));
}

TEST(Generator, FollowsMagicSizingRule) {
  for (std::uint64_t n : {1ULL, 34ULL, 35ULL, 36ULL, 1000ULL, 123457ULL}) {
    for (int hops : {1, 2, 3}) {
      const GenConfig config = make_config(n, hops, 16, false, 0, 1);
      const double per_chain = (2.0 * 16 + 3) * hops;
      EXPECT_EQ(chains_for(config), static_cast<std::uint64_t>(std::ceil(static_cast<double>(n) / per_chain)));
    }
  }
}

TEST(Generator, ChainsReproduceTargetsForAllHopsAndLengths) {
  for (int hops = 1; hops <= 8; ++hops) {
    for (int hash_len : {1, 2, 3, 5, 8, 13, 16, 32}) {
      for (bool cot : {false, true}) {
        // L = 1 has only 52 hashes; size the problem to fit.
        const std::uint64_t n_chars = hash_len == 1 ? 40 : 3000;
        const GenConfig config = make_config(n_chars, hops, hash_len, cot, 1000 + hops * 100 + hash_len, 1);
        const HashHopProblem problem(config);
        const std::string prompt = problem.prompt();
        ASSERT_EQ(prompt.size(), problem.prompt_size());
        const ParsedPrompt parsed = parse_prompt(prompt);
        ASSERT_EQ(parsed.n_lines, problem.n_lines());
        ASSERT_EQ(parsed.chain_starts.size(), problem.n_chains()) << "hops=" << hops << " L=" << hash_len;
        for (std::uint64_t chain = 0; chain < problem.n_chains(); ++chain) {
          const std::string start = problem.hash(chain, 0);
          ASSERT_EQ(follow_chain(parsed, start, hops, cot), problem.target(chain)) << "hops=" << hops << " L=" << hash_len;
        }
        const ParsedCompletion completion = parse_completion(problem.completion());
        EXPECT_EQ(completion.hops, hops);
        EXPECT_EQ(completion.cot, cot);
        ASSERT_EQ(completion.queries.size(), 1u);
        EXPECT_EQ(completion.queries[0].answer, follow_chain(parsed, completion.queries[0].key, hops, cot));
      }
    }
  }
}

TEST(Generator, HashesAreUniqueEvenWhenTheAlphabetIsNearlyExhausted) {
  // L = 2 gives 2704 possible hashes; 1350 chains of 1 hop need 2700 of them.
  const HashHopProblem problem(make_config(1350 * 7, 1, 2, false, 3, 1));
  ASSERT_EQ(problem.n_chains(), 1350u);
  std::unordered_set<std::string> seen;
  for (std::uint64_t chain = 0; chain < problem.n_chains(); ++chain) {
    for (int level = 0; level <= 1; ++level) ASSERT_TRUE(seen.insert(problem.hash(chain, level)).second);
  }
  // One chain more does not fit: a clear error instead of a silent merge.
  EXPECT_THROW(HashHopProblem(make_config(1353 * 7, 1, 2, false, 3, 1)), std::invalid_argument);
}

TEST(Generator, IsDeterministicAndSeedSensitive) {
  const GenConfig config = make_config(20000, 2, 16, true, 42, 5);
  EXPECT_EQ(HashHopProblem(config).prompt(), HashHopProblem(config).prompt());
  EXPECT_EQ(HashHopProblem(config).completion(), HashHopProblem(config).completion());
  GenConfig other = config;
  other.seed = 43;
  EXPECT_NE(HashHopProblem(config).prompt(), HashHopProblem(other).prompt());
}

TEST(Generator, StreamedOutputEqualsInMemoryForAnyChunkSize) {
  const HashHopProblem problem(make_config(50000, 3, 8, false, 5, 4));
  const std::string whole = problem.prompt();
  for (std::size_t chunk : {1u, 7u, 64u, 4096u}) {
    std::string streamed;
    std::size_t calls = 0;
    problem.stream_prompt([&](std::string_view piece) { streamed.append(piece); ++calls; }, "\n", {}, chunk);
    EXPECT_EQ(streamed, whole) << "chunk=" << chunk;
    if (chunk < 64) EXPECT_GT(calls, 100u);
  }
}

TEST(Generator, Sha256HelperMatchesKnownDigests) {
  EXPECT_EQ(hashhop::test::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hashhop::test::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hashhop::test::sha256_hex(std::string(1000, 'a')),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(Generator, OutputBytesArePinnedForAnyThreadCount) {
  // SHA-256 of `hashhop gen ... --format F` as written before the generator was vectorised and made
  // parallel (commit 7570c72): speed-ups must not change a byte, whatever the thread count. The 5M
  // configs span several 1 MB chunks, so the ordered parallel writer is exercised.
  struct Pinned {
    GenConfig config;
    const char* jsonl;
    const char* text;
  };
  const Pinned pinned[] = {
      {make_config(100'000, 2, 16, false, 1, 5), "cc5fd5f566f566bc4590f56d79fea4163bf999199c22fa0cc34f1f78bab4495e",
       "5bea19caffe69997f21a515f307869add39db76f5dab3f39daf6cf9ee0cca440"},
      {make_config(50'000, 3, 8, true, 42, 3), "d63e3bc013984f4d014d94af0f6052bb0242f3b1aa166dddc8cdeebf87bd68f1",
       "bb104be7b005858d907e71ea6902226d2d3e8ac8b61e807ca520cdb2b1fc6313"},
      {make_config(200'000, 4, 32, true, 123456789, 5), "9f3c7c5e23ca5e74e199c530fb7712e37d773d448b6e3048ef9ea77a4c40cae6",
       "ea5b1e80a74b08d479c9bfe4b4ae53bc224a0b1b75f63ad69a32a7db7f828fe5"},
      {make_config(5'000'000, 2, 16, false, 3, 5), "3331f0b4bb9e9b19e5e83a46534c5b18f6bdad0d645de95bc9f3ea2646639708",
       "dab243cd902fbf33bf5f5a4b411b2ebba094d53f214718e47c2ebf0d14de7b06"},
  };
  for (const Pinned& p : pinned) {
    const HashHopProblem problem(p.config);
    for (int threads : {1, 2, 3}) {
      for (auto [format, expected] : {std::pair{RecordFormat::jsonl, p.jsonl}, std::pair{RecordFormat::text, p.text}}) {
        std::string out;
        write_record(problem, format, [&](std::string_view chunk) { out.append(chunk); }, {}, threads);
        EXPECT_EQ(hashhop::test::sha256_hex(out), expected)
            << "n_chars=" << p.config.n_chars << " hops=" << p.config.hops << " threads=" << threads
            << (format == RecordFormat::jsonl ? " jsonl" : " text");
      }
    }
  }
}

TEST(Generator, ParallelStreamingEqualsInMemoryForAnyChunkSize) {
  const HashHopProblem problem(make_config(50000, 3, 8, false, 5, 4));
  const std::string whole = problem.prompt();
  for (int threads : {2, 3, 8}) {
    for (std::size_t chunk : {1u, 7u, 64u, 4096u}) {
      std::string streamed;
      std::uint64_t last_progress = 0;
      problem.stream_prompt([&](std::string_view piece) { streamed.append(piece); }, "\\n",
                            [&](std::uint64_t lines) {
                              EXPECT_GE(lines, last_progress);
                              last_progress = lines;
                            },
                            chunk, threads);
      std::string expected;
      problem.stream_prompt([&](std::string_view piece) { expected.append(piece); }, "\\n", {}, chunk, 1);
      EXPECT_EQ(streamed, expected) << "threads=" << threads << " chunk=" << chunk;
      EXPECT_EQ(last_progress, problem.n_lines());
    }
    std::string newline_streamed;
    problem.stream_prompt([&](std::string_view piece) { newline_streamed.append(piece); }, "\n", {}, 64, threads);
    EXPECT_EQ(newline_streamed, whole) << "threads=" << threads;
  }
}

TEST(Generator, ParallelWriterPassesOnASinkFailure) {
  // A full disk throws from the sink: the workers must stop and the exception reach the caller.
  const HashHopProblem problem(make_config(200'000, 2, 16, false, 1, 5));
  std::size_t calls = 0;
  EXPECT_THROW(problem.stream_prompt([&](std::string_view) { if (++calls == 3) throw std::runtime_error("disk full"); },
                                     "\n", {}, 256, 2),
               std::runtime_error);
  EXPECT_EQ(calls, 3u);
}

TEST(Generator, JsonlRecordCarriesMagicFieldsAndAllTargets) {
  const HashHopProblem problem(make_config(5000, 2, 8, true, 9, 4));
  const std::string line = record_text(problem, RecordFormat::jsonl);
  ASSERT_EQ(line.back(), '\n');
  ASSERT_EQ(line.find('\n'), line.size() - 1) << "a record is exactly one line";
  const auto record = nlohmann::json::parse(line);
  EXPECT_EQ(record["prompt"].get<std::string>(), problem.prompt());
  EXPECT_EQ(record["completion"].get<std::string>(), problem.completion());
  EXPECT_EQ(record["hops"], 2);
  EXPECT_EQ(record["cot"], true);
  EXPECT_EQ(record["hash_len"], 8);
  EXPECT_EQ(record["n_chars_problem"], 5000);
  EXPECT_EQ(record["num_queries"], 4);
  EXPECT_EQ(record["seed"], 9);
  ASSERT_EQ(record["targets"].size(), problem.n_chains());
  for (std::uint64_t chain = 0; chain < problem.n_chains(); ++chain) {
    EXPECT_EQ(record["targets"][problem.hash(chain, 0)], problem.target(chain));
  }
}

TEST(Generator, CharactersAreUniformOverTheAlphabet) {
  // Chi-square over the first and last character of 20K hashes; 51 degrees of freedom, the 0.999
  // quantile is about 92. Catches a biased prefix permutation or suffix digit extraction.
  const HashHopProblem problem(make_config(20000 * 35 / 2, 1, 16, false, 77, 1));
  for (int position : {0, 6, 7, 15}) {
    std::vector<double> counts(52, 0.0);
    double total = 0;
    for (std::uint64_t chain = 0; chain < problem.n_chains(); ++chain) {
      for (int level = 0; level <= 1; ++level) {
        counts[kHashAlphabet.find(problem.hash(chain, level)[position])] += 1;
        total += 1;
      }
    }
    double chi2 = 0;
    for (double c : counts) chi2 += (c - total / 52) * (c - total / 52) / (total / 52);
    EXPECT_LT(chi2, 92.0) << "position " << position;
  }
}

TEST(Generator, RejectsBadConfigsNamingTheField) {
  auto message = [](const GenConfig& config) {
    try {
      validate(config);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(make_config(1000, 0, 8, false, 0)).rfind("hops:", 0), 0u);
  EXPECT_EQ(message(make_config(1000, 1, 0, false, 0)).rfind("hash_len:", 0), 0u);
  EXPECT_EQ(message(make_config(0, 1, 8, false, 0)).rfind("n_chars:", 0), 0u);
  EXPECT_EQ(message(make_config(100, 1, 8, false, 0, 99)).rfind("num_queries:", 0), 0u);
  EXPECT_EQ(message(make_config(100, 1, 8, false, 0, 5)), "no error");
  EXPECT_EQ(message(make_config(100, 1, 8, false, 0, 0)).rfind("num_queries: must be >= 1", 0), 0u);
}

TEST(Generator, SizingRejectsZeroHopsInsteadOfDividingByZero) {
  // engine-bench and the trainer size problems before validating them; hops 0 used to crash there.
  EXPECT_THROW(chains_for(make_config(1000, 0, 8, false, 0)), std::invalid_argument);
  EXPECT_THROW(chains_for(make_config(1000, 1, 0, false, 0)), std::invalid_argument);
  EXPECT_EQ(chains_for(make_config(UINT64_MAX, 1, 2, false, 0)), UINT64_MAX / 7 + 1);  // no overflow in the ceil
}

TEST(Generator, ErrorsUseTheCallersFieldNames) {
  GenFieldNames names;
  names.hash_len = "--hash-len";
  try {
    validate(make_config(1000, 1, 0, false, 0), names);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--hash-len: must be >= 1", 0), 0u) << e.what();
  }
}
