# Entry points: `make run` (setup, build, demo) and `make test` (setup, build, whole suite via ctest).
# BUILD_DIR and JOBS can be overridden; `make bench` runs the CPU benchmarks.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: all setup configure build run test test-python test-sanitizers fuzz fuzz-build asan-build bench clean

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
	@$(MAKE) --no-print-directory test-sanitizers

# The Python package (README "Python"): a venv with PyPI's torch (the version LibTorch came from, so the
# op library's ABI matches; without the CUDA wheels the system's toolkit provides: scripts/python-venv.sh),
# transformers and pytest; `pip install .`; its pytest suite on the CPU.
# STRICT: a missing CLI, torch or transformers fails the suite instead of skipping tests. No build isolation:
# the build tools then keep one path, so build-py/<tag> stays valid and a rerun recompiles only what changed
# (seconds; an isolated build starts CMake afresh, ~3 min every time).
PY_VENV ?= build-py/venv
TORCH_VERSION ?= $(or $(HASHHOP_TORCH_VERSION),2.11.0)

test-python: build
	scripts/python-venv.sh $(PY_VENV) $(TORCH_VERSION) transformers==5.24.0 pytest==9.2.0 openai==3.57.0 \
	  scikit-build-core==1.1.2 nanobind==3.1.0
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(PY_VENV)/bin/pip install -q --no-build-isolation .
	HASHHOP_CLI=$(abspath $(BUILD_DIR))/hashhop PYHASHHOP_TEST_STRICT=1 PYTHONDONTWRITEBYTECODE=1 \
	  $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/python/test_bench.py \
	  tests/python/test_evaluate.py tests/python/test_ops.py tests/python/test_kv_cache.py tests/python/test_attention_cases.py tests/python/test_serve.py \
	  tests/python/test_error_anatomy.py

# Sanitizers (issue 15, docs/reliability.md): libFuzzer harnesses (tests/fuzz) and the torch-free GoogleTest
# executables under ASan/UBSan, both built with clang in their own folders (FUZZ_DIR, ASAN_DIR).
# `make fuzz` runs each harness for FUZZ_SECONDS on a copy of its seed corpus in FUZZ_DIR/fuzz-work, one at a
# time; `make test` runs each for FUZZ_SMOKE_SECONDS, FUZZ_SMOKE_JOBS at a time (two cores: four harnesses in
# about two minutes). fuzz_checkpoint links LibTorch (the model loader), so fuzz-build also builds the model.
FUZZ_DIR ?= build-fuzz
ASAN_DIR ?= build-asan
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 60
FUZZ_SMOKE_JOBS ?= 2
FUZZ_CXX ?= clang++-14
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# ccache when installed: a fresh FUZZ_DIR then builds in about 2 min instead of 5 (fuzz_checkpoint builds the model).
FUZZ_LAUNCHER := $(if $(shell command -v ccache 2>/dev/null),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
FUZZ_HARNESSES := fuzz_magic_format fuzz_jsonl_scorer fuzz_run_config fuzz_checkpoint

fuzz-build: setup
	@cmake -S . -B $(FUZZ_DIR) -DCMAKE_CXX_COMPILER=$(FUZZ_CXX) $(FUZZ_LAUNCHER) -DCMAKE_BUILD_TYPE=Release -DHASHHOP_FUZZ=ON \
	  -DHASHHOP_TESTS=OFF -DHASHHOP_BENCHMARKS=OFF -DHASHHOP_CUDA=OFF >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target $(FUZZ_HARNESSES)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

asan-build: setup
	@cmake -S . -B $(ASAN_DIR) -DCMAKE_CXX_COMPILER=$(FUZZ_CXX) $(FUZZ_LAUNCHER) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS=$(SANITIZE_FLAGS)" -DHASHHOP_TESTS=ON -DHASHHOP_BENCHMARKS=OFF -DHASHHOP_CUDA=OFF >/dev/null
	@cmake --build $(ASAN_DIR) -j $(JOBS) --target test_bench test_attn

test-sanitizers: fuzz-build asan-build
	FUZZ_JOBS=$(FUZZ_SMOKE_JOBS) tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SMOKE_SECONDS) $(FUZZ_HARNESSES)
	cd $(ASAN_DIR)/tests && ./test_bench --gtest_brief=1 && ./test_attn --gtest_brief=1

bench: build
	$(BUILD_DIR)/bench/bench_generator

clean:
	rm -rf $(BUILD_DIR)
