#!/usr/bin/env bash
# The byte model's engine on one GPU: keys kept on the device against keys spilled to host memory
# (--device-bytes), same model and prompts; wall time, peak GPU memory and whether the predictions agree.
# Run there: scripts/gpu-byte-engine.sh   (carry .gpu-deps: scripts/gpu-deps.sh). Files land in $OUT.
# CHARS (200K) sets the prompt length, BUDGET (64M) the device budget of the spilling run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out"
chars="${CHARS:-200K}"; budget="${BUDGET:-64M}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
if [ ! -x build-gpu/hashhop-torch ]; then
  cmake --preset gpu > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  cmake --build --preset gpu --target hashhop hashhop-torch -- -j "$(nproc)" > "$out/build.log" 2>&1 ||
    { grep -B2 -A12 "error" "$out/build.log" | head -80; exit 1; }
fi
echo "build: $(( $(date +%s) - start )) s"
h=build-gpu/hashhop
work=/tmp/byte-engine; rm -rf "$work"; mkdir -p "$work"
# A bytes-h100-shaped model (LLGGGG, as run 9b): 20 steps, so the weights are not the init's; what is
# measured is the engine's cost and agreement, not accuracy.
$h train --config configs/bytes-local2.json --steps 20 --out "$work/model" --device cuda > "$out/train.log" 2>&1 || { tail -20 "$out/train.log"; exit 1; }
$h gen --chars "$chars" --samples 2 --hops 1 --queries 8 --hash-len 8 --seed 5 --out "$work/data.jsonl"
run() {  # $1: label, then eval's extra arguments
  local label="$1"; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$work/mem-$label.txt" &
  local sampler=$!
  local t0; t0=$(date +%s%N)
  $h eval --model "$work/model" --data "$work/data.jsonl" --device cuda --engine on --json \
    --predictions "$work/pred-$label.jsonl" "$@" > "$work/eval-$label.json" 2> "$work/eval-$label.err"
  local t1; t1=$(date +%s%N)
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  printf '%s: %d ms, peak GPU memory %s MiB; %s\n' "$label" "$(( (t1 - t0) / 1000000 ))" "$(sort -n "$work/mem-$label.txt" | tail -1)" \
    "$(grep -m1 'byte engine' "$work/eval-$label.err" || true)" | tee -a "$out/byte-engine.txt"
}
run kept
run spilled --device-bytes "$budget"
if cmp -s "$work/pred-kept.jsonl" "$work/pred-spilled.jsonl"; then
  echo "predictions: identical" | tee -a "$out/byte-engine.txt"
else
  python3 - "$work/pred-kept.jsonl" "$work/pred-spilled.jsonl" <<'EOF' | tee -a "$out/byte-engine.txt"
import json, re, sys
line = re.compile(r"^(\w+) = '(.*)'$", re.M)
answers = lambda path: [pair for l in open(path) for pair in line.findall(json.loads(l)["completion"])]
a, b = answers(sys.argv[1]), answers(sys.argv[2])
same = sum(x == y for x, y in zip(a, b))
print(f"predictions: {same} of {len(a)} answers identical (bf16 SDPA against float32 reads)")
EOF
fi
cp "$work"/eval-*.err "$out/" 2>/dev/null || true
echo "CPU: $(nproc) cores; total: $(( $(date +%s) - start )) s"
