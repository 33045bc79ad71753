# Convenience targets over scripts/ (the README's commands work without make).
.PHONY: all build run test test-asan bench fuzz clean
all: build
build:
	@scripts/build.sh build
run:
	@scripts/run.sh
test:
	@scripts/test.sh
test-asan:
	@SANITIZE=1 scripts/test.sh
bench:
	@DEPS=bench scripts/build.sh build-bench
	@bench/run.sh build-bench
fuzz:
	@scripts/deps.sh build
	@cmake -S . -B build-fuzz -DCUTOVER_FUZZ=ON -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build build-fuzz -j $$(nproc)
clean:
	rm -rf build build-asan build-bench build-fuzz
