#!/usr/bin/env bash
# A byte model against the issue's targets, one set per row (fresh `gen` data, seed 900000, 8 queries a prompt):
# hash lengths 4-64, CoT chains 1-8 hops, 2 hops without CoT, prompt lengths; BATTERY_SETS="chars hops cot hash_len samples;..."
# picks other rows. Run: scripts/byte-battery.sh MODEL_DIR OUT.md [device]
set -euo pipefail
model="${1:?model directory}"; out="${2:?output table (.md)}"; device="${3:-cpu}"
h="${HASHHOP:-build/hashhop}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# chars hops cot hash_len samples: what the row measures
sets="${BATTERY_SETS:-2400 1 0 4 4;2400 1 0 8 4;2400 1 0 16 4;2400 1 0 24 4;2400 1 0 32 4;2400 1 0 64 4;\
2400 1 1 8 4;2400 2 1 8 4;2400 4 1 8 4;2400 6 1 8 4;2400 8 1 8 4;2400 2 0 8 4;\
4800 1 0 8 4;9600 1 0 8 3;19200 1 0 8 2}"
{
  echo "| chars | hops | CoT | hash length | queries | exact | first byte right | seconds |"
  echo "|---:|---:|---|---:|---:|---:|---:|---:|"
} > "$work/table.md"
IFS=';' read -ra rows <<< "$sets"
for r in "${rows[@]}"; do
  read -r chars hops cot len samples <<< "$r"
  flag=""; [ "$cot" = 1 ] && flag="--cot"
  d="$work/$chars-$hops-$cot-$len.jsonl"
  "$h" gen --chars "$chars" --hops "$hops" --hash-len "$len" $flag --queries 8 --samples "$samples" --seed 900000 --out "$d"
  "$h" eval --model "$model" --data "$d" --device "$device" --engine off --json --predictions "$d.pred" > "$d.json"
  python3 - "$d" "$d.pred" "$d.json" "$chars" "$hops" "$cot" "$len" <<'PY' | tee -a "$work/table.md"
import json, sys
data, pred, score = sys.argv[1:4]
r = json.load(open(score)); o = r["overall"]
first = total = 0
for rec, p in zip(open(data), open(pred)):
    want = json.loads(rec)["completion"]; got = json.loads(p)["completion"]
    # each query's answer is the text after its "= '" up to the closing quote; compare first bytes
    for w, g in zip(want.split("\n"), got.split("\n")):
        if "'" in w:
            total += 1
            a, b = w.split("'")[1:2], g.split("'")[1:2]
            first += bool(a and b and a[0][:1] == b[0][:1])
print(f"| {sys.argv[4]} | {sys.argv[5]} | {'yes' if sys.argv[6] == '1' else 'no'} | {sys.argv[7]} | {o['queries']} | "
      f"{100 * o['exact_rate']:.1f}% | {first}/{total} | {r['seconds']:.1f} |")
PY
done
mv "$work/table.md" "$out"
