#!/bin/bash
# The README's first command: builds mar, starts a local registry on loopback with the sample
# multi-architecture images (and QEMU binfmt handlers, so emulation shows), and ends with
# `mar inspect` of the 8-platform sample. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash ci/deps.sh
bash ci/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

bed=$(mktemp -d /tmp/mar-demo-XXXXXX)
trap 'bash "$root/tests/bed/bed.sh" down "$bed"' EXIT
MAR_FIXTURES_BIN="$root/build/tests/mar-fixtures" bash tests/bed/bed.sh up "$bed" registry fixtures binfmt
# shellcheck disable=SC1091
. "$bed/env"
mar="$root/build/src/mar"
show() {
    echo
    echo "\$ mar $*"
    "$mar" "$@" || true
}

# A mislabeled image: the arm64 entry's config says amd64.
show -q inspect "$MAR_TEST_REGISTRY/mar/confmismatch:latest"
# The 8-platform sample seen from an Apple Silicon laptop (colima, vz + Rosetta).
show -q inspect --target apple-silicon "$MAR_TEST_REGISTRY/mar/multi:latest"
# The 8-platform sample on this host.
show inspect "$MAR_TEST_REGISTRY/mar/multi:latest"
