// Gradient and statistics all-reduce of data-parallel training (see data_parallel.h). One flat float32
// buffer per step: the collective's fixed cost is paid once, not once per parameter.
#include "hashhop/train/data_parallel.h"

#include <stdexcept>
#include <string>

namespace hashhop::train {

std::pair<int, int> shard_of_batch(int batch, int rank, int world) {
  if (world > batch)
    throw std::invalid_argument("data parallel: " + std::to_string(world) + " ranks need a batch of at least as many samples (it is " +
                                std::to_string(batch) + ")");
  const auto start = [&](int r) { return static_cast<int>(static_cast<long long>(batch) * r / world); };
  return {start(rank), start(rank + 1)};
}

std::vector<double> all_reduce_step(dist::ProcessGroup& group, const std::vector<torch::Tensor>& parameters,
                                    const std::vector<double>& stats) {
  std::vector<torch::Tensor> pieces;
  std::vector<float> flags;
  torch::Device device = parameters.empty() ? torch::Device(torch::kCPU) : parameters.front().device();
  for (const auto& p : parameters) {
    const auto& g = p.grad();
    pieces.push_back(g.defined() ? g.detach().to(torch::kFloat32).reshape({-1}) : torch::zeros({p.numel()}, p.options().dtype(torch::kFloat32)));
    flags.push_back(g.defined() ? 1.0f : 0.0f);
  }
  // Counts stay exact in float32 up to 2^24; the loss sum is only logged.
  std::vector<float> tail(flags);
  for (const double s : stats) tail.push_back(static_cast<float>(s));
  pieces.push_back(torch::tensor(tail).to(device));
  auto flat = torch::cat(pieces);
  group.all_reduce_sum(flat, "gradients");

  const auto tail_values = flat.slice(0, flat.numel() - static_cast<std::int64_t>(tail.size())).to(torch::kCPU);
  const float* t = tail_values.data_ptr<float>();
  std::vector<double> summed(stats.size());
  for (std::size_t i = 0; i < stats.size(); ++i) summed[i] = t[flags.size() + i];
  const double terms = summed.empty() ? 1.0 : summed[0];
  if (!(terms > 0)) throw std::runtime_error("data parallel: the global batch has no loss terms");
  torch::NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    auto p = parameters[i];
    const std::int64_t n = p.numel();
    if (t[i] > 0) {
      auto grad = flat.slice(0, offset, offset + n).view(p.sizes()).div(terms).to(p.dtype());
      if (p.grad().defined()) p.mutable_grad().copy_(grad);
      else p.mutable_grad() = grad.clone();
    } else if (p.grad().defined()) {
      p.mutable_grad() = torch::Tensor();
    }
    offset += n;
  }
  return summed;
}

void check_replicas_equal(dist::ProcessGroup& group, const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> pieces;
  for (const auto& p : parameters) pieces.push_back(p.detach().to(torch::kFloat32).reshape({-1}));
  if (pieces.empty()) return;
  const auto mine = torch::cat(pieces);
  auto high = mine.clone(), low = mine.neg();
  group.all_reduce_max(high, "parameters (replica check)");
  group.all_reduce_max(low, "parameters (replica check)");
  if (!torch::equal(high, mine) || !torch::equal(low.neg(), mine))
    throw std::runtime_error("rank " + std::to_string(group.rank()) + " of " + std::to_string(group.size()) +
                             ": parameters differ between ranks (a data-parallel bug); the checkpoint was not written");
}

}  // namespace hashhop::train
