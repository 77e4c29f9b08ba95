#!/usr/bin/env bash
# One device call for a kernel change: build only the CLI, the CUDA tests and the ops library, then the CUDA tests,
# memcheck, attn-check, the ops' CUDA-vs-CPU tests, attn-bench (ATTN_BENCH_ARGS) and one kernel under Nsight Compute.
# Run there: scripts/gpu-kernel-check.sh   (carry .gpu-deps). Env: MEMCHECK_FILTER (gtest filter, default all),
# NCU_KERNEL (regex; empty skips ncu) with NCU_ARGS (the attn-bench options it profiles). Files land in $OUT.
set -uo pipefail  # not -e: every step runs and reports, a failed test does not hide the benchmark
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out="${OUT:-/tmp/hashhop-gpu}"
mkdir -p "$out"
status=0
step() { echo "== $*" | tee -a "$out/steps.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/steps.txt"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) (working tree may differ), torch $(python3 -c 'import torch; print(torch.__version__)')" | tee -a "$out/steps.txt"

step "build: hashhop test_attention_cuda hashhop_ops"
start=$(date +%s)
{ cmake --preset gpu && cmake --build --preset gpu --target hashhop test_attention_cuda hashhop_ops -- -j "$(nproc)"; } > "$out/build.log" 2>&1 ||
  { grep -B2 -A12 "error" "$out/build.log" | head -60; echo "status 1 (build failed)" | tee -a "$out/steps.txt"; exit 1; }
echo "build: $(( $(date +%s) - start )) s" | tee -a "$out/steps.txt"

step "test_attention_cuda"
build-gpu/tests/test_attention_cuda > "$out/test-cuda.log" 2>&1 || status=1
grep -E "^\[  (PASSED|FAILED) |FAILED  \]|Failure" "$out/test-cuda.log" | head -20 | tee -a "$out/steps.txt"

step "compute-sanitizer memcheck (${MEMCHECK_FILTER:-all})"
compute-sanitizer --tool memcheck --error-exitcode 1 build-gpu/tests/test_attention_cuda --gtest_filter="${MEMCHECK_FILTER:-*}" \
  > "$out/memcheck.log" 2>&1 || status=1
tail -3 "$out/memcheck.log" | tee -a "$out/steps.txt"

step "hashhop attn-check --device cuda"
build-gpu/hashhop attn-check --device cuda > "$out/attn-check-cuda.txt" 2>&1 || status=1
tail -3 "$out/attn-check-cuda.txt" | tee -a "$out/steps.txt"

step "ops: CUDA vs CPU (tests/python/test_ops_cuda.py)"
HASHHOP_OPS_LIB=build-gpu/libhashhop_ops.so python3 tests/python/test_ops_cuda.py > "$out/ops-cuda.log" 2>&1 || status=1
tail -3 "$out/ops-cuda.log" | tee -a "$out/steps.txt"

step "hashhop attn-bench ${ATTN_BENCH_ARGS:-}"
# eval: the options may hold quoted words (--decode-sizes '' skips the decode table)
eval "build-gpu/hashhop attn-bench --json \"\$out/attn-bench.json\" ${ATTN_BENCH_ARGS:-}" > "$out/attn-bench.md" 2>&1 || status=1
tail -8 "$out/attn-bench.md" | tee -a "$out/steps.txt"

if [ -n "${NCU_KERNEL:-}" ]; then
  step "ncu: first launch of $NCU_KERNEL in attn-bench ${NCU_ARGS:-}"
  eval "ncu --kernel-name \"regex:\$NCU_KERNEL\" --launch-count 1 --section SpeedOfLight --section MemoryWorkloadAnalysis \
    --section ComputeWorkloadAnalysis --section Occupancy --section LaunchStats build-gpu/hashhop attn-bench ${NCU_ARGS:-}" \
    > "$out/ncu.txt" 2>&1 || status=1
  grep -E "Duration|Throughput|Pipe|Achieved Occupancy|Registers|Memory \[%\]|Compute \(SM\)" "$out/ncu.txt" | head -20 | tee -a "$out/steps.txt"
fi
echo "status $status" | tee -a "$out/steps.txt"
exit $status
