#!/bin/bash
# `cmake --install` into a scratch prefix: the binary, a man page for every Markdown man page of
# docs/ (and its further names), and the bash, zsh and fish completions, each accepted by its shell
# (`-n`; zsh and fish when installed) and the bash one completing the verbs for real.
#
# usage: ci/check-install.sh [BUILD_DIR]   (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$dir" --prefix "$prefix" >/dev/null
fail=0
need() {
    [ -s "$prefix/$1" ] || { echo "check-install: $1 was not installed" >&2; fail=1; }
}

need bin/mar
"$prefix/bin/mar" --version >/dev/null || { echo "check-install: the installed mar does not run" >&2; fail=1; }
pages=0
for md in docs/*.1.md; do
    for name in $(head -1 "$md" | grep -oE '[a-z0-9-]+\(1\)' | sed 's/(1)$//'); do
        need "share/man/man1/$name.1"
        pages=$((pages + 1))
        if command -v man >/dev/null && [ -s "$prefix/share/man/man1/$name.1" ]; then
            # Rendered from inside the tree, so the .so pages of further names resolve. (Wide
            # tables make troff warn about line adjustment; those are not failures.)
            (cd "$prefix/share/man" && MANWIDTH=80 man -l "man1/$name.1" 2>/dev/null | grep -q '^NAME') ||
                { echo "check-install: man cannot render $name.1" >&2; fail=1; }
        fi
    done
done
bash_c=share/bash-completion/completions/mar
zsh_c=share/zsh/site-functions/_mar
fish_c=share/fish/vendor_completions.d/mar.fish
need $bash_c
need $zsh_c
need $fish_c
shells=bash
bash -n "$prefix/$bash_c" || { echo "check-install: bash rejects $bash_c" >&2; fail=1; }
got=$(bash -c 'source "$1"; COMP_WORDS=(mar ""); COMP_CWORD=1; _mar; echo "${COMPREPLY[*]}"' sh "$prefix/$bash_c")
want=$("$prefix/bin/mar" --help | sed -n '/^Verbs:/,/^$/p' | awk 'NF > 1 {print $1}' | uniq | tr '\n' ' ' | sed 's/ $//')
[ "$got" = "$want" ] || { echo "check-install: bash completes 'mar ' with '$got', mar --help lists '$want'" >&2; fail=1; }
if command -v zsh >/dev/null; then
    zsh -n "$prefix/$zsh_c" || { echo "check-install: zsh rejects $zsh_c" >&2; fail=1; }
    shells="$shells zsh"
fi
if command -v fish >/dev/null; then
    fish -n "$prefix/$fish_c" || { echo "check-install: fish rejects $fish_c" >&2; fail=1; }
    shells="$shells fish"
fi
[ $fail -eq 0 ] && echo "check-install: ok: bin/mar, $pages man pages, completions checked by $shells"
exit $fail
