// What every training loop (the lexer model's and the byte model's) does around its run directory:
// the metrics kept on resume, the files a failed fresh run removes, and the bf16 autocast scope.
#pragma once

#include "hashhop/model/autocast.h"

#include <cstdint>
#include <fstream>
#include <string>

namespace hashhop::train {

// The metrics lines of steps before `step`, so a resumed run's log matches an uninterrupted one. Read
// before anything is written: a line that is not a metrics record is an error naming it, not dropped.
std::string metrics_before(const std::string& path, std::int64_t step);

// Where a run starts writing (rank 0 only): OUT/config.json written atomically, OUT/metrics.jsonl cut back
// to the steps before `start_step` (metrics_before) and returned open for appending. Both trainers call it.
std::ofstream open_run_files(const std::string& out_dir, const std::string& config_json, std::int64_t start_step);

// Files a fresh run creates before its first checkpoint (config.json, metrics.jsonl, model.pt); removed
// again if it fails before one exists, so a failed run leaves nothing behind (a run with a checkpoint
// keeps it: that is resumable work). Only files that did not exist when the run started are removed:
// `--out` may name a model directory. A signal (INT, TERM, HUP, PIPE) before the first checkpoint removes them too.
struct FreshRunCleanup {
  explicit FreshRunCleanup(std::string out_dir);
  ~FreshRunCleanup();
  std::string dir;
  bool created_dir = false;
  bool existed[3] = {};
  bool active = true;
  int signal_slots[4] = {-1, -1, -1, -1};  // the same files and directory, removed by a signal (io/temp_files.h)
};

// bf16 autocast on CUDA for the forward pass only (the optimiser step stays in fp32).
using model::AutocastScope;

}  // namespace hashhop::train
