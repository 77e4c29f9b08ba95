// Presets and JSON (de)serialisation of run configurations; errors name the file and the field.
#include "hashhop/train/config.h"

#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>

#include <limits>
#include <tuple>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "hashhop/bench/generator.h"
#include "hashhop/io/input_error.h"
#include "hashhop/io/jsonl.h"
#include "hashhop/model/lexer.h"

namespace hashhop::train {
namespace {

using nlohmann::json;

RunConfig tiny_preset() {  // CI: learns 1-hop recall of 4-letter hashes on the CPU in seconds
  RunConfig c;
  c.name = "tiny";
  c.model = {.fp_dim = 32, .model_dim = 32, .hidden_dim = 64, .max_run = 8, .max_hops = 2};
  c.train.steps = 200;
  c.train.batch = 8;
  c.train.lr = 1e-2;
  c.train.warmup = 20;
  c.train.log_every = 20;
  c.train.checkpoint_every = 100;
  c.train.curriculum = {CurriculumStage{.from_step = 0, .min_chars = 150, .max_chars = 300, .hops = {1},
                                        .hash_lens = {4}, .cot_fraction = 0.0, .queries = 4}};
  return c;
}

RunConfig cpu_preset() {  // a few minutes on two cores: 1–2 hops, hash lengths 8 and 16
  RunConfig c;
  c.name = "cpu";
  c.model = {.fp_dim = 64, .model_dim = 64, .hidden_dim = 128, .max_run = 32, .max_hops = 4};
  c.train.steps = 600;
  c.train.batch = 16;
  c.train.lr = 5e-3;
  c.train.warmup = 50;
  c.train.checkpoint_every = 200;
  c.train.curriculum = {
      CurriculumStage{.from_step = 0, .min_chars = 500, .max_chars = 1500, .hops = {1}, .hash_lens = {8, 16},
                      .cot_fraction = 0.0, .queries = 8},
      CurriculumStage{.from_step = 200, .min_chars = 1000, .max_chars = 2000, .hops = {1, 2, 3, 4},
                      .hash_lens = {8, 16}, .cot_fraction = 0.5, .queries = 8}};
  return c;
}

RunConfig h100_preset() {  // the demo model: hops 1–4, CoT on and off, hash lengths 8 and 16
  RunConfig c;
  c.name = "h100";
  c.model = {};
  c.train.steps = 3000;
  c.train.batch = 64;
  c.train.lr = 3e-3;
  c.train.warmup = 100;
  c.train.checkpoint_every = 500;
  c.train.curriculum = {
      CurriculumStage{.from_step = 0, .min_chars = 1000, .max_chars = 4000, .hops = {1, 2}, .hash_lens = {8, 16},
                      .cot_fraction = 0.3, .queries = 16},
      CurriculumStage{.from_step = 500, .min_chars = 2000, .max_chars = 8000, .hops = {1, 2, 3, 4},
                      .hash_lens = {8, 16}, .cot_fraction = 0.5, .queries = 16}};
  return c;
}

// Integers must be integers that fit: nlohmann's get<int> would truncate 3e10 or wrap -5 into a huge
// unsigned value without a word.
template <typename T>
bool fits(const json& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v.is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    if (!v.is_number_integer()) return false;
    const auto x = v.get<std::int64_t>();
    if constexpr (std::is_unsigned_v<T>) return x >= 0;
    else return x >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) && x <= static_cast<std::int64_t>(std::numeric_limits<T>::max());
  } else if constexpr (std::is_floating_point_v<T>) {
    return v.is_number();
  } else if constexpr (std::is_same_v<T, std::vector<int>>) {
    if (!v.is_array()) return false;
    for (const auto& item : v)
      if (!fits<int>(item)) return false;
    return true;
  } else {
    return true;
  }
}

template <typename T>
void read_field(const json& object, const char* field, T& value, const std::string& where) {
  if (!object.contains(field)) return;  // absent fields keep the preset's value
  const json& v = object.at(field);
  bool ok = fits<T>(v);
  if (ok) {
    try {
      value = v.get<T>();
    } catch (const json::exception&) {
      ok = false;
    }
  }
  if (!ok)
    throw std::invalid_argument(where + ": field '" + field + "': expected " +
                                (std::is_same_v<T, bool>              ? "true or false"
                                 : std::is_same_v<T, std::vector<int>> ? "a list of integers"
                                 : std::is_integral_v<T>               ? "an integer in range"
                                 : std::is_floating_point_v<T>         ? "a number"
                                                                       : "a string") +
                                ", got " + v.dump().substr(0, 60));
}

void require_field(bool ok, const std::string& where, const char* field, const std::string& why) {
  if (!ok) throw std::invalid_argument(where + ": field '" + field + "': " + why);
}

// A section must be an object, and every key in it one the reader knows: a misspelt key ("lerning_rate")
// or a section of the wrong type ("model": [1, 2]) would otherwise be ignored and the preset trained.
void check_keys(const json& object, const std::string& where, const char* field, std::initializer_list<const char*> known) {
  if (!object.is_object()) throw std::invalid_argument(where + ": field '" + field + "': expected a JSON object, got " + object.dump().substr(0, 60));
  for (const auto& item : object.items()) {
    bool found = false;
    for (const char* name : known) found |= item.key() == name;
    if (!found) throw std::invalid_argument(where + ": field '" + item.key() + "': unknown field");
  }
}

// Every stage against the model: hops and hash lengths the generator accepts, and no stage asking
// for more hops than the model can follow without CoT. Runs on the final config (a file may change
// max_hops and keep a preset's curriculum).
void validate_curriculum(const RunConfig& c, const std::string& where) {
  int index = 0;
  for (const auto& stage : c.train.curriculum) {
    const std::string ws = where + " (train) curriculum[" + std::to_string(index++) + "]";
    for (const int hops : stage.hops) {
      if (stage.cot_fraction < 1 && hops > c.model.max_hops)
        require_field(false, ws, "hops", std::to_string(hops) + " is more than the model's max_hops " +
                                             std::to_string(c.model.max_hops) + " (only CoT samples can have more)");
      for (const int hash_len : stage.hash_lens) {
        for (const auto& [chars, chars_field] : {std::pair{stage.min_chars, "min_chars"}, {stage.max_chars, "max_chars"}}) {
          bench::GenConfig gen;
          gen.n_chars = chars;
          gen.hops = hops;
          gen.hash_len = hash_len;
          gen.num_queries = 1;
          try {
            bench::validate(gen, {chars_field, "queries", "hops", "hash_lens"});
          } catch (const std::invalid_argument& e) {
            const std::string message = e.what();
            const std::size_t colon = message.find(": ");
            throw std::invalid_argument(ws + ": field '" + message.substr(0, colon) + "': " + message.substr(colon + 2));
          }
        }
      }
    }
  }
}

}  // namespace

std::vector<std::string> preset_names() { return {"tiny", "cpu", "h100"}; }

const CurriculumStage& stage_at(const TrainConfig& config, std::int64_t step) {
  const CurriculumStage* current = &config.curriculum.front();
  for (const auto& stage : config.curriculum)
    if (stage.from_step <= step) current = &stage;
  return *current;
}

std::string to_json(const RunConfig& c) {
  json stages = json::array();
  for (const auto& s : c.train.curriculum)
    stages.push_back({{"from_step", s.from_step}, {"min_chars", s.min_chars}, {"max_chars", s.max_chars},
                      {"hops", s.hops}, {"hash_lens", s.hash_lens}, {"cot_fraction", s.cot_fraction},
                      {"queries", s.queries}});
  json j = {{"name", c.name},
            {"model",
             {{"fp_dim", c.model.fp_dim}, {"model_dim", c.model.model_dim},
              {"hidden_dim", c.model.hidden_dim}, {"max_run", c.model.max_run}, {"max_hops", c.model.max_hops},
              {"init_logit_scale", c.model.init_logit_scale}, {"tied_qk_init", c.model.tied_qk_init}}},
            {"train",
             {{"steps", c.train.steps}, {"batch", c.train.batch}, {"lr", c.train.lr},
              {"min_lr_fraction", c.train.min_lr_fraction}, {"warmup", c.train.warmup},
              {"weight_decay", c.train.weight_decay}, {"grad_clip", c.train.grad_clip}, {"seed", c.train.seed},
              {"log_every", c.train.log_every}, {"checkpoint_every", c.train.checkpoint_every},
              {"bf16", c.train.bf16}, {"curriculum", stages}}}};
  return j.dump(2) + "\n";
}

RunConfig run_config_from_json(const std::string& text, const std::string& origin) {
  // Strict parsing: duplicate keys and 1e999 are errors naming the field.
  const json j = io::parse_json(text, origin, 0);
  if (!j.is_object()) throw std::invalid_argument(origin + ": expected a JSON object");
  check_keys(j, origin, "", {"base", "name", "model", "train"});
  RunConfig c;
  std::string base = "h100";
  read_field(j, "base", base, origin);  // start from a preset, override what the file names
  bool known = false;
  for (const auto& name : preset_names()) known |= name == base;
  if (!known) throw std::invalid_argument(origin + ": field 'base': unknown preset '" + base + "'");
  c = load_run_config(base);
  c.name = origin;
  read_field(j, "name", c.name, origin);
  if (j.contains("model")) {
    const json& m = j.at("model");
    const std::string w = origin + " (model)";
    check_keys(m, origin, "model", {"fp_dim", "model_dim", "hidden_dim", "max_run", "max_hops", "init_logit_scale", "tied_qk_init"});
    read_field(m, "fp_dim", c.model.fp_dim, w);
    read_field(m, "model_dim", c.model.model_dim, w);
    read_field(m, "hidden_dim", c.model.hidden_dim, w);
    read_field(m, "max_run", c.model.max_run, w);
    read_field(m, "max_hops", c.model.max_hops, w);
    read_field(m, "init_logit_scale", c.model.init_logit_scale, w);
    read_field(m, "tied_qk_init", c.model.tied_qk_init, w);
    // Bounded so an absurd size is a one-line error here, not a failed allocation inside LibTorch.
    for (auto [field, value, limit] : {std::tuple{"fp_dim", c.model.fp_dim, 1 << 14}, {"model_dim", c.model.model_dim, 1 << 14},
                                       {"hidden_dim", c.model.hidden_dim, 1 << 16}, {"max_run", c.model.max_run, 4096},
                                       {"max_hops", c.model.max_hops, model::kMaxHopsFeature}})
      require_field(value > 0 && value <= limit, w, field, "must be in [1, " + std::to_string(limit) + "], got " + std::to_string(value));
  }
  if (j.contains("train")) {
    const json& t = j.at("train");
    const std::string w = origin + " (train)";
    check_keys(t, origin, "train", {"steps", "batch", "lr", "min_lr_fraction", "warmup", "weight_decay", "grad_clip", "seed",
                                    "log_every", "checkpoint_every", "bf16", "curriculum"});
    read_field(t, "steps", c.train.steps, w);
    read_field(t, "batch", c.train.batch, w);
    read_field(t, "lr", c.train.lr, w);
    read_field(t, "min_lr_fraction", c.train.min_lr_fraction, w);
    read_field(t, "warmup", c.train.warmup, w);
    read_field(t, "weight_decay", c.train.weight_decay, w);
    read_field(t, "grad_clip", c.train.grad_clip, w);
    read_field(t, "seed", c.train.seed, w);
    read_field(t, "log_every", c.train.log_every, w);
    read_field(t, "checkpoint_every", c.train.checkpoint_every, w);
    read_field(t, "bf16", c.train.bf16, w);
    require_field(c.train.steps > 0, w, "steps", "must be > 0");
    require_field(c.train.batch > 0, w, "batch", "must be > 0");
    require_field(c.train.lr > 0, w, "lr", "must be > 0");
    require_field(c.train.log_every > 0, w, "log_every", "must be > 0");
    require_field(c.train.checkpoint_every > 0, w, "checkpoint_every", "must be > 0");
    if (t.contains("curriculum")) {
      c.train.curriculum.clear();
      int index = 0;
      if (!t.at("curriculum").is_array())
        throw std::invalid_argument(w + ": field 'curriculum': expected a list of stages, got " + t.at("curriculum").dump().substr(0, 60));
      for (const json& s : t.at("curriculum")) {
        const std::string ws = w + " curriculum[" + std::to_string(index++) + "]";
        check_keys(s, ws, "curriculum", {"from_step", "min_chars", "max_chars", "hops", "hash_lens", "cot_fraction", "queries"});
        CurriculumStage stage;
        read_field(s, "from_step", stage.from_step, ws);
        read_field(s, "min_chars", stage.min_chars, ws);
        read_field(s, "max_chars", stage.max_chars, ws);
        read_field(s, "hops", stage.hops, ws);
        read_field(s, "hash_lens", stage.hash_lens, ws);
        read_field(s, "cot_fraction", stage.cot_fraction, ws);
        read_field(s, "queries", stage.queries, ws);
        require_field(stage.min_chars > 0 && stage.min_chars <= stage.max_chars, ws, "min_chars",
                       "must be > 0 and <= max_chars");
        require_field(!stage.hops.empty(), ws, "hops", "must list at least one hop count");
        require_field(!stage.hash_lens.empty(), ws, "hash_lens", "must list at least one hash length");
        require_field(stage.cot_fraction >= 0 && stage.cot_fraction <= 1, ws, "cot_fraction", "must be in [0, 1]");
        require_field(stage.from_step >= 0, ws, "from_step", "must be >= 0");
        // Training samples are built whole in memory, a batch at a time.
        require_field(stage.max_chars <= 100'000'000, ws, "max_chars", "must be <= 100000000 (samples are built in memory)");
        require_field(stage.queries >= 1, ws, "queries", "must be >= 1");
        c.train.curriculum.push_back(stage);
      }
      require_field(!c.train.curriculum.empty() && c.train.curriculum.front().from_step == 0, w, "curriculum",
                     "must start with a stage at from_step 0");
    }
  }
  validate_curriculum(c, origin);
  return c;
}

RunConfig load_run_config(const std::string& preset_or_path) {
  if (preset_or_path == "tiny") return tiny_preset();
  if (preset_or_path == "cpu") return cpu_preset();
  if (preset_or_path == "h100") return h100_preset();
  std::ifstream in(preset_or_path);
  if (!in) {
    std::string names;
    for (const auto& name : preset_names()) names += (names.empty() ? "" : ", ") + name;
    throw std::invalid_argument(preset_or_path + ": no such config file (presets: " + names + ")");
  }
  std::stringstream text;
  text << in.rdbuf();
  return run_config_from_json(text.str(), preset_or_path);
}

}  // namespace hashhop::train
