// CUDA path of bit-signature top-k decode attention (sm_90): Hamming scan with a similarity histogram,
// threshold top-k selection (deterministic: ties go to lower indices, as in the CPU reference), and
// split-K exact softmax attention over the kept keys. Torch-free params structs; see signature_decode.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace hashhop::attn::cuda {

// One decode step: one query per head over n_keys cached keys.
struct SignatureSelectParams {
  const std::uint64_t* key_signatures = nullptr;    // [heads_kv, n_keys, words]
  const std::uint64_t* query_signatures = nullptr;  // [heads_q, words]
  int heads_q = 1, heads_kv = 1, n_keys = 1, bits = 64;
  int sinks = 0, window = 0, top_k = 0;
  int* selected = nullptr;    // [heads_q, max_selected(...)] ascending key indices
  int* n_selected = nullptr;  // [heads_q]
  void* workspace = nullptr;  // select_workspace_bytes(...) bytes
};

int max_selected(int n_keys, int sinks, int window, int top_k);
std::size_t select_workspace_bytes(int heads_q, int n_keys);
void select_keys(const SignatureSelectParams& params, cudaStream_t stream);
// The first step of select_keys alone (similarities + histogram into the workspace), for timing the scan.
void scan_similarities(const SignatureSelectParams& params, cudaStream_t stream);

struct SparseDecodeParams {
  const __nv_bfloat16* q = nullptr;  // [heads_q, dim]
  const __nv_bfloat16* k = nullptr;  // [heads_kv, n_keys, dim]
  const __nv_bfloat16* v = nullptr;  // [heads_kv, n_keys, dim]
  const int* selected = nullptr;     // [heads_q, selected_stride]
  const int* n_selected = nullptr;   // [heads_q]
  int selected_stride = 0;
  int heads_q = 1, heads_kv = 1, n_keys = 1, dim = 128;  // dim: 64 or 128
  float scale = 1.0f;
  float* out = nullptr;       // [heads_q, dim]
  void* workspace = nullptr;  // decode_workspace_bytes(...) bytes
};

int decode_splits(int selected_stride);
std::size_t decode_workspace_bytes(int heads_q, int dim, int selected_stride);
void sparse_decode(const SparseDecodeParams& params, cudaStream_t stream);

// Packs sign bits: logits [n, bits] float -> words [n, (bits+63)/64]; bit = logit >= 0.
void pack_signatures(const float* logits, int n, int bits, std::uint64_t* words, cudaStream_t stream);

}  // namespace hashhop::attn::cuda
