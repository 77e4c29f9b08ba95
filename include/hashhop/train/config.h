// Run configurations of the lexer model (its shape, model/config.h, plus training settings): named presets
// (tiny, cpu, h100) and JSON files, so every run is described by one file that travels with its checkpoint
// (DIR/config.json). Tested by tests/model/test_model.cpp and tests/fuzz/fuzz_run_config.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hashhop/model/config.h"

namespace hashhop::train {

// One curriculum stage: from `from_step` on, samples are drawn from these ranges.
struct CurriculumStage {
  std::int64_t from_step = 0;
  std::uint64_t min_chars = 1000, max_chars = 4000;  // prompt size, uniform in [min, max]
  std::vector<int> hops = {1};
  std::vector<int> hash_lens = {8};
  double cot_fraction = 0.0;
  std::uint64_t queries = 8;
};

struct TrainConfig {
  std::int64_t steps = 1000;
  int batch = 32;
  double lr = 3e-3;
  double min_lr_fraction = 0.1;  // cosine decay ends at lr · this
  std::int64_t warmup = 100;
  double weight_decay = 0.01;
  double grad_clip = 1.0;
  std::uint64_t seed = 1;        // data of step s is drawn from seed and s only: resume is exact
  std::int64_t log_every = 20;
  std::int64_t checkpoint_every = 200;
  bool bf16 = true;              // autocast to bfloat16 on CUDA (ignored on the CPU)
  std::vector<CurriculumStage> curriculum = {CurriculumStage{}};
};

struct RunConfig {
  std::string name;
  model::ModelConfig model;
  TrainConfig train;
};

// A preset name ("tiny", "demo", "h100") or a JSON file path. Throws with the file and field on
// bad input.
RunConfig load_run_config(const std::string& preset_or_path);
std::vector<std::string> preset_names();
std::string to_json(const RunConfig& config);
RunConfig run_config_from_json(const std::string& text, const std::string& origin);

// The stage in force at `step`.
const CurriculumStage& stage_at(const TrainConfig& config, std::int64_t step);

}  // namespace hashhop::train

// The names as they were before they moved here from model/ (tests/fuzz/fuzz_run_config.cpp uses them).
namespace hashhop::model {
using train::CurriculumStage;
using train::RunConfig;
using train::run_config_from_json;
using train::stage_at;
using train::to_json;
using train::TrainConfig;
}  // namespace hashhop::model
