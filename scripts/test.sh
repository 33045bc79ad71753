#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs the whole
# suite (unit tests, fuzz corpora, end-to-end tests against the real binary).
# env: WERROR=1 (warnings are errors), SANITIZE=1 (ASan + UBSan build in build-asan/),
#      TSAN=1 (ThreadSanitizer build in build-tsan/, running the tests labelled tsan),
#      CTEST_ARGS (extra ctest arguments, e.g. "-L unit").
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
[ "${SANITIZE:-0}" = 1 ] && build=build-asan
[ "${TSAN:-0}" = 1 ] && build=build-tsan && CTEST_ARGS="-L tsan ${CTEST_ARGS:-}"
scripts/build.sh "$build"
cd "$build"
# shellcheck disable=SC2086
ctest --output-on-failure -j "$(nproc)" ${CTEST_ARGS:-}
