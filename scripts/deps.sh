#!/usr/bin/env bash
# Installs every Debian package cutover needs to build, test and benchmark.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail

BUILD_PKGS=(build-essential make cmake pkg-config git clang libclang-rt-14-dev
  libevent-dev libnghttp2-dev libssl-dev librdkafka-dev libavro-dev libyaml-dev
  libcmocka-dev libmurmurhash-dev libjansson-dev libhttp-parser-dev)
TEST_PKGS=(curl nghttp2-client kcat openssl python3 python3-h2 python3-confluent-kafka
  python3-avro procps chromium)
BENCH_PKGS=(nghttp2-proxy nginx haproxy)

want=("${BUILD_PKGS[@]}")
case "${1:-test}" in
  build) ;;
  test) want+=("${TEST_PKGS[@]}") ;;
  bench) want+=("${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: run as root or install sudo" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# Services from these packages (nginx, haproxy) must not start system-wide:
# the benchmark starts its own instances on free loopback ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
