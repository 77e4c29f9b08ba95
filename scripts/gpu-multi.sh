#!/usr/bin/env bash
# Issue 14 on one multi-GPU host (docs/distributed.md): the context-parallel engine (engine-bench --nproc 1..N)
# and data-parallel training over NCCL (train --nproc 1 vs N), each GPU's memory sampled by nvidia-smi.
# Run there: scripts/gpu-multi.sh cp|dp|dp-check [SIZES]   (carry .gpu-deps: scripts/gpu-deps.sh). Files land in $OUT.
# dp reads DP_SECONDS (45), DP_FAMILIES ("bytes letters"), BYTES_PER_GPU (32), LETTERS_PER_GPU (64).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
what="${1:?usage: scripts/gpu-multi.sh cp|dp|dp-check [SIZES]}"
sizes="${2:-100M,300M,1G}"
out="${OUT:-/tmp/hashhop-out}"; mkdir -p "$out"
gpus=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

# The build stays on a warm machine between calls: only the first call pays for it.
start=$(date +%s)
if [ ! -x build-gpu/hashhop-torch ]; then
  cmake --preset gpu > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  grep -i "nccl" "$out/configure.log" || true
  cmake --build --preset gpu --target hashhop hashhop-torch -- -j "$(nproc)" > "$out/build.log" 2>&1 ||
    { grep -B2 -A12 "error" "$out/build.log" | head -80; exit 1; }
fi
echo "build: $(( $(date +%s) - start )) s"

# Each GPU's memory every 200 ms (index, MiB); the peak per GPU is printed after each command.
sample_memory() {  # $1: label
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 200 > "$out/memory-$1.csv" &
  sampler=$!
}
report_memory() {  # $1: label
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=""
  awk -F', *' '{ if ($2 > peak[$1]) peak[$1] = $2 } END { for (g in peak) printf "peak memory GPU %s: %d MiB\n", g, peak[g] }' \
    "$out/memory-$1.csv" | sort | tee -a "$out/memory-peaks.txt" | sed "s/^/$1: /"
}
trap 'if [ -n "${sampler:-}" ]; then kill "$sampler" 2>/dev/null || true; fi' EXIT

ranks_list="1"; n=2; while [ "$n" -le "$gpus" ]; do ranks_list="$ranks_list $n"; n=$((n * 2)); done

if [ "$what" = cp ]; then
  # Context parallel: the same prompts and queries on 1, 2, 4… ranks, one GPU each (rank r on GPU r).
  for ranks in $ranks_list; do
    label="cp-${ranks}rank"
    sample_memory "$label"
    t0=$(date +%s)
    build-gpu/hashhop engine-bench --device cuda --nproc "$ranks" --sizes "$sizes" --baseline 4K --hops 1 \
      --queries 128 --single-queries 16 --dense-max 0 --json "$out/$label.json" | tee "$out/$label.md"
    echo "$label: wall $(( $(date +%s) - t0 )) s"
    report_memory "$label"
  done
elif [ "$what" = dp ]; then
  # Data parallel over NCCL: the per-GPU batch held fixed (N ranks train batch N×B), so samples per second
  # compare like for like; throughput from the metrics' first and last logged steps (start-up excluded).
  for family in ${DP_FAMILIES:-bytes letters}; do
    for ranks in $ranks_list; do
      if [ "$family" = bytes ]; then per_gpu=${BYTES_PER_GPU:-32}; base='"family": "bytes", "base": "bytes-h100"'
        curriculum='[{"from_step": 0, "min_chars": 400, "max_chars": 1200, "hops": [1, 2, 3, 4], "hash_lens": [4, 8, 12, 16], "cot_fraction": 0.75, "queries": 8}]'
      else per_gpu=${LETTERS_PER_GPU:-64}; base='"base": "h100"'
        curriculum='[{"from_step": 0, "min_chars": 2000, "max_chars": 8000, "hops": [1, 2, 3, 4], "hash_lens": [8, 16], "cot_fraction": 0.5, "queries": 16}]'
      fi
      label="dp-$family-${ranks}gpu-b$per_gpu"
      printf '{%s, "name": "%s", "train": {"batch": %d, "log_every": 10, "checkpoint_every": 100000, "curriculum": %s}}\n' \
        "$base" "$label" $((per_gpu * ranks)) "$curriculum" > "/tmp/$label.json"
      rm -rf "/tmp/$label"
      sample_memory "$label"
      # timeout: a rank that never exits (a hung NCCL shutdown) fails this run instead of the whole call.
      timeout $(( ${DP_SECONDS:-45} + 120 )) build-gpu/hashhop train --config "/tmp/$label.json" --out "/tmp/$label" --device cuda --nproc "$ranks" \
        --time-limit "${DP_SECONDS:-45}" > "$out/$label.log" 2>&1 || { tail -20 "$out/$label.log"; exit 1; }
      report_memory "$label"
      cp "/tmp/$label/metrics.jsonl" "$out/$label-metrics.jsonl"
      python3 - "$out/$label-metrics.jsonl" "$label" $((per_gpu * ranks)) <<'EOF' | tee -a "$out/dp-throughput.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
a, b = rows[0], rows[-1]
rate = (b["step"] - a["step"]) / (b["seconds"] - a["seconds"])
print(f"{sys.argv[2]}: batch {sys.argv[3]}, steps {a['step']}..{b['step']} in {b['seconds'] - a['seconds']:.1f} s: "
      f"{rate:.2f} steps/s, {rate * int(sys.argv[3]):.0f} samples/s")
EOF
    done
  done
elif [ "$what" = dp-check ]; then
  # The same 30 steps of the byte model at batch 64 on 1 GPU and on 2 (32 each, NCCL): the losses must agree
  # step by step up to bf16 autocast's rounding (on the CPU, with Gloo, tests/dist checks the weights exactly).
  printf '{"family": "bytes", "base": "bytes-h100", "name": "dp-check", "train": {"batch": 64, "log_every": 1, "curriculum": [{"from_step": 0, "min_chars": 400, "max_chars": 1200, "hops": [1, 2], "hash_lens": [4, 8], "cot_fraction": 0.5, "queries": 8}]}}\n' > /tmp/dp-check.json
  for ranks in 1 2; do
    rm -rf "/tmp/dp-check-$ranks"
    timeout 300 build-gpu/hashhop train --config /tmp/dp-check.json --out "/tmp/dp-check-$ranks" --device cuda --nproc "$ranks" \
      --stop-after 30 > "$out/dp-check-$ranks.log" 2>&1 || { tail -20 "$out/dp-check-$ranks.log"; exit 1; }
    cp "/tmp/dp-check-$ranks/metrics.jsonl" "$out/dp-check-$ranks-metrics.jsonl"
  done
  python3 - "$out/dp-check-1-metrics.jsonl" "$out/dp-check-2-metrics.jsonl" <<'EOF2' | tee "$out/dp-check.txt"
import json, sys
one, two = ([json.loads(l) for l in open(p) if l.strip()] for p in sys.argv[1:])
worst = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(one, two))
print(f"{len(one)} steps; loss step 1: {one[0]['loss']:.5f} vs {two[0]['loss']:.5f}; last: {one[-1]['loss']:.5f} vs {two[-1]['loss']:.5f}; "
      f"largest relative difference {worst:.2e}")
EOF2
else
  echo "scripts/gpu-multi.sh: unknown mode '$what' (cp, dp or dp-check)" >&2; exit 2
fi
echo "total: $(( $(date +%s) - start )) s"
