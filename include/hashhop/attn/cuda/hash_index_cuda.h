// CUDA hash index over key signatures (sm_90): open-addressing tables with linear probing, keys of one
// code chained through a per-key `next` array; streaming insert; lookup in expected O(1). Torch-free.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hashhop::attn::cuda {

// Exact mode (sampled_bits empty): one table keyed by the low `bits` bits of the signature.
// LSH mode: `tables` tables, each keyed by `bits_per_table` sampled bit positions (the same positions
// as attn::sampled_bit_positions, so candidates equal the CPU SignatureIndex's).
struct DeviceIndexLayout {
  int heads_kv = 1;
  int bits = 64;
  int tables = 1;
  int bits_per_table = 64;
  int max_keys = 1;   // keys per head the index can hold
  int capacity = 2;   // slots per table, a power of two >= 2 * max_keys (load <= 1/2)
};

// The index in device memory, carved from one allocation of index_bytes(layout).
struct DeviceIndex {
  DeviceIndexLayout layout;
  unsigned long long* codes = nullptr;  // [heads_kv * tables, capacity + 1]; the extra slot holds code ~0
  int* heads = nullptr;                 // same shape: most recently inserted key, -1 = empty
  int* next = nullptr;                  // [heads_kv * tables, max_keys]: the key inserted before, -1 = end
  int* sampled_bits = nullptr;          // [tables, bits_per_table], LSH mode only
};

// capacity chosen for max_keys; sampled: per-table bit positions (empty = exact mode).
DeviceIndexLayout index_layout(int heads_kv, int bits, int max_keys, const std::vector<std::vector<int>>& sampled);
std::size_t index_bytes(const DeviceIndexLayout& layout);
// Lays the index out in `memory`, uploads the sampled positions and empties every table.
DeviceIndex make_index(const DeviceIndexLayout& layout, void* memory, const std::vector<std::vector<int>>& sampled,
                       cudaStream_t stream);
// The same with the sampled positions already on the device ([tables, bits_per_table] int, null in exact
// mode), used in place (they must outlive the index): no host copy, so the ops stay free of syncs.
DeviceIndex make_index(const DeviceIndexLayout& layout, void* memory, const int* device_sampled_bits, cudaStream_t stream);

// Inserts keys [first_key, first_key + count) of every kv head; signatures [heads_kv, key_stride].
// Stream-ordered with lookups; keys must be < max_keys and inserted once.
void index_insert(const DeviceIndex& index, const std::uint64_t* signatures, int key_stride, int first_key, int count,
                  cudaStream_t stream);

struct IndexLookupParams {
  const std::uint64_t* key_signatures = nullptr;    // [heads_kv, key_stride]: to count a key once across tables
  int key_stride = 0;
  const std::uint64_t* query_signatures = nullptr;  // [heads_q, n_q]
  int heads_q = 1, n_q = 1;
  int n_keys = 0;       // keys inserted so far (the causal frame: query i sits at n_keys - n_q + i)
  bool causal = false;
  int max_candidates = 1;
  int* candidates = nullptr;  // [heads_q * n_q, max_candidates], in chain order (not sorted)
  int* counts = nullptr;      // [heads_q * n_q]: candidates written (<= max_candidates)
  int* totals = nullptr;      // [heads_q * n_q] or null: candidates found (> counts if truncated)
};

void index_lookup(const DeviceIndex& index, const IndexLookupParams& params, cudaStream_t stream);

}  // namespace hashhop::attn::cuda
