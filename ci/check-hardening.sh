#!/bin/bash
# Reads the built mar with readelf and fails unless the hardening of cmake/Hardening.cmake is in
# it: a position-independent executable, full RELRO, a stack protector, fortified libc calls, a
# non-executable stack, and Intel CET marks when the compiler took -fcf-protection.
#
# usage: ci/check-hardening.sh [BUILD_DIR]   (default build; an optimized MAR_HARDEN=ON build)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
bin=$dir/mar
cache=$dir/CMakeCache.txt
fail=0
bad() {
    echo "check-hardening: $bin: $*" >&2
    fail=1
}
cached() { # the value of a CMake cache variable, or nothing
    sed -n "s/^$1:[A-Z]*=//p" "$cache"
}

[ -x "$bin" ] || { echo "check-hardening: no $bin (build it first)" >&2; exit 1; }
header=$(readelf -hW "$bin")
dynamic=$(readelf -dW "$bin")
segments=$(readelf -lW "$bin")
dynsyms=$(readelf --dyn-syms -W "$bin")

# PIE: an ET_DYN executable marked DF_1_PIE (a shared library is ET_DYN too, without the flag).
grep -qE '^ *Type: +DYN' <<<"$header" || bad "not position-independent (ELF type is not DYN)"
grep -qE '\(FLAGS_1\).*\bPIE\b' <<<"$dynamic" || bad "no DF_1_PIE flag"
# Full RELRO: the GNU_RELRO segment, and every symbol bound at start-up (BIND_NOW or DF_1_NOW).
grep -qE '^ *GNU_RELRO ' <<<"$segments" || bad "no GNU_RELRO segment (-z relro)"
grep -qE '\(BIND_NOW\)|\(FLAGS\).*\bBIND_NOW\b|\(FLAGS_1\).*\bNOW\b' <<<"$dynamic" ||
    bad "no BIND_NOW (-z now): relocations are resolved lazily"
# Stack protector and _FORTIFY_SOURCE: their run-time checks are libc's __*_chk functions.
grep -qE '\b__stack_chk_fail\b' <<<"$dynsyms" || bad "no __stack_chk_fail reference (-fstack-protector-strong)"
fortified=$(grep -oE '\b__[a-z0-9_]+_chk\b' <<<"$dynsyms" | grep -vx '__stack_chk_fail' | sort -u || true)
[ -n "$fortified" ] || bad "no fortified calls (__*_chk; -D_FORTIFY_SOURCE with optimization)"
# The stack segment must not be executable.
stack=$(grep -E '^ *GNU_STACK ' <<<"$segments" || true)
if [ -z "$stack" ]; then
    bad "no GNU_STACK segment: the kernel would make the stack executable"
elif grep -qE ' RWE ' <<<"$stack"; then
    bad "executable stack"
fi

# Intel CET: -fcf-protection marks each object with the IBT and SHSTK properties, and the linker
# keeps a property only when every input has it. Where the C library's start files lack it
# (Debian 12's glibc is built without CET) no binary can carry it, so mar's own objects are
# checked instead.
cet=none
if [ "$(cached MAR_HAVE_CF_PROTECTION)" = 1 ]; then
    cc=$(cached CMAKE_C_COMPILER)
    startfiles_cet=1
    for f in Scrt1.o crti.o crtn.o; do
        p=$("$cc" -print-file-name=$f)
        readelf -nW "$p" 2>/dev/null | grep -q 'IBT, SHSTK' || startfiles_cet=0
    done
    if [ $startfiles_cet = 1 ]; then
        readelf -nW "$bin" | grep -q 'x86 feature: IBT, SHSTK' || bad "no IBT/SHSTK property note (-fcf-protection)"
        cet=binary
    else
        mapfile -t objs < <(find "$dir" -path '*/CMakeFiles/mar*.dir/*.o' ! -path '*mar_testsupport*' ! -path '*mar-fixtures*')
        [ ${#objs[@]} -gt 0 ] || bad "no object files of mar under $dir"
        missing=0
        for o in "${objs[@]}"; do
            if ! readelf -nW "$o" | grep -q 'x86 feature: IBT, SHSTK'; then
                echo "check-hardening: $o: no IBT/SHSTK property note" >&2
                missing=$((missing + 1))
            fi
        done
        [ $missing -eq 0 ] || bad "$missing of mar's objects lack IBT/SHSTK (-fcf-protection)"
        cet="objects (${#objs[@]}; the C library's start files lack the property)"
    fi
fi

if [ $fail -eq 0 ]; then
    echo "check-hardening: ok: PIE, full RELRO, stack protector, $(wc -w <<<"$fortified") fortified functions, non-executable stack, CET marks: $cet"
fi
exit $fail
