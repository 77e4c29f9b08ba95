// torch.ops.hashhop.kv_cache_append / signature_decode: schemas, argument checks and the CPU implementation
// (per-sequence slices through signature_attention's float64 selection). CUDA: kv_cache_ops_cuda.cpp.
#include "hashhop/ops/kv_cache_ops.h"

#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "hashhop/attn/signature_attention.h"
#include "hashhop/ops/attention_ops.h"

namespace hashhop::ops {

CacheShape check_cache(const char* op, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                       const torch::Tensor& signature_cache, const torch::Tensor& lengths) {
  TORCH_CHECK(k_cache.dim() == 4, op, ": k_cache must be [batch, heads_kv, capacity, dim], got ", k_cache.sizes());
  TORCH_CHECK(k_cache.is_floating_point(), op, ": k_cache must be floating point, got ", k_cache.scalar_type());
  TORCH_CHECK(v_cache.sizes() == k_cache.sizes(), op, ": v_cache must have k_cache's shape ", k_cache.sizes(), ", got ",
              v_cache.sizes());
  TORCH_CHECK(v_cache.scalar_type() == k_cache.scalar_type(), op, ": v_cache must have k_cache's dtype (",
              k_cache.scalar_type(), "), got ", v_cache.scalar_type());
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous() && signature_cache.is_contiguous(), op,
              ": k_cache, v_cache and signature_cache must be contiguous (they are written in place)");
  CacheShape c{k_cache.size(0), k_cache.size(1), k_cache.size(2), k_cache.size(3), 0};
  TORCH_CHECK(c.batch > 0 && c.heads_kv > 0 && c.capacity > 0 && c.dim > 0, op, ": k_cache: sizes must be positive, got ",
              k_cache.sizes());
  TORCH_CHECK(signature_cache.dim() == 4 && signature_cache.size(0) == c.batch && signature_cache.size(1) == c.heads_kv &&
                  signature_cache.size(2) == c.capacity && signature_cache.size(3) > 0,
              op, ": signature_cache must be [", c.batch, ", ", c.heads_kv, ", ", c.capacity, ", words], got ",
              signature_cache.sizes());
  TORCH_CHECK(signature_cache.scalar_type() == torch::kInt64, op, ": signature_cache must be int64 (packed words), got ",
              signature_cache.scalar_type());
  c.words = signature_cache.size(3);
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == c.batch, op, ": lengths must be [", c.batch, "], got ",
              lengths.sizes());
  TORCH_CHECK(lengths.scalar_type() == torch::kInt32, op, ": lengths must be int32, got ", lengths.scalar_type());
  // Written in place, element b at offset b: a strided view would be read and written in the wrong places.
  TORCH_CHECK(lengths.is_contiguous(), op, ": lengths must be contiguous (it is updated in place)");
  TORCH_CHECK(c.capacity < (int64_t{1} << 31), op, ": k_cache: capacity must fit in int32 (lengths are int32), got ",
              c.capacity);
  for (const auto* t : {&v_cache, &signature_cache, &lengths}) {
    TORCH_CHECK(t->device() == k_cache.device(), op, ": every cache tensor must be on k_cache's device (", k_cache.device(),
                "), got ", t->device());
  }
  return c;
}

void check_append_args(const CacheShape& c, const torch::Tensor& k_cache, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& k_logits) {
  constexpr const char* op = "kv_cache_append";
  TORCH_CHECK(k.dim() == 4 && k.size(0) == c.batch && k.size(1) == c.heads_kv && k.size(3) == c.dim, op, ": k must be [",
              c.batch, ", ", c.heads_kv, ", t, ", c.dim, "], got ", k.sizes());
  TORCH_CHECK(v.sizes() == k.sizes(), op, ": v must have k's shape ", k.sizes(), ", got ", v.sizes());
  TORCH_CHECK(k.scalar_type() == k_cache.scalar_type() && v.scalar_type() == k_cache.scalar_type(), op,
              ": k and v must have the cache's dtype (", k_cache.scalar_type(), "), got ", k.scalar_type(), " and ",
              v.scalar_type());
  TORCH_CHECK(k_logits.dim() == 4 && k_logits.size(0) == c.batch && k_logits.size(1) == c.heads_kv &&
                  k_logits.size(2) == k.size(2) && k_logits.size(3) > 0,
              op, ": k_logits must be [", c.batch, ", ", c.heads_kv, ", ", k.size(2), ", bits], got ", k_logits.sizes());
  TORCH_CHECK(k_logits.is_floating_point(), op, ": k_logits must be floating point, got ", k_logits.scalar_type());
  TORCH_CHECK((k_logits.size(3) + 63) / 64 == c.words, op, ": k_logits: ", k_logits.size(3), " bits need ",
              (k_logits.size(3) + 63) / 64, " words, but signature_cache holds ", c.words);
  for (const auto* t : {&k, &v, &k_logits}) {
    TORCH_CHECK(t->device() == k_cache.device(), op, ": k, v and k_logits must be on the cache's device (",
                k_cache.device(), "), got ", t->device());
  }
}

void check_decode_args(const CacheShape& c, const torch::Tensor& k_cache, const torch::Tensor& q,
                       const torch::Tensor& q_signatures, int64_t bits, int64_t sinks, int64_t window, int64_t top_k,
                       double top_fraction) {
  constexpr const char* op = "signature_decode";
  TORCH_CHECK(q.dim() == 3 && q.size(0) == c.batch && q.size(2) == c.dim, op, ": q must be [", c.batch, ", heads_q, ",
              c.dim, "], got ", q.sizes());
  TORCH_CHECK(q.size(1) > 0 && q.size(1) % c.heads_kv == 0, op, ": heads_q (", q.size(1),
              ") must be a positive multiple of heads_kv (", c.heads_kv, ")");
  TORCH_CHECK(q.scalar_type() == k_cache.scalar_type(), op, ": q must have the cache's dtype (", k_cache.scalar_type(),
              "), got ", q.scalar_type());
  TORCH_CHECK(q.device() == k_cache.device() && q_signatures.device() == k_cache.device(), op,
              ": q and q_signatures must be on the cache's device (", k_cache.device(), ")");
  TORCH_CHECK(bits >= 1 && (bits + 63) / 64 == c.words, op, ": bits (", bits, ") must need the cache's ", c.words,
              " signature words");
  TORCH_CHECK(q_signatures.dim() == 3 && q_signatures.size(0) == c.batch && q_signatures.size(1) == q.size(1) &&
                  q_signatures.size(2) == c.words,
              op, ": q_signatures must be [", c.batch, ", ", q.size(1), ", ", c.words, "], got ", q_signatures.sizes());
  TORCH_CHECK(q_signatures.scalar_type() == torch::kInt64, op, ": q_signatures must be int64 (packed words), got ",
              q_signatures.scalar_type());
  TORCH_CHECK(sinks >= 0 && window >= 0 && top_k >= 0 && top_fraction >= 0 && top_fraction <= 1, op,
              ": sinks, window, top_k must be >= 0 and top_fraction in [0, 1]");
  TORCH_CHECK(sinks <= INT32_MAX && window <= INT32_MAX && top_k <= INT32_MAX, op,
              ": sinks, window and top_k must fit in int32");
  TORCH_CHECK(sinks > 0 || window > 0 || top_k > 0 || top_fraction > 0, op,
              ": sinks, window, top_k and top_fraction are all 0, so no key would be kept (set top_k)");
}

namespace {

torch::Tensor kv_cache_append_cpu(torch::Tensor& k_cache, torch::Tensor& v_cache, torch::Tensor& signature_cache,
                                  torch::Tensor& lengths, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& k_logits) {
  const CacheShape c = check_cache("kv_cache_append", k_cache, v_cache, signature_cache, lengths);
  check_append_args(c, k_cache, k, v, k_logits);
  const torch::NoGradGuard no_grad;
  const int64_t t = k.size(2), bits = k_logits.size(3);
  auto dropped = torch::zeros({c.batch}, lengths.options());
  auto* length = lengths.data_ptr<int32_t>();
  auto* lost = dropped.data_ptr<int32_t>();
  for (int64_t b = 0; b < c.batch; ++b) {
    const int64_t at = std::clamp<int64_t>(length[b], 0, c.capacity);
    const int64_t fit = std::min(t, c.capacity - at);
    if (fit > 0) {
      k_cache[b].narrow(1, at, fit).copy_(k[b].narrow(1, 0, fit));
      v_cache[b].narrow(1, at, fit).copy_(v[b].narrow(1, 0, fit));
      const auto words = pack_signatures(k_logits[b].narrow(1, 0, fit).reshape({c.heads_kv * fit, bits}));
      signature_cache[b].narrow(1, at, fit).copy_(words.view({c.heads_kv, fit, c.words}));
    }
    lost[b] = static_cast<int32_t>(t - std::max<int64_t>(fit, 0));
    length[b] = static_cast<int32_t>(at + std::max<int64_t>(fit, 0));
  }
  return dropped;
}

torch::Tensor signature_decode_cpu(const torch::Tensor& q, const torch::Tensor& q_signatures, const torch::Tensor& k_cache,
                                   const torch::Tensor& v_cache, const torch::Tensor& signature_cache,
                                   const torch::Tensor& lengths, int64_t bits, int64_t sinks, int64_t window, int64_t top_k,
                                   double top_fraction, double scale) {
  const CacheShape c = check_cache("signature_decode", k_cache, v_cache, signature_cache, lengths);
  check_decode_args(c, k_cache, q, q_signatures, bits, sinks, window, top_k, top_fraction);
  const torch::NoGradGuard no_grad;
  auto out = torch::zeros_like(q);
  const auto* length = lengths.data_ptr<int32_t>();
  for (int64_t b = 0; b < c.batch; ++b) {
    const int64_t n = std::clamp<int64_t>(length[b], 0, c.capacity);
    if (n == 0) continue;  // nothing cached yet: zeros, as a query that sees no key
    out[b].copy_(signature_attention(q[b].unsqueeze(1), k_cache[b].narrow(1, 0, n), v_cache[b].narrow(1, 0, n),
                                     q_signatures[b].unsqueeze(1), signature_cache[b].narrow(1, 0, n), bits, sinks,
                                     window, top_k, top_fraction, false, scale)
                     .squeeze(1));
  }
  return out;
}

}  // namespace

torch::Tensor kv_cache_append(torch::Tensor& k_cache, torch::Tensor& v_cache, torch::Tensor& signature_cache,
                              torch::Tensor& lengths, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& k_logits) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("hashhop::kv_cache_append", "")
                             .typed<decltype(kv_cache_append)>();
  return op.call(k_cache, v_cache, signature_cache, lengths, k, v, k_logits);
}

torch::Tensor signature_decode(const torch::Tensor& q, const torch::Tensor& q_signatures, const torch::Tensor& k_cache,
                               const torch::Tensor& v_cache, const torch::Tensor& signature_cache,
                               const torch::Tensor& lengths, int64_t bits, int64_t sinks, int64_t window, int64_t top_k,
                               double top_fraction, double scale) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("hashhop::signature_decode", "")
                             .typed<decltype(signature_decode)>();
  return op.call(q, q_signatures, k_cache, v_cache, signature_cache, lengths, bits, sinks, window, top_k, top_fraction,
                 scale);
}

}  // namespace hashhop::ops

TORCH_LIBRARY_FRAGMENT(hashhop, m) {
  m.def("kv_cache_append(Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor(c!) signature_cache, Tensor(d!) lengths, "
        "Tensor k, Tensor v, Tensor k_logits) -> Tensor");
  m.def("signature_decode(Tensor q, Tensor q_signatures, Tensor k_cache, Tensor v_cache, Tensor signature_cache, "
        "Tensor lengths, int bits=64, int sinks=0, int window=0, int top_k=0, float top_fraction=0.0, float scale=1.0) -> Tensor");
}

TORCH_LIBRARY_IMPL(hashhop, CPU, m) {
  m.impl("kv_cache_append", &hashhop::ops::kv_cache_append_cpu);
  m.impl("signature_decode", &hashhop::ops::signature_decode_cpu);
}
