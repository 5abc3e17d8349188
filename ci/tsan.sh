#!/bin/bash
# ThreadSanitizer (docs/architecture.md "Threads and locks"): a TSan build, its unit tests, and the
# integration tests whose mar processes run threads: it-pull and it-pull-concurrency (the pull's
# download loop, committer thread and unpack workers; concurrent pulls and kills), it-inspect-deep
# (the deep-scan threads), it-run (run I/O and its wait thread) and it-build-signal (a build's
# stage workers: two platforms and two stages of one platform, stopped by a signal, by a
# failure, and left to finish). Every process writes its
# reports under one directory; any report fails the run, even from a mar whose exit status a test
# did not look at. There are no suppressions: the libraries are not instrumented, so what TSan
# checks is mar's own code and the library calls it intercepts, and that must be clean.
#
# usage: ci/tsan.sh [BUILD_DIR]   (default build-tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-tsan}
bash ci/build.sh "$dir" -DCMAKE_BUILD_TYPE=Debug -DMAR_SANITIZE=thread >/dev/null

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
export TSAN_OPTIONS="log_path=$logs/tsan second_deadlock_stack=1"
export MAR_CI=1
# test-unpack-corpus is single-threaded and forks per case (375 runs), which TSan makes about five
# times slower; ASan covers it.
(cd "$dir" && ctest -L unit -E '^test-unpack-corpus$' --output-on-failure --no-tests=error -j"$(nproc)")
# A few kill rounds are enough to cross the threads' shutdown paths; the soak runs natively.
(cd "$dir" && MAR_TEST_KILLS=4 ctest -R '^(it-pull|it-pull-concurrency|it-inspect-deep|it-run|it-build-signal)$' \
    --output-on-failure --no-tests=error)

if compgen -G "$logs/tsan.*" >/dev/null; then
    for f in "$logs"/tsan.*; do
        cat "$f" >&2
    done
    echo "ci/tsan.sh: ThreadSanitizer reported $(cat "$logs"/tsan.* | grep -c '^WARNING: ThreadSanitizer') problems" >&2
    exit 1
fi
echo "tsan: unit tests and the threaded integration tests clean"
