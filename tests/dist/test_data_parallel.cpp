// Data-parallel training on the CPU with Gloo (docs/distributed.md): N ranks equal one process with the
// whole batch, resume stays exact, a killed or hung rank ends the run with a one-line error. Run: ctest -R DataParallel
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hashhop/dist/launcher.h"
#include "hashhop/train/checkpoint.h"
#include "hashhop/train/byte_trainer.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string scratch(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "hashhop_dp_" + std::to_string(::getpid()) + "_" + name;
  std::system(("rm -rf '" + dir + "'").c_str());
  return dir;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Child {
  pid_t pid = -1;
  std::string log;
};

// Starts `hashhop COMMAND --device cpu ARGS` (train by default) with extra environment variables; stdout and
// stderr go to a log file.
Child start(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& log,
            const char* command = "train") {
  Child child{-1, log};
  child.pid = ::fork();
  if (child.pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
    // Gloo on the CPU wherever it runs: on a one-GPU machine, CUDA ranks would need a GPU each.
    std::vector<char*> argv{const_cast<char*>(HASHHOP_CLI), const_cast<char*>(command), const_cast<char*>("--device"),
                            const_cast<char*>("cpu")};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(HASHHOP_CLI, argv.data());
    ::_exit(127);
  }
  return child;
}

// Polls LOG until it contains TEXT, for at most `limit` (the caller's next checks fail if it never does).
void wait_for_text(const std::string& log, const std::string& text, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline && slurp(log).find(text) == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

// Waits at most `limit`; a child still running then is killed and the test fails (never a hung test).
int wait_for(Child& child, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(child.pid, &status, WNOHANG) == child.pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(child.pid, SIGKILL);
  ::waitpid(child.pid, nullptr, 0);
  ADD_FAILURE() << "still running after " << limit.count() << " s: " << slurp(child.log);
  return -1;
}

int run(const std::vector<std::string>& args, const std::string& log) {
  auto child = start(args, {}, log);
  const int rc = wait_for(child, std::chrono::seconds(60));
  EXPECT_EQ(rc, 0) << slurp(log);
  return rc;
}

std::vector<std::pair<std::string, torch::Tensor>> parameters_of(const std::string& dir, bool bytes) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (bytes) {
    auto loaded = hashhop::train::load_byte_model(dir, torch::kCPU);
    for (const auto& p : loaded.net->named_parameters()) out.emplace_back(p.key(), p.value().detach().clone());
  } else {
    auto loaded = hashhop::train::load_model(dir, torch::kCPU);
    for (const auto& p : loaded.model->named_parameters()) out.emplace_back(p.key(), p.value().detach().clone());
  }
  return out;
}

// ||a - b|| / ||a|| over all parameters as one vector (L2); 0 means bit-identical. In norm, not per element:
// AdamW's first steps move each weight by about lr * g / |g|, so a weight whose gradient is near 0 (or whose
// ReLU input sits at 0) turns a rounding difference into an lr-sized one (seen: one of 8,192 ffn_out weights,
// 2.5e-5 apart, while that tensor agrees to 6e-6 in norm), and a scalar near 0 (gate.bias, -1e-3) has a large
// relative difference from an absolute 1e-8. HASHHOP_DP_DEBUG=1 prints the tensors that differ.
double relative_difference(const std::string& a, const std::string& b, bool bytes) {
  const auto pa = parameters_of(a, bytes), pb = parameters_of(b, bytes);
  EXPECT_EQ(pa.size(), pb.size());
  double diff2 = 0, norm2 = 0;
  for (std::size_t i = 0; i < pa.size() && i < pb.size(); ++i) {
    const auto delta = (pa[i].second - pb[i].second).to(torch::kFloat64);
    diff2 += delta.pow(2).sum().item<double>();
    norm2 += pa[i].second.to(torch::kFloat64).pow(2).sum().item<double>();
    if (std::getenv("HASHHOP_DP_DEBUG") && delta.abs().max().item<double>() > 0) {
      const auto where = delta.abs().flatten().argmax().item<std::int64_t>();
      std::printf("  %s: %.3g in norm (most: %.8g vs %.8g; %lld of %lld elements differ)\n", pa[i].first.c_str(),
                  delta.norm().item<double>() / std::max(pa[i].second.norm().item<double>(), 1e-30),
                  pa[i].second.flatten()[where].item<double>(), pb[i].second.flatten()[where].item<double>(),
                  static_cast<long long>((delta != 0).sum().item<std::int64_t>()), static_cast<long long>(delta.numel()));
    }
  }
  return std::sqrt(diff2 / std::max(norm2, 1e-300));
}

// One process with the whole batch vs N ranks with batch/N each: float rounding only (see docs/distributed.md).
void expect_ranks_equal_one_process(const std::string& config, bool bytes, const std::string& steps, int ranks) {
  const std::string one = scratch(config + "_1"), many = scratch(config + "_" + std::to_string(ranks));
  run({"--config", config, "--steps", steps, "--out", one}, one + ".log");
  run({"--config", config, "--steps", steps, "--out", many, "--nproc", std::to_string(ranks)}, many + ".log");
  const double diff = relative_difference(one, many, bytes);
  std::printf("%s: %d ranks vs 1 process after %s steps: relative L2 difference of the parameters %.3g\n", config.c_str(), ranks,
              steps.c_str(), diff);
  EXPECT_LE(diff, 1e-5);
}

TEST(DataParallel, LexerTwoRanksEqualOneProcess) { expect_ranks_equal_one_process("tiny", false, "6", 2); }
TEST(DataParallel, LexerThreeRanksEqualOneProcess) { expect_ranks_equal_one_process("tiny", false, "6", 3); }
TEST(DataParallel, BytesTwoRanksEqualOneProcess) { expect_ranks_equal_one_process("bytes-tiny", true, "4", 2); }

// A 2-rank run stopped and resumed is bit-identical to the uninterrupted 2-rank run.
TEST(DataParallel, ResumeIsExact) {
  const std::string whole = scratch("resume_whole"), pieces = scratch("resume_pieces");
  run({"--config", "bytes-tiny", "--steps", "4", "--out", whole, "--nproc", "2"}, whole + ".log");
  run({"--config", "bytes-tiny", "--steps", "4", "--out", pieces, "--nproc", "2", "--stop-after", "2"}, pieces + ".log");
  run({"--config", "bytes-tiny", "--steps", "4", "--out", pieces, "--nproc", "2"}, pieces + ".log2");
  EXPECT_EQ(relative_difference(whole, pieces, true), 0.0);
  EXPECT_EQ(slurp(whole + "/metrics.jsonl").size() > 0, true);
}

// torchrun-style launch (the variables set by hand); rank 1 SIGKILLed or stopped mid-run.
void expect_peer_failure_detected(int signal, const std::string& expected) {
  const std::string out = scratch("fault_" + std::to_string(signal));
  const std::string port = "MASTER_PORT=" + std::to_string(hashhop::dist::free_port());
  const std::vector<std::string> args{"--config", "bytes-tiny", "--steps", "100000", "--out", out, "--dist-timeout", "3"};
  auto rank0 = start(args, {"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", port, "OMP_NUM_THREADS=1"}, out + ".0.log");
  auto rank1 = start(args, {"RANK=1", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", port, "OMP_NUM_THREADS=1"}, out + ".1.log");
  // Let the ranks join and take some steps.
  wait_for_text(out + ".0.log", "2 ranks", std::chrono::seconds(30));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto killed_at = Clock::now();
  ::kill(rank1.pid, signal);
  const int rc = wait_for(rank0, std::chrono::seconds(20));
  const double took = std::chrono::duration<double>(Clock::now() - killed_at).count();
  ::kill(rank1.pid, SIGKILL);
  ::waitpid(rank1.pid, nullptr, 0);
  const std::string log = slurp(out + ".0.log");
  std::printf("rank 0 ended %.1f s after signal %d to rank 1: %s", took, signal, log.substr(log.rfind("hashhop")).c_str());
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find(expected), std::string::npos) << log;
  EXPECT_LT(took, 3.0 + 5.0);  // the --dist-timeout, plus slack for a loaded machine
}

TEST(DataParallel, KilledRankEndsTheRun) {
  expect_peer_failure_detected(SIGKILL, "hashhop train: error: rank 0 of 2: a peer died (its connection closed)");
}
TEST(DataParallel, HungRankTimesOut) {
  expect_peer_failure_detected(SIGSTOP, "hashhop train: error: rank 0 of 2: peer did not answer within 3 s");
}

// The context-parallel engine: rank 1 SIGKILLed while the ranks prefill or answer; rank 0's next exchange
// fails in one line instead of waiting.
TEST(ContextParallel, KilledRankEndsTheRun) {
  const std::string out = scratch("cp_fault");
  const std::string port = "MASTER_PORT=" + std::to_string(hashhop::dist::free_port());
  const std::vector<std::string> args{"--model", HASHHOP_DEMO_MODEL, "--sizes", "50M", "--hops", "1", "--queries", "8",
                                      "--dist-timeout", "30"};
  auto rank0 = start(args, {"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", port, "OMP_NUM_THREADS=1"}, out + ".0.log", "engine-bench");
  auto rank1 = start(args, {"RANK=1", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", port, "OMP_NUM_THREADS=1"}, out + ".1.log", "engine-bench");
  // Rank 0 prints its table's header once both ranks have joined.
  wait_for_text(out + ".0.log", "| chars |", std::chrono::seconds(60));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto killed_at = Clock::now();
  ::kill(rank1.pid, SIGKILL);
  ::waitpid(rank1.pid, nullptr, 0);
  const int rc = wait_for(rank0, std::chrono::seconds(60));
  const double took = std::chrono::duration<double>(Clock::now() - killed_at).count();
  const std::string log = slurp(out + ".0.log");
  std::printf("rank 0 ended %.1f s after rank 1 was killed: %s", took, log.substr(log.rfind("hashhop")).c_str());
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("hashhop engine-bench: error: rank 0 of 2: a peer died (its connection closed)"), std::string::npos) << log;
  EXPECT_LT(took, 30.0);  // rank 0's half of the prefill at most, never the 30 s timeout
}

// --nproc: a rank killed under the launcher stops the others; the launcher names it and exits non-zero.
TEST(DataParallel, LauncherReportsAKilledRank) {
  const std::string out = scratch("launcher");
  auto launcher = start({"--config", "bytes-tiny", "--steps", "100000", "--out", out, "--nproc", "2", "--dist-timeout", "3"},
                        {}, out + ".log");
  wait_for_text(out + ".log", "2 ranks", std::chrono::seconds(30));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // The launcher's children, in fork order: rank 0 then rank 1.
  std::istringstream children(slurp("/proc/" + std::to_string(launcher.pid) + "/task/" + std::to_string(launcher.pid) + "/children"));
  std::vector<pid_t> ranks;
  for (pid_t pid; children >> pid;) ranks.push_back(pid);
  ASSERT_EQ(ranks.size(), 2u) << slurp(out + ".log");
  ::kill(ranks[1], SIGKILL);
  const int rc = wait_for(launcher, std::chrono::seconds(20));
  const std::string log = slurp(out + ".log");
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("hashhop train: error: rank 1 of 2 was killed by signal 9"), std::string::npos) << log;
  EXPECT_EQ(::kill(ranks[0], 0), -1);  // rank 0 is gone too
}

}  // namespace

namespace {

// --nproc: SIGINT to the launcher reaches every rank; it exits non-zero saying so.
TEST(DataParallel, LauncherForwardsSigint) {
  const std::string out = scratch("sigint");
  auto launcher = start({"--config", "bytes-tiny", "--steps", "100000", "--out", out, "--nproc", "2"}, {}, out + ".log");
  wait_for_text(out + ".log", "2 ranks", std::chrono::seconds(30));
  std::istringstream children(slurp("/proc/" + std::to_string(launcher.pid) + "/task/" + std::to_string(launcher.pid) + "/children"));
  std::vector<pid_t> ranks;
  for (pid_t pid; children >> pid;) ranks.push_back(pid);
  ASSERT_EQ(ranks.size(), 2u) << slurp(out + ".log");
  ::kill(launcher.pid, SIGINT);
  const int rc = wait_for(launcher, std::chrono::seconds(20));
  const std::string log = slurp(out + ".log");
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("hashhop train: error: interrupted by signal 2 (Interrupt), forwarded to every rank"), std::string::npos) << log;
  for (const pid_t pid : ranks) EXPECT_EQ(::kill(pid, 0), -1);
}

}  // namespace
