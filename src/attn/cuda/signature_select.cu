// Signature packing and top-k key selection on the GPU (see signature_decode_cuda.h).
// Compared with the CPU reference by tests/attn/test_signature_cuda.cu; timed by bench/attn_bench.cpp.
#include <cub/block/block_scan.cuh>

#include <algorithm>

#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/signature_decode_cuda.h"

namespace hashhop::attn::cuda {
namespace {

constexpr int kBins = 256;
constexpr std::uint8_t kForced = 255;  // similarity given to sinks and window keys: above any real one (bits <= 128)
constexpr int kThreads = 256;
constexpr int kItemsPerThread = 8;
constexpr int kTile = kThreads * kItemsPerThread;

struct Workspace {
  std::uint8_t* similarity;     // [heads_q, n_keys]
  unsigned* histogram;          // [heads_q, kBins]
  int* threshold;               // [heads_q, 2]: threshold similarity, ties to keep
  int* tile_counts;             // [heads_q, tiles, 2]: above, ties
  int* tile_offsets;            // [heads_q, tiles, 2]: exclusive prefix of the above
};

int tiles_for(int n_keys) { return (n_keys + kTile - 1) / kTile; }

std::size_t align256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

Workspace carve(void* base, int heads_q, int n_keys) {
  auto* p = static_cast<char*>(base);
  Workspace w{};
  const std::size_t tiles = static_cast<std::size_t>(tiles_for(n_keys));
  w.similarity = reinterpret_cast<std::uint8_t*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * n_keys);
  w.histogram = reinterpret_cast<unsigned*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * kBins * sizeof(unsigned));
  w.threshold = reinterpret_cast<int*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * 2 * sizeof(int));
  w.tile_counts = reinterpret_cast<int*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * tiles * 2 * sizeof(int));
  w.tile_offsets = reinterpret_cast<int*>(p);
  return w;
}

// Similarity of every key to the query of its head, and a per-head histogram of similarities. Each warp
// counts into its own shared histogram (similarities crowd around bits/2, and warps of a block would
// otherwise contend for the same few counters); 64-bit signatures are read two keys per 16-byte load.
__device__ inline std::uint8_t similarity_of(const SignatureSelectParams& p, int j, int differing) {
  const bool forced = j < p.sinks || j >= p.n_keys - p.window;
  return forced ? kForced : static_cast<std::uint8_t>(p.bits - differing);
}

template <int kWords>
__global__ void hamming_scan_kernel(SignatureSelectParams p, Workspace w) {
  constexpr int kWarps = kThreads / 32;
  __shared__ unsigned histogram[kWarps][kBins];
  for (int b = threadIdx.x; b < kWarps * kBins; b += blockDim.x) (&histogram[0][0])[b] = 0;
  __syncthreads();
  const int head = blockIdx.y, warp = threadIdx.x / 32;
  const int kv = head / (p.heads_q / p.heads_kv);
  std::uint64_t query[kWords];
  for (int i = 0; i < kWords; ++i) query[i] = p.query_signatures[static_cast<std::size_t>(head) * kWords + i];
  const std::uint64_t* keys = p.key_signatures + static_cast<std::size_t>(kv) * p.n_keys * kWords;
  std::uint8_t* similarity = w.similarity + static_cast<std::size_t>(head) * p.n_keys;
  unsigned* counts = histogram[warp];
  const int stride = gridDim.x * blockDim.x;
  if constexpr (kWords == 1) {
    // Pairs of keys: one 16-byte load (keys are 16-byte aligned when n_keys is even; odd n reads singly).
    const bool paired = (p.n_keys % 2) == 0;
    const int pairs = paired ? p.n_keys / 2 : 0;
    for (int pair = blockIdx.x * blockDim.x + threadIdx.x; pair < pairs; pair += stride) {
      const ulonglong2 two = reinterpret_cast<const ulonglong2*>(keys)[pair];
      const std::uint8_t a = similarity_of(p, 2 * pair, __popcll(query[0] ^ two.x));
      const std::uint8_t b = similarity_of(p, 2 * pair + 1, __popcll(query[0] ^ two.y));
      reinterpret_cast<uchar2*>(similarity)[pair] = make_uchar2(a, b);
      atomicAdd(&counts[a], 1u);
      atomicAdd(&counts[b], 1u);
    }
    for (int j = 2 * pairs + blockIdx.x * blockDim.x + threadIdx.x; j < p.n_keys; j += stride) {
      const std::uint8_t s = similarity_of(p, j, __popcll(query[0] ^ keys[j]));
      similarity[j] = s;
      atomicAdd(&counts[s], 1u);
    }
  } else {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < p.n_keys; j += stride) {
      int differing = 0;
      for (int i = 0; i < kWords; ++i) differing += __popcll(query[i] ^ keys[static_cast<std::size_t>(j) * kWords + i]);
      const std::uint8_t s = similarity_of(p, j, differing);
      similarity[j] = s;
      atomicAdd(&counts[s], 1u);
    }
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kBins; b += blockDim.x) {
    unsigned total = 0;
    for (int v = 0; v < kWarps; ++v) total += histogram[v][b];
    if (total) atomicAdd(&w.histogram[static_cast<std::size_t>(head) * kBins + b], total);
  }
}

// Per head (one block of kBins threads): the similarity threshold t with count(> t) < budget <= count(>= t),
// and how many keys at t to keep. Thread i holds bin kBins-1-i, so an inclusive scan counts keys >= that bin.
__global__ void threshold_kernel(SignatureSelectParams p, Workspace w) {
  using Scan = cub::BlockScan<int, kBins>;
  __shared__ typename Scan::TempStorage storage;
  __shared__ int first;
  const int head = blockIdx.x, i = threadIdx.x;
  const unsigned* histogram = w.histogram + static_cast<std::size_t>(head) * kBins;
  const int count = static_cast<int>(histogram[kBins - 1 - i]);
  const int budget = min(p.n_keys, static_cast<int>(histogram[kForced]) + p.top_k);
  int at_least = 0;
  Scan(storage).InclusiveSum(count, at_least);
  if (i == 0) first = kBins;
  __syncthreads();
  if (at_least >= budget) atomicMin(&first, i);
  __syncthreads();
  if (i == first) {
    w.threshold[head * 2] = kBins - 1 - i;
    w.threshold[head * 2 + 1] = budget - (at_least - count);
    p.n_selected[head] = budget;
  }
}

// Per (tile, head): keys strictly above the threshold and keys at it.
__global__ void tile_count_kernel(SignatureSelectParams p, Workspace w) {
  using Reduce = cub::BlockScan<int, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const int head = blockIdx.y, tile = blockIdx.x;
  const int threshold = w.threshold[head * 2];
  const std::uint8_t* similarity = w.similarity + static_cast<std::size_t>(head) * p.n_keys;
  int above = 0, ties = 0;
  for (int i = 0; i < kItemsPerThread; ++i) {
    const int j = tile * kTile + threadIdx.x * kItemsPerThread + i;
    if (j < p.n_keys) {
      above += similarity[j] > threshold;
      ties += similarity[j] == threshold;
    }
  }
  int above_total = 0, ties_total = 0;
  Reduce(storage).ExclusiveSum(above, above, above_total);
  __syncthreads();
  Reduce(storage).ExclusiveSum(ties, ties, ties_total);
  if (threadIdx.x == 0) {
    const std::size_t at = (static_cast<std::size_t>(head) * gridDim.x + tile) * 2;
    w.tile_counts[at] = above_total;
    w.tile_counts[at + 1] = ties_total;
  }
}

// Per head: exclusive prefix sums of the tile counts, one block looping over the tiles.
__global__ void tile_scan_kernel(int tiles, Workspace w) {
  using Scan = cub::BlockScan<int, 1024>;
  __shared__ typename Scan::TempStorage storage;
  __shared__ int carry[2];
  const int head = blockIdx.x;
  if (threadIdx.x == 0) carry[0] = carry[1] = 0;
  __syncthreads();
  for (int base = 0; base < tiles; base += 1024) {
    const int tile = base + threadIdx.x;
    const std::size_t at = (static_cast<std::size_t>(head) * tiles + tile) * 2;
    for (int c = 0; c < 2; ++c) {
      const int value = tile < tiles ? w.tile_counts[at + c] : 0;
      int prefix = 0, total = 0;
      Scan(storage).ExclusiveSum(value, prefix, total);
      if (tile < tiles) w.tile_offsets[at + c] = carry[c] + prefix;
      __syncthreads();
      if (threadIdx.x == 0) carry[c] += total;
      __syncthreads();
    }
  }
}

// Writes the kept keys of every tile at their place in the ascending output list.
__global__ void tile_write_kernel(SignatureSelectParams p, Workspace w, int stride) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage storage;
  const int head = blockIdx.y, tile = blockIdx.x;
  const int threshold = w.threshold[head * 2];
  const int ties_wanted = w.threshold[head * 2 + 1];
  const std::size_t at = (static_cast<std::size_t>(head) * gridDim.x + tile) * 2;
  const int above_before = w.tile_offsets[at];
  const int ties_before = w.tile_offsets[at + 1];
  const std::uint8_t* similarity = w.similarity + static_cast<std::size_t>(head) * p.n_keys;
  std::uint8_t values[kItemsPerThread];
  int ties = 0;
  for (int i = 0; i < kItemsPerThread; ++i) {
    const int j = tile * kTile + threadIdx.x * kItemsPerThread + i;
    values[i] = j < p.n_keys ? similarity[j] : 0;
    ties += j < p.n_keys && values[i] == threshold;
  }
  int tie_rank = 0;
  Scan(storage).ExclusiveSum(ties, tie_rank);
  __syncthreads();
  tie_rank += ties_before;
  bool keep[kItemsPerThread];
  int kept = 0;
  for (int i = 0; i < kItemsPerThread; ++i) {
    const int j = tile * kTile + threadIdx.x * kItemsPerThread + i;
    const bool tie = j < p.n_keys && values[i] == threshold;
    keep[i] = j < p.n_keys && (values[i] > threshold || (tie && tie_rank < ties_wanted));
    tie_rank += tie;
    kept += keep[i];
  }
  int position = 0;
  Scan(storage).ExclusiveSum(kept, position);
  position += above_before + min(ties_before, ties_wanted);
  int* out = p.selected + static_cast<std::size_t>(head) * stride;
  for (int i = 0; i < kItemsPerThread; ++i) {
    if (keep[i]) out[position++] = tile * kTile + threadIdx.x * kItemsPerThread + i;
  }
}

__global__ void pack_kernel(const float* logits, int n, int bits, std::uint64_t* words) {
  const int n_words = (bits + 63) / 64;
  const std::size_t index = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= static_cast<std::size_t>(n) * n_words) return;
  const std::size_t row = index / n_words;
  const int word = static_cast<int>(index % n_words);
  std::uint64_t packed = 0;
  for (int b = word * 64; b < min(bits, word * 64 + 64); ++b) {
    if (logits[row * bits + b] >= 0.0f) packed |= 1ULL << (b - word * 64);
  }
  words[index] = packed;
}

}  // namespace

int max_selected(int n_keys, int sinks, int window, int top_k) {
  return std::max(1, std::min(n_keys, sinks + window + top_k));
}

std::size_t select_workspace_bytes(int heads_q, int n_keys) {
  const std::size_t tiles = static_cast<std::size_t>(tiles_for(n_keys));
  return align256(static_cast<std::size_t>(heads_q) * n_keys) + align256(static_cast<std::size_t>(heads_q) * kBins * sizeof(unsigned)) +
         align256(static_cast<std::size_t>(heads_q) * 2 * sizeof(int)) + 2 * align256(static_cast<std::size_t>(heads_q) * tiles * 2 * sizeof(int));
}

void scan_similarities(const SignatureSelectParams& p, cudaStream_t stream) {
  if (p.bits < 1 || p.bits > 128) throw std::invalid_argument("bits: the CUDA path supports 1..128");
  if (p.heads_q % p.heads_kv != 0) throw std::invalid_argument("heads_q: must be a multiple of heads_kv");
  const Workspace w = carve(p.workspace, p.heads_q, p.n_keys);
  HASHHOP_CUDA_CHECK(cudaMemsetAsync(w.histogram, 0, static_cast<std::size_t>(p.heads_q) * kBins * sizeof(unsigned), stream));
  const int scan_blocks = std::min(1024, (p.n_keys + kThreads - 1) / kThreads);
  const dim3 scan_grid(static_cast<unsigned>(scan_blocks), static_cast<unsigned>(p.heads_q));
  if (p.bits <= 64) {
    hamming_scan_kernel<1><<<scan_grid, kThreads, 0, stream>>>(p, w);
  } else {
    hamming_scan_kernel<2><<<scan_grid, kThreads, 0, stream>>>(p, w);
  }
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

void select_keys(const SignatureSelectParams& p, cudaStream_t stream) {
  scan_similarities(p, stream);
  const Workspace w = carve(p.workspace, p.heads_q, p.n_keys);
  threshold_kernel<<<p.heads_q, kBins, 0, stream>>>(p, w);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
  const int tiles = tiles_for(p.n_keys);
  const dim3 tile_grid(static_cast<unsigned>(tiles), static_cast<unsigned>(p.heads_q));
  tile_count_kernel<<<tile_grid, kThreads, 0, stream>>>(p, w);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
  tile_scan_kernel<<<p.heads_q, 1024, 0, stream>>>(tiles, w);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
  tile_write_kernel<<<tile_grid, kThreads, 0, stream>>>(p, w, max_selected(p.n_keys, p.sinks, p.window, p.top_k));
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

void pack_signatures(const float* logits, int n, int bits, std::uint64_t* words, cudaStream_t stream) {
  const std::size_t total = static_cast<std::size_t>(n) * ((bits + 63) / 64);
  if (total == 0) return;
  pack_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(logits, n, bits, words);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hashhop::attn::cuda
