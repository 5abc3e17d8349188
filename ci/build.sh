#!/bin/bash
# ci/build.sh DIR [cmake options...]: configure and build mar and its tests into DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
cmake -S . -B "$dir" -DMAR_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
