// The CUDA side of the consistency harness: every CUDA kernel against its float64 CPU reference on
// random inputs (same rows as attn-check's CPU table). Plain C++ header: the CLI includes it with g++.
#pragma once

#include <vector>

#include "hashhop/attn/consistency.h"

namespace hashhop::attn::cuda {

// Every CUDA case of the registry (attention_cases.h): signature top-k decode, bucket attention (prefill,
// decode, multi-round, causal offsets), LSH bucket ids and the hash index (exact and LSH, streamed
// inserts). Throws std::runtime_error without a GPU.
std::vector<ConsistencyResult> run_cuda_consistency(unsigned seed = 0);
// One registry case (attention_cases.h; the index gives a lookup row and, when decoding, a decode row).
std::vector<ConsistencyResult> run_cuda_case(const AttentionCase& c, unsigned seed = 0);

}  // namespace hashhop::attn::cuda
