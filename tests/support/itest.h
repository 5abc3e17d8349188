/* Helpers for integration tests: run the real mar binary and read the test bed's addresses. */
#ifndef MAR_TEST_ITEST_H
#define MAR_TEST_ITEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "binfmt/binfmt.h"

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
/* The fixtures summary (borrowed). */
json_t *itest_fixtures(void);
/* Shortcut: fixtures[name].ref */
const char *itest_fixture_ref(const char *name);
/* Where the bed caches the busybox binaries: $MAR_CACHE_DIR, else ~/.cache/mar (as bed.sh). */
const char *itest_cache_dir(void);
/* A scratch directory unique to this test program (created). */
const char *itest_tmpdir(void);
/* Writes a file under the scratch dir and returns its path (static storage per call site). */
char *itest_write(const char *name, const char *content, unsigned mode);
/* True when haystack contains needle. */
bool itest_contains(const char *haystack, const char *needle);

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
