// A trained model as an answerer of data records (see model_answerer.h); used by eval and sweep.
// Covered by tests/cli/test_cli.sh (eval, sweep cases).
#include "model_answerer.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <vector>

#include "hashhop/bench/magic_format.h"
#include "hashhop/io/input_error.h"
#include "hashhop/engine/byte_engine.h"
#include "hashhop/model/byte_inference.h"
#include "hashhop/model/inference.h"
#include "hashhop/model/lexer.h"

namespace hashhop::cli {

engine::ByteEngineOptions byte_engine_options(const AnswerPath& path, const std::string& model_dir, bool byte_family) {
  engine::ByteEngineOptions options{path.chunk, static_cast<std::int64_t>(parse_size("--device-bytes", path.device_bytes)),
                                    static_cast<std::int64_t>(parse_size("--prefill-window", path.prefill_window))};
  for (const auto& [block, keys] : parse_block_sizes("--block-window", path.block_window))
    options.block_window[block] = static_cast<std::int64_t>(keys);
  for (const auto& [block, k] : parse_block_sizes("--block-topk", path.block_topk)) {
    if (k > (1u << 20)) throw std::invalid_argument("--block-topk: " + std::to_string(block) + "=" + std::to_string(k) + " keeps more than 2^20 keys a query");
    options.block_topk[block] = static_cast<int>(k);
  }
  engine::check_options(options);
  const bool approximate = options.approximate();
  const std::string named = "--prefill-window / --block-window / --block-topk";
  if (approximate && !byte_family)
    throw std::invalid_argument(named + ": options of the byte-level model's engine; " + model_dir + " is a lexer model");
  if (options.device_bytes > 0 && !byte_family)
    throw std::invalid_argument("--device-bytes: an option of the byte-level model's engine; " + model_dir + " is a lexer model");
  if (approximate && path.engine != "on")
    throw std::invalid_argument(named + ": need --engine on (with --engine " + path.engine +
                                " a prompt may take the dense path, which reads every key)");
  if (approximate && path.group != nullptr)
    throw std::invalid_argument(named + ": one engine's options; the context-parallel engine (--nproc) reads every rank's keys whole");
  return options;
}

ModelAnswerer::ModelAnswerer(const std::string& model_dir, const torch::Device& device, const AnswerPath& path)
    : device_(device), path_(path) {
  byte_family_ = train::is_byte_config(model_dir + "/config.json");
  // Bad or unusable values fail before the first record, not at it.
  engine_options_ = byte_engine_options(path, model_dir, byte_family_);
  if (byte_family_) {
    bytes_ = train::load_byte_model(model_dir, device);
    engine::check_options(engine_options_, &bytes_.config.model);  // the blocks named exist and are global
    // --gated-only makes the hash gate hard at 1/2 (the share that training's metrics call kept), unless
    // the model's gate is hard already (config.json's gate_threshold, or a hard concrete gate); the engine
    // then stores only those keys.
    if (path.gated_only) {
      if (!bytes_.config.model.hash_gate)
        throw std::invalid_argument("--gated-only: this byte-level model has no hash gate (" + model_dir + ")");
      if (!bytes_.config.model.gate_drops_keys()) bytes_.net->set_gate_threshold(0.5);
    }
    // No max_run cap; no-CoT hops up to 15 (kMaxHopsFeature), the most any model here is asked.
    loaded_.config.model.max_hops = model::kMaxHopsFeature;
    loaded_.config.model.max_run = std::numeric_limits<int>::max();
  } else {
    loaded_ = train::load_model(model_dir, device);
  }
}

std::int64_t ModelAnswerer::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : byte_family_ ? bytes_.net->parameters() : loaded_.model->parameters()) n += p.numel();
  return n;
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
  if (byte_family_) {
    if (path_.group == nullptr && !path_.uses_engine(record.prompt.size()))
      return model::answer_queries_bytes(bytes_.net, record.prompt, expected.hops, expected.cot, keys, device_);
    // Same answers, prefilled chunk by chunk; context parallel (--nproc): every rank holds its shard's keys.
    auto engine = path_.group != nullptr ? engine::ByteEngine(bytes_.net, device_, *path_.group, engine_options_)
                                         : engine::ByteEngine(bytes_.net, device_, engine_options_);
    engine.prefill(record.prompt);
    const auto& stats = engine.stats();
    ++engine_records_;
    engine_bytes_ += stats.bytes;
    engine_kept_.resize(stats.reference_points.size());
    for (std::size_t b = 0; b < engine_kept_.size(); ++b) engine_kept_[b] += static_cast<std::uint64_t>(stats.reference_points[b]);
    engine_cache_bytes_ += static_cast<double>(stats.cache_bytes + stats.host_bytes);
    return engine.answer(expected.hops, expected.cot, keys);
  }
  return path_.answer(loaded_.model, record.prompt, expected.hops, expected.cot, keys);
}

std::string ModelAnswerer::engine_summary() const {
  if (engine_records_ == 0) return "";
  std::string kept;
  std::uint64_t most = 0;
  for (const auto k : engine_kept_) {
    char share[32];
    std::snprintf(share, sizeof share, "%s%.1f%%", kept.empty() ? "" : " / ",
                  100.0 * static_cast<double>(k) / static_cast<double>(std::max<std::uint64_t>(engine_bytes_, 1)));
    kept += share;
    most = std::max(most, k);
  }
  char line[400];
  std::snprintf(line, sizeof line,
                "byte engine: %llu records, %llu prompt bytes; reference points kept per gated block: %s; "
                "cache %.1f MB per record, %.0f bytes per reference point (of the fullest block)",
                static_cast<unsigned long long>(engine_records_), static_cast<unsigned long long>(engine_bytes_),
                kept.empty() ? "no gated block" : kept.c_str(), engine_cache_bytes_ / static_cast<double>(engine_records_) / 1e6,
                most ? engine_cache_bytes_ / static_cast<double>(most) : 0.0);
  std::string reads;
  if (engine_options_.prefill_window > 0) reads += "; prefill read window " + std::to_string(engine_options_.prefill_window) + " keys";
  for (const auto& [block, keys] : engine_options_.block_window)
    if (keys > 0) reads += "; block " + std::to_string(block) + " reads its last " + std::to_string(keys) + " keys";
  for (const auto& [block, k] : engine_options_.block_topk)
    if (k > 0) reads += "; block " + std::to_string(block) + " reads its top " + std::to_string(k);
  return reads.empty() ? std::string(line) : std::string(line) + reads + " (not exact)";
}

}  // namespace hashhop::cli
