#!/usr/bin/env bash
# Evaluates a model directory on fixed HashHop sets: the training context (hops 1-2 without CoT, hops 1-4
# with CoT, hash lengths 8 and 16), then 16x and 256x longer prompts. Writes OUT/eval-*.json and prints
# a markdown table. Run: scripts/eval-suite.sh MODEL_DIR OUT_DIR [BIN] [CONTEXT_CHARS]
set -euo pipefail
model="$1"; out="$2"; bin="${3:-build/hashhop}"; ctx="${4:-8000}"
mkdir -p "$out"
run_set() {  # run_set NAME CHARS HOPS HASH_LEN COT SAMPLES [extra eval flags]
  local name="$1" chars="$2" hops="$3" len="$4" cot="$5" samples="$6"; shift 6
  local data="$out/data-$name.jsonl" cot_flag=""
  [ "$cot" = 1 ] && cot_flag="--cot"
  "$bin" gen --chars "$chars" --hops "$hops" --hash-len "$len" $cot_flag --queries 8 --samples "$samples" \
    --seed 424242 --out "$data"
  # The model's dense path throughout (2M-character sets would otherwise go to the engine).
  "$bin" eval --model "$model" --data "$data" --json --engine off "$@" >"$out/eval-$name.json"
  rm -f "$data"
  python3 - "$out/eval-$name.json" "$name" "$chars" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
o = r["overall"]
print(f"| {sys.argv[2]} | {int(sys.argv[3]):,} | {o['queries']} | {100*o['exact_rate']:.2f}% | {100*o['final_hash_rate']:.2f}% | {r['seconds']:.1f} |")
PY
}
echo "| set | prompt chars | queries | exact | final hash | seconds |"
echo "|---|---:|---:|---:|---:|---:|"
for len in 8 16; do
  for hops in 1 2; do run_set "ctx-h${hops}-L${len}" "$ctx" "$hops" "$len" 0 20; done
  for hops in 1 2 3 4; do run_set "ctx-h${hops}-L${len}-cot" "$ctx" "$hops" "$len" 1 10; done
done
for hops in 1 2; do
  run_set "16x-h${hops}-L16" $((ctx * 16)) "$hops" 16 0 5
  run_set "256x-h${hops}-L16" $((ctx * 256)) "$hops" 16 0 2
  run_set "256x-h${hops}-L16-gated" $((ctx * 256)) "$hops" 16 0 2 --gated-only
done
