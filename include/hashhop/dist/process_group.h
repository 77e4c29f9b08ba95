// A c10d process group for data-parallel training and the context-parallel engine: TCPStore rendezvous, then Gloo (CPU) or NCCL (CUDA builds),
// with a timeout on every collective so a dead or hung peer fails this rank in one line. docs/distributed.md.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "hashhop/dist/dist_env.h"

namespace hashhop::dist {

// A collective that failed (a dead or hung peer): the group is unusable after it. Callers that survive
// errors every rank raises at the same point (a bad prompt) still end on this one.
class GroupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ProcessGroup {
 public:
  // Joins the group described by `env` (every rank calls this); tensors will live on `device`. Throws
  // std::runtime_error ("rank 1 of 2: cannot join the process group at HOST:PORT within 30 s ...").
  static std::unique_ptr<ProcessGroup> join(const DistEnv& env, const torch::Device& device,
                                            std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int size() const;
  // Collectives throw GroupError. Sums `tensor` (one dense tensor) over the ranks, in place; `what` names it in errors.
  void all_reduce_sum(torch::Tensor& tensor, const std::string& what);
  // Element-wise max, in place.
  void all_reduce_max(torch::Tensor& tensor, const std::string& what);
  // Every rank's bytes, in rank order (variable lengths; host strings, whatever the group's device).
  std::vector<std::string> all_gather_bytes(const std::string& mine, const std::string& what);
  // `data` of rank `root` on every rank.
  void broadcast_bytes(std::string& data, int root, const std::string& what);

 private:
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hashhop::dist
