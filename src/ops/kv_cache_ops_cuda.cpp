// CUDA dispatch of torch.ops.hashhop.kv_cache_append / signature_decode: the fused append kernel
// (src/attn/cuda/kv_cache.cu) and select_keys with per-sequence lengths + sparse_decode, on the current stream.
// No host round trip and no sync: lengths stay on the device. Tested by tests/python/test_kv_cache_cuda.py.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <utility>

#include "hashhop/attn/cuda/kv_cache_cuda.h"
#include "hashhop/attn/cuda/signature_select_cuda.h"
#include "hashhop/attn/cuda/sparse_decode_cuda.h"
#include "hashhop/ops/kv_cache_ops.h"
#include "ops_cuda_support.h"

namespace hashhop::ops {
namespace {

using namespace cuda_support;  // NOLINT: the shared helpers read as local ones

void check_cuda_cache(const char* op, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                      const torch::Tensor& signature_cache) {
  TORCH_CHECK(k_cache.is_cuda(), op, ": k_cache must be a CUDA tensor here, got ", k_cache.device());
  element_of(op, k_cache, "k_cache");
  // The kernels read K, V and pairs of signatures 16 bytes at a time; they are written in place, so no copy.
  for (const auto& [t, name] : {std::pair{&k_cache, "k_cache"}, std::pair{&v_cache, "v_cache"},
                                std::pair{&signature_cache, "signature_cache"}}) {
    TORCH_CHECK(reinterpret_cast<std::uintptr_t>(t->data_ptr()) % 16 == 0, op, ": ", name, " must be 16-byte aligned");
  }
}

torch::Tensor kv_cache_append_cuda(torch::Tensor& k_cache, torch::Tensor& v_cache, torch::Tensor& signature_cache,
                                   torch::Tensor& lengths, const torch::Tensor& k, const torch::Tensor& v,
                                   const torch::Tensor& k_logits) {
  constexpr const char* op = "kv_cache_append";
  const CacheShape c = check_cache(op, k_cache, v_cache, signature_cache, lengths);
  check_append_args(c, k_cache, k, v, k_logits);
  check_cuda_cache(op, k_cache, v_cache, signature_cache);
  TORCH_CHECK(c.batch <= 65535 && c.heads_kv <= 65535, op, ": k_cache: batch and heads_kv must be at most 65535 on CUDA");
  TORCH_CHECK(k.size(2) < (int64_t{1} << 31), op, ": k: t must fit in int32 on CUDA");
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const auto kc = k.contiguous(), vc = v.contiguous(), lc = k_logits.detach().contiguous();
  auto dropped = torch::empty({c.batch}, lengths.options());
  attn::cuda::KvAppendParams p;
  p.k_new = kc.data_ptr(), p.v_new = vc.data_ptr(), p.logits = lc.data_ptr();
  p.k_cache = k_cache.data_ptr(), p.v_cache = v_cache.data_ptr();
  p.signatures = reinterpret_cast<std::uint64_t*>(signature_cache.data_ptr<int64_t>());
  p.lengths = lengths.data_ptr<int>(), p.dropped = dropped.data_ptr<int>();
  p.batch = static_cast<int>(c.batch), p.heads_kv = static_cast<int>(c.heads_kv), p.t = static_cast<int>(k.size(2));
  p.dim = static_cast<int>(c.dim), p.bits = static_cast<int>(lc.size(3)), p.capacity = static_cast<int>(c.capacity);
  p.element = element_of(op, k_cache, "k_cache");
  p.logits_element = element_of(op, lc, "k_logits");
  launch(op, [&] { attn::cuda::kv_cache_append(p, at::cuda::getCurrentCUDAStream()); });
  return dropped;
}

torch::Tensor signature_decode_cuda(const torch::Tensor& q, const torch::Tensor& q_signatures, const torch::Tensor& k_cache,
                                    const torch::Tensor& v_cache, const torch::Tensor& signature_cache,
                                    const torch::Tensor& lengths, int64_t bits, int64_t sinks, int64_t window,
                                    int64_t top_k, double top_fraction, double scale) {
  constexpr const char* op = "signature_decode";
  const at::AutoDispatchBelowADInplaceOrView below;  // as the attention ops (note above Inputs in attention_ops_cuda.cpp)
  const CacheShape c = check_cache(op, k_cache, v_cache, signature_cache, lengths);
  check_decode_args(c, k_cache, q, q_signatures, bits, sinks, window, top_k, top_fraction);
  check_cuda_cache(op, k_cache, v_cache, signature_cache);
  TORCH_CHECK(c.batch * q.size(1) < (int64_t{1} << 31), op, ": q: batch * heads_q must fit in int32 on CUDA");
  TORCH_CHECK(bits <= 128, op, ": bits must be in [1, 128] on CUDA, got ", bits);
  TORCH_CHECK(c.dim == 64 || c.dim == 128, op, ": the CUDA kernels support head dim 64 or 128, got ", c.dim);
  const c10::cuda::CUDAGuard guard(q.device());
  // Sequences fold into heads: row b * heads_q + h reads kv head b * heads_kv + h / (heads_q / heads_kv).
  const int64_t heads_q = q.size(1), rows = c.batch * heads_q;
  const auto qf = dense(q).view({rows, 1, c.dim});
  const auto qs = q_signatures.contiguous();
  attn::cuda::SignatureSelectParams p;
  p.key_signatures = words_of(signature_cache), p.query_signatures = words_of(qs);
  p.heads_q = static_cast<int>(rows), p.heads_kv = static_cast<int>(c.batch * c.heads_kv);
  p.n_q = 1, p.n_keys = static_cast<int>(c.capacity), p.bits = static_cast<int>(bits);
  p.sinks = static_cast<int>(std::min(sinks, c.capacity)), p.window = static_cast<int>(std::min(window, c.capacity));
  p.top_k = static_cast<int>(std::min(top_k, c.capacity));
  p.top_fraction = top_fraction;
  p.lengths = lengths.data_ptr<int>(), p.rows_per_length = static_cast<int>(heads_q);
  const Selection s = select_signature_rows(op, p);
  const auto keys = k_cache.view({c.batch * c.heads_kv, c.capacity, c.dim});
  const auto values = v_cache.view({c.batch * c.heads_kv, c.capacity, c.dim});
  return decode_selected(op, qf, keys, values, s, scale).view({c.batch, heads_q, c.dim});
}

}  // namespace
}  // namespace hashhop::ops

TORCH_LIBRARY_IMPL(hashhop, CUDA, m) {
  m.impl("kv_cache_append", &hashhop::ops::kv_cache_append_cuda);
  m.impl("signature_decode", &hashhop::ops::signature_decode_cuda);
}
