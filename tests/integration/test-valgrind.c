/* The real mar binary under valgrind against the test bed: no invalid access, no uninitialised
 * use, no definite leak, on success and on failure paths alike. */
#include "itest.h"

#include <string.h>

static void run_vg(int want, const char *const *env, const char *a1, const char *a2, const char *a3,
                   const char *a4)
{
    itest_run r;
    const char *argv[] = {"valgrind",
                          "-q",
                          "--error-exitcode=99",
                          "--leak-check=full",
                          "--errors-for-leak-kinds=definite",
                          "--track-fds=no",
                          getenv("MAR_BIN"),
                          a1,
                          a2,
                          a3,
                          a4,
                          NULL};
    itest_runv(&r, env, argv);
    if (r.status != want) {
        print_error("valgrind mar %s %s %s %s: status %d, want %d\n%s", a1, a2 ? a2 : "",
                    a3 ? a3 : "", a4 ? a4 : "", r.status, want, r.err.data);
        fail();
    }
    itest_run_release(&r);
}

static void test_inspect_paths(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_TOKEN_REGISTRY", NULL};
    itest_require(need);
    itest_run probe;
    const char *vv[] = {"valgrind", "--version", NULL};
    itest_runv(&probe, NULL, vv);
    if (probe.status != 0) {
        fprintf(stderr, "valgrind is not installed\n");
        exit(getenv("MAR_CI") ? 1 : 77);
    }
    itest_run_release(&probe);
    const char *multi = itest_fixture_ref("multi");
    run_vg(0, NULL, "inspect", multi, NULL, NULL);
    run_vg(0, NULL, "inspect", "--json", multi, NULL);
    run_vg(0, NULL, "inspect", "--raw", itest_fixture_ref("dockerlist"), NULL);
    run_vg(0, NULL, "inspect", "--target", "apple-silicon", itest_fixture_ref("confmismatch"));
    run_vg(0, NULL, "inspect", "--deep", itest_fixture_ref("whiteout"), NULL);
    run_vg(0, NULL, "inspect", "--deep", "--json", itest_fixture_ref("mislabeled"));
    run_vg(3, NULL, "inspect", "--platform", "linux/riscv64", multi);
    _cleanup_free_ char *missing = mar_xasprintf("%s/mar/nope", itest_bed("MAR_TEST_REGISTRY"));
    run_vg(3, NULL, "inspect", missing, NULL, NULL);
    run_vg(2, NULL, "inspect", "Bad/Ref", NULL, NULL);
    run_vg(2, NULL, "frobnicate", NULL, NULL, NULL);
    _cleanup_free_ char *tok = mar_xasprintf("%s/mar/multi", itest_bed("MAR_TEST_TOKEN_REGISTRY"));
    _cleanup_free_ char *cfg = mar_xasprintf("DOCKER_CONFIG=%s/none", itest_tmpdir());
    const char *env[] = {cfg, NULL};
    run_vg(4, env, "--debug", "inspect", tok, NULL);
    const char *fast[] = {"MAR_RETRY_BASE_MS=1", NULL};
    run_vg(5, fast, "inspect", "127.0.0.1:1/x", NULL, NULL);
}

static void run_vga(int want, const char *const *args)
{
    const char *argv[32] = {"valgrind",
                            "-q",
                            "--error-exitcode=99",
                            "--leak-check=full",
                            "--errors-for-leak-kinds=definite",
                            "--track-fds=no",
                            getenv("MAR_BIN")};
    size_t n = 7;
    for (size_t i = 0; args[i] && n < 31; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_run r;
    itest_runv(&r, NULL, argv);
    if (r.status != want) {
        print_error("valgrind mar %s %s: status %d, want %d\n%s", args[0], args[1] ? args[1] : "",
                    r.status, want, r.err.data);
        fail();
    }
    itest_run_release(&r);
}

/* Pull (threads: unpack workers and the committer), unpack, images, rmi, gc. */
static void test_store_paths(void **state)
{
    (void)state;
    _cleanup_free_ char *store = mar_xasprintf("%s/vgstore", itest_tmpdir());
    _cleanup_free_ char *dest = mar_xasprintf("%s/vgflat", itest_tmpdir());
    const char *w = itest_fixture_ref("whiteout");
    const char *pull[] = {"pull", "--store", store, "--json", w, NULL};
    run_vga(0, pull);
    const char *pull2[] = {
            "pull", "--store", store, "-p", "linux/arm64,linux/s390x", itest_fixture_ref("multi"),
            NULL};
    run_vga(0, pull2);
    const char *unpack[] = {"unpack", "--store", store, itest_fixture_ref("zstd"), dest, NULL};
    run_vga(0, unpack);
    const char *images[] = {"images", "--store", store, "--json", NULL};
    run_vga(0, images);
    const char *nope[] = {
            "pull", "--store", store, "-p", "linux/riscv64", itest_fixture_ref("multi"), NULL};
    run_vga(3, nope);
    const char *rmi[] = {"rmi", "--store", store, w, NULL};
    run_vga(0, rmi);
    const char *gc[] = {"gc", "--verify", "--store", store, NULL};
    run_vga(0, gc);
    /* mar run: the wait thread, FIFOs, gRPC over the unix socket. */
    if (itest_bed("MAR_TEST_CONTAINERD") && itest_bed("MAR_TEST_BINFMT")) {
        setenv("CONTAINERD_ADDRESS", itest_bed("MAR_TEST_CONTAINERD"), 1);
        const char *run[] = {"run",
                             "-q",
                             "--store",
                             store,
                             "-p",
                             "linux/arm64",
                             itest_fixture_ref("multi"),
                             "sh",
                             "-c",
                             "echo hi; exit 3",
                             NULL};
        run_vga(3, run);
        /* The refusal path, on a named machine: what this host runs natively is its kernel's
         * business (and under valgrind a probe of another architecture fails). */
        const char *explain[] = {
                "run",         "--explain", "--json",      "--target",
                "linux/arm64", "-p",        "linux/amd64", itest_fixture_ref("multi"),
                NULL};
        run_vga(7, explain);
    }
}

/* doctor over every kind of finding: the sample VM configurations (a broken one included), the
 * real binfmt_misc with probes, the bed's containerd and a store. */
static void test_doctor(void **state)
{
    (void)state;
    _cleanup_free_ char *le =
            mar_xasprintf("LIMA_HOME=%s/testdata/vm/lima-home", getenv("MAR_SRC"));
    _cleanup_free_ char *ce =
            mar_xasprintf("COLIMA_HOME=%s/testdata/vm/colima-home", getenv("MAR_SRC"));
    _cleanup_free_ char *ctd = mar_xasprintf(
            "CONTAINERD_ADDRESS=%s",
            itest_bed("MAR_TEST_CONTAINERD") ? itest_bed("MAR_TEST_CONTAINERD") : "/nonexistent");
    _cleanup_free_ char *store = mar_xasprintf("MAR_STORE=%s/vgstore", itest_tmpdir());
    const char *env[] = {le, ce, ctd, store, NULL};
    run_vg(1, env, "doctor", "--target", "apple-silicon", NULL);
    run_vg(1, env, "doctor", "--json", NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_inspect_paths),
                                       cmocka_unit_test(test_store_paths),
                                       cmocka_unit_test(test_doctor)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
