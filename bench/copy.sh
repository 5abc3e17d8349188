#!/bin/bash
# Benchmark for `mar copy` between two registries. The bench image (bench/mkimage.sh: six gzip
# layers, ~280 MB) is pushed once into the bed's registry; then, one after the other under
# hyperfine, each copies it into an empty second registry (both Debian's docker-registry on
# loopback):
#   mar copy REF 127.0.0.1:PORT/...                        blobs streamed, never on disk
#   skopeo copy --preserve-digests docker://REF docker://...
# Before every timed run the target registry is stopped, its storage removed and started again,
# so neither can skip uploads. Prints the hyperfine medians, the ratio against the target
# (mar / skopeo <= 0.6) and mar's peak RSS over one more copy (GNU time; target <= 64 MiB).
#
# usage: bench/copy.sh [RUNS]      (needs a build in ./build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-10}
mar="$root/build/mar"

bed=$(mktemp -d /var/tmp/mar-bench-copy-XXXXXX)
cleanup() {
    [ -f "$bed/target.pid" ] && kill "$(cat "$bed/target.pid")" 2>/dev/null || true
    bash "$root/tests/bed/bed.sh" down "$bed/bed" >/dev/null 2>&1 || true
    rm -rf "$bed"
}
trap cleanup EXIT
bash tests/bed/bed.sh up "$bed/bed" registry >/dev/null 2>&1
# shellcheck disable=SC1091
. "$bed/bed/env"
bash bench/mkimage.sh "$MAR_TEST_REGISTRY" >/dev/null
src="$MAR_TEST_REGISTRY/mar/bench:latest"

# The target registry, restarted empty by $bed/reset.sh before every run.
port=$(bash bench/target-registry.sh "$bed")
"$bed/reset.sh"

hyperfine --runs "$runs" --prepare "sync; $bed/reset.sh" --export-json "$bed/results.json" \
    -n "mar copy" \
    "$mar copy -q $src 127.0.0.1:$port/bench/mar:1" \
    -n "skopeo copy" \
    "skopeo copy -q --preserve-digests --src-tls-verify=false --dest-tls-verify=false docker://$src docker://127.0.0.1:$port/bench/skopeo:1"

"$bed/reset.sh"
/usr/bin/time -f "%M" -o "$bed/rss" "$mar" copy -q "$src" "127.0.0.1:$port/bench/rss:1" >/dev/null

/usr/bin/python3 - "$bed/results.json" "$bed/rss" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
m, s = r["mar copy"]["median"], r["skopeo copy"]["median"]
rss = int(open(sys.argv[2]).read().split()[-1]) / 1024
print(f"mar copy median {m:.3f} s, skopeo copy median {s:.3f} s")
print(f"mar copy / skopeo copy: {m / s:.2f}  (target <= 0.60)")
print(f"mar copy peak RSS: {rss:.1f} MiB  (target <= 64)")
PY
