#!/bin/bash
# Benchmark for `mar build` (issue 15) against Debian's buildah 1.28, in the same run, on the
# reference multi-stage Dockerfile: a build stage COPYs a generated context (~200 MB of text in
# 20,000 lines of 10,000 characters), a RUN writes each line to a file of its own (20,000 files,
# ~200 MB) and another a 100 MB random file; the final stage copies that artifact. Figures:
#   cold build for linux/amd64,linux/arm64 (arm64 RUN steps under QEMU), fresh stores each run;
#   fully cached rebuild (mar's step cache; buildah --layers), after one build that fills it;
#   commit of the big RUN layer, for linux/amd64: a build whose RUN keeps its ~300 MB /
#   20,000 files minus the same build whose RUN removes them at its end (same work, empty
#   layer), so that the difference is what turning the upper directory into a layer costs;
#   peak RSS of the cold build (/usr/bin/time -v).
# buildah uses its default overlay storage driver under a private --root, --isolation chroot.
# The base image is the bed's busybox sample (mar/multi). hyperfine medians.
#
# usage: bench/build.sh [RUNS] [CONTEXT_MB] [commit]   (default 3 and 200; needs a build in
#        ./build, root, QEMU handlers via the bed, buildah and hyperfine from ci/deps.sh).
#        "commit" runs the commit probe alone; MAR_BENCH_BIN names another mar binary to time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-3}
ctx_mb=${2:-200}
only=${3:-all}
mar="${MAR_BENCH_BIN:-$root/build/mar}"

bed=$(mktemp -d /tmp/mar-bench-build-XXXXXX)
cleanup() {
    umount -R "$bed/bh" 2>/dev/null || true
    bash "$root/tests/bed/bed.sh" down "$bed" >/dev/null 2>&1 || true
    rm -rf "$bed"
}
trap cleanup EXIT
MAR_FIXTURES_BIN="$root/build/tests/mar-fixtures" \
    bash tests/bed/bed.sh up "$bed" registry fixtures containerd binfmt >/dev/null 2>&1
# shellcheck disable=SC1091
. "$bed/env"
export CONTAINERD_ADDRESS="$MAR_TEST_CONTAINERD"
export MAR_INSECURE_REGISTRIES="$MAR_TEST_REGISTRY"
base="$MAR_TEST_REGISTRY/mar/multi:latest"

# The context: base64 of random bytes (compressible as source text is, ~0.75), in files of 100
# lines. The lines are 10,000 characters, so CONTEXT_MB MB are CONTEXT_MB * 100 lines.
ctx="$bed/ctx"
mkdir -p "$ctx/data"
head -c $((ctx_mb * 750000)) /dev/urandom | base64 -w 10000 | split -l 100 -a 4 - "$ctx/data/part-"
cat >"$ctx/Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE} AS build
COPY data/ /src/
RUN busybox awk 'BEGIN { c = "mkdir -p"; for (i = 0; i < 100; i++) c = c " /out/tree/d" i; system(c) } \
        { f = "/out/tree/d" (NR % 100) "/f" NR ".txt"; print > f; close(f) }' /src/*
RUN busybox dd if=/dev/urandom of=/out/blob bs=1M count=100 2>/dev/null

FROM ${BASE}
COPY --from=build /out/blob /app/blob
EOF
# The commit probe: the same work in one RUN, its result kept or removed at its end.
cat >"$bed/commit.Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
ARG DROP=0
COPY data/ /src/
RUN busybox awk 'BEGIN { c = "mkdir -p"; for (i = 0; i < 100; i++) c = c " /out/tree/d" i; system(c) } \
        { f = "/out/tree/d" (NR % 100) "/f" NR ".txt"; print > f; close(f) }' /src/* \
    && busybox dd if=/dev/urandom of=/out/blob bs=1M count=100 2>/dev/null \
    && if [ "$DROP" = 1 ]; then rm -rf /out; fi
EOF
echo "context: $(du -sm "$ctx/data" | cut -f1) MB in $(find "$ctx/data" -type f | wc -l) files" >&2

mstore="$bed/mstore"
bh="$bed/bh"
bah="buildah --root $bh/root --runroot $bh/run --storage-driver overlay"
bh_build="$bah build --isolation chroot --tls-verify=false -q --build-arg BASE=$base"
wipe_mar="rm -rf $mstore"
wipe_bh="$bah rmi -af >/dev/null 2>&1; umount -R $bh 2>/dev/null || true; rm -rf $bh"
plats=linux/amd64,linux/arm64

if [ "$only" != commit ]; then
hyperfine --runs "$runs" --export-json "$bed/cold.json" \
    -n "mar build (cold)" --prepare "$wipe_mar" \
    "$mar -q --store $mstore build --platform $plats -t bench/build:1 --build-arg BASE=$base $ctx" \
    -n "buildah build (cold)" --prepare "$wipe_bh" \
    "$bh_build --layers=false --platform $plats --manifest bench-build $ctx" >&2

# Cached rebuild: each builder once to fill its cache (mar's step cache, buildah's --layers),
# then timed.
eval "$wipe_mar"
$mar -q --store "$mstore" build --platform $plats -t bench/cached:1 --build-arg "BASE=$base" "$ctx" >/dev/null
eval "$wipe_bh"
$bh_build --layers --platform $plats --manifest bench-cached "$ctx" >/dev/null
hyperfine --runs "$runs" --export-json "$bed/cached.json" \
    -n "mar build (cached)" \
    "$mar -q --store $mstore build --platform $plats -t bench/cached:1 --build-arg BASE=$base $ctx" \
    -n "buildah build (cached)" \
    "$bh_build --layers --platform $plats --manifest bench-cached $ctx" >&2

fi

hyperfine --runs "$runs" --export-json "$bed/commit.json" \
    -n "mar keep" --prepare "$wipe_mar" \
    "$mar -q --store $mstore build --platform linux/amd64 -t bench/commit:1 --build-arg BASE=$base -f $bed/commit.Dockerfile $ctx" \
    -n "mar drop" --prepare "$wipe_mar" \
    "$mar -q --store $mstore build --platform linux/amd64 -t bench/commit:1 --build-arg BASE=$base --build-arg DROP=1 -f $bed/commit.Dockerfile $ctx" \
    -n "buildah keep" --prepare "$wipe_bh" \
    "$bh_build --layers=false --platform linux/amd64 -t bench-commit -f $bed/commit.Dockerfile $ctx" \
    -n "buildah drop" --prepare "$wipe_bh" \
    "$bh_build --layers=false --platform linux/amd64 -t bench-commit --build-arg DROP=1 -f $bed/commit.Dockerfile $ctx" >&2

rss=0
if [ "$only" != commit ]; then
    eval "$wipe_mar"
    /usr/bin/time -v -o "$bed/rss" "$mar" -q --store "$mstore" build --platform "$plats" \
        -t bench/build:1 --build-arg "BASE=$base" "$ctx" >/dev/null
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$bed/rss")
fi

/usr/bin/python3 - "$bed" "$rss" <<'PY'
import json, sys
bed, rss = sys.argv[1], int(sys.argv[2])
res = {}
import os
for f in ("cold", "cached", "commit"):
    if os.path.exists(f"{bed}/{f}.json"):
        for r in json.load(open(f"{bed}/{f}.json"))["results"]:
            res[r["command"]] = r["median"]
for k, v in res.items():
    print(f"{k:26s} {v:8.2f} s (median)")
if "mar build (cold)" in res:
    cold = res["mar build (cold)"] / res["buildah build (cold)"]
    print(f"cold build, mar / buildah: {cold:.2f}  (target <= 0.7)")
    cached = res["mar build (cached)"] / res["buildah build (cached)"]
    print(f"cached rebuild, mar / buildah: {cached:.2f}  (target <= 0.25)")
mc = res["mar keep"] - res["mar drop"]
bc = res["buildah keep"] - res["buildah drop"]
print(f"commit of the big RUN layer: mar {mc:.2f} s, buildah {bc:.2f} s, ratio {mc / bc:.2f}  (target <= 0.5)")
if rss:
    print(f"peak RSS of mar (cold build): {rss / 1024:.1f} MiB  (target <= 128)")
PY
