#!/usr/bin/env bash
# One device run on the GPU machine: build the CLI with the CUDA kernels against that machine's torch,
# run every CUDA kernel against its CPU reference (GoogleTest, then under compute-sanitizer memcheck),
# print `hashhop attn-check --device cuda`, then `hashhop attn-bench`, whose tables print last.
# Run there: scripts/gpu-check.sh   (carry .gpu-deps: `scripts/gpu-deps.sh` makes it here)
# ATTN_BENCH_ARGS overrides the benchmark's options (e.g. "--decode-sizes 65536 --prefill-sizes 32768").
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/hashhop-gpu}"
mkdir -p "$out" build-gpu
gtest=.gpu-deps/googletest
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), torch $(python3 -c 'import torch; print(torch.__version__)'), $(nvcc --version | tail -1)"

echo "== build"
scripts/gpu-build.sh
g++ -O2 -std=c++17 -I$gtest/include -I$gtest -c $gtest/src/gtest-all.cc -o build-gpu/gtest-all.o
g++ -O2 -std=c++17 -I$gtest/include -c $gtest/src/gtest_main.cc -o build-gpu/gtest_main.o
# The test links the kernels and the CPU references from the CLI build's objects.
nvcc -O3 -std=c++17 -arch=sm_90 -Iinclude -I$gtest/include tests/attn/test_attention_cuda.cu build-gpu-cli/obj/src_attn_cuda_*.o \
  build-gpu-cli/obj/src_attn_[a-z]*.cpp.o build-gpu-cli/obj/src_bench_feistel.cpp.o build-gpu/gtest-all.o build-gpu/gtest_main.o \
  .gpu-deps/usr/lib/libcrypto.a -ldl -lpthread -o build-gpu/test_attention_cuda

echo "== CUDA tests (every kernel vs its CPU reference)"
build-gpu/test_attention_cuda 2>&1 | tail -4 | tee "$out/test_attention_cuda.log"
echo "== compute-sanitizer memcheck"
compute-sanitizer --tool memcheck --error-exitcode 1 build-gpu/test_attention_cuda 2>&1 | tail -4 | tee "$out/memcheck.log"
echo "== hashhop attn-check --device cuda"
build-gpu-cli/hashhop attn-check --device cuda 2>&1 | tee "$out/attn-check-cuda.txt"

echo "== hashhop attn-bench"
# shellcheck disable=SC2086
build-gpu-cli/hashhop attn-bench --json "$out/attn-bench.json" ${ATTN_BENCH_ARGS:-} 2>&1 | tee "$out/attn-bench.md"
