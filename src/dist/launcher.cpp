// The `--nproc N` launcher (see launcher.h): what torchrun's standalone mode does for one host, in-process,
// so `hashhop train --nproc 2` needs no Python. Children die with the launcher (PR_SET_PDEATHSIG).
#include "hashhop/dist/launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hashhop::dist {
namespace {

constexpr int kMaxRanks = 256;
volatile sig_atomic_t g_forwarded_signal = 0;
pid_t g_children[kMaxRanks];
volatile sig_atomic_t g_child_count = 0;
volatile sig_atomic_t g_signal_targets = 0;  // the ranks a user's signal goes to: all, or rank 0 alone

// Async-signal-safe: kill() only.
void kill_ranks(int sig, int count) {
  for (int i = 0; i < count; ++i)
    if (g_children[i] > 0) ::kill(g_children[i], sig);
}
void forward_signal(int sig) {
  g_forwarded_signal = sig;
  kill_ranks(sig, g_signal_targets);
}

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string current;
  for (const char c : all) {
    if (c == '\0') {
      args.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (args.empty()) throw std::runtime_error("--nproc: cannot read /proc/self/cmdline");
  return args;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigdescr_np(sig);
    return "was killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
  }
  return "stopped (status " + std::to_string(status) + ")";
}

}  // namespace

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("--nproc: socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error(std::string("--nproc: cannot find a free port: ") + std::strerror(error));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

void launch_ranks(int nproc, SignalRoute route) {
  if (nproc < 1 || nproc > kMaxRanks) throw std::invalid_argument("--nproc: must be in [1, " + std::to_string(kMaxRanks) + "]");
  const auto args = own_command_line();
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string port = std::getenv("MASTER_PORT") ? std::getenv("MASTER_PORT") : std::to_string(free_port());
  const std::string addr = std::getenv("MASTER_ADDR") ? std::getenv("MASTER_ADDR") : "127.0.0.1";
  // N ranks of OpenMP threads on the same cores slow each other down (torchrun sets 1); share the cores.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc)));

  // Each rank's environment is built here, before fork: between fork and exec the child of a process that
  // may already run threads (LibTorch, OpenMP) must call only async-signal-safe functions.
  static constexpr const char* kOwned[] = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};
  std::vector<std::string> base;
  bool has_omp = false;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (name == "OMP_NUM_THREADS") has_omp = true;
    if (std::none_of(std::begin(kOwned), std::end(kOwned), [&](const char* owned) { return name == owned; })) base.push_back(entry);
  }
  std::vector<std::vector<std::string>> rank_env(static_cast<std::size_t>(nproc), base);
  std::vector<std::vector<char*>> rank_envp(static_cast<std::size_t>(nproc));
  for (int r = 0; r < nproc; ++r) {
    auto& env = rank_env[static_cast<std::size_t>(r)];
    for (const auto& [name, value] : {std::pair<std::string, std::string>{"RANK", std::to_string(r)}, {"LOCAL_RANK", std::to_string(r)},
                                      {"WORLD_SIZE", std::to_string(nproc)}, {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
                                      {"MASTER_ADDR", addr}, {"MASTER_PORT", port}})
      env.push_back(name + "=" + value);
    if (!has_omp) env.push_back("OMP_NUM_THREADS=" + threads);
    for (auto& entry : env) rank_envp[static_cast<std::size_t>(r)].push_back(entry.data());
    rank_envp[static_cast<std::size_t>(r)].push_back(nullptr);
  }

  struct sigaction action{};
  action.sa_handler = forward_signal;
  ::sigemptyset(&action.sa_mask);
  struct sigaction old_int{}, old_term{}, old_hup{};
  ::sigaction(SIGINT, &action, &old_int);
  ::sigaction(SIGTERM, &action, &old_term);
  ::sigaction(SIGHUP, &action, &old_hup);
  // Signals wait while ranks are forked: a child must not run forward_signal with the launcher's table.
  sigset_t forwarded, before;
  ::sigemptyset(&forwarded);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaddset(&forwarded, sig);
  ::sigprocmask(SIG_BLOCK, &forwarded, &before);
  std::fflush(nullptr);
  const pid_t launcher = ::getpid();
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int error = errno;
      ::sigprocmask(SIG_SETMASK, &before, nullptr);
      kill_ranks(SIGKILL, r);
      for (int i = 0; i < r; ++i) ::waitpid(g_children[i], nullptr, 0);
      g_child_count = 0;
      g_signal_targets = 0;
      ::sigaction(SIGINT, &old_int, nullptr);
      ::sigaction(SIGTERM, &old_term, nullptr);
      ::sigaction(SIGHUP, &old_hup, nullptr);
      throw std::runtime_error(std::string("--nproc: fork: ") + std::strerror(error));
    }
    if (pid == 0) {  // async-signal-safe calls only until execve
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a SIGKILLed launcher takes its ranks with it
      if (::getppid() != launcher) ::_exit(1);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGHUP, SIG_DFL);
      ::sigprocmask(SIG_SETMASK, &before, nullptr);
      ::execve("/proc/self/exe", argv.data(), rank_envp[static_cast<std::size_t>(r)].data());
      static constexpr char kMessage[] = "hashhop: a rank cannot exec /proc/self/exe\n";
      [[maybe_unused]] const auto written = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
      ::_exit(127);
    }
    g_children[r] = pid;
    g_child_count = r + 1;
    g_signal_targets = route == SignalRoute::rank_zero ? 1 : r + 1;
  }
  ::sigprocmask(SIG_SETMASK, &before, nullptr);  // a signal that came meanwhile is forwarded now

  // Wait for every rank. The first failure stops the others: SIGTERM, then SIGKILL after a grace period.
  std::string failure;
  int running = nproc;
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR && errno != ECHILD) break;
    if (pid < 0 && errno == ECHILD) break;
    if (pid <= 0) {
      if (std::chrono::steady_clock::now() > kill_deadline) {
        kill_ranks(SIGKILL, nproc);
        kill_deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    int rank = -1;
    for (int i = 0; i < nproc; ++i)
      if (g_children[i] == pid) rank = i;
    if (rank >= 0) g_children[rank] = 0;  // reaped: never signal a pid that may be reused
    --running;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && failure.empty()) {
      failure = "rank " + std::to_string(rank) + " of " + std::to_string(nproc) + " " + describe(status);
      if (running > 0) {
        kill_ranks(SIGTERM, nproc);  // our own stop, not the user's signal
        kill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      }
    }
  }
  g_child_count = 0;
  g_signal_targets = 0;
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  // Rank 0 alone got the user's signal to end the run its own way (serve stops the others): ranks that
  // then all exit 0 are a clean stop.
  if (g_forwarded_signal != 0 && route == SignalRoute::every_rank)
    throw std::runtime_error("interrupted by signal " + std::to_string(g_forwarded_signal) + " (" +
                             ::sigdescr_np(g_forwarded_signal) + "), forwarded to every rank");
  if (!failure.empty()) throw std::runtime_error(failure + "; the other ranks were stopped");
}

}  // namespace hashhop::dist
