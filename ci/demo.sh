#!/bin/bash
# The README's first command: builds mar, starts a local registry on loopback with the sample
# multi-architecture images, a private containerd and QEMU binfmt handlers, shows `mar inspect`
# of the samples, then runs the arm64 image through containerd under QEMU with `mar run`, gates
# two images with `mar check`, audits a compose file for Apple Silicon, runs `mar doctor`, and
# ends as a CI that built each architecture on its own runner: `mar index create` of the 8
# per-architecture samples into one index, and a `mar run` of it. Last, `mar build` of a sample
# Dockerfile (testdata/demo) for amd64 and arm64: the plan, the build (arm64 under QEMU), a run
# of each platform, and the pushed index inspected.
# Everything it starts is stopped on exit, and the demo's store is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash ci/deps.sh
bash ci/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

bed=$(mktemp -d /tmp/mar-demo-XXXXXX)
trap 'bash "$root/tests/bed/bed.sh" down "$bed"' EXIT
MAR_FIXTURES_BIN="$root/build/tests/mar-fixtures" bash tests/bed/bed.sh up "$bed" registry fixtures containerd binfmt
# shellcheck disable=SC1091
. "$bed/env"
mar="$root/build/mar"
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
# What mar run would do, then doing it: the arm64 image under QEMU, through containerd.
export CONTAINERD_ADDRESS="$MAR_TEST_CONTAINERD" MAR_STORE="$bed/store"
show run --explain --platform linux/arm64 "$MAR_TEST_REGISTRY/mar/multi:latest"
show run --platform linux/arm64 "$MAR_TEST_REGISTRY/mar/multi:latest" uname -m
show run --platform linux/386 "$MAR_TEST_REGISTRY/mar/multi:latest" uname -m
# A CI gate: amd64-only fails the arm64 requirement (exit 1).
show check --platforms linux/amd64,linux/arm64 "$MAR_TEST_REGISTRY/mar/multi:latest" \
    "$MAR_TEST_REGISTRY/mar/amd64only:latest"
# A project moving to Apple Silicon: what each service's image does there, and what to change.
cat >"$bed/compose.yml" <<YAML
services:
  web:
    image: $MAR_TEST_REGISTRY/mar/app:1.0
  db:
    image: $MAR_TEST_REGISTRY/mar/multi:latest
    platform: linux/amd64
YAML
show -q audit "$bed/compose.yml"
# What is wrong with this machine for foreign images (no Lima or colima VM here).
show doctor
# The last step of a per-architecture CI: one index of the 8 images (blobs mounted, not copied),
# then run from it.
show -q index create "$MAR_TEST_REGISTRY/mar/all:latest" \
    "$MAR_TEST_REGISTRY"/mar/arch-{amd64,arm64,armhf,armel,i386,ppc64el,s390x,mips64el}:latest
show run --platform linux/arm64 "$MAR_TEST_REGISTRY/mar/all:latest" uname -m
# Building: the plan first (which RUN steps run under QEMU), then the two-platform build, each
# platform run, and the result pushed and inspected.
base="$MAR_TEST_REGISTRY/mar/multi:latest"
show build --explain --platform linux/amd64,linux/arm64 --build-arg BASE="$base" "$root/testdata/demo"
show build --platform linux/amd64,linux/arm64 --build-arg BASE="$base" \
    -t "$MAR_TEST_REGISTRY/mar/demo:1" --push "$root/testdata/demo"
show run --platform linux/amd64 "$MAR_TEST_REGISTRY/mar/demo:1"
show run --platform linux/arm64 "$MAR_TEST_REGISTRY/mar/demo:1"
show -q inspect "$MAR_TEST_REGISTRY/mar/demo:1"
