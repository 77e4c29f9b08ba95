// --device for the model commands: auto (CUDA when present), cpu or cuda, with a clear error when
// CUDA is asked for and this build or machine has none.
#pragma once

#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace hashhop::cli {

inline torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name == "auto") {
    if (torch::cuda::is_available()) return torch::kCUDA;
    if (name == "cuda") throw std::invalid_argument("--device cuda: no CUDA device (or a CPU-only build of LibTorch)");
    return torch::kCPU;
  }
  throw std::invalid_argument("--device: expected auto, cpu or cuda, got '" + name + "'");
}

}  // namespace hashhop::cli
