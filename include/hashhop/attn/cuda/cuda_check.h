// HASHHOP_CUDA_CHECK: every CUDA runtime call is checked; a failure throws with the call, file and line.
// Included by .cu files and by host code that calls the kernels' launchers.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#define HASHHOP_CUDA_CHECK(call)                                                                    \
  do {                                                                                              \
    const cudaError_t hashhop_status_ = (call);                                                     \
    if (hashhop_status_ != cudaSuccess) {                                                           \
      throw std::runtime_error(std::string(#call) + " failed at " + __FILE__ + ":" +                \
                               std::to_string(__LINE__) + ": " + cudaGetErrorString(hashhop_status_)); \
    }                                                                                               \
  } while (0)
