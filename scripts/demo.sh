#!/usr/bin/env bash
# The README's demo: two demo backends (legacy on :9001 over HTTP/1.1, modern on :9002 over h2c)
# behind `cutover proxy -c config/example.yaml` (h2c/HTTP/1.1 on :8080, TLS h2 on :8443,
# admin on :9901). Prints how to use it; Ctrl-C (or the proxy exiting) stops everything.
# Usage: scripts/demo.sh [BIN]     (BIN defaults to build/cutover)
#   env: LEGACY_LINEAGE, MODERN_LINEAGE   x-lineage of each backend's responses
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/cutover}
[ -x "$bin" ] || { echo "demo: $bin is not an executable; build first (scripts/build.sh)" >&2; exit 1; }
shown=$bin  # as the user gave it, for the printed commands
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
config=config/example.yaml
run=run
legacy_lineage=${LEGACY_LINEAGE:-catalog=v812;streams=9f3a0c}
modern_lineage=${MODERN_LINEAGE:-catalog=v812;streams=9f3a0c}

say() { printf '%s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pids=()
proxy=
# Stops in reverse start order, so the proxy drains (up to its drain_timeout, 30 s in
# the example) while the backends still answer; then the backends.
stop_all() {
  local i pid tries
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    tries=30
    [ "$pid" = "$proxy" ] && tries=350
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$tries"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_all' EXIT
trap 'say ""; say "demo: stopping"; exit 0' INT TERM

# Waits until 127.0.0.1:$2 accepts connections while process $1 runs (5 s at most).
wait_port() {
  local pid=$1 port=$2 name=$3
  for _ in $(seq 100); do
    port_open "$port" && return 0
    kill -0 "$pid" 2>/dev/null || { say "demo: $name exited before listening on 127.0.0.1:$port"; return 1; }
    sleep 0.05
  done
  say "demo: $name does not listen on 127.0.0.1:$port after 5 s"
  return 1
}

for port in 9001 9002 8080 8443 9901; do
  if port_open "$port"; then
    say "demo: 127.0.0.1:$port is already in use (another demo running?); stop it first"
    exit 1
  fi
done

# run/: the TLS certificate (made once) and the admin API's bearer token.
mkdir -p "$run"
scripts/gen-cert.sh "$run"
if [ ! -s "$run/admin.token" ]; then
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run/admin.token")
fi

setsid "$bin" demo-backend --name legacy --listen 127.0.0.1:9001 --protocol http1 \
  --lineage "$legacy_lineage" &
pids+=($!)
wait_port "$!" 9001 "demo backend legacy"
setsid "$bin" demo-backend --name modern --listen 127.0.0.1:9002 --protocol h2c \
  --lineage "$modern_lineage" &
pids+=($!)
wait_port "$!" 9002 "demo backend modern"

# The proxy's stdout also goes to run/proxy.out, where its "kafka bootstrap:" line is read.
# Every process runs in a session of its own: Ctrl-C reaches only this script, which sends the
# proxy exactly one SIGTERM (a second signal would cut its graceful drain short).
: >"$run/proxy.out"
setsid "$bin" proxy -c "$config" > >(tee "$run/proxy.out") &
proxy=$!
pids+=("$proxy")
if ! wait_port "$proxy" 8080 "cutover proxy"; then
  status=0
  wait "$proxy" || status=$?
  say ""
  say "demo: cutover proxy did not start (exit status $status); see its message above."
  say "demo: the demo backends were up on 127.0.0.1:9001 (legacy) and 127.0.0.1:9002 (modern);"
  say "demo: stopping them."
  exit 1
fi

topic=$(sed -n 's/^[[:space:]]*topic:[[:space:]]*"\{0,1\}\([^"#[:space:]]*\).*/\1/p' "$config" 2>/dev/null \
  | head -n1 || true)
topic=${topic:-cutover.pairs}
# The embedded broker picks a free port at start: print the kcat command with it.
bootstrap=
for _ in $(seq 50); do
  bootstrap=$(sed -n 's/^kafka bootstrap: \([^ ]*\).*/\1/p' "$run/proxy.out" | head -n1)
  [ -n "$bootstrap" ] && break
  sleep 0.1
done
if [ -n "$bootstrap" ]; then
  kcat_hint="Read the recorded request/response pairs (Kafka bootstrap $bootstrap):"
else
  kcat_hint="Read the recorded request/response pairs (BOOTSTRAP: the address on the proxy's
\"kafka bootstrap:\" line above):"
  bootstrap=BOOTSTRAP
fi
cat >&2 <<EOF

cutover demo is running (Ctrl-C stops everything):
  legacy backend  http://127.0.0.1:9001   HTTP/1.1
  modern backend  http://127.0.0.1:9002   h2c
  proxy           http://127.0.0.1:8080   h2c and HTTP/1.1
                  https://127.0.0.1:8443  TLS (h2, http/1.1), CA certificate in $run/ca.pem
  admin           http://127.0.0.1:9901   bearer token in $run/admin.token

Send a request (the JSON answer names the backend that served it):
  curl --http2-prior-knowledge -H 'x-device-id: dev-1' http://127.0.0.1:8080/api/checkout
  curl --http1.1 -H 'x-device-id: dev-1' http://127.0.0.1:8080/api/checkout
  curl --http2 --cacert $run/ca.pem -H 'x-device-id: dev-1' https://127.0.0.1:8443/api/checkout

Turn the dial (send a quarter of the devices to modern), then look again:
  $shown dial set checkout-v2 25 -c $config
  for i in \$(seq 20); do curl -s --http2-prior-knowledge -H "x-device-id: dev-\$i" \\
    http://127.0.0.1:8080/api/checkout; done

$kcat_hint
  kcat -C -b $bootstrap -t $topic -e -f 'key %k  %S bytes  partition %p\n'

EOF

status=0
wait "$proxy" || status=$?
# A signal to this script interrupts `wait`; the INT/TERM trap then exits and stops everything.
say "demo: cutover proxy exited (status $status); stopping the demo backends"
exit "$status"
