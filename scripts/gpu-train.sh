#!/usr/bin/env bash
# One device run of training: build the CLI there, train (resuming from runs/NAME when carried), evaluate,
# and copy the run directory to $OUT. Keep each call inside the 10-minute limit with TRAIN_SECONDS.
# Run there: scripts/gpu-train.sh [CONFIG] [NAME]   (carry .gpu-deps and runs/NAME; scripts/gpu-deps.sh makes .gpu-deps)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
config="${1:-h100}"; name="${2:-h100}"
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out" runs
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
start=$(date +%s)
cmake --preset gpu >/dev/null && cmake --build --preset gpu --target hashhop -- -j "$(nproc)" 2>&1 | tail -1
echo "build: $(( $(date +%s) - start )) s"
build-gpu/hashhop train --config "$config" --out "runs/$name" --device cuda --time-limit "${TRAIN_SECONDS:-300}" \
  2>&1 | tee "$out/train-$name.log" | awk 'NR % 10 == 1'
mkdir -p "$out/$name" && cp "runs/$name"/{config.json,model.pt,checkpoint.pt,metrics.jsonl} "$out/$name/"
if [ "${EVAL:-1}" = 1 ]; then
  # Per-set JSON stays on the machine: a device run returns only a few files.
  scripts/eval-suite.sh "runs/$name" "runs/eval-$name" build-gpu/hashhop "${EVAL_CONTEXT:-8000}" | tee "$out/eval-$name.md"
fi
echo "total: $(( $(date +%s) - start )) s"
