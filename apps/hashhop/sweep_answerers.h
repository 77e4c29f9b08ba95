// The answerers `hashhop sweep` can use besides the exact solver: a trained model (sweep_model.cpp, only
// in hashhop-torch) and an OpenAI-compatible server (torch-free, so an endpoint sweep runs in the lean binary).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "answer_path_options.h"
#include "hashhop/bench/sweep.h"

namespace hashhop::cli {

struct SweepModelOptions {
  std::string model_dir;
  std::string device = "auto";
  AnswerPathOptions path;
};

// Loads the model once; the answerer checks each record against the model's reach, then answers it.
// Adds model, device, torch_threads (and gpu) to meta. The lean binary never calls it: with --model,
// `hashhop sweep` runs in hashhop-torch (torch_exec.h).
bench::Answerer make_model_answerer(const SweepModelOptions& options, nlohmann::json& meta);

}  // namespace hashhop::cli
