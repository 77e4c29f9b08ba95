// The dist tests' ranks as threads of one process: rank r of n joins the group at 127.0.0.1:port on the CPU
// (Gloo), with a 60 s timeout. Header only (test_context_parallel, test_byte_context_parallel).
#pragma once

#include <chrono>
#include <memory>

#include "hashhop/dist/dist_env.h"
#include "hashhop/dist/process_group.h"

namespace hashhop {

inline std::unique_ptr<dist::ProcessGroup> join_rank(int r, int n, int port) {
  dist::DistEnv env;
  env.rank = env.local_rank = r;
  env.world_size = n;
  env.master_port = port;
  return dist::ProcessGroup::join(env, torch::kCPU, std::chrono::seconds(60));
}

}  // namespace hashhop
