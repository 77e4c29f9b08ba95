// libFuzzer harness for config.json: model::run_config_from_json (train's config reader), then to_json and back.
// Build and run: `make fuzz` (FUZZ_SECONDS=600) or build-fuzz/tests/fuzz/fuzz_run_config CORPUS_DIR; see tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hashhop/io/input_error.h"
#include "hashhop/train/config.h"

namespace m = hashhop::model;

// config.cpp and the lexer are torch-free, so this links them without LibTorch. std::invalid_argument
// and io::InputError are the documented rejections; anything else escapes and crashes the run.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  m::RunConfig config;
  try {
    config = m::run_config_from_json(text, "fuzz.json");
  } catch (const std::invalid_argument&) {
    return 0;
  } catch (const hashhop::io::InputError&) {
    return 0;
  }
  // A config the reader accepted is written as train writes it into a run directory and must load again.
  const std::string written = m::to_json(config);
  const m::RunConfig again = m::run_config_from_json(written, "written.json");
  if (m::to_json(again) != written) __builtin_trap();
  (void)m::stage_at(again.train, 0);
  return 0;
}
