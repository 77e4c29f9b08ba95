#!/usr/bin/env bash
# One device run of the attention library on the GPU machine: the `gpu` CMake preset (kernels, CLI, ops
# library, tests against python3's CUDA torch), ctest, compute-sanitizer memcheck of the CUDA tests,
# `hashhop attn-check --device cuda`, then `hashhop attn-bench`, whose tables print last.
# Run there: scripts/gpu-check.sh   (carry .gpu-deps: `scripts/gpu-deps.sh` makes it here). Files land in $OUT.
# ATTN_BENCH_ARGS overrides the benchmark's options (e.g. "--decode-sizes 65536 --prefill-sizes 32768").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out="${OUT:-/tmp/hashhop-gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), torch $(python3 -c 'import torch; print(torch.__version__)'), $(nvcc --version | tail -1)"

echo "== build (cmake --preset gpu)"
start=$(date +%s)
cmake --preset gpu >/dev/null
cmake --build --preset gpu -- -j "$(nproc)" 2>&1 | tail -2
echo "build: $(( $(date +%s) - start )) s"

echo "== ctest (CPU suites against the CUDA torch, CUDA kernels against their CPU references)"
# OMP_NUM_THREADS=1 as in CI: ctest runs the LibTorch suites side by side.
OMP_NUM_THREADS=1 ctest --test-dir build-gpu --output-on-failure -j "$(nproc)" 2>&1 | tail -15 | tee "$out/ctest.log"
echo "== compute-sanitizer memcheck"
compute-sanitizer --tool memcheck --error-exitcode 1 build-gpu/tests/test_attention_cuda 2>&1 | tail -4 | tee "$out/memcheck.log"
echo "== hashhop attn-check --device cuda"
build-gpu/hashhop attn-check --device cuda 2>&1 | tee "$out/attn-check-cuda.txt"

echo "== hashhop attn-bench"
# shellcheck disable=SC2086
build-gpu/hashhop attn-bench --json "$out/attn-bench.json" ${ATTN_BENCH_ARGS:-} 2>&1 | tee "$out/attn-bench.md"
