// torch.ops.hashhop.* (see attention_ops.h): dense and bucket attention built from differentiable
// LibTorch ops, bucket ids from the float64 CPU reference (so both paths agree on every bucket).
#include "hashhop/ops/attention_ops.h"

#include <torch/library.h>

#include <limits>

#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/signature_attention.h"

namespace hashhop::ops {
namespace {

void check_qkv(const char* op, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, op, ": q, k and v must be [heads, n, dim], got q ",
              q.sizes(), ", k ", k.sizes(), ", v ", v.sizes());
  TORCH_CHECK(q.is_floating_point(), op, ": q must be a floating-point tensor, got ", q.scalar_type());
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), op,
              ": q, k and v must share one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
  TORCH_CHECK(k.device() == q.device() && v.device() == q.device(), op, ": q, k and v must be on one device, got ",
              q.device(), ", ", k.device(), ", ", v.device());
  TORCH_CHECK(k.sizes() == v.sizes(), op, ": k and v must have one shape, got ", k.sizes(), " and ", v.sizes());
  TORCH_CHECK(q.size(2) == k.size(2), op, ": q and k must have one head dim, got ", q.size(2), " and ", k.size(2));
  TORCH_CHECK(q.size(1) > 0 && k.size(1) > 0 && q.size(2) > 0, op, ": sizes must be positive");
  TORCH_CHECK(k.size(0) > 0 && q.size(0) % k.size(0) == 0, op, ": heads_q (", q.size(0),
              ") must be a multiple of heads_kv (", k.size(0), ")");
}

// Softmax attention of every query over the keys `visible` allows ([heads_q, n_q, n_k] bool).
torch::Tensor attend_visible(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& visible, const std::optional<torch::Tensor>& key_bias, double scale) {
  const int64_t group = q.size(0) / k.size(0);  // grouped queries: query head h reads kv head h / group
  const auto kq = group == 1 ? k : k.repeat_interleave(group, 0);
  const auto vq = group == 1 ? v : v.repeat_interleave(group, 0);
  auto scores = torch::matmul(q, kq.transpose(1, 2)) * scale;
  if (key_bias) scores = scores + key_bias->view({1, 1, -1});
  // A row that sees nothing gets zeros (as the references), not the NaN of an all -inf softmax.
  const auto any = visible.any(-1, /*keepdim=*/true);
  scores = scores.masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity());
  scores = torch::where(any, scores, torch::zeros_like(scores));
  const auto weights = torch::softmax(scores, -1) * any.to(scores.scalar_type());
  return torch::matmul(weights, vq);
}

torch::Tensor causal_visible(int64_t heads, int64_t n_q, int64_t n_k, bool causal, const torch::Device& device) {
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device);
  if (!causal) return torch::ones({heads, n_q, n_k}, opts.dtype(torch::kBool));
  const auto last = torch::arange(n_q, opts) + (n_k - n_q);  // inclusive
  return (torch::arange(n_k, opts).view({1, n_k}) <= last.view({n_q, 1})).unsqueeze(0).expand({heads, n_q, n_k});
}

attn::BucketFunction parse_bucket_fn(const std::string& name) {
  if (name == "lsh") return attn::BucketFunction::lsh;
  if (name == "lsh_sha256") return attn::BucketFunction::lsh_sha256;
  if (name == "quantized_sha256") return attn::BucketFunction::quantized_sha256;
  TORCH_CHECK(false, "bucket_attention: bucket_fn must be lsh, lsh_sha256 or quantized_sha256, got '", name, "'");
}

class SignSte : public torch::autograd::Function<SignSte> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return torch::where(x >= 0, torch::ones_like(x), -torch::ones_like(x));
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const auto x = ctx->get_saved_variables()[0];
    return {grad[0] * (x.abs() <= 1).to(grad[0].scalar_type())};
  }
};

}  // namespace

torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const std::optional<torch::Tensor>& key_bias, bool causal, double scale) {
  check_qkv("dense_attention", q, k, v);
  if (key_bias) {
    TORCH_CHECK(key_bias->dim() == 1 && key_bias->size(0) == k.size(1), "dense_attention: key_bias must be [n_k] = [",
                k.size(1), "], got ", key_bias->sizes());
    TORCH_CHECK(key_bias->scalar_type() == q.scalar_type() && key_bias->device() == q.device(),
                "dense_attention: key_bias must match q's dtype and device");
  }
  return attend_visible(q, k, v, causal_visible(q.size(0), q.size(1), k.size(1), causal, q.device()), key_bias, scale);
}

torch::Tensor bucket_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               int64_t bucket_bits, int64_t rounds, const std::string& bucket_fn, int64_t seed,
                               bool causal, double scale) {
  check_qkv("bucket_attention", q, k, v);
  TORCH_CHECK(bucket_bits >= 0 && bucket_bits <= 30, "bucket_attention: bucket_bits must be in [0, 30], got ", bucket_bits);
  TORCH_CHECK(rounds >= 1, "bucket_attention: rounds must be >= 1, got ", rounds);
  attn::BucketConfig config;
  config.bucket_bits = static_cast<int>(bucket_bits);
  config.rounds = static_cast<int>(rounds);
  config.function = parse_bucket_fn(bucket_fn);
  config.seed = static_cast<std::uint64_t>(seed);
  // Buckets come from the float64 reference, so the op and attn::bucket_attention agree exactly.
  const auto q64 = q.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const auto k64 = k.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  attn::AttentionProblem p;
  p.q = q64.data_ptr<double>();
  p.k = k64.data_ptr<double>();
  p.v = k64.data_ptr<double>();  // values play no part in bucketing
  p.heads_q = static_cast<int>(q.size(0));
  p.heads_kv = static_cast<int>(k.size(0));
  p.n_q = static_cast<int>(q.size(1));
  p.n_k = static_cast<int>(k.size(1));
  p.dim = static_cast<int>(q.size(2));
  const auto buckets = attn::problem_buckets(p, config);
  auto same = torch::zeros({q.size(0), q.size(1), k.size(1)}, torch::kBool);
  for (int r = 0; r < config.rounds; ++r) {
    for (int h = 0; h < p.heads_q; ++h) {
      const auto& qb = buckets.query(r, h);
      const auto& kb = buckets.key(r, p.kv_head(h));
      const auto qt = torch::tensor(std::vector<int64_t>(qb.begin(), qb.end()));
      const auto kt = torch::tensor(std::vector<int64_t>(kb.begin(), kb.end()));
      same[h] |= qt.view({-1, 1}) == kt.view({1, -1});
    }
  }
  const auto visible = same.to(q.device()) & causal_visible(q.size(0), q.size(1), k.size(1), causal, q.device());
  return attend_visible(q, k, v, visible, std::nullopt, scale);
}

torch::Tensor sign_ste(const torch::Tensor& x) {
  TORCH_CHECK(x.is_floating_point(), "sign_ste: x must be a floating-point tensor, got ", x.scalar_type());
  return SignSte::apply(x);
}

torch::Tensor pack_signatures(const torch::Tensor& logits) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) > 0, "pack_signatures: logits must be [n, bits], got ", logits.sizes());
  TORCH_CHECK(logits.is_floating_point(), "pack_signatures: logits must be floating point, got ", logits.scalar_type());
  const auto x = logits.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const int n = static_cast<int>(x.size(0)), bits = static_cast<int>(x.size(1));
  auto out = torch::empty({n, attn::signature_words(bits)}, torch::kInt64);
  attn::pack_signatures(x.data_ptr<double>(), n, bits, reinterpret_cast<std::uint64_t*>(out.data_ptr<int64_t>()));
  return out.to(logits.device());
}

}  // namespace hashhop::ops

TORCH_LIBRARY(hashhop, m) {
  m.def("dense_attention(Tensor q, Tensor k, Tensor v, Tensor? key_bias=None, bool causal=False, float scale=1.0) -> Tensor",
        &hashhop::ops::dense_attention);
  m.def("bucket_attention(Tensor q, Tensor k, Tensor v, int bucket_bits=4, int rounds=1, str bucket_fn='lsh', "
        "int seed=0, bool causal=False, float scale=1.0) -> Tensor",
        &hashhop::ops::bucket_attention);
  m.def("sign_ste(Tensor x) -> Tensor", &hashhop::ops::sign_ste);
  m.def("pack_signatures(Tensor logits) -> Tensor", &hashhop::ops::pack_signatures);
}
