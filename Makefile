# Entry points: `make run` (setup, build, demo) and `make test` (setup, build, whole suite via ctest).
# BUILD_DIR and JOBS can be overridden; `make bench` runs the CPU benchmarks.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: all setup configure build run test test-python bench clean

all: build

setup:
	@scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DHASHHOP_TESTS=ON -DHASHHOP_BENCHMARKS=ON >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	$(BUILD_DIR)/hashhop demo

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-python

# The Python package (README "Python"): a venv with PyPI's torch (the version LibTorch came from, so the
# op library's ABI matches), transformers and pytest; `pip install .`; its pytest suite on the CPU.
# STRICT: a missing CLI, torch or transformers fails the suite instead of skipping tests. No build isolation:
# the build tools then keep one path, so build-py/<tag> stays valid and a rerun recompiles only what changed
# (seconds; an isolated build starts CMake afresh, ~3 min every time).
PY_VENV ?= build-py/venv
TORCH_VERSION ?= $(or $(HASHHOP_TORCH_VERSION),2.11.0)

test-python: build
	@test -x $(PY_VENV)/bin/python || python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install -q torch==$(TORCH_VERSION) transformers==5.24.0 pytest==9.2.0 \
	  scikit-build-core==1.1.2 nanobind==3.1.0
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(PY_VENV)/bin/pip install -q --no-build-isolation .
	HASHHOP_CLI=$(abspath $(BUILD_DIR))/hashhop PYHASHHOP_TEST_STRICT=1 PYTHONDONTWRITEBYTECODE=1 \
	  $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/python/test_bench.py \
	  tests/python/test_evaluate.py tests/python/test_ops.py

bench: build
	$(BUILD_DIR)/bench/bench_generator

clean:
	rm -rf $(BUILD_DIR)
