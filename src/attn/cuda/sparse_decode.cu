// Split-K exact softmax attention of every query row over a gathered list of keys (see
// sparse_decode_cuda.h). Warps stream 4 key rows at a time in 16-byte chunks; blocks write
// (max, sum, acc) partials that the row's last block (given arrival counters) or a second kernel merges.
// Templated on the element type (bf16, fp16, fp32).
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <stdexcept>

#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/sparse_decode_cuda.h"

namespace hashhop::attn::cuda {
namespace {

constexpr int kWarps = 4;

// Keys per block. A block's warps walk its keys 16 at a time, each step a dependent gather from HBM, so a
// block of 256 keys takes 16 such latencies: at 2,048 keys a row (64K keys at k = n/32) that was 14 us for
// 8 rows on an H200, with 64 blocks for 132 SMs. So a launch starts from 64 keys per block and doubles it
// (up to 1,024) while the grid would exceed kTargetBlocks, about four blocks per SM of an H100/H200: 8 rows
// of 2,048 keys get 256 blocks of 64 keys, 64 such rows 512 blocks of 256 (64 keys a block there made the
// step 8% slower: more partials to write and merge). Long lists, 8 rows (H200, attn-bench alternated):
// at most 256 keys a block, a step over 4M keys took 0.415 ms and over 16M 1.565 ms; at most 512, 0.353 and
// 1.343 (device run 27); at most 1,024, 0.334 and 1.238 (run 28).
constexpr int kMinKeysPerSplit = 64, kMaxKeysPerSplit = 1024, kTargetBlocks = 512;

int keys_per_split(int rows, int selected_stride) {
  int keys = kMinKeysPerSplit;
  while (keys < kMaxKeysPerSplit && static_cast<long long>(rows) * ((selected_stride + keys - 1) / keys) > kTargetBlocks) keys *= 2;
  return keys;
}

struct Partials {
  float* acc;  // [chunk rows, splits, dim]
  float* ml;   // [chunk rows, splits, 2]: running max and sum
  int keys_per_split;
};

Partials carve(void* base, int heads_q, int dim, int splits, int keys) {
  auto* acc = static_cast<float*>(base);
  return {acc, acc + static_cast<std::size_t>(heads_q) * splits * dim, keys};
}

// Merges the `used` partials of one row (one block's threads split the dims). Partials are read through L2
// (__ldcg): in the fused path they were written by other blocks of the same launch.
__device__ void merge_row(const SparseDecodeParams& p, const Partials& partials, int splits, int local, int row_index) {
  const int used = min(splits, (p.n_selected[row_index] + partials.keys_per_split - 1) / partials.keys_per_split);
  float global_max = -FLT_MAX;
  for (int s = 0; s < used; ++s) global_max = fmaxf(global_max, __ldcg(&partials.ml[(static_cast<std::size_t>(local) * splits + s) * 2]));
  float total = 0.f;
  for (int s = 0; s < used; ++s) {
    const std::size_t row = static_cast<std::size_t>(local) * splits + s;
    total += __ldcg(&partials.ml[row * 2 + 1]) * __expf(__ldcg(&partials.ml[row * 2]) - global_max);
  }
  for (int d = threadIdx.x; d < p.dim; d += blockDim.x) {
    float value = 0.f;
    for (int s = 0; s < used; ++s) {
      const std::size_t row = static_cast<std::size_t>(local) * splits + s;
      value += __ldcg(&partials.acc[row * p.dim + d]) * __expf(__ldcg(&partials.ml[row * 2]) - global_max);
    }
    store(p.out, static_cast<std::size_t>(row_index) * p.dim + d, total > 0.f ? value / total : 0.f, p.out_element);
  }
  if (p.lse && threadIdx.x == 0) p.lse[row_index] = total > 0.f ? global_max + logf(total) : -INFINITY;
}

__global__ void combine_kernel(SparseDecodeParams p, Partials partials, int splits, int first_row) {
  merge_row(p, partials, splits, blockIdx.x, first_row + blockIdx.x);  // blockIdx.x: the row's place in the chunk
}

// A warp works on 4 keys at once, 8 lanes per key row, each lane loading 16-byte chunks (8 bf16) of
// K and V: 4 rows in flight per warp instead of 1, whole 16-byte transactions. Each 8-lane group keeps
// its own running (max, sum, acc); groups and then warps are merged at the end.
// Rows are query rows (head * n_q + i); a launch covers rows first_row + blockIdx.y.
template <class T, int D>
__global__ void decode_kernel(SparseDecodeParams p, Partials partials, int splits, int first_row) {
  constexpr int kGroupLanes = 8, kGroups = 32 / kGroupLanes, kChunks = D / 64;  // 8-element chunks per lane
  constexpr int kPerLane = kChunks * 8;
  __shared__ float warp_acc[kWarps][D];
  __shared__ float warp_ml[kWarps][2];
  const int local = blockIdx.y, row_index = first_row + local, split = blockIdx.x;
  const int head = row_index / p.n_q;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = lane / kGroupLanes, member = lane % kGroupLanes;
  const int kv = head / (p.heads_q / p.heads_kv);
  const T* q_row = static_cast<const T*>(p.q) + static_cast<std::size_t>(row_index) * D;
  // Lane `member` owns dims [(member + 8c) * 8, +8) for c < kChunks.
  float q[kPerLane];
  for (int c = 0; c < kChunks; ++c) {
    load8(q_row + (member + kGroupLanes * c) * 8, q + c * 8);
    for (int e = 0; e < 8; ++e) q[c * 8 + e] *= p.scale;
  }
  const int count = p.n_selected[row_index];
  const int begin = split * partials.keys_per_split, end = min(count, begin + partials.keys_per_split);
  const int* selected = p.selected + static_cast<std::size_t>(row_index) * p.selected_stride;
  const T* k_base = static_cast<const T*>(p.k) + static_cast<std::size_t>(kv) * p.n_keys * D;
  const T* v_base = static_cast<const T*>(p.v) + static_cast<std::size_t>(kv) * p.n_keys * D;
  // The split's key indices first, in one coalesced read: each step's K and V gathers then wait for one
  // memory latency, not two (index, then row). At 1M keys the decode was 38% of DRAM bandwidth with the
  // index read inside the loop (Nsight Compute, docs/results/attention.md).
  __shared__ int keys[kMaxKeysPerSplit];
  for (int n = begin + static_cast<int>(threadIdx.x); n < end; n += blockDim.x) keys[n - begin] = selected[n];
  __syncthreads();
  float running_max = -FLT_MAX, running_sum = 0.f, acc[kPerLane] = {};
  for (int base = begin + warp * kGroups; base < end; base += kWarps * kGroups) {
    const int n = base + group;
    const bool active = n < end;
    float k_val[kPerLane], v_val[kPerLane];
    if (active) {
      const std::size_t row = static_cast<std::size_t>(keys[n - begin]) * D;
      for (int c = 0; c < kChunks; ++c) {
        load8(k_base + row + (member + kGroupLanes * c) * 8, k_val + c * 8);
        load8(v_base + row + (member + kGroupLanes * c) * 8, v_val + c * 8);
      }
    }
    float dot = 0.f;
    if (active) {
      for (int e = 0; e < kPerLane; ++e) dot += q[e] * k_val[e];
    }
    for (int offset = kGroupLanes / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    if (!active) continue;
    const float new_max = fmaxf(running_max, dot);
    const float correction = __expf(running_max - new_max);
    const float weight = __expf(dot - new_max);
    running_sum = running_sum * correction + weight;
    for (int e = 0; e < kPerLane; ++e) acc[e] = acc[e] * correction + weight * v_val[e];
    running_max = new_max;
  }
  // Merge the 4 groups of the warp (same member lanes hold the same dims), then the warps.
  for (int offset = kGroupLanes; offset < 32; offset *= 2) {
    const float other_max = __shfl_xor_sync(0xffffffffu, running_max, offset);
    const float other_sum = __shfl_xor_sync(0xffffffffu, running_sum, offset);
    const float merged = fmaxf(running_max, other_max);
    const float mine = __expf(running_max - merged), theirs = __expf(other_max - merged);
    for (int e = 0; e < kPerLane; ++e) acc[e] = acc[e] * mine + __shfl_xor_sync(0xffffffffu, acc[e], offset) * theirs;
    running_sum = running_sum * mine + other_sum * theirs;
    running_max = merged;
  }
  if (group == 0) {
    for (int c = 0; c < kChunks; ++c)
      for (int e = 0; e < 8; ++e) warp_acc[warp][(member + kGroupLanes * c) * 8 + e] = acc[c * 8 + e];
  }
  if (lane == 0) {
    warp_ml[warp][0] = running_max;
    warp_ml[warp][1] = running_sum;
  }
  __syncthreads();
  float block_max = -FLT_MAX;
  for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, warp_ml[w][0]);
  const std::size_t out_row = static_cast<std::size_t>(local) * splits + split;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float sum = 0.f;
    for (int w = 0; w < kWarps; ++w) sum += warp_acc[w][d] * __expf(warp_ml[w][0] - block_max);
    partials.acc[out_row * D + d] = sum;
  }
  if (threadIdx.x == 0) {
    float sum = 0.f;
    for (int w = 0; w < kWarps; ++w) sum += warp_ml[w][1] * __expf(warp_ml[w][0] - block_max);
    partials.ml[out_row * 2] = block_max;
    partials.ml[out_row * 2 + 1] = sum;
  }
  if (!p.arrivals) return;
  // Threadfence reduction: publish this block's partial, count it in; the row's last block merges.
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&p.arrivals[row_index], 1) == splits - 1;
  if (last) __threadfence();  // acquire side: the other blocks' partials are read after this
  __syncthreads();
  if (!last) return;
  merge_row(p, partials, splits, local, row_index);
  if (threadIdx.x == 0) p.arrivals[row_index] = 0;  // every split has arrived: ready for the next step's decode
}

template <class T>
void launch_decode(const SparseDecodeParams& p, const Partials& partials, int splits, int first_row, int rows, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(rows));
  switch (p.dim) {
    case 64: decode_kernel<T, 64><<<grid, kWarps * 32, 0, stream>>>(p, partials, splits, first_row); break;
    case 128: decode_kernel<T, 128><<<grid, kWarps * 32, 0, stream>>>(p, partials, splits, first_row); break;
    default: throw std::invalid_argument("dim: the CUDA decode supports 64 and 128");
  }
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// Splits of each row when a workspace is sized for (and a launch covers) `rows` rows. A launch over fewer
// rows than its workspace holds uses the workspace's split count, so its partials always fit.
int decode_splits(int rows, int selected_stride) {
  const int keys = keys_per_split(rows, selected_stride);
  return std::max(1, (selected_stride + keys - 1) / keys);
}

std::size_t decode_workspace_bytes(int rows, int dim, int selected_stride) {
  return static_cast<std::size_t>(rows) * decode_splits(rows, selected_stride) * (dim + 2) * sizeof(float);
}

void sparse_decode(const SparseDecodeParams& p, cudaStream_t stream) {
  if (p.heads_q < 1 || p.heads_kv < 1 || p.heads_q % p.heads_kv != 0) throw std::invalid_argument("heads_q: must be a multiple of heads_kv");
  if (p.dim != 64 && p.dim != 128) throw std::invalid_argument("dim: the CUDA decode supports 64 and 128");
  if (p.n_q < 1) throw std::invalid_argument("n_q: must be >= 1");
  if (static_cast<long long>(p.heads_q) * p.n_q > INT_MAX) throw std::invalid_argument("heads_q * n_q: must fit in int");
  const int rows = p.heads_q * p.n_q;
  // Rows per launch: what the workspace holds, at most the grid's y limit; chunks reuse the workspace in stream order.
  // Splits follow the rows the workspace was sized for (decode_workspace_bytes), never a smaller chunk's.
  const int sized_rows = p.workspace_rows > 0 ? p.workspace_rows : rows;
  const int chunk = std::min(std::min(rows, sized_rows), 65535);
  const int keys = keys_per_split(sized_rows, p.selected_stride);
  const int splits = decode_splits(sized_rows, p.selected_stride);
  const Partials partials = carve(p.workspace, chunk, p.dim, splits, keys);
  for (int first = 0; first < rows; first += chunk) {
    const int count = std::min(chunk, rows - first);
    switch (p.element) {
      case Element::bf16: launch_decode<__nv_bfloat16>(p, partials, splits, first, count, stream); break;
      case Element::fp16: launch_decode<__half>(p, partials, splits, first, count, stream); break;
      case Element::fp32: launch_decode<float>(p, partials, splits, first, count, stream); break;
    }
    if (!p.arrivals) {
      combine_kernel<<<count, 128, 0, stream>>>(p, partials, splits, first);
      HASHHOP_CUDA_CHECK(cudaGetLastError());
    }
  }
}

}  // namespace hashhop::attn::cuda
