#!/usr/bin/env bash
# Runs each libFuzzer harness for SECONDS on a copy of its seed corpus under BUILD_DIR (never in the source tree).
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS [HARNESS...]   (make fuzz / make test call it; build first with HASHHOP_FUZZ=ON)
set -euo pipefail
build=${1:?build dir}; seconds=${2:?seconds}; shift 2
src=$(cd "$(dirname "$0")" && pwd)
harnesses=("$@"); ((${#harnesses[@]})) || harnesses=(fuzz_magic_format fuzz_jsonl_scorer fuzz_run_config)
status=0
for h in "${harnesses[@]}"; do
  name=${h#fuzz_}
  work="$build/fuzz-work/$name"
  mkdir -p "$work/corpus" "$work/artifacts"
  # libFuzzer adds what it finds to the corpus dir: seeds are copied (kept across runs, never overwritten).
  cp -n "$src/corpus/$name/"* "$work/corpus/"
  echo "fuzz: $h for ${seconds}s (corpus $work/corpus)"
  if ! "$build/tests/fuzz/$h" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log.txt" 2>&1; then
    echo "fuzz: $h FAILED; input in $work/artifacts/, log $work/log.txt"; tail -40 "$work/log.txt"; status=1
  else
    grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$work/log.txt" | tail -1
    grep -E 'stat::number_of_executed_units' "$work/log.txt"
  fi
done
exit $status
