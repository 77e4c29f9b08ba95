#!/usr/bin/env bash
# GPU check of torch.ops.hashhop.* on CUDA tensors: the pytest suite (CUDA op vs CPU reference, gradients, errors, no copies/syncs), then the decode benchmark against SDPA.
# Run on the GPU machine after the CMake build and python/gpu-check.sh (which installs pyhashhop): scripts/gpu-ops-check.sh [path/to/libhashhop_ops.so] [bench sizes...]  (default build-gpu/libhashhop_ops.so; env HASHHOP_OPS_LIB also works)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
lib=${1:-${HASHHOP_OPS_LIB:-build-gpu/libhashhop_ops.so}}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(65536 262144 1048576)
[ -f "$lib" ] || { echo "gpu-ops-check: $lib not found (build with cmake --preset gpu, or pass the path)" >&2; exit 1; }
export HASHHOP_OPS_LIB="$lib"

echo "== tests/python/test_ops_cuda.py against $lib"
if python3 -c 'import pytest' 2>/dev/null; then
  python3 -m pytest -q tests/python/test_ops_cuda.py tests/python/test_kv_cache_cuda.py
else
  python3 tests/python/test_ops_cuda.py && python3 tests/python/test_kv_cache_cuda.py  # the files run their own tests without pytest
fi

echo "== decode benchmark (sizes ${sizes[*]}, batch 1 and 8)"
out=${HASHHOP_OPS_BENCH_OUT:-ops-bench-$(date +%Y%m%d-%H%M%S).json}
PYHASHHOP_OPS_LIB="$lib" python3 -m pyhashhop.ops_bench --sizes "${sizes[@]}" --batch 1 8 --cache --profile --out "$out"
