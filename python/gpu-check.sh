#!/usr/bin/env bash
# Builds and tests the CUDA variant of pyhashhop on the GPU machine (no network there: the build tools come as wheels).
# Here: pip download -d build-py/gpu-wheels scikit-build-core nanobind pytest; there (carry .gpu-deps, build-py/gpu-wheels): bash python/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name --format=csv,noheader
echo "torch $(python3 -c 'import torch; print(torch.__version__)'), $(nvcc --version | tail -1)"
python3 -m pip install -q --no-index --find-links build-py/gpu-wheels scikit-build-core nanobind pytest

# The same pyproject as the CPU build; the defines switch on the kernels and link the machine's own CUDA torch
# (.gpu-deps holds the headers that machine lacks, as in the `gpu` CMake preset). No build isolation: the
# isolated environment would need PyPI, and the build must see the installed torch.
start=$(date +%s)
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" python3 -m pip install -q --no-build-isolation --no-deps . \
  -C build-dir=build-py/gpu -C cmake.define.HASHHOP_CUDA=ON -C cmake.define.HASHHOP_TORCH_CUDA=ON \
  -C cmake.define.HASHHOP_TORCH_DIR=python -C cmake.define.CMAKE_CXX_COMPILER=g++ -C cmake.define.CMAKE_PREFIX_PATH="$PWD/.gpu-deps/usr" \
  -C cmake.define.OPENSSL_ROOT_DIR="$PWD/.gpu-deps/usr" -C cmake.define.OPENSSL_USE_STATIC_LIBS=ON
echo "pip install (CUDA variant): $(( $(date +%s) - start )) s"

# Both libraries must load the system libstdc++ (a static copy inside them crashes on torch's error path).
for so in $(python3 -c "import pyhashhop, pathlib; p = pathlib.Path(pyhashhop.__file__).parent; print(*p.rglob('*.so'))"); do
  echo "$(basename "$so"): $(readelf -d "$so" | grep -c 'NEEDED.*libstdc++') NEEDED libstdc++"
done

# The CPU suite against the CUDA build (the CLI and transformers are absent here: those tests skip), then
# the CUDA op tests on the library the package ships. Both suites run whatever the first gives.
status=0
PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -q -p no:cacheprovider tests/python/test_bench.py \
  tests/python/test_evaluate.py tests/python/test_ops.py tests/python/test_kv_cache.py || status=1
lib=$(python3 -c "import torch, pyhashhop.ops as o; print(o.LIBRARY)")
HASHHOP_OPS_LIB="$lib" PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -q -p no:cacheprovider tests/python/test_ops_cuda.py \
  tests/python/test_kv_cache_cuda.py || status=1
exit $status
