#!/usr/bin/env bash
# Copies what the GPU machine lacks and cannot fetch into .gpu-deps/ (git-ignored; carried with device
# runs): GoogleTest sources, CLI11 and nlohmann-json headers with their CMake configs, OpenSSL headers
# and a static libcrypto, cpp-httplib (header + Debian's shared library) with the shared libraries it needs
# (OpenSSL 3, zlib, brotli; device scripts put .gpu-deps/usr/lib on LD_LIBRARY_PATH). Run: scripts/gpu-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-deps && mkdir -p .gpu-deps/usr/include .gpu-deps/usr/share/cmake .gpu-deps/usr/lib
cp -r /usr/src/googletest/googletest .gpu-deps/
cp -r /usr/include/CLI /usr/include/nlohmann /usr/include/openssl .gpu-deps/usr/include/
cp /usr/include/x86_64-linux-gnu/openssl/*.h .gpu-deps/usr/include/openssl/
cp -r /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json .gpu-deps/usr/share/cmake/
cp /usr/lib/x86_64-linux-gnu/libcrypto.a .gpu-deps/usr/lib/
cp -r /usr/include/httplib.h /usr/include/zlib.h /usr/include/zconf.h /usr/include/brotli .gpu-deps/usr/include/
for lib in libcpp-httplib.so libcpp-httplib.so.0.11 libssl.so.3 libcrypto.so.3 libz.so.1 libbrotlicommon.so.1 \
           libbrotlidec.so.1 libbrotlienc.so.1; do
  cp -L "/usr/lib/x86_64-linux-gnu/$lib" .gpu-deps/usr/lib/
done
echo "gpu-deps: ok ($(du -sh .gpu-deps | cut -f1))"
