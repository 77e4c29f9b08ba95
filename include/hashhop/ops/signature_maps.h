// Learned bit-signature maps φq, φk (HashAttention): small MLPs ending in a straight-through sign,
// trained with a BCE objective against the dense top-k, and the recall measure they are judged by.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace hashhop::ops {

struct SignatureMapOptions {
  int64_t dim = 128;    // input (head) dim
  int64_t hidden = 128;
  int64_t bits = 64;    // signature bits
};

// x [n, dim] -> logits [n, bits] (Linear, SiLU, Linear); forward() = sign_ste(logits): ±1, gradients
// straight through where |logit| <= 1. Packed signatures: pack_signatures(logits(x)).
class SignatureMapImpl : public torch::nn::Module {
 public:
  explicit SignatureMapImpl(const SignatureMapOptions& options);
  torch::Tensor logits(const torch::Tensor& x);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear in_{nullptr}, out_{nullptr};
};
TORCH_MODULE(SignatureMap);

// HashAttention's objective: label(i, j) = key j is among query i's top_k by dense score; prediction
// sigmoid(scale * (<sq_i, sk_j> / bits - threshold)) from ±1 signs sq [n_q, bits], sk [n_k, bits].
// Positives are weighted (n_k - top_k) / top_k so the few positives count as much as the negatives.
// dense_scores [n_q, n_k] (q·k, say) only defines the labels.
torch::Tensor signature_bce_loss(const torch::Tensor& q_signs, const torch::Tensor& k_signs, const torch::Tensor& dense_scores,
                                 int64_t top_k, double scale = 10.0, double threshold = 0.5);

// Mean share of each query's dense top_k found among its `budget` keys of highest signature agreement.
double signature_topk_recall(const torch::Tensor& q_signs, const torch::Tensor& k_signs, const torch::Tensor& dense_scores,
                             int64_t top_k, int64_t budget);

struct SignatureTrainOptions {
  int steps = 300;
  int64_t batch_queries = 64;  // queries per step; each is scored against every key given
  int64_t top_k = 8;
  double learning_rate = 3e-3;
  double scale = 10.0, threshold = 0.5;
  uint64_t seed = 0;
};

// Trains φq and φk with Adam on queries [n, dim] against keys [m, dim] (dense scores q·kᵀ); returns the
// loss of every step.
std::vector<double> train_signature_maps(SignatureMap& phi_q, SignatureMap& phi_k, const torch::Tensor& queries,
                                         const torch::Tensor& keys, const SignatureTrainOptions& options);

// The same over several key sets (say, one per text and head): step s trains on group s mod groups.size(),
// its queries [n, dim] against its own keys [m, dim] (m > top_k). With one group it is the call above.
struct SignatureGroup {
  torch::Tensor queries, keys;
};
std::vector<double> train_signature_maps(SignatureMap& phi_q, SignatureMap& phi_k, const std::vector<SignatureGroup>& groups,
                                         const SignatureTrainOptions& options);

}  // namespace hashhop::ops
