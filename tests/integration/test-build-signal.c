/* Interrupting mar build (docs/mar-build.1.md): SIGINT or SIGTERM while a RUN step runs kills
 * the step's container at once — its PID 1 would ignore a SIGINT it has no handler for, and the
 * step would run on — and ends the build with exit 1, "interrupted by signal N", nothing tagged,
 * nothing left in containerd's namespace or the store's work area; a later `mar gc` leaves the
 * store consistent. testdata/build/slow's first RUN prints "started" and sleeps 20 s, its second
 * must never run. With two platforms built in parallel, the signal, or the first platform to
 * fail (testdata/build/fail-one), stops both; so it does for two stages of one platform built in
 * parallel (testdata/build/slow-stages, testdata/build/fail-stage). */
#include "itest.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static char store[256];

static char *read_text(const char *path)
{
    itest_run r;
    const char *cat[] = {"cat", path, NULL};
    itest_runv(&r, NULL, cat);
    char *s = mar_xstrdup(r.out.data);
    itest_run_release(&r);
    return s;
}

static void interrupt_during_run(int sig, const char *corpus, const char *platforms,
                                 const char *tag)
{
    _cleanup_free_ char *dir = mar_xasprintf("%s/testdata/build/%s", getenv("MAR_SRC"), corpus);
    _cleanup_free_ char *base = mar_xasprintf("BASE=%s", itest_fixture_ref("multi"));
    _cleanup_free_ char *out = mar_xasprintf("%s/out-%d", itest_tmpdir(), sig);
    _cleanup_free_ char *err = mar_xasprintf("%s/err-%d", itest_tmpdir(), sig);
    const char *args[] = {"--store",     store, "build", "--no-cache", "--platform", platforms,
                          "--build-arg", base,  "-t",    tag,          dir,          NULL};
    const char *env[] = {itest_ctd_env(), NULL};
    pid_t pid = itest_mar_spawn(env, out, err, args);
    assert_true(pid > 0);
    /* Wait for the step's own output: the container runs. The bound only ends a hung test. */
    bool started = false;
    for (int i = 0; i < 1200 && !started; i++) {
        _cleanup_free_ char *e = read_text(err);
        started = strstr(e, "] started") != NULL;
        if (!started) {
            usleep(100 * 1000);
        }
    }
    assert_true(started);
    assert_int_equal(kill(pid, sig), 0);
    int status = itest_wait(pid);
    _cleanup_free_ char *e = read_text(err);
    if (status != 1 || !strstr(e, "interrupted by signal")) {
        fail_msg("mar build after signal %d: status %d\n%s", sig, status, e);
    }
    assert_null(strstr(e, "] never"));
    itest_ctd_nothing_left(store);
    /* Nothing tagged. */
    itest_run r;
    itest_mar(&r, NULL, "images", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out.data, tag));
    itest_run_release(&r);
}

static void test_sigint(void **state)
{
    (void)state;
    interrupt_during_run(SIGINT, "slow", "linux/amd64", "sig-int:1");
}

static void test_sigterm(void **state)
{
    (void)state;
    interrupt_during_run(SIGTERM, "slow", "linux/amd64", "sig-term:1");
}

/* Platforms built in parallel: one signal stops them all, every running step killed. */
static void test_sigint_platforms(void **state)
{
    (void)state;
    interrupt_during_run(SIGINT, "slow", "linux/amd64,linux/arm64", "sig-par:1");
}

/* The first platform to fail stops the others: amd64's step is killed in its sleep, so its
 * second RUN never runs, and nothing is tagged. */
static void test_failure_stops_platforms(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/testdata/build/fail-one", getenv("MAR_SRC"));
    _cleanup_free_ char *base = mar_xasprintf("BASE=%s", itest_fixture_ref("multi"));
    const char *env[] = {itest_ctd_env(), NULL};
    itest_run r;
    itest_mar(&r, env, "--store", store, "build", "--no-cache", "--platform",
              "linux/amd64,linux/arm64", "--build-arg", base, "-t", "fail-par:1", dir, NULL);
    if (r.status != 1 || !strstr(r.err.data, "] failing") || strstr(r.err.data, "] never")) {
        fail_msg("mar build with a failing platform: status %d\n%s", r.status, r.err.data);
    }
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
    itest_mar(&r, NULL, "images", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out.data, "fail-par"));
    itest_run_release(&r);
}

/* Two stages of one platform built at the same time: one signal kills both running steps. */
static void test_sigint_stages(void **state)
{
    (void)state;
    interrupt_during_run(SIGINT, "slow-stages", "linux/amd64", "sig-stages:1");
}

/* The first stage to fail stops the others of its platform: slow's step is killed in its sleep
 * (or never starts), its second RUN never runs, the build ends with bad's error and nothing is
 * tagged. One stage after another, slow would have run to its end first. */
static void test_failure_stops_stages(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/testdata/build/fail-stage", getenv("MAR_SRC"));
    _cleanup_free_ char *base = mar_xasprintf("BASE=%s", itest_fixture_ref("multi"));
    const char *env[] = {itest_ctd_env(), NULL};
    itest_run r;
    itest_mar(&r, env, "--store", store, "build", "--no-cache", "--platform", "linux/amd64",
              "--build-arg", base, "-t", "fail-stages:1", dir, NULL);
    if (r.status != 1 || !strstr(r.err.data, "] failing") || strstr(r.err.data, "] never") ||
        !strstr(r.err.data, "stage bad: Dockerfile:9: RUN echo failing; exit 3: exit status 3")) {
        fail_msg("mar build with a failing stage: status %d\n%s", r.status, r.err.data);
    }
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
    itest_mar(&r, NULL, "images", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out.data, "fail-stages"));
    itest_run_release(&r);
}

/* The same threads when nothing stops them (for ci/tsan.sh, which runs this test): a shared
 * $BUILDPLATFORM stage, two independent stages, one built on another with a COPY --from, for
 * two platforms at once; everything built, the result tagged. */
static void test_stages_complete(void **state)
{
    (void)state;
    _cleanup_free_ char *df = itest_write(
            "stages-ok/Dockerfile",
            "ARG BASE\nFROM --platform=$BUILDPLATFORM ${BASE} AS tool\nRUN echo tool > /tool\n"
            "FROM ${BASE} AS one\nRUN echo one > /one\n"
            "FROM ${BASE} AS two\nCOPY --from=tool /tool /tool\nRUN echo two > /two\n"
            "FROM one\nCOPY --from=two /two /tool /\n",
            0644);
    _cleanup_free_ char *dir = mar_xstrdup(df);
    *strrchr(dir, '/') = '\0';
    _cleanup_free_ char *base = mar_xasprintf("BASE=%s", itest_fixture_ref("multi"));
    const char *env[] = {itest_ctd_env(), NULL};
    itest_run r;
    itest_mar(&r, env, "--store", store, "build", "--no-cache", "--platform",
              "linux/amd64,linux/arm64", "--build-arg", base, "-t", "stages-ok:1", dir, NULL);
    if (r.status != 0 || !strstr(r.err.data, "[linux/arm64 tool] shared with linux/amd64")) {
        fail_msg("mar build of parallel stages: status %d\n%s", r.status, r.err.data);
    }
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
    itest_mar(&r, NULL, "images", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out.data, "stages-ok"));
    itest_run_release(&r);
}

/* What the interrupted builds committed is reclaimed by gc, and the store checks clean. */
static void test_gc_after(void **state)
{
    (void)state;
    itest_run r;
    itest_mar(&r, NULL, "gc", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_fsck f;
    itest_store_fsck(store, &f);
    assert_int_equal(f.bad_blobs, 0);
    assert_int_equal(f.incomplete_layers, 0);
    assert_int_equal(f.parts, 0);
    assert_int_equal(f.ingests, 0);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_CONTAINERD",
                                NULL};
    itest_require(need);
    itest_require_root("mar build");
    snprintf(store, sizeof(store), "%s/store", itest_tmpdir());
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sigint),           cmocka_unit_test(test_sigterm),
            cmocka_unit_test(test_sigint_platforms), cmocka_unit_test(test_failure_stops_platforms),
            cmocka_unit_test(test_sigint_stages),    cmocka_unit_test(test_failure_stops_stages),
            cmocka_unit_test(test_stages_complete),  cmocka_unit_test(test_gc_after),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
