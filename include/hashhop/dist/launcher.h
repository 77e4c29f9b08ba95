// `--nproc N`: runs this same command line as N ranks on this host (fork + exec with torchrun's variables),
// forwards SIGINT/SIGTERM/SIGHUP to them, and stops them all when one fails. Torch-free; docs/distributed.md.
#pragma once

#include <string>

namespace hashhop::dist {

// Re-launches /proc/self/exe with /proc/self/cmdline as N ranks (RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 unless set, MASTER_PORT a free port unless set, OMP_NUM_THREADS
// cores/N unless set) and waits for them. Returns when all exited 0; throws std::runtime_error with a
// one-line message naming the first rank that failed after stopping the others (SIGTERM, SIGKILL 5 s later).
// SIGINT/SIGTERM/SIGHUP go to every rank (and the run counts as interrupted), or with `rank_zero` to rank 0
// alone, for commands whose rank 0 ends the others itself (serve): then ranks that all exit 0 are a clean stop.
enum class SignalRoute { every_rank, rank_zero };
void launch_ranks(int nproc, SignalRoute route = SignalRoute::every_rank);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
int free_port();

}  // namespace hashhop::dist
