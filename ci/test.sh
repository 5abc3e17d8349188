#!/bin/bash
# Runs every test: what CI runs (.ci/run) and the README's second command. Installs what it
# needs, checks style, builds three times (release with -Werror; ASan+UBSan; TSan), runs the unit
# tests under the sanitizers and valgrind and the threaded integration tests under TSan, then the
# whole suite, unit and integration (the test bed starts and stops as a CTest fixture). Ends with
# CTest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash ci/deps.sh
bash ci/check-style.sh

# Sanitizers: unit tests only (the integration tests drive the release binary).
bash ci/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DMAR_SANITIZE=address,undefined
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest -L unit --output-on-failure --no-tests=error -j"$(nproc)")

# ThreadSanitizer: the unit tests and the integration tests whose mar runs threads.
bash ci/tsan.sh build-tsan

# Fuzz smoke: every harness under libFuzzer (clang, ASan+UBSan) from its seeds.
bash ci/fuzz.sh 20

bash ci/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The release binary carries the hardening of cmake/Hardening.cmake.
bash ci/check-hardening.sh build
# No path of this machine's source or build directory in the binary.
bash ci/check-binary-paths.sh build
# cmake --install: binary, man pages, shell completions.
bash ci/check-install.sh build

# valgrind over the unit tests.
for t in build/tests/test-*; do
    [ -x "$t" ] || continue
    # valgrind runs threads one at a time, so the race test's attacker thread would take minutes
    # to let a few hundred entries through; ASan covers it and ctest runs it natively.
    [ "$(basename "$t")" = test-unpack-race ] && continue
    MAR_TESTDATA="$root/testdata" MAR_SRC="$root" valgrind -q --error-exitcode=99 \
        --leak-check=full --errors-for-leak-kinds=definite --track-fds=no "$t" >/tmp/mar-vg.log 2>&1 ||
        { cat /tmp/mar-vg.log >&2; echo "ci/test.sh: valgrind reported errors in $t" >&2; exit 1; }
done
echo "valgrind: unit tests clean"

# Everything, with the test bed. In CI no test may skip (MAR_CI=1 turns skips into failures).
export MAR_CI=1
cd build
ctest --output-on-failure --no-tests=error
