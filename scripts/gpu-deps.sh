#!/usr/bin/env bash
# Copies what scripts/gpu-check.sh needs on the GPU machine and cannot fetch there (GoogleTest sources)
# into .gpu-deps/ (git-ignored; carried with the device run). Run here: scripts/gpu-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-deps && mkdir -p .gpu-deps
cp -r /usr/src/googletest/googletest .gpu-deps/
echo "gpu-deps: ok ($(du -sh .gpu-deps | cut -f1))"
