// Every CUDA attention kernel against its float64 CPU reference (the CUDA consistency harness, the same
// rows `hashhop attn-check --device cuda` prints). Skips itself on machines without a GPU.
// Run: build/tests/test_attention_cuda (scripts/gpu-check.sh runs it there, also under compute-sanitizer).
#include <gtest/gtest.h>

#include "hashhop/attn/cuda/consistency_cuda.h"
#include "hashhop/attn/cuda/device_buffer.h"

TEST(AttentionCuda, EveryKernelMatchesItsCpuReference) {
  if (!hashhop::attn::cuda::cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  const auto results = hashhop::attn::cuda::run_cuda_consistency(3);
  ASSERT_GE(results.size(), 20u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.passed()) << r.mechanism << " [" << r.shape << "] vs " << r.expectation << ": " << r.max_error << " > " << r.tolerance;
  }
}
