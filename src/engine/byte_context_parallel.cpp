// The byte model's engine across ranks (byte_engine.h, docs/distributed.md): the ranks prefill their shards in
// prompt order, each from the previous one's local state, reading the others' global keys through the group.
// Tests: tests/dist (ByteContextParallel).
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "hashhop/dist/process_group.h"
#include "hashhop/dist/wire.h"
#include "hashhop/engine/byte_engine.h"
#include "hashhop/engine/engine.h"
#include "hashhop/model/autocast.h"
#include "hashhop/model/byte_inference.h"

namespace hashhop::engine {
namespace {

using dist::Reader;
using dist::Writer;

// A turn's messages from the rank that runs the model: a read's header, the end of its turn, or the error
// that ended it (then every rank throws it, so all leave the turn together).
constexpr char kRead = 'R', kDone = 'D', kFail = 'F';

// A tensor as float32 host bytes (its dtype, shape, then data), and back in its dtype on `device`.
void put_tensor(Writer& w, const torch::Tensor& t) {
  const auto host = t.to(torch::kCPU, torch::kFloat32).contiguous();
  w.put<std::int8_t>(static_cast<std::int8_t>(t.scalar_type()));
  w.put<std::uint64_t>(static_cast<std::uint64_t>(host.dim()));
  for (const auto size : host.sizes()) w.put<std::int64_t>(size);
  w.put_string(std::string_view(static_cast<const char*>(host.data_ptr()), static_cast<std::size_t>(host.numel()) * sizeof(float)));
}

torch::Tensor get_tensor(Reader& r, const torch::Device& device) {
  const auto type = static_cast<torch::ScalarType>(r.get<std::int8_t>());
  if (type != torch::kFloat32 && type != torch::kBFloat16 && type != torch::kFloat16 && type != torch::kFloat64)
    throw std::runtime_error("context-parallel byte engine: a rank sent a tensor of an unexpected type");
  std::vector<std::int64_t> sizes(r.get<std::uint64_t>());
  for (auto& size : sizes) size = r.get<std::int64_t>();
  const std::string data = r.get_string();
  auto t = torch::empty(sizes, torch::kFloat32);
  if (data.size() != static_cast<std::size_t>(t.numel()) * sizeof(float))
    throw std::runtime_error("context-parallel byte engine: a rank sent a tensor of the wrong size");
  std::memcpy(t.data_ptr(), data.data(), data.size());
  return t.to(device, type);
}

// What the next rank needs to continue the prompt: the length so far and, per block, what the model keeps
// of the text before (local blocks' window keys and values, canon tails). Global blocks' keys stay here.
std::string local_state(const model::ByteCache& cache, const std::string& layers) {
  Writer w;
  w.put<std::int64_t>(cache.length);
  w.put<std::uint64_t>(cache.layers.size());
  for (std::size_t i = 0; i < cache.layers.size(); ++i) {
    const auto& layer = cache.layers[i];
    const bool local = layers[i] == 'L';
    for (const auto* t : {local ? &layer.keys : nullptr, local ? &layer.values : nullptr, &layer.canon_attn, &layer.canon_mlp}) {
      w.put<std::uint8_t>(t != nullptr && t->defined() ? 1 : 0);
      if (t != nullptr && t->defined()) put_tensor(w, *t);
    }
  }
  return w.take();
}

model::ByteCache from_local_state(const std::string& bytes, const torch::Device& device) {
  Reader r(bytes);
  model::ByteCache cache;
  cache.length = r.get<std::int64_t>();
  cache.layers.resize(r.get<std::uint64_t>());
  for (auto& layer : cache.layers)
    for (auto* t : {&layer.keys, &layer.values, &layer.canon_attn, &layer.canon_mlp})
      if (r.get<std::uint8_t>() != 0) *t = get_tensor(r, device);
  return cache;
}

}  // namespace

ByteEngine::ByteEngine(model::ByteModel net, torch::Device device, dist::ProcessGroup& group, ByteEngineOptions options)
    : ByteEngine(std::move(net), device, options) {
  if (net_->config().global_topk != 0)
    throw std::invalid_argument("context-parallel byte engine: global_topk must be 0 (the ranks' reads merge by log-sum-exp)");
  if (options.approximate())
    throw std::invalid_argument(
        "context-parallel byte engine: --prefill-window, --block-window and --block-topk are one engine's options (every rank's keys are read whole)");
  group_ = &group;
}

// One global block's read of every other rank's keys, for the queries `q` of the rank whose turn it is. The
// queries reach every rank as a sum with zeros (exact), each rank reads its own keys (or nothing), and two
// all-reduces merge the reads: the max of the log-sum-exps, then the sums of the reads and weights rescaled to
// it, which is the softmax over all those keys at once. All-reduces over the engine's Gloo group (host
// copies of the tensors), plus one small broadcast of the block and the query shape.
model::RemoteRead ByteEngine::remote_read(int driver, std::size_t block, const torch::Tensor& q) {
  auto& group = *group_;
  const bool driving = group.rank() == driver;
  Writer w;
  w.put(kRead);
  w.put<std::uint64_t>(block);
  for (int d = 0; d < 4; ++d) w.put<std::int64_t>(driving ? q.size(d) : 0);
  std::string header = driving ? w.take() : std::string();
  group.broadcast_bytes(header, driver, "a global block's query shape");
  if (header.size() == 1 && header[0] == kDone) return {};
  if (!header.empty() && header[0] == kFail) throw std::runtime_error(header.substr(1));
  Reader r(header);
  if (r.get<char>() != kRead) throw std::runtime_error("context-parallel byte engine: unreadable request from rank " + std::to_string(driver));
  block = r.get<std::uint64_t>();
  std::vector<std::int64_t> sizes(4);
  for (auto& size : sizes) size = r.get<std::int64_t>();
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device_);
  // The engine's group is Gloo (ranks may share a GPU), so its collectives take host tensors.
  const auto reduce = [&](torch::Tensor& t, bool max, const char* what) {
    auto host = t.to(torch::kCPU).contiguous();
    if (max) group.all_reduce_max(host, what);
    else group.all_reduce_sum(host, what);
    t = host.to(device_);
  };
  auto queries = driving ? q.to(f32).contiguous() : torch::zeros(sizes, f32);
  reduce(queries, false, "a global block's queries");

  auto mine = model::empty_read(sizes, f32);
  // Ranks before the driver hold their shards; every key there comes before every query (no mask).
  if (!driving && group.rank() < driver && block < cache_.layers.size() && cache_.layers[block].keys.defined()) {
    const auto& layer = cache_.layers[block];
    mine = model::read_with_lse(queries, layer.keys, layer.values, net_->attention_scale(), layer.keys.size(2));
  }
  if (!driving && group.rank() < driver) mine = model::merge_reads(mine, read_spilled(block, queries));
  auto top = mine.lse.clone();
  reduce(top, true, "the ranks' log-sum-exps");
  const auto base = torch::where(torch::isfinite(top), top, torch::zeros_like(top));
  const auto weight = torch::exp(mine.lse - base).unsqueeze(-1);  // 0 where this rank read nothing
  auto sums = torch::cat({mine.out * weight, weight}, -1).contiguous();
  reduce(sums, false, "the ranks' reads of their keys");
  const auto total = sums.narrow(-1, sizes[3], 1);
  return {sums.narrow(-1, 0, sizes[3]) / torch::where(total > 0, total, torch::ones_like(total)), base + torch::log(total.squeeze(-1))};
}

void ByteEngine::with_reads(const std::function<void()>& work) {
  if (group_ == nullptr && options_.device_bytes <= 0) return work();
  net_->set_remote_attention([this](std::size_t block, const torch::Tensor& q) {
    auto read = read_spilled(block, q);
    return group_ == nullptr ? read : model::merge_reads(read, remote_read(group_->rank(), block, q));
  });
  try {
    work();
  } catch (...) {
    net_->set_remote_attention({});
    throw;
  }
  net_->set_remote_attention({});
}

// While `work` runs the model on this rank, every global block's read also reads the other ranks' keys
// (remote_read); then kDone lets the others go on.
void ByteEngine::drive(const std::function<void()>& work) {
  std::string end(1, kDone);
  try {
    with_reads(work);
  } catch (const dist::GroupError&) {
    throw;
  } catch (const std::exception& e) {
    // Between reads (the model's own work failed: out of memory, a bad input): the others are waiting for
    // the next header, so they get this error instead and throw it too.
    end = std::string(1, kFail) + e.what();
    group_->broadcast_bytes(end, group_->rank(), "a global block's query shape");
    throw;
  }
  group_->broadcast_bytes(end, group_->rank(), "a global block's query shape");
}

// Takes part in `driver`'s reads until it is done.
void ByteEngine::serve_reads(int driver) {
  while (remote_read(driver, 0, torch::Tensor()).out.defined()) {
  }
}

void ByteEngine::prefill_sharded(std::string_view prompt) {
  torch::NoGradGuard no_grad;
  model::AutocastScope autocast(device_.is_cuda());
  auto& group = *group_;
  const int ranks = group.size(), me = group.rank();
  cache_ = {};
  stats_ = {};
  spilled_.clear();
  const std::string text = std::string(prompt) + "\n";
  const auto& layers = net_->config().layers;
  // Rank r's turn: it continues the text from rank r - 1's local state while every other rank serves its
  // reads; then it hands its own local state to rank r + 1. A turn is the whole shard, so prefill time is
  // one process's (plus the reads' traffic): what the ranks divide is the memory of the global keys.
  for (int turn = 0; turn < ranks; ++turn) {
    if (turn == me) {
      const auto shard = shard_of(text.size(), me, ranks, 0);
      drive([&] { stream(std::string_view(text).substr(shard.begin, shard.end - shard.begin)); });
    } else {
      serve_reads(turn);
    }
    if (turn + 1 == ranks) break;
    std::string state = turn == me ? local_state(cache_, layers) : std::string();
    group.broadcast_bytes(state, turn, "a rank's local state at its shard's end");
    if (turn + 1 == me) cache_ = from_local_state(state, device_);
  }
  stats_.bytes = text.size();
  stats_.cache_bytes = cache_.bytes();
  // The whole prompt's reference points and memory: every rank's, summed (an empty shard counted none).
  const auto& config = net_->config();
  const auto gated = config.hash_gate ? std::count_if(layers.begin(), layers.end(), [](char kind) { return kind != 'L'; }) : 0;
  stats_.reference_points.resize(static_cast<std::size_t>(gated), 0);
  Writer w;
  w.put<std::int64_t>(stats_.cache_bytes);
  w.put<std::int64_t>(stats_.host_bytes);
  for (const auto kept : stats_.reference_points) w.put<std::int64_t>(kept);
  const auto all = group.all_gather_bytes(w.take(), "the ranks' reference point counts");
  stats_.reference_points.assign(stats_.reference_points.size(), 0);
  stats_.cache_bytes = stats_.host_bytes = 0;
  for (const auto& counts : all) {
    Reader r(counts);
    stats_.cache_bytes += r.get<std::int64_t>();
    stats_.host_bytes += r.get<std::int64_t>();
    for (auto& kept : stats_.reference_points) kept += r.get<std::int64_t>();
  }
}

std::string ByteEngine::answer_sharded(int hops, bool cot, const std::vector<std::string>& keys) {
  auto& group = *group_;
  const int last = group.size() - 1;  // it holds the prompt's end: local windows and canon tails
  std::string completion;
  if (group.rank() == last) drive([&] { completion = model::answer_queries_bytes(net_, cache_, hops, cot, keys, device_); });
  else serve_reads(last);
  group.broadcast_bytes(completion, last, "the completion");
  return completion;
}

}  // namespace hashhop::engine
