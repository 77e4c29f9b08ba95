// The byte-level HashHop model (see byte_model.h). Attention goes through ATen's scaled_dot_product_attention:
// causal kernels for global layers (the gate rides in an extra head dim), banded row chunks for local ones.
#include "hashhop/model/byte_model.h"

#include "hashhop/model/autocast.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace hashhop::model {
namespace {
// A dropped key's gate column where a finite value is needed (training's backward pass, fused kernels):
// its score sits 10^4 below the others, so its softmax weight underflows to exactly 0.
constexpr double kDroppedKey = -1e4;

// `layer` gets new key and value stores of `capacity` rows (with `key_options`, `value_options`) whose first
// n rows are `keys` and `values` [B, H, n, d]: store_length n, and keys and values the views of those rows.
void copy_into_new_stores(ByteLayerCache& layer, const torch::Tensor& keys, const torch::Tensor& values, std::int64_t capacity,
                          const torch::TensorOptions& key_options, const torch::TensorOptions& value_options) {
  const auto n = keys.size(2);
  auto shape = keys.sizes().vec();
  shape[2] = capacity;
  layer.key_store = torch::empty(shape, key_options);
  shape[3] = values.size(3);
  layer.value_store = torch::empty(shape, value_options);
  layer.key_store.narrow(2, 0, n).copy_(keys);
  layer.value_store.narrow(2, 0, n).copy_(values);
  layer.keys = layer.key_store.narrow(2, 0, n);
  layer.values = layer.value_store.narrow(2, 0, n);
  layer.store_length = std::make_shared<std::int64_t>(n);
}
}  // namespace

CanonConvImpl::CanonConvImpl(int dim, int kernel) : kernel_(kernel) {
  // PyTorch's default init (uniform in ±1/sqrt(kernel)): the conv mixes neighbours from step 0. An
  // init near zero left the 1-hop plateau unbroken for 2,000 steps (docs/learning-log.md, section 8).
  conv_ = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(dim, dim, kernel).groups(dim)));
}

torch::Tensor CanonConvImpl::forward(const torch::Tensor& x, const torch::Tensor& past, torch::Tensor* tail) {
  const auto b = x.size(0), t = x.size(1), dim = x.size(2);
  // Output t sees inputs t-k+1..t: the kernel - 1 inputs before x come first (zeros where the text starts,
  // as a padded conv would read them), so a prefilled text and its continuation give what one call gives.
  const auto before = past.defined() ? past.expand({b, kernel_ - 1, dim}).to(x.scalar_type())
                                     : torch::zeros({b, kernel_ - 1, dim}, x.options());
  const auto joined = torch::cat({before, x}, 1);
  if (tail) *tail = joined.narrow(1, t, kernel_ - 1).detach();
  return x + conv_->forward(joined.transpose(1, 2)).transpose(1, 2);
}

std::int64_t ByteCache::bytes() const {
  std::int64_t total = 0;
  for (const auto& layer : layers) {
    const bool stored = layer.key_store.defined();  // keys and values view these: count their capacity
    for (const auto* t : {stored ? &layer.key_store : &layer.keys, stored ? &layer.value_store : &layer.values, &layer.canon_attn,
                          &layer.canon_mlp})
      if (t->defined()) total += t->numel() * static_cast<std::int64_t>(t->element_size());
  }
  return total;
}

RemoteRead empty_read(torch::IntArrayRef sizes, const torch::TensorOptions& options) {
  const auto f32 = options.dtype(torch::kFloat32);
  return {torch::zeros(sizes, f32), torch::full({sizes[0], sizes[1], sizes[2]}, -std::numeric_limits<float>::infinity(), f32)};
}

RemoteRead read_with_lse(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                         std::int64_t past_length) {
  NoAutocast float32;  // inside the engine's AutocastScope too: scores, log-sum-exps and reads all in float32
  const auto b = q.size(0), h = q.size(1), t = q.size(2), n_all = k.size(2);
  RemoteRead read = empty_read({b, h, t, v.size(3)}, q.options());
  if (t == 0 || n_all == 0) return read;
  const std::int64_t rows = std::max<std::int64_t>(1, (std::int64_t{1} << 27) / std::max<std::int64_t>(1, b * h * n_all));
  const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  for (std::int64_t r0 = 0; r0 < t; r0 += rows) {
    const auto c = std::min(rows, t - r0);
    const auto n = std::min(n_all, past_length + r0 + c);  // keys after the block's last row are masked for all of it
    if (n <= 0) continue;
    auto scores = torch::matmul(q.narrow(2, r0, c).to(torch::kFloat32), k.narrow(2, 0, n).to(torch::kFloat32).transpose(-1, -2)).mul_(scale);
    const auto diff = (torch::arange(c, opts) + past_length + r0).view({c, 1}) - torch::arange(n, opts).view({1, n});
    scores.masked_fill_(diff < 0, -std::numeric_limits<float>::infinity());
    const auto lse = torch::logsumexp(scores, -1);  // [B, H, c]
    const auto seen = torch::isfinite(lse);
    // A row with no visible key (all masked, or all dropped by the hard gate) reads 0, not NaN.
    const auto weights = torch::exp(scores - torch::where(seen, lse, torch::zeros_like(lse)).unsqueeze(-1));
    read.out.narrow(2, r0, c).copy_(torch::matmul(weights, v.narrow(2, 0, n).to(torch::kFloat32)));
    read.lse.narrow(2, r0, c).copy_(lse);
  }
  return read;
}

RemoteRead merge_reads(const RemoteRead& a, const RemoteRead& b) {
  const auto top = torch::maximum(a.lse, b.lse);
  const auto base = torch::where(torch::isfinite(top), top, torch::zeros_like(top));  // both empty: weights 0, out 0
  const auto wa = torch::exp(a.lse - base), wb = torch::exp(b.lse - base);
  const auto total = wa + wb;
  const auto safe = torch::where(total > 0, total, torch::ones_like(total));
  return {(a.out * wa.unsqueeze(-1) + b.out * wb.unsqueeze(-1)) / safe.unsqueeze(-1), base + torch::log(total)};
}

ByteAttentionImpl::ByteAttentionImpl(const ByteModelConfig& config, char kind) : config_(config), kind_(kind) {
  head_dim_ = config.dim / config.heads;
  const double fraction = kind == 'L' ? 1.0 : config.global_rope_fraction;
  rotated_ = 2 * static_cast<int>(std::lround(fraction * head_dim_ / 2));
  const bool gated = kind != 'L' && config.hash_gate;
  // One more dim for the gate column, rounded up to a multiple of 8 so SDPA's fused kernels take it.
  padded_dim_ = gated ? (head_dim_ + 1 + 7) / 8 * 8 : head_dim_;
  const auto half = rotated_ / 2;
  inverse_frequencies_ = torch::pow(config.rope_base, -torch::arange(half, torch::kFloat64) * 2.0 / std::max(1, rotated_));
  if (kind != 'L' && config.global_rope_max_wavelength > 0)
    inverse_frequencies_.masked_fill_(2 * std::numbers::pi / inverse_frequencies_ > config.global_rope_max_wavelength, 0.0);
  q_ = register_module("q", torch::nn::Linear(torch::nn::LinearOptions(config.dim, config.dim).bias(false)));
  k_ = register_module("k", torch::nn::Linear(torch::nn::LinearOptions(config.dim, config.dim).bias(false)));
  v_ = register_module("v", torch::nn::Linear(torch::nn::LinearOptions(config.dim, config.dim).bias(false)));
  const int reads = kind == 'H' ? config.hops : 1;
  out_ = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(config.dim * reads, config.dim).bias(false)));
  if (gated) {
    gate_ = register_module("gate", torch::nn::Linear(config.dim, 1));
    // σ(4) ≈ 0.98: every position starts as a reference point; training learns which to drop.
    torch::NoGradGuard no_grad;
    gate_->weight.normal_(0.0, 0.02);
    gate_->bias.fill_(4.0);
  }
  if (kind != 'L' && config.global_qk_norm) qk_gain_ = register_parameter("qk_gain", torch::ones({config.heads}));
  if (kind == 'H')
    hash_projection_ = register_module("hash_projection",
                                       torch::nn::Linear(torch::nn::LinearOptions(config.dim, config.dim).bias(false)));
}

torch::Tensor ByteAttentionImpl::rotate(const torch::Tensor& x, std::int64_t first) const {
  if (rotated_ == 0) return x;
  const auto t = x.size(2);
  // Angles in float64 (at position 10^8 a float32 product would be off by radians), computed on x's device
  // so no table crosses from the host on every call.
  if (inverse_frequencies_.device() != x.device()) inverse_frequencies_ = inverse_frequencies_.to(x.device());
  const auto positions = torch::arange(first, first + t, torch::TensorOptions().dtype(torch::kFloat64).device(x.device()));
  const auto angles = torch::outer(positions, inverse_frequencies_);
  const auto cos = angles.cos().to(x.scalar_type()), sin = angles.sin().to(x.scalar_type());
  const int half = rotated_ / 2;
  const auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
  if (rotated_ == head_dim_) return rotated;
  return torch::cat({rotated, x.narrow(-1, rotated_, head_dim_ - rotated_)}, -1);
}

torch::Tensor ByteAttentionImpl::normalize(const torch::Tensor& x, bool query) const {
  if (!qk_gain_.defined()) return x;
  // The mean of squares in float32, as RMSNorm kernels take it, whatever the autocast dtype.
  const auto x32 = x.to(torch::kFloat32);
  auto y = x32 * torch::rsqrt(x32.square().mean(-1, true) + 1e-6);
  if (query) y = y * qk_gain_.to(torch::kFloat32).view({1, -1, 1, 1});
  return y.to(x.scalar_type());
}

torch::Tensor ByteAttentionImpl::extend(const torch::Tensor& x, const torch::Tensor& column) const {
  if (padded_dim_ == head_dim_) return x;
  const auto b = x.size(0), h = x.size(1), t = x.size(2);
  std::vector<torch::Tensor> parts = {x};
  if (column.defined()) parts.push_back(column.to(x.scalar_type()).view({b, 1, t, 1}).expand({b, h, t, 1}));
  const auto used = head_dim_ + (column.defined() ? 1 : 0);
  if (padded_dim_ > used) parts.push_back(torch::zeros({b, h, t, padded_dim_ - used}, x.options()));
  return torch::cat(parts, -1);
}

torch::Tensor ByteAttentionImpl::attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        std::int64_t past_length) const {
  if (kind_ != 'L' && read_window_ > 0 && past_length > read_window_) {
    // A read window (set_read_window): the cached keys before the last read_window_ are not read at all.
    const auto skip = past_length - read_window_;
    return attend(q, k.narrow(2, skip, k.size(2) - skip), v.narrow(2, skip, v.size(2) - skip), read_window_);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  const auto t = q.size(2), n = k.size(2);
  if (kind_ != 'L' && remote_) {
    // Context parallel: this rank's keys (causal) and the other ranks' (all earlier), one softmax.
    TORCH_CHECK(config_.global_topk == 0, "byte model: a context-parallel engine reads every key (global_topk must be 0)");
    const auto read = merge_reads(read_with_lse(q, k, v, scale, past_length), remote_(q));
    return read.out.to(q.scalar_type()).narrow(-1, 0, head_dim_);
  }
  if (kind_ != 'L' && config_.global_topk > 0 && (!is_training() || config_.topk_in_training) && n > config_.global_topk)
    return attend_topk(q, k, v, past_length, scale).narrow(-1, 0, head_dim_);
  const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  // Query i sees key j when j - past_length <= i (keys are the cached ones, then this call's own), and a
  // local layer only the last `window` of them.
  const auto visible = [&](std::int64_t row0, std::int64_t rows, std::int64_t key0, std::int64_t keys) {
    const auto diff = (torch::arange(rows, opts) + past_length + row0).view({rows, 1}) - (torch::arange(keys, opts) + key0).view({1, keys});
    return kind_ == 'L' ? (diff >= 0) & (diff < config_.window) : diff >= 0;
  };
  if (kind_ != 'L') {
    // SDPA's fused CUDA kernels give NaN or wrong reads for keys the hard gate dropped (their gate column is
    // -inf: a tile of -inf scores meets a running max of -inf; measured on an H200 in float32). A finite
    // stand-in far below any score weighs them exactly 0 all the same (exp underflows), and a row that
    // sees no kept key is zeroed by the caller (reads_nothing). The stores keep -inf: it marks a dropped key.
    // The price: a copy of the keys per call (at 10^6 cached keys, about as much traffic as the read itself).
    const auto fused_keys = !is_training() && gate_ && config_.gate_drops_keys()
                                ? k.clamp_min(kDroppedKey * std::sqrt(static_cast<double>(head_dim_)))
                                : k;
    if (past_length == 0) return at::scaled_dot_product_attention(q, fused_keys, v, {}, 0.0, /*is_causal=*/true, scale).narrow(-1, 0, head_dim_);
    // One new row (a decoded byte) sees every key: no mask, so SDPA may take a fused kernel.
    if (t == 1) return at::scaled_dot_product_attention(q, fused_keys, v, {}, 0.0, false, scale).narrow(-1, 0, head_dim_);
    if (q.is_cuda()) {
      // Row i sees key j when j <= i + past_length: causal aligned to the bottom right, which the fused
      // memory-efficient kernel takes as a mask type (2), so no [rows, n] mask is built or read. The
      // masked path below read a bool mask per 16-row block, quadratic traffic at 10^6 cached keys.
      constexpr std::int64_t causal_from_bottom_right = 2;
      TORCH_CHECK(!torch::GradMode::is_enabled(), "byte model: the fused cached read has no backward pass (extend runs under no_grad)");
      const auto out = std::get<0>(at::_efficient_attention_forward(
          q.transpose(1, 2), fused_keys.to(q.scalar_type()).transpose(1, 2), v.to(q.scalar_type()).transpose(1, 2), std::nullopt,
          std::nullopt, std::nullopt, std::nullopt, std::nullopt, 0.0, causal_from_bottom_right, false, scale));
      return out.transpose(1, 2).narrow(-1, 0, head_dim_);
    }
    // After a cache (the engine's chunks, a query's bytes): rows in blocks whose bool mask [rows, n] stays
    // near 2^27 elements, each against only the keys up to its last row, so a 64K-byte chunk after 10^6
    // cached keys needs no [T, n] mask at once.
    const std::int64_t block = std::max<std::int64_t>(1, (std::int64_t{1} << 27) / std::max<std::int64_t>(1, q.size(0) * q.size(1) * n));
    std::vector<torch::Tensor> outs;
    for (std::int64_t r0 = 0; r0 < t; r0 += block) {
      const auto rows = std::min(block, t - r0), keys = std::min(n, past_length + r0 + rows);
      const auto mask = (torch::arange(rows, opts) + past_length + r0).view({rows, 1}) >= torch::arange(keys, opts).view({1, keys});
      outs.push_back(at::scaled_dot_product_attention(q.narrow(2, r0, rows), fused_keys.narrow(2, 0, keys), v.narrow(2, 0, keys),
                                                      mask, 0.0, false, scale));
    }
    return (outs.size() == 1 ? outs[0] : torch::cat(outs, 2)).narrow(-1, 0, head_dim_);
  }
  // Local: rows in chunks, each against only the keys its window reaches, so a long prefill costs
  // O(T · window) time and memory, not a [T, T] mask.
  const std::int64_t chunk = std::max<std::int64_t>(256, config_.window);
  std::vector<torch::Tensor> outs;
  for (std::int64_t r0 = 0; r0 < t; r0 += chunk) {
    const auto rows = std::min(chunk, t - r0);
    const auto key0 = std::max<std::int64_t>(0, past_length + r0 - (config_.window - 1));
    const auto keys = std::min(n, past_length + r0 + rows) - key0;
    outs.push_back(at::scaled_dot_product_attention(q.narrow(2, r0, rows), k.narrow(2, key0, keys), v.narrow(2, key0, keys),
                                                    visible(r0, rows, key0, keys), 0.0, false, scale));
  }
  return (outs.size() == 1 ? outs[0] : torch::cat(outs, 2)).narrow(-1, 0, head_dim_);
}

torch::Tensor ByteAttentionImpl::attend_topk(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                             std::int64_t past_length, double scale) const {
  const auto b = q.size(0), h = q.size(1), t = q.size(2), dv = v.size(3);
  // Rows per chunk so one chunk's scores stay near 2^27 elements (256 MB in bf16).
  const auto n_all = k.size(2);
  const std::int64_t rows = std::max<std::int64_t>(1, (std::int64_t{1} << 27) / std::max<std::int64_t>(1, b * h * n_all));
  const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
  std::vector<torch::Tensor> outs;
  for (std::int64_t r0 = 0; r0 < t; r0 += rows) {
    const auto c = std::min(rows, t - r0);
    const auto n = std::min(n_all, past_length + r0 + c);  // keys after the chunk's last row are all masked
    const auto keys = k.narrow(2, 0, n), values = v.narrow(2, 0, n).reshape({b * h, n, dv});
    auto scores = torch::matmul(q.narrow(2, r0, c), keys.transpose(-1, -2)).mul_(scale);  // [B, H, c, n]
    const auto diff = (torch::arange(c, opts) + past_length + r0).view({c, 1}) - torch::arange(n, opts).view({1, n});
    scores.masked_fill_(diff < 0, -std::numeric_limits<float>::infinity());
    const auto kept = std::min<std::int64_t>(config_.global_topk, n);
    const auto [top, index] = scores.topk(kept, -1);  // [B, H, c, kept]; a row with fewer keys keeps -inf
    const auto weights = torch::softmax(top.to(torch::kFloat32), -1).to(v.scalar_type());
    const auto picked = values.gather(1, index.reshape({b * h, c * kept, 1}).expand({b * h, c * kept, dv}));
    outs.push_back((weights.unsqueeze(-1) * picked.view({b, h, c, kept, dv})).sum(3));
  }
  return torch::cat(outs, 2);
}

torch::Tensor ByteAttentionImpl::forward(const torch::Tensor& x, std::int64_t first, const ByteLayerCache* past,
                                         ByteLayerCache* record) {
  const auto b = x.size(0), t = x.size(1);
  TORCH_CHECK(!past || b == 1, "byte model: a cached continuation runs one text at a time");
  const auto split = [&](const torch::Tensor& y) { return y.view({b, t, config_.heads, head_dim_}).transpose(1, 2); };
  const auto merge = [&](const torch::Tensor& y) { return y.transpose(1, 2).reshape({b, t, config_.dim}); };
  torch::Tensor key_column, query_column, training_dropped;  // training_dropped: [B, T], z = 0 (hard concrete)
  const bool concrete = gate_ && config_.gate == "hard_concrete";
  const bool hard_gate = gate_ && !is_training() && config_.gate_drops_keys();
  if (gate_ && concrete) {
    // Hard concrete (Louizos et al. 2018, L0 gates): z = clamp(s·(ζ - γ) + γ, 0, 1) with s = σ((logit + noise)/β)
    // in training (logistic noise) and s = σ(logit) at inference. z is exactly 0 for a dropped key and exactly 1
    // for a fully kept one, and the engine stores only z > 0 (logit > -ln 11). A dropped key is dropped in
    // training too (a bias of -1e4: weight exactly 0, and finite, so no NaN reaches the backward pass), and
    // a row that sees no kept key reads nothing, as at inference. So the level is pinned: a needed key at
    // z = 0 costs loss. A floor shared by every dropped key (once log 1e-6) is a shift common to a row whose
    // keys are all dropped, which the softmax ignores: the L0 penalty then closed every gate at no cost and
    // the noise sent the reads to random keys (run 14c, learning-log section 16).
    constexpr double beta = 2.0 / 3.0, gamma = -0.1, zeta = 1.1;
    const auto logit = gate_->forward(x).squeeze(-1).to(torch::kFloat32);  // [B, T]
    last_log_gate_ = torch::log_sigmoid(logit - beta * std::log(-gamma / zeta));  // log P(z != 0): the L0 penalty's
    last_kept_ = logit > std::log(-gamma / zeta);  // z > 0 at inference: σ(logit) > -γ/(ζ - γ) = 1/12, logit > -ln 11
    torch::Tensor stretched;
    if (is_training()) {
      const auto u = torch::rand_like(logit).clamp(1e-6, 1.0 - 1e-6);
      stretched = torch::sigmoid((torch::log(u) - torch::log1p(-u) + logit) / beta);
    } else {
      stretched = torch::sigmoid(logit);
    }
    const auto z = (stretched * (zeta - gamma) + gamma).clamp(0.0, 1.0);
    key_column = (is_training() ? torch::where(z > 0, torch::log(z.clamp_min(1e-30)), torch::full_like(z, kDroppedKey)) : torch::log(z)) *
                 std::sqrt(static_cast<double>(head_dim_));
    if (is_training()) training_dropped = z.detach() == 0;
    query_column = torch::ones({b, t}, x.options());
  } else if (gate_) {
    last_log_gate_ = torch::log_sigmoid(gate_->forward(x).squeeze(-1).to(torch::kFloat32));  // [B, T]
    last_kept_ = last_log_gate_ > std::log(config_.gate_threshold > 0 ? config_.gate_threshold : 0.5);
    key_column = last_log_gate_ * std::sqrt(static_cast<double>(head_dim_));
    if (hard_gate) {
      // A dropped key scores -inf, so it is never read, whatever else a query sees. A query that sees no
      // kept key reads nothing (its softmax is NaN, or with attend()'s finite stand-in a mean of dropped
      // values; those rows only are zeroed below): the engine, which stores only the kept keys, then gives
      // the same answer for any chunk size.
      key_column = key_column.masked_fill(last_log_gate_ <= std::log(config_.gate_threshold),
                                          -std::numeric_limits<double>::infinity());
    }
    query_column = torch::ones({b, t}, x.options());
  }
  const auto query_base = q_->forward(x);
  auto k = extend(rotate(normalize(split(k_->forward(x)), false), first), key_column);
  auto v = extend(split(v_->forward(x)), torch::Tensor());
  const std::int64_t past_length = past && past->keys.defined() ? past->keys.size(2) : 0;
  if (past_length > 0 && record && kind_ != 'L') {
    // ByteModel::extend of a global layer: the new rows go into the stores (ByteLayerCache), in place while
    // this cache is their newest view and they have room, else into new stores of twice the length.
    // The stores are written from detached rows: no gradient would reach this chunk's keys (extend runs
    // under no_grad; training never passes a cache).
    TORCH_CHECK(!torch::GradMode::is_enabled(), "byte model: extending a cache needs no_grad");
    const auto n = past_length + t;
    const bool in_place = past->key_store.defined() && past->store_length && *past->store_length == past_length &&
                          past->key_store.size(2) >= n && past->key_store.scalar_type() == k.scalar_type() &&
                          past->value_store.scalar_type() == v.scalar_type() && past->key_store.device() == k.device();
    if (in_place) {
      record->key_store = past->key_store, record->value_store = past->value_store, record->store_length = past->store_length;
    } else {
      copy_into_new_stores(*record, past->keys, past->values, std::max<std::int64_t>(2 * n, 64), k.options(), v.options());
    }
    record->key_store.narrow(2, past_length, t).copy_(k.detach());
    record->value_store.narrow(2, past_length, t).copy_(v.detach());
    *record->store_length = n;
    k = record->keys = record->key_store.narrow(2, 0, n);
    v = record->values = record->value_store.narrow(2, 0, n);
  } else {
    if (past_length > 0) {
      k = torch::cat({past->keys.to(k.scalar_type()), k}, 2);
      v = torch::cat({past->values.to(v.scalar_type()), v}, 2);
    }
  }
  if (record && !record->key_store.defined()) {
    // A local layer's later queries reach back only `window` bytes, so it keeps only those keys; the mask
    // in attend() places cached keys by counting back from the first new position, so that stays right.
    const auto n = k.size(2), kept = kind_ == 'L' ? std::min<std::int64_t>(n, config_.window) : n;
    record->keys = k.narrow(2, n - kept, kept).detach().contiguous();  // a copy when trimmed: frees the rest
    record->values = v.narrow(2, n - kept, kept).detach().contiguous();
  }
  torch::Tensor reads_nothing;  // [B, 1, T, 1]: rows whose visible keys are all dropped by the hard gate
  if (training_dropped.defined()) {  // training passes no cache and no remote reads
    reads_nothing = (training_dropped.logical_not().cumsum(1) > 0).logical_not().view({b, 1, t, 1});
  } else if (hard_gate && !remote_) {  // with remote reads, merge_reads zeroes those rows (no key anywhere)
    auto seen = (key_column > -std::numeric_limits<double>::infinity()).cumsum(1) > 0;  // [B, T]
    if (past_length > 0) seen = seen | torch::isfinite(past->keys.select(-1, head_dim_).select(1, 0)).any(1, true).to(seen.device());
    reads_nothing = seen.logical_not().view({b, 1, t, 1});
  }
  const auto ask = [&](const torch::Tensor& query) {
    const auto q = extend(rotate(normalize(split(query), true), first), query_column);
    if (query_observer_) query_observer_(q);
    const auto read = attend(q, k, v, past_length);
    return merge(reads_nothing.defined() ? read.masked_fill(reads_nothing, 0.0) : read);  // they see no kept key: read nothing
  };
  // The queries at probed rows (`rows` [B, R], -1 pads: position 0's), as attend() scores them (the gate
  // column rides in q·k), float32 [B, H, R, padded]; the caller turns autocast off (it would run the
  // matmuls that follow in bf16).
  const auto queries_at = [&](const torch::Tensor& query, const torch::Tensor& probe) {
    const auto rows = probe.to(x.device()).clamp_min(0);
    const auto qx = extend(rotate(normalize(split(query), true), first), query_column);
    return qx.gather(2, rows.view({b, 1, -1, 1}).expand({b, qx.size(1), rows.size(1), qx.size(3)})).to(torch::kFloat32);
  };
  if (kind_ == 'G') {
    match_queries_ = match_keys_ = torch::Tensor();
    if (match_rows_.defined() && match_rows_.numel() > 0 && past_length == 0 && !remote_) {
      NoAutocast float32;
      match_queries_ = queries_at(query_base, match_rows_);
      match_keys_ = k.to(torch::kFloat32);
    }
  }
  if (kind_ != 'H') return out_->forward(ask(query_base));
  hop_weights_.clear();
  const bool probed = probe_rows_.defined() && probe_rows_.numel() > 0 && past_length == 0;
  const auto weights_of = [&](const torch::Tensor& query) {
    // The probed rows' log-softmax over their visible keys, as attend() weighs them: [B, H, R, T], in
    // float32. Log weights, so a loss on a line's share keeps its gradient however small that share is.
    NoAutocast float32;
    const auto rows = probe_rows_.to(x.device()).clamp_min(0);  // [B, R]
    const auto picked = queries_at(query, probe_rows_);
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
    const auto scores = torch::matmul(picked, k.to(torch::kFloat32).transpose(-1, -2)) * scale;  // [B, H, R, T]
    const auto later = torch::arange(t, rows.options()).view({1, 1, 1, t}) > rows.view({b, 1, -1, 1});
    return torch::log_softmax(scores.masked_fill(later, -std::numeric_limits<float>::infinity()), -1);
  };
  std::vector<torch::Tensor> reads;
  torch::Tensor query = query_base;
  for (int hop = 0; hop < config_.hops; ++hop) {
    if (probed) hop_weights_.push_back(weights_of(query));
    reads.push_back(ask(query));
    query = query_base + hash_projection_->forward(reads.back());  // the next hop asks for what this one found
  }
  return out_->forward(torch::cat(reads, -1));
}

ByteBlockImpl::ByteBlockImpl(const ByteModelConfig& config, char kind) : kind_(kind) {
  if (config.canon_kernel > 0) {
    canon_attn_ = register_module("canon_attn", CanonConv(config.dim, config.canon_kernel));
    canon_mlp_ = register_module("canon_mlp", CanonConv(config.dim, config.canon_kernel));
  }
  norm_attn_ = register_module("norm_attn", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim})));
  norm_mlp_ = register_module("norm_mlp", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim})));
  attention_ = register_module("attention", ByteAttention(config, kind));
  up_ = register_module("up", torch::nn::Linear(config.dim, config.dim * config.mlp_mult));
  down_ = register_module("down", torch::nn::Linear(config.dim * config.mlp_mult, config.dim));
}

torch::Tensor ByteBlockImpl::forward(const torch::Tensor& x_in, std::int64_t first, const ByteLayerCache* past,
                                     ByteLayerCache* record) {
  auto x = x_in;
  const auto tail = [&](torch::Tensor ByteLayerCache::*field) { return record ? &(record->*field) : nullptr; };
  const auto past_tail = [&](torch::Tensor ByteLayerCache::*field) { return past ? past->*field : torch::Tensor(); };
  if (canon_attn_) x = canon_attn_->forward(x, past_tail(&ByteLayerCache::canon_attn), tail(&ByteLayerCache::canon_attn));
  x = x + attention_->forward(norm_attn_->forward(x), first, past, record);
  if (canon_mlp_) x = canon_mlp_->forward(x, past_tail(&ByteLayerCache::canon_mlp), tail(&ByteLayerCache::canon_mlp));
  return x + down_->forward(torch::gelu(up_->forward(norm_mlp_->forward(x))));
}

ByteModelImpl::ByteModelImpl(const ByteModelConfig& config) : config_(config) {
  embed_ = register_module("embed", torch::nn::Embedding(256, config.dim));
  for (std::size_t i = 0; i < config.layers.size(); ++i)
    blocks_.push_back(register_module("block" + std::to_string(i), ByteBlock(config, config.layers[i])));
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim})));
  head_ = register_module("head", torch::nn::Linear(config.dim, 256));
  torch::NoGradGuard no_grad;
  embed_->weight.normal_(0.0, config.embed_std);
  if (config.init == "torch") return;  // LibTorch's defaults as drawn (the gate's bias 4 was set with it)
  // Output projections start smaller so every block starts close to the identity (GPT-2's 1/sqrt(2·layers)).
  const double residual = 1.0 / std::sqrt(2.0 * static_cast<double>(config.layers.size()));
  const bool fan_in = config.init == "fan_in";
  for (auto& item : named_parameters()) {
    const auto& name = item.key();
    auto& p = item.value();
    const bool output = name.find(".out.") != std::string::npos || name.find(".down.") != std::string::npos;
    if (p.dim() == 2 && name.find("embed") == std::string::npos && name.find("gate") == std::string::npos) {
      // fan_in: std 1/sqrt(inputs), so a d=256 model's first scores and logits are not ~10x too small (with
      // a fixed 0.02 every from-scratch run since run 5 sat on the "closing quote only" plateau:
      // learning-log §14). gpt2: the fixed 0.02 that runs 1-11 were trained with.
      const double std = fan_in ? 1.0 / std::sqrt(static_cast<double>(p.size(1))) : 0.02;
      p.normal_(0.0, output ? std * residual : std);
    } else if (fan_in && p.dim() == 1 && name.ends_with(".bias") && name.find("norm") == std::string::npos &&
               name.find("gate") == std::string::npos) {
      p.zero_();  // linear and canon biases: no constant offsets that drown the 0.02-sized byte embedding
    }
  // (dim() == 2 skips the canon convs' [dim, 1, kernel] weights, which keep their default init.)
  }
}

torch::Tensor ByteModelImpl::run(const torch::Tensor& bytes, const ByteCache* past, ByteCache* record) {
  TORCH_CHECK(bytes.dim() == 2, "byte model: input must be [batch, length] bytes");
  const std::int64_t first = past ? past->length : 0;
  if (record) {
    record->length = first + bytes.size(1);
    record->layers.assign(blocks_.size(), {});
  }
  auto x = embed_->forward(bytes);
  for (std::size_t i = 0; i < blocks_.size(); ++i)
    x = blocks_[i]->forward(x, first, past ? &past->layers.at(i) : nullptr, record ? &record->layers[i] : nullptr);
  return norm_->forward(x);
}

void ByteModelImpl::set_global_topk(int topk) {
  TORCH_CHECK(topk >= 0, "byte model: global_topk must be >= 0");
  config_.global_topk = topk;
  for (auto& block : blocks_) block->attention()->set_global_topk(topk);
}

void ByteModelImpl::set_gate_threshold(double threshold) {
  TORCH_CHECK(threshold >= 0 && threshold < 1, "byte model: gate_threshold must be in [0, 1)");
  config_.gate_threshold = threshold;
  for (auto& block : blocks_) block->attention()->set_gate_threshold(threshold);
}

void ByteModelImpl::set_remote_attention(const RemoteAttention& remote) {
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    if (config_.layers[i] == 'L') continue;
    if (remote) blocks_[i]->attention()->set_remote([remote, i](const torch::Tensor& q) { return remote(i, q); });
    else blocks_[i]->attention()->set_remote({});
  }
}

void ByteModelImpl::set_query_observer(const QueryObserver& observer) {
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    if (config_.layers[i] == 'L') continue;
    if (observer) blocks_[i]->attention()->set_query_observer([observer, i](const torch::Tensor& q) { observer(i, q); });
    else blocks_[i]->attention()->set_query_observer({});
  }
}

void ByteModelImpl::set_read_window(std::int64_t keys) {
  TORCH_CHECK(keys >= 0, "byte model: a read window must be >= 0 keys (0: all)");
  for (std::size_t i = 0; i < blocks_.size(); ++i)
    if (config_.layers[i] != 'L') blocks_[i]->attention()->set_read_window(keys);
}

void ByteModelImpl::set_block_read_window(std::size_t block, std::int64_t keys) {
  TORCH_CHECK(block < blocks_.size() && config_.layers[block] != 'L', "byte model: block ", block, " is not a global block");
  TORCH_CHECK(keys >= 0, "byte model: a read window must be >= 0 keys (0: all)");
  blocks_[block]->attention()->set_read_window(keys);
}

void ByteModelImpl::set_block_topk(std::size_t block, int topk) {
  TORCH_CHECK(block < blocks_.size() && config_.layers[block] != 'L', "byte model: block ", block, " is not a global block");
  TORCH_CHECK(topk >= 0, "byte model: a top-k read must keep >= 0 keys (0: dense)");
  blocks_[block]->attention()->set_global_topk(topk);
}

void ByteModelImpl::reset_reads() {
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    if (config_.layers[i] == 'L') continue;
    blocks_[i]->attention()->set_read_window(0);
    blocks_[i]->attention()->set_global_topk(config_.global_topk);
  }
}

void ByteModelImpl::set_hop_probe(const torch::Tensor& rows) {
  for (auto& block : blocks_)
    if (block->attention()->kind() == 'H') block->attention()->set_hop_probe(rows);
}

void ByteModelImpl::set_match_probe(std::size_t block, const torch::Tensor& rows) {
  TORCH_CHECK(block < blocks_.size() && blocks_[block]->attention()->kind() == 'G', "byte model: block ", block,
              " is not a global block");
  blocks_[block]->attention()->set_match_probe(rows);
}

std::pair<torch::Tensor, torch::Tensor> ByteModelImpl::match_vectors(std::size_t block) const {
  TORCH_CHECK(block < blocks_.size(), "byte model: no block ", block);
  const auto& attention = blocks_[block]->attention();
  return {attention->match_queries(), attention->match_keys()};
}

std::vector<std::vector<torch::Tensor>> ByteModelImpl::hop_weights() const {
  std::vector<std::vector<torch::Tensor>> out;
  for (const auto& block : blocks_)
    if (block->attention()->kind() == 'H') out.push_back(block->attention()->hop_weights());
  return out;
}

double ByteModelImpl::attention_scale() const { return 1.0 / std::sqrt(static_cast<double>(config_.dim / config_.heads)); }

torch::Tensor ByteModelImpl::hidden(const torch::Tensor& bytes) { return run(bytes, nullptr, nullptr); }

ByteCache ByteModelImpl::prefill(const torch::Tensor& bytes) {
  TORCH_CHECK(bytes.dim() == 2 && bytes.size(0) == 1, "byte model: prefill takes one text [1, n]");
  torch::NoGradGuard no_grad;
  ByteCache cache;
  run(bytes, nullptr, &cache);
  return cache;
}

torch::Tensor ByteModelImpl::hidden_after(const ByteCache& cache, const torch::Tensor& bytes) {
  TORCH_CHECK(cache.layers.size() == blocks_.size(), "byte model: the cache belongs to another model");
  return run(bytes, &cache, nullptr);
}

torch::Tensor ByteModelImpl::extend(ByteCache& cache, const torch::Tensor& bytes) {
  TORCH_CHECK(bytes.dim() == 2 && bytes.size(0) == 1, "byte model: extend takes one text [1, n]");
  TORCH_CHECK(cache.layers.empty() || cache.layers.size() == blocks_.size(), "byte model: the cache belongs to another model");
  torch::NoGradGuard no_grad;
  ByteCache next;
  auto hidden = run(bytes, cache.layers.empty() ? nullptr : &cache, &next);
  cache = std::move(next);
  return hidden;
}

void ByteModelImpl::reserve(ByteCache& cache, std::int64_t extra) const {
  TORCH_CHECK(cache.layers.size() == blocks_.size(), "byte model: the cache belongs to another model");
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    auto& layer = cache.layers[i];
    if (config_.layers[i] == 'L' || !layer.keys.defined()) continue;  // a local layer keeps its window
    const auto keys = layer.keys, values = layer.values;  // the helper replaces the layer's views
    copy_into_new_stores(layer, keys, values, keys.size(2) + std::max<std::int64_t>(extra, 1), keys.options(), values.options());
  }
}

void ByteModelImpl::rewind(const ByteCache& cache) {
  for (const auto& layer : cache.layers)
    if (layer.store_length) *layer.store_length = layer.keys.size(2);
}

torch::Tensor ByteModelImpl::logits(const torch::Tensor& hidden_rows) { return head_->forward(hidden_rows); }

std::vector<double> ByteModelImpl::kept_share(const torch::Tensor& valid) const {
  std::vector<double> shares;
  for (const auto& block : blocks_) {
    const auto kept = block->attention()->last_kept();
    if (!kept.defined()) continue;
    const auto mask = valid.to(kept.device());
    shares.push_back((kept & mask).sum().item<double>() / std::max<double>(1.0, mask.sum().item<double>()));
  }
  return shares;
}

torch::Tensor ByteModelImpl::mean_gate(const torch::Tensor& valid) const {
  torch::Tensor total;
  std::size_t gated = 0;
  const auto& weights = config_.gate_sparsity_blocks;
  for (const auto& block : blocks_) {
    const auto log_gate = block->attention()->last_log_gate();
    if (!log_gate.defined()) continue;
    const auto mask = valid.to(log_gate.device()).to(torch::kFloat32);
    auto mean = (log_gate.exp() * mask).sum() / mask.sum().clamp_min(1.0);
    if (!weights.empty()) mean = mean * weights.at(gated);
    total = total.defined() ? total + mean : mean;
    ++gated;
  }
  return gated ? total / static_cast<double>(gated) : total;
}

}  // namespace hashhop::model
