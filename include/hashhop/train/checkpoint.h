// Model directories: DIR/config.json (the run config), DIR/model.pt (weights, for eval and the demo)
// and DIR/checkpoint.pt (weights, optimiser, step: for exact resume). Every file is written atomically
// and carries a checksum verified on load; loading checks the config's shapes against the weights.
// Tested by tests/model/test_model.cpp (Checkpoint.*) and tests/cli/test_cli.sh.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "hashhop/model/hashhop_model.h"
#include "hashhop/train/config.h"

namespace hashhop::train {

struct LoadedModel {
  RunConfig config;
  model::HashHopTransformer model{nullptr};
};

// A checksum of a model's parameters and buffers (names, shapes and bytes).
std::uint64_t model_checksum(torch::nn::Module& model);

// Saves an archive to PATH through PATH.partial.PID (removed on failure or a signal) and a rename;
// a failed write (a full disk) throws one line naming PATH.
void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path);

// Any model family's weights file: atomic, with a checksum; loading checks the checksum and that every
// tensor has the shape the model (built from CONFIG_PATH) needs, and errors name the file.
void save_weights(torch::nn::Module& model, const std::string& path);
void load_weights(torch::nn::Module& model, const std::string& weights_path, const std::string& config_path,
                  const torch::Device& device);
// Half the file: every float32 parameter stored as bfloat16 (MODEL's own are converted, so it is spent
// afterwards); load_weights reads them back as float32. What `hashhop compact` writes for committed models.
void save_weights_bf16(torch::nn::Module& model, const std::string& path);

void save_model(const std::string& dir, const RunConfig& config, model::HashHopTransformer& model);
// Throws naming the directory and the missing or broken file.
LoadedModel load_model(const std::string& dir, const torch::Device& device);

// Checkpoints of either model family (pass *net): model, optimiser, step, thread count and a checksum.
void save_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     std::int64_t step);
// The OpenMP thread count DIR/checkpoint.pt was written with; 0 when unknown or there is none.
std::int64_t checkpoint_threads(const std::string& dir);
// Returns the step to continue from; 0 and untouched state when DIR has no checkpoint.
std::int64_t load_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                             const torch::Device& device);

}  // namespace hashhop::train
