// CUDA dispatch of torch.ops.hashhop.{pack_signatures,signature_attention,bucket_attention,index_attention}:
// the project's kernels (src/attn/cuda) on device tensors, on the current stream. Built with HASHHOP_TORCH_CUDA=ON; tested by tests/python/test_ops_cuda.py.
//
// Every op allocates its workspaces from torch's caching allocator, launches on
// at::cuda::getCurrentCUDAStream() and never waits for the device (no .item(), no .cpu(), no sync): sizes
// that depend on the data (how many keys a query keeps) are bounded from the shapes instead. The only
// host-to-device copies are the first call's upload of a bucket rotation or of an index's sampled bit
// positions, which are cached per device and configuration.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/cuda/bucket_attention_cuda.h"
#include "hashhop/attn/cuda/hash_index_cuda.h"
#include "hashhop/attn/cuda/signature_select_cuda.h"
#include "hashhop/attn/cuda/sparse_decode_cuda.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/attn/signature_attention.h"
#include "hashhop/ops/attention_grads.h"
#include "hashhop/ops/attention_ops.h"
#include "ops_cuda_support.h"

namespace hashhop::ops {
namespace {

namespace hc = attn::cuda;
using namespace cuda_support;  // NOLINT: the shared helpers read as local ones
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

void check_cuda_qkv(const char* op, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, op, ": q, k and v must be [heads, n, dim], got q ", q.sizes(),
              ", k ", k.sizes(), ", v ", v.sizes());
  TORCH_CHECK(q.is_cuda(), op, ": q must be on the CUDA device of the other arguments, got ", q.device());
  TORCH_CHECK(k.device() == q.device(), op, ": k must be on q's device (", q.device(), "), got ", k.device());
  TORCH_CHECK(v.device() == q.device(), op, ": v must be on q's device (", q.device(), "), got ", v.device());
  element_of(op, q, "q");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), op,
              ": q, k and v must share one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
  TORCH_CHECK(k.sizes() == v.sizes(), op, ": k and v must have one shape, got ", k.sizes(), " and ", v.sizes());
  TORCH_CHECK(q.size(2) == k.size(2), op, ": q and k must have one head dim, got ", q.size(2), " and ", k.size(2));
  TORCH_CHECK(q.size(1) > 0 && k.size(1) > 0 && q.size(2) > 0, op, ": sizes must be positive");
  TORCH_CHECK(k.size(0) > 0 && q.size(0) % k.size(0) == 0, op, ": heads_q (", q.size(0), ") must be a multiple of heads_kv (",
              k.size(0), ")");
  TORCH_CHECK(q.size(2) == 64 || q.size(2) == 128, op, ": q: the CUDA kernels support head dim 64 or 128, got ", q.size(2));
  TORCH_CHECK(k.size(1) < (int64_t{1} << 31) && q.size(0) * q.size(1) < (int64_t{1} << 31), op,
              ": k: n_k and heads_q * n_q must fit in int32 on CUDA");
}

void check_cuda_signatures(const char* op, const torch::Tensor& signatures, const char* name, const torch::Tensor& q,
                           int64_t heads, int64_t n, int64_t words) {
  TORCH_CHECK(signatures.device() == q.device(), op, ": ", name, " must be on q's device (", q.device(), "), got ",
              signatures.device());
  TORCH_CHECK(signatures.scalar_type() == torch::kInt64, op, ": ", name, " must be int64 (packed words), got ",
              signatures.scalar_type());
  const bool shaped = words == 0 ? signatures.dim() == 2 && signatures.size(0) == heads && signatures.size(1) == n
                                 : signatures.dim() == 3 && signatures.size(0) == heads && signatures.size(1) == n &&
                                       signatures.size(2) == words;
  TORCH_CHECK(shaped, op, ": ", name, " must be [", heads, ", ", n, words ? ", " + std::to_string(words) : std::string(),
              "], got ", signatures.sizes());
}

// ---- pack_signatures ----

torch::Tensor pack_signatures_cuda(const torch::Tensor& logits) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) > 0, "pack_signatures: logits must be [n, bits], got ", logits.sizes());
  TORCH_CHECK(logits.is_floating_point(), "pack_signatures: logits must be floating point, got ", logits.scalar_type());
  TORCH_CHECK(logits.size(0) < (int64_t{1} << 31) && logits.size(1) < (int64_t{1} << 31),
              "pack_signatures: logits: n and bits must fit in int32 on CUDA");
  const c10::cuda::CUDAGuard guard(logits.device());
  // float64 is reduced to ±1 on the device first: a plain float cast could turn a tiny negative into -0.0 (bit 1).
  auto x = logits.detach();
  if (x.scalar_type() == torch::kFloat64) x = torch::where(x >= 0, 1.0f, -1.0f);
  x = x.contiguous();
  const int n = static_cast<int>(x.size(0)), bits = static_cast<int>(x.size(1));
  auto out = torch::empty({n, attn::signature_words(bits)}, x.options().dtype(torch::kInt64));
  hc::pack_signatures(x.data_ptr(), element_of("pack_signatures", x, "logits"), n, bits,
                      reinterpret_cast<std::uint64_t*>(out.data_ptr<int64_t>()), at::cuda::getCurrentCUDAStream());
  return out;
}

// ---- attention over per-row key lists (signature top-k and index candidates) ----

// Autograd over a fixed selection: forward by the kernel, backward by selected_attention_backward.
class SelectedAttention : public torch::autograd::Function<SelectedAttention> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& selected, const torch::Tensor& counts, double scale, std::string op) {
    ctx->save_for_backward({q, k, v, selected, counts});
    ctx->saved_data["scale"] = scale;
    return decode_selected(op.c_str(), q, k, v, selected.data_ptr<int>(), counts.data_ptr<int>(), selected.size(1), scale);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grad) {
    const auto saved = ctx->get_saved_variables();
    const c10::cuda::CUDAGuard guard(saved[0].device());
    const auto grads = selected_attention_backward(saved[0], saved[1], saved[2], saved[3], saved[4], grad[0].contiguous(),
                                                   ctx->saved_data["scale"].toDouble());
    return {grads.dq, grads.dk, grads.dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Without a gradient to track, the autograd kernels go straight to the CUDA ones: no Function node, no
// saved tensors, no detach (the host time of a decode step is comparable to its kernels). An input with a
// forward-mode tangent still takes the Function, whose missing jvp then says so instead of dropping it.
bool needs_grad(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const auto tangent = [](const torch::Tensor& x) { return x._fw_grad(/*level=*/0).defined(); };
  return (torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) || tangent(q) ||
         tangent(k) || tangent(v);
}

// The CUDA kernels of the ops run under at::AutoDispatchBelowADInplaceOrView, as generated
// VariableType kernels do: the views, flattens and allocations inside them skip the autograd and view-tracking
// dispatch keys (about 1-2 us each). Their outputs are fresh tensors, so nothing aliases what the caller holds;
// autograd, where it is needed, wraps them one level up (SelectedAttention). A 64K-key decode step is bound
// by its host time from Python (docs/results/attention.md).
struct Inputs {
  torch::Tensor q, k, v;
};

Inputs dense_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) { return {dense(q), dense(k), dense(v)}; }

// ---- signature_attention ----

struct SignatureArgs {
  int64_t bits, sinks, window, top_k;
  double top_fraction;
  bool causal;
};

Selection select_signature_keys_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& q_signatures,
                                     const torch::Tensor& k_signatures, const SignatureArgs& a) {
  constexpr const char* op = "signature_attention";
  const int64_t n_k = k.size(1);
  const auto qs = q_signatures.contiguous(), ks = dense(k_signatures);  // the scan reads key pairs in 16 bytes
  hc::SignatureSelectParams p;
  p.key_signatures = words_of(ks), p.query_signatures = words_of(qs);
  p.heads_q = static_cast<int>(q.size(0)), p.heads_kv = static_cast<int>(k.size(0));
  p.n_q = static_cast<int>(q.size(1)), p.n_keys = static_cast<int>(n_k), p.bits = static_cast<int>(a.bits);
  // No row sees more than n_k keys, so larger counts mean the same selection and keep sizes in int.
  p.sinks = static_cast<int>(std::min(a.sinks, n_k)), p.window = static_cast<int>(std::min(a.window, n_k));
  p.top_k = static_cast<int>(std::min(a.top_k, n_k));
  p.top_fraction = a.top_fraction;
  p.causal = a.causal;
  return select_signature_rows(op, p);
}

void check_signature_args(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& q_signatures,
                          const torch::Tensor& k_signatures, const SignatureArgs& a) {
  constexpr const char* op = "signature_attention";
  check_cuda_qkv(op, q, k, v);
  TORCH_CHECK(a.bits >= 1 && a.bits <= 128, op, ": bits must be in [1, 128] on CUDA, got ", a.bits);
  TORCH_CHECK(a.sinks >= 0 && a.window >= 0 && a.top_k >= 0 && a.top_fraction >= 0 && a.top_fraction <= 1, op,
              ": sinks, window, top_k must be >= 0 and top_fraction in [0, 1]");
  TORCH_CHECK(!a.causal || q.size(1) <= k.size(1), op, ": causal needs n_q <= n_k");
  const int64_t words = attn::signature_words(static_cast<int>(a.bits));
  check_cuda_signatures(op, q_signatures, "q_signatures", q, q.size(0), q.size(1), words);
  check_cuda_signatures(op, k_signatures, "k_signatures", q, k.size(0), k.size(1), words);
}

torch::Tensor signature_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& q_signatures, const torch::Tensor& k_signatures, int64_t bits,
                                       int64_t sinks, int64_t window, int64_t top_k, double top_fraction, bool causal,
                                       double scale) {
  const at::AutoDispatchBelowADInplaceOrView below;  // cheap nested views and allocations (note above Inputs)
  if (q.dim() == 4) {
    constexpr const char* op = "signature_attention";
    const int64_t b = q.size(0);
    return unfold_batch(signature_attention_cuda(q.flatten(0, 1), fold_batch(op, k, "k", 4, b), fold_batch(op, v, "v", 4, b),
                        fold_batch(op, q_signatures, "q_signatures", 4, b), fold_batch(op, k_signatures, "k_signatures", 4, b),
                        bits, sinks, window, top_k, top_fraction, causal, scale), b);
  }
  const SignatureArgs a{bits, sinks, window, top_k, top_fraction, causal};
  check_signature_args(q, k, v, q_signatures, k_signatures, a);
  const c10::cuda::CUDAGuard guard(q.device());
  const Inputs in = dense_inputs(q, k, v);
  const Selection s = select_signature_keys_cuda(in.q, in.k, q_signatures, k_signatures, a);
  return decode_selected("signature_attention", in.q, in.k, in.v, s, scale);
}

torch::Tensor signature_attention_autograd_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                const torch::Tensor& q_signatures, const torch::Tensor& k_signatures,
                                                int64_t bits, int64_t sinks, int64_t window, int64_t top_k,
                                                double top_fraction, bool causal, double scale) {
  if (!needs_grad(q, k, v)) {
    return signature_attention_cuda(q, k, v, q_signatures, k_signatures, bits, sinks, window, top_k, top_fraction, causal, scale);
  }
  if (q.dim() == 4) {
    constexpr const char* op = "signature_attention";
    const int64_t b = q.size(0);
    return unfold_batch(signature_attention_autograd_cuda(q.flatten(0, 1), fold_batch(op, k, "k", 4, b), fold_batch(op, v, "v", 4, b),
                        fold_batch(op, q_signatures, "q_signatures", 4, b), fold_batch(op, k_signatures, "k_signatures", 4, b),
                        bits, sinks, window, top_k, top_fraction, causal, scale), b);
  }
  const SignatureArgs a{bits, sinks, window, top_k, top_fraction, causal};
  check_signature_args(q, k, v, q_signatures, k_signatures, a);
  const c10::cuda::CUDAGuard guard(q.device());
  Selection s;
  {
    const torch::NoGradGuard no_grad;  // the selection is a constant of the inputs
    s = select_signature_keys_cuda(dense(q.detach()), k.detach(), q_signatures, k_signatures, a);
  }
  // q, k, v go in as they are so autograd tracks them; the forward makes them dense under no-grad.
  return SelectedAttention::apply(dense(q), dense(k), dense(v), s.selected_tensor(), s.counts_tensor(), scale,
                                 std::string("signature_attention"));
}

// ---- index_attention ----

struct IndexArgs {
  int64_t bits, tables, bits_per_table, seed;
  bool causal;
};

// Sampled bit positions of an LSH index, on the device, computed and uploaded once per configuration.
torch::Tensor cached_sampled_bits(const attn::IndexConfig& config, const torch::Device& device) {
  static std::mutex mutex;
  // Never destroyed: device tensors must not be freed during static destruction, after CUDA may be gone.
  static auto& cache = *new std::map<std::tuple<int, int, int, int, std::uint64_t>, torch::Tensor>();
  const auto key = std::make_tuple(static_cast<int>(device.index()), config.bits, config.tables, config.bits_per_table, config.seed);
  const std::lock_guard<std::mutex> lock(mutex);
  if (auto found = cache.find(key); found != cache.end()) return found->second;
  std::vector<int> flat;
  for (const auto& table : attn::sampled_bit_positions(config)) flat.insert(flat.end(), table.begin(), table.end());
  auto host = torch::tensor(flat, torch::TensorOptions().dtype(torch::kInt32));
  if (cache.size() >= 64) cache.clear();  // configurations are few in practice; bound the cache anyway
  return cache[key] = host.to(device);
}

Selection index_candidates_cuda(const torch::Tensor& k_signatures, const torch::Tensor& q_signatures, int64_t heads_q,
                                int64_t n_q, const IndexArgs& a) {
  constexpr const char* op = "index_attention";
  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto device = k_signatures.device();
  const int64_t heads_kv = k_signatures.size(0), n_k = k_signatures.size(1), rows = heads_q * n_q;
  attn::IndexConfig config;
  config.bits = static_cast<int>(a.bits), config.tables = static_cast<int>(a.tables);
  config.bits_per_table = static_cast<int>(a.bits_per_table), config.seed = static_cast<std::uint64_t>(a.seed);
  // The CPU index's own checks (bits, tables, bits_per_table), so both devices refuse the same configurations.
  try {
    attn::SignatureIndex check(config);
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, op, ": ", e.what());
  }
  const auto sampled = attn::sampled_bit_positions(config);
  hc::DeviceIndexLayout layout;
  launch(op, [&] { layout = hc::index_layout(static_cast<int>(heads_kv), config.bits, static_cast<int>(n_k), sampled); });
  const torch::Tensor sampled_bits = config.tables > 0 ? cached_sampled_bits(config, device) : torch::Tensor();
  const auto memory = workspace(static_cast<int64_t>(hc::index_bytes(layout)));
  const auto ks = k_signatures.contiguous(), qs = q_signatures.contiguous();
  // Every key of a head may share the query's code, so lists hold n_k entries: the bound needs no sync.
  Selection s(rows, n_k);
  launch(op, [&] {
    const hc::DeviceIndex index =
        hc::make_index(layout, memory.get(), sampled_bits.defined() ? sampled_bits.data_ptr<int>() : nullptr, stream);
    hc::index_insert(index, words_of(ks), static_cast<int>(n_k), 0, static_cast<int>(n_k), stream);
    hc::IndexLookupParams p;
    p.key_signatures = words_of(ks), p.key_stride = static_cast<int>(n_k);
    p.query_signatures = words_of(qs), p.heads_q = static_cast<int>(heads_q), p.n_q = static_cast<int>(n_q);
    p.n_keys = static_cast<int>(n_k), p.causal = a.causal, p.max_candidates = static_cast<int>(n_k);
    p.candidates = s.lists(), p.counts = s.counts();
    hc::index_lookup(index, p, stream);
  });
  return s;
}

void check_index_args(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& q_signatures,
                      const torch::Tensor& k_signatures, const IndexArgs& a) {
  constexpr const char* op = "index_attention";
  check_cuda_qkv(op, q, k, v);
  TORCH_CHECK(!a.causal || q.size(1) <= k.size(1), op, ": causal needs n_q <= n_k");
  TORCH_CHECK(k.size(1) <= (int64_t{1} << 29), op, ": k: the CUDA index holds at most 2^29 keys per head, got ", k.size(1));
  check_cuda_signatures(op, q_signatures, "q_signatures", q, q.size(0), q.size(1), 0);
  check_cuda_signatures(op, k_signatures, "k_signatures", q, k.size(0), k.size(1), 0);
}

torch::Tensor index_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   const torch::Tensor& q_signatures, const torch::Tensor& k_signatures, int64_t bits,
                                   int64_t tables, int64_t bits_per_table, int64_t seed, bool causal, double scale) {
  const at::AutoDispatchBelowADInplaceOrView below;  // cheap nested views and allocations (note above Inputs)
  if (q.dim() == 4) {
    constexpr const char* op = "index_attention";
    const int64_t b = q.size(0);
    return unfold_batch(index_attention_cuda(q.flatten(0, 1), fold_batch(op, k, "k", 4, b), fold_batch(op, v, "v", 4, b),
                        fold_batch(op, q_signatures, "q_signatures", 3, b), fold_batch(op, k_signatures, "k_signatures", 3, b),
                        bits, tables, bits_per_table, seed, causal, scale), b);
  }
  const IndexArgs a{bits, tables, bits_per_table, seed, causal};
  check_index_args(q, k, v, q_signatures, k_signatures, a);
  const c10::cuda::CUDAGuard guard(q.device());
  const Inputs in = dense_inputs(q, k, v);
  const Selection s = index_candidates_cuda(k_signatures, q_signatures, q.size(0), q.size(1), a);
  return decode_selected("index_attention", in.q, in.k, in.v, s, scale);
}

torch::Tensor index_attention_autograd_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const torch::Tensor& q_signatures, const torch::Tensor& k_signatures, int64_t bits,
                                            int64_t tables, int64_t bits_per_table, int64_t seed, bool causal, double scale) {
  if (!needs_grad(q, k, v)) {
    return index_attention_cuda(q, k, v, q_signatures, k_signatures, bits, tables, bits_per_table, seed, causal, scale);
  }
  if (q.dim() == 4) {
    constexpr const char* op = "index_attention";
    const int64_t b = q.size(0);
    return unfold_batch(index_attention_autograd_cuda(q.flatten(0, 1), fold_batch(op, k, "k", 4, b), fold_batch(op, v, "v", 4, b),
                        fold_batch(op, q_signatures, "q_signatures", 3, b), fold_batch(op, k_signatures, "k_signatures", 3, b),
                        bits, tables, bits_per_table, seed, causal, scale), b);
  }
  const IndexArgs a{bits, tables, bits_per_table, seed, causal};
  check_index_args(q, k, v, q_signatures, k_signatures, a);
  const c10::cuda::CUDAGuard guard(q.device());
  Selection s;
  {
    const torch::NoGradGuard no_grad;
    s = index_candidates_cuda(k_signatures, q_signatures, q.size(0), q.size(1), a);
  }
  return SelectedAttention::apply(dense(q), dense(k), dense(v), s.selected_tensor(), s.counts_tensor(), scale,
                                 std::string("index_attention"));
}

// ---- bucket_attention ----

struct BucketArgs {
  int64_t bucket_bits, rounds;
  std::string bucket_fn;
  int64_t seed;
  bool causal;
};

void check_bucket_args(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const BucketArgs& a) {
  constexpr const char* op = "bucket_attention";
  check_cuda_qkv(op, q, k, v);
  TORCH_CHECK(a.bucket_fn == "lsh" || a.bucket_fn == "lsh_sha256" || a.bucket_fn == "quantized_sha256", op,
              ": bucket_fn must be lsh, lsh_sha256 or quantized_sha256, got '", a.bucket_fn, "'");
  TORCH_CHECK(a.bucket_fn == "lsh", op, ": bucket_fn '", a.bucket_fn,
              "' hashes with SHA-256 on the host and runs on CPU tensors only; on CUDA use bucket_fn='lsh'");
  TORCH_CHECK(a.bucket_bits >= 0 && a.bucket_bits <= 24, op, ": bucket_bits must be in [0, 24] on CUDA, got ", a.bucket_bits);
  TORCH_CHECK(a.rounds >= 1 && a.rounds <= 8, op, ": rounds must be in [1, 8] on CUDA, got ", a.rounds);
  TORCH_CHECK(!a.causal || q.size(1) <= k.size(1), op, ": causal needs n_q <= n_k");
}

// Reformer's rotation of one round, float64 on the device, from attn::bucket_projection (uploaded once).
torch::Tensor cached_projection(const attn::BucketConfig& config, int dim, int round, const torch::Device& device) {
  static std::mutex mutex;
  // Never destroyed: device tensors must not be freed during static destruction, after CUDA may be gone.
  static auto& cache = *new std::map<std::tuple<int, int, int, int, std::uint64_t>, torch::Tensor>();
  const auto key = std::make_tuple(static_cast<int>(device.index()), dim, config.bucket_bits, round, config.seed);
  const std::lock_guard<std::mutex> lock(mutex);
  if (auto found = cache.find(key); found != cache.end()) return found->second;
  const int columns = attn::bucket_projection_columns(config);
  auto host = torch::tensor(attn::bucket_projection(dim, config, round), torch::TensorOptions().dtype(torch::kFloat64));
  if (cache.size() >= 256) cache.clear();
  return cache[key] = host.view({dim, columns}).to(device);
}

// Bucket ids [rounds, heads, n] (int32 holding the kernels' uint32) of x [heads, n, dim]: the projection is
// float64, as in the CPU reference, so ids agree with it except at float64 near-ties. Rows go in chunks so
// the float64 copies stay within kWorkspaceBudget however long the cache.
torch::Tensor lsh_buckets(const torch::Tensor& x, const attn::BucketConfig& config) {
  const int64_t heads = x.size(0), n = x.size(1), dim = x.size(2), total = heads * n;
  auto ids = torch::zeros({config.rounds, heads, n}, x.options().dtype(torch::kInt32));
  if (config.bucket_bits == 0) return ids;  // one bucket: the reference gives every row bucket 0
  const auto rows = x.detach().reshape({total, dim});
  const int columns = attn::bucket_projection_columns(config);
  const int64_t chunk = std::clamp<int64_t>(kWorkspaceBudget / (8 * (dim + columns)), 1, total);
  const auto stream = at::cuda::getCurrentCUDAStream();
  for (int r = 0; r < config.rounds; ++r) {
    const auto rotation = cached_projection(config, static_cast<int>(dim), r, x.device());
    auto* round_ids = reinterpret_cast<std::uint32_t*>(ids[r].data_ptr<int>());
    for (int64_t first = 0; first < total; first += chunk) {
      const int64_t count = std::min(chunk, total - first);
      const auto projected = torch::matmul(rows.narrow(0, first, count).to(torch::kFloat64), rotation).contiguous();
      hc::lsh_bucket_ids(projected.data_ptr<double>(), static_cast<int>(count), columns, round_ids + first, stream);
    }
  }
  return ids;
}

torch::Tensor bucket_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& q_buckets,
                            const torch::Tensor& k_buckets, const BucketArgs& a, double scale) {
  constexpr const char* op = "bucket_attention";
  hc::BucketAttentionParams p;
  p.q = q.data_ptr(), p.k = k.data_ptr(), p.v = v.data_ptr();
  p.q_buckets = reinterpret_cast<const std::uint32_t*>(q_buckets.data_ptr<int>());
  p.k_buckets = reinterpret_cast<const std::uint32_t*>(k_buckets.data_ptr<int>());
  p.heads_q = static_cast<int>(q.size(0)), p.heads_kv = static_cast<int>(k.size(0));
  p.n_q = static_cast<int>(q.size(1)), p.n_k = static_cast<int>(k.size(1)), p.dim = static_cast<int>(q.size(2));
  p.bucket_bits = static_cast<int>(a.bucket_bits), p.rounds = static_cast<int>(a.rounds);
  p.causal = a.causal, p.scale = static_cast<float>(scale);
  p.element = element_of(op, q, "q");
  auto out = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
  p.out = out.data_ptr<float>();
  std::size_t bytes = 0;
  launch(op, [&] { bytes = hc::bucket_workspace_bytes(p); });
  const auto ws = workspace(static_cast<int64_t>(bytes));
  p.workspace = ws.get();
  launch(op, [&] { hc::bucket_attention(p, at::cuda::getCurrentCUDAStream()); });
  return out.to(q.scalar_type());
}

// Mixed heads (dense_heads > 0): the first heads_q - dense_heads query heads through `hashed` (the bucket path),
// the last dense_heads through PyTorch's SDPA, which picks its kernel (cuDNN or flash without a mask; with the
// explicit mask below, n_q < n_k, the memory-efficient or math kernel), joined on the head dim. Whole kv groups
// (check_dense_heads), so each part keeps its own kv heads. Called at the autograd level too, where SDPA's own
// backward serves the dense heads.
using HeadsFn = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;
torch::Tensor mixed_heads(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t dense_heads, bool causal,
                          double scale, const HeadsFn& hashed) {
  const int64_t group = q.size(0) / k.size(0), hashed_q = q.size(0) - dense_heads, hashed_kv = hashed_q / group;
  const auto dense_part = [&](const torch::Tensor& x, int64_t first) { return x.narrow(0, first, x.size(0) - first).unsqueeze(0); };
  // Causal here means query i sees keys up to n_k - n_q + i (bottom-right); SDPA's is_causal is top-left, the same
  // only when n_q == n_k. Otherwise an explicit mask (check_bucket_args: n_q <= n_k, so every query sees a key).
  const bool square = q.size(1) == k.size(1);
  std::optional<torch::Tensor> mask;
  if (causal && !square) mask = causal_visible(1, q.size(1), k.size(1), true, q.device());
  const auto dense_out = at::scaled_dot_product_attention(dense_part(q, hashed_q), dense_part(k, hashed_kv), dense_part(v, hashed_kv),
                                                          mask, 0.0, causal && square, scale, group > 1)
                             .squeeze(0);
  if (hashed_q == 0) return dense_out;
  return torch::cat({hashed(q.narrow(0, 0, hashed_q), k.narrow(0, 0, hashed_kv), v.narrow(0, 0, hashed_kv)), dense_out}, 0);
}

attn::BucketConfig bucket_config(const BucketArgs& a) {
  attn::BucketConfig config;
  config.bucket_bits = static_cast<int>(a.bucket_bits);
  config.rounds = static_cast<int>(a.rounds);
  config.function = attn::BucketFunction::lsh;
  config.seed = static_cast<std::uint64_t>(a.seed);
  return config;
}

// Forward by the kernel; backward recomputes a dense masked attention on the device from the same bucket
// ids (O(heads_q * n_q * n_k) memory: a first version, see docs/attention.md).
class BucketAttention : public torch::autograd::Function<BucketAttention> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& q_buckets, const torch::Tensor& k_buckets, int64_t bucket_bits,
                               int64_t rounds, bool causal, double scale) {
    ctx->save_for_backward({q, k, v, q_buckets, k_buckets});
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    const BucketArgs a{bucket_bits, rounds, "lsh", 0, causal};
    return bucket_kernel(q, k, v, q_buckets, k_buckets, a, scale);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grad) {
    const auto saved = ctx->get_saved_variables();
    const c10::cuda::CUDAGuard guard(saved[0].device());
    const auto visible = bucket_visible(saved[3], saved[4], ctx->saved_data["causal"].toBool());
    const auto grads = masked_attention_backward(saved[0], saved[1], saved[2], visible, grad[0].contiguous(),
                                                 ctx->saved_data["scale"].toDouble());
    return {grads.dq, grads.dk, grads.dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

torch::Tensor bucket_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t bucket_bits,
                                    int64_t rounds, const std::string& bucket_fn, int64_t seed, bool causal, double scale,
                                    int64_t dense_heads) {
  if (q.dim() == 4) {
    constexpr const char* op = "bucket_attention";
    const int64_t b = q.size(0);
    const auto kf = fold_batch(op, k, "k", 4, b), vf = fold_batch(op, v, "v", 4, b);
    if (dense_heads == 0) return unfold_batch(bucket_attention_cuda(q.flatten(0, 1), kf, vf, bucket_bits, rounds, bucket_fn, seed, causal, scale, 0), b);
    // Mixed heads count within one sequence's heads (flattened, they would be the last sequence's).
    return unfold_batch(per_sequence(b, q, kf, vf, [&](const torch::Tensor& qs, const torch::Tensor& ks, const torch::Tensor& vs) {
                          return bucket_attention_cuda(qs, ks, vs, bucket_bits, rounds, bucket_fn, seed, causal, scale, dense_heads);
                        }), b);
  }
  const BucketArgs a{bucket_bits, rounds, bucket_fn, seed, causal};
  check_bucket_args(q, k, v, a);
  check_dense_heads("bucket_attention", q, k, dense_heads);
  const c10::cuda::CUDAGuard guard(q.device());
  if (dense_heads > 0) {
    return mixed_heads(q, k, v, dense_heads, causal, scale, [&](const torch::Tensor& hq, const torch::Tensor& hk, const torch::Tensor& hv) {
      return bucket_attention_cuda(hq, hk, hv, bucket_bits, rounds, bucket_fn, seed, causal, scale, 0);
    });
  }
  const Inputs in = dense_inputs(q, k, v);
  const auto config = bucket_config(a);
  return bucket_kernel(in.q, in.k, in.v, lsh_buckets(in.q, config), lsh_buckets(in.k, config), a, scale);
}

torch::Tensor bucket_attention_autograd_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                             int64_t bucket_bits, int64_t rounds, const std::string& bucket_fn, int64_t seed,
                                             bool causal, double scale, int64_t dense_heads) {
  if (!needs_grad(q, k, v)) return bucket_attention_cuda(q, k, v, bucket_bits, rounds, bucket_fn, seed, causal, scale, dense_heads);
  if (q.dim() == 4) {
    constexpr const char* op = "bucket_attention";
    const int64_t b = q.size(0);
    const auto kf = fold_batch(op, k, "k", 4, b), vf = fold_batch(op, v, "v", 4, b);
    if (dense_heads == 0)
      return unfold_batch(bucket_attention_autograd_cuda(q.flatten(0, 1), kf, vf, bucket_bits, rounds, bucket_fn, seed, causal, scale, 0), b);
    return unfold_batch(per_sequence(b, q, kf, vf, [&](const torch::Tensor& qs, const torch::Tensor& ks, const torch::Tensor& vs) {
                          return bucket_attention_autograd_cuda(qs, ks, vs, bucket_bits, rounds, bucket_fn, seed, causal, scale, dense_heads);
                        }), b);
  }
  const BucketArgs a{bucket_bits, rounds, bucket_fn, seed, causal};
  check_bucket_args(q, k, v, a);
  check_dense_heads("bucket_attention", q, k, dense_heads);
  const c10::cuda::CUDAGuard guard(q.device());
  if (dense_heads > 0) {
    return mixed_heads(q, k, v, dense_heads, causal, scale, [&](const torch::Tensor& hq, const torch::Tensor& hk, const torch::Tensor& hv) {
      return bucket_attention_autograd_cuda(hq, hk, hv, bucket_bits, rounds, bucket_fn, seed, causal, scale, 0);
    });
  }
  const auto config = bucket_config(a);
  torch::Tensor q_buckets, k_buckets;
  {
    const torch::NoGradGuard no_grad;  // buckets are constants of the inputs, as on the CPU
    q_buckets = lsh_buckets(q, config);
    k_buckets = lsh_buckets(k, config);
  }
  return BucketAttention::apply(dense(q), dense(k), dense(v), q_buckets, k_buckets, bucket_bits, rounds, causal, scale);
}

}  // namespace
}  // namespace hashhop::ops

// CUDA: the kernels (also what runs under torch.inference_mode, which skips autograd). AutogradCUDA: the
// same kernels inside autograd Functions, or the CUDA kernels directly when no input needs a gradient.
// CPU tensors keep the CompositeImplicitAutograd references of attention_ops.cpp: a direct CUDA kernel
// only displaces them on CUDA.
TORCH_LIBRARY_IMPL(hashhop, CUDA, m) {
  m.impl("pack_signatures", &hashhop::ops::pack_signatures_cuda);
  m.impl("signature_attention", &hashhop::ops::signature_attention_cuda);
  m.impl("index_attention", &hashhop::ops::index_attention_cuda);
  m.impl("bucket_attention", &hashhop::ops::bucket_attention_cuda);
}

TORCH_LIBRARY_IMPL(hashhop, AutogradCUDA, m) {
  m.impl("signature_attention", &hashhop::ops::signature_attention_autograd_cuda);
  m.impl("index_attention", &hashhop::ops::index_attention_autograd_cuda);
  m.impl("bucket_attention", &hashhop::ops::bucket_attention_autograd_cuda);
}
