#!/bin/bash
# The test bed: real services on loopback or private sockets, each with a private data directory
# under BED_DIR, torn down by `down`. Never touches a system-wide instance.
#
#   bed.sh up BED_DIR [registry|registry2|fixtures|auth|tls|containerd|binfmt ...]   (default: all)
#   bed.sh down BED_DIR
#
# `up` writes BED_DIR/env (shell syntax) with the addresses tests use:
#   MAR_TEST_REGISTRY         plain-HTTP distribution registry with the sample images
#   MAR_TEST_TOKEN_REGISTRY   the same content behind bearer-token auth
#   MAR_TEST_BASIC_REGISTRY   the same content behind htpasswd basic auth
#   MAR_TEST_USER / MAR_TEST_PASSWORD / MAR_TEST_REFRESH_TOKEN   credentials those accept
#   MAR_TEST_TOKEN_LOG        the token server's request log (JSON lines)
#   MAR_TEST_TLS_REGISTRY     the same content over HTTPS, certificate from MAR_TEST_TLS_CA
#   MAR_TEST_FIXTURES         summary of the pushed sample images (JSON)
#   MAR_TEST_REGISTRY2        a second, empty plain-HTTP registry (cross-registry copies)
#   MAR_TEST_CONTAINERD       containerd's private gRPC socket
#   MAR_TEST_BINFMT           "1" when QEMU handlers are registered
# Environment: MAR_FIXTURES_BIN (the mar-fixtures program), MAR_CACHE_DIR (busybox cache,
# default ~/.cache/mar).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
CACHE=${MAR_CACHE_DIR:-${HOME:-/root}/.cache/mar}

log() { echo "bed: $*" >&2; }
die() { echo "bed: error: $*" >&2; exit 1; }

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {
    local url=$1
    for _ in $(seq 1 200); do
        if curl -sk -o /dev/null "$url"; then return 0; fi
        sleep 0.05
    done
    return 1
}

setenv() { # name value: append to the env file
    printf '%s=%q\n' "$1" "$2" >>"$BED/env"
}

start_bg() { # name logfile cmd...
    local name=$1 logf=$2
    shift 2
    setsid "$@" >"$logf" 2>&1 < /dev/null &
    echo $! >"$BED/pids/$name.pid"
}

registry_config() { # file addr storage [auth yaml]
    cat >"$1" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $3
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $2
  headers:
    X-Content-Type-Options: [nosniff]
$(case $4 in "  tls:"*) echo "$4" ;; esac)
$(case $4 in "  tls:"*) ;; *) echo "$4" ;; esac)
EOF
}

start_registry() { # name storage [extra yaml under http/auth] [scheme] -> prints host:port
    local name=$1 storage=$2 auth=${3:-} scheme=${4:-http}
    local port
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        registry_config "$BED/$name.yml" "127.0.0.1:$port" "$storage" "$auth"
        start_bg "$name" "$BED/log/$name.log" docker-registry serve "$BED/$name.yml"
        if wait_http "$scheme://127.0.0.1:$port/v2/"; then
            echo "127.0.0.1:$port"
            return 0
        fi
        kill "$(cat "$BED/pids/$name.pid")" 2>/dev/null || true
    done
    cat "$BED/log/$name.log" >&2
    die "registry '$name' did not start"
}

up_registry() {
    mkdir -p "$BED/storage"
    local addr
    addr=$(start_registry registry "$BED/storage")
    setenv MAR_TEST_REGISTRY "$addr"
    log "registry on $addr"
}

up_registry2() {
    mkdir -p "$BED/storage2"
    local addr
    addr=$(start_registry registry2 "$BED/storage2")
    setenv MAR_TEST_REGISTRY2 "$addr"
    log "second registry on $addr"
}

# Debian's static busybox for 8 architectures, from a private apt state (no change to the
# machine's dpkg architectures), cached under $CACHE/busybox/<debian-arch>/busybox.
fetch_busybox() {
    local arches="amd64 arm64 armhf armel i386 ppc64el s390x mips64el"
    local missing=""
    for a in $arches; do
        [ -x "$CACHE/busybox/$a/busybox" ] || missing="$missing $a"
    done
    [ -z "$missing" ] && return 0
    log "downloading busybox-static for:$missing"
    local apt="$CACHE/apt"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/deb"
    local opts=(-q -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
    for a in $arches; do opts+=(-o "APT::Architectures::=$a"); done
    # Unreachable third-party sources and transient index errors are tolerated; the download
    # below is what must succeed.
    apt-get "${opts[@]}" update >"$apt/update.log" 2>&1 || true
    local pkgs=()
    for a in $missing; do pkgs+=("busybox-static:$a"); done
    (cd "$apt/deb" && rm -f ./*.deb && apt-get "${opts[@]}" download "${pkgs[@]}" >"$apt/download.log" 2>&1) ||
        { cat "$apt/update.log" "$apt/download.log" >&2; die "cannot download busybox-static"; }
    for a in $missing; do
        local deb
        deb=$(ls "$apt/deb"/busybox-static_*_"$a".deb)
        rm -rf "$apt/x"
        mkdir -p "$apt/x" "$CACHE/busybox/$a"
        dpkg-deb -x "$deb" "$apt/x"
        install -m 0755 "$apt/x/bin/busybox" "$CACHE/busybox/$a/busybox"
    done
}

up_fixtures() {
    # shellcheck disable=SC1091
    . "$BED/env"
    [ -n "${MAR_FIXTURES_BIN:-}" ] && [ -x "$MAR_FIXTURES_BIN" ] || die "MAR_FIXTURES_BIN is not set"
    fetch_busybox
    "$MAR_FIXTURES_BIN" "$CACHE/busybox" "$MAR_TEST_REGISTRY" "$BED/fixtures.json"
    # Cross-check every fixture with an independent reader: skopeo's raw bytes must hash to the
    # digest the pusher computed.
    local n=0
    while read -r ref digest; do
        local got
        got=$(skopeo inspect --raw --tls-verify=false "docker://$ref" | sha256sum | cut -d' ' -f1)
        [ "sha256:$got" = "$digest" ] || die "skopeo reads $ref as sha256:$got, pushed $digest"
        n=$((n + 1))
    done < <("$PY" -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k,v in d.items():
    if not k.startswith("_"): print(v["ref"], v["digest"])' "$BED/fixtures.json")
    setenv MAR_TEST_FIXTURES "$BED/fixtures.json"
    log "pushed and cross-checked $n sample images"
}

up_auth() {
    # shellcheck disable=SC1091
    . "$BED/env"
    local user=martest pass="MARCANARY-$RANDOM$RANDOM" refresh="MARREFRESH-$RANDOM$RANDOM"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BED/token.key" -out "$BED/token.crt" \
        -days 3650 -subj /CN=mar-test-token >"$BED/log/openssl.log" 2>&1
    local tport
    tport=$(free_port)
    : >"$BED/token.log"
    start_bg tokenserver "$BED/log/tokenserver.log" "$PY" "$HERE/tokenserver.py" "$tport" \
        "$BED/token.key" "$BED/token.crt" "$user" "$pass" "$refresh" "$BED/token.log"
    wait_http "http://127.0.0.1:$tport/token" || { cat "$BED/log/tokenserver.log" >&2; die "token server did not start"; }
    local taddr baddr
    taddr=$(start_registry token-registry "$BED/storage" "auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: mar-test-registry
    issuer: mar-test-issuer
    rootcertbundle: $BED/token.crt")
    htpasswd -Bbn "$user" "$pass" >"$BED/htpasswd" 2>/dev/null
    baddr=$(start_registry basic-registry "$BED/storage" "auth:
  htpasswd:
    realm: mar-basic
    path: $BED/htpasswd")
    setenv MAR_TEST_TOKEN_REGISTRY "$taddr"
    setenv MAR_TEST_BASIC_REGISTRY "$baddr"
    setenv MAR_TEST_TOKEN_SERVER "127.0.0.1:$tport"
    setenv MAR_TEST_TOKEN_LOG "$BED/token.log"
    setenv MAR_TEST_USER "$user"
    setenv MAR_TEST_PASSWORD "$pass"
    setenv MAR_TEST_REFRESH_TOKEN "$refresh"
    log "token-auth registry on $taddr, basic-auth registry on $baddr"
}

# The same content over TLS, with a certificate for 127.0.0.1 from a test CA (which mar only
# trusts when told: certs.d or --insecure-registry).
up_tls() {
    local d="$BED/tls"
    mkdir -p "$d"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 3650 \
            -subj /CN=mar-test-ca
        openssl req -newkey rsa:2048 -nodes -keyout "$d/server.key" -out "$d/server.csr" \
            -subj /CN=127.0.0.1
        printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
            'extendedKeyUsage=serverAuth' >"$d/ext.cnf"
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
            -CAcreateserial -out "$d/server.crt" -days 3650 -extfile "$d/ext.cnf"
    } >"$BED/log/tls-openssl.log" 2>&1 || { cat "$BED/log/tls-openssl.log" >&2; die "cannot make TLS certificates"; }
    local addr
    addr=$(start_registry tls-registry "$BED/storage" "  tls:
    certificate: $d/server.crt
    key: $d/server.key" https)
    setenv MAR_TEST_TLS_REGISTRY "$addr"
    setenv MAR_TEST_TLS_CA "$d/ca.crt"
    log "TLS registry on $addr"
}

up_containerd() {
    local d="$BED/containerd"
    mkdir -p "$d/root" "$d/state"
    cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = "$d/debug.sock"
[metrics]
  address = ""
EOF
    start_bg containerd "$BED/log/containerd.log" containerd --config "$d/config.toml"
    for _ in $(seq 1 200); do
        if ctr --address "$d/containerd.sock" version >/dev/null 2>&1; then
            setenv MAR_TEST_CONTAINERD "$d/containerd.sock"
            log "containerd on $d/containerd.sock"
            return 0
        fi
        sleep 0.05
    done
    cat "$BED/log/containerd.log" >&2
    die "containerd did not start"
}

# QEMU user-mode handlers from Debian's qemu-user-static, registered only where missing; the
# names registered here are recorded so `down` removes exactly those.
up_binfmt() {
    local root=/proc/sys/fs/binfmt_misc
    if [ ! -e "$root/status" ]; then
        mount -t binfmt_misc binfmt_misc "$root" || die "cannot mount binfmt_misc at $root"
        echo "$root" >"$BED/binfmt-mounted"
    fi
    : >"$BED/binfmt-registered"
    for cpu in aarch64 arm s390x ppc64le mips64el; do
        local conf=/usr/lib/binfmt.d/qemu-$cpu.conf
        [ -f "$conf" ] || die "$conf missing: is qemu-user-static installed?"
        local name
        name=$(cut -d: -f2 "$conf")
        if [ -e "$root/$name" ]; then
            continue
        fi
        # One write(2) per registration, as the kernel wants.
        printf '%s' "$(cat "$conf")" >"$root/register" || die "cannot register $name"
        echo "$name" >>"$BED/binfmt-registered"
    done
    setenv MAR_TEST_BINFMT 1
    log "binfmt handlers ready ($(wc -l <"$BED/binfmt-registered") registered here)"
}

cmd_up() {
    BED=$1
    shift
    local parts=("$@")
    [ ${#parts[@]} -eq 0 ] && parts=(registry registry2 fixtures auth tls containerd binfmt)
    mkdir -p "$BED/pids" "$BED/log"
    touch "$BED/env"
    for p in "${parts[@]}"; do
        case $p in
        registry) up_registry ;;
        registry2) up_registry2 ;;
        fixtures) up_fixtures ;;
        auth) up_auth ;;
        tls) up_tls ;;
        containerd) up_containerd ;;
        binfmt) up_binfmt ;;
        *) die "unknown component '$p'" ;;
        esac
    done
}

cmd_down() {
    BED=$1
    [ -d "$BED" ] || return 0
    if [ -d "$BED/pids" ]; then
        for f in "$BED"/pids/*.pid; do
            [ -e "$f" ] || continue
            local pid
            pid=$(cat "$f")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$f"
        done
    fi
    if [ -d "$BED/containerd/root" ]; then
        # Snapshots mounted by containerd and its shims.
        local mounts
        mounts=$(awk -v d="$BED/containerd" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
        for m in $mounts; do
            umount -l "$m" 2>/dev/null || true
        done
    fi
    if [ -f "$BED/binfmt-registered" ]; then
        while read -r name; do
            if [ -e "/proc/sys/fs/binfmt_misc/$name" ]; then
                echo -1 >"/proc/sys/fs/binfmt_misc/$name" || true
            fi
        done <"$BED/binfmt-registered"
        rm -f "$BED/binfmt-registered"
    fi
    if [ -f "$BED/binfmt-mounted" ]; then
        umount "$(cat "$BED/binfmt-mounted")" 2>/dev/null || true
        rm -f "$BED/binfmt-mounted"
    fi
    rm -rf "$BED"
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
down) shift; cmd_down "$@" ;;
*) echo "usage: bed.sh up|down BED_DIR [components]" >&2; exit 2 ;;
esac
