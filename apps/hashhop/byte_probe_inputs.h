// What the commands that probe a byte model on generated texts share (signature-recall, hop-probe): the
// check of --model and the generator settings from their options, each error naming its option. Header only.
#pragma once

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>

#include "hashhop/bench/generator.h"
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

}  // namespace hashhop::cli
