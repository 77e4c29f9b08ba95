// The byte model's engine across ranks (byte_engine.h, docs/distributed.md): the ranks prefill their shards in
// prompt order, each from the previous one's local state, reading the others' global keys through the group.
// Tests: tests/dist (ByteContextParallel).
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "hashhop/dist/process_group.h"
#include "hashhop/engine/byte_engine.h"
#include "hashhop/engine/engine.h"
#include "hashhop/model/autocast.h"
#include "hashhop/model/byte_inference.h"
#include "wire.h"

namespace hashhop::engine {
namespace {

constexpr char kRead = 'R', kDone = 'D';

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
  group_ = &group;
}

// While `work` runs the model on this rank, every global block's read also asks the other ranks: its queries
// are broadcast, each rank returns the read of its own keys (all of them earlier in the prompt) or nothing,
// and the reads merge in rank order. Then kDone lets the others go on.
void ByteEngine::drive(const std::function<void()>& work) {
  auto& group = *group_;
  const int me = group.rank();
  net_->set_remote_attention([&](std::size_t block, const torch::Tensor& q) {
    Writer w;
    w.put(kRead);
    w.put<std::uint64_t>(block);
    put_tensor(w, q);
    std::string request = w.take();
    group.broadcast_bytes(request, me, "a global block's queries");
    const auto reads = group.all_gather_bytes("", "the ranks' reads of their keys");
    const auto f32 = q.options().dtype(torch::kFloat32);
    model::RemoteRead merged{torch::zeros({q.size(0), q.size(1), q.size(2), q.size(3)}, f32),
                             torch::full({q.size(0), q.size(1), q.size(2)}, -std::numeric_limits<float>::infinity(), f32)};
    for (const auto& bytes : reads) {
      if (bytes.empty()) continue;
      Reader r(bytes);
      model::RemoteRead read;
      read.out = get_tensor(r, q.device());
      read.lse = get_tensor(r, q.device());
      merged = model::merge_reads(merged, read);
    }
    return merged;
  });
  try {
    work();
  } catch (...) {
    net_->set_remote_attention({});
    throw;
  }
  net_->set_remote_attention({});
  std::string done(1, kDone);
  group.broadcast_bytes(done, me, "the end of a rank's turn");
}

// Reads for `driver` until it is done: of this rank's keys when it holds its shard already, else nothing.
void ByteEngine::serve_reads(int driver) {
  auto& group = *group_;
  const double scale = net_->attention_scale();
  for (;;) {
    std::string request;
    group.broadcast_bytes(request, driver, "a global block's queries");
    if (request.size() == 1 && request[0] == kDone) return;
    Reader r(request);
    if (r.get<char>() != kRead) throw std::runtime_error("context-parallel byte engine: unreadable request from rank " + std::to_string(driver));
    const auto block = r.get<std::uint64_t>();
    const auto q = get_tensor(r, device_);
    std::string reply;
    if (block < cache_.layers.size() && cache_.layers[block].keys.defined() && group.rank() < driver) {
      const auto& layer = cache_.layers[block];
      // Every key here comes before every query of the driver: no mask (past_length = the key count).
      const auto read = model::read_with_lse(q, layer.keys, layer.values, scale, layer.keys.size(2));
      Writer w;
      put_tensor(w, read.out);
      put_tensor(w, read.lse);
      reply = w.take();
    }
    group.all_gather_bytes(reply, "the ranks' reads of their keys");
  }
}

void ByteEngine::prefill_sharded(std::string_view prompt) {
  torch::NoGradGuard no_grad;
  model::AutocastScope autocast(device_.is_cuda());
  auto& group = *group_;
  const int ranks = group.size(), me = group.rank();
  cache_ = {};
  stats_ = {};
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
  stats_.cache_bytes = cache_.bytes();  // this rank's
  // Reference points of the whole prompt: every rank's, summed.
  Writer w;
  for (const auto kept : stats_.reference_points) w.put<std::int64_t>(kept);
  const auto all = group.all_gather_bytes(w.take(), "the ranks' reference point counts");
  stats_.reference_points.assign(stats_.reference_points.size(), 0);
  for (const auto& counts : all) {
    Reader r(counts);
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
