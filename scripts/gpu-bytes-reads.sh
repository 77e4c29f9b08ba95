#!/usr/bin/env bash
# A trained byte model through the engine on one GPU with different reads (eval --prefill-window,
# --block-window, --block-topk): accuracy, seconds and peak GPU memory per variant, same prompts.
# Run there: MODEL=DIR scripts/gpu-bytes-reads.sh   (carry .gpu-deps and the model; files land in $OUT)
#   SETS     "chars samples;..." (default "1M 6"): 1-hop prompts, 8-letter hashes, 8 queries, seed 900000
#   VARIANTS "name:eval args;..." (default below: blocks 0 and 1, the global blocks of runs 17-21); each runs on every set, in order, until DEADLINE
#            (seconds since the start, 560), each eval cut at what is left.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out"
model="${MODEL:?MODEL=DIR: a byte model directory (config.json, model.pt)}"
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$out/reads.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$out/reads.txt"
h=build-gpu/hashhop
if [ ! -x "$h" ] || [ -n "${REBUILD:-}" ]; then  # REBUILD=1: a warm machine's binary may be older than the tree
  { cmake --preset gpu && cmake --build --preset gpu --target hashhop hashhop-torch -- -j "$(nproc)"; } > "$out/build.log" 2>&1 ||
    { grep -B2 -A12 "error" "$out/build.log" | head -60; exit 1; }
fi
log "built ($($h --version))"
window="--prefill-window 128 --chunk 4096"
VARIANTS="${VARIANTS:-window:$window;window+top64:$window --block-topk 1=64;window+local0:$window --block-window 0=256;window+both:$window --block-topk 1=64 --block-window 0=256}"
IFS=';' read -ra sets <<< "${SETS:-1M 6}"
IFS=';' read -ra variants <<< "$VARIANTS"
data=/tmp/reads-data; mkdir -p "$data"
for s in "${sets[@]}"; do
  read -r chars samples <<< "$s"
  $h gen --chars "$chars" --hops 1 --hash-len 8 --queries 8 --samples "$samples" --seed 900000 --out "$data/$chars-$samples.jsonl" ||
    { log "gen $chars x $samples failed"; exit 1; }
done
echo "| variant | chars | queries | exact | seconds | peak GPU MiB | engine |" | tee -a "$out/reads.md"
echo "|---|---:|---:|---:|---:|---:|---|" | tee -a "$out/reads.md"
for s in "${sets[@]}"; do
  read -r chars samples <<< "$s"
  for v in "${variants[@]}"; do
    name="${v%%:*}"; read -ra args <<< "${v#*:}"
    left=$(( ${DEADLINE:-560} - ($(date +%s) - start) ))
    if [ "$left" -le 10 ]; then log "$name $chars: skipped (DEADLINE)"; continue; fi
    f="$out/eval-${name//[^A-Za-z0-9_.-]/_}-$chars"  # names with '+' do not come back from the device
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$f.mem" & sampler=$!
    t0=$(date +%s)
    timeout "$left" $h eval --model "$model" --data "$data/$chars-$samples.jsonl" --device cuda --engine on --gated-only "${args[@]}" \
      --json --predictions "$f.pred.jsonl" > "$f.json" 2> "$f.err" || log "$name $chars: failed or ran past DEADLINE ($(tail -1 "$f.err"))"
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    python3 - "$f.json" "$name" "$chars" "$(( $(date +%s) - t0 ))" "$(sort -n "$f.mem" | tail -1)" "$(grep -m1 'byte engine' "$f.err")" <<'PY' | tee -a "$out/reads.md"
import json, sys
try:
    o = json.load(open(sys.argv[1]))["overall"]
    print(f"| {sys.argv[2]} | {sys.argv[3]} | {o['queries']} | {100 * o['exact_rate']:.2f}% | {sys.argv[4]} | {sys.argv[5]} | {sys.argv[6]} |")
except Exception as e:
    print(f"| {sys.argv[2]} | {sys.argv[3]} | — | — | {sys.argv[4]} | {sys.argv[5]} | no result ({type(e).__name__}) |")
PY
  done
done
log "done"
