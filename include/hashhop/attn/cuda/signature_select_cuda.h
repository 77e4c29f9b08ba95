// CUDA signature top-k selection (sm_90, signature_select.cu): Hamming scan with a similarity histogram and a
// threshold top-k (ties to lower indices, as attn::select_signature_keys), plus sign-bit packing. Tested by tests/attn/test_attention_cuda.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "hashhop/attn/cuda/element.h"

namespace hashhop::attn::cuda {

// One decode step (one query per head over n_keys cached keys), or n_q queries per head: query row
// r = head * n_q + i. With `causal`, query i sees keys [0, n_keys - n_q + i] (the CPU reference's frame),
// otherwise all n_keys. Each row keeps its sinks, its window and its top_k best keys (or, with top_k = 0,
// ceil(top_fraction * visible) of them), exactly attn::select_signature_keys' set.
struct SignatureSelectParams {
  const std::uint64_t* key_signatures = nullptr;    // [heads_kv, key_stride, words]
  const std::uint64_t* query_signatures = nullptr;  // [heads_q, n_q, words]
  int heads_q = 1, heads_kv = 1, n_keys = 1, bits = 64;  // bits: 1..128
  int sinks = 0, window = 0, top_k = 0;
  int* selected = nullptr;    // [heads_q * n_q, selected_stride(...)] ascending key indices
  int* n_selected = nullptr;  // [heads_q * n_q]
  void* workspace = nullptr;  // select_workspace_bytes(workspace_rows or heads_q * n_q, n_keys) bytes, 16-byte aligned
  int n_q = 1;
  bool causal = false;
  double top_fraction = 0.0;
  int key_stride = 0;      // key rows per kv head in key_signatures; 0 = n_keys
  int workspace_rows = 0;  // rows the workspace holds; select_keys runs the rows in chunks of it (0 = all)
  // A KV cache of per-sequence lengths (the decode API): row r sees keys [0, lengths[r / rows_per_length])
  // of its head (n_keys is then the cache's capacity; not with causal). Read on the device: no sync.
  const int* lengths = nullptr;
  int rows_per_length = 1;
  // [heads_q * n_q] or null: set to zero per row, so a sparse_decode given the same pointer as its `arrivals`
  // merges in its last split's block instead of a second kernel (one launch less per decode step).
  int* decode_arrivals = nullptr;
};

int max_selected(int n_keys, int sinks, int window, int top_k);
// Row stride of `selected` for these params (max_selected, with top_fraction's budget at full visibility).
int selected_stride(const SignatureSelectParams& params);
std::size_t select_workspace_bytes(int rows, int n_keys);
void select_keys(const SignatureSelectParams& params, cudaStream_t stream);
// The first step of select_keys alone (similarities + histogram into the workspace), for timing the scan.
void scan_similarities(const SignatureSelectParams& params, cudaStream_t stream);

// Packs sign bits: logits [n, bits] -> words [n, (bits+63)/64]; bit = logit >= 0 (NaN gives 0).
void pack_signatures(const float* logits, int n, int bits, std::uint64_t* words, cudaStream_t stream);
void pack_signatures(const void* logits, Element element, int n, int bits, std::uint64_t* words, cudaStream_t stream);

}  // namespace hashhop::attn::cuda
