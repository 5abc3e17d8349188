#!/bin/bash
# Benchmark for `mar inspect --deep` (issue: binfmt and ELF truth): the bench image's six gzip
# layers streamed from the local registry and scanned (tar headers, first bytes of every file,
# whiteouts), against only decompressing them: `zcat` of every layer to /dev/null, one after
# the other. Target: mar <= 1.5x zcat.
#
# usage: bench/deep.sh [RUNS]    (needs a build in ./build; run as root for the bed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-5}
bed=$(mktemp -d /tmp/mar-bench-XXXXXX)
trap 'bash "$root/tests/bed/bed.sh" down "$bed"' EXIT
bash tests/bed/bed.sh up "$bed" registry >/dev/null 2>&1
# shellcheck disable=SC1091
. "$bed/env"
cache=$(bash bench/mkimage.sh "$MAR_TEST_REGISTRY")
ls "$cache"/layers/*.tar.gz >/dev/null
du -cb "$cache"/layers/*.tar.gz | tail -1 | awk '{printf "compressed: %.0f MB\n", $1/1e6}'
for f in "$cache"/layers/*.tar.gz; do zcat "$f"; done | wc -c | awk '{printf "uncompressed: %.0f MB\n", $1/1e6}'
for f in "$cache"/layers/*.tar.gz; do zcat "$f" | tar -t; done | wc -l | awk '{printf "entries: %d\n", $1}'
hyperfine --runs "$runs" --warmup 1 --export-json "$bed/h.json" \
    -n "zcat every layer" "for f in $cache/layers/*.tar.gz; do zcat \$f >/dev/null; done" \
    -n "mar inspect --deep" "$root/build/mar -q inspect --deep $MAR_TEST_REGISTRY/mar/bench:latest" >&2
/usr/bin/python3 - "$bed/h.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
z, m = r["zcat every layer"], r["mar inspect --deep"]
print(f"zcat of every layer:           {z*1000:8.0f} ms (median)")
print(f"mar inspect --deep (registry): {m*1000:8.0f} ms (median)")
print(f"ratio mar / zcat:              {m/z:8.2f}  (target <= 1.5)")
PY
