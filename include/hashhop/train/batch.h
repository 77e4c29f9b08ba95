// Training and evaluation batches: HashHop samples from the project's generator, lexed, with the
// answer positions (answer-only loss) and their targets. Step s's batch depends on (seed, s) only.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hashhop/train/config.h"
#include "hashhop/model/hashhop_model.h"
#include "hashhop/model/lexer.h"

namespace hashhop::train {

// One text (prompt, "\n", completion) with the positions whose next byte is part of an answer.
struct Sample {
  std::string text;
  model::LexedChunk lexed;
  std::vector<std::int64_t> positions;  // predict text[p + 1]
  std::vector<std::int64_t> answer_of;  // which answer each position belongs to (index into answers)
  std::vector<int> answer_hops;         // hops of each answer (for per-hop metrics)
  int hops = 1;
  bool cot = false;
  int hash_len = 8;
};

// The answer spans of a Magic-format text: for each completion line "K = 'A'", the positions from the
// opening quote to the byte before the closing quote (whose next bytes are A and the closing quote).
void mark_answers(Sample& sample);

Sample make_sample(std::uint64_t n_chars, int hops, int hash_len, bool cot, std::uint64_t queries,
                   std::uint64_t seed, int max_run);

std::vector<Sample> make_batch(const train::TrainConfig& config, const model::ModelConfig& model_config,
                               std::int64_t step);
// Samples [begin, end) of that batch (a data-parallel rank's share), equal to the same slice of the whole.
std::vector<Sample> make_batch(const train::TrainConfig& config, const model::ModelConfig& model_config,
                               std::int64_t step, int begin, int end);

struct BatchResult {
  torch::Tensor loss;  // mean cross-entropy over answer bytes
  double char_accuracy = 0;
  std::int64_t answers = 0, answers_exact = 0;  // teacher-forced: every byte of the answer right
  std::vector<std::int64_t> exact_by_hops, answers_by_hops;  // indexed by hops
};

// Runs the model on a batch of samples (teacher forcing) and scores it.
BatchResult run_batch(model::HashHopTransformer& model, const std::vector<Sample>& samples,
                      const torch::Device& device);

}  // namespace hashhop::train
