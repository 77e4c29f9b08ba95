#!/usr/bin/env bash
# `hashhop serve` + `hashhop eval --endpoint` against a local `hashhop eval --model`, on 127.0.0.1 (no Python packages).
# Run: tests/serve/test_serve.sh build/hashhop models/demo   (ctest runs it as serve_endpoint; the full suite: tests/python/test_serve.py)
set -u
bin="$1"; model="$2"
work=$(mktemp -d); server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL $*"; exit 1; }

"$bin" gen --chars 2000 --hops 2 --hash-len 8 --queries 4 --samples 2 --seed 1 --out "$work/a.jsonl" || fail gen
"$bin" gen --chars 2000 --hops 4 --hash-len 2 --queries 4 --samples 3 --seed 3 --out "$work/b.jsonl" || fail gen
cat "$work/a.jsonl" "$work/b.jsonl" >"$work/data.jsonl"
"$bin" eval --model "$model" --data "$work/data.jsonl" --json >"$work/local.json" || fail "local eval"

"$bin" serve --model "$model" --model-name demo --port 0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 100); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
port=$(grep -o '127\.0\.0\.1:[0-9]*' "$work/serve.out" | head -1 | cut -d: -f2)
[ -n "$port" ] || fail "no port: $(cat "$work/serve.err")"

"$bin" eval --endpoint "http://127.0.0.1:$port/v1" --data "$work/data.jsonl" --json --parallel 4 \
  --predictions "$work/preds.jsonl" >"$work/remote.json" || fail "endpoint eval"
overall() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["overall"], sort_keys=True))' "$1"; }
[ "$(overall "$work/local.json")" = "$(overall "$work/remote.json")" ] || fail "accuracy differs: $(overall "$work/local.json") vs $(overall "$work/remote.json")"
[ "$(wc -l <"$work/preds.jsonl")" -eq 20 ] || fail "want 20 prediction lines"
# A rerun resumes everything from the predictions file and asks nothing.
"$bin" eval --endpoint "http://127.0.0.1:$port/v1" --data "$work/data.jsonl" --json --predictions "$work/preds.jsonl" >"$work/again.json" || fail rerun
grep -q '"requests": 0' "$work/again.json" && grep -q '"resumed": 20' "$work/again.json" || fail "rerun asked again"
[ "$(overall "$work/local.json")" = "$(overall "$work/again.json")" ] || fail "resumed accuracy differs"
# sweep --endpoint: the same cells (fixed seeds) answered by the server score what sweep --model scores, cell by cell.
# It runs in the lean hashhop: HASHHOP_TORCH_BINARY points nowhere, so a LibTorch command would fail.
sweep_args=(--sizes 2K --hops 2,4 --cot both --hash-len 2 --samples 1 --queries 4 --seed 3)
"$bin" sweep --model "$model" --device cpu "${sweep_args[@]}" --out "$work/sweep-local.json" >/dev/null 2>&1 || fail "local sweep"
HASHHOP_TORCH_BINARY=/nonexistent "$bin" sweep --endpoint "http://127.0.0.1:$port/v1" --parallel 2 "${sweep_args[@]}" \
  --out "$work/sweep-remote.json" >/dev/null 2>"$work/sweep.err" || fail "endpoint sweep: $(tail -1 "$work/sweep.err")"
cells() { python3 -c 'import json,sys; print([(c["n_chars"], c["hops"], c["cot"], c["queries"], c["exact"], c["final_hash"]) for c in json.load(open(sys.argv[1]))["cells"]])' "$1"; }
[ "$(cells "$work/sweep-local.json")" = "$(cells "$work/sweep-remote.json")" ] || fail "sweep cells differ: $(cells "$work/sweep-local.json") vs $(cells "$work/sweep-remote.json")"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["answerer"] == "endpoint" and r["model"] == "demo" and r["requests"] == 16, r' \
  "$work/sweep-remote.json" || fail "sweep results meta"
# A malformed request is a 400 with a JSON error, and the server answers the next one.
python3 - "$port" <<'PY' || fail "bad request handling"
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.request("POST", "/v1/completions", body="{oops", headers={"Content-Type": "application/json"})
r = c.getresponse(); body = json.loads(r.read())
assert r.status == 400 and body["error"]["type"] == "invalid_request_error", (r.status, body)
c.request("GET", "/health"); r = c.getresponse(); assert r.status == 200 and json.loads(r.read())["status"] == "ok"
PY
kill -TERM "$server"; wait "$server"; rc=$?; server=""
[ "$rc" -eq 0 ] && grep -q stopped "$work/serve.err" || fail "SIGTERM: rc $rc, $(cat "$work/serve.err")"
echo "serve_endpoint: ok"
