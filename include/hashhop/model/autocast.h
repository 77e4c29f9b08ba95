// bf16 autocast on CUDA for a scope (training's forward pass, the byte model's inference); off elsewhere.
// Header-only RAII: AutocastScope on(device.is_cuda()); ...
#pragma once

#include <ATen/autocast_mode.h>

namespace hashhop::model {

struct AutocastScope {
  explicit AutocastScope(bool on) : on_(on) {
    if (!on_) return;
    // Restored on exit, so a scope opened inside another (an eval inside training) leaves it as it was.
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    was_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  }
  ~AutocastScope() {
    if (!on_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, was_dtype_);
    if (!was_enabled_) at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
  bool on_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

// The opposite, for code that must stay float32 inside an AutocastScope (the byte engine's log-sum-exp reads:
// autocast would run their matmuls in bf16 whatever the inputs' dtype).
struct NoAutocast {
  NoAutocast() : was_enabled_(at::autocast::is_autocast_enabled(at::kCUDA)) { at::autocast::set_autocast_enabled(at::kCUDA, false); }
  ~NoAutocast() { at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_); }
  NoAutocast(const NoAutocast&) = delete;
  NoAutocast& operator=(const NoAutocast&) = delete;
  bool was_enabled_;
};

}  // namespace hashhop::model
