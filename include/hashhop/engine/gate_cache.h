// The hash gate memoised: σ(gate) is a function of the lexer's features at a position (byte, open-run
// length, '=' and quote counts, Hops, CoT), so the engine asks the model once per distinct tuple.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "hashhop/model/hashhop_model.h"
#include "hashhop/model/lexer.h"

namespace hashhop::engine {

class GateCache {
 public:
  explicit GateCache(model::HashHopTransformer model);

  // log σ(gate) at every position of a lexed chunk (unknown tuples go to the model in one batch).
  void log_gates(const model::LexedChunk& chunk, std::vector<float>& out);
  std::uint64_t evaluations() const { return evaluations_; }

 private:
  // byte (7 bits) | run_len (8) | eq (3) | quotes (2): one table per (Hops, CoT) pair seen.
  static constexpr int kCodeBits = 20;
  std::vector<float>& table(int hops, int cot);
  model::HashHopTransformer model_;
  std::vector<std::unique_ptr<std::vector<float>>> tables_;  // index hops · 3 + cot
  std::uint64_t evaluations_ = 0;
};

}  // namespace hashhop::engine
