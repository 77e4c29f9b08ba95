// Presets and JSON of the byte-level model family (see byte_config.h). The "train" section is read by
// the same code as the lexer model's (config.cpp), so both families accept the same training fields.
#include "hashhop/train/byte_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <type_traits>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace hashhop::train {
namespace {

using nlohmann::json;

CurriculumStage stage(std::int64_t from, std::uint64_t min_chars, std::uint64_t max_chars, std::vector<int> hops,
                      std::vector<int> hash_lens, double cot, std::uint64_t queries) {
  return CurriculumStage{.from_step = from, .min_chars = min_chars, .max_chars = max_chars, .hops = std::move(hops),
                         .hash_lens = std::move(hash_lens), .cot_fraction = cot, .queries = queries};
}

ByteRunConfig tiny_preset() {  // CI: a few dozen CPU steps, enough to see the loss leave chance
  ByteRunConfig c;
  c.name = "bytes-tiny";
  c.model = {.dim = 32, .heads = 2, .mlp_mult = 2, .layers = "LG", .window = 16, .global_rope_fraction = 1.0,
             .canon_kernel = 4, .hops = 2, .hash_gate = true};
  c.train.steps = 40;
  c.train.batch = 8;
  c.train.lr = 3e-3;
  c.train.warmup = 5;
  c.train.log_every = 10;
  c.train.checkpoint_every = 20;
  c.train.curriculum = {stage(0, 60, 100, {1}, {4}, 0.0, 4)};
  return c;
}

// The configuration that learned 1 hop in the probe (docs/learning-log.md): six global RoPE layers
// with canon convs, d=256, batch 64, lr 1e-3, 32 pairs of 8-letter hashes; then CoT chains of 1–4 hops
// and hash lengths 4–16 once the key match exists.
ByteRunConfig h100_preset() {
  ByteRunConfig c;
  c.name = "bytes-h100";
  c.model = {};
  c.train.batch = 64;
  c.train.lr = 1e-3;
  c.train.warmup = 200;
  c.train.min_lr_fraction = 0.1;
  c.train.weight_decay = 0.1;
  c.train.log_every = 50;
  c.train.checkpoint_every = 250;
  // Short prompts of 4-letter hashes first: with few distractors the key match forms sooner (the
  // 608-character start stayed at chance for 2,000 steps, docs/learning-log.md section 8).
  // Moving on at step 1,500 (first-byte accuracy 12%) undid the progress: stay until the match exists.
  c.train.steps = 8000;
  c.train.curriculum = {stage(0, 40, 120, {1}, {4}, 0.0, 8), stage(4000, 100, 608, {1}, {4, 8}, 0.0, 8),
                        stage(6000, 400, 1200, {1, 2, 3, 4}, {4, 8, 12, 16}, 0.75, 8)};
  return c;
}

// Local layers for the hash's bytes, position-free global layers for the match: built for length.
ByteRunConfig local_global_preset() {
  ByteRunConfig c = h100_preset();
  c.name = "bytes-nope";
  c.model.layers = "LLGLGL";
  c.model.global_rope_fraction = 0.0;
  c.model.canon_kernel = 4;
  return c;
}

// Two hops without CoT through an H block: the hash projection turns hop 1's read into hop 2's query.
ByteRunConfig hops_preset() {
  ByteRunConfig c = h100_preset();
  c.name = "bytes-hops";
  c.model.layers = "GGGHGG";
  c.model.hops = 2;
  c.train.curriculum = {stage(0, 40, 120, {1}, {4}, 0.0, 8), stage(1500, 100, 608, {1}, {4, 8}, 0.0, 8),
                        stage(2500, 200, 1000, {1, 2}, {4, 8}, 0.0, 8)};
  return c;
}

json train_to_json(const TrainConfig& train) {
  RunConfig carrier;
  carrier.train = train;
  return json::parse(to_json(carrier)).at("train");
}

template <typename T>
void read_field(const json& object, const char* field, T& value, const std::string& where) {
  if (!object.contains(field)) return;
  const json& v = object.at(field);
  // Integers must be integers that fit: 256.7 or 4294967552 is an error, not a silent 256.
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!v.is_number_integer() || v.get<long long>() < std::numeric_limits<T>::min() ||
        v.get<long long>() > std::numeric_limits<T>::max())
      throw std::invalid_argument(where + ": field '" + field + "': expected an integer that fits, got " + v.dump());
  }
  try {
    value = v.get<T>();
  } catch (const json::exception&) {
    throw std::invalid_argument(where + ": field '" + field + "': wrong type, got " + object.at(field).dump());
  }
}

void require(bool ok, const std::string& where, const char* field, const std::string& why) {
  if (!ok) throw std::invalid_argument(where + ": field '" + field + "': " + why);
}

}  // namespace

std::vector<std::string> byte_preset_names() { return {"bytes-tiny", "bytes-h100", "bytes-nope", "bytes-hops"}; }

bool is_byte_config(const std::string& preset_or_path) {
  for (const auto& name : byte_preset_names())
    if (name == preset_or_path) return true;
  std::ifstream in(preset_or_path);
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  const json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("family") && j.at("family") == "bytes";
}

std::string to_json(const ByteRunConfig& c) {
  const json j = {{"name", c.name},
                  {"family", "bytes"},
                  {"model",
                   {{"dim", c.model.dim}, {"heads", c.model.heads}, {"mlp_mult", c.model.mlp_mult},
                    {"layers", c.model.layers}, {"window", c.model.window},
                    {"global_rope_fraction", c.model.global_rope_fraction}, {"rope_base", c.model.rope_base},
                    {"global_rope_max_wavelength", c.model.global_rope_max_wavelength},
                    {"global_topk", c.model.global_topk}, {"topk_in_training", c.model.topk_in_training},
                    {"gate_threshold", c.model.gate_threshold}, {"gate_sparsity", c.model.gate_sparsity},
                    {"gate_sparsity_blocks", c.model.gate_sparsity_blocks}, {"hop_supervision", c.model.hop_supervision},
                    {"hop_supervision_target", c.model.hop_supervision_target},
                    {"match_contrast", c.model.match_contrast}, {"match_contrast_block", c.model.match_contrast_block},
                    {"match_contrast_upweight", c.model.match_contrast_upweight},
                    {"gate", c.model.gate},
                    {"global_qk_norm", c.model.global_qk_norm},
                    {"canon_kernel", c.model.canon_kernel}, {"hops", c.model.hops}, {"hash_gate", c.model.hash_gate}, {"init", c.model.init},
                    {"embed_std", c.model.embed_std}}},
                  {"train", train_to_json(c.train)}};
  return j.dump(2) + "\n";
}

ByteRunConfig byte_run_config_from_json(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw std::invalid_argument(origin + ": not valid JSON (byte " + std::to_string(e.byte) + ")");
  }
  require(j.is_object(), origin, "family", "the file must be a JSON object");
  std::string family;
  read_field(j, "family", family, origin);
  require(family == "bytes", origin, "family", "must be \"bytes\" for a byte-level model config");
  std::string base = "bytes-h100";
  read_field(j, "base", base, origin);
  bool known = false;
  for (const auto& name : byte_preset_names()) known |= name == base;
  require(known, origin, "base", "unknown byte preset '" + base + "'");
  ByteRunConfig c = load_byte_run_config(base);
  // Every key must be one this reader writes (to_json) or "base": a misspelt field ("hop_supervison") or a
  // section of the wrong type would otherwise be ignored and the preset trained without a word.
  const json written = json::parse(to_json(c));
  for (const auto& item : j.items())
    require(item.key() == "base" || written.contains(item.key()), origin, item.key().c_str(), "unknown field");
  if (j.contains("model")) {
    require(j.at("model").is_object(), origin, "model", "expected a JSON object, got " + j.at("model").dump().substr(0, 60));
    for (const auto& item : j.at("model").items())
      require(written.at("model").contains(item.key()), origin + " (model)", item.key().c_str(), "unknown field");
  }
  c.name = origin;
  read_field(j, "name", c.name, origin);
  if (j.contains("model")) {
    const json& m = j.at("model");
    const std::string w = origin + " (model)";
    read_field(m, "dim", c.model.dim, w);
    read_field(m, "heads", c.model.heads, w);
    read_field(m, "mlp_mult", c.model.mlp_mult, w);
    read_field(m, "layers", c.model.layers, w);
    read_field(m, "window", c.model.window, w);
    read_field(m, "global_rope_fraction", c.model.global_rope_fraction, w);
    read_field(m, "rope_base", c.model.rope_base, w);
    read_field(m, "global_rope_max_wavelength", c.model.global_rope_max_wavelength, w);
    read_field(m, "global_topk", c.model.global_topk, w);
    read_field(m, "topk_in_training", c.model.topk_in_training, w);
    read_field(m, "gate_threshold", c.model.gate_threshold, w);
    read_field(m, "gate_sparsity", c.model.gate_sparsity, w);
    read_field(m, "gate_sparsity_blocks", c.model.gate_sparsity_blocks, w);
    read_field(m, "hop_supervision", c.model.hop_supervision, w);
    read_field(m, "hop_supervision_target", c.model.hop_supervision_target, w);
    read_field(m, "match_contrast", c.model.match_contrast, w);
    read_field(m, "match_contrast_block", c.model.match_contrast_block, w);
    read_field(m, "match_contrast_upweight", c.model.match_contrast_upweight, w);
    read_field(m, "gate", c.model.gate, w);
    read_field(m, "global_qk_norm", c.model.global_qk_norm, w);
    read_field(m, "canon_kernel", c.model.canon_kernel, w);
    read_field(m, "hops", c.model.hops, w);
    read_field(m, "hash_gate", c.model.hash_gate, w);
    read_field(m, "init", c.model.init, w);
    read_field(m, "embed_std", c.model.embed_std, w);
  }
  const auto& m = c.model;
  const std::string w = origin + " (model)";
  require(m.dim > 0 && m.dim <= 8192, w, "dim", "must be in [1, 8192]");
  require(m.heads > 0 && m.dim % m.heads == 0 && (m.dim / m.heads) % 2 == 0, w, "heads",
          "must divide dim into heads of an even size");
  require(m.mlp_mult > 0 && m.mlp_mult <= 16, w, "mlp_mult", "must be in [1, 16]");
  require(!m.layers.empty() && m.layers.size() <= 64 && m.layers.find_first_not_of("LGH") == std::string::npos, w,
          "layers", "must be 1-64 letters from L, G, H");
  require(m.window >= 1, w, "window", "must be >= 1");
  require(m.global_rope_fraction >= 0 && m.global_rope_fraction <= 1, w, "global_rope_fraction", "must be in [0, 1]");
  require(m.rope_base > 1, w, "rope_base", "must be > 1");
  require(m.global_rope_max_wavelength >= 0, w, "global_rope_max_wavelength", "must be >= 0 (0 = no cap)");
  require(m.global_topk >= 0, w, "global_topk", "must be >= 0 (0 = dense)");
  require(!m.topk_in_training || m.global_topk > 0, w, "topk_in_training", "needs global_topk > 0");
  require(m.gate_threshold >= 0 && m.gate_threshold < 1, w, "gate_threshold", "must be in [0, 1) (0 = soft gate)");
  require(m.gate_threshold == 0 || m.hash_gate, w, "gate_threshold", "needs hash_gate");
  require(m.gate_sparsity >= 0 && m.gate_sparsity <= 100, w, "gate_sparsity", "must be in [0, 100] (0 = none)");
  require(m.gate_sparsity == 0 || m.hash_gate, w, "gate_sparsity", "needs hash_gate");
  const auto gated_blocks = static_cast<std::size_t>(std::count_if(m.layers.begin(), m.layers.end(), [](char k) { return k != 'L'; }));
  require(m.gate_sparsity_blocks.empty() || m.gate_sparsity_blocks.size() == gated_blocks, w, "gate_sparsity_blocks",
          "needs one weight per global or hop block (" + std::to_string(gated_blocks) + " in '" + m.layers + "')");
  require(m.gate_sparsity_blocks.empty() || m.gate_sparsity > 0, w, "gate_sparsity_blocks", "needs gate_sparsity > 0");
  require(m.hop_supervision >= 0 && m.hop_supervision <= 100, w, "hop_supervision", "must be in [0, 100] (0 = off)");
  require(m.hop_supervision == 0 || m.layers.find('H') != std::string::npos, w, "hop_supervision", "needs an H block in layers");
  require(m.hop_supervision == 0 || !m.topk_in_training, w, "hop_supervision",
          "cannot be used with topk_in_training (it supervises the dense softmax, not the top-k read)");
  require(m.hop_supervision_target == "line" || m.hop_supervision_target == "value" || m.hop_supervision_target == "first_letter", w,
          "hop_supervision_target", "must be \"line\", \"value\" or \"first_letter\"");
  require(std::isfinite(m.match_contrast) && m.match_contrast >= 0 && m.match_contrast <= 100, w, "match_contrast",
          "must be in [0, 100] (0 = off)");
  require(m.match_contrast == 0 ||
              (m.match_contrast_block >= 0 && static_cast<std::size_t>(m.match_contrast_block) < m.layers.size() &&
               m.layers[static_cast<std::size_t>(m.match_contrast_block)] == 'G'),
          w, "match_contrast_block", "must name a G block of layers '" + m.layers + "' (counted from 0)");
  require(m.match_contrast == 0 || !m.topk_in_training, w, "match_contrast",
          "cannot be used with topk_in_training (it trains the dense softmax, not the top-k read)");
  require(std::isfinite(m.match_contrast_upweight) && m.match_contrast_upweight >= 1 && m.match_contrast_upweight <= 1e9, w,
          "match_contrast_upweight", "must be in [1, 1e9] (1 = each key once)");
  for (const double x : m.gate_sparsity_blocks)
    require(std::isfinite(x) && x >= 0 && x <= 100, w, "gate_sparsity_blocks", "every weight must be in [0, 100]");
  require(m.gate == "sigmoid" || m.gate == "hard_concrete", w, "gate", "must be \"sigmoid\" or \"hard_concrete\"");
  require(m.gate == "sigmoid" || m.hash_gate, w, "gate", "needs hash_gate");
  require(m.gate == "sigmoid" || m.gate_threshold == 0, w, "gate_threshold",
          "must be 0 with gate \"hard_concrete\" (its z = 0 is the threshold)");
  require(m.canon_kernel >= 0 && m.canon_kernel <= 256, w, "canon_kernel", "must be in [0, 256]");
  require(m.hops >= 1 && m.hops <= 16, w, "hops", "must be in [1, 16]");
  require(m.init == "fan_in" || m.init == "gpt2" || m.init == "torch", w, "init", "must be \"fan_in\", \"gpt2\" or \"torch\"");
  require(m.embed_std > 0 && m.embed_std <= 10, w, "embed_std", "must be in (0, 10]");
  if (j.contains("train")) {
    // The lexer family's reader checks every training field; fields the file leaves out keep the preset's.
    json train = train_to_json(c.train);
    require(j.at("train").is_object(), origin, "train", "must be an object");
    train.update(j.at("train"));
    // The carrier's lexer model must not impose its own small hop cap on byte curricula; 15 is the
    // largest no-CoT hop count the completion format's reader accepts anywhere in the project.
    const json carrier = {{"base", "tiny"}, {"model", {{"max_hops", 15}}}, {"train", train}};
    c.train = run_config_from_json(carrier.dump(), origin).train;
  }
  return c;
}

ByteRunConfig load_byte_run_config(const std::string& preset_or_path) {
  if (preset_or_path == "bytes-tiny") return tiny_preset();
  if (preset_or_path == "bytes-h100") return h100_preset();
  if (preset_or_path == "bytes-nope") return local_global_preset();
  if (preset_or_path == "bytes-hops") return hops_preset();
  std::ifstream in(preset_or_path);
  if (!in) throw std::invalid_argument(preset_or_path + ": no such config file");
  std::stringstream text;
  text << in.rdbuf();
  return byte_run_config_from_json(text.str(), preset_or_path);
}

}  // namespace hashhop::train
