// The GPU body of `hashhop attn-bench`: PyTorch SDPA (flash, cuDNN) against our CUDA kernels in the same
// process, CUDA-event medians, random data (labelled). Built only against CUDA LibTorch (`cmake --preset gpu`).
#include "attn_bench.h"

#include <stdexcept>

#ifndef HASHHOP_WITH_TORCH_CUDA

namespace hashhop::cli {
nlohmann::json run_attention_bench(const AttentionBenchOptions&) {
  throw std::runtime_error("this hashhop has no CUDA LibTorch; build it on the GPU machine with `cmake --preset gpu` "
                           "(scripts/gpu-check.sh builds and runs it)");
}
}  // namespace hashhop::cli

#else

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "hashhop/attn/bucket_attention.h"
#include "hashhop/attn/cuda/bucket_attention_cuda.h"
#include "hashhop/attn/cuda/cuda_check.h"
#include "hashhop/attn/cuda/hash_index_cuda.h"
#include "hashhop/attn/cuda/signature_select_cuda.h"
#include "hashhop/attn/cuda/sparse_decode_cuda.h"

namespace hashhop::cli {
namespace {

namespace hc = attn::cuda;
// What the tables time comes from the registry's benchmark entries (attention_cases.h).
const attn::BenchmarkCase& kTopK = attn::benchmark_case("decode/signature_topk");
const attn::BenchmarkCase& kIndex = attn::benchmark_case("decode/index");
const attn::BenchmarkCase& kBucket = attn::benchmark_case("prefill/bucket");
const int kHeads = kTopK.heads, kDim = kTopK.dim, kBits = kTopK.options.bits;
constexpr std::int64_t kChunkRows = 1 << 20;  // float32 temporaries in 1M-row chunks keep 16M tokens within 80 GB

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

double median_ms(const std::function<void()>& fn, int warmup, int repeats) {
  const cudaStream_t stream = current_stream();
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t start, stop;
  HASHHOP_CUDA_CHECK(cudaEventCreate(&start));
  HASHHOP_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> times;
  for (int i = 0; i < repeats; ++i) {
    HASHHOP_CUDA_CHECK(cudaEventRecord(start, stream));
    fn();
    HASHHOP_CUDA_CHECK(cudaEventRecord(stop, stream));
    HASHHOP_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    HASHHOP_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  HASHHOP_CUDA_CHECK(cudaEventDestroy(start));
  HASHHOP_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Device-to-device copy bandwidth (read + write bytes per second), the roofline for the scan.
double copy_bandwidth_gbs() {
  const std::size_t bytes = 1ULL << 30;
  const at::Tensor a = at::ones({static_cast<std::int64_t>(bytes)}, at::TensorOptions().device(at::kCUDA).dtype(at::kByte));
  at::Tensor b = at::empty_like(a);
  const double ms = median_ms([&] { HASHHOP_CUDA_CHECK(cudaMemcpyAsync(b.data_ptr(), a.data_ptr(), bytes, cudaMemcpyDeviceToDevice, current_stream())); }, 3, 15);
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

// Dense SDPA with exactly one backend enabled; -1 if that backend refuses the shape.
double sdpa_ms(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool flash, bool causal, int warmup, int repeats, at::Tensor* out) {
  auto& context = at::globalContext();
  context.setSDPUseFlash(flash);
  context.setSDPUseCuDNN(!flash);
  context.setSDPUseMemEfficient(false);
  context.setSDPUseMath(false);
  try {
    const auto run = [&] { *out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal); };
    run();
    return median_ms(run, warmup, repeats);
  } catch (const std::exception&) {
    *out = at::Tensor();
    return -1;
  }
}

std::string ms_text(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ms < 0 ? "n/a" : ms < 1 ? "%.4f" : ms < 100 ? "%.3f" : "%.1f", ms);
  return buf;
}

double best_of(double a, double b) { return a > 0 && b > 0 ? std::min(a, b) : std::max(a, b); }

// SimHash words of rows of x: sign bits of x·planes packed by our kernel, [rows] int64.
at::Tensor simhash(const at::Tensor& x, const at::Tensor& planes) {
  at::Tensor words = at::empty({x.size(0)}, x.options().dtype(at::kLong));
  for (std::int64_t begin = 0; begin < x.size(0); begin += kChunkRows) {
    const std::int64_t rows = std::min(kChunkRows, x.size(0) - begin);
    const at::Tensor logits = at::matmul(x.slice(0, begin, begin + rows).to(at::kFloat), planes).contiguous();
    hc::pack_signatures(logits.data_ptr<float>(), static_cast<int>(rows), kBits,
                        reinterpret_cast<std::uint64_t*>(words.data_ptr<std::int64_t>()) + begin, current_stream());
  }
  return words;
}

at::Tensor head_scores(const at::Tensor& k_head, const at::Tensor& q_vec) {  // q·k of one head, [n] float
  std::vector<at::Tensor> parts;
  for (std::int64_t begin = 0; begin < k_head.size(0); begin += kChunkRows) {
    parts.push_back(at::matmul(k_head.slice(0, begin, std::min(k_head.size(0), begin + kChunkRows)).to(at::kFloat), q_vec.to(at::kFloat)));
  }
  return at::cat(parts);
}

const std::uint64_t* u64(const at::Tensor& t) { return reinterpret_cast<const std::uint64_t*>(t.data_ptr<std::int64_t>()); }
const __nv_bfloat16* bf16(const at::Tensor& t) { return reinterpret_cast<const __nv_bfloat16*>(t.data_ptr()); }

// ---- decode: SDPA vs signature top-k, and the exact hash index, over the same cache ----
nlohmann::json decode_row(std::int64_t n, double copy_gbs, const AttentionBenchOptions& o) {
  const auto options = at::TensorOptions().device(at::kCUDA);
  const at::Tensor q = at::randn({1, kHeads, 1, kDim}, options.dtype(at::kBFloat16));
  const at::Tensor k = at::randn({1, kHeads, n, kDim}, options.dtype(at::kBFloat16));
  const at::Tensor v = at::randn({1, kHeads, n, kDim}, options.dtype(at::kBFloat16));
  at::Tensor dense_out, cudnn_out;
  const double flash_ms = sdpa_ms(q, k, v, true, false, 3, o.repeats, &dense_out);
  const double cudnn_ms = sdpa_ms(q, k, v, false, false, 3, o.repeats, &cudnn_out);

  const at::Tensor planes = at::randn({kDim, kBits}, options.dtype(at::kFloat));
  std::vector<at::Tensor> key_words;
  for (int h = 0; h < kHeads; ++h) key_words.push_back(simhash(k[0][h], planes));
  const at::Tensor key_sigs = at::stack(key_words).contiguous();               // [heads, n]
  const at::Tensor query_sigs = simhash(q[0].squeeze(1), planes).contiguous();  // [heads]
  const int n_keys = static_cast<int>(n), top_k = static_cast<int>(static_cast<double>(n) * kTopK.top_fraction_of_keys);
  const int stride = hc::max_selected(n_keys, 0, 0, top_k);
  const auto i32 = options.dtype(at::kInt), bytes = options.dtype(at::kByte);
  at::Tensor selected = at::empty({kHeads, stride}, i32), counts = at::empty({kHeads}, i32), arrivals = at::empty({kHeads}, i32);
  at::Tensor select_ws = at::empty({static_cast<std::int64_t>(hc::select_workspace_bytes(kHeads, n_keys))}, bytes);
  at::Tensor decode_ws = at::empty({static_cast<std::int64_t>(hc::decode_workspace_bytes(kHeads, kDim, stride))}, bytes);
  at::Tensor out = at::empty({kHeads, kDim}, options.dtype(at::kFloat));
  // The selection zeroes the arrival counters the decode's fused merge counts on, as torch.ops.hashhop does.
  hc::SignatureSelectParams select{u64(key_sigs), u64(query_sigs), kHeads, kHeads, n_keys, kBits, 0, 0, top_k,
                                   selected.data_ptr<int>(), counts.data_ptr<int>(), select_ws.data_ptr()};
  select.decode_arrivals = arrivals.data_ptr<int>();
  const float scale = 1.0f / std::sqrt(static_cast<float>(kDim));
  hc::SparseDecodeParams decode{bf16(q), bf16(k), bf16(v), selected.data_ptr<int>(), counts.data_ptr<int>(), stride, kHeads, kHeads,
                                n_keys, kDim, scale, out.data_ptr<float>(), decode_ws.data_ptr()};
  decode.arrivals = arrivals.data_ptr<int>();
  const cudaStream_t stream = current_stream();
  const double scan_ms = median_ms([&] { hc::scan_similarities(select, stream); }, 3, o.repeats);
  const double select_ms = median_ms([&] { hc::select_keys(select, stream); }, 3, o.repeats);
  const double total_ms = median_ms([&] { hc::select_keys(select, stream); hc::sparse_decode(decode, stream); }, 3, o.repeats);

  // Recall against the exact top-k by dot product; output error against exact attention over the same
  // kept keys (checks the kernel) and against dense (the approximation).
  double recall = 0, kernel_error = 0;
  for (int h = 0; h < kHeads; ++h) {
    const at::Tensor scores = head_scores(k[0][h], q[0][h][0]);
    const at::Tensor exact_top = std::get<1>(scores.topk(top_k));
    const at::Tensor kept = selected[h].slice(0, 0, counts[h].item<int>()).to(at::kLong);
    recall += at::isin(exact_top, kept).to(at::kFloat).mean().item<double>() / kHeads;
    const at::Tensor weights = at::softmax(scores.index_select(0, kept) * scale, 0);
    const at::Tensor reference = at::matmul(weights, v[0][h].index_select(0, kept).to(at::kFloat));
    kernel_error = std::max(kernel_error, (reference - out[h]).abs().max().item<double>());
  }
  const double dense_error = dense_out.defined() ? (dense_out[0].squeeze(1).to(at::kFloat) - out).abs().max().item<double>() : -1;
  const double scan_bytes = static_cast<double>(n) * kHeads * (8 + 1);  // signatures read, similarities written
  const double scan_share = scan_bytes / (scan_ms * 1e-3) / 1e9 / copy_gbs;
  const double select_share = scan_bytes / (select_ms * 1e-3) / 1e9 / copy_gbs;
  const double best_dense = best_of(flash_ms, cudnn_ms);

  // Exact hash index over the same signatures: a query whose signature equals key `target` of its head
  // (an exact-match lookup, HashHop's access pattern) must find it.
  const hc::DeviceIndexLayout layout = hc::index_layout(kHeads, kBits, n_keys, {});
  at::Tensor index_memory = at::empty({static_cast<std::int64_t>(hc::index_bytes(layout))}, bytes);
  const hc::DeviceIndex index = hc::make_index(layout, index_memory.data_ptr(), {}, stream);
  const double insert_ms = median_ms([&] {
    hc::make_index(layout, index_memory.data_ptr(), {}, stream);  // empties the tables: every repeat inserts all keys
    hc::index_insert(index, u64(key_sigs), n_keys, 0, n_keys, stream);
  }, 1, 3);
  const at::Tensor targets = at::randint(n, {kHeads}, options.dtype(at::kLong));
  const at::Tensor index_queries = key_sigs.gather(1, targets.unsqueeze(1)).squeeze(1).contiguous();
  const int kMaxCandidates = kIndex.max_candidates;
  at::Tensor candidates = at::empty({kHeads, kMaxCandidates}, i32), found = at::empty({kHeads}, i32), totals = at::empty({kHeads}, i32);
  at::Tensor index_ws = at::empty({static_cast<std::int64_t>(hc::decode_workspace_bytes(kHeads, kDim, kMaxCandidates))}, bytes);
  const hc::IndexLookupParams lookup{u64(key_sigs), n_keys, u64(index_queries), kHeads, 1, n_keys, false, kMaxCandidates,
                                     candidates.data_ptr<int>(), found.data_ptr<int>(), totals.data_ptr<int>()};
  const hc::SparseDecodeParams index_decode{bf16(q), bf16(k), bf16(v), candidates.data_ptr<int>(), found.data_ptr<int>(), kMaxCandidates, kHeads,
                                            kHeads, n_keys, kDim, scale, out.data_ptr<float>(), index_ws.data_ptr()};
  const double lookup_ms = median_ms([&] { hc::index_lookup(index, lookup, stream); }, 3, o.repeats);
  const double lookup_attend_ms = median_ms([&] { hc::index_lookup(index, lookup, stream); hc::sparse_decode(index_decode, stream); }, 3, o.repeats);
  const at::Tensor hit = (candidates.to(at::kLong) == targets.unsqueeze(1)) &
                         (at::arange(kMaxCandidates, options.dtype(at::kLong)).unsqueeze(0) < found.to(at::kLong).unsqueeze(1));
  const double target_found = hit.any(1).to(at::kFloat).mean().item<double>();
  const double mean_candidates = totals.to(at::kFloat).mean().item<double>();

  std::printf("| %lld | %s | %s | %.4f | %.3f | %.3f | %.1fx | %.0f%% | %.0f%% | %.3f | %.1e | %.2f | %.4f | %.4f | %.0f | %.2f | %.1f |\n",
              static_cast<long long>(n), ms_text(flash_ms).c_str(), ms_text(cudnn_ms).c_str(), scan_ms, select_ms, total_ms, best_dense / total_ms,
              100 * scan_share, 100 * select_share, recall, kernel_error, dense_error, lookup_ms, lookup_attend_ms, static_cast<double>(n) * kHeads / (insert_ms * 1e-3) / 1e6,
              mean_candidates, 100 * target_found);
  std::fflush(stdout);
  return {{"section", "decode"}, {"cached_tokens", n}, {"sdpa_flash_ms", flash_ms}, {"sdpa_cudnn_ms", cudnn_ms},
          {"signature_scan_ms", scan_ms}, {"signature_select_ms", select_ms}, {"signature_total_ms", total_ms}, {"speedup_vs_best_sdpa", best_dense / total_ms},
          {"scan_share_of_copy_bw", scan_share}, {"select_share_of_copy_bw", select_share}, {"topk_recall", recall}, {"kernel_error", kernel_error}, {"error_vs_dense", dense_error},
          {"index_lookup_ms", lookup_ms}, {"index_lookup_attend_ms", lookup_attend_ms}, {"index_insert_ms", insert_ms},
          {"index_mean_candidates", mean_candidates}, {"index_target_found", target_found}};
}

// ---- prefill: causal SDPA vs bucket attention (angular LSH ids, sort, tiled softmax) ----
struct BucketIds {
  at::Tensor q, k;  // [rounds, heads, n] uint32 (stored as int32)
};

// Each round's rotation R in two bf16 parts, on the device: a parameter of the hash, made once per table row.
std::vector<at::Tensor> lsh_rotations(const attn::BucketConfig& config, const at::TensorOptions& options) {
  const int columns = attn::bucket_projection_columns(config);
  std::vector<at::Tensor> rotations;
  for (int r = 0; r < config.rounds; ++r) {
    std::vector<__nv_bfloat16> split = hc::split_rotation(attn::bucket_projection(kDim, config, r), kDim, columns);
    rotations.push_back(at::from_blob(split.data(), {static_cast<std::int64_t>(split.size())}, at::kBFloat16).to(options.device()));
  }
  return rotations;
}

// One fused call per round and tensor (every head's rows at once): x·R on tensor cores, argmax in registers.
BucketIds lsh_ids(const at::Tensor& q, const at::Tensor& k, const attn::BucketConfig& config, const std::vector<at::Tensor>& rotations) {
  const std::int64_t heads = q.size(1), n = q.size(2);  // q, k: [1, heads, n, dim], contiguous
  const auto options = q.options();
  BucketIds ids{at::empty({config.rounds, heads, n}, options.dtype(at::kInt)), at::empty({config.rounds, heads, n}, options.dtype(at::kInt))};
  if (config.bucket_bits == 0) {  // one bucket: every id is 0 (the argmax would give 0 or 1)
    ids.q.zero_(), ids.k.zero_();
    return ids;
  }
  if (heads * n > INT_MAX) throw std::invalid_argument("attn-bench: heads x tokens must fit in int for the LSH ids");
  const int columns = attn::bucket_projection_columns(config);
  for (int r = 0; r < config.rounds; ++r) {
    for (const auto& [x, out] : {std::pair{q, ids.q}, std::pair{k, ids.k}}) {
      hc::lsh_bucket_ids(bf16(x), static_cast<int>(heads * n), kDim, bf16(rotations[r]), columns,
                         reinterpret_cast<std::uint32_t*>(out[r].data_ptr<int>()), current_stream());
    }
  }
  return ids;
}

// Share of head 0's query rows (round 0) whose fused id differs from the argmax over float32 projections.
double ids_disagreement(const at::Tensor& q, const attn::BucketConfig& config, const BucketIds& ids) {
  if (config.bucket_bits == 0) return 0;  // one bucket: both sides are all zeros by definition
  const std::int64_t n = q.size(2);
  const int columns = attn::bucket_projection_columns(config);
  const at::Tensor rotation =
      at::tensor(attn::bucket_projection(kDim, config, 0), q.options().dtype(at::kDouble)).reshape({kDim, columns}).to(at::kFloat);
  const at::Tensor projected = at::matmul(q[0][0].to(at::kFloat), rotation).contiguous();
  at::Tensor reference = at::empty({n}, q.options().dtype(at::kInt));
  hc::lsh_bucket_ids(projected.data_ptr<float>(), static_cast<int>(n), columns, reinterpret_cast<std::uint32_t*>(reference.data_ptr<int>()),
                     current_stream());
  return (reference != ids.q[0][0]).to(at::kDouble).mean().item<double>();
}

struct BucketRun {
  at::Tensor out, workspace;
  hc::BucketAttentionParams params;
};

BucketRun prepare_bucket(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BucketIds& ids, const attn::BucketConfig& config) {
  const int heads = static_cast<int>(q.size(1)), n = static_cast<int>(q.size(2));
  BucketRun run;
  run.out = at::empty({heads, n, kDim}, q.options().dtype(at::kFloat));
  run.params = {bf16(q), bf16(k), bf16(v), reinterpret_cast<const std::uint32_t*>(ids.q.data_ptr<int>()),
                reinterpret_cast<const std::uint32_t*>(ids.k.data_ptr<int>()), heads, heads, n, n, kDim, config.bucket_bits, config.rounds,
                true, 1.0f / std::sqrt(static_cast<float>(kDim)), run.out.data_ptr<float>(), nullptr, nullptr};
  run.workspace = at::empty({static_cast<std::int64_t>(hc::bucket_workspace_bytes(run.params))}, q.options().dtype(at::kByte));
  run.params.workspace = run.workspace.data_ptr();
  return run;
}

// Exact bucket attention of a few query rows of head 0, from the ids, in torch float32: checks the kernel.
double bucket_kernel_error(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BucketIds& ids, const at::Tensor& out) {
  const std::int64_t n = q.size(2);
  const at::Tensor positions = at::arange(n, q.options().dtype(at::kLong));
  double worst = 0;
  for (std::int64_t i : {std::int64_t{0}, n / 3, n / 2, n - 1}) {
    at::Tensor keep = positions <= i;
    at::Tensor any_round = at::zeros_like(keep);
    for (std::int64_t r = 0; r < ids.q.size(0); ++r) any_round = any_round | (ids.k[r][0] == ids.q[r][0][i]);
    keep = keep & any_round;
    const at::Tensor scores = at::matmul(k[0][0].to(at::kFloat), q[0][0][i].to(at::kFloat)) / std::sqrt(static_cast<double>(kDim));
    const at::Tensor weights = at::softmax(scores.masked_fill(keep.logical_not(), -INFINITY), 0);
    const at::Tensor reference = at::matmul(weights, v[0][0].to(at::kFloat));
    worst = std::max(worst, (reference - out[0][i]).abs().max().item<double>());
  }
  return worst;
}

nlohmann::json prefill_row(std::int64_t n, const AttentionBenchOptions& o) {
  const auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor q = at::randn({1, kHeads, n, kDim}, bf), k = at::randn({1, kHeads, n, kDim}, bf), v = at::randn({1, kHeads, n, kDim}, bf);
  at::Tensor dense_out;
  const double flash_ms = sdpa_ms(q, k, v, true, true, 1, o.prefill_repeats, &dense_out);
  const double cudnn_ms = sdpa_ms(q, k, v, false, true, 1, o.prefill_repeats, &dense_out);
  dense_out = at::Tensor();
  c10::cuda::CUDACachingAllocator::emptyCache();
  attn::BucketConfig config;
  config.bucket_bits = std::max(0, static_cast<int>(std::lround(std::log2(static_cast<double>(n) / o.bucket_size))));
  config.seed = 1;
  const cudaStream_t stream = current_stream();
  nlohmann::json row = {{"section", "prefill"}, {"tokens", n}, {"sdpa_flash_causal_ms", flash_ms}, {"sdpa_cudnn_causal_ms", cudnn_ms},
                        {"bucket_bits", config.bucket_bits}};
  std::printf("| %lld | %s | %s | %d |", static_cast<long long>(n), ms_text(flash_ms).c_str(), ms_text(cudnn_ms).c_str(), config.bucket_bits);
  for (int rounds : kBucket.rounds) {
    config.rounds = rounds;
    const std::vector<at::Tensor> rotations = lsh_rotations(config, q.options());
    BucketIds ids = lsh_ids(q, k, config, rotations);
    const double ids_ms = median_ms([&] { ids = lsh_ids(q, k, config, rotations); }, 1, o.prefill_repeats);
    BucketRun run = prepare_bucket(q, k, v, ids, config);
    const double attend_ms = median_ms([&] { hc::bucket_attention(run.params, stream); }, 1, o.prefill_repeats);
    const double error = bucket_kernel_error(q, k, v, ids, run.out.view({kHeads, n, kDim}));
    const double ids_differing = ids_disagreement(q, config, ids);
    run.params.tensor_cores = false;  // the same sort and keys on the fp32-FMA tiles: what the tensor cores buy
    const double fma_ms = median_ms([&] { hc::bucket_attention(run.params, stream); }, 1, o.prefill_repeats);
    const double total = ids_ms + attend_ms;
    const std::string key = "rounds" + std::to_string(rounds) + "_";
    row[key + "ids_ms"] = ids_ms;
    row[key + "sort_attend_ms"] = attend_ms;
    row[key + "sort_attend_fma_tiles_ms"] = fma_ms;
    row[key + "speedup_vs_best_sdpa"] = best_of(flash_ms, cudnn_ms) / total;
    row[key + "kernel_error"] = error;
    row[key + "ids_differing_from_float32"] = ids_differing;
    std::printf(" %.2f | %.2f | %.2f | %.1fx | %.1e | %.1e |", ids_ms, attend_ms, fma_ms, best_of(flash_ms, cudnn_ms) / total, error,
                ids_differing);
    std::fflush(stdout);
    run = BucketRun();
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
  std::printf("\n");
  return row;
}

// Mixed heads (BucketConfig::dense_heads, 1 round): the first heads hashed (fused ids + sort + tensor-core tiles), the
// last `dense` heads through SDPA (the faster of flash and cuDNN at this size, measured on those heads), one after
// the other on the stream, as torch.ops.hashhop.bucket_attention(..., dense_heads) runs them. Timed as a whole.
nlohmann::json mixed_row(std::int64_t n, const AttentionBenchOptions& o) {
  const auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor q = at::randn({1, kHeads, n, kDim}, bf), k = at::randn({1, kHeads, n, kDim}, bf), v = at::randn({1, kHeads, n, kDim}, bf);
  at::Tensor dense_out;
  const double best_all = best_of(sdpa_ms(q, k, v, true, true, 1, o.prefill_repeats, &dense_out),
                                  sdpa_ms(q, k, v, false, true, 1, o.prefill_repeats, &dense_out));
  dense_out = at::Tensor();
  attn::BucketConfig config;
  config.bucket_bits = std::max(0, static_cast<int>(std::lround(std::log2(static_cast<double>(n) / o.bucket_size))));
  config.seed = 1;
  const cudaStream_t stream = current_stream();
  nlohmann::json row = {{"section", "mixed_heads"}, {"tokens", n}, {"bucket_bits", config.bucket_bits}, {"rounds", 1},
                        {"best_sdpa_all_heads_ms", best_all}};
  std::printf("| %lld | %s |", static_cast<long long>(n), ms_text(best_all).c_str());
  const std::vector<at::Tensor> rotations = lsh_rotations(config, q.options());
  for (int dense : kBucket.dense_heads) {
    const int hashed = kHeads - dense;
    const auto part = [](const at::Tensor& x, std::int64_t first, std::int64_t count) { return x.narrow(1, first, count).contiguous(); };
    const at::Tensor qh = part(q, 0, hashed), kh = part(k, 0, hashed), vh = part(v, 0, hashed);
    const at::Tensor qd = part(q, hashed, dense), kd = part(k, hashed, dense), vd = part(v, hashed, dense);
    const double flash = sdpa_ms(qd, kd, vd, true, true, 1, o.prefill_repeats, &dense_out);
    const double cudnn = sdpa_ms(qd, kd, vd, false, true, 1, o.prefill_repeats, &dense_out);
    const bool use_flash = flash > 0 && (cudnn < 0 || flash <= cudnn);
    const double dense_ms = best_of(flash, cudnn);
    BucketIds ids = lsh_ids(qh, kh, config, rotations);
    BucketRun run = prepare_bucket(qh, kh, vh, ids, config);
    auto& context = at::globalContext();
    context.setSDPUseFlash(use_flash);
    context.setSDPUseCuDNN(!use_flash);
    const double total = median_ms([&] {
      ids = lsh_ids(qh, kh, config, rotations);  // fresh tensors: the kernel must read these, not the freed first ones
      run.params.q_buckets = reinterpret_cast<const std::uint32_t*>(ids.q.data_ptr<int>());
      run.params.k_buckets = reinterpret_cast<const std::uint32_t*>(ids.k.data_ptr<int>());
      hc::bucket_attention(run.params, stream);
      dense_out = at::scaled_dot_product_attention(qd, kd, vd, {}, 0.0, true);
    }, 1, o.prefill_repeats);
    const double error = bucket_kernel_error(qh, kh, vh, ids, run.out.view({hashed, n, kDim}));
    const std::string key = "dense" + std::to_string(dense) + "_";
    row[key + "hashed_heads"] = hashed;
    row[key + "dense_sdpa_ms"] = dense_ms;
    row[key + "dense_sdpa"] = use_flash ? "flash" : "cudnn";
    row[key + "total_ms"] = total;
    row[key + "speedup_vs_best_sdpa"] = best_all / total;
    row[key + "kernel_error"] = error;
    std::printf(" %d + %d | %s | %.2f | %.1fx | %.1e |", hashed, dense, ms_text(dense_ms).c_str(), total, best_all / total, error);
    std::fflush(stdout);
    run = BucketRun();
    dense_out = at::Tensor();
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
  std::printf("\n");
  return row;
}

}  // namespace

nlohmann::json run_attention_bench(const AttentionBenchOptions& o) {
  if (kIndex.heads != kHeads || kIndex.dim != kDim || kIndex.options.bits != kBits || kBucket.heads != kHeads || kBucket.dim != kDim)
    throw std::invalid_argument("attn-bench: the registry's decode/index and prefill/bucket entries must share decode/signature_topk's heads, dim and bits");
  at::manual_seed(0);
  cudaDeviceProp prop{};
  HASHHOP_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbs = copy_bandwidth_gbs();
  std::printf("device: %s; measured D2D copy bandwidth %.0f GB/s; random data (Gaussian q, k, v), not model attention\n\n", prop.name, copy_gbs);
  nlohmann::json rows = nlohmann::json::array();
  auto guarded = [&](std::int64_t n, const std::function<nlohmann::json()>& fn) {
    try {
      rows.push_back(fn());
    } catch (const std::exception& e) {
      const std::string what = e.what();
      std::printf("| %lld | failed: %s |\n", static_cast<long long>(n), what.substr(0, what.find('\n')).c_str());
    }
    c10::cuda::CUDACachingAllocator::emptyCache();
  };
  if (!o.decode_sizes.empty()) {
    std::printf("## Decode: one query per head, batch 1, %d heads x %d dims, bf16\n\n", kHeads, kDim);
    std::printf("Signature top-k: %d-bit SimHash, k = n/32, no sinks/window. Index: exact %d-bit table, query signature = a random key's.\n\n",
                kBits, kBits);
    std::printf("| cached tokens | SDPA flash ms | SDPA cuDNN ms | sig scan ms | sig select ms | sig total ms | sig speed-up vs best SDPA "
                "| scan %% of copy BW | select %% of copy BW | top-k recall | sig kernel err | sig err vs dense | index lookup ms | index lookup+attend ms | index insert M keys/s "
                "| index candidates | index target found %% |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (std::int64_t n : o.decode_sizes) guarded(n, [&] { return decode_row(n, copy_gbs, o); });
  }
  if (!o.prefill_sizes.empty()) {
    std::printf("\n## Prefill: causal self-attention, batch 1, %d heads x %d dims, bf16\n\n", kHeads, kDim);
    std::printf("Bucket: angular LSH ids (x·R on tensor cores with R in two bf16 parts, argmax fused), stable radix sort, tiled softmax over each bucket; "
                "2^bucket_bits buckets, ~%d keys each. Speed-up counts ids + sort + attention (tensor-core tiles); "
                "*ids ms*: the fused kernel for q and k of every round (R drawn and split once per row, not timed); "
                "*FMA tiles*: the same sort and attention on the fp32-FMA tiles; *ids vs fp32*: share of head 0's query ids (round 0) "
                "that differ from the argmax over float32 projections.\n\n", o.bucket_size);
    std::printf("| tokens | SDPA flash ms | SDPA cuDNN ms | bucket bits | 1 round: ids ms | sort+attend ms | FMA tiles ms | speed-up "
                "| kernel err | ids vs fp32 | 2 rounds: ids ms | sort+attend ms | FMA tiles ms | speed-up | kernel err | ids vs fp32 |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (std::int64_t n : o.prefill_sizes) guarded(n, [&] { return prefill_row(n, o); });
    std::printf("\n## Mixed heads: some heads hashed (1 round, as above), the rest dense through SDPA, %d heads in all\n\n", kHeads);
    std::printf("*dense ms*: SDPA (the faster of flash and cuDNN) on the dense heads alone; *total*: ids + sort + attend of the "
                "hashed heads, then SDPA on the dense ones, timed together; speed-up against the best SDPA over all %d heads.\n\n", kHeads);
    std::printf("| tokens | best SDPA, all heads ms |");
    for (std::size_t i = 0; i < kBucket.dense_heads.size(); ++i) std::printf(" hashed + dense | dense ms | total ms | speed-up | kernel err |");
    std::printf("\n|---:|---:|");
    for (std::size_t i = 0; i < kBucket.dense_heads.size(); ++i) std::printf("---|---:|---:|---:|---:|");
    std::printf("\n");
    for (std::int64_t n : o.prefill_sizes) guarded(n, [&] { return mixed_row(n, o); });
  }
  return {{"device", prop.name}, {"copy_bandwidth_gbs", copy_gbs}, {"data", "random"}, {"rows", rows}};
}

}  // namespace hashhop::cli

#endif  // HASHHOP_WITH_TORCH_CUDA
