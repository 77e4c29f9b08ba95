#!/usr/bin/env bash
# Installs what the build needs and is missing: Debian dev packages and LibTorch (from PyPI's torch wheel).
# Run: scripts/setup.sh   (idempotent; `make run` and `make test` call it). LibTorch lands in .deps/torch.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="${HASHHOP_TORCH_VERSION:-2.11.0}"
DEPS_DIR="$PWD/.deps"
APT_PACKAGES=(cmake g++ make libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libssl-dev unzip python3-pip python3-venv python3-matplotlib ninja-build clang-14 libclang-rt-14-dev libcpp-httplib-dev pkg-config)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# LibTorch: the PyPI wheel carries the same C++ library as the GPU machine's torch. We keep only the
# CPU libraries and headers; the CUDA build on the GPU machine uses that machine's own torch instead.
marker="$DEPS_DIR/torch/.complete-$TORCH_VERSION"
if [ ! -f "$marker" ]; then
  echo "setup: fetching torch==$TORCH_VERSION wheel from PyPI (LibTorch, CPU parts)"
  rm -rf "$DEPS_DIR/torch" "$DEPS_DIR/wheel"
  mkdir -p "$DEPS_DIR/wheel"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 -d "$DEPS_DIR/wheel" "torch==$TORCH_VERSION"
  wheel=$(ls "$DEPS_DIR"/wheel/torch-"$TORCH_VERSION"-*.whl)
  staging="$DEPS_DIR/torch.partial"
  rm -rf "$staging"; mkdir -p "$staging"
  unzip -q "$wheel" 'torch/include/*' 'torch/share/*' 'torch/lib/libc10.so' 'torch/lib/libtorch_cpu.so' \
    'torch/lib/libtorch.so' 'torch/lib/libgomp*' 'torch/lib/libtorch_global_deps.so' -d "$staging"
  mv "$staging/torch" "$DEPS_DIR/torch"
  rmdir "$staging"
  rm -rf "$DEPS_DIR/wheel"
  touch "$marker"
fi
echo "setup: ok (LibTorch $TORCH_VERSION in .deps/torch)"
