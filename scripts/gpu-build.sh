#!/usr/bin/env bash
# Builds the hashhop CLI on the GPU machine with CMake against that machine's CUDA torch, using the
# headers and libcrypto carried in .gpu-deps (scripts/gpu-deps.sh makes it here). Output: build-gpu-cli/hashhop
# Run there: scripts/gpu-build.sh   (called by scripts/gpu-train.sh)
# Known problem: the binary it builds aborts with "free(): invalid pointer" inside LibTorch on that
# machine (docs/learning-log.md, section 4); the model has been trained on the CPU until that is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
deps="$PWD/.gpu-deps/usr"
torch_dir=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
cmake -S . -B build-gpu-cli -G Ninja -DCMAKE_BUILD_TYPE=Release -DHASHHOP_TESTS=OFF -DHASHHOP_BENCHMARKS=OFF \
  -DHASHHOP_CUDA=ON -DHASHHOP_TORCH_DIR="$torch_dir" -DHASHHOP_TORCH_CUDA=ON \
  -DCMAKE_PREFIX_PATH="$deps" -DOPENSSL_ROOT_DIR="$deps" -DOPENSSL_USE_STATIC_LIBS=TRUE >/dev/null
cmake --build build-gpu-cli --target hashhop
