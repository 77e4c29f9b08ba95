// Helpers shared by the CUDA dispatch files of torch.ops.hashhop (attention_ops_cuda.cpp, kv_cache_ops_cuda.cpp):
// dtype mapping, aligned inputs, caching-allocator workspaces, errors that name the op, sparse decode over a selection.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <stdexcept>

#include "hashhop/attn/cuda/element.h"
#include "hashhop/attn/cuda/signature_select_cuda.h"

namespace hashhop::ops::cuda_support {

namespace hc = attn::cuda;

// Workspaces above this are split into row chunks that reuse one buffer in stream order.
constexpr int64_t kWorkspaceBudget = int64_t{512} << 20;

// bf16 / fp16 / fp32 to the kernels' element type; anything else is an error naming op and argument.
hc::Element element_of(const char* op, const torch::Tensor& x, const char* name);

// Row-major and 16-byte aligned (the kernels read 16-byte chunks): copies only when the input is not.
torch::Tensor dense(const torch::Tensor& x);

// Scratch bytes from torch's caching allocator on the current device (at least one byte), freed when the
// DataPtr goes: no tensor, no dispatcher call. Safe to drop right after the launches that use it, because the
// allocator hands a freed block out again only in the order of the current stream, where those launches run.
c10::DataPtr workspace(int64_t bytes);

// Kernel launchers throw std::invalid_argument naming a field; the op's name is added here.
template <class F>
inline void launch(const char* op, F&& body) {
  try {
    body();
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, op, ": ", e.what());
  }
}

inline const std::uint64_t* words_of(const torch::Tensor& x) { return reinterpret_cast<const std::uint64_t*>(x.data_ptr<int64_t>()); }

// Per-row key lists, as select_keys and index_lookup write them, in one int32 allocation from the caching
// allocator (no tensor, no dispatcher call): rows * stride list entries, then rows counts, then (with
// `arrivals`) rows decode arrival counters that select_keys zeroes for a fused merge. Tensor views, which keep
// the allocation alive, are made only where autograd saves them.
struct Selection {
  std::shared_ptr<c10::DataPtr> data;
  int64_t rows = 0, stride = 0;
  bool has_arrivals = false;

  Selection() = default;
  Selection(int64_t rows, int64_t stride, bool arrivals = false);
  int* lists() const { return static_cast<int*>(data->get()); }
  int* counts() const { return lists() + rows * stride; }
  int* arrivals() const { return has_arrivals ? counts() + rows : nullptr; }
  torch::Tensor selected_tensor() const { return view(lists(), {rows, stride}); }
  torch::Tensor counts_tensor() const { return view(counts(), {rows}); }

 private:
  torch::Tensor view(int* at, torch::IntArrayRef sizes) const;
};

// select_keys for the rows `p` describes (every field but the workspace and outputs filled in): sizes the
// key lists, takes the workspace from the caching allocator in row chunks, launches on the current stream.
Selection select_signature_rows(const char* op, hc::SignatureSelectParams p);

// sparse_decode of every row of q ([heads_q, n_q, dim]) over its listed keys of k, v ([heads_kv, n_keys, dim]):
// computed in float32, written in q's dtype by the merge kernel. `selected` [rows, stride] and `counts` [rows].
// `arrivals`: zeroed counters from the same selection (fused merge), or null (a merge kernel).
torch::Tensor decode_selected(const char* op, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const int* selected, const int* counts, int64_t stride, double scale, int* arrivals = nullptr);
inline torch::Tensor decode_selected(const char* op, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const Selection& s, double scale) {
  return decode_selected(op, q, k, v, s.lists(), s.counts(), s.stride, scale, s.arrivals());
}

}  // namespace hashhop::ops::cuda_support
