// How eval and answer answer a prompt: the dense path (every position's memory, model::answer_queries)
// or the engine (reference points in a hash index, engine::answer_queries), chosen by --engine.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hashhop/engine/engine.h"
#include "hashhop/model/inference.h"
#include "answer_path_options.h"

namespace hashhop::cli {

// The options (answer_path_options.h) plus the answering itself, which needs LibTorch.
struct AnswerPath : AnswerPathOptions {
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
