// Definitions of the shared CUDA op helpers (ops_cuda_support.h). Built into libhashhop_ops with HASHHOP_TORCH_CUDA=ON.
#include "ops_cuda_support.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include <algorithm>

#include "hashhop/attn/cuda/sparse_decode_cuda.h"

namespace hashhop::ops::cuda_support {

hc::Element element_of(const char* op, const torch::Tensor& x, const char* name) {
  switch (x.scalar_type()) {
    case torch::kBFloat16: return hc::Element::bf16;
    case torch::kFloat16: return hc::Element::fp16;
    case torch::kFloat32: return hc::Element::fp32;
    default: TORCH_CHECK(false, op, ": ", name, " on CUDA must be bfloat16, float16 or float32, got ", x.scalar_type());
  }
}

torch::Tensor dense(const torch::Tensor& x) {
  auto c = x.contiguous();
  if (reinterpret_cast<std::uintptr_t>(c.data_ptr()) % 16 != 0) c = c.clone();
  return c;
}

c10::DataPtr workspace(int64_t bytes) {
  return c10::cuda::CUDACachingAllocator::get()->allocate(static_cast<std::size_t>(std::max<int64_t>(bytes, 1)));
}

Selection::Selection(int64_t rows_, int64_t stride_, bool arrivals)
    : data(std::make_shared<c10::DataPtr>(workspace(rows_ * (stride_ + 1 + (arrivals ? 1 : 0)) * int64_t{sizeof(int)}))),
      rows(rows_), stride(stride_), has_arrivals(arrivals) {}

torch::Tensor Selection::view(int* at, torch::IntArrayRef sizes) const {
  const auto device = data->device();
  return torch::from_blob(at, sizes, [keep = data](void*) {}, torch::TensorOptions().dtype(torch::kInt32).device(device));
}

Selection select_signature_rows(const char* op, hc::SignatureSelectParams p) {
  const int64_t rows = static_cast<int64_t>(p.heads_q) * p.n_q;
  const int stride = hc::selected_stride(p);
  const int64_t per_row = static_cast<int64_t>(hc::select_workspace_bytes(1, p.n_keys));
  const int64_t chunk = std::clamp<int64_t>(kWorkspaceBudget / per_row, 1, rows);
  p.workspace_rows = static_cast<int>(chunk);
  const auto ws = workspace(static_cast<int64_t>(hc::select_workspace_bytes(static_cast<int>(chunk), p.n_keys)));
  p.workspace = ws.get();
  Selection s(rows, stride, /*arrivals=*/true);
  p.selected = s.lists(), p.n_selected = s.counts(), p.decode_arrivals = s.arrivals();
  launch(op, [&] { hc::select_keys(p, at::cuda::getCurrentCUDAStream()); });
  return s;
}

torch::Tensor decode_selected(const char* op, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const int* selected, const int* counts, int64_t stride, double scale, int* arrivals) {
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t rows = q.size(0) * q.size(1), dim = q.size(2);
  // The whole batch of rows if its partials fit the budget. Past it the launch is at its largest split
  // (1,024 keys), where the bytes grow linearly with the rows, so the rows that fit are a proportion.
  const auto bytes_for = [&](int64_t n) {
    return static_cast<int64_t>(hc::decode_workspace_bytes(static_cast<int>(n), static_cast<int>(dim), static_cast<int>(stride)));
  };
  const int64_t all = bytes_for(rows);
  const int64_t chunk = all <= kWorkspaceBudget ? rows : std::clamp<int64_t>(kWorkspaceBudget * rows / all, 1, rows);
  const auto ws = workspace(bytes_for(chunk));
  auto out = torch::empty({q.size(0), q.size(1), dim}, q.options());
  hc::SparseDecodeParams p;
  p.q = q.data_ptr(), p.k = k.data_ptr(), p.v = v.data_ptr();
  p.selected = selected, p.n_selected = counts;
  p.selected_stride = static_cast<int>(stride);
  p.heads_q = static_cast<int>(q.size(0)), p.heads_kv = static_cast<int>(k.size(0));
  p.n_q = static_cast<int>(q.size(1)), p.n_keys = static_cast<int>(k.size(1)), p.dim = static_cast<int>(dim);
  p.scale = static_cast<float>(scale);
  p.out = out.data_ptr();
  p.workspace = ws.get();
  p.workspace_rows = static_cast<int>(chunk);
  p.element = p.out_element = element_of(op, q, "q");
  p.arrivals = arrivals;
  launch(op, [&] { hc::sparse_decode(p, stream); });
  return out;
}


}  // namespace hashhop::ops::cuda_support
