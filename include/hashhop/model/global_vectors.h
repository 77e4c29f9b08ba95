// A byte model's real global queries and keys over one text, per global block: what a learned signature
// (HashAttention's φ maps, ops/signature_maps.h) must rank as the model's own scores do. Used by
// `hashhop signature-recall`; tested in tests/model/test_byte_model.cpp (GlobalVectors.*).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "hashhop/model/byte_model.h"

namespace hashhop::model {

struct GlobalVectors {
  std::size_t block = 0;  // index into ByteModelConfig::layers (a G or H block)
  // Float32 on the CPU, in the padded head space the scores are taken in (RoPE applied, the gate column
  // included), so q·k / sqrt(head dim) is the model's score and the key's gate bias is part of it.
  torch::Tensor queries;  // [H, rows, padded head dim]: the block's first read at each requested row
  torch::Tensor keys;     // [H, kept, padded head dim]: rows [0, key_rows) the gate keeps (all when soft)
  std::vector<std::int64_t> key_positions;  // the text position of each kept key
};

// Runs `bytes` [1, T] through the model once (eval mode, no grad, global_topk 0 for this call) and returns, for
// every global block, the queries at `query_rows` and the keys of rows [0, key_rows). An H block reports its
// first hop's query. The model's reads take the float32 path of context-parallel reads (ByteModel::
// set_remote_attention with an empty remote), which equals the SDPA path up to rounding. The model must have
// no remote attention of its own set (a context-parallel rank's): this call replaces it and leaves none.
std::vector<GlobalVectors> capture_global_vectors(ByteModel& net, const torch::Tensor& bytes,
                                                  const std::vector<std::int64_t>& query_rows, std::int64_t key_rows);

}  // namespace hashhop::model
