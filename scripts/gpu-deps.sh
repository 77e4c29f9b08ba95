#!/usr/bin/env bash
# Copies what the GPU machine lacks and cannot fetch into .gpu-deps/ (git-ignored; carried with device
# runs): GoogleTest sources, CLI11 and nlohmann-json headers with their CMake configs, OpenSSL headers
# and a static libcrypto. Run here: scripts/gpu-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-deps && mkdir -p .gpu-deps/usr/include .gpu-deps/usr/share/cmake .gpu-deps/usr/lib
cp -r /usr/src/googletest/googletest .gpu-deps/
cp -r /usr/include/CLI /usr/include/nlohmann /usr/include/openssl .gpu-deps/usr/include/
cp /usr/include/x86_64-linux-gnu/openssl/*.h .gpu-deps/usr/include/openssl/
cp -r /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json .gpu-deps/usr/share/cmake/
cp /usr/lib/x86_64-linux-gnu/libcrypto.a .gpu-deps/usr/lib/
echo "gpu-deps: ok ($(du -sh .gpu-deps | cut -f1))"
