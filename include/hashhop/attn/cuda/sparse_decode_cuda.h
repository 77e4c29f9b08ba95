// CUDA split-K exact softmax attention over per-row lists of kept keys (sm_90, sparse_decode.cu): the decode half of
// signature top-k and index attention. Torch-free params; tested by tests/attn/test_attention_cuda.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "hashhop/attn/cuda/element.h"

namespace hashhop::attn::cuda {

// Exact softmax of every query row over its listed keys (any order; a row with none outputs zeros).
struct SparseDecodeParams {
  const void* q = nullptr;           // [heads_q, n_q, dim] of `element`
  const void* k = nullptr;           // [heads_kv, n_keys, dim]
  const void* v = nullptr;           // [heads_kv, n_keys, dim]
  const int* selected = nullptr;     // [heads_q * n_q, selected_stride]
  const int* n_selected = nullptr;   // [heads_q * n_q]
  int selected_stride = 0;
  int heads_q = 1, heads_kv = 1, n_keys = 1, dim = 128;  // dim: 64 or 128
  float scale = 1.0f;
  void* out = nullptr;        // [heads_q * n_q, dim] of out_element
  void* workspace = nullptr;  // decode_workspace_bytes(workspace_rows or heads_q * n_q, dim, selected_stride) bytes
  int n_q = 1;
  Element element = Element::bf16;
  int workspace_rows = 0;     // rows the workspace holds; sparse_decode runs the rows in chunks of it (0 = all)
  float* lse = nullptr;       // [heads_q * n_q] or null: log-sum-exp of the scaled scores, -inf for no keys
  Element out_element = Element::fp32;  // the merge writes q's dtype directly, so an op needs no cast pass
  // [heads_q * n_q] counters that are zero at launch (select_keys' decode_arrivals), or null. With them the last
  // split block of a row to finish merges the row (threadfence reduction) and zeroes its counter again; no merge
  // kernel is launched.
  int* arrivals = nullptr;
};

int decode_splits(int rows, int selected_stride);  // split blocks per row of a workspace sized for `rows` rows
std::size_t decode_workspace_bytes(int rows, int dim, int selected_stride);
void sparse_decode(const SparseDecodeParams& params, cudaStream_t stream);

}  // namespace hashhop::attn::cuda
