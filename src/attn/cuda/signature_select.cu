// Signature packing and top-k key selection on the GPU (see signature_select_cuda.h).
// Compared with the CPU reference by tests/attn/test_attention_cuda.cu; timed by `hashhop attn-bench` (apps/hashhop/attn_bench_gpu.cpp).
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>

#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/signature_select_cuda.h"

namespace hashhop::attn::cuda {
namespace {

constexpr int kBins = 256;
constexpr std::uint8_t kForced = 255;  // similarity given to sinks and window keys: above any real one (bits <= 128)
constexpr int kThreads = 256;
constexpr int kItemsPerThread = 8;
constexpr int kTile = kThreads * kItemsPerThread;
constexpr int kScanKeysPerThread = 16;  // hamming_scan_kernel's work per thread, about (see scan_rows)

// Rows of one launch (a chunk of the heads_q * n_q query rows): the workspace is indexed by the row's
// place in the chunk, everything else by its global row first_row + local.
struct Workspace {
  std::uint8_t* similarity;     // [rows, similarity_stride(n_keys)]
  unsigned* histogram;          // [rows, kBins]
  int* threshold;               // [rows, 2]: threshold similarity, ties to keep
  int* tile_counts;             // [rows, tiles, 2]: above, ties
  int* tile_offsets;            // [rows, tiles, 2]: exclusive prefix of the above
  unsigned* tile_histograms;    // [rows, tiles, kBins]: each tile's own histogram (fused path only)
  int similarity_stride;
};

int tiles_for(int n_keys) { return (n_keys + kTile - 1) / kTile; }

// Rows of more than kRowKeys and at most kFusedTiles tiles (64K keys) are selected by two kernels and no
// memset: each scan block writes its tile's whole histogram (no zeroed global histogram, no atomics), and
// each write block sums the tiles' histograms itself, for the row's threshold and for the keys kept by the
// tiles before it (no count kernel). Every write block reads all tiles' histograms (a KB a tile, from L2),
// so longer rows, and launches of more than kFusedBlocks blocks (prefill: many rows), keep the count/write
// path. At 64K keys a decode step was a memset and four kernels; from Python it was bound by the launches
// (docs/results/attention.md). 64 rows of 64K keys (2,048 blocks) were measured faster fused.
constexpr int kRowKeys = 16384;  // rows up to this many keys: select_row_kernel (see there)
constexpr int kFusedTiles = 32, kFusedBlocks = 2048;
bool fused_keys(int n_keys) { return n_keys > kRowKeys && tiles_for(n_keys) <= kFusedTiles; }  // workspace: tile histograms
bool fused_launch(int n_keys, int rows) { return fused_keys(n_keys) && static_cast<long long>(rows) * tiles_for(n_keys) <= kFusedBlocks; }

std::size_t align256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

// Rows of similarities start 16-byte aligned, so the paired scan's 2-byte stores stay aligned in every row.
int similarity_stride(int n_keys) { return (n_keys + 15) / 16 * 16; }

Workspace carve(void* base, int heads_q, int n_keys) {
  auto* p = static_cast<char*>(base);
  Workspace w{};
  const std::size_t tiles = static_cast<std::size_t>(tiles_for(n_keys));
  w.similarity_stride = similarity_stride(n_keys);
  w.similarity = reinterpret_cast<std::uint8_t*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * w.similarity_stride);
  w.histogram = reinterpret_cast<unsigned*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * kBins * sizeof(unsigned));
  w.threshold = reinterpret_cast<int*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * 2 * sizeof(int));
  w.tile_counts = reinterpret_cast<int*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * tiles * 2 * sizeof(int));
  w.tile_offsets = reinterpret_cast<int*>(p);
  p += align256(static_cast<std::size_t>(heads_q) * tiles * 2 * sizeof(int));
  w.tile_histograms = reinterpret_cast<unsigned*>(p);
  return w;
}

// Keys a query row sees: all n_keys, or with causal the prefix up to its position n_keys - n_q + i.
__device__ inline int visible_keys(const SignatureSelectParams& p, int row) {
  if (p.lengths) return min(max(p.lengths[row / p.rows_per_length], 0), p.n_keys);
  return p.causal ? p.n_keys - p.n_q + row % p.n_q + 1 : p.n_keys;
}

__device__ inline int key_stride_of(const SignatureSelectParams& p) { return p.key_stride > 0 ? p.key_stride : p.n_keys; }

__device__ inline std::uint8_t similarity_of(const SignatureSelectParams& p, int j, int visible, int differing) {
  const bool forced = j < p.sinks || j >= visible - p.window;
  // Words packed with more bits than `bits` can differ in more places; such keys rank last, not wrap to 255.
  return forced ? kForced : static_cast<std::uint8_t>(max(p.bits - differing, 0));
}

// Similarities of a row's visible keys in [begin, end) (begin even) into `similarity` and counts into a
// block-private histogram: thread `start` of `stride` threads (a block or a whole grid row). 64-bit
// signatures are read two keys per 16-byte load.
template <int kWords>
__device__ void scan_row(const SignatureSelectParams& p, int row, int visible, std::uint8_t* similarity, unsigned* counts,
                         int start, int stride, int begin = 0, int end = INT_MAX) {
  const int stop = max(begin, min(end, visible));  // a tile past the visible keys scans nothing
  const int head = row / p.n_q, kv = head / (p.heads_q / p.heads_kv);
  std::uint64_t query[kWords];
  for (int i = 0; i < kWords; ++i) query[i] = p.query_signatures[static_cast<std::size_t>(row) * kWords + i];
  const int key_stride = key_stride_of(p);
  const std::uint64_t* keys = p.key_signatures + static_cast<std::size_t>(kv) * key_stride * kWords;
  if constexpr (kWords == 1) {
    // Pairs of keys: one 16-byte load (every head's keys are 16-byte aligned when key_stride is even;
    // otherwise every key is read singly). An odd last visible key is read singly.
    const bool paired = (key_stride % 2) == 0;
    const int pairs = paired ? stop / 2 : begin / 2;
    for (int pair = begin / 2 + start; pair < pairs; pair += stride) {
      const ulonglong2 two = reinterpret_cast<const ulonglong2*>(keys)[pair];
      const std::uint8_t a = similarity_of(p, 2 * pair, visible, __popcll(query[0] ^ two.x));
      const std::uint8_t b = similarity_of(p, 2 * pair + 1, visible, __popcll(query[0] ^ two.y));
      reinterpret_cast<uchar2*>(similarity)[pair] = make_uchar2(a, b);
      atomicAdd(&counts[a], 1u);
      atomicAdd(&counts[b], 1u);
    }
    for (int j = 2 * pairs + start; j < stop; j += stride) {
      const std::uint8_t s = similarity_of(p, j, visible, __popcll(query[0] ^ keys[j]));
      similarity[j] = s;
      atomicAdd(&counts[s], 1u);
    }
  } else {
    for (int j = begin + start; j < stop; j += stride) {
      int differing = 0;
      for (int i = 0; i < kWords; ++i) differing += __popcll(query[i] ^ keys[static_cast<std::size_t>(j) * kWords + i]);
      const std::uint8_t s = similarity_of(p, j, visible, differing);
      similarity[j] = s;
      atomicAdd(&counts[s], 1u);
    }
  }
}

// Similarity of every key to the query of its row, and the row's histogram of similarities, by a grid of
// blocks per row. Each warp counts into its own shared histogram (similarities crowd around bits/2, and warps
// of a block would otherwise contend for the same few counters); blocks add theirs into the zeroed global one.
template <int kWords>
__global__ void hamming_scan_kernel(SignatureSelectParams p, Workspace w, int first_row) {
  constexpr int kWarps = kThreads / 32;
  __shared__ unsigned histogram[kWarps][kBins];
  for (int b = threadIdx.x; b < kWarps * kBins; b += blockDim.x) (&histogram[0][0])[b] = 0;
  __syncthreads();
  const int local = blockIdx.y, row = first_row + local;
  scan_row<kWords>(p, row, visible_keys(p, row), w.similarity + static_cast<std::size_t>(local) * w.similarity_stride,
                   histogram[threadIdx.x / 32], blockIdx.x * blockDim.x + threadIdx.x, gridDim.x * blockDim.x);
  __syncthreads();
  for (int b = threadIdx.x; b < kBins; b += blockDim.x) {
    unsigned total = 0;
    for (int v = 0; v < kWarps; ++v) total += histogram[v][b];
    if (total) atomicAdd(&w.histogram[static_cast<std::size_t>(local) * kBins + b], total);
  }
}

// The fused path's scan (see kFusedTiles): block (tile, row) scans the tile's keys, the same kTile keys a
// write block later compacts, and stores its whole histogram, zeros included, so nothing needs zeroing.
template <int kWords>
__global__ void tile_histogram_kernel(SignatureSelectParams p, Workspace w, int first_row) {
  constexpr int kWarps = kThreads / 32;
  __shared__ unsigned histogram[kWarps][kBins];
  for (int b = threadIdx.x; b < kWarps * kBins; b += blockDim.x) (&histogram[0][0])[b] = 0;
  __syncthreads();
  const int local = blockIdx.y, row = first_row + local, tile = blockIdx.x;
  scan_row<kWords>(p, row, visible_keys(p, row), w.similarity + static_cast<std::size_t>(local) * w.similarity_stride,
                   histogram[threadIdx.x / 32], threadIdx.x, blockDim.x, tile * kTile, (tile + 1) * kTile);
  __syncthreads();
  unsigned* out = w.tile_histograms + (static_cast<std::size_t>(local) * gridDim.x + tile) * kBins;
  for (int b = threadIdx.x; b < kBins; b += blockDim.x) {
    unsigned total = 0;
    for (int v = 0; v < kWarps; ++v) total += histogram[v][b];
    out[b] = total;
  }
}

// Per row, by one block whose first kBins threads hold the bins: the similarity threshold t with count(> t) <
// budget <= count(>= t), and how many keys at t to keep. Thread i holds bin kBins-1-i, so an inclusive scan
// counts keys >= that bin. The budget of top_fraction is computed in double exactly as the CPU reference does.
// Every selection path uses it: every tile block of a tiled row recomputes it from the row's 1 KB histogram
// (cheaper than a launch of its own; tile 0 publishes it), select_row_kernel from its shared histograms, and
// the fused path's write blocks from the tiles' histograms (threshold_from_tile_histograms).
struct Threshold {
  int similarity, ties_wanted, budget;
};

template <class Scan>
__device__ Threshold row_threshold(const SignatureSelectParams& p, int count, int forced, int visible,
                                   typename Scan::TempStorage& storage) {
  // `count`: this thread's bin, kBins-1-threadIdx.x (0 for threads past kBins); `forced`: the row's count of
  // bin kForced (sinks and window).
  __shared__ int first;
  __shared__ Threshold found;
  const int i = threadIdx.x;
  const long long wanted = p.top_k > 0 ? p.top_k : static_cast<long long>(ceil(p.top_fraction * visible));
  const int budget = static_cast<int>(min(static_cast<long long>(visible), static_cast<long long>(forced) + wanted));
  int at_least = 0;
  Scan(storage).InclusiveSum(count, at_least);
  if (i == 0) first = kBins;
  __syncthreads();
  if (i < kBins && at_least >= budget) atomicMin(&first, i);
  __syncthreads();
  if (i == first) found = {kBins - 1 - i, budget - (at_least - count), budget};
  __syncthreads();
  return found;
}

// The whole selection of one row in one block, for rows of at most kRowKeys keys: scan into block-private
// histograms, threshold, and compaction of contiguous per-thread ranges with two block scans. One launch
// instead of a memset and three kernels (what a short decode step is bound by); the similarities stay in
// the workspace row (L2). Same threshold rule, tie order and output as the tiled path. One SM reads the
// whole row, so longer rows go tiled: at 64K keys a row this kernel made a decode step slower on an H200
// (0.042 ms replayed from a graph against 0.029 tiled, docs/results/attention.md).
constexpr int kRowThreads = 1024;

template <int kWords>
__global__ void __launch_bounds__(kRowThreads) select_row_kernel(SignatureSelectParams p, Workspace w, int stride, int first_row) {
  constexpr int kHistograms = 16;  // warps share a histogram in pairs: 16 KB of shared memory
  using Scan = cub::BlockScan<int, kRowThreads>;
  __shared__ unsigned histogram[kHistograms][kBins];
  __shared__ typename Scan::TempStorage storage;
  __shared__ int forced;
  for (int b = threadIdx.x; b < kHistograms * kBins; b += blockDim.x) (&histogram[0][0])[b] = 0;
  __syncthreads();
  const int local = blockIdx.x, row = first_row + local, visible = visible_keys(p, row);
  std::uint8_t* similarity = w.similarity + static_cast<std::size_t>(local) * w.similarity_stride;
  scan_row<kWords>(p, row, visible, similarity, histogram[(threadIdx.x / 32) % kHistograms], threadIdx.x, blockDim.x);
  __syncthreads();
  // Thread i < kBins holds bin kBins-1-i, summed over the block's histograms (row_threshold's layout).
  int count = 0;
  if (threadIdx.x < kBins) {
    for (int v = 0; v < kHistograms; ++v) count += static_cast<int>(histogram[v][kBins - 1 - threadIdx.x]);
    if (threadIdx.x == 0) forced = count;  // bin kForced = kBins - 1
  }
  __syncthreads();
  const Threshold found = row_threshold<Scan>(p, count, forced, visible, storage);
  const int budget = found.budget, ties_wanted = found.ties_wanted;
  // Each thread takes a contiguous range of 16-byte chunks, so kept keys come out in ascending order.
  const int per = (visible + kRowThreads * 16 - 1) / (kRowThreads * 16) * 16;
  const int begin = min(visible, static_cast<int>(threadIdx.x) * per), end = min(visible, begin + per);
  const int t = found.similarity;
  int above = 0, ties = 0;
  for (int c = begin; c < end; c += 16) {
    const uint4 chunk = *reinterpret_cast<const uint4*>(similarity + c);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&chunk);
    for (int e = 0; e < 16 && c + e < end; ++e) {
      above += bytes[e] > t;
      ties += bytes[e] == t;
    }
  }
  int tie_rank = 0, position = 0;
  Scan(storage).ExclusiveSum(ties, tie_rank);
  __syncthreads();
  Scan(storage).ExclusiveSum(above + min(ties, max(ties_wanted - tie_rank, 0)), position);
  int* out = p.selected + static_cast<std::size_t>(row) * stride;
  for (int c = begin; c < end; c += 16) {
    const uint4 chunk = *reinterpret_cast<const uint4*>(similarity + c);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&chunk);
    for (int e = 0; e < 16 && c + e < end; ++e) {
      const bool keep = bytes[e] > t || (bytes[e] == t && tie_rank++ < ties_wanted);
      if (keep) out[position++] = c + e;
    }
  }
  if (threadIdx.x == 0) {
    p.n_selected[row] = budget;
    if (p.decode_arrivals) p.decode_arrivals[row] = 0;
  }
}

// Per (tile, row): keys strictly above the threshold and keys at it. Tile 0 also writes the row's threshold
// (for tile_write_kernel), its count and, when asked, zeroes its decode arrival counter.
__global__ void tile_count_kernel(SignatureSelectParams p, Workspace w, int first_row) {
  static_assert(kThreads == kBins, "one thread per histogram bin");
  using Reduce = cub::BlockScan<int, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const int head = blockIdx.y, tile = blockIdx.x;  // `head`: the row's place in the chunk
  const int row = first_row + head, visible = visible_keys(p, row);
  const unsigned* histogram = w.histogram + static_cast<std::size_t>(head) * kBins;
  const Threshold t = row_threshold<Reduce>(p, static_cast<int>(histogram[kBins - 1 - threadIdx.x]),
                                            static_cast<int>(histogram[kForced]), visible, storage);
  if (tile == 0 && threadIdx.x == 0) {
    w.threshold[head * 2] = t.similarity;
    w.threshold[head * 2 + 1] = t.ties_wanted;
    p.n_selected[row] = t.budget;
    if (p.decode_arrivals) p.decode_arrivals[row] = 0;
  }
  const int threshold = t.similarity;
  const std::uint8_t* similarity = w.similarity + static_cast<std::size_t>(head) * w.similarity_stride;
  int above = 0, ties = 0;
  for (int i = 0; i < kItemsPerThread; ++i) {
    const int j = tile * kTile + threadIdx.x * kItemsPerThread + i;
    if (j < visible) {
      above += similarity[j] > threshold;
      ties += similarity[j] == threshold;
    }
  }
  int above_total = 0, ties_total = 0;
  __syncthreads();  // row_threshold's scan used the storage
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

// Keys above the threshold and ties in the tiles before `tile` of a row, summed by the block itself: with at
// most kThreads tiles a row this replaces tile_scan_kernel's launch.
template <class Scan>
__device__ int2 tiles_before(const Workspace& w, int head, int tile, int tiles, typename Scan::TempStorage& storage) {
  __shared__ int2 sums;
  const int t = threadIdx.x;
  const std::size_t at = (static_cast<std::size_t>(head) * tiles + t) * 2;
  const bool earlier = t < tile;
  int prefix = 0, above = 0, ties = 0;
  Scan(storage).ExclusiveSum(earlier ? w.tile_counts[at] : 0, prefix, above);
  __syncthreads();
  Scan(storage).ExclusiveSum(earlier ? w.tile_counts[at + 1] : 0, prefix, ties);
  if (t == 0) sums = make_int2(above, ties);
  __syncthreads();
  return sums;
}

// The fused path (see kFusedTiles): from the tiles' histograms, the row's threshold (tile 0 publishes the
// row's count and zeroes its decode arrival counter, as tile_count_kernel does) and the keys above it and at
// it in the tiles before `tile`. Thread i holds bin kBins-1-i, row_threshold's layout.
struct Before {
  int threshold, ties_wanted, budget, above, ties;
};

template <class Scan>
__device__ Before threshold_from_tile_histograms(const SignatureSelectParams& p, const Workspace& w, int head, int tile,
                                                 int visible, typename Scan::TempStorage& storage) {
  static_assert(kThreads == kBins, "one thread per histogram bin");
  __shared__ int forced, ties_before;
  const int bin = kBins - 1 - static_cast<int>(threadIdx.x);
  const unsigned* histograms = w.tile_histograms + static_cast<std::size_t>(head) * gridDim.x * kBins;
  int count = 0, before = 0;  // this bin over all tiles, and over the tiles before this one
#pragma unroll  // all kFusedTiles loads in flight at once: one L2 latency, not one per tile
  for (int t = 0; t < kFusedTiles; ++t) {
    const int c = t < static_cast<int>(gridDim.x) ? static_cast<int>(histograms[static_cast<std::size_t>(t) * kBins + bin]) : 0;
    count += c;
    before += t < tile ? c : 0;
  }
  if (threadIdx.x == 0) forced = count;  // bin kForced
  __syncthreads();
  const Threshold found = row_threshold<Scan>(p, count, forced, visible, storage);
  if (bin == found.similarity) ties_before = before;
  int above = 0, unused = 0;
  __syncthreads();  // row_threshold's scan used the storage; ties_before is written
  Scan(storage).ExclusiveSum(bin > found.similarity ? before : 0, unused, above);
  __syncthreads();  // the caller's scans reuse the storage; ties_before is read after this barrier
  return {found.similarity, found.ties_wanted, found.budget, above, ties_before};
}

// How a write block learns the keys kept by the tiles before it.
enum class Prefix {
  offsets,      // tile_scan_kernel wrote them to w.tile_offsets
  tile_counts,  // the block sums tile_count_kernel's counts of the earlier tiles (at most kThreads tiles)
  histograms,   // the fused path: threshold and counts from the tiles' histograms (no count kernel)
};

// Writes the kept keys of every tile at their place in the ascending output list.
__global__ void tile_write_kernel(SignatureSelectParams p, Workspace w, int stride, int first_row, Prefix prefix) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage storage;
  const int head = blockIdx.y, tile = blockIdx.x;  // `head`: the row's place in the chunk
  const int row = first_row + head, visible = visible_keys(p, row);
  const std::size_t at = (static_cast<std::size_t>(head) * gridDim.x + tile) * 2;
  int threshold = 0, ties_wanted = 0, above_before = 0, ties_before = 0;
  if (prefix == Prefix::histograms) {
    const Before before = threshold_from_tile_histograms<Scan>(p, w, head, tile, visible, storage);
    threshold = before.threshold;
    ties_wanted = before.ties_wanted;
    above_before = before.above;
    ties_before = before.ties;
    if (tile == 0 && threadIdx.x == 0) {
      p.n_selected[row] = before.budget;
      if (p.decode_arrivals) p.decode_arrivals[row] = 0;
    }
  } else {
    threshold = w.threshold[head * 2];
    ties_wanted = w.threshold[head * 2 + 1];
    if (prefix == Prefix::offsets) {
      above_before = w.tile_offsets[at];
      ties_before = w.tile_offsets[at + 1];
    } else {
      const int2 before = tiles_before<Scan>(w, head, tile, static_cast<int>(gridDim.x), storage);
      above_before = before.x;
      ties_before = before.y;
    }
  }
  const std::uint8_t* similarity = w.similarity + static_cast<std::size_t>(head) * w.similarity_stride;
  std::uint8_t values[kItemsPerThread];
  int ties = 0;
  for (int i = 0; i < kItemsPerThread; ++i) {
    const int j = tile * kTile + threadIdx.x * kItemsPerThread + i;
    values[i] = j < visible ? similarity[j] : 0;
    ties += j < visible && values[i] == threshold;
  }
  int tie_rank = 0;
  Scan(storage).ExclusiveSum(ties, tie_rank);
  __syncthreads();
  tie_rank += ties_before;
  bool keep[kItemsPerThread];
  int kept = 0;
  for (int i = 0; i < kItemsPerThread; ++i) {
    const int j = tile * kTile + threadIdx.x * kItemsPerThread + i;
    const bool tie = j < visible && values[i] == threshold;
    keep[i] = j < visible && (values[i] > threshold || (tie && tie_rank < ties_wanted));
    tie_rank += tie;
    kept += keep[i];
  }
  int position = 0;
  Scan(storage).ExclusiveSum(kept, position);
  position += above_before + min(ties_before, ties_wanted);
  int* out = p.selected + static_cast<std::size_t>(row) * stride;
  for (int i = 0; i < kItemsPerThread; ++i) {
    if (keep[i]) out[position++] = tile * kTile + threadIdx.x * kItemsPerThread + i;
  }
}

template <class T>
__global__ void pack_kernel(const T* logits, int n, int bits, std::uint64_t* words) {
  const int n_words = (bits + 63) / 64;
  const std::size_t index = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= static_cast<std::size_t>(n) * n_words) return;
  const std::size_t row = index / n_words;
  const int word = static_cast<int>(index % n_words);
  std::uint64_t packed = 0;
  for (int b = word * 64; b < min(bits, word * 64 + 64); ++b) {
    if (to_float(logits[row * bits + b]) >= 0.0f) packed |= 1ULL << (b - word * 64);
  }
  words[index] = packed;
}

}  // namespace

int max_selected(int n_keys, int sinks, int window, int top_k) {
  const long long wanted = static_cast<long long>(sinks) + window + top_k;
  return static_cast<int>(std::max(1LL, std::min(static_cast<long long>(n_keys), wanted)));
}

int selected_stride(const SignatureSelectParams& p) {
  const long long budget = p.top_k > 0 ? p.top_k : static_cast<long long>(std::ceil(p.top_fraction * p.n_keys));
  return max_selected(p.n_keys, p.sinks, p.window, static_cast<int>(std::min<long long>(budget, INT_MAX / 4)));
}

std::size_t select_workspace_bytes(int rows, int n_keys) {
  const std::size_t tiles = static_cast<std::size_t>(tiles_for(n_keys));
  const std::size_t tile_histograms = fused_keys(n_keys) ? static_cast<std::size_t>(rows) * tiles * kBins * sizeof(unsigned) : 0;
  return align256(static_cast<std::size_t>(rows) * similarity_stride(n_keys)) + align256(static_cast<std::size_t>(rows) * kBins * sizeof(unsigned)) +
         align256(static_cast<std::size_t>(rows) * 2 * sizeof(int)) + 2 * align256(static_cast<std::size_t>(rows) * tiles * 2 * sizeof(int)) +
         tile_histograms;
}

namespace {

void check_select(const SignatureSelectParams& p) {
  if (p.bits < 1 || p.bits > 128) throw std::invalid_argument("bits: the CUDA path supports 1..128");
  if (p.heads_q < 1 || p.heads_kv < 1 || p.heads_q % p.heads_kv != 0) throw std::invalid_argument("heads_q: must be a multiple of heads_kv");
  if (p.n_q < 1 || p.n_keys < 1) throw std::invalid_argument("n_q, n_keys: must be >= 1");
  if (p.causal && p.n_q > p.n_keys) throw std::invalid_argument("n_q: causal needs n_q <= n_keys");
  if (p.key_stride != 0 && p.key_stride < p.n_keys) throw std::invalid_argument("key_stride: must be >= n_keys");
  if (static_cast<long long>(p.heads_q) * p.n_q > INT_MAX) throw std::invalid_argument("heads_q * n_q: must fit in int");
  if (p.lengths && (p.causal || p.rows_per_length < 1))
    throw std::invalid_argument("lengths: needs rows_per_length >= 1 and no causal mask");
}

// Rows per launch: what the workspace holds, and at most the grid's y limit.
int chunk_rows(int rows, int workspace_rows) {
  const int held = workspace_rows > 0 ? std::min(rows, workspace_rows) : rows;
  return std::min(held, 65535);
}

void scan_rows(const SignatureSelectParams& p, const Workspace& w, int first_row, int rows, cudaStream_t stream) {
  HASHHOP_CUDA_CHECK(cudaMemsetAsync(w.histogram, 0, static_cast<std::size_t>(rows) * kBins * sizeof(unsigned), stream));
  // About 16 keys a thread (blocks rounded up): a block's fixed cost (zeroing and merging 8 warp histograms,
  // 256 global atomics) outweighed its work at 4 keys a thread. 1M keys on an H200 (Nsight Compute): 1,024 blocks a
  // row took 31.8 us at 48% of DRAM bandwidth, 256 blocks 23.0 us at 66%.
  const int scan_blocks = std::clamp((p.n_keys + kThreads * kScanKeysPerThread - 1) / (kThreads * kScanKeysPerThread), 1, 1024);
  const dim3 scan_grid(static_cast<unsigned>(scan_blocks), static_cast<unsigned>(rows));
  if (p.bits <= 64) {
    hamming_scan_kernel<1><<<scan_grid, kThreads, 0, stream>>>(p, w, first_row);
  } else {
    hamming_scan_kernel<2><<<scan_grid, kThreads, 0, stream>>>(p, w, first_row);
  }
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void scan_similarities(const SignatureSelectParams& p, cudaStream_t stream) {
  check_select(p);
  const int rows = p.heads_q * p.n_q;
  const Workspace w = carve(p.workspace, chunk_rows(rows, p.workspace_rows), p.n_keys);
  scan_rows(p, w, 0, chunk_rows(rows, p.workspace_rows), stream);
}

void select_keys(const SignatureSelectParams& p, cudaStream_t stream) {
  check_select(p);
  const int rows = p.heads_q * p.n_q, chunk = chunk_rows(rows, p.workspace_rows);
  const Workspace w = carve(p.workspace, chunk, p.n_keys);
  const int tiles = tiles_for(p.n_keys), stride = selected_stride(p);
  // Chunks reuse one workspace; stream order keeps them apart.
  for (int first = 0; first < rows; first += chunk) {
    const int count = std::min(chunk, rows - first);
    if (p.n_keys <= kRowKeys) {  // short rows: the whole selection in one block per row, one launch
      if (p.bits <= 64) {
        select_row_kernel<1><<<count, kRowThreads, 0, stream>>>(p, w, stride, first);
      } else {
        select_row_kernel<2><<<count, kRowThreads, 0, stream>>>(p, w, stride, first);
      }
      HASHHOP_CUDA_CHECK(cudaGetLastError());
      continue;
    }
    const dim3 tile_grid(static_cast<unsigned>(tiles), static_cast<unsigned>(count));
    if (fused_launch(p.n_keys, count)) {  // two launches: per-tile histograms, then threshold and compaction
      if (p.bits <= 64) {
        tile_histogram_kernel<1><<<tile_grid, kThreads, 0, stream>>>(p, w, first);
      } else {
        tile_histogram_kernel<2><<<tile_grid, kThreads, 0, stream>>>(p, w, first);
      }
      HASHHOP_CUDA_CHECK(cudaGetLastError());
      tile_write_kernel<<<tile_grid, kThreads, 0, stream>>>(p, w, stride, first, Prefix::histograms);
      HASHHOP_CUDA_CHECK(cudaGetLastError());
      continue;
    }
    scan_rows(p, w, first, count, stream);
    tile_count_kernel<<<tile_grid, kThreads, 0, stream>>>(p, w, first);
    HASHHOP_CUDA_CHECK(cudaGetLastError());
    // Up to kThreads tiles (n_keys <= 512K) each write block sums the tiles before it; beyond, one scan launch.
    const Prefix prefix = tiles > kThreads ? Prefix::offsets : Prefix::tile_counts;
    if (prefix == Prefix::offsets) {
      tile_scan_kernel<<<count, 1024, 0, stream>>>(tiles, w);
      HASHHOP_CUDA_CHECK(cudaGetLastError());
    }
    tile_write_kernel<<<tile_grid, kThreads, 0, stream>>>(p, w, stride, first, prefix);
    HASHHOP_CUDA_CHECK(cudaGetLastError());
  }
}

void pack_signatures(const float* logits, int n, int bits, std::uint64_t* words, cudaStream_t stream) {
  pack_signatures(logits, Element::fp32, n, bits, words, stream);
}

void pack_signatures(const void* logits, Element element, int n, int bits, std::uint64_t* words, cudaStream_t stream) {
  const std::size_t total = static_cast<std::size_t>(n) * ((bits + 63) / 64);
  if (total == 0) return;
  const auto blocks = static_cast<unsigned>((total + 255) / 256);
  switch (element) {
    case Element::bf16: pack_kernel<<<blocks, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(logits), n, bits, words); break;
    case Element::fp16: pack_kernel<<<blocks, 256, 0, stream>>>(static_cast<const __half*>(logits), n, bits, words); break;
    case Element::fp32: pack_kernel<<<blocks, 256, 0, stream>>>(static_cast<const float*>(logits), n, bits, words); break;
  }
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hashhop::attn::cuda
