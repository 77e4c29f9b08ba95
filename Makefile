# Entry points: `make run` (setup, build, demo) and `make test` (setup, build, whole suite via ctest).
# BUILD_DIR and JOBS can be overridden; `make bench` runs the CPU benchmarks.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: all setup configure build run test bench clean

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

bench: build
	$(BUILD_DIR)/bench/bench_generator

clean:
	rm -rf $(BUILD_DIR)
