// The byte model's engine (see byte_engine.h): chunked prefill through ByteModel::extend, then the keys of
// each chunk that a gated global block's gate drops are removed from its cache.
#include "hashhop/engine/byte_engine.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "hashhop/dist/process_group.h"
#include "hashhop/model/autocast.h"
#include "hashhop/model/byte_inference.h"

namespace hashhop::engine {

double ByteEngineStats::bytes_per_reference_point() const {
  const std::int64_t most = reference_points.empty() ? 0 : *std::max_element(reference_points.begin(), reference_points.end());
  return most > 0 ? static_cast<double>(cache_bytes + host_bytes) / static_cast<double>(most) : 0.0;
}

void check_options(const ByteEngineOptions& options, const model::ByteModelConfig* config) {
  if (options.prefill_window < 0) throw std::invalid_argument("byte engine: --prefill-window must be >= 0 keys (0: every key)");
  if (options.prefill_window > 0 && options.device_bytes > 0)
    throw std::invalid_argument("byte engine: --prefill-window and --device-bytes do not combine (spilled keys are read whole)");
  const auto check_blocks = [&](const auto& per_block, const std::string& option) {
    for (const auto& [block, value] : per_block) {
      if (value < 0) throw std::invalid_argument("byte engine: " + option + " " + std::to_string(block) + "=" + std::to_string(value) + ": must be >= 0 (0: the model's own reads)");
      if (value > 0 && options.device_bytes > 0)
        throw std::invalid_argument("byte engine: " + option + " and --device-bytes do not combine (spilled keys are read whole)");
      if (config == nullptr) continue;
      const auto blocks = static_cast<int>(config->layers.size());
      if (block < 0 || block >= blocks || config->layers[static_cast<std::size_t>(block)] == 'L')
        throw std::invalid_argument("byte engine: " + option + " " + std::to_string(block) + ": the model's global blocks are those of \"" +
                                    config->layers + "\" that are not 'L' (0 to " + std::to_string(blocks - 1) + ")");
    }
  };
  check_blocks(options.block_window, "--block-window");
  check_blocks(options.block_topk, "--block-topk");
}

ByteEngine::Reads::~Reads() { net->reset_reads(); }

ByteEngine::Reads ByteEngine::reads_for(bool prefill) {
  try {
    if (prefill) net_->set_read_window(options_.prefill_window);
    for (const auto& [block, keys] : options_.block_window)
      if (keys > 0) net_->set_block_read_window(static_cast<std::size_t>(block), keys);
    for (const auto& [block, k] : options_.block_topk)
      if (k > 0) net_->set_block_topk(static_cast<std::size_t>(block), k);
  } catch (...) {
    net_->reset_reads();  // what was set before the throw
    throw;
  }
  return Reads(net_);  // a prvalue: one guard, one reset
}

ByteEngine::ByteEngine(model::ByteModel net, torch::Device device, ByteEngineOptions options)
    : net_(std::move(net)), device_(device), options_(options) {
  options_.chunk_bytes = std::max<std::size_t>(options_.chunk_bytes, 1);
  if (options_.device_bytes > 0 && net_->config().global_topk != 0)
    throw std::invalid_argument("byte engine: a device budget (--device-bytes) reads every key; the model's global_topk must be 0");
  check_options(options_, &net_->config());
  net_->eval();
}

void ByteEngine::prefill(std::string_view prompt) {
  if (group_ != nullptr) return prefill_sharded(prompt);
  torch::NoGradGuard no_grad;
  model::AutocastScope autocast(device_.is_cuda());  // as prefill_prompt: the answers run under the same scope
  cache_ = {};
  stats_ = {};
  spilled_.clear();
  const std::string text = std::string(prompt) + "\n";
  {
    // The prefill window holds while the prompt streams in, and only then (also when a chunk throws).
    const auto reads = reads_for(/*prefill=*/true);
    with_reads([&] { stream(text); });
  }
  stats_.bytes = text.size();
  stats_.cache_bytes = cache_.bytes();
}

void ByteEngine::stream(std::string_view text) {
  for (std::size_t begin = 0; begin < text.size(); begin += options_.chunk_bytes) {
    const auto piece = text.substr(begin, options_.chunk_bytes);
    net_->extend(cache_, model::as_bytes(piece, device_));
    drop_ungated(static_cast<std::int64_t>(piece.size()));
    spill();
  }
  // The stores extend grew hold up to twice the keys; the prompt is complete, so keep exact copies (one
  // more pass over the keys) and give the spare capacity back before any query runs.
  for (auto& layer : cache_.layers) {
    if (!layer.key_store.defined()) continue;
    layer.keys = layer.keys.clone();
    layer.values = layer.values.clone();
    layer.key_store = layer.value_store = torch::Tensor();
    layer.store_length.reset();
  }
}

void ByteEngine::drop_ungated(std::int64_t chunk_length) {
  const auto& config = net_->config();
  const std::int64_t head_dim = config.dim / config.heads;
  const bool hard = config.gate_drops_keys();  // the model's attention drops them too
  std::size_t gated = 0;
  for (std::size_t i = 0; i < cache_.layers.size(); ++i) {
    if (config.layers[i] == 'L' || !config.hash_gate) continue;
    auto& layer = cache_.layers[i];
    if (hard) {
      // The gate column holds log σ(g)·sqrt(head dim), the same in every head, or -inf where the model's
      // hard gate dropped the key (ByteAttentionImpl::forward): the engine keeps what the model reads,
      // decided once, in float32, whatever dtype the cache is in.
      const auto n = layer.keys.size(2);
      const auto fresh = layer.keys.narrow(2, n - chunk_length, chunk_length);
      const auto kept = torch::isfinite(fresh.select(0, 0).select(0, 0).select(-1, head_dim)).nonzero().squeeze(-1);
      if (kept.size(0) < chunk_length) {
        const auto length = n - chunk_length + kept.size(0);
        if (layer.key_store.defined() && layer.store_length && *layer.store_length == n && layer.store_length.use_count() == 1) {
          // The newest and only view of its stores (ByteLayerCache; a copy of the cache would share the
          // length counter and view these rows): compact the chunk's kept rows in place.
          for (auto* store : {&layer.key_store, &layer.value_store}) {
            const auto rows = store->narrow(2, n - chunk_length, chunk_length).index_select(2, kept);
            store->narrow(2, n - chunk_length, kept.size(0)).copy_(rows);
          }
          *layer.store_length = length;
          layer.keys = layer.key_store.narrow(2, 0, length);
          layer.values = layer.value_store.narrow(2, 0, length);
        } else {
          const auto keep = [&](const torch::Tensor& all) {
            return torch::cat({all.narrow(2, 0, n - chunk_length), all.narrow(2, n - chunk_length, chunk_length).index_select(2, kept)}, 2);
          };
          layer.keys = keep(layer.keys);
          layer.values = keep(layer.values);
          layer.key_store = layer.value_store = torch::Tensor();
          layer.store_length.reset();
        }
      }
    }
    if (stats_.reference_points.size() <= gated) stats_.reference_points.push_back(0);
    std::int64_t spilled = 0;  // the block's keys already in host memory
    if (i < spilled_.size())
      for (const auto& part : spilled_[i]) spilled += part.keys.size(2);
    stats_.reference_points[gated++] = layer.keys.size(2) + spilled;
  }
}

std::string ByteEngine::answer(int hops, bool cot, const std::vector<std::string>& keys) {
  if (group_ != nullptr) return answer_sharded(hops, cot, keys);
  std::string completion;
  const auto reads = reads_for(/*prefill=*/false);
  with_reads([&] { completion = model::answer_queries_bytes(net_, cache_, hops, cot, keys, device_); });
  return completion;
}

torch::Tensor ByteEngine::hidden_after(std::string_view text) {
  torch::NoGradGuard no_grad;
  model::AutocastScope autocast(device_.is_cuda());
  torch::Tensor hidden;
  const auto run = [&] { hidden = net_->hidden_after(cache_, model::as_bytes(text, device_)); };
  if (group_ == nullptr) {
    const auto reads = reads_for(/*prefill=*/false);
    with_reads(run);
  } else if (group_->rank() + 1 == group_->size()) {
    drive(run);  // the last rank holds the prompt's end
  } else {
    serve_reads(group_->size() - 1);
  }
  return hidden;
}

void ByteEngine::spill() {
  if (options_.device_bytes <= 0) return;
  const auto& layers = net_->config().layers;
  std::int64_t held = 0;
  for (std::size_t i = 0; i < cache_.layers.size(); ++i)
    if (layers[i] != 'L' && cache_.layers[i].keys.defined())
      held += (cache_.layers[i].keys.numel() + cache_.layers[i].values.numel()) * cache_.layers[i].keys.element_size();
  if (held <= options_.device_bytes) return;
  // All of them at once: the device then holds at most a budget plus a chunk, and every spilled slice is
  // older than every key left, so the model's causal mask over the ones left stays right.
  spilled_.resize(cache_.layers.size());
  for (std::size_t i = 0; i < cache_.layers.size(); ++i) {
    auto& layer = cache_.layers[i];
    if (layers[i] == 'L' || !layer.keys.defined() || layer.keys.size(2) == 0) continue;
    const auto to_host = [&](const torch::Tensor& t) {
      auto host = t.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);
      return device_.is_cuda() ? host.pin_memory() : host;
    };
    spilled_[i].push_back({to_host(layer.keys), to_host(layer.values)});
    stats_.host_bytes += (layer.keys.numel() + layer.values.numel()) * layer.keys.element_size();
    layer.keys = layer.values = layer.key_store = layer.value_store = torch::Tensor();
    layer.store_length.reset();
  }
}

model::RemoteRead ByteEngine::read_spilled(std::size_t block, const torch::Tensor& q) const {
  auto read = model::empty_read(q.sizes(), q.options());
  if (block >= spilled_.size()) return read;
  const double scale = net_->attention_scale();
  // Slices of at most device_bytes (each key and value row once), so a read never holds more on the device.
  for (const auto& part : spilled_[block]) {
    const auto row_bytes = std::max<std::int64_t>(1, 2 * part.keys.size(1) * part.keys.size(3) * part.keys.element_size());
    const auto rows = std::max<std::int64_t>(1, options_.device_bytes / row_bytes);
    for (std::int64_t r0 = 0; r0 < part.keys.size(2); r0 += rows) {
      const auto n = std::min(rows, part.keys.size(2) - r0);
      const auto k = part.keys.narrow(2, r0, n).to(q.device(), /*non_blocking=*/true);
      const auto v = part.values.narrow(2, r0, n).to(q.device(), /*non_blocking=*/true);
      read = model::merge_reads(read, model::read_with_lse(q, k, v, scale, n));
    }
  }
  return read;
}

}  // namespace hashhop::engine
