// Training and evaluation of the byte-level model (byte_model.h) on the real generator's samples:
// loss on answer bytes only, first-byte and greedy exact-match metrics, atomic checkpoints, exact resume.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hashhop/train/byte_config.h"
#include "hashhop/model/byte_model.h"
#include "hashhop/train/batch.h"
#include "hashhop/train/trainer.h"

namespace hashhop::train {

// Teacher-forced scores of a batch. An answer is exact when the argmax of every one of its bytes (the
// closing quote included) is right: exactly when greedy decoding of that query, asked after the
// preceding completion lines *answered correctly*, writes the right answer. (`eval` asks each query
// right after the header instead, without the other lines, so the two numbers are close, not equal.)
// first_byte counts the byte after the opening quote: the first hop's lookup, which no byte already
// written can hint at (with CoT every later hash needs a lookup of its own, not counted here).
struct ByteScores {
  torch::Tensor loss;
  std::int64_t bytes = 0, bytes_right = 0;
  std::int64_t answers = 0, answers_exact = 0, first_right = 0;
  std::map<std::pair<int, bool>, std::pair<std::int64_t, std::int64_t>> exact_by_hops_cot;  // (hops, cot) -> (exact, total)
  bool gated = false;       // the model has hash gates (kept_share means something)
  double kept_share = 1.0;  // mean share of text positions the hash gates keep (ByteModel::kept_share)
  torch::Tensor mean_gate;  // differentiable (ByteModel::mean_gate): the gate_sparsity penalty's term; undefined without gates
  // With hop_supervision: the mean -log weight of the supervised hops on their chain lines (differentiable;
  // undefined when the batch has no such answer), and the sum of those weights and their count, for logs.
  torch::Tensor hop_loss;
  double hop_weight_sum = 0;
  std::int64_t hop_terms = 0;
  // With match_contrast: the mean -log share of the contrast block's attention on the query's line with
  // the other prompts' keys in (differentiable; undefined without completion lines), and that share's sum
  // and count, for logs.
  torch::Tensor match_loss;
  double match_weight_sum = 0;
  std::int64_t match_terms = 0;
  void add(const ByteScores& other);
  double byte_accuracy() const { return bytes ? static_cast<double>(bytes_right) / bytes : 0.0; }
  double exact_rate() const { return answers ? static_cast<double>(answers_exact) / answers : 0.0; }
  double first_byte_rate() const { return answers ? static_cast<double>(first_right) / answers : 0.0; }
};

// For each answer of `sample` with `min_hops`+ hops (2 by default: what hops are supervised on) and no CoT
// (CoT too with `with_cot`): its first scored row (the opening quote, which predicts the first answer byte)
// and the [begin, end) byte spans of its chain's first `max_hops` prompt lines ("K = V": the query key's
// line, then the line of its value, ...), and of each line's V (its letters: the quotes of the chain's last
// line left out). Empty with CoT (unless with_cot) or fewer hops.
struct ChainLines {
  std::int64_t row = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> lines, values;
};
std::vector<ChainLines> chain_lines(const Sample& sample, int max_hops, int min_hops = 2, bool with_cot = false);

// Forward + scores on samples (train::make_batch's), padded into one batch. With grad off the loss is
// still returned (detached by the caller's NoGradGuard).
ByteScores score_byte_batch(model::ByteModel& net, const std::vector<Sample>& samples, const torch::Device& device);

// Model directory files for the byte family: config.json, model.pt, checkpoint.pt (all atomic).
void save_byte_model(const std::string& dir, const train::ByteRunConfig& config, model::ByteModel& net);
struct LoadedByteModel {
  train::ByteRunConfig config;
  model::ByteModel net{nullptr};
};
LoadedByteModel load_byte_model(const std::string& dir, const torch::Device& device);

// Throws, naming `where` and the field, when the config cannot train data parallel (--nproc): the gate
// sparsity penalty (a whole-batch mean) and the hard concrete gate (per-rank noise) would make the ranks' step
// differ from one process's. train_bytes calls it with a group; `train --nproc` before it launches ranks.
void refuse_data_parallel(const train::ByteRunConfig& config, const std::string& where);

// Fine-tuning's start: copies every parameter of `source` into the one of the same name and shape in `net`,
// and a global (G) block's output projection into a hop block's at the same place (first hop's columns; the
// others zero), so a G block become H starts as the same function. Returns how many tensors were copied;
// train prints the count (compare with the parameter count to see what kept its init).
std::int64_t init_byte_weights(model::ByteModel& net, model::ByteModel& source);

// Trains (or resumes from OUT/checkpoint.pt); `init_from` (a byte model directory) seeds the weights of
// a fresh run, for fine-tuning one configuration from another. Writes OUT/metrics.jsonl with loss,
// byte accuracy, first-byte accuracy and exact match per logged window.
TrainSummary train_bytes(const train::ByteRunConfig& config, const TrainOptions& options,
                         const std::string& init_from = "");

}  // namespace hashhop::train
