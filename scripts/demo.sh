#!/usr/bin/env bash
# The README's run command: until the proxy exists, validate and print the example config.
set -euo pipefail
bin=${1:-build/cutover}
cd "$(dirname "$0")/.."
"$bin" config check config/example.yaml
"$bin" config print config/example.yaml
