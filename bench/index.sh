#!/bin/bash
# Benchmark for `mar index create`: the 8 per-architecture samples (mar/arch-*, one repository
# each) made into one index in a new repository, behind a loopback proxy that adds 50 ms of
# round-trip latency (bench/latency-proxy.py), so every blob is mountable and none is present.
# Every run targets a repository of its own (a repeated run would find the blobs present and
# skip the mounts). Reports the median over RUNS of the run through the proxy and of the same
# command against the registry directly, and the difference in round trips: (proxied - direct) /
# RTT, minus the one the proxy spends holding the first connection (its "handshake").
#
# usage: bench/index.sh [RUNS]      (needs a build in ./build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-7}
rtt=50

bed=$(mktemp -d /tmp/mar-bench-index-XXXXXX)
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
mar="$root/build/mar"
arches="amd64 arm64 armhf armel i386 ppc64el s390x mips64el"

one() { # host tag -> seconds
    local host=$1 tag=$2 srcs=() t0 t1
    for a in $arches; do srcs+=("$host/mar/arch-$a:latest"); done
    t0=$(date +%s.%N)
    "$mar" -q index create "$host/bench/index-$tag:latest" "${srcs[@]}" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}

one "$MAR_TEST_REGISTRY" warmup >/dev/null
: >"$bed/direct"
: >"$bed/slow"
for i in $(seq 1 "$runs"); do
    one "$MAR_TEST_REGISTRY" "direct$i" >>"$bed/direct"
    one "127.0.0.1:$port" "slow$i" >>"$bed/slow"
done
"$mar" -q index create --json "127.0.0.1:$port/bench/index-stats:latest" \
    $(for a in $arches; do echo "127.0.0.1:$port/mar/arch-$a:latest"; done) >"$bed/stats.json"

/usr/bin/python3 - "$bed/direct" "$bed/slow" "$rtt" "$bed/stats.json" <<'PY'
import json, statistics, sys
d = statistics.median(float(x) for x in open(sys.argv[1]))
s = statistics.median(float(x) for x in open(sys.argv[2]))
rtt = float(sys.argv[3]) / 1000
st = json.load(open(sys.argv[4]))["stats"]
print(f"mar index create, 8 sources, direct:      {d*1000:7.1f} ms (median)")
print(f"mar index create, 8 sources, 50 ms RTT:   {s*1000:7.1f} ms (median)")
print(f"round trips after connecting:             {(s-d)/rtt - 1:7.2f}  (target <= 4)")
print(f"blobs mounted {st['blobsMounted']}, uploaded {st['blobsPushed']}, present {st['blobsPresent']}")
PY
