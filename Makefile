# Thin wrapper over CMake: the README's two commands are `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(WERROR),1)
CMAKE_FLAGS += -DCUTOVER_WERROR=ON
endif
ifeq ($(SANITIZE),1)
BUILD := build-asan
CMAKE_FLAGS += -DCUTOVER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif

.PHONY: all deps build run test bench fuzz clean

all: build

deps:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Builds and runs cutover's main job on the embedded default (demo backends,
# example config, embedded Kafka). Ctrl-C stops everything.
run: build
	@scripts/demo.sh $(BUILD)/cutover

# Builds and runs the whole test suite (unit, fuzz corpora, end-to-end).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

bench:
	@scripts/deps.sh bench
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j $(JOBS)
	@bench/run.sh build-bench

fuzz:
	@cmake -S . -B build-fuzz -DCUTOVER_FUZZ=ON -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

clean:
	rm -rf build build-asan build-bench build-fuzz
