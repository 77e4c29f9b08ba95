// Bucket hash attention on the GPU (bucket_attention_cuda.h): stable radix sorts of queries and keys by (round,
// head, bucket), bucket ranges, tiles of 64 x 64 (bucket_tiles_mma.cu, or fp32 FMAs below), rounds merged by lse.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "bucket_tiles.h"
#include "hashhop/attn/cuda/bucket_attention_cuda.h"
#include "hashhop/attn/cuda/cuda_check.h"

namespace hashhop::attn::cuda {
namespace {

constexpr int kBlockQ = kBucketBlockRows, kBlockK = 64, kThreads = 256, kMaxRounds = kBucketMaxRounds;

int bits_for(long long count) {  // ceil(log2(count)), 0 for 1
  int bits = 0;
  while ((1LL << bits) < count) ++bits;
  return bits;
}

std::size_t align256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

struct Sizes {
  std::size_t q_total, k_total, table, round_rows;
  int end_bit;
};

Sizes sizes_of(const BucketAttentionParams& p) {
  auto positive = [](int value, const char* name) {
    if (value < 1) throw std::invalid_argument(std::string("bucket_attention: ") + name + " must be >= 1, got " + std::to_string(value));
  };
  positive(p.heads_q, "heads_q");
  positive(p.heads_kv, "heads_kv");
  positive(p.n_q, "n_q");
  positive(p.n_k, "n_k");
  positive(p.rounds, "rounds");
  if (p.heads_q % p.heads_kv) throw std::invalid_argument("bucket_attention: heads_q must be a multiple of heads_kv");
  if (p.dim != 64 && p.dim != 128) throw std::invalid_argument("bucket_attention: dim must be 64 or 128, got " + std::to_string(p.dim));
  if (p.rounds > kMaxRounds) throw std::invalid_argument("bucket_attention: rounds must be <= 8 on the GPU");
  if (p.causal && p.n_q > p.n_k) throw std::invalid_argument("bucket_attention: causal needs n_q <= n_k");
  if (p.bucket_bits < 0 || p.bucket_bits > 24) throw std::invalid_argument("bucket_attention: bucket_bits must be in [0, 24]");
  const int end_bit = p.bucket_bits + bits_for(static_cast<long long>(p.rounds) * std::max(p.heads_q, p.heads_kv));
  if (end_bit > 32) throw std::invalid_argument("bucket_attention: bucket_bits + log2(rounds * heads) must be <= 32");
  if (static_cast<long long>(p.rounds) * p.heads_q > 65535)  // one grid row per (round, head)
    throw std::invalid_argument("bucket_attention: rounds * heads_q must be <= 65535 on the GPU");
  Sizes s{};
  s.q_total = static_cast<std::size_t>(p.rounds) * p.heads_q * p.n_q;
  s.k_total = static_cast<std::size_t>(p.rounds) * p.heads_kv * p.n_k;
  s.table = static_cast<std::size_t>(p.rounds) * p.heads_kv << p.bucket_bits;
  s.round_rows = p.rounds > 1 ? s.q_total : 0;
  s.end_bit = std::max(1, end_bit);
  if (s.q_total > INT_MAX || s.k_total > INT_MAX) throw std::invalid_argument("bucket_attention: rounds * heads * n must fit in int");
  return s;
}

std::size_t sort_temp_bytes(std::size_t items, int end_bit) {
  std::size_t bytes = 0;
  cub::DoubleBuffer<std::uint32_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<int> values(nullptr, nullptr);
  HASHHOP_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, values, static_cast<int>(items), 0, end_bit));
  return bytes;
}

struct Workspace {
  std::uint32_t* q_codes[2];
  int* q_order[2];
  std::uint32_t* k_codes[2];
  int* k_order[2];
  int* k_start;
  int* k_end;
  float* round_out;  // [rounds, heads_q, n_q, dim] when rounds > 1
  float* round_lse;  // [rounds, heads_q, n_q]
  void* sort_temp;
  std::size_t sort_temp_bytes;
};

// One carving routine both sizes the workspace (base = nullptr) and lays it out.
Workspace carve(const BucketAttentionParams& p, const Sizes& s, void* base, std::size_t* total) {
  auto* at = static_cast<char*>(base);
  std::size_t offset = 0;
  auto take = [&](std::size_t bytes) {
    void* where = at ? at + offset : nullptr;
    offset += align256(bytes);
    return where;
  };
  Workspace w{};
  for (int b = 0; b < 2; ++b) {
    w.q_codes[b] = static_cast<std::uint32_t*>(take(s.q_total * sizeof(std::uint32_t)));
    w.q_order[b] = static_cast<int*>(take(s.q_total * sizeof(int)));
    w.k_codes[b] = static_cast<std::uint32_t*>(take(s.k_total * sizeof(std::uint32_t)));
    w.k_order[b] = static_cast<int*>(take(s.k_total * sizeof(int)));
  }
  w.k_start = static_cast<int*>(take(s.table * sizeof(int)));
  w.k_end = static_cast<int*>(take(s.table * sizeof(int)));
  w.round_out = static_cast<float*>(take(s.round_rows * p.dim * sizeof(float)));
  w.round_lse = static_cast<float*>(take(s.round_rows * sizeof(float)));
  w.sort_temp_bytes = std::max(sort_temp_bytes(s.q_total, s.end_bit), sort_temp_bytes(s.k_total, s.end_bit));
  w.sort_temp = take(w.sort_temp_bytes);
  if (total) *total = offset;
  return w;
}

// codes[segment * n + i] = segment << bits | bucket, order = i: sorting by code groups (round, head, bucket).
__global__ void codes_kernel(const std::uint32_t* buckets, int total, int n, int bits, std::uint32_t* codes, int* order) {
  const int index = blockIdx.x * blockDim.x + threadIdx.x;
  if (index >= total) return;
  const std::uint32_t mask = bits == 0 ? 0u : (bits >= 32 ? ~0u : (1u << bits) - 1);
  codes[index] = (static_cast<std::uint32_t>(index / n) << bits) | (buckets[index] & mask);
  order[index] = index % n;
}

// [start, end) of every (round, kv head, bucket) code in the sorted keys.
__global__ void bucket_ranges_kernel(const std::uint32_t* codes, int total, int* start, int* end) {
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= total) return;
  const std::uint32_t code = codes[s];
  if (s == 0 || codes[s - 1] != code) start[code] = s;
  if (s == total - 1 || codes[s + 1] != code) end[code] = s + 1;
}

template <class T, int D>
constexpr int shared_bytes() {
  return kBlockQ * (D + 4) * 4 + kBlockQ * (kBlockK + 1) * 4 + 2 * kBlockK * (D + 2) * static_cast<int>(sizeof(T));
}

// One block: 64 consecutive sorted queries of one (round, head). Each keeps [lo, hi) of the sorted keys
// (its bucket, cut at its causal position); the block walks the union in tiles of 64 keys. Thread
// (ty, tx) owns query rows 4ty..4ty+3, score columns tx + 16c and output columns 2tx + 32j (+1).
// K and V tiles sit in shared memory in the input's own type T (bf16, fp16 or fp32); math is float.
template <class T, int D>
__global__ void __launch_bounds__(kThreads) bucket_tile_kernel(BucketAttentionParams p, BucketSorted s) {
  constexpr int QS = D + 4, KS = D + 2, PS = kBlockK + 1, J = D / 32;
  constexpr int kVectors = 8 * static_cast<int>(sizeof(T)) / 16;  // 16-byte loads per 8-element chunk
  extern __shared__ __align__(16) unsigned char smem[];
  float* Qs = reinterpret_cast<float*>(smem);
  float* Ps = Qs + kBlockQ * QS;
  T* Ks = reinterpret_cast<T*>(Ps + kBlockQ * PS);
  T* Vs = Ks + kBlockK * KS;
  const T* q_data = static_cast<const T*>(p.q);
  const T* k_data = static_cast<const T*>(p.k);
  const T* v_data = static_cast<const T*>(p.v);
  __shared__ BucketBlockQueries queries;
  __shared__ std::uint32_t k_prev[kMaxRounds - 1][kBlockK];

  const int segment = blockIdx.y, round = segment / p.heads_q, head = segment % p.heads_q;
  const int kv = head / (p.heads_q / p.heads_kv);
  const int t = threadIdx.x, ty = t / 16, tx = t % 16;
  const std::size_t q_base = static_cast<std::size_t>(segment) * p.n_q;
  const std::uint32_t mask = p.bucket_bits == 0 ? 0u : (1u << p.bucket_bits) - 1;
  load_block_queries(p, s, queries);
  const int* q_index = queries.index;
  const int* q_lo = queries.lo;
  const int* q_hi = queries.hi;
  const auto& q_prev = queries.prev;
  for (int e = t; e < kBlockQ * D / 2; e += kThreads) {
    const int row = e / (D / 2), col = (e % (D / 2)) * 2;
    float2 value = make_float2(0.f, 0.f);
    if (q_index[row] >= 0) {
      value = load2(q_data + (static_cast<std::size_t>(head) * p.n_q + q_index[row]) * D + col);
      value.x *= p.scale, value.y *= p.scale;
    }
    *reinterpret_cast<float2*>(Qs + row * QS + col) = value;
  }
  float m[4], l[4], acc[4][J][2];
  for (int r = 0; r < 4; ++r) {
    m[r] = -INFINITY, l[r] = 0.f;
    for (int j = 0; j < J; ++j) acc[r][j][0] = acc[r][j][1] = 0.f;
  }
  const int lo = queries.range[0], hi = queries.range[1];
  const std::size_t kv_base = static_cast<std::size_t>(kv) * p.n_k;
  for (int tile = lo; tile < hi; tile += kBlockK) {
    for (int e = t; e < kBlockK * (D / 8); e += kThreads) {  // 16-byte chunks of gathered key/value rows
      const int row = e / (D / 8), chunk = (e % (D / 8)) * 8;
      // Shared rows are padded (KS = D + 2), so chunks are stored as 4-byte words.
      auto* kd = reinterpret_cast<std::uint32_t*>(Ks + row * KS + chunk);
      auto* vd = reinterpret_cast<std::uint32_t*>(Vs + row * KS + chunk);
      for (int part = 0; part < kVectors; ++part) {
        uint4 kk = make_uint4(0, 0, 0, 0), vv = kk;
        if (tile + row < hi) {
          const std::size_t src = (kv_base + s.k_order[tile + row]) * D + chunk;
          kk = reinterpret_cast<const uint4*>(k_data + src)[part];
          vv = reinterpret_cast<const uint4*>(v_data + src)[part];
        }
        kd[4 * part] = kk.x, kd[4 * part + 1] = kk.y, kd[4 * part + 2] = kk.z, kd[4 * part + 3] = kk.w;
        vd[4 * part] = vv.x, vd[4 * part + 1] = vv.y, vd[4 * part + 2] = vv.z, vd[4 * part + 3] = vv.w;
      }
    }
    if (t < kBlockK && round > 0) {
      const int position = tile + t < hi ? s.k_order[tile + t] : 0;
      for (int r = 0; r < round; ++r) k_prev[r][t] = p.k_buckets[(static_cast<std::size_t>(r) * p.heads_kv + kv) * p.n_k + position] & mask;
    }
    __syncthreads();
    float score[4][4] = {};
    for (int d = 0; d < D; d += 2) {
      float2 qv[4], kf[4];
      for (int r = 0; r < 4; ++r) qv[r] = *reinterpret_cast<const float2*>(Qs + (ty * 4 + r) * QS + d);
      for (int c = 0; c < 4; ++c) kf[c] = load2(Ks + (tx + 16 * c) * KS + d);
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) score[r][c] += qv[r].x * kf[c].x + qv[r].y * kf[c].y;
    }
    for (int r = 0; r < 4; ++r) {
      const int row = ty * 4 + r;
      float tile_max = -INFINITY;
      for (int c = 0; c < 4; ++c) {
        const int col = tx + 16 * c, sorted = tile + col;
        bool valid = sorted >= q_lo[row] && sorted < q_hi[row];
        for (int pr = 0; pr < round && valid; ++pr) valid = q_prev[pr][row] != k_prev[pr][col];  // counted in an earlier round (ids masked as the buckets are)
        score[r][c] = valid ? score[r][c] : -INFINITY;
        tile_max = fmaxf(tile_max, score[r][c]);
      }
      for (int offset = 8; offset > 0; offset /= 2) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
      const float new_max = fmaxf(m[r], tile_max);
      const float correction = new_max == -INFINITY ? 1.f : __expf(m[r] - new_max);
      float sum = 0.f;
      for (int c = 0; c < 4; ++c) {
        const float weight = score[r][c] == -INFINITY ? 0.f : __expf(score[r][c] - new_max);
        Ps[row * PS + tx + 16 * c] = weight;
        sum += weight;
      }
      for (int offset = 8; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      l[r] = l[r] * correction + sum;
      m[r] = new_max;
      for (int j = 0; j < J; ++j) acc[r][j][0] *= correction, acc[r][j][1] *= correction;
    }
    __syncthreads();
    for (int c = 0; c < kBlockK; ++c) {
      float weight[4];
      for (int r = 0; r < 4; ++r) weight[r] = Ps[(ty * 4 + r) * PS + c];
      for (int j = 0; j < J; ++j) {
        const float2 vf = load2(Vs + c * KS + 2 * tx + 32 * j);
        for (int r = 0; r < 4; ++r) acc[r][j][0] += weight[r] * vf.x, acc[r][j][1] += weight[r] * vf.y;
      }
    }
    __syncthreads();
  }
  for (int r = 0; r < 4; ++r) {
    const int row = ty * 4 + r, i = q_index[row];
    if (i < 0) continue;
    const float inverse = l[r] > 0.f ? 1.f / l[r] : 0.f;
    float* out = s.out + (q_base + i) * D;
    for (int j = 0; j < J; ++j) {
      *reinterpret_cast<float2*>(out + 2 * tx + 32 * j) = make_float2(acc[r][j][0] * inverse, acc[r][j][1] * inverse);
    }
    if (s.lse && tx == 0) s.lse[q_base + i] = l[r] > 0.f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// Rounds into one softmax: out = sum_r exp(lse_r - lse) out_r, lse = logsumexp_r lse_r.
__global__ void merge_rounds_kernel(BucketAttentionParams p, const float* round_out, const float* round_lse) {
  const std::size_t row = blockIdx.x, rows = static_cast<std::size_t>(p.heads_q) * p.n_q;
  float best = -INFINITY;
  for (int r = 0; r < p.rounds; ++r) best = fmaxf(best, round_lse[r * rows + row]);
  float total = 0.f;
  if (best != -INFINITY)
    for (int r = 0; r < p.rounds; ++r) total += __expf(round_lse[r * rows + row] - best);
  const float lse = best == -INFINITY ? -INFINITY : best + logf(total);
  for (int d = threadIdx.x; d < p.dim; d += blockDim.x) {
    float value = 0.f;
    if (best != -INFINITY)
      for (int r = 0; r < p.rounds; ++r) value += __expf(round_lse[r * rows + row] - lse) * round_out[(r * rows + row) * p.dim + d];
    p.out[row * p.dim + d] = value;
  }
  if (p.lse && threadIdx.x == 0) p.lse[row] = lse;
}

template <class F>
__global__ void lsh_ids_kernel(const F* projected, int n, int columns, std::uint32_t* ids) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n) return;
  const F* x = projected + static_cast<std::size_t>(row) * columns;
  F best = -INFINITY;
  std::uint32_t bucket = 0;
  for (int c = 0; c < columns; ++c) {
    if (x[c] > best) best = x[c], bucket = static_cast<std::uint32_t>(c);
    if (-x[c] > best) best = -x[c], bucket = static_cast<std::uint32_t>(columns + c);
  }
  ids[row] = bucket;
}

int blocks_for(std::size_t items, int threads) { return static_cast<int>((items + threads - 1) / threads); }

void sort_pairs(const Workspace& w, std::uint32_t* codes[2], int* order[2], std::size_t items, int end_bit, cudaStream_t stream) {
  cub::DoubleBuffer<std::uint32_t> keys(codes[0], codes[1]);
  cub::DoubleBuffer<int> values(order[0], order[1]);
  std::size_t bytes = w.sort_temp_bytes;
  HASHHOP_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(w.sort_temp, bytes, keys, values, static_cast<int>(items), 0, end_bit, stream));
  // The sorted data sits in whichever buffer cub chose; make it buffer 0 for the kernels.
  if (keys.Current() != codes[0]) std::swap(codes[0], codes[1]);
  if (values.Current() != order[0]) std::swap(order[0], order[1]);
}

template <class T, int D>
void launch_tiles(const BucketAttentionParams& p, const BucketSorted& sorted, cudaStream_t stream) {
  launch_bucket_blocks(bucket_tile_kernel<T, D>, kThreads, shared_bytes<T, D>(), p, sorted, stream);
}

template <class T>
void launch_tiles(const BucketAttentionParams& p, const BucketSorted& sorted, cudaStream_t stream) {
  if (p.dim == 64) launch_tiles<T, 64>(p, sorted, stream); else launch_tiles<T, 128>(p, sorted, stream);
}

}  // namespace

std::size_t bucket_workspace_bytes(const BucketAttentionParams& p) {
  std::size_t total = 0;
  carve(p, sizes_of(p), nullptr, &total);
  return total;
}

void bucket_attention(const BucketAttentionParams& p, cudaStream_t stream) {
  const Sizes s = sizes_of(p);
  if (!p.q || !p.k || !p.v || !p.q_buckets || !p.k_buckets || !p.out || !p.workspace) {
    throw std::invalid_argument("bucket_attention: q, k, v, q_buckets, k_buckets, out and workspace must be set");
  }
  Workspace w = carve(p, s, p.workspace, nullptr);
  codes_kernel<<<blocks_for(s.q_total, 256), 256, 0, stream>>>(p.q_buckets, static_cast<int>(s.q_total), p.n_q, p.bucket_bits, w.q_codes[0], w.q_order[0]);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
  codes_kernel<<<blocks_for(s.k_total, 256), 256, 0, stream>>>(p.k_buckets, static_cast<int>(s.k_total), p.n_k, p.bucket_bits, w.k_codes[0], w.k_order[0]);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
  sort_pairs(w, w.q_codes, w.q_order, s.q_total, s.end_bit, stream);
  sort_pairs(w, w.k_codes, w.k_order, s.k_total, s.end_bit, stream);
  HASHHOP_CUDA_CHECK(cudaMemsetAsync(w.k_start, 0, s.table * sizeof(int), stream));
  HASHHOP_CUDA_CHECK(cudaMemsetAsync(w.k_end, 0, s.table * sizeof(int), stream));
  bucket_ranges_kernel<<<blocks_for(s.k_total, 256), 256, 0, stream>>>(w.k_codes[0], static_cast<int>(s.k_total), w.k_start, w.k_end);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
  const bool merge = p.rounds > 1;
  const BucketSorted sorted{w.q_codes[0], w.q_order[0], w.k_order[0], w.k_start, w.k_end, merge ? w.round_out : p.out, merge ? w.round_lse : p.lse};
  if (p.tensor_cores && p.element != Element::fp32) {
    launch_bucket_tiles_mma(p, sorted, stream);
  } else {
    switch (p.element) {
      case Element::bf16: launch_tiles<__nv_bfloat16>(p, sorted, stream); break;
      case Element::fp16: launch_tiles<__half>(p, sorted, stream); break;
      case Element::fp32: launch_tiles<float>(p, sorted, stream); break;
    }
  }
  if (merge) {
    merge_rounds_kernel<<<static_cast<unsigned>(static_cast<std::size_t>(p.heads_q) * p.n_q), 128, 0, stream>>>(p, w.round_out, w.round_lse);
    HASHHOP_CUDA_CHECK(cudaGetLastError());
  }
}

void lsh_bucket_ids(const float* projected, int n, int columns, std::uint32_t* ids, cudaStream_t stream) {
  if (n <= 0) return;
  lsh_ids_kernel<<<blocks_for(static_cast<std::size_t>(n), 256), 256, 0, stream>>>(projected, n, columns, ids);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

void lsh_bucket_ids(const double* projected, int n, int columns, std::uint32_t* ids, cudaStream_t stream) {
  if (n <= 0) return;
  lsh_ids_kernel<<<blocks_for(static_cast<std::size_t>(n), 256), 256, 0, stream>>>(projected, n, columns, ids);
  HASHHOP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hashhop::attn::cuda
