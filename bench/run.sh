#!/usr/bin/env bash
# Benchmarks cutover against the direct backend, nghttpx, nginx and haproxy with h2load
# (docs/bench.md). Prints a table and writes it as markdown to bench/results.md.
# Usage: bench/run.sh BUILD_DIR
#   env: BENCH_QUICK=1            -n 20000 instead of 200000
#        BENCH_N, BENCH_C, BENCH_M, BENCH_T   h2load -n -c -m -t (default 200000 32 10 1)
#        BENCH_TARGETS            subset of "direct cutover nghttpx nginx haproxy
#                                 cutover-mirror nginx-mirror slow-shadow"
#        BENCH_TLS=0              skip the TLS (h2) runs
#        BENCH_BACKEND_CONNS      backend keep-alive connections per proxy (default c * m)
#        BENCH_OUT                markdown output (default bench/results.md)
#        BENCH_ROUNDS             interleaved rounds of each mirroring ratio (default 3; 0: none)
set -euo pipefail
build=${1:?usage: bench/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$build/cutover" ] || { echo "bench: $build/cutover not found; build first" >&2; exit 1; }
exec /usr/bin/python3 "$here/bench.py" "$build" "${@:2}"
