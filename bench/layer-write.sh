#!/bin/bash
# Benchmark for the layer writer (oci_layer_write_dir, docs/internals/layer-write.md): a generated
# tree of about 300 MB in 20,000 files (mixed sizes; text, random and repetitive binary data)
# written as a gzip layer by mar, against `tar -c | gzip` and `tar -c | pigz` (each at its default
# level 6 and at level 1) when pigz is installed. mar runs through the unit test binary's driver
# mode, with its default threads (the CPUs it may use) and with one thread, at its default level.
# Reports wall-clock medians and mean CPU times (hyperfine), blob sizes and the load average: on a
# shared machine the CPU times say more than the wall clock.
#
# usage: bench/layer-write.sh [RUNS]     (needs a build in ./build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-5}
drv="$root/build/tests/test-layer-write"
[ -x "$drv" ] || { echo "build first: bash ci/build.sh build" >&2; exit 1; }

work=$(mktemp -d /tmp/mar-bench-lw-XXXXXX)
trap 'rm -rf "$work"' EXIT
tree="$work/tree"

# The tree: deterministic (fixed seed), 400 directories of 50 files; sizes log-normal, scaled to
# 300 MB in all, 40 of them 1-8 MB. Half the files are text (words from a small vocabulary, which
# gzip shrinks about 3x), a quarter random bytes, a quarter repetitive binary records.
/usr/bin/python3 - "$tree" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(20240601)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
         for _ in range(3000)]
text = b" ".join(rng.choice(words) + (b"\n" if rng.random() < 0.1 else b"") for _ in range(1500000))
records = b"".join(rng.randbytes(4) + bytes(12) + i.to_bytes(4, "little") + b"RECORD\x00\x01"
                   for i in range(200000))
n = 20000
sizes = [rng.lognormvariate(8.5, 1.3) for _ in range(n - 40)] + \
        [rng.uniform(1e6, 8e6) for _ in range(40)]
scale = 300e6 / sum(sizes)
total = 0
for i, s in enumerate(sizes):
    s = max(1, int(s * scale))
    d = os.path.join(root, "d%03d" % (i // 2500), "s%02d" % (i // 50 % 50))
    os.makedirs(d, exist_ok=True)
    kind = i % 4
    if kind in (0, 1):
        off = rng.randrange(0, len(text) - min(s, len(text) - 1))
        data = (text[off:] + text)[:s]
    elif kind == 2:
        data = rng.randbytes(s)
    else:
        off = rng.randrange(0, len(records) - min(s, len(records) - 1))
        data = (records[off:] + records)[:s]
    with open(os.path.join(d, "f%05d.%s" % (i, ("txt", "log", "bin", "dat")[kind])), "wb") as f:
        f.write(data)
    total += len(data)
print(f"tree: {n} files, {total / 1e6:.0f} MB", file=sys.stderr)
PY
find "$tree" -type f -exec cat {} + >/dev/null # warm the page cache

cmds=(-n "mar (gzip, default threads)" "$drv write $tree $work/mar.tgz gzip"
      -n "mar (gzip, 1 thread)" "$drv write $tree $work/mar1.tgz gzip 1"
      -n "tar -c | gzip" "tar -C $tree -c . | gzip > $work/gzip6.tgz"
      -n "tar -c | gzip -1" "tar -C $tree -c . | gzip -1 > $work/gzip1.tgz")
if command -v pigz >/dev/null; then
    cmds+=(-n "tar -c | pigz" "tar -C $tree -c . | pigz > $work/pigz6.tgz"
           -n "tar -c | pigz -1" "tar -C $tree -c . | pigz -1 > $work/pigz1.tgz")
else
    echo "pigz not installed: skipping tar | pigz" >&2
fi
load0=$(cut -d' ' -f1 /proc/loadavg)
hyperfine --runs "$runs" --warmup 1 --export-json "$work/h.json" "${cmds[@]}" >&2
echo "load average before/after: $load0 / $(cut -d' ' -f1 /proc/loadavg)"

/usr/bin/python3 - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
files = {"mar (gzip, default threads)": "mar.tgz", "mar (gzip, 1 thread)": "mar1.tgz",
         "tar -c | gzip": "gzip6.tgz", "tar -c | gzip -1": "gzip1.tgz",
         "tar -c | pigz": "pigz6.tgz", "tar -c | pigz -1": "pigz1.tgz"}
res = json.load(open(os.path.join(w, "h.json")))["results"]
print(f"cpus: {os.cpu_count()}")
print(f"{'command':30} {'median':>10} {'cpu (user+sys)':>15} {'size':>10}")
for r in res:
    size = os.path.getsize(os.path.join(w, files[r["command"]]))
    print(f"{r['command']:30} {r['median']*1000:7.0f} ms {(r['user']+r['system'])*1000:12.0f} ms"
          f" {size/1e6:7.1f} MB")
med = {r["command"]: r["median"] for r in res}
m = med["mar (gzip, default threads)"]
for peer in ("tar -c | gzip", "tar -c | gzip -1", "tar -c | pigz", "tar -c | pigz -1"):
    if peer in med:
        print(f"mar / {peer}: {m / med[peer]:.2f}")
PY
