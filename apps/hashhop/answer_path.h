// How eval and answer answer a prompt: the dense path (every position's memory, model::answer_queries)
// or the engine (reference points in a hash index, engine::answer_queries), chosen by --engine.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "hashhop/engine/engine.h"
#include "hashhop/model/inference.h"
#include "size_option.h"

namespace hashhop::cli {

struct AnswerPath {
  std::string engine = "auto";          // auto: the engine above engine_above characters
  std::string engine_above = "1M";
  std::size_t chunk = 1 << 16;          // dense path: bytes per forward pass
  bool gated_only = false;              // dense path: keep only gated positions

  void add_options(CLI::App* app) {
    app->add_option("--engine", engine, "Answer with the long-context engine: auto, on or off")
        ->check(CLI::IsMember({"auto", "on", "off"}))
        ->capture_default_str();
    app->add_option("--engine-above", engine_above, "With --engine auto: prompts longer than this use the engine")
        ->capture_default_str();
    app->add_option("--chunk", chunk, "Dense path: prompt bytes encoded per forward pass (K/M/G suffixes allowed)")
        ->transform(size_suffixes())
        ->check(at_least(1))
        ->capture_default_str();
    app->add_flag("--gated-only", gated_only, "Dense path: keep only the positions the hash gate selects");
  }

  bool uses_engine(std::size_t prompt_chars) const {
    if (engine == "on") return true;
    if (engine == "off") return false;
    return prompt_chars > parse_size("--engine-above", engine_above);
  }

  std::string answer(model::HashHopTransformer& m, std::string_view prompt, int hops, bool cot,
                     const std::vector<std::string>& keys) const {
    if (uses_engine(prompt.size())) return engine::answer_queries(m, prompt, hops, cot, keys);
    model::PromptOptions options;
    options.chunk_bytes = chunk;
    options.gated_only = gated_only;
    return model::answer_queries(m, prompt, hops, cot, keys, options);
  }
};

}  // namespace hashhop::cli
