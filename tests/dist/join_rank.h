// The dist tests' ranks as threads of one process (test_context_parallel, test_byte_context_parallel): each
// joins the group at 127.0.0.1 on the CPU (Gloo), with a 60 s timeout. Header only.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hashhop/dist/dist_env.h"
#include "hashhop/dist/launcher.h"
#include "hashhop/dist/process_group.h"

namespace hashhop {

inline std::unique_ptr<dist::ProcessGroup> join_rank(int r, int n, int port) {
  dist::DistEnv env;
  env.rank = env.local_rank = r;
  env.world_size = n;
  env.master_port = port;
  return dist::ProcessGroup::join(env, torch::kCPU, std::chrono::seconds(60));
}

// Runs body(rank, group) on n ranks, one thread each, joined at a free port; returns each rank's error
// ("" where body returned).
inline std::vector<std::string> on_ranks(int n, const std::function<void(int, dist::ProcessGroup&)>& body) {
  std::vector<std::string> errors(static_cast<std::size_t>(n));
  const int port = dist::free_port();
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r, *join_rank(r, n, port));
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

}  // namespace hashhop
