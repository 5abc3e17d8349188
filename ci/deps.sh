#!/bin/bash
# Installs every Debian package mar's build, tests, demo and benchmarks need. Idempotent; only
# Debian's archive is needed (other configured sources may be unreachable).
set -euo pipefail

PKGS=(
    # build
    gcc make cmake pkg-config clang-format clang libclang-rt-14-dev
    libcurl4-openssl-dev libjansson-dev libarchive-dev libzstd-dev libisal-dev libprotobuf-c-dev protobuf-c-compiler zlib1g-dev libssl-dev
    libyaml-dev libcmocka-dev
    # man pages (rendered at build time); shells the completions are checked with
    lowdown zsh fish
    # test bed and peers
    docker-registry containerd runc qemu-user-static skopeo umoci buildah chromium
    apache2-utils openssl python3 curl ca-certificates valgrind bzip2 xz-utils
    # benchmarks
    hyperfine
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "ci/deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    # A third-party source without network makes `update` fail; Debian's indexes still land.
    apt-get update -q >/tmp/mar-apt-update.log 2>&1 || true
    if apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/mar-apt-install.log 2>&1; then
        exit 0
    fi
    echo "ci/deps.sh: apt-get install failed (attempt $attempt)" >&2
    sleep $((attempt * 5))
done
tail -30 /tmp/mar-apt-update.log /tmp/mar-apt-install.log >&2
exit 1
