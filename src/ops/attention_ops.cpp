// torch.ops.hashhop.* (see attention_ops.h): attention built from differentiable LibTorch ops over the
// keys the float64 CPU references select (buckets, signature top-k, index candidates), so both agree.
#include "hashhop/ops/attention_ops.h"

#include <torch/library.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/hash_index.h"
#include "hashhop/attn/signature_attention.h"
#include "hashhop/ops/attention_grads.h"

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

void check_signatures(const char* op, const torch::Tensor& signatures, const char* name, int64_t heads, int64_t n, int64_t words) {
  TORCH_CHECK(signatures.scalar_type() == torch::kInt64, op, ": ", name, " must be int64 (packed words), got ", signatures.scalar_type());
  const bool shaped = words == 0 ? signatures.dim() == 2 && signatures.size(0) == heads && signatures.size(1) == n
                                 : signatures.dim() == 3 && signatures.size(0) == heads && signatures.size(1) == n && signatures.size(2) == words;
  TORCH_CHECK(shaped, op, ": ", name, " must be [", heads, ", ", n, words ? ", " + std::to_string(words) : std::string(), "], got ",
              signatures.sizes());
}

// A [heads_q, n_q, n_k] mask from a per-query key selector (the references' selection rules).
torch::Tensor selection_mask(int64_t heads_q, int64_t n_q, int64_t n_k, const std::function<void(int, int, std::vector<int>&)>& select) {
  auto mask = torch::zeros({heads_q, n_q, n_k}, torch::kBool);
  auto* m = mask.data_ptr<bool>();
  std::vector<int> keys;
  for (int h = 0; h < heads_q; ++h) {
    for (int i = 0; i < n_q; ++i) {
      keys.clear();
      select(h, i, keys);
      for (int key : keys) m[(static_cast<int64_t>(h) * n_q + i) * n_k + key] = true;
    }
  }
  return mask;
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
  if (q.dim() == 4) {
    constexpr const char* op = "dense_attention";
    const int64_t b = q.size(0);
    return unfold_batch(dense_attention(q.flatten(0, 1), fold_batch(op, k, "k", 4, b), fold_batch(op, v, "v", 4, b), key_bias, causal, scale), b);
  }
  check_qkv("dense_attention", q, k, v);
  if (key_bias) {
    TORCH_CHECK(key_bias->dim() == 1 && key_bias->size(0) == k.size(1), "dense_attention: key_bias must be [n_k] = [",
                k.size(1), "], got ", key_bias->sizes());
    TORCH_CHECK(key_bias->scalar_type() == q.scalar_type() && key_bias->device() == q.device(),
                "dense_attention: key_bias must match q's dtype and device");
  }
  return attend_visible(q, k, v, causal_visible(q.size(0), q.size(1), k.size(1), causal, q.device()), key_bias, scale);
}

torch::Tensor per_sequence(int64_t batch, const torch::Tensor& q, const torch::Tensor& k_folded, const torch::Tensor& v_folded,
                           const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>& op) {
  const int64_t heads_kv = k_folded.size(0) / batch;
  std::vector<torch::Tensor> outs;
  for (int64_t i = 0; i < batch; ++i)
    outs.push_back(op(q.select(0, i), k_folded.narrow(0, i * heads_kv, heads_kv), v_folded.narrow(0, i * heads_kv, heads_kv)));
  return torch::cat(outs, 0);
}

void check_dense_heads(const char* op, const torch::Tensor& q, const torch::Tensor& k, int64_t dense_heads) {
  const int64_t heads_q = q.size(0), group = heads_q / k.size(0);
  TORCH_CHECK(dense_heads >= 0 && dense_heads <= heads_q, op, ": dense_heads must be in [0, heads_q = ", heads_q, "], got ",
              dense_heads);
  TORCH_CHECK(dense_heads % group == 0, op, ": dense_heads must be a multiple of heads_q / heads_kv = ", group,
              " (whole groups of a kv head), got ", dense_heads);
}

torch::Tensor bucket_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               int64_t bucket_bits, int64_t rounds, const std::string& bucket_fn, int64_t seed,
                               bool causal, double scale, int64_t dense_heads) {
  if (q.dim() == 4) {
    constexpr const char* op = "bucket_attention";
    const int64_t b = q.size(0);
    const auto kf = fold_batch(op, k, "k", 4, b), vf = fold_batch(op, v, "v", 4, b);
    if (dense_heads == 0)
      return unfold_batch(bucket_attention(q.flatten(0, 1), kf, vf, bucket_bits, rounds, bucket_fn, seed, causal, scale), b);
    // Mixed heads count within one sequence's heads: flattened, "the last dense_heads" would be the last sequence's.
    return unfold_batch(per_sequence(b, q, kf, vf, [&](const torch::Tensor& qs, const torch::Tensor& ks, const torch::Tensor& vs) {
                          return bucket_attention(qs, ks, vs, bucket_bits, rounds, bucket_fn, seed, causal, scale, dense_heads);
                        }), b);
  }
  check_qkv("bucket_attention", q, k, v);
  check_dense_heads("bucket_attention", q, k, dense_heads);
  TORCH_CHECK(bucket_bits >= 0 && bucket_bits <= 30, "bucket_attention: bucket_bits must be in [0, 30], got ", bucket_bits);
  TORCH_CHECK(rounds >= 1, "bucket_attention: rounds must be >= 1, got ", rounds);
  attn::BucketConfig config;
  config.bucket_bits = static_cast<int>(bucket_bits);
  config.rounds = static_cast<int>(rounds);
  config.function = parse_bucket_fn(bucket_fn);
  config.seed = static_cast<std::uint64_t>(seed);
  config.dense_heads = static_cast<int>(dense_heads);
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
      if (!attn::head_is_hashed(config, h, p.heads_q)) {
        same[h].fill_(true);  // a dense head: every key, as the reference's
        continue;
      }
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

torch::Tensor signature_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& q_signatures, const torch::Tensor& k_signatures, int64_t bits,
                                  int64_t sinks, int64_t window, int64_t top_k, double top_fraction, bool causal,
                                  double scale) {
  if (q.dim() == 4) {
    constexpr const char* op = "signature_attention";
    const int64_t b = q.size(0);
    return unfold_batch(signature_attention(q.flatten(0, 1), fold_batch(op, k, "k", 4, b), fold_batch(op, v, "v", 4, b),
                                            fold_batch(op, q_signatures, "q_signatures", 4, b),
                                            fold_batch(op, k_signatures, "k_signatures", 4, b), bits, sinks, window, top_k,
                                            top_fraction, causal, scale), b);
  }
  check_qkv("signature_attention", q, k, v);
  TORCH_CHECK(bits >= 1 && bits <= 4096, "signature_attention: bits must be in [1, 4096], got ", bits);
  TORCH_CHECK(sinks >= 0 && window >= 0 && top_k >= 0 && top_fraction >= 0 && top_fraction <= 1,
              "signature_attention: sinks, window, top_k must be >= 0 and top_fraction in [0, 1]");
  TORCH_CHECK(!causal || q.size(1) <= k.size(1), "signature_attention: causal needs n_q <= n_k");
  const int64_t words = attn::signature_words(static_cast<int>(bits));
  check_signatures("signature_attention", q_signatures, "q_signatures", q.size(0), q.size(1), words);
  check_signatures("signature_attention", k_signatures, "k_signatures", k.size(0), k.size(1), words);
  const auto qs = q_signatures.to(torch::kCPU).contiguous(), ks = k_signatures.to(torch::kCPU).contiguous();
  const auto* qw = reinterpret_cast<const std::uint64_t*>(qs.data_ptr<int64_t>());
  const auto* kw = reinterpret_cast<const std::uint64_t*>(ks.data_ptr<int64_t>());
  const attn::SignatureConfig config{static_cast<int>(bits), static_cast<int>(sinks), static_cast<int>(window), static_cast<int>(top_k), top_fraction};
  const int64_t n_q = q.size(1), n_k = k.size(1), group = q.size(0) / k.size(0);
  const auto mask = selection_mask(q.size(0), n_q, n_k, [&](int h, int i, std::vector<int>& keys) {
    const int last = static_cast<int>(causal ? n_k - n_q + i : n_k - 1);
    keys = attn::select_signature_keys(qw + (h * n_q + i) * words, kw + (h / group) * n_k * words, last, config);
  });
  return attend_visible(q, k, v, mask.to(q.device()), std::nullopt, scale);
}

torch::Tensor index_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& q_signatures, const torch::Tensor& k_signatures, int64_t bits,
                              int64_t tables, int64_t bits_per_table, int64_t seed, bool causal, double scale) {
  if (q.dim() == 4) {
    constexpr const char* op = "index_attention";
    const int64_t b = q.size(0);
    return unfold_batch(index_attention(q.flatten(0, 1), fold_batch(op, k, "k", 4, b), fold_batch(op, v, "v", 4, b),
                                        fold_batch(op, q_signatures, "q_signatures", 3, b),
                                        fold_batch(op, k_signatures, "k_signatures", 3, b), bits, tables, bits_per_table, seed,
                                        causal, scale), b);
  }
  check_qkv("index_attention", q, k, v);
  TORCH_CHECK(!causal || q.size(1) <= k.size(1), "index_attention: causal needs n_q <= n_k");
  check_signatures("index_attention", q_signatures, "q_signatures", q.size(0), q.size(1), 0);
  check_signatures("index_attention", k_signatures, "k_signatures", k.size(0), k.size(1), 0);
  attn::IndexConfig config;
  config.bits = static_cast<int>(bits);
  config.tables = static_cast<int>(tables);
  config.bits_per_table = static_cast<int>(bits_per_table);
  config.seed = static_cast<std::uint64_t>(seed);
  const auto ks = k_signatures.to(torch::kCPU).contiguous(), qs = q_signatures.to(torch::kCPU).contiguous();
  const int64_t n_q = q.size(1), n_k = k.size(1), group = q.size(0) / k.size(0);
  std::vector<attn::SignatureIndex> indexes;
  try {
    indexes = attn::build_head_indexes(reinterpret_cast<const std::uint64_t*>(ks.data_ptr<int64_t>()), static_cast<int>(k.size(0)),
                                       static_cast<int>(n_k), config);
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, "index_attention: ", e.what());
  }
  const auto* qw = qs.data_ptr<int64_t>();
  const auto mask = selection_mask(q.size(0), n_q, n_k, [&](int h, int i, std::vector<int>& keys) {
    keys = indexes[static_cast<std::size_t>(h / group)].candidates_up_to(static_cast<std::uint64_t>(qw[h * n_q + i]),
                                                                         static_cast<int>(causal ? n_k - n_q + i : n_k - 1));
  });
  return attend_visible(q, k, v, mask.to(q.device()), std::nullopt, scale);
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
        "int seed=0, bool causal=False, float scale=1.0, int dense_heads=0) -> Tensor",
        &hashhop::ops::bucket_attention);
  m.def("signature_attention(Tensor q, Tensor k, Tensor v, Tensor q_signatures, Tensor k_signatures, int bits=64, "
        "int sinks=0, int window=0, int top_k=0, float top_fraction=0.0, bool causal=False, float scale=1.0) -> Tensor",
        &hashhop::ops::signature_attention);
  m.def("index_attention(Tensor q, Tensor k, Tensor v, Tensor q_signatures, Tensor k_signatures, int bits=64, "
        "int tables=0, int bits_per_table=16, int seed=0, bool causal=False, float scale=1.0) -> Tensor",
        &hashhop::ops::index_attention);
  m.def("sign_ste(Tensor x) -> Tensor", &hashhop::ops::sign_ste);
  m.def("pack_signatures(Tensor logits) -> Tensor", &hashhop::ops::pack_signatures);
}
