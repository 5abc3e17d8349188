/* mar check against the bed's registry: platforms present (with every variant spelling),
 * missing, mislabeled by config and by binaries (--deep), images that cannot be checked; the
 * exit statuses; JSON; JUnit XML parsed back by Python's XML parser; GitHub annotations. */
#include "itest.h"

#include <string.h>

static const char *ref(const char *f)
{
    return itest_fixture_ref(f);
}

static void check(itest_run *r, int want, const char *const *env, const char *const *args)
{
    const char *argv[32] = {getenv("MAR_BIN"), "check"};
    size_t n = 2;
    for (size_t i = 0; args[i] && n < 31; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_runv(r, env, argv);
    if (r->status != want) {
        fail_msg("mar check: %d, want %d\n%s%s", r->status, want, r->out.data, r->err.data);
    }
}

static void test_spellings(void **state)
{
    (void)state;
    itest_run r;
    /* Short forms, default variants and explicit ones all name what multi publishes. */
    const char *a[] = {"--platforms",
                       "linux/amd64,arm64,linux/arm64/v8,linux/arm,linux/arm/v7,linux/arm/v5,"
                       "s390x,linux/ppc64le",
                       ref("multi"), NULL};
    check(&r, 0, NULL, a);
    assert_contains(r.out.data, "ok          ");
    assert_not_contains(r.out.data, "MISSING");
    assert_contains(r.err.data, "8 checks: 8 ok, 0 failed");
    itest_run_release(&r);
    /* arm/v6 is not arm/v7 nor arm/v5; amd64/v3 is not amd64. */
    const char *b[] = {"--platforms", "linux/arm/v6,linux/amd64/v3", ref("multi"), NULL};
    check(&r, 1, NULL, b);
    assert_contains(r.out.data, "MISSING     ");
    assert_contains(r.out.data, "linux/arm/v6: no linux/arm/v6 entry (it has: linux/amd64, "
                                "linux/arm64/v8, linux/arm/v7, linux/arm/v5");
    assert_contains(r.out.data, "linux/amd64/v3: no linux/amd64/v3 entry");
    itest_run_release(&r);
}

static void test_failures(void **state)
{
    (void)state;
    itest_run r;
    const char *a[] = {"--platforms",    "linux/amd64,linux/arm64",
                       ref("amd64only"), ref("confmismatch"),
                       ref("single"),    NULL};
    check(&r, 1, NULL, a);
    _cleanup_free_ char *missing = mar_xasprintf("MISSING     %s  linux/arm64: no linux/arm64 "
                                                 "entry (it has: linux/amd64)",
                                                 ref("amd64only"));
    assert_contains(r.out.data, missing);
    _cleanup_free_ char *mis = mar_xasprintf("MISLABELED  %s  linux/arm64: the linux/arm64/v8 "
                                             "entry's config says linux/amd64",
                                             ref("confmismatch"));
    assert_contains(r.out.data, mis);
    _cleanup_free_ char *single = mar_xasprintf(
            "MISSING     %s  linux/arm64: a single linux/amd64 image, not linux/arm64",
            ref("single"));
    assert_contains(r.out.data, single);
    itest_run_release(&r);

    /* A label the binaries contradict: fine on paper, mislabeled with --deep. */
    const char *b[] = {"--platforms", "linux/arm64", ref("mislabeled"), NULL};
    check(&r, 0, NULL, b);
    itest_run_release(&r);
    const char *c[] = {"--deep", "--platforms", "linux/arm64", ref("mislabeled"), NULL};
    check(&r, 1, NULL, c);
    assert_contains(r.out.data, "ELF files are amd64 (--deep)");
    itest_run_release(&r);

    /* An image that cannot be checked: its error status wins over the failures. */
    _cleanup_free_ char *nope = mar_xasprintf("%s/mar/nope:1", itest_bed("MAR_TEST_REGISTRY"));
    const char *d[] = {"--platforms", "linux/arm64", ref("amd64only"), nope, NULL};
    check(&r, MAR_ENOTFOUND, NULL, d);
    assert_contains(r.out.data, "ERROR       ");
    itest_run_release(&r);

    const char *e[] = {ref("multi"), NULL};
    check(&r, MAR_EUSAGE, NULL, e);
    itest_run_release(&r);
    const char *f[] = {"--platforms", "linux/notanarch!", ref("multi"), NULL};
    check(&r, MAR_EUSAGE, NULL, f);
    itest_run_release(&r);
    const char *g[] = {"-j", "0", "--platforms", "linux/arm64", ref("multi"), NULL};
    check(&r, MAR_EUSAGE, NULL, g);
    assert_contains(r.err.data, "--jobs wants a number from 1 to 64");
    itest_run_release(&r);
    /* One connection: every request queues behind the others and the answer is the same. */
    const char *h[] = {"-j",         "1",          "--platforms",    "linux/amd64,linux/arm64",
                       ref("multi"), ref("app20"), ref("amd64only"), NULL};
    check(&r, 1, NULL, h);
    assert_contains(r.err.data, "6 checks: 5 ok, 1 failed");
    itest_run_release(&r);
}

static void test_outputs(void **state)
{
    (void)state;
    _cleanup_free_ char *list = mar_xasprintf(
            "# images of the release\n%s\n\n  %s   # amd64 only\n", ref("multi"), ref("amd64only"));
    char *lf = itest_write("check.list", list, 0644);
    _cleanup_free_ char *junit = mar_xasprintf("%s/junit.xml", itest_tmpdir());
    itest_run r;
    const char *a[] = {"--json", "--platforms", "linux/amd64,linux/arm64", "-f", lf, NULL};
    check(&r, 1, NULL, a);
    json_t *doc = itest_json(r.out.data);
    json_t *imgs = json_object_get(doc, "images");
    assert_int_equal(json_array_size(imgs), 2);
    json_t *summary = json_object_get(doc, "summary");
    assert_int_equal(json_integer_value(json_object_get(summary, "checked")), 4);
    assert_int_equal(json_integer_value(json_object_get(summary, "ok")), 3);
    assert_int_equal(json_integer_value(json_object_get(summary, "failed")), 1);
    json_t *res = json_object_get(json_array_get(imgs, 1), "results");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 1), "status")),
                        "missing");
    assert_string_equal(
            json_string_value(json_object_get(json_array_get(res, 0), "digest")),
            json_string_value(json_object_get(
                    json_array_get(json_object_get(json_object_get(itest_fixtures(), "amd64only"),
                                                   "platforms"),
                                   0),
                    "digest")));
    json_decref(doc);
    itest_run_release(&r);

    /* JUnit, read back by a real XML parser; GitHub annotations on stdout. */
    const char *gh[] = {"GITHUB_ACTIONS=true", NULL};
    const char *b[] = {"--junit", junit, "--platforms", "linux/amd64,linux/arm64", "-f", lf, NULL};
    check(&r, 1, gh, b);
    _cleanup_free_ char *ann = mar_xasprintf(
            "::error title=mar check::%s linux/arm64: no linux/arm64 entry (it has: linux/amd64)\n",
            ref("amd64only"));
    assert_contains(r.out.data, ann);
    itest_run_release(&r);
    _cleanup_free_ char *py = mar_xasprintf(
            "import xml.etree.ElementTree as ET\n"
            "t = ET.parse('%s').getroot()\n"
            "cases = t.findall('./testsuite/testcase')\n"
            "fails = [c for c in cases if c.find('failure') is not None]\n"
            "print(t.tag, t.get('tests'), t.get('failures'), len(cases), len(fails),\n"
            "      fails[0].get('classname'), fails[0].get('name'))\n",
            junit);
    const char *argv[] = {"python3", "-c", py, NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    _cleanup_free_ char *want =
            mar_xasprintf("testsuites 4 1 4 1 %s linux/arm64\n", ref("amd64only"));
    assert_string_equal(r.out.data, want);
    itest_run_release(&r);
    free(lf);
}

/* Several images of one plain-HTTP registry named --insecure-registry, resolved at once: the
 * HTTPS attempt is made once and every request in flight waits for its answer, then uses plain
 * HTTP. */
static void test_insecure_registry_many_images(void **state)
{
    (void)state;
    _cleanup_free_ char *host = mar_xstrndup(ref("multi"), strcspn(ref("multi"), "/"));
    itest_run r;
    const char *a[] = {"--insecure-registry", host,          "--platforms",  "linux/amd64",
                       ref("multi"),          ref("single"), ref("shared1"), ref("shared2"),
                       ref("zstd"),           NULL};
    for (int i = 0; i < 3; i++) {
        check(&r, 0, NULL, a);
        assert_not_contains(r.err.data, "TLS failure");
        assert_contains(r.err.data, "5 checks: 5 ok, 0 failed, 0 could not be checked");
        itest_run_release(&r);
    }
}

int main(void)
{
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_spellings),
            cmocka_unit_test(test_failures),
            cmocka_unit_test(test_outputs),
            cmocka_unit_test(test_insecure_registry_many_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
