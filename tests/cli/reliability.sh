# Bad inputs from the reliability audit (issue 15), one class per block; sourced by test_cli.sh, which
# provides $bin, $data, $work, check, no_file and the counters. Run: tests/cli/test_cli.sh build/hashhop tests/data
one_line() {  # one_line NAME: the last command's stderr is exactly one line (no torch trace)
  if [ "$(wc -l <"$work/err")" -eq 1 ]; then passed=$((passed + 1)); else echo "FAIL $1: $(wc -l <"$work/err") lines of stderr"; failed=$((failed + 1)); fi
}
gone() {  # gone NAME PATH: PATH does not exist
  if [ -e "$2" ]; then echo "FAIL $1: $2 left behind"; failed=$((failed + 1)); else passed=$((passed + 1)); fi
}
demo="$data/../../models/demo"

# Crashes: hops 0 used to divide by zero in the generator's sizing.
check "engine-bench hops 0" 1 "--hops: must be >= 1" -- "$bin" engine-bench --model "$demo" --sizes 20K --hops 0 --device cpu
printf '{"base": "tiny", "train": {"curriculum": [{"from_step": 0, "min_chars": 150, "max_chars": 300, "hops": [0], "hash_lens": [4]}]}}' >"$work/hops0.json"
check "curriculum hops 0" 1 "hops0.json \\(train\\) curriculum\\[0\\]: field 'hops': must be >= 1" -- "$bin" train --config "$work/hops0.json" --out "$work/run_hops0"
gone "curriculum hops 0 leaves no run" "$work/run_hops0"
# A full disk while checkpointing (a file size limit: the same ENOSPC-like failure, no root needed).
( ulimit -f 40; trap '' XFSZ; exec "$bin" train --config tiny --steps 20 --out "$work/run_full" ) >"$work/out" 2>"$work/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -qE "(checkpoint|model)\\.pt: (cannot write|write failed)" "$work/err"; then passed=$((passed + 1)); else echo "FAIL full disk: rc=$rc $(head -c 300 "$work/err")"; failed=$((failed + 1)); fi
one_line "full disk"
gone "full disk leaves no partial run" "$work/run_full"

# The hang: a request larger than the disk is refused at once instead of growing memory.
check "gen samples 1e12" 1 "--out .*: [0-9]+ bytes is more than the limit of [0-9]+ bytes \\(the free space" -- timeout 20 "$bin" gen --tokens 1K --samples 1000000000000 --out "$work/huge.jsonl"
no_file "gen samples 1e12" "$work/huge.jsonl"
check "gen queries 0" 1 "--queries: must be >= 1" -- "$bin" gen --chars 100 --queries 0 --out "$work/q0.jsonl"

# Files left behind: gen killed by INT, TERM, HUP or PIPE removes its temporary; one killed by KILL
# leaves one that the next writer of the same path sweeps away.
for sig in INT TERM HUP PIPE; do
  ( set -m  # job control, so the background job does not start with SIGINT ignored
    "$bin" gen --tokens 100M --out "$work/sig.jsonl" 2>/dev/null &
    pid=$!
    for _ in $(seq 200); do ls "$work"/sig.jsonl.partial.* >/dev/null 2>&1 && break; sleep 0.02; done
    kill -s "$sig" "$pid"; wait "$pid" ) 2>/dev/null
  no_file "gen killed by SIG$sig" "$work/sig.jsonl.partial"
  rm -f "$work/sig.jsonl"  # in case it finished before the signal came
done
true & dead=$!; wait "$dead"
: >"$work/swept.jsonl.partial.$dead"; : >"$work/swept.jsonl.partial.$$"
check "gen after a SIGKILL" 0 "" -- "$bin" gen --chars 1000 --out "$work/swept.jsonl"
gone "stale temporary of a dead process swept" "$work/swept.jsonl.partial.$dead"
[ -e "$work/swept.jsonl.partial.$$" ] && passed=$((passed + 1)) || { echo "FAIL sweep removed a live process's temporary"; failed=$((failed + 1)); }
rm -f "$work/swept.jsonl.partial.$$"

# Unclear errors: one line naming file, line and field.
printf '{"completion": "COMPLETION:\\nHops=1\\n\\nCoT=False\\n\\nabc = '"'"'def'"'"'\\n", "n_chars_problem": 1e999}\n' >"$work/overflow.jsonl"
check "json overflow" 1 "overflow.jsonl:1: field 'n_chars_problem': number out of range" -- "$bin" score --data "$work/overflow.jsonl" --predictions "$data/predictions_magic_sample.jsonl"
printf '{"train": {"lr": 1e999}}' >"$work/lr.json"
check "config overflow" 1 "lr.json: field 'lr': number out of range" -- "$bin" train --config "$work/lr.json" --out "$work/run_lr"
printf '{"model": {"model_dim": 100000000}}' >"$work/absurd.json"
check "absurd dimensions" 1 "absurd.json \\(model\\): field 'model_dim': must be in \\[1, 16384\\]" -- "$bin" train --config "$work/absurd.json" --out "$work/run_absurd"
gone "absurd dimensions leave no run" "$work/run_absurd"
mkdir -p "$work/mismatch" && cp "$demo/model.pt" "$work/mismatch/" && sed 's/"model_dim": [0-9]*/"model_dim": 64/' "$demo/config.json" >"$work/mismatch/config.json"
check "config vs weights" 1 "model.pt: tensor '.*' is \\[.*\\] but .*config.json needs" -- "$bin" eval --model "$work/mismatch" --data "$data/magic_sample.jsonl"
one_line "config vs weights"
check "answer /dev/zero" 1 "/dev/zero \\(--prompt\\): [0-9]+ bytes is more than the limit" -- "$bin" answer --model "$work/run" --prompt /dev/zero --prompt-limit 1M
printf '{"base": "tiny", "train": {"curriculum": [{"from_step": 0, "min_chars": 150, "max_chars": 300, "hops": [1], "hash_lens": [0]}]}}' >"$work/len0.json"
check "curriculum hash_lens 0" 1 "len0.json \\(train\\) curriculum\\[0\\]: field 'hash_lens': must be >= 1" -- "$bin" train --config "$work/len0.json" --out "$work/run_len0"

# Silently accepted inputs are now errors.
cp -r "$work/run" "$work/flipped"
size=$(stat -c %s "$work/flipped/model.pt")
printf '\377\377\377\377\377\377\377\377' | dd of="$work/flipped/model.pt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
check "flipped bytes in model.pt" 1 "model.pt: (checksum mismatch|cannot load)" -- "$bin" eval --model "$work/flipped" --data "$work/tiny.jsonl"
printf '{"prompt": "Once upon a time", "completion": "COMPLETION:\\nHops=1\\n\\nCoT=False\\n\\nabc = '"'"'def'"'"'\\n"}\n' >"$work/story.jsonl"
check "eval non-HashHop prompt" 1 "story.jsonl:1: field 'prompt': not a HashHop prompt" -- "$bin" eval --model "$work/run" --data "$work/story.jsonl"
printf '{"prompt": "abc = '"'"'def'"'"'", "completion": "COMPLETION:\\nHops=2147483647\\n\\nCoT=False\\n\\nabc = '"'"'def'"'"'\\n"}\n' >"$work/far.jsonl"
check "eval hops beyond the model" 1 "far.jsonl:1: field 'completion': .*(max_hops|positive integer)" -- "$bin" eval --model "$work/run" --data "$work/far.jsonl"
printf 'abc = def\ndef = '"'"'ghi'"'"'\n' >"$work/bare.txt"
check "answer hops 0" 1 "--hops: must be >= 1" -- "$bin" answer --model "$work/run" --prompt "$work/bare.txt" --query abc --hops 0
check "answer hops -3" 1 "--hops: must be >= 1" -- "$bin" answer --model "$work/run" --prompt "$work/bare.txt" --query abc --hops -3
check "answer hops beyond max_hops" 1 "--hops: 9 is more than this model's max_hops" -- "$bin" answer --model "$work/run" --prompt "$work/bare.txt" --query abc --hops 9
check "answer hash longer than max_run" 1 "--hash_len: query 'abcdefghi' has 9 letters, more than this model's max_run 8" -- "$bin" answer --model "$work/run" --prompt "$work/bare.txt" --query abcdefghi
# The byte-level family answers through eval too, with no max_run cap (a 3-step model: the pipeline, not accuracy).
check "byte model trains" 0 "steps 0..3 of 3" -- "$bin" train --config bytes-tiny --steps 3 --out "$work/bytes_run"
check "eval with a byte model" 0 "all \\(" -- "$bin" eval --model "$work/bytes_run" --data "$work/tiny.jsonl"
# Learned signatures on that model's own global queries and keys: a table row per global block, and --json.
check "signature-recall" 0 "\\| 1 \\| G \\| [0-9]+ \\| [01]\\.[0-9]{3} \\| [01]\\.[0-9]{3} \\|" -- "$bin" signature-recall --model "$work/bytes_run" \
  --chars 300 --hash-len 4 --train-texts 2 --test-texts 1 --budget 16 --steps 20 --device cpu
# --json: the JSON alone on stdout (the table goes to stderr).
check "signature-recall --json" 0 '"recall_learned": [01]\.' -- bash -c "'$bin' signature-recall --model '$work/bytes_run' \
  --chars 300 --hash-len 4 --train-texts 2 --test-texts 1 --budget 16 --steps 20 --device cpu --json 2>/dev/null"
# --row-offset: one query row per answer, on the completion line's " = " (where a trained model reads its line).
check "signature-recall --row-offset" 0 '"recall_learned": [01]\.[0-9]+,.*"row_offset": 2' -- bash -c "'$bin' signature-recall \
  --model '$work/bytes_run' --chars 300 --hash-len 4 --train-texts 2 --test-texts 1 --budget 16 --steps 20 --device cpu --row-offset 2 \
  --json 2>/dev/null | tr -d '\n'"
# Where a hop block's hops look on 2-hop chains: a model with an H block (3 steps), and one without.
printf '{"family": "bytes", "base": "bytes-tiny", "model": {"layers": "GH", "hops": 2}}\n' >"$work/bytes_hop.json"
check "byte hop model trains" 0 "steps 0..3 of 3" -- "$bin" train --config "$work/bytes_hop.json" --steps 3 --out "$work/bytes_hop"
check "hop-probe" 0 "\| 1 \| 2 \| [0-9]+ \| [01]\.[0-9]{3} \|" -- "$bin" hop-probe --model "$work/bytes_hop" --chars 300 --hash-len 4 --texts 1 --device cpu
check "hop-probe --json" 0 '"elsewhere": [0-9]' -- bash -c "'$bin' hop-probe --model '$work/bytes_hop' --chars 300 --hash-len 4 --texts 1 --device cpu --json 2>/dev/null"
check "hop-probe without an H block" 1 "no hop block" -- "$bin" hop-probe --model "$work/bytes_run" --chars 300 --device cpu
check "hop-probe 1 hop" 2 "--hops: Value 1 not in range 2 to 64" -- "$bin" hop-probe --model "$work/bytes_hop" --hops 1 --device cpu
# How the global blocks score a 1-hop query's own line against the rest, at two prompt lengths: a row per (size, block).
check "margin-probe" 0 "\| 600 \| 1 \| [0-9]+ \| [01]\.[0-9]{3} \| [01]\.[0-9]{3} \|" -- "$bin" margin-probe --model "$work/bytes_run" \
  --chars 300,600 --hash-len 4 --texts 1 --device cpu
check "margin-probe --json" 0 '"median_line_weight": [0-9]' -- bash -c "'$bin' margin-probe --model '$work/bytes_run' --chars 300 --hash-len 4 --texts 1 --device cpu --json 2>/dev/null"
check "margin-probe at the query hash's last letter" 0 "read at the row 4 bytes before" -- "$bin" margin-probe --model "$work/bytes_run" \
  --chars 300 --hash-len 4 --texts 1 --device cpu --row-offset 4
# Its engine (chunked prefill; with a hard gate only the keys above it) answers as the dense path. The copy
# sets gate_threshold above every gate of a 3-step model (σ(4) ≈ 0.98), so the hard gate drops every key.
cp -r "$work/bytes_run" "$work/bytes_hard"
sed -i 's/"gate_threshold": 0.0/"gate_threshold": 0.999/' "$work/bytes_hard/config.json"
for model in bytes_run bytes_hard; do
  check "byte dense path $model" 0 "all \\(" -- "$bin" eval --model "$work/$model" --data "$work/tiny.jsonl" --engine off --predictions "$work/$model.dense.jsonl"
  check "byte engine $model" 0 "all \\(" -- "$bin" eval --model "$work/$model" --data "$work/tiny.jsonl" --engine on --chunk 7 --predictions "$work/$model.engine.jsonl"
  if cmp -s "$work/$model.dense.jsonl" "$work/$model.engine.jsonl"; then passed=$((passed + 1)); else echo "FAIL byte engine $model: answers differ from the dense path"; failed=$((failed + 1)); fi
  # Context parallel (issue 14): 3 ranks (Gloo) hold the shards' keys and write the same predictions.
  check "byte engine $model --nproc 3" 0 "all \\(" -- "$bin" eval --model "$work/$model" --data "$work/tiny.jsonl" --device cpu --nproc 3 --chunk 7 --predictions "$work/$model.cp.jsonl"
  if cmp -s "$work/$model.dense.jsonl" "$work/$model.cp.jsonl"; then passed=$((passed + 1)); else echo "FAIL byte engine $model --nproc 3: answers differ from the dense path"; failed=$((failed + 1)); fi
  # Global keys beyond 4 KB of device memory go to host memory: the same predictions.
  check "byte engine $model --device-bytes 4K" 0 "all \\(" -- "$bin" eval --model "$work/$model" --data "$work/tiny.jsonl" --engine on --chunk 7 --device-bytes 4K --predictions "$work/$model.spill.jsonl"
  if cmp -s "$work/$model.dense.jsonl" "$work/$model.spill.jsonl"; then passed=$((passed + 1)); else echo "FAIL byte engine $model --device-bytes 4K: answers differ from the dense path"; failed=$((failed + 1)); fi
done
check "byte engine bad --device-bytes" 1 "--device-bytes: expected a size" -- "$bin" eval --model "$work/bytes_run" --data "$work/tiny.jsonl" --engine on --device-bytes lots
# answer takes the byte family too: its dense path, and the context-parallel engine on 3 ranks, print one completion.
"$bin" gen --chars 2K --hops 2 --cot --queries 3 --hash-len 4 --seed 3 --format text --out "$work/byte_one.txt"
check "answer with a byte model" 0 "^COMPLETION:" -- "$bin" answer --model "$work/bytes_run" --prompt "$work/byte_one.txt" --engine off
cp "$work/out" "$work/byte_one_dense.txt"
check "answer --nproc 3 with a byte model" 0 "^COMPLETION:" -- "$bin" answer --model "$work/bytes_run" --prompt "$work/byte_one.txt" --device cpu --nproc 3
cmp -s "$work/byte_one_dense.txt" "$work/out" && passed=$((passed + 1)) || { echo "FAIL answer --nproc 3 with a byte model: completion differs from the dense path"; failed=$((failed + 1)); }
check "engine-bench with a byte model" 1 "a byte-level model \\(\"family\": \"bytes\"\\); this command runs the lexer family only" -- "$bin" engine-bench --model "$work/bytes_run" --sizes 4K --device cpu
check "answer byte model hops beyond its reach" 1 "--hops: 99 is more than this model's max_hops" -- "$bin" answer --model "$work/bytes_run" --prompt "$work/bare.txt" --query abc --hops 99
check "byte engine keeps no key above the hard gate" 0 "kept per gated block: 0.0%" -- "$bin" eval --model "$work/bytes_hard" --data "$work/tiny.jsonl" --engine on
size=$(stat -c %s "$work/bytes_run/model.pt")
printf '\377\377\377\377\377\377\377\377' | dd of="$work/bytes_run/model.pt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
check "flipped bytes in a byte model" 1 "model.pt: (checksum mismatch|cannot load)" -- "$bin" eval --model "$work/bytes_run" --data "$work/tiny.jsonl"
check "answer query with quotes" 1 "--query: 'a b' is not a hash" -- "$bin" answer --model "$work/run" --prompt "$work/bare.txt" --query "a b"
check "directory as --data" 1 "is a directory" -- "$bin" solve --data "$work" --out "$work/dir_preds.jsonl"
cp "$work/ok.jsonl" "$work/same.jsonl"
check "--out equal to --data" 1 "--out .*same.jsonl: is the same file as --data" -- "$bin" solve --data "$work/same.jsonl" --out "$work/same.jsonl"
cmp -s "$work/ok.jsonl" "$work/same.jsonl" && passed=$((passed + 1)) || { echo "FAIL --out equal to --data: input changed"; failed=$((failed + 1)); }
check "train stop-after -5" 2 "--stop-after: must be >= 0, got -5" -- "$bin" train --config tiny --stop-after -5 --out "$work/run_neg"
check "train steps 0" 2 "--steps: must be >= 1, got 0" -- "$bin" train --config tiny --steps 0 --out "$work/run_neg"
gone "train stop-after -5 leaves no run" "$work/run_neg"
printf '{"model": {"max_hops": 2}, "train": {"curriculum": [{"from_step": 0, "min_chars": 200, "max_chars": 300, "hops": [3], "hash_lens": [4]}]}}' >"$work/far_hops.json"
check "curriculum hops beyond max_hops" 1 "field 'hops': 3 is more than the model's max_hops 2" -- "$bin" train --config "$work/far_hops.json" --out "$work/run_far"
cp -r "$work/run2" "$work/garbage_run" && echo 'not json at all' >>"$work/garbage_run/metrics.jsonl"
check "garbage metrics on resume" 1 "metrics.jsonl:[0-9]+: not valid JSON" -- "$bin" train --config tiny --stop-after 10 --out "$work/garbage_run"
grep -q 'not json at all' "$work/garbage_run/metrics.jsonl" && passed=$((passed + 1)) || { echo "FAIL garbage metrics: file rewritten"; failed=$((failed + 1)); }
if [ -w /dev/full ]; then
  check "score to a full device" 1 "<stdout>: write failed" -- sh -c "\"$bin\" score --data \"$data/magic_sample.jsonl\" --predictions \"$data/predictions_magic_sample.jsonl\" >/dev/full"
  check "answer to a full device" 1 "<stdout>: write failed" -- sh -c "\"$bin\" answer --model \"$work/run\" --prompt \"$work/one.txt\" >/dev/full"
fi

# Threads: a checkpoint written with 2 OpenMP threads resumes with 2, whatever this process was given.
OMP_NUM_THREADS=2 "$bin" train --config tiny --stop-after 5 --steps 10 --out "$work/run_threads" >/dev/null 2>&1
check "resume adopts the checkpoint's thread count" 0 "resuming with 2 OpenMP threads" -- env OMP_NUM_THREADS=1 "$bin" train --config tiny --steps 10 --out "$work/run_threads"

# Sizes named by the option the user typed, checked before any work.
check "demo chars too small" 1 "--chars: 8 queries but only 1 chains fit" -- "$bin" demo --model "$work/no-model" --chars 1
check "demo chars too large" 1 "--chars: 1000000000 characters is more than the limit" -- "$bin" demo --model "$work/no-model" --chars 1000000000
check "engine-bench size 0" 1 "--sizes: sizes must be >= 1" -- "$bin" engine-bench --model "$demo" --sizes 0 --hops 1 --device cpu
check "eval chunk 0" 2 "--chunk: must be >= 1, got 0" -- "$bin" eval --model "$work/run" --data "$work/tiny.jsonl" --chunk 0
