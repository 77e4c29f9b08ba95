#!/usr/bin/env bash
# One device run of the engine benchmark: build the CLI there, run `hashhop engine-bench` with the model
# on CUDA (engine and dense path) and on the CPU (engine only), sampling GPU memory with nvidia-smi; with
# NO_DRAFTS_TOO=1, also the CUDA engine rows with --no-drafts (one model call per answer byte), the A/B of
# drafting. SIZES picks the prompt lengths; CPU_ROWS=0 skips the CPU rows. Run there: scripts/gpu-engine-bench.sh   (carry .gpu-deps;
# scripts/gpu-deps.sh makes it). Files land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out"
sizes="${SIZES:-1M,10M,100M,300M}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
cmake --preset gpu >/dev/null && cmake --build --preset gpu --target hashhop -- -j "$(nproc)" 2>&1 | tail -1
echo "build: $(( $(date +%s) - start )) s"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$out/gpu-memory-mib.txt" &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT
build-gpu/hashhop engine-bench --device cuda --sizes "$sizes" --hops 1,2 --dense-max 1M \
  --json "$out/engine-bench-cuda.json" | tee "$out/engine-bench-cuda.md"
echo "cuda run done: $(( $(date +%s) - start )) s"
if [ -n "${NO_DRAFTS_TOO:-}" ]; then
  build-gpu/hashhop engine-bench --device cuda --sizes "$sizes" --hops 1,2 --dense-max 0 --no-drafts \
    --json "$out/engine-bench-cuda-no-drafts.json" | tee "$out/engine-bench-cuda-no-drafts.md"
  echo "cuda run without drafts done: $(( $(date +%s) - start )) s"
fi
if [ "${CPU_ROWS:-1}" != 0 ]; then  # CPU_ROWS=0: CUDA rows only
  build-gpu/hashhop engine-bench --device cpu --sizes "$sizes" --hops 1 --dense-max 0 \
    --json "$out/engine-bench-cpu.json" | tee "$out/engine-bench-cpu.md"
fi
kill $sampler 2>/dev/null || true
echo "peak GPU memory used (MiB, whole device, both runs): $(sort -n "$out/gpu-memory-mib.txt" | tail -1)"
echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "total: $(( $(date +%s) - start )) s"
