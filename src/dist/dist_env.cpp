// torchrun's environment variables parsed and checked (see dist_env.h); bad values fail in one line
// before any socket is opened.
#include "hashhop/dist/dist_env.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace hashhop::dist {
namespace {

int int_var(const char* name, int fallback, int min, int max) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < min || value > max)
    throw std::invalid_argument(std::string(name) + "=" + text + ": must be an integer in [" + std::to_string(min) + ", " +
                                std::to_string(max) + "]");
  return static_cast<int>(value);
}

}  // namespace

std::optional<DistEnv> dist_env_from_environment() {
  if (std::getenv("WORLD_SIZE") == nullptr) return std::nullopt;
  DistEnv env;
  env.world_size = int_var("WORLD_SIZE", 1, 1, 1 << 16);
  env.rank = int_var("RANK", -1, 0, env.world_size - 1);
  if (env.rank < 0) throw std::invalid_argument("RANK: required when WORLD_SIZE is set");
  env.local_rank = int_var("LOCAL_RANK", env.rank, 0, env.world_size - 1);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') env.master_addr = addr;
  env.master_port = int_var("MASTER_PORT", 29500, 1, 65535);
  return env;
}

}  // namespace hashhop::dist
