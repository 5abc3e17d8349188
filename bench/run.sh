#!/bin/bash
# Benchmark for `mar run` (issue: run): an image already local, `true` as the command, natively
# (linux/amd64) and under QEMU (linux/arm64), against `ctr run --rm` of the same image pulled
# into containerd, in the same run, with hyperfine. Both go through the same containerd (the
# bed's, containerd 1.6 + runc from Debian) and end with the container deleted.
#
# usage: bench/run.sh [RUNS]      (needs a build in ./build; root; QEMU handlers via the bed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-20}
mar="$root/build/mar"

bed=$(mktemp -d /tmp/mar-bench-XXXXXX)
cleanup() { bash "$root/tests/bed/bed.sh" down "$bed" >/dev/null 2>&1 || true; }
trap cleanup EXIT
MAR_FIXTURES_BIN="$root/build/tests/mar-fixtures" \
    bash tests/bed/bed.sh up "$bed" registry fixtures containerd binfmt >/dev/null 2>&1
# shellcheck disable=SC1091
. "$bed/env"
image="$MAR_TEST_REGISTRY/mar/multi:latest"
store="$bed/store"
ctr=(ctr --address "$MAR_TEST_CONTAINERD" -n bench)
export CONTAINERD_ADDRESS="$MAR_TEST_CONTAINERD"

for p in linux/amd64 linux/arm64; do
    "${ctr[@]}" images pull --plain-http --platform "$p" "$image" >/dev/null
    "$mar" -q pull --store "$store" --platform "$p" "$image" >/dev/null
done

hyperfine --runs "$runs" --warmup 3 -N --export-json "$bed/h.json" \
    -n "ctr run --rm (amd64)" "${ctr[*]} run --rm $image bench-a true" \
    -n "mar run (amd64)" "$mar -q run --store $store $image true" \
    -n "ctr run --rm (arm64, qemu)" "${ctr[*]} run --rm --platform linux/arm64 $image bench-b true" \
    -n "mar run (arm64, qemu)" "$mar -q run --store $store --platform linux/arm64 $image true" >&2

/usr/bin/python3 - "$bed/h.json" <<'PY'
import json, sys
res = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
for k, v in res.items():
    print(f"{k:28s} {v*1000:7.1f} ms (median)")
for arch in ("amd64", "arm64, qemu"):
    m, c = res[f"mar run ({arch})"], res[f"ctr run --rm ({arch})"]
    print(f"mar run / ctr run --rm ({arch}): {m/c:.2f}  (target <= 1.0)")
PY
