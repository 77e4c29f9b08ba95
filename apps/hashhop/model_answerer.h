// A trained model (either family) as an answerer of HashHop data records: what `eval --model` and
// `sweep --model` share. Loads once; check() refuses what the model cannot answer, answer() answers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "answer_path.h"
#include "hashhop/engine/byte_engine.h"
#include "hashhop/bench/scorer.h"
#include "hashhop/train/checkpoint.h"
#include "hashhop/train/byte_trainer.h"

namespace hashhop::cli {

// The byte engine's options from the command line (--chunk, --device-bytes, --prefill-window, --block-window,
// --block-topk), parsed and checked before any model loads. With `model_dir` a lexer model, any of them that
// only the byte engine reads is refused; the approximate reads (window, block reads) need --engine on (with
// auto, a prompt under --engine-above would take the dense path and ignore them) and one process (not --nproc).
engine::ByteEngineOptions byte_engine_options(const AnswerPath& path, const std::string& model_dir, bool byte_family);

class ModelAnswerer {
 public:
  // The lexer family answers through its dense path or the engine (chosen by path); the byte-level
  // family by greedy decoding. Throws for a missing or corrupt model, or options its family lacks.
  ModelAnswerer(const std::string& model_dir, const torch::Device& device, const AnswerPath& path);

  // What the model can answer, checked before it runs: a HashHop prompt (its first and last lines) and
  // a hop count and hashes within the model's reach. Throws io::InputError naming FILE, LINE and field.
  void check(const std::string& file, std::uint64_t line, const bench::DataRecord& record) const;

  // The completion text for the record's queries (Magic's layout; the scorer reads its answer lines).
  std::string answer(const bench::DataRecord& record);

  const torch::Device& device() const { return device_; }
  bool byte_family() const { return byte_family_; }
  std::int64_t parameter_count() const;
  // What check() holds queries to: the model's own max_hops and max_run (the byte family: no run cap).
  const model::ModelConfig& limits() const { return loaded_.config.model; }
  // The byte-level engine's memory over the records it prefilled: bytes, reference points kept, cache
  // size and bytes per reference point; empty when it did not run.
  std::string engine_summary() const;

 private:
  torch::Device device_;
  AnswerPath path_;
  engine::ByteEngineOptions engine_options_;  // the byte engine's, parsed once from path_
  bool byte_family_ = false;
  train::LoadedModel loaded_;
  train::LoadedByteModel bytes_;
  std::uint64_t engine_records_ = 0, engine_bytes_ = 0;
  std::vector<std::uint64_t> engine_kept_;  // reference points kept, per gated block, over all records
  double engine_cache_bytes_ = 0;
};

}  // namespace hashhop::cli
