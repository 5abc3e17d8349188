#!/bin/bash
# Benchmark for `mar audit` (issue: check and audit): a list of 50 image references, each its own
# repository (copies of the sample images: multi-arch indexes, single-platform images, arm-only,
# zstd...), served through a loopback proxy that adds 50 ms of round-trip latency. Compares, in
# the same run:
#   mar audit LIST                                 every image: index, manifests, configs, verdicts
#   for r in LIST; do skopeo inspect --raw ...     one manifest per image, one process each
# Target: mar <= 0.1x the skopeo loop. Also prints mar's registry request count.
#
# usage: bench/audit.sh [RUNS]      (needs a build in ./build; run as root for the bed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-5}
rtt=50
n=50

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

# Fifty repositories: skopeo copies every platform (and the index) of a fixture into each.
sources=(multi app20 app11 app10 amd64only armonly mixed single shared1 shared2 zstd whiteout
         confmismatch dockerlist)
: >"$bed/list"
for i in $(seq 1 $n); do
    src=${sources[$(((i - 1) % ${#sources[@]}))]}
    name=$(printf 'bench/svc%02d:1.%d' "$i" "$i")
    skopeo copy -q --all --src-tls-verify=false --dest-tls-verify=false \
        "docker://$MAR_TEST_REGISTRY/mar/$src:latest" "docker://$MAR_TEST_REGISTRY/$name" >/dev/null 2>&1 ||
        skopeo copy -q --all --src-tls-verify=false --dest-tls-verify=false \
            "docker://$(jq -r ".$src.ref" "$MAR_TEST_FIXTURES")" "docker://$MAR_TEST_REGISTRY/$name" >/dev/null
    echo "$name" >>"$bed/list"
done

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 bench/latency-proxy.py "$port" "$MAR_TEST_REGISTRY" "$rtt" "$bed/proxy-stats" &
proxy_pid=$!
sleep 0.5
sed "s|^|127.0.0.1:$port/|" "$bed/list" >"$bed/slow.list"
sed "s|^|$MAR_TEST_REGISTRY/|" "$bed/list" >"$bed/fast.list"
mar="$root/build/mar"
cat >"$bed/skopeo-loop" <<EOF
#!/bin/bash
while read -r r; do skopeo inspect --raw --tls-verify=false "docker://\$r" >/dev/null; done <"$bed/slow.list"
EOF
chmod +x "$bed/skopeo-loop"

# A check that it works through the proxy, and the request count.
"$mar" audit "$bed/slow.list" >"$bed/audit.out" 2>&1 || true
grep -E "registry requests|images" "$bed/audit.out" | tail -2 >&2
hyperfine --runs "$runs" --warmup 1 -N -i --export-json "$bed/h.json" \
    -n "mar audit (direct)" "$mar -q audit $bed/fast.list" \
    -n "mar audit (50 ms RTT)" "$mar -q audit $bed/slow.list" \
    -n "skopeo inspect --raw loop (50 ms RTT)" "$bed/skopeo-loop" >&2

/usr/bin/python3 - "$bed/h.json" <<'PY'
import json, sys
res = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
d = res["mar audit (direct)"]
m = res["mar audit (50 ms RTT)"]
s = res["skopeo inspect --raw loop (50 ms RTT)"]
print(f"mar audit, 50 images, direct:                 {d*1000:7.0f} ms (median)")
print(f"mar audit, 50 images, 50 ms RTT:              {m*1000:7.0f} ms (median)")
print(f"skopeo inspect --raw loop, 50 ms RTT:         {s*1000:7.0f} ms (median)")
print(f"ratio mar / skopeo loop:                      {m/s:7.3f}  (target <= 0.10)")
PY
