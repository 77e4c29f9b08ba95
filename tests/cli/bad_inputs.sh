#!/usr/bin/env bash
# The bad-input corpus (issue 15): runs every case of tests/cli/bad_inputs.tsv on the real CLI, checks clean one-line errors.
# Run: tests/cli/bad_inputs.sh build/hashhop [ID_REGEX]   (ctest: cli_bad_inputs; BAD_INPUTS_JOBS=N cases at a time, default 2)
#
# Each case runs in a fresh empty directory: its `setup` makes the inputs, the directory is listed, the
# `command` runs under a timeout, and the directory is listed again. A case with expect `fail` passes when
# the command exits 1 or 2 (never 0, never a signal or a sanitizer report), prints exactly one line on
# stderr (CLI11's usage errors are one line too: "hashhop CMD: error: ... (see --help)"), that line matches
# the `names` regex (the file, line or field the case is about; `-` when it is about none) and no file was
# added. `ok` cases must exit 0; `sig:NAME` cases must die of that signal, print at most one line and
# leave nothing. Commands see $H (the binary), $D (tests/data), $M (models/demo), $F (shared fixtures: a
# tiny model, a byte model, data and predictions, made once) and the helpers flip and sig_after.
set -u
bin=$(realpath "${1:?usage: bad_inputs.sh path/to/hashhop [ID_REGEX]}")
filter=${2:-.}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tsv=$here/bad_inputs.tsv
jobs=${BAD_INPUTS_JOBS:-2}
timeout_s=${BAD_INPUTS_TIMEOUT:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/bad_inputs.XXXXXX")
if [ -n "${BAD_INPUTS_KEEP:-}" ]; then echo "bad_inputs: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
# One OpenMP thread, waiting passively: the LibTorch subcommands then start once instead of re-executing
# themselves to set the wait policy (process_setup.h), which halves their start-up on a loaded machine.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# No GPU, on any machine: several cases are about asking for CUDA where there is none (train --device cuda,
# attn-bench), and on a GPU machine they would be valid runs of minutes instead of errors.
export CUDA_VISIBLE_DEVICES=
export H=$bin D=$repo/tests/data M=$repo/models/demo F=$work/fixtures

# flip FILE: overwrite 8 bytes in the middle of FILE with 0xff (a corrupted disk block).
flip() { local size; size=$(stat -c %s "$1"); printf '\377\377\377\377\377\377\377\377' | dd of="$1" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null; }
# sig_after SIG CMD...: starts CMD, waits until it has a *.partial.* file or a run directory here (at most
# 10 s), sends SIG and returns CMD's status. Job control, so a background CMD does not start with SIGINT ignored.
sig_after() {
  local sig=$1; shift
  (
    set -m
    "$@" 2>&3 &
    pid=$!
    for _ in $(seq 500); do
      compgen -G '*.partial.*' >/dev/null || compgen -G 'run/*.partial.*' >/dev/null || [ -s run/metrics.jsonl ] && break
      sleep 0.02
    done
    kill -s "$sig" "$pid"
    wait "$pid"
  ) 3>&2 2>/dev/null  # the shell's own "Terminated" job notice is not the command's stderr
}
export -f flip sig_after

# Fixtures, shared read-only by the cases (a checksum of the folder is compared at the end).
mkdir -p "$F"
(
  cd "$F" || exit 1
  "$H" gen --chars 200 --hash-len 4 --hops 1 --queries 3 --samples 2 --seed 1 --out ok.jsonl &&
  "$H" solve --data ok.jsonl --out preds.jsonl &&
  "$H" gen --chars 200 --hash-len 4 --hops 1 --queries 2 --format text --out one.txt &&
  "$H" train --config tiny --steps 2 --out model >/dev/null 2>&1 &&
  "$H" train --config bytes-tiny --steps 1 --out bmodel >/dev/null 2>&1 &&
  "$H" sweep --solver --sizes 1K --hops 1 --cot off --samples 1 --out sweep.json 2>/dev/null >/dev/null
) || { echo "bad_inputs: making the fixtures failed"; exit 1; }
fixtures_sum() { (cd "$F" && find . -type f -print0 | sort -z | xargs -0 sha1sum | sha1sum); }
fixtures_before=$(fixtures_sum)

signal_number() { kill -l "$1"; }

# run_case ID CLASS SUB EXPECT NAMES SETUP COMMAND: writes "ID CLASS SUB VERDICT..." to $work/results/ID.
run_case() {
  local id=$1 class=$2 sub=$3 expect=$4 names=$5 setup=$6 cmd=$7
  local dir=$work/cases/$id
  mkdir -p "$dir/cwd"
  if [ "$setup" != "-" ] && ! (cd "$dir/cwd" && bash -c "$setup") >"$dir/setup.log" 2>&1; then
    echo "$id $class $sub setup" >"$work/results/$id"
    return
  fi
  (cd "$dir/cwd" && find . -mindepth 1 | sort) >"$dir/before"
  local start=${EPOCHREALTIME/./}
  (cd "$dir/cwd" && exec timeout -k 5 "$timeout_s" bash -c "set -o pipefail; $cmd") >"$dir/out" 2>"$dir/err"
  local rc=$? took=$(((${EPOCHREALTIME/./} - start) / 1000))
  (cd "$dir/cwd" && find . -mindepth 1 | sort) >"$dir/after"
  local lines verdicts=()
  lines=$(wc -l <"$dir/err")
  [ -s "$dir/err" ] && [ "$(tail -c 1 "$dir/err" | od -An -c | tr -d ' ')" != '\n' ] && lines=$((lines + 1))
  local crash=0
  grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|terminate called|Segmentation fault|core dumped|Aborted|stack smashing|c10::Error|Exception raised from' "$dir/err" && crash=1
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && [ "$expect" != sig:KILL ]; then
    verdicts+=(hang)
  elif [ "$crash" -eq 1 ]; then
    verdicts+=(crash)
  else
    case $expect in
      fail)
        if [ "$rc" -ge 128 ]; then verdicts+=(crash)
        elif [ "$rc" -eq 0 ]; then verdicts+=(accepted)
        elif [ "$rc" -gt 2 ]; then verdicts+=(status)
        fi
        [ "$lines" -ne 1 ] && verdicts+=(lines)
        if [ "$names" != "-" ] && ! grep -qE -- "$names" "$dir/err"; then verdicts+=(unnamed); fi
        if ! cmp -s "$dir/before" "$dir/after"; then verdicts+=(files); fi
        ;;
      ok)
        [ "$rc" -ne 0 ] && verdicts+=(rejected)
        ;;
      sig:*)
        local want=$((128 + $(signal_number "${expect#sig:}")))
        if [ "$rc" -ne "$want" ]; then
          if [ "$rc" -ge 128 ]; then verdicts+=(crash); else verdicts+=(status); fi
        fi
        [ "$lines" -gt 1 ] && verdicts+=(lines)
        if ! cmp -s "$dir/before" "$dir/after"; then verdicts+=(files); fi
        ;;
    esac
  fi
  ((${#verdicts[@]})) || verdicts=(pass)
  echo "$id $class $sub ${verdicts[*]} rc=$rc lines=$lines ${took}ms" >"$work/results/$id"
}

mkdir -p "$work/results"
ids=()
started=$SECONDS
while IFS=$'\t' read -r id class sub expect names setup cmd; do
  [ "$id" = id ] || [[ $id == \#* ]] && continue
  [[ $id =~ $filter ]] || continue
  ids+=("$id")
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  run_case "$id" "$class" "$sub" "$expect" "$names" "$setup" "$cmd" &
done <"$tsv"
wait

# Report: every failing case with its stderr, then the table by class and the count by subcommand.
declare -A cases crash hang files lines unnamed other bysub
total=0; failed=0
for id in "${ids[@]}"; do
  read -r _ class sub rest <"$work/results/$id"
  total=$((total + 1))
  cases[$class]=$((${cases[$class]:-0} + 1)); bysub[$sub]=$((${bysub[$sub]:-0} + 1))
  for v in crash hang files lines unnamed; do
    if [[ " $rest " == *" $v "* ]]; then declare -n counter=$v; counter[$class]=$((${counter[$class]:-0} + 1)); unset -n counter; fi
  done
  if [[ " $rest " =~ \ (accepted|rejected|status|setup)\  ]]; then other[$class]=$((${other[$class]:-0} + 1)); fi
  if [[ $rest != pass* ]]; then
    failed=$((failed + 1))
    line=$(grep -P "^$id\t" "$tsv" | cut -f7)
    echo "FAIL $id ($class, $sub): $rest"
    echo "     command: $line"
    echo "     stderr:  $(head -c 400 "$work/cases/$id/err" | tr '\n' '|')"
    if ! cmp -s "$work/cases/$id/before" "$work/cases/$id/after"; then
      echo "     new files: $(comm -13 "$work/cases/$id/before" "$work/cases/$id/after" | tr '\n' ' ')"
    fi
  fi
done
echo
echo "| class | cases | crashes | hangs | files left | multi-line errors | unnamed fields | wrong exit |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
t_c=0; t_h=0; t_f=0; t_l=0; t_u=0; t_o=0
for class in $(printf '%s\n' "${!cases[@]}" | sort); do
  echo "| $class | ${cases[$class]} | ${crash[$class]:-0} | ${hang[$class]:-0} | ${files[$class]:-0} | ${lines[$class]:-0} | ${unnamed[$class]:-0} | ${other[$class]:-0} |"
  t_c=$((t_c + ${crash[$class]:-0})); t_h=$((t_h + ${hang[$class]:-0})); t_f=$((t_f + ${files[$class]:-0}))
  t_l=$((t_l + ${lines[$class]:-0})); t_u=$((t_u + ${unnamed[$class]:-0})); t_o=$((t_o + ${other[$class]:-0}))
done
echo "| all | $total | $t_c | $t_h | $t_f | $t_l | $t_u | $t_o |"
echo
echo "cases by subcommand: $(for s in $(printf '%s\n' "${!bysub[@]}" | sort); do printf '%s %s, ' "$s" "${bysub[$s]}"; done | sed 's/, $//')"
if [ "$(fixtures_sum)" != "$fixtures_before" ]; then echo "FAIL: a case changed the shared fixtures"; failed=$((failed + 1)); fi
echo "$((total - failed)) of $total cases passed in $((SECONDS - started)) s ($jobs at a time)"
[ "$failed" -eq 0 ]
