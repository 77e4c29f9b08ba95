// A trained model as an answerer of data records (see model_answerer.h); used by eval and sweep.
// Covered by tests/cli/test_cli.sh (eval, sweep cases).
#include "model_answerer.h"

#include <limits>
#include <stdexcept>
#include <vector>

#include "hashhop/bench/magic_format.h"
#include "hashhop/io/input_error.h"
#include "hashhop/model/byte_inference.h"
#include "hashhop/model/inference.h"
#include "hashhop/model/lexer.h"

namespace hashhop::cli {

ModelAnswerer::ModelAnswerer(const std::string& model_dir, const torch::Device& device, const AnswerPath& path)
    : device_(device), path_(path) {
  byte_family_ = train::is_byte_config(model_dir + "/config.json");
  if (byte_family_) {
    if (path.engine == "on" || path.gated_only)
      throw std::invalid_argument("--engine on / --gated-only: the byte-level model has no engine path yet (" + model_dir + ")");
    bytes_ = train::load_byte_model(model_dir, device);
    // No max_run cap; no-CoT hops up to 15 (kMaxHopsFeature), the most any model here is asked.
    loaded_.config.model.max_hops = model::kMaxHopsFeature;
    loaded_.config.model.max_run = std::numeric_limits<int>::max();
  } else {
    loaded_ = train::load_model(model_dir, device);
  }
}

void ModelAnswerer::check(const std::string& file, std::uint64_t line, const bench::DataRecord& record) const {
  const auto& config = loaded_.config.model;
  try {
    bench::check_prompt_ends(record.prompt);
  } catch (const bench::FormatError& e) {
    throw io::InputError(file, line, "prompt", std::string("not a HashHop prompt: ") + e.what());
  }
  try {
    model::check_query_hops(config, record.expected.hops, record.expected.cot);
  } catch (const std::invalid_argument& e) {
    throw io::InputError(file, line, "completion", e.what());
  }
  std::vector<std::string> keys;
  for (const auto& q : record.expected.queries) {
    if (!bench::is_hash(q.key)) throw io::InputError(file, line, "completion", "query '" + q.key.substr(0, 40) + "' is not a hash");
    keys.push_back(q.key);
  }
  try {
    model::check_query_keys(config, keys);
  } catch (const std::invalid_argument& e) {
    throw io::InputError(file, line, "completion", e.what());
  }
}

std::string ModelAnswerer::answer(const bench::DataRecord& record) {
  const auto& expected = record.expected;
  std::vector<std::string> keys;
  for (const auto& q : expected.queries) keys.push_back(q.key);
  if (byte_family_) return model::answer_queries_bytes(bytes_.net, record.prompt, expected.hops, expected.cot, keys, device_);
  return path_.answer(loaded_.model, record.prompt, expected.hops, expected.cot, keys);
}

}  // namespace hashhop::cli
