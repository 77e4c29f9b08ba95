// Serialises generated problems as JSONL records (Magic's field names, prompt streamed) or plain text.
// Used by `hashhop gen` and `hashhop demo`; see docs/format.md for the layout.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "hashhop/bench/generator.h"

namespace hashhop::bench {

enum class RecordFormat { jsonl, text };

// Streams one record to sink. on_progress gets prompt lines written so far. `threads` renders the
// prompt and the targets in parallel; the bytes are the same for any thread count.
void write_record(const HashHopProblem& problem, RecordFormat format,
                  const std::function<void(std::string_view)>& sink,
                  const std::function<void(std::uint64_t)>& on_progress = {}, int threads = 1);

}  // namespace hashhop::bench
