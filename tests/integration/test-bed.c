/* The test bed itself: every service answers and the QEMU handlers really run foreign binaries. */
#include "itest.h"

#include <string.h>

static void test_registry_and_fixtures(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    _cleanup_free_ char *url = mar_xasprintf("http://%s/v2/", itest_bed("MAR_TEST_REGISTRY"));
    itest_run r;
    const char *curl[] = {"curl", "-fsS", "-o", "/dev/null", "-w", "%{http_code}", url, NULL};
    itest_runv(&r, NULL, curl);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out.data, "200");
    itest_run_release(&r);
    json_t *fx = itest_fixtures();
    static const char *const names[] = {"multi",     "dockerlist", "single",       "zstd",
                                        "amd64only", "mislabeled", "confmismatch", "whiteout"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(names); i++) {
        json_t *f = json_object_get(fx, names[i]);
        assert_non_null(f);
        assert_true(mar_digest_valid(json_string_value(json_object_get(f, "digest"))));
    }
    assert_int_equal(json_array_size(json_object_get(json_object_get(fx, "multi"), "platforms")),
                     8);
}

static void test_containerd(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_CONTAINERD", NULL};
    itest_require(need);
    itest_run r;
    const char *ctr[] = {"ctr", "--address", itest_bed("MAR_TEST_CONTAINERD"), "version", NULL};
    itest_runv(&r, NULL, ctr);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "Server:");
    itest_run_release(&r);
}

/* The fixture binaries run through the registered QEMU handlers. */
static void test_binfmt_runs_foreign_busybox(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_BINFMT", NULL};
    itest_require(need);
    const char *base = itest_cache_dir();
    static const struct {
        const char *debarch, *machine;
    } cases[] = {{"arm64", "aarch64"},   {"armhf", "armv7l"},    {"s390x", "s390x"},
                 {"ppc64el", "ppc64le"}, {"mips64el", "mips64"}, {"amd64", "x86_64"}};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *bb = mar_xasprintf("%s/busybox/%s/busybox", base, cases[i].debarch);
        itest_run r;
        const char *argv[] = {bb, "uname", "-m", NULL};
        itest_runv(&r, NULL, argv);
        assert_int_equal(r.status, 0);
        _cleanup_free_ char *want = mar_xasprintf("%s\n", cases[i].machine);
        assert_string_equal(r.out.data, want);
        itest_run_release(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_registry_and_fixtures),
            cmocka_unit_test(test_containerd),
            cmocka_unit_test(test_binfmt_runs_foreign_busybox),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
