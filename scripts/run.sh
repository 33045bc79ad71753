#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, and runs cutover's
# main job on its embedded default (example config, demo backends, embedded Kafka).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build
exec scripts/demo.sh build/cutover
