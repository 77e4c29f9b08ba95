// Learned signature maps and their BCE objective (see signature_maps.h). Tested by tests/ops/test_signature_maps.cpp.
#include "hashhop/ops/signature_maps.h"

#include <torch/library.h>

#include "hashhop/ops/attention_ops.h"

namespace hashhop::ops {

SignatureMapImpl::SignatureMapImpl(const SignatureMapOptions& o) {
  TORCH_CHECK(o.dim > 0 && o.hidden > 0 && o.bits > 0, "SignatureMap: dim, hidden and bits must be positive");
  in_ = register_module("in", torch::nn::Linear(o.dim, o.hidden));
  out_ = register_module("out", torch::nn::Linear(o.hidden, o.bits));
}

torch::Tensor SignatureMapImpl::logits(const torch::Tensor& x) {
  // Normalised per row so most logits sit where the straight-through gradient flows (|x| <= 1).
  const auto raw = out_(torch::silu(in_(x)));
  return torch::layer_norm(raw, {raw.size(-1)});
}

torch::Tensor SignatureMapImpl::forward(const torch::Tensor& x) { return sign_ste(logits(x)); }

namespace {
torch::Tensor topk_labels(const torch::Tensor& dense_scores, int64_t top_k) {
  const auto top = std::get<1>(dense_scores.topk(top_k, /*dim=*/1));
  return torch::zeros_like(dense_scores).scatter_(1, top, 1.0);
}
}  // namespace

torch::Tensor signature_bce_loss(const torch::Tensor& q_signs, const torch::Tensor& k_signs, const torch::Tensor& dense_scores,
                                 int64_t top_k, double scale, double threshold) {
  TORCH_CHECK(q_signs.dim() == 2 && k_signs.dim() == 2 && q_signs.size(1) == k_signs.size(1),
              "signature_bce_loss: signs must be [n_q, bits] and [n_k, bits], got ", q_signs.sizes(), " and ", k_signs.sizes());
  TORCH_CHECK(dense_scores.dim() == 2 && dense_scores.size(0) == q_signs.size(0) && dense_scores.size(1) == k_signs.size(0),
              "signature_bce_loss: dense_scores must be [n_q, n_k] = [", q_signs.size(0), ", ", k_signs.size(0), "], got ", dense_scores.sizes());
  TORCH_CHECK(top_k >= 1 && top_k < k_signs.size(0), "signature_bce_loss: top_k must be in [1, n_k), got ", top_k);
  const auto labels = topk_labels(dense_scores.detach(), top_k).to(q_signs.scalar_type());
  const auto agreement = torch::matmul(q_signs, k_signs.t()) / static_cast<double>(q_signs.size(1));
  const auto pos_weight = torch::full({1}, static_cast<double>(k_signs.size(0) - top_k) / top_k, q_signs.options());
  return torch::binary_cross_entropy_with_logits(scale * (agreement - threshold), labels, {}, pos_weight);
}

double signature_topk_recall(const torch::Tensor& q_signs, const torch::Tensor& k_signs, const torch::Tensor& dense_scores,
                             int64_t top_k, int64_t budget) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(budget >= 1 && budget <= k_signs.size(0) && top_k >= 1 && top_k <= k_signs.size(0),
              "signature_topk_recall: top_k and budget must be in [1, n_k]");
  const auto labels = topk_labels(dense_scores, top_k);
  // Ties in agreement broken toward lower key index, like the top-k selection (stable sort).
  const auto agreement = torch::matmul(q_signs.to(torch::kFloat64), k_signs.to(torch::kFloat64).t());
  const auto kept = std::get<1>(agreement.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true)).narrow(1, 0, budget);
  return (labels.gather(1, kept).sum() / (static_cast<double>(top_k) * q_signs.size(0))).item<double>();
}

std::vector<double> train_signature_maps(SignatureMap& phi_q, SignatureMap& phi_k, const torch::Tensor& queries,
                                         const torch::Tensor& keys, const SignatureTrainOptions& o) {
  return train_signature_maps(phi_q, phi_k, std::vector<SignatureGroup>{{queries, keys}}, o);
}

std::vector<double> train_signature_maps(SignatureMap& phi_q, SignatureMap& phi_k, const std::vector<SignatureGroup>& groups,
                                         const SignatureTrainOptions& o) {
  TORCH_CHECK(!groups.empty(), "train_signature_maps: no groups of queries and keys");
  std::vector<torch::Tensor> dense;
  for (const auto& g : groups) {
    TORCH_CHECK(g.queries.dim() == 2 && g.keys.dim() == 2 && g.queries.size(1) == g.keys.size(1),
                "train_signature_maps: queries [n, dim] and keys [m, dim] must share dim");
    TORCH_CHECK(g.queries.size(0) > 0, "train_signature_maps: a group has no queries");
    dense.push_back(torch::matmul(g.queries, g.keys.t()));
  }
  torch::manual_seed(o.seed);
  std::vector<torch::Tensor> parameters = phi_q->parameters();
  for (const auto& p : phi_k->parameters()) parameters.push_back(p);
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(o.learning_rate));
  std::vector<double> losses;
  for (int step = 0; step < o.steps; ++step) {
    const auto& g = groups[static_cast<std::size_t>(step) % groups.size()];
    const auto& scores = dense[static_cast<std::size_t>(step) % groups.size()];
    const auto rows = torch::randint(g.queries.size(0), {std::min(o.batch_queries, g.queries.size(0))}, torch::kInt64);
    const auto loss = signature_bce_loss(phi_q(g.queries.index_select(0, rows)), phi_k(g.keys), scores.index_select(0, rows),
                                         o.top_k, o.scale, o.threshold);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

}  // namespace hashhop::ops

TORCH_LIBRARY_FRAGMENT(hashhop, m) {
  m.def("signature_bce_loss(Tensor q_signs, Tensor k_signs, Tensor dense_scores, int top_k, float scale=10.0, float threshold=0.5) -> Tensor",
        &hashhop::ops::signature_bce_loss);
}
