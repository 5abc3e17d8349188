#!/bin/bash
# Benchmark for `mar push`. The bench image (bench/mkimage.sh: six gzip layers, ~280 MB) is pulled
# once into a store; then, one after the other under hyperfine, each into an empty registry:
#   mar push                                      from the store (blobs read from their files)
#   skopeo copy --preserve-digests oci: docker://  from bench/mkimage.sh's OCI layout
# Before every timed run the target registry (Debian's docker-registry on loopback) is stopped,
# its storage removed and started again: a registry that already holds the blobs would let both
# skip the uploads (skopeo also mounts blobs its blob-info cache saw in other repositories).
# Prints the hyperfine medians and the ratio against the target (mar / skopeo <= 0.8).
#
# usage: bench/push.sh [RUNS]      (needs a build in ./build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-10}
mar="$root/build/mar"

bed=$(mktemp -d /var/tmp/mar-bench-push-XXXXXX)
cleanup() {
    [ -f "$bed/target.pid" ] && kill "$(cat "$bed/target.pid")" 2>/dev/null || true
    bash "$root/tests/bed/bed.sh" down "$bed/bed" >/dev/null 2>&1 || true
    rm -rf "$bed"
}
trap cleanup EXIT
bash tests/bed/bed.sh up "$bed/bed" registry >/dev/null 2>&1
# shellcheck disable=SC1091
. "$bed/bed/env"
cache=$(bash bench/mkimage.sh "$MAR_TEST_REGISTRY")
"$mar" pull -q --no-unpack --store "$bed/store" "$MAR_TEST_REGISTRY/mar/bench:latest" >/dev/null

# The target registry, restarted empty by $bed/reset.sh before every run.
port=$(bash bench/target-registry.sh "$bed")
"$bed/reset.sh"

hyperfine --runs "$runs" --prepare "sync; $bed/reset.sh" --export-json "$bed/results.json" \
    -n "mar push" \
    "$mar push -q --store $bed/store $MAR_TEST_REGISTRY/mar/bench:latest 127.0.0.1:$port/bench/mar:1" \
    -n "skopeo copy" \
    "skopeo copy -q --preserve-digests --dest-tls-verify=false oci:$cache/layout:bench docker://127.0.0.1:$port/bench/skopeo:1"

/usr/bin/python3 - "$bed/results.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
m, s = r["mar push"]["median"], r["skopeo copy"]["median"]
print(f"mar push median {m:.3f} s, skopeo copy median {s:.3f} s")
print(f"mar push / skopeo copy: {m / s:.2f}  (target <= 0.80)")
PY
