// The training loop behind `hashhop train`: AdamW with warmup and cosine decay, gradient clipping,
// bf16 autocast on CUDA, a progress bar, metrics as JSONL and atomic checkpoints with exact resume.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "hashhop/dist/process_group.h"
#include "hashhop/train/config.h"

namespace hashhop::train {

struct TrainOptions {
  std::string out_dir;
  torch::Device device{torch::kCPU};
  std::int64_t stop_after = -1;  // stop (with a checkpoint) after this many steps of this call; -1 = run to the end
  double time_limit_s = 0;       // stop (with a checkpoint) once this much wall time has passed; 0 = none
  bool quiet = false;            // no per-log-step lines on stdout
  // Data parallel (docs/distributed.md): this rank trains on its share of each batch, gradients are
  // all-reduced, and only rank 0 writes OUT. nullptr: one process.
  dist::ProcessGroup* group = nullptr;
};

struct TrainSummary {
  std::int64_t start_step = 0, end_step = 0;
  double last_loss = 0, last_exact = 0;
  double seconds = 0;
};

// Learning rate at a step: linear warmup, then cosine decay to lr · min_lr_fraction.
double learning_rate(const train::TrainConfig& config, std::int64_t step);

// Trains (or resumes from OUT/checkpoint.pt) and writes OUT/config.json, OUT/model.pt,
// OUT/checkpoint.pt and OUT/metrics.jsonl.
TrainSummary train(const train::RunConfig& config, const TrainOptions& options);

}  // namespace hashhop::train
