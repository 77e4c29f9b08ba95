# Issue 13 cases of tests/cli/test_cli.sh (sourced: uses its bin, data, work, check and no_file).
# Sweep with the demo model on tiny sizes, plot to PNG and SVG, score's codelion/targets forms, CLI consistency.
demo="$data/../../models/demo"

check "version" 0 "^hashhop [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]+|unknown)\)" -- "$bin" --version
check "usage error names the command" 2 "^hashhop gen: error: .*--bogus" -- "$bin" gen --chars 100 --bogus

# sweep: the exact solver is perfect; the demo model answers every cell; results JSON is whole.
check "sweep solver" 0 "4 cells, 48 queries, exact 100.00%" -- "$bin" sweep --solver --sizes 1K,2K --hops 1,2 --cot off --samples 2 --queries 6 --hash-len 8
check "sweep demo model" 0 "8 cells" -- "$bin" sweep --model "$demo" --device cpu --sizes 500,1K --hops 1,2 --cot both --samples 1 --queries 4 --hash-len 8 --out "$work/sweep.json"
python3 - "$work/sweep.json" <<'PY' && passed=$((passed + 1)) || { echo "FAIL sweep json"; failed=$((failed + 1)); }
import json, sys
r = json.load(open(sys.argv[1]))
assert r["format"] == "hashhop-sweep/1" and len(r["cells"]) == 8, r.keys()
assert r["device"] == "cpu" and r["model"].endswith("models/demo") and r["command"].startswith("hashhop sweep")
assert all(c["queries"] == 4 and c["latency_s"]["mean_per_record"] > 0 for c in r["cells"])
assert {"date", "commit", "version", "cpu", "score"} <= set(r)
PY
check "sweep json on stdout" 0 "\"format\": \"hashhop-sweep/1\"" -- "$bin" sweep --solver --sizes 1K --hops 1 --cot on --samples 1 --hash-len 8 --json
grep -q "cells, " "$work/err" && passed=$((passed + 1)) || { echo "FAIL sweep --json table on stderr"; failed=$((failed + 1)); }
check "sweep same seeds" 0 "" -- "$bin" sweep --solver --sizes 1K --hops 1 --cot on --samples 1 --hash-len 8 --out "$work/s1.json"
grep -q "\"first_seed\": $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cells"][0]["first_seed"])' "$work/s1.json")" "$work/s1.json" \
  && passed=$((passed + 1)) || { echo "FAIL sweep seed"; failed=$((failed + 1)); }
check "sweep needs an answerer" 1 "^hashhop sweep: error: exactly one of --model DIR, --endpoint URL or --solver" -- "$bin" sweep --sizes 1K
check "sweep model or endpoint" 2 "^hashhop sweep: error: --model excludes --endpoint" -- "$bin" sweep --model "$demo" --endpoint http://127.0.0.1:9/v1
# An endpoint sweep runs in the lean hashhop (no hashhop-torch needed) and fails before any work when nothing listens.
check "sweep endpoint down" 1 "^hashhop sweep: error: GET http://127.0.0.1:9/v1/models" -- env HASHHOP_TORCH_BINARY=/nonexistent "$bin" sweep --endpoint http://127.0.0.1:9/v1 --retries 0 --sizes 1K --out "$work/never2.json"
no_file "sweep endpoint failure leaves no results" "$work/never2.json"
check "sweep solver without hashhop-torch" 0 "1 cells, 5 queries, exact 100.00%" -- env HASHHOP_TORCH_BINARY=/nonexistent "$bin" sweep --solver --sizes 1K --hops 1 --cot off --samples 1 --hash-len 8
check "sweep bad size" 1 "--sizes: expected a size" -- "$bin" sweep --solver --sizes 1K,big
check "sweep bad cot" 2 "--cot" -- "$bin" sweep --solver --cot maybe
check "sweep model hops" 1 "cell size 1000 hops 5 cot off .*max_hops" -- "$bin" sweep --model "$demo" --device cpu --sizes 1K --hops 5 --cot off --samples 1 --hash-len 8 --out "$work/never.json"
no_file "sweep failure leaves no results" "$work/never.json"

# plot: a real PNG and SVG with matplotlib; clear errors.
check "plot png" 0 "" -- "$bin" plot "$work/sweep.json" -o "$work/fig.png"
[ -s "$work/fig.png" ] && head -c 8 "$work/fig.png" | grep -q PNG && passed=$((passed + 1)) || { echo "FAIL plot png"; failed=$((failed + 1)); }
check "plot svg" 0 "" -- "$bin" plot "$work/sweep.json" --out "$work/fig.svg"
grep -q "<svg" "$work/fig.svg" && passed=$((passed + 1)) || { echo "FAIL plot svg"; failed=$((failed + 1)); }
check "plot bad results" 1 "^hashhop plot: error: .*ok.jsonl.*(not valid JSON|format)" -- "$bin" plot "$work/ok.jsonl" -o "$work/bad.png"
no_file "plot bad results" "$work/bad.png"
check "plot missing results" 1 "^hashhop plot: error: .*nope.json: cannot open" -- "$bin" plot "$work/nope.json" -o "$work/bad.png"
check "plot bad extension" 1 "expected a .png, .svg or .pdf" -- "$bin" plot "$work/sweep.json" -o "$work/fig.gif"
check "plot without python3" 1 "^hashhop plot: error: /nonexistent/python3: cannot run" -- env HASHHOP_PYTHON=/nonexistent/python3 "$bin" plot "$work/sweep.json" -o "$work/fig2.png"

# score: codelion-style predictions, records without completion, hash length rows.
printf '{"qWerTy": "LkjHgf", "MnbVcx": "AsdFgh"}\n{"qWerTy": "AsdFgh = LkjHgf", "MnbVcx": "PoiUyt = PoiUyt"}\n' >"$work/codelion.jsonl"
check "score codelion lines" 0 "all \(2 records\) +4 +50.00%" -- "$bin" score --data "$data/magic_sample.jsonl" --predictions "$work/codelion.jsonl"
printf '{\n "qWerTy": "LkjHgf",\n "MnbVcx": "PoiUyt"\n}\n' >"$work/codelion.json"
check "score codelion object" 0 "hash_len=6 +4 " -- "$bin" score --data "$data/magic_sample.jsonl" --predictions "$work/codelion.json"
python3 -c 'import json,sys
for line in open(sys.argv[1]):
    r = json.loads(line); del r["completion"]; r["hops"] = 2; print(json.dumps(r))' "$data/magic_sample.jsonl" >"$work/targets_only.jsonl"
check "score targets only" 0 "all \(2 records\) +4 +50.00%" -- "$bin" score --data "$work/targets_only.jsonl" --predictions "$data/predictions_magic_sample.jsonl"
check "score by hash length json" 0 "\"by_hash_len\"" -- "$bin" score --json --data "$data/magic_sample.jsonl" --predictions "$data/predictions_magic_sample.jsonl"
check "score json to a file" 0 "all \(2 records\)" -- "$bin" score --json "$work/score.json" --data "$data/magic_sample.jsonl" --predictions "$data/predictions_magic_sample.jsonl"
grep -q '"by_hash_len"' "$work/score.json" && passed=$((passed + 1)) || { echo "FAIL score --json FILE"; failed=$((failed + 1)); }

# Size suffixes wherever a size is taken.
check "demo chars suffix" 0 "exact reference solver" -- "$bin" demo --model "$work/no-model" --chars 2K
check "chunk suffix" 0 "all \(2 records\)" -- "$bin" eval --model "$demo" --device cpu --chunk 64K --data "$data/magic_sample.jsonl"
check "chunk bad suffix" 2 "--chunk.*expected a size" -- "$bin" eval --model "$demo" --chunk 6Q --data "$data/magic_sample.jsonl"
check "engine-bench json on stdout" 0 "\"rows\"" -- "$bin" engine-bench --model "$demo" --sizes 2K --baseline 1K --hops 1 --queries 2 --single-queries 0 --dense-max 2K --device cpu --json
grep -q "| 2000 | 1 | engine |" "$work/err" && passed=$((passed + 1)) || { echo "FAIL engine-bench --json table on stderr"; failed=$((failed + 1)); }

# The lean hashhop loads no LibTorch; hashhop-torch beside it runs the model commands (same --help).
torch_bin="$(dirname "$bin")/hashhop-torch"
if ldd "$bin" | grep -q "libtorch"; then echo "FAIL lean hashhop links LibTorch"; failed=$((failed + 1)); else passed=$((passed + 1)); fi
diff <("$bin" --help) <("$torch_bin" --help) >"$work/help.diff" && passed=$((passed + 1)) || { echo "FAIL --help differs: $(head -c 300 "$work/help.diff")"; failed=$((failed + 1)); }
check "torch binary missing" 1 "^hashhop eval: error: /nonexistent/hashhop-torch: cannot run" -- env HASHHOP_TORCH_BINARY=/nonexistent/hashhop-torch "$bin" eval --help
check "torch command help through the lean binary" 0 "--engine-above" -- "$bin" eval --help
