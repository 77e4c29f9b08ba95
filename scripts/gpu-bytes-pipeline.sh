#!/usr/bin/env bash
# The byte model's training pipeline on one GPU, one phase per device call (runs/ stays on the warm machine):
#   base   build the CLI, then train bytes-h100 from scratch into runs/base for BASE_SECONDS (default: what
#          is left of 570 s after the build)
#   arms   train configs/bytes-prope-64.json from runs/base (PROPE_SECONDS, 150), then each ARM config from
#          runs/prope side by side (ARM_SECONDS, 420; same seed, so the same batches)
#   eval   each arm on fixed sets, its soft gate (dense path) and its gate made hard (engine, --gated-only),
#          then the engine at 1M characters on ENGINE_ARM (memory, time); the PACK runs' models (default
#          ENGINE_ARM) come back split into <16 MB pieces (cat model.pt.* > model.pt)
# Run there: scripts/gpu-bytes-pipeline.sh PHASE [ARM configs...]   (carry .gpu-deps). Results land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
phase="${1:?phase: base, arms or eval}"; shift
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out" runs pipeline
h=build-gpu/hashhop
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$out/pipeline.txt"; }
name_of() { basename "$1" .json; }
pack() {  # $1: run directory; its weights in pieces (files back are at most 16 MB), config and metrics
  local n; n=$(basename "$1"); mkdir -p "$out/$n"
  cp "$1/config.json" "$1/metrics.jsonl" "$out/$n/"
  split -b 15M -d "$1/model.pt" "$out/$n/model.pt."
}

case "$phase" in
base)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ)" | tee -a "$out/gpu.txt"
  if [ ! -x "$h" ]; then
    cmake --preset gpu > pipeline/configure.log 2>&1 || { tail -30 pipeline/configure.log; exit 1; }
    cmake --build --preset gpu --target hashhop -- -j "$(nproc)" > pipeline/build.log 2>&1 ||
      { grep -B2 -A12 "error" pipeline/build.log | head -80; exit 1; }
  fi
  log "built"
  seconds="${BASE_SECONDS:-$(( 570 - ($(date +%s) - start) ))}"
  $h train --config bytes-h100 --out runs/base --device cuda --time-limit "$seconds" > pipeline/train-base.log 2>&1
  tail -1 pipeline/train-base.log | tee -a "$out/pipeline.txt"
  cp runs/base/metrics.jsonl "$out/base-metrics.jsonl"
  ;;
arms)
  [ $# -ge 1 ] || { echo "arms: name at least one ARM config" >&2; exit 2; }
  if [ ! -f runs/prope/model.pt ]; then
    $h train --config configs/bytes-prope-64.json --init runs/base --out runs/prope --device cuda \
      --time-limit "${PROPE_SECONDS:-150}" > pipeline/train-prope.log 2>&1
    tail -1 pipeline/train-prope.log | tee -a "$out/pipeline.txt"
  fi
  cp runs/prope/metrics.jsonl "$out/prope-metrics.jsonl"
  pids=()
  for c in "$@"; do
    n=$(name_of "$c")
    init=(--init runs/prope); [ -f "runs/$n/checkpoint.pt" ] && init=()  # a second call resumes
    $h train --config "$c" "${init[@]}" --out "runs/$n" --device cuda --time-limit "${ARM_SECONDS:-420}" \
      > "pipeline/train-$n.log" 2>&1 &
    pids+=($!)
  done
  status=0; for p in "${pids[@]}"; do wait "$p" || status=1; done
  for c in "$@"; do n=$(name_of "$c"); log "$n: $(tail -1 "pipeline/train-$n.log")"; cp "runs/$n/metrics.jsonl" "$out/$n-metrics.jsonl"; done
  tar czf "$out/logs.tar.gz" pipeline/train-*.log
  exit "$status"
  ;;
eval)
  [ $# -ge 1 ] || { echo "eval: name at least one ARM config" >&2; exit 2; }
  # Fixed sets (seed 900000, 8-letter hashes, 8 queries a prompt): chars, hops, CoT, samples.
  sets=("600 1 0 25" "2400 2 1 25" "9600 1 0 12" "38400 1 0 12")
  for s in "${sets[@]}"; do
    read -r chars hops cot samples <<< "$s"
    flag=""; [ "$cot" = 1 ] && flag="--cot"
    $h gen --chars "$chars" --hops "$hops" --hash-len 8 $flag --queries 8 --samples "$samples" --seed 900000 \
      --out "pipeline/data-$chars-$hops-$cot.jsonl"
  done
  echo "| model | set (chars, hops, CoT) | gate | queries | exact | seconds |" | tee -a "$out/evals.md"
  echo "|---|---|---|---:|---:|---:|" | tee -a "$out/evals.md"
  for c in "$@"; do
    n=$(name_of "$c")
    for s in "${sets[@]}"; do
      read -r chars hops cot samples <<< "$s"
      for gate in soft hard; do
        args=(--engine off); [ "$gate" = hard ] && args=(--engine on --gated-only)
        f="pipeline/eval-$n-$chars-$hops-$cot-$gate"
        $h eval --model "runs/$n" --data "pipeline/data-$chars-$hops-$cot.jsonl" --device cuda "${args[@]}" --json \
          > "$f.json" 2> "$f.err" || { tail -3 "$f.err"; continue; }
        python3 - "$f.json" "$n" "$chars, $hops, $cot" "$gate" "$(grep -m1 'byte engine' "$f.err" || true)" <<'PY' | tee -a "$out/evals.md"
import json, sys
r = json.load(open(sys.argv[1])); o = r["overall"]
note = f" ({sys.argv[5]})" if sys.argv[5] else ""
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]}{note} | {o['queries']} | {100 * o['exact_rate']:.2f}% | {r['seconds']:.1f} |")
PY
      done
    done
  done
  for n in ${PACK:-${ENGINE_ARM:-}}; do pack "runs/$n"; done
  if [ -n "${ENGINE_ARM:-}" ]; then
    # The engine on a long prompt: one sample at ENGINE_CHARS, hard gate, keys kept against keys spilled.
    $h gen --chars "${ENGINE_CHARS:-1M}" --hops 1 --hash-len 8 --queries 8 --samples 1 --seed 900001 --out pipeline/long.jsonl
    for mode in kept spilled; do
      extra=(); [ "$mode" = spilled ] && extra=(--device-bytes "${BUDGET:-64M}")
      nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "pipeline/mem-$mode.txt" &
      sampler=$!
      t0=$(date +%s%N)
      $h eval --model "runs/$ENGINE_ARM" --data pipeline/long.jsonl --device cuda --engine on --gated-only "${extra[@]}" \
        --json --predictions "pipeline/pred-$mode.jsonl" > "pipeline/long-$mode.json" 2> "pipeline/long-$mode.err" || tail -3 "pipeline/long-$mode.err"
      t1=$(date +%s%N)
      kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
      log "engine $mode, ${ENGINE_CHARS:-1M} chars: $(( (t1 - t0) / 1000000 )) ms, peak GPU memory $(sort -n "pipeline/mem-$mode.txt" | tail -1) MiB; $(grep -m1 'byte engine' "pipeline/long-$mode.err" || true); exact $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["overall"]["exact_rate"])' "pipeline/long-$mode.json" 2>/dev/null || echo '?')"
    done
    cmp -s pipeline/pred-kept.jsonl pipeline/pred-spilled.jsonl && log "engine: kept and spilled predictions identical" ||
      log "engine: kept and spilled predictions differ"
  fi
  tar czf "$out/evals.tar.gz" pipeline/*.err pipeline/*.json 2>/dev/null || true
  ;;
*) echo "unknown phase '$phase' (base, arms, eval)" >&2; exit 2 ;;
esac
log "phase $phase done"
