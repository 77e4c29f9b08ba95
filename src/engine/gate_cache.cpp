// GateCache (see gate_cache.h). Tables start as NaN ("not asked yet"); +inf marks a tuple queued for
// the model in this chunk (a log σ is never positive, so neither value collides with a real gate).
#include "hashhop/engine/gate_cache.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace hashhop::engine {
namespace {
constexpr float kUnknown = std::numeric_limits<float>::quiet_NaN();
constexpr float kQueued = std::numeric_limits<float>::infinity();

std::uint32_t feature_code(const model::LexedChunk& c, std::size_t t) {
  return static_cast<std::uint32_t>(c.byte[t]) | (static_cast<std::uint32_t>(c.run_len[t]) << 7) |
         (static_cast<std::uint32_t>(c.eq_in_line[t]) << 15) | (static_cast<std::uint32_t>(c.quotes_in_line[t]) << 18);
}
}  // namespace

GateCache::GateCache(model::HashHopTransformer model)
    : model_(std::move(model)), tables_((model::kMaxHopsFeature + 1) * 3) {}

std::vector<float>& GateCache::table(int hops, int cot) {
  auto& slot = tables_[static_cast<std::size_t>(hops * 3 + cot)];
  if (!slot) slot = std::make_unique<std::vector<float>>(std::size_t{1} << kCodeBits, kUnknown);
  return *slot;
}

void GateCache::log_gates(const model::LexedChunk& c, std::vector<float>& out) {
  const std::size_t n = c.size();
  out.resize(n);
  std::vector<std::size_t> queued;  // first position of each tuple the model has not seen
  std::vector<float>* tab = nullptr;
  int tab_hops = -1, tab_cot = -1;
  bool pending = false;
  for (std::size_t t = 0; t < n; ++t) {
    if (c.hops[t] != tab_hops || c.cot[t] != tab_cot) {
      tab_hops = c.hops[t];
      tab_cot = c.cot[t];
      tab = &table(tab_hops, tab_cot);
    }
    float& g = (*tab)[feature_code(c, t)];
    if (std::isnan(g)) {
      g = kQueued;
      queued.push_back(t);
    }
    out[t] = g;
    pending |= (g == kQueued);
  }
  if (!pending) return;

  torch::NoGradGuard no_grad;
  const auto device = model_->parameters().front().device();
  // Batches of exactly kBatch tuples (the last padded with its first): a tuple's gate then comes out of
  // the same kernels whatever else is new in this chunk, so it is bit-identical for any chunking and on
  // every rank of a context-parallel engine (a GEMM's rounding may depend on its shape).
  constexpr std::size_t kBatch = 64;
  for (std::size_t begin = 0; begin < queued.size(); begin += kBatch) {
    const std::size_t count = std::min(kBatch, queued.size() - begin);
    auto column = [&](auto field) {
      std::vector<std::int64_t> v(kBatch, static_cast<std::int64_t>(field[queued[begin]]));
      for (std::size_t i = 0; i < count; ++i) v[i] = static_cast<std::int64_t>(field[queued[begin + i]]);
      return torch::tensor(v, torch::kInt64).to(device).view({1, -1});
    };
    const model::PositionFeatures f{column(c.byte), column(c.run_len), column(c.eq_in_line),
                                    column(c.quotes_in_line), column(c.hops), column(c.cot)};
    const auto gates = model_->log_gate(model_->structure(f)).to(torch::kCPU, torch::kFloat32).contiguous();
    const float* g = gates.data_ptr<float>();
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t t = queued[begin + i];
      table(c.hops[t], c.cot[t])[feature_code(c, t)] = g[i];
    }
  }
  evaluations_ += queued.size();
  for (std::size_t t = 0; t < n; ++t)
    if (out[t] == kQueued) out[t] = table(c.hops[t], c.cot[t])[feature_code(c, t)];
}

}  // namespace hashhop::engine
