// Model directories: DIR/config.json (the run config), DIR/model.pt (weights, for eval and the demo)
// and DIR/checkpoint.pt (weights, optimiser, step: for exact resume). Every file is written atomically.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "hashhop/model/config.h"
#include "hashhop/model/hashhop_model.h"

namespace hashhop::model {

struct LoadedModel {
  RunConfig config;
  HashHopTransformer model{nullptr};
};

// Saves an archive to PATH through PATH.partial.PID and a rename.
void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path);

void save_model(const std::string& dir, const RunConfig& config, HashHopTransformer& model);
// Throws naming the directory and the missing or broken file.
LoadedModel load_model(const std::string& dir, const torch::Device& device);

void save_checkpoint(const std::string& dir, HashHopTransformer& model, torch::optim::Optimizer& optimizer,
                     std::int64_t step);
// Returns the step to continue from; 0 and untouched state when DIR has no checkpoint.
std::int64_t load_checkpoint(const std::string& dir, HashHopTransformer& model, torch::optim::Optimizer& optimizer,
                             const torch::Device& device);

}  // namespace hashhop::model
