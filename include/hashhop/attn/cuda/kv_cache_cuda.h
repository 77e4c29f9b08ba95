// Appending to a batched KV cache on the GPU, with the keys' signature bits packed in the same pass
// (the decode API of docs/attention.md). Torch-free params; tested through tests/python/test_kv_cache_cuda.py.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "hashhop/attn/cuda/element.h"

namespace hashhop::attn::cuda {

// Caches [batch, heads_kv, capacity, dim] (k, v) and [batch, heads_kv, capacity, words] (packed signature
// words); lengths [batch] int32 on the device. New rows k_new, v_new [batch, heads_kv, t, dim] and their
// signature logits [batch, heads_kv, t, bits] land at at_b + j, where at_b is lengths[b] clamped to
// [0, capacity]. Rows that would pass the capacity are dropped and counted in dropped[b]; lengths[b] becomes
// at_b + (rows kept). Nothing waits for the device: the caller reads `dropped` when it synchronises anyway.
struct KvAppendParams {
  const void* k_new = nullptr;
  const void* v_new = nullptr;
  const void* logits = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  std::uint64_t* signatures = nullptr;
  int* lengths = nullptr;
  int* dropped = nullptr;
  int batch = 1, heads_kv = 1, t = 1, dim = 128, bits = 64, capacity = 1;
  Element element = Element::bf16;         // of k, v and both caches
  Element logits_element = Element::bf16;  // of the logits
};

void kv_cache_append(const KvAppendParams& params, cudaStream_t stream);

}  // namespace hashhop::attn::cuda
