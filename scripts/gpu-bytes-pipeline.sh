#!/usr/bin/env bash
# The byte model's training on one GPU, one phase per device call (runs/ stays on the warm machine):
#   scratch ARM...  build, train each ARM config from scratch side by side (ARM_SECONDS, 400; same seed, so
#                   the same batches), evaluate each on SETS with its soft gate and its gate made hard
#   base            build, train bytes-h100 from scratch into runs/base (BASE_SECONDS: what is left of 570 s)
#   arms ARM...     train configs/bytes-prope-64.json from runs/base (PROPE_SECONDS, 150), then each ARM from
#                   runs/prope side by side (ARM_SECONDS, 420)
#   eval ARM...     each ARM on SETS, soft and hard gate; with ENGINE_ARM, the engine at ENGINE_CHARS (1M)
#                   with keys kept and spilled (ENGINE_MODES; time, peak GPU memory, accuracy)
# GPU_TEST=FILTER (any phase that builds): those test_engine tests run on the GPU after the build.
#   fork ARM...     each ARM trained from INIT=DIR (a model carried in; or ARM given as CONFIG=DIR, its own)
#                   side by side for ARM_SECONDS, or resumed from its own checkpoint on a warm machine; eval on
#                   SETS until DEADLINE (520 s into the call); models back in bfloat16 (compact), one NAME.tar
#                   each (config.json, model.pt). With ENGINE_MODEL="DIR...", first the engine at ENGINE_CHARS
#                   on each; ARM_SECONDS=0 trains nothing (evals of the models carried in).
#   chain STAGE...  STAGE = config:seconds[:first-byte]: each stage starts from the one before (train --init;
#                   the first from scratch, or from INIT=DIR, a model carried in), or resumes its own
#                   checkpoint on a warm machine; a stage whose last logged first-byte accuracy is below its
#                   bar ends the chain, and FALLBACK (one STAGE, from scratch) runs instead. Then eval of
#                   the last stage on SETS, and its model back in pieces.
# The binary: chain and fork send build-gpu/hashhop and the hashhop-torch it runs (both stripped, one tar) back in
# pieces (hashhop.bin.NN) with hashhop.sources, a hash of the sources they were built from. Carried in .gpu-bin/
# (`mkdir -p .gpu-bin; cat hashhop.bin.* | tar x -C .gpu-bin; cp hashhop.sources .gpu-bin/`), they replace the
# ~2-minute build on a fresh machine while the sources hash the same; otherwise (or with REBUILD=1) it builds.
# TWINS: "name:args;..." runs scripts/init-reference.py (the PyTorch twin) with each args beside scratch's
# arms, on 1-hop data like bytes-scratch-dense's (700/900/1,100 chars, 8-letter hashes, 8 queries); its
# metrics come back as pipeline/twin-NAME-metrics.jsonl.
# SEED=N (fork, chain): every ARM's data seed (train --seed); without it a fork from a model of the config's seed
# repeats that model's batches from step 0 (runs 18-20 did: learning-log 22).
# PREFILL_WINDOW=N: the hard-gate evals read only the last N kept keys while the prompt streams in (eval
# --prefill-window, not exact), in chunks of ENGINE_CHUNK bytes (4096).
# SETS: "chars hops cot samples;..." (seed 900000, 8-letter hashes, 8 queries a prompt; GATES "soft hard" or one); in every phase the
# evals stop at DEADLINE (520 s after the phase began), so what comes after them still runs. The PACK runs'
# models (default: every ARM of scratch, ENGINE_ARM of eval) come back in <16 MB pieces (cat model.pt.* >
# model.pt); metrics, logs and the eval table in logs.tar.gz. Run there: scripts/gpu-bytes-pipeline.sh PHASE [ARM configs...]   (carry .gpu-deps); files in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
phase="${1:?phase: scratch, base, arms, eval, chain or fork}"; shift
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out" runs pipeline/data
h=build-gpu/hashhop
sources_hash() { find src include apps CMakeLists.txt CMakePresets.json -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1; }
if [ -x .gpu-bin/hashhop ] && [ -x .gpu-bin/hashhop-torch ] && [ ! -x "$h" ] && [ -z "${REBUILD:-}" ]; then
  if [ "$(cat .gpu-bin/hashhop.sources 2>/dev/null)" = "$(sources_hash)" ] && [ -f .gpu-bin/libhashhop_ops.so ]; then
    h=.gpu-bin/hashhop; export LD_LIBRARY_PATH="$PWD/.gpu-bin:$LD_LIBRARY_PATH"
  else echo "the carried .gpu-bin/hashhop was built from other sources (or lacks libhashhop_ops.so): building" >&2; fi
fi
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$out/pipeline.txt"; }
name_of() { basename "${1%%=*}" .json; }  # an ARM is CONFIG or CONFIG=INITDIR (fork)

build() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$out/pipeline.txt"
  if [ ! -x "$h" ]; then
    cmake --preset gpu > pipeline/configure.log 2>&1 || { tail -30 pipeline/configure.log; exit 1; }
    cmake --build --preset gpu --target hashhop ${GPU_TEST:+test_engine} -- -j "$(nproc)" > pipeline/build.log 2>&1 ||
      { grep -B2 -A12 "error" pipeline/build.log | head -80; exit 1; }
  elif [ -n "${GPU_TEST:-}" ] && [ ! -x build-gpu/tests/test_engine ]; then  # a carried or warm binary: the test still needs building
    { cmake --preset gpu && cmake --build --preset gpu --target test_engine -- -j "$(nproc)"; } > pipeline/build.log 2>&1 ||
      { grep -B2 -A12 "error" pipeline/build.log | head -80; exit 1; }
  fi
  log "built ($h: $($h --version))"
  if [ -n "${GPU_TEST:-}" ]; then  # GPU_TEST=FILTER: those test_engine tests on this GPU
    build-gpu/tests/test_engine --gtest_filter="$GPU_TEST" > pipeline/gpu-test.log 2>&1 && log "GPU tests $GPU_TEST: passed" ||
      { log "GPU tests $GPU_TEST: FAILED"; grep -E "Failure|error|Expected|Which is|chunk" pipeline/gpu-test.log | head -20 | tee -a "$out/pipeline.txt"; }
  fi
}

engine_long() {  # $1: model dir. The engine on one ENGINE_CHARS (1M) prompt, hard gate, for each of ENGINE_MODES
  # ("kept spilled": keys kept on the device, and spilled past BUDGET), each cut at ENGINE_SECONDS (300)
  local model="$1" mode extra sampler t0 t1
  rm -f pipeline/pred-*.jsonl pipeline/long-*.json pipeline/long-*.err  # no stale file from an earlier model or call
  $h gen --chars "${ENGINE_CHARS:-1M}" --hops 1 --hash-len 8 --queries 8 --samples 1 --seed 900001 --out pipeline/data/long.jsonl
  for mode in ${ENGINE_MODES:-kept spilled}; do
    extra=(); [ "$mode" = spilled ] && extra=(--device-bytes "${BUDGET:-64M}")
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "pipeline/mem-$mode.txt" &
    sampler=$!
    t0=$(date +%s%N)
    timeout "${ENGINE_SECONDS:-300}" $h eval --model "$model" --data pipeline/data/long.jsonl --device cuda --engine on --gated-only \
      "${extra[@]}" --json --predictions "pipeline/pred-$mode.jsonl" > "pipeline/long-$mode.json" 2> "pipeline/long-$mode.err" ||
      { log "engine $mode: failed or ran past ENGINE_SECONDS"; tail -3 "pipeline/long-$mode.err"; }
    t1=$(date +%s%N)
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    log "engine $mode, $model, ${ENGINE_CHARS:-1M} chars: $(( (t1 - t0) / 1000000 )) ms, peak GPU memory $(sort -n "pipeline/mem-$mode.txt" | tail -1) MiB; $(grep -m1 'byte engine' "pipeline/long-$mode.err" || true); $(python3 -c 'import json,sys; o=json.load(open(sys.argv[1]))["overall"]; print("exact %.2f%% of %d" % (100*o["exact_rate"], o["queries"]))' "pipeline/long-$mode.json" 2>/dev/null || true)"
  done
  if [ -f pipeline/pred-spilled.jsonl ]; then
    if cmp -s pipeline/pred-kept.jsonl pipeline/pred-spilled.jsonl; then log "engine: kept and spilled predictions identical"
    else log "engine: kept and spilled predictions differ"; fi
  fi
}

last_first_byte() {  # the best first-byte accuracy among a run's last three logged windows
  python3 -c 'import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][-3:]
print(max((r["first_byte"] for r in rows), default=0))' "$1"
}

train_arms() {  # $1: run to start from ("" = scratch), then ARM configs; a second call resumes each
  local from="$1"; shift
  local pids=() n c init start_from status=0
  for c in "$@"; do
    n=$(name_of "$c"); init=(); start_from="$from"
    [[ "$c" == *=* ]] && start_from="${c#*=}" && c="${c%%=*}"
    [ -n "$start_from" ] && [ ! -f "runs/$n/checkpoint.pt" ] && init=(--init "$start_from")
    if [ "${ARM_SECONDS:-400}" = 0 ]; then  # no training: the model as carried in, for evals
      if [ ! -f "runs/$n/model.pt" ]; then
        [ -f "$start_from/model.pt" ] || { log "$n: ARM_SECONDS=0 needs a model to evaluate (CONFIG=DIR or INIT)"; status=1; continue; }
        mkdir -p "runs/$n" && cp "$start_from/config.json" "$start_from/model.pt" "runs/$n/"
      fi
      continue
    fi
    $h train --config "$c" "${init[@]}" ${SEED:+--seed "$SEED"} --out "runs/$n" --device cuda --time-limit "${ARM_SECONDS:-400}" \
      > "pipeline/train-$n.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  [ "${ARM_SECONDS:-400}" = 0 ] && return "$status"
  for c in "$@"; do
    n=$(name_of "$c"); log "$n: $(tail -1 "pipeline/train-$n.log")"; cp "runs/$n/metrics.jsonl" "pipeline/$n-metrics.jsonl"
    # The curve in the call's output too, in case the files do not come back: every 5th logged step.
    python3 -c 'import json, sys
for i, l in enumerate(open(sys.argv[1])):
    j = json.loads(l)
    if i % 5 == 4: print(j["step"] + 1, "loss %.3f first %.3f exact %.3f kept %s" % (j["loss"], j["first_byte"], j["exact"], j["kept_share"]))' \
      "runs/$n/metrics.jsonl" || true
  done
  return "$status"
}

eval_arms() {  # ARM configs: every set, soft gate (dense path) and hard gate (engine, --gated-only)
  local sets s chars hops cot samples flag c n gate gates f args left
  IFS=';' read -ra sets <<< "${SETS:-600 1 0 25;2400 2 1 25;9600 1 0 12;38400 1 0 12}"
  for s in "${sets[@]}"; do
    read -r chars hops cot samples <<< "$s"
    flag=""; [ "$cot" = 1 ] && flag="--cot"
    $h gen --chars "$chars" --hops "$hops" --hash-len 8 $flag --queries 8 --samples "$samples" --seed 900000 \
      --out "pipeline/data/$chars-$hops-$cot.jsonl"
  done
  echo "| model | set (chars, hops, CoT) | gate | queries | exact | seconds |" | tee -a pipeline/evals.md
  echo "|---|---|---|---:|---:|---:|" | tee -a pipeline/evals.md
  for c in "$@"; do
    n=$(name_of "$c")
    for s in "${sets[@]}"; do
      read -r chars hops cot samples <<< "$s"
      gates=(); for gate in ${GATES:-soft hard}; do  # GATES="hard": the engine's path only (it has matched soft since run 15)
        [ "$gate" = hard ] && grep -q '"hash_gate": *false' "runs/$n/config.json" && continue  # ungated: nothing to drop
        gates+=("$gate"); done
      for gate in "${gates[@]}"; do
        args=(--engine off); [ "$gate" = hard ] && args=(--engine on --gated-only)
        [ "$gate" = hard ] && [ "${PREFILL_WINDOW:-0}" != 0 ] && args+=(--prefill-window "$PREFILL_WINDOW" --chunk "${ENGINE_CHUNK:-4096}")
        f="pipeline/eval-$n-$chars-$hops-$cot-$gate"
        # The call's limit is 600 s and a killed call brings nothing back: evals stop at DEADLINE (seconds
        # since the phase began, 520 by default) so that packing the models still happens.
        left=$(( ${DEADLINE:-520} - ($(date +%s) - start) ))
        if [ "$left" -le 5 ]; then log "eval $n $chars/$hops/$cot $gate: skipped (DEADLINE)"; continue; fi
        timeout "$left" $h eval --model "runs/$n" --data "pipeline/data/$chars-$hops-$cot.jsonl" --device cuda "${args[@]}" --json \
          > "$f.json" 2> "$f.err" || { log "eval $n $chars/$hops/$cot $gate failed or ran past DEADLINE"; tail -3 "$f.err"; continue; }
        python3 - "$f.json" "$n" "$chars, $hops, $cot" "$gate" "$(grep -m1 'byte engine' "$f.err" || true)" <<'PY' | tee -a pipeline/evals.md
import json, sys
r = json.load(open(sys.argv[1])); o = r["overall"]
note = f" ({sys.argv[5]})" if sys.argv[5] else ""
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]}{note} | {o['queries']} | {100 * o['exact_rate']:.2f}% | {r['seconds']:.1f} |")
PY
      done
    done
  done
}

pack() {  # run names: weights in pieces (files back are at most 16 MB each), config; COMPACT=1: bfloat16 weights
  local n dir
  for n in "$@"; do
    [ -f "runs/$n/model.pt" ] || { log "pack: runs/$n has no model.pt"; continue; }
    dir="runs/$n"
    if [ -n "${COMPACT:-}" ]; then
      rm -rf "pipeline/compact-$n"
      if $h compact --model "runs/$n" --out "pipeline/compact-$n" > /dev/null; then dir="pipeline/compact-$n"
      else log "pack: compact of runs/$n failed; its float32 weights come back in pieces"; fi
    fi
    if [ -n "${COMPACT:-}" ] && [ "$(stat -c %s "$dir/model.pt")" -lt 15000000 ]; then
      # One file a model (at most 8 files come back): tar xf NAME.tar gives config.json and model.pt.
      tar cf "$out/$n.tar" -C "$dir" config.json model.pt
    else
      mkdir -p "$out/$n"; cp "$dir/config.json" "$out/$n/"
      split -b 15M -d "$dir/model.pt" "$out/$n/model.pt."
    fi
  done
}

send_binary() {  # both binaries stripped, one tar in pieces, with the hash of their sources (see the header)
  [ "$h" = .gpu-bin/hashhop ] && return 0
  # hashhop is the launcher: the commands that need LibTorch run in hashhop-torch beside it, so both travel.
  # hashhop-torch links the ops library (libhashhop_ops.so, found in build-gpu/ by its runpath): it travels too,
  # and a carried binary finds it through LD_LIBRARY_PATH.
  mkdir -p pipeline/bin && strip -o pipeline/bin/hashhop "$h" && strip -o pipeline/bin/hashhop-torch "$h-torch" &&
    strip --strip-unneeded -o pipeline/bin/libhashhop_ops.so "$(dirname "$h")/libhashhop_ops.so" &&
    tar cf - -C pipeline/bin hashhop hashhop-torch libhashhop_ops.so | split -b 15M -d - "$out/hashhop.bin." &&
    sources_hash > "$out/hashhop.sources" ||
    { log "the binaries were not sent (strip, tar or split failed)"; rm -f "$out"/hashhop.bin.* "$out/hashhop.sources"; }
  rm -rf pipeline/bin
}

case "$phase" in
scratch)
  [ $# -ge 1 ] || { echo "scratch: name at least one ARM config" >&2; exit 2; }
  build
  twins=()
  if [ -n "${TWINS:-}" ]; then
    for c in 700 900 1100; do
      $h gen --chars $c --hops 1 --hash-len 8 --queries 8 --samples 60000 --seed $((700000 + c)) --out pipeline/data/twin-$c.jsonl
    done
    paste -d '\n' pipeline/data/twin-700.jsonl pipeline/data/twin-900.jsonl pipeline/data/twin-1100.jsonl > pipeline/data/twin.jsonl
    IFS=';' read -ra specs <<< "$TWINS"
    for s in "${specs[@]}"; do
      n="${s%%:*}"
      # shellcheck disable=SC2086
      python3 scripts/init-reference.py data=pipeline/data/twin.jsonl device=cuda threads=2 seconds="${ARM_SECONDS:-400}" \
        steps=100000 metrics="pipeline/twin-$n-metrics.jsonl" ${s#*:} > "pipeline/twin-$n.log" 2>&1 &
      twins+=($!)
    done
  fi
  train_arms "" "$@" || log "a training failed"
  for p in "${twins[@]}"; do wait "$p" || log "a twin failed"; done
  for s in "${specs[@]:-}"; do [ -n "$s" ] && log "twin ${s%%:*}: $(tail -1 "pipeline/twin-${s%%:*}.log")"; done
  eval_arms "$@"
  names=(); for c in "$@"; do names+=("$(name_of "$c")"); done
  pack ${PACK:-${names[@]}}
  ;;
base)
  build
  seconds="${BASE_SECONDS:-$(( 570 - ($(date +%s) - start) ))}"
  $h train --config bytes-h100 --out runs/base --device cuda --time-limit "$seconds" > pipeline/train-base.log 2>&1
  log "base: $(tail -1 pipeline/train-base.log)"
  cp runs/base/metrics.jsonl pipeline/base-metrics.jsonl
  ;;
arms)
  [ $# -ge 1 ] || { echo "arms: name at least one ARM config" >&2; exit 2; }
  if [ ! -f runs/prope/model.pt ]; then
    $h train --config configs/bytes-prope-64.json --init runs/base --out runs/prope --device cuda \
      --time-limit "${PROPE_SECONDS:-150}" > pipeline/train-prope.log 2>&1
    log "prope: $(tail -1 pipeline/train-prope.log)"
  fi
  cp runs/prope/metrics.jsonl pipeline/prope-metrics.jsonl
  train_arms runs/prope "$@"
  ;;
eval)
  [ $# -ge 1 ] || { echo "eval: name at least one ARM config" >&2; exit 2; }
  eval_arms "$@"
  [ -n "${ENGINE_ARM:-}" ] && engine_long "runs/$ENGINE_ARM"
  pack ${PACK:-${ENGINE_ARM:-}}
  ;;
chain)
  [ $# -ge 1 ] || { echo "chain: name at least one STAGE (config:seconds[:first-byte])" >&2; exit 2; }
  build
  from="${INIT:-}"; last=""
  for st in "$@"; do
    IFS=':' read -r c secs bar <<< "$st"
    n=$(name_of "$c")
    ARM_SECONDS="$secs" train_arms "$from" "$c" || { log "$n: training failed"; break; }
    last="runs/$n"; from="$last"
    fb=$(last_first_byte "runs/$n/metrics.jsonl")
    if [ -n "$bar" ] && python3 -c "import sys; sys.exit(0 if $fb < $bar else 1)"; then
      log "$n: first byte $fb below $bar: the chain stops here"
      if [ -n "${FALLBACK:-}" ]; then
        IFS=':' read -r c secs bar <<< "$FALLBACK"
        if ARM_SECONDS="$secs" train_arms "" "$c"; then last="runs/$(name_of "$c")"; else log "fallback training failed"; fi
      fi
      break
    fi
  done
  [ -n "$last" ] && [ -z "${NO_EVAL:-}" ] && eval_arms "$last.json"  # eval_arms takes config paths and uses their names
  pack ${PACK:-${last#runs/}}
  send_binary
  ;;
fork)
  [ $# -ge 1 ] || { echo "fork: name at least one ARM config (and INIT=DIR)" >&2; exit 2; }
  for c in "$@"; do
    [ -n "${INIT:-}" ] || [[ "$c" == *=* ]] || { echo "fork: INIT=DIR (or ARM=DIR) names the model $c starts from" >&2; exit 2; }
  done
  build
  for m in ${ENGINE_MODEL:-}; do engine_long "$m"; done
  train_arms "${INIT:-}" "$@" || log "a training failed"
  [ -z "${NO_EVAL:-}" ] && eval_arms "$@"
  names=(); for c in "$@"; do names+=("$(name_of "$c")"); done
  COMPACT=1 pack ${PACK:-${names[@]}}
  send_binary
  ;;
*) echo "unknown phase '$phase' (scratch, base, arms, eval, chain, fork)" >&2; exit 2 ;;
esac
tar czf "$out/logs.tar.gz" pipeline/*.log pipeline/*.err pipeline/*.json pipeline/*.jsonl pipeline/*.md 2>/dev/null || true
log "phase $phase done"
