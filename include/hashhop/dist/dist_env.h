// Where this process sits in a distributed run, read from torchrun's environment variables (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Torch-free; docs/distributed.md lists them.
#pragma once

#include <optional>
#include <string>

namespace hashhop::dist {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// The distributed environment when WORLD_SIZE is set, nullopt otherwise (a plain one-process run).
// Throws std::invalid_argument with a one-line message naming the variable when one is malformed.
std::optional<DistEnv> dist_env_from_environment();

}  // namespace hashhop::dist
