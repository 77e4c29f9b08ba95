// bf16 autocast on CUDA for a scope (training's forward pass, the byte model's inference); off elsewhere.
// Header-only RAII: AutocastScope on(device.is_cuda()); ...
#pragma once

#include <ATen/autocast_mode.h>

namespace hashhop::model {

struct AutocastScope {
  explicit AutocastScope(bool on) : on_(on) {
    if (!on_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  }
  ~AutocastScope() {
    if (!on_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
  bool on_;
};

}  // namespace hashhop::model
