// The process group behind dist::ProcessGroup (see process_group.h): c10d's TCPStore for the rendezvous,
// ProcessGroupGloo on the CPU, ProcessGroupNCCL for CUDA tensors in builds with torch's CUDA libraries.
#include "hashhop/dist/process_group.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(HASHHOP_WITH_TORCH_CUDA) && defined(USE_C10D_NCCL)
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace hashhop::dist {
namespace {

std::string first_line(const char* message) {
  std::string text = message == nullptr ? "" : message;
  if (const auto newline = text.find('\n'); newline != std::string::npos) text.resize(newline);
  return text;
}

std::string seconds(std::chrono::milliseconds t) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g s", static_cast<double>(t.count()) / 1000.0);
  return buffer;
}

}  // namespace

struct ProcessGroup::Impl {
  DistEnv env;
  std::chrono::milliseconds timeout{};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;

  std::string who() const { return "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size); }

  torch::Device device{torch::kCPU};  // where collective tensors must live (CUDA for NCCL)

  // Waits for one collective; a dead peer or a timeout becomes one line naming `verb` of `what`.
  void finish(const c10::intrusive_ptr<c10d::Work>& work, const std::string& verb, const std::string& what) {
    try {
      // wait() throws when the peer's connection closes (a dead rank) or when `timeout` passes (a hung one).
      if (!work->wait(timeout)) throw std::runtime_error("wait returned false");
    } catch (const std::exception& e) {
      const std::string cause = first_line(e.what());
      // A dead peer closes its sockets at once; a hung one (stopped, deadlocked, on a lost host) runs out the clock.
      if (cause.find("closed") != std::string::npos || cause.find("reset") != std::string::npos)
        throw GroupError(who() + ": a peer died (its connection closed) during the " + verb + " of " + what + ": " + cause);
      throw GroupError(who() + ": peer did not answer within " + seconds(timeout) + " (" + verb + " of " + what +
                               "; a rank hung or was stopped): " + cause);
    }
  }

  // Starting a collective can throw too (a peer already gone): the same one-line errors.
  template <typename Start>
  void run(const std::string& verb, const std::string& what, Start&& start) {
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = start();
    } catch (const std::exception& e) {
      throw GroupError(who() + ": a peer died (its connection closed) during the " + verb + " of " + what + ": " +
                       first_line(e.what()));
    }
    finish(work, verb, what);
  }

  void all_reduce(torch::Tensor& tensor, c10d::ReduceOp::RedOpType op, const std::string& what) {
    std::vector<at::Tensor> tensors{tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp(op);
    options.timeout = timeout;
    run("all-reduce", what, [&] { return backend->allreduce(tensors, options); });
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() {
#if defined(HASHHOP_WITH_TORCH_CUDA) && defined(USE_C10D_NCCL)
  // NCCL's communicators want an explicit end (PyTorch's destroy_process_group; without it LibTorch warns
  // at exit that resources may leak). A normal end shuts down; while an error unwinds (a peer may be dead,
  // so a shutdown could wait on it) abort instead. Gloo needs neither.
  if (impl_ && impl_->device.is_cuda() && impl_->backend) {
    try {
      if (std::uncaught_exceptions() == 0)
        impl_->backend->shutdown();
      else
        impl_->backend->abort();
    } catch (...) {  // a destructor must not throw; the process is ending its use of the group anyway
    }
  }
#endif
}
int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::size() const { return impl_->env.world_size; }

void ProcessGroup::all_reduce_sum(torch::Tensor& tensor, const std::string& what) {
  impl_->all_reduce(tensor, c10d::ReduceOp::SUM, what);
}
void ProcessGroup::all_reduce_max(torch::Tensor& tensor, const std::string& what) {
  impl_->all_reduce(tensor, c10d::ReduceOp::MAX, what);
}

namespace {
// Messages travel in a fixed slot with their length in front: a short one (a lookup and its answers)
// takes one collective; only a longer one needs a second for the rest.
constexpr std::int64_t kSlot = 4096, kHeader = sizeof(std::int64_t);

torch::Tensor slot_of(const std::string& data) {
  auto slot = torch::zeros({kSlot}, torch::kUInt8);
  auto* p = reinterpret_cast<char*>(slot.data_ptr<std::uint8_t>());
  const auto n = static_cast<std::int64_t>(data.size());
  std::memcpy(p, &n, kHeader);
  std::memcpy(p + kHeader, data.data(), static_cast<std::size_t>(std::min(n, kSlot - kHeader)));
  return slot;
}

// The length a slot announces, and the bytes it holds.
std::int64_t read_slot(const torch::Tensor& device_slot, std::string& out) {
  const auto slot = device_slot.to(torch::kCPU).contiguous();
  const auto* p = reinterpret_cast<const char*>(slot.data_ptr<std::uint8_t>());
  std::int64_t n;
  std::memcpy(&n, p, kHeader);
  out.assign(p + kHeader, static_cast<std::size_t>(std::min(n, kSlot - kHeader)));
  return n;
}

torch::Tensor rest_of(const std::string& data, std::int64_t longest_rest) {
  auto rest = torch::zeros({std::max<std::int64_t>(1, longest_rest)}, torch::kUInt8);
  if (static_cast<std::int64_t>(data.size()) > kSlot - kHeader)
    std::memcpy(rest.data_ptr<std::uint8_t>(), data.data() + (kSlot - kHeader), data.size() - static_cast<std::size_t>(kSlot - kHeader));
  return rest;
}
}  // namespace

std::vector<std::string> ProcessGroup::all_gather_bytes(const std::string& mine, const std::string& what) {
  auto& impl = *impl_;
  const auto n = static_cast<std::size_t>(impl.env.world_size);
  const auto on_device = torch::TensorOptions().device(impl.device).dtype(torch::kUInt8);
  std::vector<std::vector<at::Tensor>> slots(1);
  for (std::size_t r = 0; r < n; ++r) slots[0].push_back(torch::empty({kSlot}, on_device));
  std::vector<at::Tensor> my_slot{slot_of(mine).to(impl.device)};
  impl.run("all-gather", what, [&] { return impl.backend->allgather(slots, my_slot); });
  std::vector<std::string> out(n);
  std::vector<std::int64_t> lengths(n);
  std::int64_t longest_rest = 0;
  for (std::size_t r = 0; r < n; ++r) {
    lengths[r] = read_slot(slots[0][r], out[r]);
    longest_rest = std::max(longest_rest, lengths[r] - (kSlot - kHeader));
  }
  if (longest_rest <= 0) return out;
  // Every rank saw every length, so all of them take this second round (Gloo gathers equal sizes).
  std::vector<std::vector<at::Tensor>> rests(1);
  for (std::size_t r = 0; r < n; ++r) rests[0].push_back(torch::empty({longest_rest}, on_device));
  std::vector<at::Tensor> my_rest{rest_of(mine, longest_rest).to(impl.device)};
  impl.run("all-gather", what + " (the rest)", [&] { return impl.backend->allgather(rests, my_rest); });
  for (std::size_t r = 0; r < n; ++r) {
    const std::int64_t extra = lengths[r] - (kSlot - kHeader);
    if (extra <= 0) continue;
    const auto host = rests[0][r].to(torch::kCPU).contiguous();
    out[r].append(reinterpret_cast<const char*>(host.data_ptr<std::uint8_t>()), static_cast<std::size_t>(extra));
  }
  return out;
}

void ProcessGroup::broadcast_bytes(std::string& data, int root, const std::string& what) {
  auto& impl = *impl_;
  c10d::BroadcastOptions options;
  options.rootRank = root;
  options.timeout = impl.timeout;
  const bool sender = impl.env.rank == root;
  std::vector<at::Tensor> slot{(sender ? slot_of(data) : torch::zeros({kSlot}, torch::kUInt8)).to(impl.device)};
  impl.run("broadcast", what, [&] { return impl.backend->broadcast(slot, options); });
  std::string received;
  const std::int64_t n = read_slot(slot[0], received);
  const std::int64_t extra = n - (kSlot - kHeader);
  if (extra > 0) {
    std::vector<at::Tensor> rest{rest_of(sender ? data : std::string(), extra).to(impl.device)};
    impl.run("broadcast", what + " (the rest)", [&] { return impl.backend->broadcast(rest, options); });
    const auto host = rest[0].to(torch::kCPU).contiguous();
    received.append(reinterpret_cast<const char*>(host.data_ptr<std::uint8_t>()), static_cast<std::size_t>(extra));
  }
  if (!sender) data = std::move(received);
}

namespace {
constexpr std::chrono::milliseconds kJoinTimeout{60000};
}  // namespace

std::unique_ptr<ProcessGroup> ProcessGroup::join(const DistEnv& env, const torch::Device& device,
                                                 std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->timeout = timeout;
  impl->device = device;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  // A write to a dead peer's socket (Gloo's, the store's) must fail as EPIPE, which wait() reports as "a
  // peer died" in one line; the default SIGPIPE would kill this rank silently (exit 141) whenever the write
  // comes before the read that notices the closed connection.
  ::signal(SIGPIPE, SIG_IGN);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(env.master_port);
    options.isServer = env.rank == 0;  // rank 0 hosts the store, as torchrun's static rendezvous does
    options.numWorkers = static_cast<std::size_t>(env.world_size);
    options.waitWorkers = true;
    // Ranks reach this point as soon as each has loaded LibTorch, seconds apart on a loaded machine: the
    // store's rendezvous gets at least kJoinTimeout, so a short --dist-timeout (meant for collectives) does
    // not fail a healthy start. Once every rank is in the store they build the Gloo mesh in step.
    options.timeout = std::max<std::chrono::milliseconds>(timeout, kJoinTimeout);
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    if (device.is_cuda()) {
#if defined(HASHHOP_WITH_TORCH_CUDA) && defined(USE_C10D_NCCL)
      // One GPU per rank, as NCCL requires: say so instead of CUDA's "invalid device ordinal" mid-join.
      const int gpus = static_cast<int>(c10::cuda::device_count());
      if (env.local_rank >= gpus)
        throw std::invalid_argument("--device cuda: " + impl->who() + " needs GPU " + std::to_string(env.local_rank) + ", but " +
                                    std::to_string(gpus) + " visible: one rank per GPU (--device cpu runs the ranks on Gloo)");
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(env.local_rank));
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      impl->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world_size, nccl);
#else
      throw std::invalid_argument("--device cuda: this build has no NCCL (configure the GPU preset)");
#endif
    } else {
      auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
      // GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch; otherwise this host's address.
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0')
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      gloo->threads = 1;  // one collective at a time; the cores belong to the training
      impl->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, gloo);
    }
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error(impl->who() + ": cannot join the process group at " + where + " within " +
                             seconds(std::max<std::chrono::milliseconds>(timeout, kJoinTimeout)) +
                             " (are all ranks started, with the same MASTER_ADDR and MASTER_PORT?): " + first_line(e.what()));
  }
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

}  // namespace hashhop::dist
