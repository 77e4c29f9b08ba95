#!/usr/bin/env bash
# A/B of two byte-model configs trained side by side on one GPU (same seeds, so the same batches), then, with
# EVAL=1, both evaluated on fixed sets from 1x to 64x the longest training prompt (learning-log §13).
# Run there: [TRAIN_SECONDS=N] [EVAL=1] scripts/gpu-train-ab.sh CONFIG_A CONFIG_B   (carry .gpu-deps;
# runs/ stays on a warm machine, so the next call resumes both). Logs, metrics and evals: $OUT/ab.tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out" runs ab
configs=("${1:?config A}" "${2:?config B}")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ)"
start=$(date +%s)
if [ ! -x build-gpu/hashhop-torch ]; then
  cmake --preset gpu > ab/configure.log 2>&1 || { tail -30 ab/configure.log; exit 1; }
  cmake --build --preset gpu --target hashhop hashhop-torch -- -j "$(nproc)" > ab/build.log 2>&1 ||
    { grep -B2 -A12 "error" ab/build.log | head -80; exit 1; }
fi
echo "build: $(( $(date +%s) - start )) s"
name_of() { basename "$1" .json; }
pids=()
for c in "${configs[@]}"; do
  n=$(name_of "$c")
  build-gpu/hashhop train --config "$c" --out "runs/$n" --device cuda --time-limit "${TRAIN_SECONDS:-300}" \
    >> "ab/train-$n.log" 2>&1 &
  pids+=($!)
done
status=0; for p in "${pids[@]}"; do wait "$p" || status=1; done
for c in "${configs[@]}"; do n=$(name_of "$c"); tail -2 "ab/train-$n.log"; cp "runs/$n/metrics.jsonl" "ab/$n-metrics.jsonl"; done
[ "$status" = 0 ] || { echo "a training failed"; tar czf "$out/ab.tar.gz" ab; exit 1; }
echo "trained: $(( $(date +%s) - start )) s"
if [ "${EVAL:-0}" = 1 ]; then
  # Fixed sets (seed 900000, 8-letter hashes, 8 queries a prompt); the dense path, as in training.
  sets=("600 1 0 25" "2400 2 1 25" "9600 1 0 12" "38400 1 0 12" "153600 1 0 4")
  for s in "${sets[@]}"; do
    read -r chars hops cot samples <<< "$s"
    flag=""; [ "$cot" = 1 ] && flag="--cot"
    build-gpu/hashhop gen --chars "$chars" --hops "$hops" --hash-len 8 $flag --queries 8 --samples "$samples" \
      --seed 900000 --out "ab/data-$chars-$hops-$cot.jsonl"
  done
  echo "| model | set (chars, hops, CoT) | queries | exact | seconds |"
  echo "|---|---|---:|---:|---:|"
  for c in "${configs[@]}"; do
    n=$(name_of "$c")
    for s in "${sets[@]}"; do
      read -r chars hops cot samples <<< "$s"
      build-gpu/hashhop eval --model "runs/$n" --data "ab/data-$chars-$hops-$cot.jsonl" --device cuda --engine off --json \
        > "ab/eval-$n-$chars-$hops-$cot.json"
      python3 - "ab/eval-$n-$chars-$hops-$cot.json" "$n" "$chars, $hops, $cot" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); o = r["overall"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {o['queries']} | {100 * o['exact_rate']:.2f}% | {r['seconds']:.1f} |")
PY
    done
  done
  rm -f ab/data-*.jsonl
fi
tar czf "$out/ab.tar.gz" ab
echo "total: $(( $(date +%s) - start )) s"
