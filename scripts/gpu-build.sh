#!/usr/bin/env bash
# Builds the hashhop CLI on the GPU machine against that machine's CUDA torch with plain compiler calls,
# using the headers and libcrypto carried in .gpu-deps (scripts/gpu-deps.sh makes it here).
# Output: build-gpu-cli/hashhop. Run there: scripts/gpu-build.sh   (called by scripts/gpu-train.sh)
# Why not the CMake project: built through it (with USE_CUDA=1 and the CUDA link options of
# cmake/torch.cmake) the binary aborts there with "free(): invalid pointer" inside LibTorch; these
# plain flags give a binary that runs (docs/learning-log.md, section 4).
# Objects are rebuilt only when older than their source: meant for a fresh machine, not for header edits.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_dir=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
# HASHHOP_WITH_CUDA_KERNELS: attn-check --device cuda; HASHHOP_WITH_TORCH_CUDA: attn-bench.
flags="-O2 -std=c++20 -D_GLIBCXX_USE_CXX11_ABI=1 -DCLI11_HAS_FILESYSTEM=0 -DUSE_CUDA=1 -DHASHHOP_WITH_CUDA_KERNELS=1 \
  -DHASHHOP_WITH_TORCH_CUDA=1 -Iinclude -I.gpu-deps/usr/include -I/usr/local/cuda/include \
  -isystem $torch_dir/include -isystem $torch_dir/include/torch/csrc/api/include"
nvcc_flags="-O3 -std=c++17 -arch=sm_90 -Iinclude"
mkdir -p build-gpu-cli/obj
ls src/bench/*.cpp src/io/*.cpp src/attn/*.cpp src/model/*.cpp src/train/*.cpp src/engine/*.cpp apps/hashhop/*.cpp |
  xargs -P "$(nproc)" -I{} sh -c 'o=build-gpu-cli/obj/$(echo {} | tr / _).o; [ "$o" -nt {} ] || g++ '"$flags"' -c {} -o "$o"'
ls src/attn/cuda/*.cu |
  xargs -P "$(nproc)" -I{} sh -c 'o=build-gpu-cli/obj/$(echo {} | tr / _).o; [ "$o" -nt {} ] || nvcc '"$nvcc_flags"' -c {} -o "$o"'
g++ build-gpu-cli/obj/*.o -o build-gpu-cli/hashhop -L"$torch_dir/lib" -Wl,--no-as-needed -ltorch_cuda -lc10_cuda \
  -ltorch_cpu -lc10 -Wl,--as-needed -Wl,-rpath,"$torch_dir/lib" .gpu-deps/usr/lib/libcrypto.a \
  -L/usr/local/cuda/lib64 -lcudart -ldl -pthread
echo "built build-gpu-cli/hashhop"
