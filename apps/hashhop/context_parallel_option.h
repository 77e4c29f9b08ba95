// --nproc and --dist-timeout for the commands that run the context-parallel engine (eval, answer,
// engine-bench): launch the ranks, or join the group torchrun's variables describe. docs/distributed.md.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "hashhop/dist/dist_env.h"
#include "hashhop/dist/launcher.h"
#include "hashhop/dist/process_group.h"

namespace hashhop::cli {

struct ContextParallelOption {
  int nproc = 0;          // 0: one process, or the ranks torchrun's variables describe
  double timeout = 120;   // seconds a rank waits for its peers (a rank's prefill runs between collectives)

  void add(CLI::App* app, const std::string& scope) {
    app->add_option("--nproc", nproc,
                    scope + "context-parallel engine over N ranks on this host (Gloo), each holding one shard of every "
                            "prompt (every prompt then goes through the engine); rank 0 answers and reports. Also joins torchrun's RANK/WORLD_SIZE/MASTER_ADDR/"
                            "MASTER_PORT when set (docs/distributed.md)")
        ->check(CLI::Range(1, 256));
    app->add_option("--dist-timeout", timeout, "With --nproc: seconds a rank waits for its peers before failing")
        ->capture_default_str();
  }

  // With --nproc N and no torchrun variables, runs this command line as N ranks and returns nullopt (the
  // caller is done). Otherwise returns this rank's group (Gloo: the engine exchanges host data), or null
  // for one process. Ranks other than 0 print nothing on stdout.
  std::optional<std::unique_ptr<dist::ProcessGroup>> join_or_launch(dist::SignalRoute signals = dist::SignalRoute::every_rank) const {
    if (!(timeout > 0)) throw std::invalid_argument("--dist-timeout: must be > 0 seconds");
    const auto env = dist::dist_env_from_environment();
    if (nproc > 1 && !env) {
      dist::launch_ranks(nproc, signals);  // throws when a rank fails, naming it
      return std::nullopt;
    }
    if (env && nproc > 0 && nproc != env->world_size)
      throw std::invalid_argument("--nproc " + std::to_string(nproc) + ": WORLD_SIZE=" + std::to_string(env->world_size) +
                                  " is set (already launched, or set by hand); drop one of them");
    std::unique_ptr<dist::ProcessGroup> group;
    if (!env || env->world_size <= 1) return group;
    group = dist::ProcessGroup::join(*env, torch::kCPU, std::chrono::milliseconds(static_cast<long long>(timeout * 1000)));
    if (group->rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr)
      throw std::runtime_error("cannot redirect rank " + std::to_string(group->rank()) + "'s stdout to /dev/null");
    return group;
  }

  // A rank's model goes on GPU LOCAL_RANK mod the GPUs visible when the device is CUDA (the engine's group
  // is Gloo, so ranks may share a GPU: 2 ranks on a 1-GPU host both use GPU 0).
  static torch::Device device_for(const torch::Device& device, const dist::ProcessGroup* group) {
    if (group == nullptr || !device.is_cuda()) return device;
    const auto env = dist::dist_env_from_environment();
    const auto gpus = std::max<std::int64_t>(1, static_cast<std::int64_t>(torch::cuda::device_count()));
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>((env ? env->local_rank : 0) % gpus));
  }

  // How to name the context-parallel run in an error: the option, or the variables that asked for it.
  std::string named() const { return nproc > 1 ? "--nproc" : "WORLD_SIZE (torchrun's variables)"; }
};

}  // namespace hashhop::cli
