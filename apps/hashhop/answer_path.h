// How eval and answer answer a prompt: the dense path (every position's memory, model::answer_queries)
// or the engine (reference points in a hash index, engine::answer_queries), chosen by --engine.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hashhop/dist/process_group.h"
#include "hashhop/engine/engine.h"
#include "hashhop/model/inference.h"
#include "answer_path_options.h"

namespace hashhop::cli {

// The options (answer_path_options.h) plus the answering itself, which needs LibTorch.
struct AnswerPath : AnswerPathOptions {
  // Context parallel (--nproc): every prompt goes through the engine, sharded over the group's ranks
  // (the dense path is one process's; ranks idle while rank 0 ran it would run out their timeout). Every
  // rank calls answer(); rank 0 gets the completion, the others "".
  dist::ProcessGroup* group = nullptr;

  std::string answer(model::HashHopTransformer& m, std::string_view prompt, int hops, bool cot,
                     const std::vector<std::string>& keys) const {
    if (group != nullptr) return engine::answer_queries(m, prompt, hops, cot, keys, {}, *group);
    if (uses_engine(prompt.size())) return engine::answer_queries(m, prompt, hops, cot, keys);
    model::PromptOptions options;
    options.chunk_bytes = chunk;
    options.gated_only = gated_only;
    return model::answer_queries(m, prompt, hops, cot, keys, options);
  }
};

}  // namespace hashhop::cli
