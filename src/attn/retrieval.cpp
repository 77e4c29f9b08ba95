// The retrieval mechanisms of retrieval.h over LibTorch tensors: selection through the float64 attention
// references (SimHash signatures, angular-LSH buckets), one softmax for all. Test: ctest -R Retrieval.
#include "hashhop/attn/retrieval.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/gaussian.h"
#include "hashhop/attn/signature_attention.h"

namespace hashhop::attn {

std::vector<torch::Tensor> Retriever::weights(const torch::Tensor& q, const torch::Tensor& log_scale,
                                              const std::vector<RetrievalSegment>& segments) const {
  const auto biases = select(q, segments);
  std::vector<torch::Tensor> all_scores;
  std::vector<std::int64_t> sizes;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    // exp() per segment, as the model always computed it (one autograd node each: gradients stay bit-identical).
    all_scores.push_back(torch::matmul(q, segments[i].keys.transpose(1, 2)).to(torch::kFloat32) * log_scale.exp() + biases[i]);
    sizes.push_back(all_scores.back().size(2));
  }
  return torch::softmax(torch::cat(all_scores, 2), -1).split_with_sizes(sizes, 2);
}

torch::Tensor Retriever::read(const torch::Tensor& q, const torch::Tensor& log_scale,
                              const std::vector<RetrievalSegment>& segments) const {
  const auto w_all = weights(q, log_scale, segments);
  torch::Tensor out;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    // Keys sharing a value row share its value: add their weights per row, then read each row once.
    const RetrievalSegment& s = segments[i];
    const auto& w = w_all[i];
    const auto rows = s.value_rows.unsqueeze(1).expand({w.size(0), w.size(1), w.size(2)});
    const auto row_weights = torch::zeros({w.size(0), w.size(1), s.values.size(1)}, w.options()).scatter_add(2, rows, w);
    const auto read = torch::matmul(row_weights.to(s.values.scalar_type()), s.values);
    out = out.defined() ? out + read : read;
  }
  return out;
}

namespace {

class DenseRetriever final : public Retriever {
 public:
  std::string name() const override { return "dense"; }
  std::vector<torch::Tensor> select(const torch::Tensor&, const std::vector<RetrievalSegment>& segments) const override {
    std::vector<torch::Tensor> biases;
    for (const auto& s : segments) biases.push_back(s.bias);
    return biases;
  }
};

// The three selecting mechanisms: per-row codes of queries and keys (float64, CPU), then a rule that
// keeps some of a query's visible keys (bias > -inf), in segment order.
class SelectingRetriever : public Retriever {
 public:
  explicit SelectingRetriever(const RetrieverOptions& options) : options_(options) {}

  std::vector<torch::Tensor> select(const torch::Tensor& q, const std::vector<RetrievalSegment>& segments) const override {
    torch::NoGradGuard no_grad;
    const std::int64_t batch = q.size(0), n_q = q.size(1), dim = q.size(2);
    const int w = words();
    const auto q64 = q.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    const auto q_codes = codes(q64.data_ptr<double>(), static_cast<int>(batch * n_q), static_cast<int>(dim));
    struct Side {
      std::vector<std::uint64_t> codes;
      std::int64_t key_batch = 1, n = 0;
      torch::Tensor bias, drop;
    };
    std::vector<Side> sides;
    for (const auto& s : segments) {
      Side side;
      const auto k64 = s.keys.detach().to(torch::kCPU, torch::kFloat64).contiguous();
      side.key_batch = k64.size(0);
      side.n = k64.size(1);
      side.codes = codes(k64.data_ptr<double>(), static_cast<int>(side.key_batch * side.n), static_cast<int>(dim));
      side.bias = s.bias.detach().to(torch::kCPU, torch::kFloat32).expand({batch, n_q, side.n}).contiguous();
      side.drop = torch::zeros({batch, n_q, side.n}, torch::kBool);
      sides.push_back(std::move(side));
    }
    std::vector<Candidate> candidates;
    std::vector<char> keep;
    for (std::int64_t b = 0; b < batch; ++b) {
      for (std::int64_t i = 0; i < n_q; ++i) {
        candidates.clear();
        for (std::size_t s = 0; s < sides.size(); ++s) {
          const float* bias = sides[s].bias.data_ptr<float>() + (b * n_q + i) * sides[s].n;
          const std::int64_t kb = sides[s].key_batch == 1 ? 0 : b;
          for (std::int64_t j = 0; j < sides[s].n; ++j)
            if (bias[j] > -std::numeric_limits<float>::infinity())
              candidates.push_back({static_cast<int>(s), j, sides[s].codes.data() + (kb * sides[s].n + j) * w});
        }
        keep.assign(candidates.size(), 0);
        choose(q_codes.data() + (b * n_q + i) * w, candidates, keep);
        for (std::size_t c = 0; c < candidates.size(); ++c)
          if (!keep[c]) sides[candidates[c].segment].drop.data_ptr<bool>()[(b * n_q + i) * sides[candidates[c].segment].n + candidates[c].key] = true;
      }
    }
    std::vector<torch::Tensor> biases;
    for (std::size_t s = 0; s < segments.size(); ++s)
      biases.push_back(segments[s].bias.masked_fill(sides[s].drop.to(segments[s].bias.device()),
                                                     -std::numeric_limits<float>::infinity()));
    return biases;
  }

 protected:
  struct Candidate {
    int segment;
    std::int64_t key;
    const std::uint64_t* code;
  };
  virtual int words() const = 0;
  virtual std::vector<std::uint64_t> codes(const double* x, int rows, int dim) const = 0;  // rows · words()
  virtual void choose(const std::uint64_t* q_code, const std::vector<Candidate>& candidates, std::vector<char>& keep) const = 0;

  // SimHash: sign bits of x · P, P [dim, bits] from the Gaussian stream of `seed`, packed as the references pack them.
  std::vector<std::uint64_t> simhash(const double* x, int rows, int dim, int bits) const {
    std::vector<double> projection(static_cast<std::size_t>(dim) * bits);
    GaussianStream gaussian(options_.seed * 1000003ULL + 0x5349474eULL);  // "SIGN"
    for (auto& value : projection) value = gaussian.next();
    std::vector<double> logits(static_cast<std::size_t>(rows) * bits, 0.0);
    for (int r = 0; r < rows; ++r)
      for (int d = 0; d < dim; ++d)
        for (int c = 0; c < bits; ++c) logits[static_cast<std::size_t>(r) * bits + c] += x[static_cast<std::size_t>(r) * dim + d] * projection[static_cast<std::size_t>(d) * bits + c];
    std::vector<std::uint64_t> words(static_cast<std::size_t>(rows) * signature_words(bits));
    pack_signatures(logits.data(), rows, bits, words.data());
    return words;
  }

  RetrieverOptions options_;
};

class SignatureTopKRetriever final : public SelectingRetriever {
 public:
  explicit SignatureTopKRetriever(const RetrieverOptions& o) : SelectingRetriever(o) {
    if (o.bits < 1 || o.bits > 128) throw std::invalid_argument("signature_topk: bits must be in [1, 128]");
    if (o.top_k < 1) throw std::invalid_argument("signature_topk: top_k must be positive");
  }
  std::string name() const override { return "signature_topk"; }

 protected:
  int words() const override { return signature_words(options_.bits); }
  std::vector<std::uint64_t> codes(const double* x, int rows, int dim) const override { return simhash(x, rows, dim, options_.bits); }
  void choose(const std::uint64_t* q_code, const std::vector<Candidate>& candidates, std::vector<char>& keep) const override {
    std::vector<std::pair<int, std::size_t>> ranked;  // (-similarity, candidate): ties go to the earlier key
    for (std::size_t c = 0; c < candidates.size(); ++c)
      ranked.emplace_back(-hamming_similarity(q_code, candidates[c].code, options_.bits), c);
    const std::size_t k = std::min<std::size_t>(ranked.size(), static_cast<std::size_t>(options_.top_k));
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k), ranked.end());
    for (std::size_t r = 0; r < k; ++r) keep[ranked[r].second] = 1;
  }
};

class BucketRetriever final : public SelectingRetriever {
 public:
  explicit BucketRetriever(const RetrieverOptions& o) : SelectingRetriever(o) {
    if (o.rounds < 1) throw std::invalid_argument("bucket: rounds must be positive");
    config_.bucket_bits = o.bucket_bits;
    config_.rounds = o.rounds;
    config_.function = BucketFunction::lsh;
    config_.seed = o.seed;
  }
  std::string name() const override { return "bucket"; }

 protected:
  int words() const override { return options_.rounds; }
  std::vector<std::uint64_t> codes(const double* x, int rows, int dim) const override {
    std::vector<std::uint64_t> out(static_cast<std::size_t>(rows) * options_.rounds);
    for (int round = 0; round < options_.rounds; ++round) {
      const auto ids = bucket_ids(x, rows, dim, config_, round);
      for (int r = 0; r < rows; ++r) out[static_cast<std::size_t>(r) * options_.rounds + round] = ids[static_cast<std::size_t>(r)];
    }
    return out;
  }
  void choose(const std::uint64_t* q_code, const std::vector<Candidate>& candidates, std::vector<char>& keep) const override {
    for (std::size_t c = 0; c < candidates.size(); ++c)
      for (int round = 0; round < options_.rounds; ++round) keep[c] |= candidates[c].code[round] == q_code[round];
  }

 private:
  BucketConfig config_;
};

// Exact index: keys whose code (the SimHash signature, at most 64 bits) equals the query's, what
// hash_index.h's exact SignatureIndex returns for the same codes.
class IndexRetriever final : public SelectingRetriever {
 public:
  explicit IndexRetriever(const RetrieverOptions& o) : SelectingRetriever(o) {
    if (o.bits < 1 || o.bits > 64) throw std::invalid_argument("index: bits must be in [1, 64]");
  }
  std::string name() const override { return "index"; }

 protected:
  int words() const override { return 1; }
  std::vector<std::uint64_t> codes(const double* x, int rows, int dim) const override { return simhash(x, rows, dim, options_.bits); }
  void choose(const std::uint64_t* q_code, const std::vector<Candidate>& candidates, std::vector<char>& keep) const override {
    for (std::size_t c = 0; c < candidates.size(); ++c) keep[c] = *candidates[c].code == *q_code;
  }
};

}  // namespace

std::vector<std::string> retriever_names() { return {"dense", "signature_topk", "bucket", "index"}; }

std::shared_ptr<const Retriever> make_retriever(const std::string& name, const RetrieverOptions& options) {
  if (name == "dense") return std::make_shared<DenseRetriever>();
  if (name == "signature_topk") return std::make_shared<SignatureTopKRetriever>(options);
  if (name == "bucket") return std::make_shared<BucketRetriever>(options);
  if (name == "index") return std::make_shared<IndexRetriever>(options);
  throw std::invalid_argument("retrieval '" + name + "': expected dense, signature_topk, bucket or index");
}

}  // namespace hashhop::attn
