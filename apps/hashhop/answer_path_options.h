// The options that choose how a model answers a prompt (--engine, --engine-above, --chunk,
// --gated-only), torch-free so the lean `hashhop` can list and parse them too (sweep runs there).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "size_option.h"

namespace hashhop::cli {

struct AnswerPathOptions {
  std::string engine = "auto";          // auto: the engine above engine_above characters
  std::string engine_above = "1M";
  std::size_t chunk = 1 << 16;          // dense path: bytes per forward pass
  bool gated_only = false;              // dense path: keep only gated positions
  std::string device_bytes = "0";       // byte model's engine: device memory for global keys, then host (0: no limit)
  std::string prefill_window = "0";     // byte model's engine: keys a global block reads while prefilling (0: all, exact)
  std::vector<std::string> block_window, block_topk;  // byte model's engine: BLOCK=N, per global block (not exact)

  void add_options(CLI::App* app) {
    app->add_option("--engine", engine, "Answer with the long-context engine: auto, on or off")
        ->check(CLI::IsMember({"auto", "on", "off"}))
        ->capture_default_str();
    app->add_option("--engine-above", engine_above, "With --engine auto: prompts longer than this use the engine")
        ->capture_default_str();
    app->add_option("--chunk", chunk, "Prompt bytes encoded per forward pass: the lexer model's dense path, the byte model's engine (K/M/G suffixes allowed)")
        ->transform(size_suffixes())
        ->check(at_least(1))
        ->capture_default_str();
    app->add_flag("--gated-only", gated_only, "Keep only the positions the hash gate selects (lexer model: dense path; byte model: its gate made hard at 1/2)");
    app->add_option("--device-bytes", device_bytes,
                    "Byte model's engine: device memory for the global keys (K/M/G suffixes); beyond it they move to host "
                    "memory and are read back a slice at a time (same answers). 0: no limit")
        ->capture_default_str();
    app->add_option("--prefill-window", prefill_window,
                    "Byte model's engine, not exact: while the prompt streams in, each global block reads only its last N kept "
                    "keys before the chunk, and the chunk's own (K/M suffixes; the queries still read all), so the prefill grows "
                    "linearly with the prompt. 0: every key")
        ->capture_default_str();
    app->add_option("--block-window", block_window,
                    "Byte model's engine, not exact: BLOCK=N (repeatable): that global block reads only its last N kept keys, "
                    "while prefilling and answering (a block that pools nearby bytes needs no far keys)");
    app->add_option("--block-topk", block_topk,
                    "Byte model's engine, not exact: BLOCK=K (repeatable): that global block's softmax reads only each query's "
                    "K best keys (a lookup over 10^6 keys is otherwise diluted by all of them)");
  }

  bool uses_engine(std::size_t prompt_chars) const {
    if (engine == "on") return true;
    if (engine == "off") return false;
    return prompt_chars > parse_size("--engine-above", engine_above);
  }
};

}  // namespace hashhop::cli
