// Run configurations of the byte-level model family (its shape: model/byte_config.h): named presets and
// JSON files with "family": "bytes". Training settings reuse TrainConfig (config.h) unchanged; tested by tests/model/test_byte_model.cpp.
#pragma once

#include <string>
#include <vector>

#include "hashhop/model/byte_config.h"
#include "hashhop/train/config.h"

namespace hashhop::train {

struct ByteRunConfig {
  std::string name;
  model::ByteModelConfig model;
  TrainConfig train;
};

// True for a byte preset name or a JSON file whose "family" is "bytes".
bool is_byte_config(const std::string& preset_or_path);
// A preset (bytes-tiny, bytes-h100, bytes-nope, bytes-hops) or a JSON file; throws naming file and field.
ByteRunConfig load_byte_run_config(const std::string& preset_or_path);
ByteRunConfig byte_run_config_from_json(const std::string& text, const std::string& origin);
std::vector<std::string> byte_preset_names();
std::string to_json(const ByteRunConfig& config);

}  // namespace hashhop::train
