#!/bin/bash
# Fuzz smoke (docs/internals/style.md §9): every harness of fuzz/ under libFuzzer with ASan+UBSan for a short
# while, starting from its seeds. Prints one report line; fails on any crash or leak.
#
# usage: ci/fuzz.sh [SECONDS_PER_HARNESS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DMAR_FUZZ=ON \
    -DMAR_SANITIZE=address,undefined -DMAR_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
harnesses=0 execs=0 crashes=0
for src in fuzz/fuzz-*.c; do
    n=$(basename "$src" .c)
    corpus=$(mktemp -d)
    "build-fuzz/tests/replay-$n" --write-seeds "$corpus" >/dev/null
    log=$(mktemp)
    if ! "build-fuzz/tests/$n" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=1048576 \
        -print_final_stats=1 -artifact_prefix="build-fuzz/$n-" "$corpus" >"$log" 2>&1; then
        crashes=$((crashes + 1))
        tail -40 "$log" >&2
    fi
    e=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    execs=$((execs + ${e:-0}))
    harnesses=$((harnesses + 1))
    rm -rf "$corpus" "$log"
done
echo "fuzz-smoke  $harnesses harnesses  $execs execs  $crashes crashes"
[ "$crashes" -eq 0 ]
