// Hash index on the GPU (see hash_index_cuda.h): slots are claimed with atomicCAS on the code, keys are
// pushed onto the slot's chain with atomicExch, so a batch of keys inserts in one launch with no locks.
// Checked against the CPU SignatureIndex by `hashhop attn-check --device cuda`.
#include <stdexcept>
#include <string>

#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/hash_index_cuda.h"

namespace hashhop::attn::cuda {
namespace {

constexpr unsigned long long kEmpty = ~0ULL;  // the code ~0 itself lives in the extra slot at `capacity`

std::size_t align256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

__host__ __device__ inline unsigned long long mix(unsigned long long x) {  // SplitMix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

__device__ inline unsigned long long table_code(const DeviceIndex& index, int table, unsigned long long signature) {
  const DeviceIndexLayout& l = index.layout;
  if (!index.sampled_bits) return l.bits == 64 ? signature : signature & ((1ULL << l.bits) - 1);
  unsigned long long code = 0;
  const int* bits = index.sampled_bits + table * l.bits_per_table;
  for (int b = 0; b < l.bits_per_table; ++b) code |= ((signature >> bits[b]) & 1ULL) << b;
  return code;
}

// The slot of `code` in table (kv, table), claiming an empty one when `claim`; -1 if absent.
__device__ inline long long find_slot(const DeviceIndex& index, std::size_t table_base, unsigned long long code, bool claim) {
  const int capacity = index.layout.capacity;
  if (code == kEmpty) return static_cast<long long>(table_base) + capacity;
  unsigned s = static_cast<unsigned>(mix(code)) & (capacity - 1);
  for (int probe = 0; probe < capacity; ++probe, s = (s + 1) & (capacity - 1)) {
    unsigned long long* slot = index.codes + table_base + s;
    unsigned long long seen = *reinterpret_cast<volatile unsigned long long*>(slot);
    if (seen == kEmpty) {
      if (!claim) return -1;
      seen = atomicCAS(slot, kEmpty, code);
      if (seen == kEmpty) return static_cast<long long>(table_base) + s;
    }
    if (seen == code) return static_cast<long long>(table_base) + s;
  }
  return -1;  // unreachable at load <= 1/2
}

__global__ void clear_kernel(DeviceIndex index, std::size_t slots) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= slots) return;
  index.codes[i] = kEmpty;
  index.heads[i] = -1;
}

__global__ void insert_kernel(DeviceIndex index, const std::uint64_t* signatures, int key_stride, int first_key, int count) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int kv = blockIdx.y;
  if (n >= count) return;
  const DeviceIndexLayout& l = index.layout;
  const int key = first_key + n;
  const unsigned long long signature = signatures[static_cast<std::size_t>(kv) * key_stride + key];
  for (int t = 0; t < l.tables; ++t) {
    const std::size_t table = static_cast<std::size_t>(kv) * l.tables + t;
    const long long slot = find_slot(index, table * (l.capacity + 1), table_code(index, t, signature), true);
    if (slot < 0) continue;
    const int previous = atomicExch(index.heads + slot, key);
    index.next[table * l.max_keys + key] = previous;
  }
}

__global__ void lookup_kernel(DeviceIndex index, IndexLookupParams p) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;  // head * n_q + query
  if (row >= p.heads_q * p.n_q) return;
  const DeviceIndexLayout& l = index.layout;
  const int head = row / p.n_q, query = row % p.n_q;
  const int kv = head / (p.heads_q / l.heads_kv);
  const int last = p.causal ? p.n_keys - p.n_q + query : p.n_keys - 1;
  const unsigned long long signature = p.query_signatures[row];
  int* out = p.candidates + static_cast<std::size_t>(row) * p.max_candidates;
  int found = 0;
  for (int t = 0; t < l.tables; ++t) {
    const std::size_t table = static_cast<std::size_t>(kv) * l.tables + t;
    const long long slot = find_slot(index, table * (l.capacity + 1), table_code(index, t, signature), false);
    if (slot < 0) continue;
    for (int key = index.heads[slot]; key >= 0; key = index.next[table * l.max_keys + key]) {
      if (key > last) continue;
      bool seen = false;  // already a candidate through an earlier table
      const unsigned long long key_signature = p.key_signatures[static_cast<std::size_t>(kv) * p.key_stride + key];
      for (int earlier = 0; earlier < t && !seen; ++earlier) seen = table_code(index, earlier, key_signature) == table_code(index, earlier, signature);
      if (seen) continue;
      if (found < p.max_candidates) out[found] = key;
      ++found;
    }
  }
  p.counts[row] = min(found, p.max_candidates);
  if (p.totals) p.totals[row] = found;
}

}  // namespace

DeviceIndexLayout index_layout(int heads_kv, int bits, int max_keys, const std::vector<std::vector<int>>& sampled) {
  if (heads_kv < 1) throw std::invalid_argument("index_layout: heads_kv must be >= 1");
  if (bits < 1 || bits > 64) throw std::invalid_argument("index_layout: bits must be in [1, 64]");
  if (max_keys < 1 || max_keys > (1 << 29)) throw std::invalid_argument("index_layout: max_keys must be in [1, 2^29]");
  DeviceIndexLayout l;
  l.heads_kv = heads_kv;
  l.bits = bits;
  l.max_keys = max_keys;
  l.tables = sampled.empty() ? 1 : static_cast<int>(sampled.size());
  l.bits_per_table = sampled.empty() ? bits : static_cast<int>(sampled[0].size());
  for (const auto& table : sampled) {
    if (static_cast<int>(table.size()) != l.bits_per_table) throw std::invalid_argument("index_layout: every table samples the same number of bits");
    for (int b : table) if (b < 0 || b >= bits) throw std::invalid_argument("index_layout: sampled bit " + std::to_string(b) + " outside the signature");
  }
  l.capacity = 2;
  while (l.capacity < 2 * max_keys) l.capacity *= 2;
  return l;
}

std::size_t index_bytes(const DeviceIndexLayout& l) {
  const std::size_t tables = static_cast<std::size_t>(l.heads_kv) * l.tables;
  const std::size_t slots = tables * (l.capacity + 1);
  return align256(slots * sizeof(unsigned long long)) + align256(slots * sizeof(int)) +
         align256(tables * l.max_keys * sizeof(int)) + align256(static_cast<std::size_t>(l.tables) * l.bits_per_table * sizeof(int));
}

DeviceIndex make_index(const DeviceIndexLayout& l, void* memory, const std::vector<std::vector<int>>& sampled, cudaStream_t stream) {
  const std::size_t tables = static_cast<std::size_t>(l.heads_kv) * l.tables;
  const std::size_t slots = tables * (l.capacity + 1);
  auto* at = static_cast<char*>(memory);
  DeviceIndex index;
  index.layout = l;
  index.codes = reinterpret_cast<unsigned long long*>(at);
  at += align256(slots * sizeof(unsigned long long));
  index.heads = reinterpret_cast<int*>(at);
  at += align256(slots * sizeof(int));
  index.next = reinterpret_cast<int*>(at);
  at += align256(tables * l.max_keys * sizeof(int));
  if (!sampled.empty()) {
    std::vector<int> flat;
    for (const auto& table : sampled) flat.insert(flat.end(), table.begin(), table.end());
    index.sampled_bits = reinterpret_cast<int*>(at);
    // Synchronous copy: `flat` dies with this call.
    HASHHOP_CUDA_CHECK(cudaMemcpy(index.sampled_bits, flat.data(), flat.size() * sizeof(int), cudaMemcpyHostToDevice));
  }
  clear_kernel<<<static_cast<unsigned>((slots + 255) / 256), 256, 0, stream>>>(index, slots);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
  return index;
}

DeviceIndex make_index(const DeviceIndexLayout& l, void* memory, const int* device_sampled_bits, cudaStream_t stream) {
  DeviceIndex index = make_index(l, memory, std::vector<std::vector<int>>{}, stream);
  index.sampled_bits = const_cast<int*>(device_sampled_bits);
  return index;
}

void index_insert(const DeviceIndex& index, const std::uint64_t* signatures, int key_stride, int first_key, int count, cudaStream_t stream) {
  if (count <= 0) return;
  if (first_key < 0 || first_key + count > index.layout.max_keys || first_key + count > key_stride) {
    throw std::invalid_argument("index_insert: keys [" + std::to_string(first_key) + ", " + std::to_string(first_key + count) +
                                ") exceed max_keys " + std::to_string(index.layout.max_keys) + " or key_stride " + std::to_string(key_stride));
  }
  const dim3 grid(static_cast<unsigned>((count + 255) / 256), static_cast<unsigned>(index.layout.heads_kv));
  insert_kernel<<<grid, 256, 0, stream>>>(index, signatures, key_stride, first_key, count);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

void index_lookup(const DeviceIndex& index, const IndexLookupParams& p, cudaStream_t stream) {
  if (p.heads_q < 1 || p.heads_q % index.layout.heads_kv) throw std::invalid_argument("index_lookup: heads_q must be a multiple of heads_kv");
  if (p.max_candidates < 1) throw std::invalid_argument("index_lookup: max_candidates must be >= 1");
  if (p.causal && p.n_q > p.n_keys) throw std::invalid_argument("index_lookup: causal needs n_q <= n_keys");
  if (p.n_keys > p.key_stride || p.n_keys > index.layout.max_keys) {
    throw std::invalid_argument("index_lookup: n_keys " + std::to_string(p.n_keys) + " exceeds key_stride or max_keys");
  }
  const int rows = p.heads_q * p.n_q;
  lookup_kernel<<<(rows + 127) / 128, 128, 0, stream>>>(index, p);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hashhop::attn::cuda
