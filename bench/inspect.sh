#!/bin/bash
# Benchmark for `mar inspect` (issue: inspect): the 8-platform sample behind a loopback proxy that
# adds 50 ms of round-trip latency. Compares, in the same run:
#   mar inspect IMAGE              every platform's manifest and config fetched and checked
#   skopeo inspect docker://IMAGE  one platform (linux/amd64): index, manifest, config
# and reports medians (hyperfine), the ratio, and mar's time in round trips after subtracting its
# time against the registry directly (process start, TLS-free loopback).
#
# usage: bench/inspect.sh [RUNS]      (needs a build in ./build; run as root for the bed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-15}
rtt=50

bed=$(mktemp -d /tmp/mar-bench-XXXXXX)
proxy_pid=
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    bash "$root/tests/bed/bed.sh" down "$bed"
}
trap cleanup EXIT
MAR_FIXTURES_BIN="$root/build/tests/mar-fixtures" bash tests/bed/bed.sh up "$bed" registry fixtures >/dev/null 2>&1
# shellcheck disable=SC1091
. "$bed/env"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 bench/latency-proxy.py "$port" "$MAR_TEST_REGISTRY" "$rtt" "$bed/proxy-stats" &
proxy_pid=$!
sleep 0.5
slow="127.0.0.1:$port/mar/multi:latest"
fast="$MAR_TEST_REGISTRY/mar/multi:latest"
mar="$root/build/mar"

"$mar" -q inspect "$slow" >/dev/null # warm-up, and a check that it works through the proxy
hyperfine --runs "$runs" --warmup 2 -N --export-json "$bed/h.json" \
    -n "mar inspect (direct)" "$mar -q inspect $fast" \
    -n "mar inspect (50 ms RTT)" "$mar -q inspect $slow" \
    -n "skopeo inspect (50 ms RTT)" "skopeo inspect --tls-verify=false docker://$slow" >&2

/usr/bin/python3 - "$bed/h.json" "$rtt" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rtt = float(sys.argv[2]) / 1000
d = res["mar inspect (direct)"]["median"]
m = res["mar inspect (50 ms RTT)"]["median"]
s = res["skopeo inspect (50 ms RTT)"]["median"]
print(f"mar inspect, 8 platforms + configs, direct:      {d*1000:7.1f} ms (median)")
print(f"mar inspect, 8 platforms + configs, 50 ms RTT:   {m*1000:7.1f} ms (median)")
print(f"skopeo inspect, 1 platform, 50 ms RTT:           {s*1000:7.1f} ms (median)")
print(f"ratio mar / skopeo:                              {m/s:7.2f}  (target <= 0.70)")
# The proxy holds each new connection for one RTT (the handshake); the first one is "connecting".
print(f"mar round trips, first connection included:      {(m-d)/rtt:7.2f}")
print(f"mar round trips after connecting:                {(m-d)/rtt - 1:7.2f}  (target <= 6)")
PY
