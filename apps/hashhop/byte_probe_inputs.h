// What the commands that probe a byte model on generated texts share (signature-recall, hop-probe,
// margin-probe): the check of --model, the generator settings and the rows read before each answer, from
// their options, each error naming its option. Header only.
#pragma once

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "hashhop/bench/generator.h"
#include "hashhop/train/batch.h"
#include "hashhop/train/byte_config.h"
#include "size_option.h"

namespace hashhop::cli {

// Throws, naming --model, unless DIR holds a byte-family model's config.json.
inline void require_byte_model_dir(const std::string& dir) {
  if (!std::ifstream(dir + "/config.json")) throw std::invalid_argument("--model " + dir + ": no config.json there");
  if (!train::is_byte_config(dir + "/config.json"))
    throw std::invalid_argument("--model " + dir + ": not a byte-family model (config.json family \"bytes\")");
}

// The generator's settings from --chars (K/M suffixes), --hops, --hash-len and --queries, validated.
inline bench::GenConfig generated_texts(const std::string& chars, int hops, int hash_len, std::uint64_t queries) {
  bench::GenConfig gen;
  gen.n_chars = parse_size("--chars", chars);
  gen.hops = hops;
  gen.hash_len = hash_len;
  gen.num_queries = queries;
  bench::GenFieldNames names;
  names.n_chars = "--chars", names.num_queries = "--queries", names.hops = "--hops", names.hash_len = "--hash-len";
  bench::validate(gen, names);
  return gen;
}

// Throws, naming --row-offset, when N bytes before an answer's opening quote leave the completion line
// "K = '" (the hash, " = " and the quote: at most --hash-len + 3).
inline void check_row_offset(int row_offset, int hash_len) {
  if (row_offset < 0 || row_offset > hash_len + 3)
    throw std::invalid_argument("--row-offset: " + std::to_string(row_offset) + " leaves the completion line \"K = '\" (0 to --hash-len + 3 = " +
                                std::to_string(hash_len + 3) + ")");
}

// The row `row_offset` bytes before each answer's first row (its opening quote), one per answer in order: where
// a trained model reads the query's line is " = " of the completion line (offsets 1-3), not the quote.
inline std::vector<std::int64_t> rows_before_answers(const train::Sample& sample, int row_offset) {
  const auto prompt_rows = static_cast<std::int64_t>(sample.text.find("\nCOMPLETION:"));
  std::vector<std::int64_t> rows;
  for (std::size_t i = 0; i < sample.positions.size(); ++i) {
    if (i > 0 && sample.answer_of[i] == sample.answer_of[i - 1]) continue;
    const auto row = sample.positions[i] - row_offset;
    if (row <= prompt_rows)
      throw std::invalid_argument("--row-offset: " + std::to_string(row_offset) + " bytes before an answer is not on its completion line");
    rows.push_back(row);
  }
  return rows;
}

}  // namespace hashhop::cli
