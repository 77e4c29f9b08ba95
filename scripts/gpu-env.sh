# Sourced by the scripts/gpu-*.sh device scripts (not run alone): the environment the `gpu` preset's build
# and binaries need. cpp-httplib and its shared libraries come from .gpu-deps (scripts/gpu-deps.sh).
export LD_LIBRARY_PATH="$PWD/.gpu-deps/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
