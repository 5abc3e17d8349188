/* mar inspect against the test bed's registry: every fixture, both output modes, --raw, the
 * selection mark, targets, warnings and exit statuses. Expected digests come from the fixture
 * summary written when the bed pushed the images, never from constants. */
#include "itest.h"

#include <string.h>
#include <sys/stat.h>

static json_t *inspect_json(const char *ref, const char *opt1, const char *opt2, int want_status)
{
    itest_run r;
    itest_mar(&r, NULL, "-q", "inspect", "--json", ref, opt1, opt2, NULL);
    if (r.status != want_status) {
        print_error("inspect %s: status %d, want %d\n%s", ref, r.status, want_status, r.err.data);
        fail();
    }
    json_error_t je;
    json_t *j = json_loads(r.out.data, 0, &je);
    if (!j) {
        print_error("not JSON: %s\n", r.out.data);
        fail();
    }
    itest_run_release(&r);
    return j;
}

static json_t *fixture(const char *name)
{
    return json_object_get(itest_fixtures(), name);
}

static json_t *row_for(json_t *report, const char *platform)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(report, "platforms"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "platform")), platform) == 0) {
            return p;
        }
    }
    print_error("no row for %s\n", platform);
    fail();
    return NULL;
}

static const char *S(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    return 0;
}

static void test_multi_human(void **state)
{
    (void)state;
    itest_run r;
    itest_mar(&r, NULL, "inspect", itest_fixture_ref("multi"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, S(fixture("multi"), "digest"));
    assert_contains(r.out.data, "+2 attestation manifests");
    assert_contains(r.out.data, "ON THIS HOST");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(fixture("multi"), "platforms"), i, p)
    {
        assert_contains(r.out.data, S(p, "platform"));
        char shortd[32];
        snprintf(shortd, sizeof(shortd), "sha256:%.12s", S(p, "digest") + 7);
        assert_contains(r.out.data, shortd);
    }
    /* This host is linux/amd64: the amd64 row carries the mark. */
    assert_contains(r.out.data, "* linux/amd64 ");
    /* Plain HTTP to loopback is normal: no line about it unless --debug. */
    assert_not_contains(r.err.data, "loopback");
    itest_run_release(&r);
}

static void test_multi_json(void **state)
{
    (void)state;
    json_t *j = inspect_json(itest_fixture_ref("multi"), NULL, NULL, 0);
    json_t *fx = fixture("multi");
    assert_string_equal(S(j, "digest"), S(fx, "digest"));
    assert_string_equal(S(j, "kind"), "index");
    assert_string_equal(S(j, "mediaType"), "application/vnd.oci.image.index.v1+json");
    assert_int_equal(json_integer_value(json_object_get(j, "attestations")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "platforms")), 8);
    assert_int_equal(json_array_size(json_object_get(j, "problems")), 0);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(fx, "platforms"), i, p)
    {
        json_t *row = row_for(j, S(p, "platform"));
        assert_string_equal(S(row, "digest"), S(p, "digest"));
        assert_true(json_is_true(json_object_get(row, "configMatches")));
        assert_true(json_integer_value(json_object_get(row, "size")) > 500000);
    }
    json_t *amd = row_for(j, "linux/amd64");
    assert_string_equal(S(j, "selected"), S(amd, "digest"));
    assert_string_equal(S(amd, "run"), "native");
    assert_true(json_is_null(json_object_get(amd, "emulator")));
    json_t *arm64 = row_for(j, "linux/arm64/v8");
    assert_string_equal(S(arm64, "normalized"), "linux/arm64");
    assert_string_equal(S(json_object_get(arm64, "config"), "variant"), "v8");
    if (itest_bed("MAR_TEST_BINFMT")) {
        /* The bed registered QEMU handlers for these. */
        static const char *const emulated[] = {"linux/arm64/v8", "linux/arm/v7",  "linux/arm/v5",
                                               "linux/s390x",    "linux/ppc64le", "linux/mips64le"};
        for (size_t k = 0; k < MAR_ARRAY_SIZE(emulated); k++) {
            json_t *row = row_for(j, emulated[k]);
            assert_string_equal(S(row, "run"), "emulated");
            assert_string_equal(S(row, "emulator"), "qemu");
        }
    }
    json_decref(j);
}

/* ON THIS HOST is the truth: every platform mar says runs (natively or emulated) really executes
 * its busybox here, and every one it says cannot, really fails. */
static void test_verdicts_match_reality(void **state)
{
    (void)state;
    json_t *j = inspect_json(itest_fixture_ref("multi"), NULL, NULL, 0);
    const char *base = itest_cache_dir();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(fixture("multi"), "platforms"), i, p)
    {
        json_t *row = row_for(j, S(p, "platform"));
        _cleanup_free_ char *bb = mar_xasprintf("%s/busybox/%s/busybox", base, S(p, "debarch"));
        itest_run r;
        const char *argv[] = {bb, "true", NULL};
        itest_runv(&r, NULL, argv);
        bool runs = r.status == 0;
        bool says = strcmp(S(row, "run"), "unavailable") != 0;
        if (runs != says) {
            print_error("%s: mar says %s, executing it gives status %d\n", S(p, "platform"),
                        S(row, "run"), r.status);
            fail();
        }
        itest_run_release(&r);
    }
    json_decref(j);
}

static void test_fake_binfmt_root(void **state)
{
    (void)state;
    /* An empty binfmt_misc: nothing foreign can run. */
    const char *root = itest_tmpdir();
    free(itest_write("binfmt/status", "enabled\n", 0644));
    _cleanup_free_ char *dir = mar_xasprintf("%s/binfmt", root);
    json_t *j = inspect_json(itest_fixture_ref("multi"), "--binfmt-root", dir, 0);
    json_t *row = row_for(j, "linux/s390x");
    assert_string_equal(S(row, "run"), "unavailable");
    assert_contains(S(row, "reason"), "no binfmt_misc handler for s390x");
    json_decref(j);
    /* Environment works the same. */
    itest_run r;
    _cleanup_free_ char *env = mar_xasprintf("MAR_BINFMT_ROOT=%s", dir);
    const char *envs[] = {env, NULL};
    itest_mar(&r, envs, "-q", "inspect", itest_fixture_ref("multi"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "no emulator");
    itest_run_release(&r);
}

static void test_apple_silicon_target(void **state)
{
    (void)state;
    json_t *j = inspect_json(itest_fixture_ref("multi"), "--target", "apple-silicon", 0);
    assert_string_equal(S(j, "host"), "apple-silicon");
    assert_string_equal(S(j, "selected"), S(row_for(j, "linux/arm64/v8"), "digest"));
    assert_string_equal(S(row_for(j, "linux/arm64/v8"), "run"), "native");
    assert_string_equal(S(row_for(j, "linux/amd64"), "emulator"), "rosetta");
    assert_string_equal(S(row_for(j, "linux/386"), "emulator"), "qemu");
    assert_string_equal(S(row_for(j, "linux/arm/v7"), "emulator"), "qemu");
    assert_contains(S(row_for(j, "linux/arm/v7"), "reason"), "AArch32");
    json_decref(j);
    itest_run r;
    itest_mar(&r, NULL, "-q", "inspect", "--target", "apple-silicon", itest_fixture_ref("multi"),
              NULL);
    assert_contains(r.out.data, "ON APPLE-SILICON");
    assert_contains(r.out.data, "emulated (rosetta)");
    itest_run_release(&r);
}

static void test_platform_selection(void **state)
{
    (void)state;
    static const struct {
        const char *requested, *picked;
    } cases[] = {
            {"linux/arm/v6", "linux/arm/v5"},  {"linux/arm/v8", "linux/arm/v7"},
            {"linux/arm64", "linux/arm64/v8"}, {"linux/amd64/v2", "linux/amd64"},
            {"linux/i386", "linux/386"},       {"linux/ppc64le", "linux/ppc64le"},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        json_t *j = inspect_json(itest_fixture_ref("multi"), "--platform", cases[i].requested, 0);
        assert_string_equal(S(j, "selected"), S(row_for(j, cases[i].picked), "digest"));
        json_decref(j);
    }
    itest_run r;
    itest_mar(&r, NULL, "-q", "inspect", "--platform", "linux/riscv64", itest_fixture_ref("multi"),
              NULL);
    assert_int_equal(r.status, 3);
    assert_contains(r.err.data, "no 'linux/riscv64' entry");
    assert_contains(r.err.data, "has: linux/amd64, linux/arm64/v8");
    itest_run_release(&r);
}

static void test_raw(void **state)
{
    (void)state;
    static const char *const names[] = {"multi", "dockerlist", "single", "whiteout"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(names); i++) {
        itest_run r;
        itest_mar(&r, NULL, "-q", "inspect", "--raw", itest_fixture_ref(names[i]), NULL);
        assert_int_equal(r.status, 0);
        mar_digest d;
        mar_digest_of(MAR_DIGEST_SHA256, r.out.data, r.out.len, &d);
        assert_string_equal(d.str, S(fixture(names[i]), "digest"));
        itest_run_release(&r);
    }
}

static void test_by_digest(void **state)
{
    (void)state;
    json_t *p = json_array_get(json_object_get(fixture("multi"), "platforms"), 1);
    _cleanup_free_ char *repo =
            mar_xasprintf("%s/mar/multi@%s", itest_bed("MAR_TEST_REGISTRY"), S(p, "digest"));
    json_t *j = inspect_json(repo, NULL, NULL, 0);
    assert_string_equal(S(j, "kind"), "manifest");
    assert_string_equal(S(j, "digest"), S(p, "digest"));
    json_t *row = json_array_get(json_object_get(j, "platforms"), 0);
    assert_string_equal(S(row, "platform"), "linux/arm64/v8");
    /* A single arm64 manifest on an amd64 host: Docker's platform warning. */
    assert_string_equal(S(json_array_get(json_object_get(j, "problems"), 0), "kind"),
                        "platform-mismatch");
    json_decref(j);
}

static void test_docker_types_and_zstd(void **state)
{
    (void)state;
    json_t *j = inspect_json(itest_fixture_ref("dockerlist"), NULL, NULL, 0);
    assert_string_equal(S(j, "mediaType"),
                        "application/vnd.docker.distribution.manifest.list.v2+json");
    assert_int_equal(json_array_size(json_object_get(j, "platforms")), 2);
    json_decref(j);
    j = inspect_json(itest_fixture_ref("single"), NULL, NULL, 0);
    assert_string_equal(S(j, "kind"), "manifest");
    assert_string_equal(S(j, "mediaType"), "application/vnd.docker.distribution.manifest.v2+json");
    assert_string_equal(S(j, "selected"), S(fixture("single"), "digest"));
    assert_string_equal(S(json_array_get(json_object_get(j, "platforms"), 0), "run"), "native");
    json_decref(j);
    j = inspect_json(itest_fixture_ref("zstd"), NULL, NULL, 0);
    assert_int_equal(json_array_size(json_object_get(j, "platforms")), 2);
    json_decref(j);
    j = inspect_json(itest_fixture_ref("whiteout"), NULL, NULL, 0);
    assert_string_equal(S(j, "kind"), "manifest");
    json_decref(j);
}

static bool has_problem(json_t *j, const char *kind)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "problems"), i, p)
    {
        if (strcmp(S(p, "kind"), kind) == 0) {
            return true;
        }
    }
    return false;
}

static void test_problems(void **state)
{
    (void)state;
    json_t *j = inspect_json(itest_fixture_ref("confmismatch"), NULL, NULL, 0);
    json_t *row = row_for(j, "linux/arm64/v8");
    assert_true(json_is_false(json_object_get(row, "configMatches")));
    assert_string_equal(S(json_object_get(row, "config"), "architecture"), "amd64");
    assert_true(has_problem(j, "config-mismatch"));
    json_decref(j);

    j = inspect_json(itest_fixture_ref("amd64only"), NULL, NULL, 0);
    assert_true(has_problem(j, "amd64-only"));
    assert_int_equal(json_integer_value(json_object_get(j, "attestations")), 1);
    json_decref(j);

    j = inspect_json(itest_fixture_ref("mislabeled"), NULL, NULL, 0);
    assert_true(has_problem(j, "no-native"));
    assert_true(json_is_null(json_object_get(j, "selected")));
    json_decref(j);

    /* Warnings are one line each on stderr, data stays on stdout. */
    itest_run r;
    itest_mar(&r, NULL, "inspect", itest_fixture_ref("confmismatch"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.err.data, "mar: warning: the linux/arm64/v8 entry of");
    assert_contains(r.err.data, "its config says linux/amd64");
    assert_not_contains(r.out.data, "warning");
    itest_run_release(&r);
    itest_mar(&r, NULL, "inspect", "--target", "apple-silicon", itest_fixture_ref("amd64only"),
              NULL);
    assert_contains(r.err.data, "Docker on arm64 refuses it without --platform linux/amd64");
    assert_contains(r.err.data, "runs natively on apple-silicon");
    itest_run_release(&r);
}

static void test_failures(void **state)
{
    (void)state;
    const char *reg = itest_bed("MAR_TEST_REGISTRY");
    itest_run r;
    _cleanup_free_ char *missing = mar_xasprintf("%s/mar/nothere:1", reg);
    itest_mar(&r, NULL, "inspect", missing, NULL);
    assert_int_equal(r.status, 3);
    assert_contains(r.err.data, "cannot inspect");
    assert_contains(r.err.data, reg);
    assert_string_equal(r.out.data, "");
    itest_run_release(&r);

    _cleanup_free_ char *bad_digest = mar_xasprintf(
            "%s/mar/multi@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            reg);
    itest_mar(&r, NULL, "inspect", bad_digest, NULL);
    assert_int_equal(r.status, 3);
    assert_contains(r.err.data, "MANIFEST_UNKNOWN");
    itest_run_release(&r);

    /* Nothing listens on port 1; retries are shortened for the test. */
    const char *env[] = {"MAR_RETRY_BASE_MS=10", NULL};
    itest_mar(&r, env, "inspect", "127.0.0.1:1/mar/multi", NULL);
    assert_int_equal(r.status, 5);
    assert_contains(r.err.data, "127.0.0.1:1");
    itest_run_release(&r);

    itest_mar(&r, NULL, "inspect", "127.0.0.1:1/mar/multi@md5:abc", NULL);
    assert_int_equal(r.status, 7);
    itest_run_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_multi_human),
            cmocka_unit_test(test_multi_json),
            cmocka_unit_test(test_verdicts_match_reality),
            cmocka_unit_test(test_fake_binfmt_root),
            cmocka_unit_test(test_apple_silicon_target),
            cmocka_unit_test(test_platform_selection),
            cmocka_unit_test(test_raw),
            cmocka_unit_test(test_by_digest),
            cmocka_unit_test(test_docker_types_and_zstd),
            cmocka_unit_test(test_problems),
            cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
