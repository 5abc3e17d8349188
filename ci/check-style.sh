#!/bin/bash
# Style gates (docs/internals/style.md §9): formatting, banned functions, the include graph, and public headers
# that compile on their own.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

# The module folders, in dependency order (docs/internals/layering.md).
modules=(util oci registry binfmt vm builder cli)

mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find "${modules[@]}" tests fuzz -name '*.[ch]')
mapfile -t src < <(for m in "${modules[@]}"; do ls "$m"/*.[ch]; done)

# 1. Formatting: the committed .clang-format, no drift.
if ! clang-format --dry-run -Werror "${files[@]}" 2>/tmp/mar-format.log; then
    head -40 /tmp/mar-format.log >&2
    echo "check-style: clang-format drift (run: clang-format -i \$(git ls-files '*.[ch]'))" >&2
    fail=1
fi

# 2. Banned functions, everywhere in the modules.
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok|system|popen|archive_write_disk_[a-z_]+|archive_read_extract|EVP_get_digestbyname)\s*\('
if grep -nE "$banned" "${src[@]}"; then
    echo "check-style: banned function used (docs/internals/style.md §9)" >&2
    fail=1
fi
if grep -n 'CURLOPT_UNRESTRICTED_AUTH' "${src[@]}"; then
    echo "check-style: CURLOPT_UNRESTRICTED_AUTH is banned" >&2
    fail=1
fi
# In oci/: no path-based filesystem calls and no NSS lookups (docs/internals/unpack-security.md §2).
oci_banned='\b(open|mkdir|chmod|chown|lchown|utime|utimes|realpath|chdir|chroot|getpwnam|getgrnam)\s*\('
if grep -nE "$oci_banned" oci/*.c; then
    echo "check-style: path-based call in oci/ (use the *at() helpers)" >&2
    fail=1
fi

# 3. Include graph: util <- oci <- registry/binfmt/vm <- builder <- cli (docs/internals/style.md §1).
allowed() { # folder -> folders it may include
    case $1 in
    util) echo "util" ;;
    oci) echo "util oci" ;;
    registry) echo "util oci registry" ;;
    binfmt) echo "util oci binfmt" ;;
    vm) echo "util oci vm" ;;
    builder) echo "util oci registry binfmt vm builder" ;;
    cli) echo "util oci registry binfmt vm builder cli" ;;
    esac
}
for dir in "${modules[@]}"; do
    ok=$(allowed $dir)
    while IFS= read -r line; do
        inc=$(sed -E 's/.*#include "([a-z]+)\/.*/\1/' <<<"$line")
        if ! grep -qw "$inc" <<<"$ok"; then
            echo "check-style: $line: $dir/ may not include $inc/" >&2
            fail=1
        fi
    done < <(grep -Hn '#include "[a-z]*/' $dir/*.[ch] || true)
    # Headers of one folder other than its public one are internal: only that folder uses them.
    for other in "${modules[@]}"; do
        [ "$other" = "$dir" ] && continue
        if grep -Hn "#include \"$other/.*-internal.h\"" $dir/*.[ch]; then
            echo "check-style: $dir/ includes an internal header of $other/" >&2
            fail=1
        fi
    done
done

# 4. Every public header compiles on its own under strict flags.
cflags=$(pkg-config --cflags jansson libcurl)
for m in "${modules[@]}"; do
    h=$m/$m.h
    if ! echo "#include \"$h\"" | gcc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror \
        -fsyntax-only -I. $cflags -x c - 2>/tmp/mar-header.log; then
        cat /tmp/mar-header.log >&2
        echo "check-style: $h does not compile on its own" >&2
        fail=1
    fi
done

# 5. Layout: the modules sit at the top level beside CMakeLists.txt, each with its own
# CMakeLists.txt and one public header named after the folder (docs/internals/layering.md).
if [ -e src ]; then
    echo "check-style: src/ exists; modules live at the top level" >&2
    fail=1
fi
for m in "${modules[@]}"; do
    for f in "$m/CMakeLists.txt" "$m/$m.h"; do
        if [ ! -f "$f" ]; then
            echo "check-style: $f is missing" >&2
            fail=1
        fi
    done
    for h in "$m"/*.h; do
        case $h in "$m/$m.h" | *-internal.h) ;; *)
            echo "check-style: $h: a module has one public header ($m/$m.h); others end in -internal.h" >&2
            fail=1
            ;;
        esac
    done
done

# 6. File size budget: split before 1,500 lines (docs/internals/style.md §1).
for f in "${src[@]}"; do
    n=$(wc -l <"$f")
    if [ "$n" -gt 1500 ]; then
        echo "check-style: $f has $n lines (split before 1500)" >&2
        fail=1
    fi
done

# 7. Every design document a comment or a page cites is in the repository.
if ! python3 ci/check-doc-refs.py; then
    echo "check-style: a comment or page cites a document that is not in the repository" >&2
    fail=1
fi

[ $fail -eq 0 ] && echo "check-style: ok (${#files[@]} files)"
exit $fail
