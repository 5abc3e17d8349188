#!/bin/bash
# Benchmark for `mar pull` (issue: pull and unpack). The bench image (bench/mkimage.sh: six gzip
# layers, ~280 MB compressed, ~760 MB and ~47,000 entries uncompressed) is served by the bed's
# docker-registry on loopback. In one run, alternating, each into an empty store:
#   ctr images pull            containerd 1.6: download, verify, unpack (overlayfs snapshotter)
#   mar pull                   download, verify, unpack every layer into its own directory
#   skopeo copy docker:// oci:  download and verify into an OCI layout
#   mar pull --no-unpack       download and verify into mar's store (an OCI layout)
# Every timed run writes to a freshly made ext4 file system (a loop device): on a file system
# where many files were just deleted, ext4 skips recently freed inodes one by one
# (recently_deleted() in ext4_create), which made any tool's run depend on what the previous
# run deleted. containerd gets its own instance with its root on that file system.
# Prints medians, the ratios against the issue's targets, and peak RSS.
#
# usage: bench/pull.sh [RUNS]      (needs a build in ./build; run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-5}
mar="$root/build/mar"

bed=$(mktemp -d /var/tmp/mar-bench-XXXXXX)
cleanup() {
    [ -f "$bed/m/bed/env" ] && bash "$root/tests/bed/bed.sh" down "$bed/m/bed" >/dev/null 2>&1
    umount "$bed/m" 2>/dev/null || true
    bash "$root/tests/bed/bed.sh" down "$bed" >/dev/null 2>&1 || true
    rm -rf "$bed"
}
trap cleanup EXIT
bash tests/bed/bed.sh up "$bed" registry >/dev/null 2>&1
# shellcheck disable=SC1091
. "$bed/env"
bash bench/mkimage.sh "$MAR_TEST_REGISTRY" >/dev/null
image="$MAR_TEST_REGISTRY/mar/bench:latest"
results="$bed/results"
: >"$results"
mnt="$bed/m"
mkdir -p "$mnt"

fresh_fs() {
    umount "$mnt" 2>/dev/null || true
    rm -f "$bed/fs.img"
    truncate -s 8G "$bed/fs.img"
    mkfs.ext4 -q -F "$bed/fs.img"
    mount -o loop "$bed/fs.img" "$mnt"
}

# time_run NAME CMD...: appends "NAME seconds maxrss_kb" to the results.
time_run() {
    local name=$1
    shift
    sync
    /usr/bin/time -o "$bed/t" -f "%e %M" "$@" >/dev/null 2>"$bed/err" || {
        cat "$bed/err" >&2
        exit 1
    }
    echo "$name $(cat "$bed/t")" >>"$results"
}

for i in $(seq "$runs"); do
    echo "run $i/$runs" >&2
    fresh_fs
    bash tests/bed/bed.sh up "$mnt/bed" containerd >/dev/null 2>&1
    sock=$(grep MAR_TEST_CONTAINERD= "$mnt/bed/env" | cut -d= -f2)
    time_run ctr ctr --address "$sock" -n bench images pull --plain-http "$image"
    bash tests/bed/bed.sh down "$mnt/bed" >/dev/null 2>&1
    fresh_fs
    time_run mar "$mar" -q pull --store "$mnt/store" "$image"
    fresh_fs
    time_run skopeo skopeo copy -q --src-tls-verify=false "docker://$image" "oci:$mnt/skopeo:bench"
    fresh_fs
    time_run mar-no-unpack "$mar" -q pull --no-unpack --store "$mnt/store" "$image"
done
umount "$mnt"
rm -f "$bed/fs.img"

/usr/bin/python3 - "$results" "$runs" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
t = {}
rss = {}
for name, sec, kb in rows:
    t.setdefault(name, []).append(float(sec))
    rss.setdefault(name, []).append(int(kb))
med = {k: statistics.median(v) for k, v in t.items()}
for k in ("ctr", "mar", "skopeo", "mar-no-unpack"):
    print(f"{k:15s} median {med[k]:6.2f} s  (runs: {' '.join(f'{x:.2f}' for x in t[k])})  "
          f"peak RSS {max(rss[k]) / 1024:.1f} MiB")
print(f"mar pull / ctr images pull:          {med['mar'] / med['ctr']:.2f}  (target <= 0.35)")
print(f"mar pull --no-unpack / skopeo copy:  {med['mar-no-unpack'] / med['skopeo']:.2f}  (target <= 1.00)")
print(f"mar peak RSS:                        {max(rss['mar'] + rss['mar-no-unpack']) / 1024:.1f} MiB  (target <= 64)")
PY
