/* Helpers for integration tests: run the real mar binary and read the test bed's addresses. */
#ifndef MAR_TEST_ITEST_H
#define MAR_TEST_ITEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "binfmt/binfmt.h"

#include <sys/types.h>

typedef struct itest_run {
    int status;
    mar_buf out;
    mar_buf err;
} itest_run;

/* Runs `$MAR_BIN args...` (NULL-terminated) with extra environment entries ("K=V", may be NULL)
 * and a 120 s deadline. */
void itest_mar(itest_run *r, const char *const *env, ...);
/* Runs any program. */
void itest_runv(itest_run *r, const char *const *env, const char *const *argv);
void itest_run_release(itest_run *r);

/* A variable from $MAR_BED/env, or NULL. */
const char *itest_bed(const char *name);
/* Exits 77 (skip) naming what is missing, unless every listed bed variable exists. In CI
 * (MAR_CI=1) a missing part fails instead. */
void itest_require(const char *const *names);
/* Exits 77 (skip) unless running as root, saying what needs it; in CI (MAR_CI=1) fails instead. */
void itest_require_root(const char *why);
/* "CONTAINERD_ADDRESS=<the bed's socket>", for an environment list of itest_runv. */
const char *itest_ctd_env(void);
/* Fails the test unless nothing of mar's is left behind: no container and no task in the bed's
 * containerd namespace `mar`, and, when store is not NULL, nothing under STORE/containers. */
void itest_ctd_nothing_left(const char *store);
/* The fixtures summary (borrowed). */
json_t *itest_fixtures(void);
/* Shortcut: fixtures[name].ref */
const char *itest_fixture_ref(const char *name);
/* Where the bed caches the busybox binaries: $MAR_CACHE_DIR, else ~/.cache/mar (as bed.sh). */
const char *itest_cache_dir(void);
/* The bed's cached static busybox of a Debian architecture (amd64, i386, arm64, armhf, ...). */
const char *itest_busybox(const char *debarch);
/* True when this host executes that busybox, natively or through a binfmt_misc handler: an
 * observation independent of mar, for tests whose answer depends on the kernel. */
bool itest_host_runs(const char *debarch);
/* A scratch directory unique to this test program (created). */
const char *itest_tmpdir(void);
/* Writes a file under the scratch dir and returns its path (static storage per call site). */
char *itest_write(const char *name, const char *content, unsigned mode);
/* True when haystack contains needle. */
bool itest_contains(const char *haystack, const char *needle);

/* What a store holds, checked the way docs/internals/unpack-security.md §7 defines fsck. */
typedef struct itest_fsck {
    size_t blobs, bad_blobs; /* bad: does not hash to its name, or not 0444 */
    size_t layers, incomplete_layers;
    size_t parts, ingests;
    bool mode_ok; /* the store directory is 0700 */
} itest_fsck;
void itest_store_fsck(const char *store, itest_fsck *ret);

/* Parses JSON or fails the test. Returns: new reference. */
json_t *itest_json(const char *text);
/* Starts `$MAR_BIN args...` (NULL-terminated) in the background, output to files. */
pid_t itest_mar_spawn(const char *const *env, const char *out, const char *err,
                      const char *const *args);
/* Waits for a child: its exit status, or 128 + the signal. */
int itest_wait(pid_t pid);
/* A loopback TCP port that was free a moment ago. */
int itest_free_port(void);
/* Starts tests/bed/faultproxy.py on port (its redirect target on redirect_port) in front of
 * upstream, with FAULTPROXY_TARGET_AUTH when target_auth is set, and waits until it answers.
 * Returns: its pid, or -1 when it did not start. */
pid_t itest_faultproxy_start(int port, int redirect_port, const char *upstream,
                             const char *target_auth);

#define assert_contains(h, n)                                                                      \
    do {                                                                                           \
        if (!itest_contains((h), (n))) {                                                           \
            print_error("expected to find '%s' in:\n%s\n", (n), (h));                              \
            fail();                                                                                \
        }                                                                                          \
    } while (0)
#define assert_not_contains(h, n)                                                                  \
    do {                                                                                           \
        if (itest_contains((h), (n))) {                                                            \
            print_error("did not expect '%s' in:\n%s\n", (n), (h));                                \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#endif
