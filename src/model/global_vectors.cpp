// Captures a byte model's global queries and keys (see global_vectors.h).
#include "hashhop/model/global_vectors.h"

#include <cmath>
#include <map>
#include <stdexcept>

namespace hashhop::model {

std::vector<GlobalVectors> capture_global_vectors(ByteModel& net, const torch::Tensor& bytes,
                                                  const std::vector<std::int64_t>& query_rows, std::int64_t key_rows) {
  TORCH_CHECK(bytes.dim() == 2 && bytes.size(0) == 1, "capture_global_vectors: bytes must be one text [1, T]");
  const auto t = bytes.size(1);
  TORCH_CHECK(key_rows >= 1 && key_rows <= t, "capture_global_vectors: key_rows must be in [1, ", t, "], got ", key_rows);
  for (const auto row : query_rows)
    TORCH_CHECK(row >= 0 && row < t, "capture_global_vectors: query row ", row, " is outside the text's ", t, " bytes");
  // The model's mode, top-k and query observer are this call's only while it runs, on every exit path.
  struct Restore {
    ByteModel& net;
    bool training;
    int topk;
    ~Restore() {
      net->set_query_observer({});
      net->set_global_topk(topk);
      net->train(training);
    }
  } restore{net, net->is_training(), net->config().global_topk};
  net->eval();
  net->set_global_topk(0);  // the dense scores are what a signature's top-k must find
  // Each block's first read (a hop block reads once a hop) shows its queries to the observer, which keeps the
  // probed rows only. The reads themselves run as the model runs them: SDPA's fused causal kernels, linear
  // memory. (A remote-read hook, used here before, sent every read down the context-parallel path, which
  // scores keys in blocks of rows: 57 s at 153,600 characters on an H200, past 110 s at 614,400.)
  const auto rows = torch::tensor(query_rows, torch::kInt64).to(bytes.device());
  std::map<std::size_t, torch::Tensor> first_queries;  // block -> [H, rows, padded]
  net->set_query_observer([&](std::size_t block, const torch::Tensor& q) {
    if (!first_queries.count(block)) first_queries[block] = q[0].index_select(1, rows).detach();
  });
  const ByteCache cache = net->prefill(bytes);

  const int head_dim = net->config().dim / net->config().heads;
  std::vector<GlobalVectors> out;
  for (const auto& [block, q] : first_queries) {
    GlobalVectors v;
    v.block = block;
    v.queries = q.to(torch::kCPU, torch::kFloat32);  // [H, rows, padded]
    const auto keys = cache.layers[block].keys[0].narrow(1, 0, key_rows).to(torch::kCPU, torch::kFloat32);
    // A key the hard gate drops scores -inf in its gate column: the engine never stores it, so it is not a
    // candidate. (A model without a gate has no gate column: every key is one.)
    const bool gated = net->config().hash_gate;
    const auto kept = gated ? torch::isfinite(keys[0].select(1, head_dim)) : torch::ones({key_rows}, torch::kBool);
    const auto index = kept.nonzero().squeeze(1);
    v.keys = keys.index_select(1, index);
    v.key_positions.assign(index.data_ptr<std::int64_t>(), index.data_ptr<std::int64_t>() + index.numel());
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace hashhop::model
