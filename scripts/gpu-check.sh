#!/usr/bin/env bash
# One device run on the GPU machine: build the CUDA kernels against that machine's torch, run the CUDA
# tests (also under compute-sanitizer memcheck), then the decode benchmark, whose table prints last.
# Run there: scripts/gpu-check.sh   (carry .gpu-deps: GoogleTest sources, `scripts/gpu-deps.sh` makes it)
# The GPU image has nvcc, g++ and torch but none of our Debian packages, so this builds with plain
# compiler calls instead of the CMake project.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/hashhop-gpu}"
build=build-gpu
mkdir -p "$out" "$build"
torch_dir=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
gtest=.gpu-deps/googletest
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), torch $(python3 -c 'import torch; print(torch.__version__)'), $(nvcc --version | tail -1)"

CXX_FLAGS=(-O2 -std=c++20 -Iinclude)
NVCC_FLAGS=(-O3 -std=c++17 -arch=sm_90 -Iinclude)
echo "== build"
g++ "${CXX_FLAGS[@]}" -c src/attn/attention_problem.cpp -o $build/attention_problem.o
g++ "${CXX_FLAGS[@]}" -c src/attn/signature_attention.cpp -o $build/signature_attention.o
nvcc "${NVCC_FLAGS[@]}" -c src/attn/cuda/signature_select.cu -o $build/signature_select.o
nvcc "${NVCC_FLAGS[@]}" -c src/attn/cuda/sparse_decode.cu -o $build/sparse_decode.o
g++ -O2 -std=c++17 -I$gtest/include -I$gtest -c $gtest/src/gtest-all.cc -o $build/gtest-all.o
g++ -O2 -std=c++17 -I$gtest/include -c $gtest/src/gtest_main.cc -o $build/gtest_main.o
nvcc "${NVCC_FLAGS[@]}" -I$gtest/include tests/attn/test_signature_cuda.cu $build/attention_problem.o \
  $build/signature_attention.o $build/signature_select.o $build/sparse_decode.o $build/gtest-all.o $build/gtest_main.o \
  -o $build/test_signature_cuda
g++ "${CXX_FLAGS[@]}" -D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_CUDA=1 -isystem "$torch_dir/include" \
  -isystem "$torch_dir/include/torch/csrc/api/include" -I/usr/local/cuda/include bench/attn_bench.cpp \
  $build/signature_select.o $build/sparse_decode.o -o $build/attn_bench \
  -L"$torch_dir/lib" -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -ltorch_cpu -lc10 -Wl,--as-needed \
  -Wl,--allow-shlib-undefined -Wl,-rpath,"$torch_dir/lib" -L/usr/local/cuda/lib64 -lcudart

echo "== CUDA tests (CUDA vs CPU reference)"
$build/test_signature_cuda 2>&1 | tee "$out/test_signature_cuda.log"
echo "== compute-sanitizer memcheck"
compute-sanitizer --tool memcheck --error-exitcode 1 $build/test_signature_cuda 2>&1 | tail -5 | tee "$out/memcheck.log"

echo "== attn_bench"
$build/attn_bench ${ATTN_BENCH_SIZES:+--sizes $ATTN_BENCH_SIZES} 2>&1 | tee "$out/attn_bench.md"
