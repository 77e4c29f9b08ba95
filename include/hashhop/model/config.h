// Model and training configurations: named presets (tiny, demo, h100) and JSON files, so every run
// is described by one file that travels with its checkpoint (DIR/config.json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hashhop::model {

struct ModelConfig {
  int fp_dim = 128;        // hash fingerprint, query and key width
  int model_dim = 128;     // structural embedding width
  int hidden_dim = 256;    // feed-forward width
  int max_run = 32;        // letters per run with their own position slot
  int max_hops = 4;        // explicit retrieval hops (chains longer than this need CoT)
  double init_logit_scale = 16.0;  // attention sharpness on cosine scores at initialisation
  bool tied_qk_init = true;        // start W_k = W_q: identical hashes match from step 0
};

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
  ModelConfig model;
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

}  // namespace hashhop::model
