#!/usr/bin/env bash
# One device run of byte-level training: build the CLI with the `gpu` preset, train CONFIG into runs/NAME
# for TRAIN_SECONDS (resuming when runs/NAME is carried), then copy the run's files to $OUT.
# Run there: scripts/gpu-train-bytes.sh CONFIG NAME [extra train options]   (carry .gpu-deps and runs/NAME)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
config="${1:?config}"; name="${2:?name}"; shift 2
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out" runs
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
start=$(date +%s)
[ -f build-gpu/build.ninja ] || cmake --preset gpu >/dev/null
cmake --build --preset gpu --target hashhop -- -j "$(nproc)" 2>&1 | tail -1
echo "build: $(( $(date +%s) - start )) s"
build-gpu/hashhop train --config "$config" --out "runs/$name" --device cuda --time-limit "${TRAIN_SECONDS:-300}" "$@" \
  2>&1 | tee "$out/train-$name.log"
mkdir -p "$out/$name" && cp "runs/$name"/{config.json,model.pt,checkpoint.pt,metrics.jsonl} "$out/$name/"
echo "total: $(( $(date +%s) - start )) s"
