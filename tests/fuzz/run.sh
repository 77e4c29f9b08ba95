#!/usr/bin/env bash
# Runs each libFuzzer harness for SECONDS on a copy of its seed corpus under BUILD_DIR (never in the source tree).
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS [HARNESS...]   (make fuzz / make test call it; build first with HASHHOP_FUZZ=ON)
# Environment: FUZZ_JOBS=N runs N harnesses at a time (default 1); FUZZ_RUNS=N also stops a harness after N
# executions; FUZZ_WORK=DIR keeps corpora and logs there instead of BUILD_DIR/fuzz-work.
set -euo pipefail
build=${1:?build dir}; seconds=${2:?seconds}; shift 2
src=$(cd "$(dirname "$0")" && pwd)
harnesses=("$@"); ((${#harnesses[@]})) || harnesses=(fuzz_magic_format fuzz_jsonl_scorer fuzz_run_config fuzz_checkpoint)
jobs=${FUZZ_JOBS:-1}
root=${FUZZ_WORK:-$build/fuzz-work}
runs=()
[ -n "${FUZZ_RUNS:-}" ] && runs=(-runs="$FUZZ_RUNS")

run_one() {  # run_one HARNESS: fuzz it, then print its summary (or the failure) in one block
  local h=$1 name=${1#fuzz_}
  local work="$root/$name"
  mkdir -p "$work/corpus" "$work/artifacts"
  # libFuzzer adds what it finds to the corpus dir: seeds are copied (kept across runs, never overwritten).
  cp -n "$src/corpus/$name/"* "$work/corpus/"
  local extra=()
  [ -f "$src/$h.options" ] && read -r -a extra <"$src/$h.options"  # per-harness flags (e.g. -max_len)
  local start=$SECONDS rc=0
  "$build/tests/fuzz/$h" -max_total_time="$seconds" "${runs[@]}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    "${extra[@]}" -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log.txt" 2>&1 || rc=$?
  {
    if [ "$rc" -ne 0 ]; then
      echo "fuzz: $h FAILED (exit $rc); input in $work/artifacts/, log $work/log.txt"; tail -40 "$work/log.txt"
    else
      echo "fuzz: $h ran $((SECONDS - start)) s (corpus $work/corpus)"
      grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$work/log.txt" | tail -1 || true
      grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "$work/log.txt" || true
    fi
  } >"$work/summary.txt"
  cat "$work/summary.txt"
  return "$rc"
}

status=0
if [ "$jobs" -le 1 ]; then
  for h in "${harnesses[@]}"; do run_one "$h" || status=1; done
else
  # At most JOBS harnesses at a time; each prints its own block when it ends and leaves its exit status in rc.
  for h in "${harnesses[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
    rm -f "$root/${h#fuzz_}/rc"
    ( rc=0; run_one "$h" || rc=$?; echo "$rc" >"$root/${h#fuzz_}/rc" ) &
  done
  wait
  for h in "${harnesses[@]}"; do [ "$(cat "$root/${h#fuzz_}/rc" 2>/dev/null)" = 0 ] || status=1; done
fi
exit $status
