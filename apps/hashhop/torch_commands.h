// Which subcommands run LibTorch. They are compiled into `hashhop-torch`, which the lean `hashhop` execs
// only when one of them is invoked, so gen, score, solve, plot and --help start without loading LibTorch.
#pragma once

#include <string_view>

namespace hashhop::cli {

struct TorchCommand {
  const char* name;
  const char* description;  // as the command registers it; tests/cli compares both binaries' --help
  const char* torch_option = nullptr;  // if set, the lean binary runs the command itself unless this option is given
};

inline constexpr TorchCommand kTorchCommands[] = {
    {"demo", "Generate a small HashHop benchmark, answer it with the demo model and score it"},
    {"attn-bench", "GPU benchmark: SDPA flash/cuDNN vs signature top-k, hash index and bucket attention"},
    {"train", "Train the HashHop model on generated data (resumes from OUT/checkpoint.pt)"},
    {"eval", "Answer every query of a HashHop JSONL with a trained model and score it"},
    {"answer", "Answer the queries of one prompt with a trained model"},
    {"engine-bench", "Benchmark the long-context engine against the dense path: prefill, latency, memory, accuracy"},
    {"signature-recall", "Recall of a byte model's own top-k keys by learned bit signatures (HashAttention's maps)"},
    {"hop-probe", "Where a byte model's hop blocks put their weight on the chain lines of multi-hop answers"},
    {"margin-probe", "How far a byte model's global blocks score the query's own line above every other key, by prompt length"},
    {"compact", "Rewrite a model directory with its weights in bfloat16 (half the bytes)"},
    {"serve", "Serve a trained model over an OpenAI-compatible API (/v1/completions, /v1/chat/completions)"},
    // Only --model needs LibTorch: sweeps against an endpoint or the solver run in the lean binary.
    {"sweep", "Accuracy and latency of a model over context sizes x hops x CoT (one results JSON)", "--model"},
};

inline const TorchCommand* find_torch_command(std::string_view name) {
  for (const auto& command : kTorchCommands)
    if (name == command.name) return &command;
  return nullptr;
}

}  // namespace hashhop::cli
