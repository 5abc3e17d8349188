#!/bin/bash
# The binary must not carry a path of the machine it was built on: no absolute path of the source
# or the build directory anywhere in it (strings, debug information included). mar runs on other
# machines than the one that built it, and a compiled-in path would be a default that points
# nowhere there (and names the builder's home).
#
# usage: ci/check-binary-paths.sh [BUILD_DIR]   (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
bin=$dir/mar
[ -x "$bin" ] || { echo "check-binary-paths: no $bin (build it first)" >&2; exit 1; }
paths=("$(pwd)" "$(pwd -P)" "$(cd "$dir" && pwd)" "$(cd "$dir" && pwd -P)")
args=()
for p in "${paths[@]}"; do
    args+=(-e "$p")
done
if found=$(strings -a "$bin" | grep -F "${args[@]}"); then
    echo "$found" | head -20 >&2
    echo "check-binary-paths: $bin contains $(wc -l <<<"$found") strings with a path of this machine's source or build directory" >&2
    exit 1
fi
echo "check-binary-paths: ok: no path of $(pwd) or $(cd "$dir" && pwd) in $bin"
