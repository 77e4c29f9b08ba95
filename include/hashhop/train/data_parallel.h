// Data-parallel training steps (docs/distributed.md): each rank's share of step s's batch, and one
// all-reduce per step that sums gradients and statistics so every rank steps with the global-batch gradient.
#pragma once

#include <torch/torch.h>

#include <utility>
#include <vector>

#include "hashhop/dist/process_group.h"

namespace hashhop::train {

// Samples [begin, end) of a batch of `batch` for `rank` of `world`: contiguous, sizes differ by at most one.
std::pair<int, int> shard_of_batch(int batch, int rank, int world);

// Call after backward() of (this rank's mean loss × its number of loss terms, `stats[0]`). Sums every
// parameter's gradient and `stats` over the ranks in one all-reduce, then divides the gradients by the total
// number of loss terms: each rank then holds the gradient of the global batch's mean loss, as one process
// with the whole batch computes it. A parameter that no rank gave a gradient keeps none (AdamW skips it, as
// in one process). Returns the summed stats.
std::vector<double> all_reduce_step(dist::ProcessGroup& group, const std::vector<torch::Tensor>& parameters,
                                    const std::vector<double>& stats);

// Throws unless every rank holds bit-identical parameters (checked at checkpoints: a replica that drifted
// would mean a wrong checkpoint).
void check_replicas_equal(dist::ProcessGroup& group, const std::vector<torch::Tensor>& parameters);

}  // namespace hashhop::train
