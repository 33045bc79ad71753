#!/usr/bin/env bash
# Installs missing Debian packages, configures and builds cutover.
# Usage: scripts/build.sh [BUILD_DIR]   env: WERROR=1, SANITIZE=1, TSAN=1, DEPS=build|test|bench,
#                                            BUILD_TYPE (CMake build type; default RelWithDebInfo)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
flags=()
[ "${WERROR:-0}" = 1 ] && flags+=(-DCUTOVER_WERROR=ON)
[ -n "${BUILD_TYPE:-}" ] && flags+=(-DCMAKE_BUILD_TYPE="$BUILD_TYPE")
if [ "${SANITIZE:-0}" = 1 ]; then
  [ $# -ge 1 ] || build=build-asan
  flags+=(-DCUTOVER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
if [ "${TSAN:-0}" = 1 ]; then
  [ $# -ge 1 ] || build=build-tsan
  flags+=(-DCUTOVER_TSAN=ON -DCMAKE_BUILD_TYPE=Debug)
fi
scripts/deps.sh "${DEPS:-test}"
cmake -S . -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)"
