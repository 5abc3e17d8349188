/* inspect --deep against the test bed: the binaries of every fixture against its labels, from
 * layers streamed straight from the registry, or read from the store when it has them. */
#include "itest.h"

#include <string.h>

static const char *S(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_t *deep_json(const char *fixture, const char *o1, const char *o2)
{
    itest_run r;
    itest_mar(&r, NULL, "-q", "inspect", "--deep", "--json", itest_fixture_ref(fixture), o1, o2,
              NULL);
    if (r.status != 0) {
        print_error("inspect --deep %s: status %d\n%s", fixture, r.status, r.err.data);
        fail();
    }
    json_t *j = json_loads(r.out.data, 0, NULL);
    assert_non_null(j);
    itest_run_release(&r);
    return j;
}

static json_t *row_for(json_t *j, const char *platform)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "platforms"), i, p)
    {
        if (strcmp(S(p, "platform"), platform) == 0) {
            return p;
        }
    }
    print_error("no row %s\n", platform);
    fail();
    return NULL;
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

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    return 0;
}

static void test_all_platforms_consistent(void **state)
{
    (void)state;
    json_t *j = deep_json("multi", NULL, NULL);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "platforms"), i, p)
    {
        json_t *elf = json_object_get(p, "elf");
        assert_string_equal(S(elf, "verdict"), "consistent");
        /* The one ELF file is of the label's architecture. */
        const char *arch = strchr(S(p, "normalized"), '/') + 1;
        char a[32];
        mar_strlcpy(a, arch, sizeof(a));
        char *slash = strchr(a, '/');
        if (slash) {
            *slash = '\0';
        }
        assert_int_equal(json_integer_value(json_object_get(json_object_get(elf, "counts"), a)), 1);
        json_t *ep = json_object_get(elf, "entrypoint");
        assert_string_equal(S(ep, "path"), "/bin/sh");
        assert_string_equal(S(ep, "resolved"), "/bin/busybox");
        assert_string_equal(S(ep, "arch"), a);
    }
    assert_false(has_problem(j, "elf-mismatch"));
    json_decref(j);
}

static void test_mislabeled(void **state)
{
    (void)state;
    json_t *j = deep_json("mislabeled", NULL, NULL);
    json_t *row = row_for(j, "linux/arm64/v8");
    json_t *elf = json_object_get(row, "elf");
    assert_string_equal(S(elf, "verdict"), "mislabeled");
    assert_string_equal(S(json_object_get(elf, "entrypoint"), "arch"), "amd64");
    assert_string_equal(S(json_array_get(json_object_get(elf, "examples"), 0), "path"),
                        "/bin/busybox");
    assert_true(has_problem(j, "elf-mismatch"));
    /* The x86-64 binaries run natively here, whatever the label says... */
    assert_string_equal(S(row, "run"), "native");
    assert_contains(S(row, "reason"), "its binaries are amd64");
    assert_false(has_problem(j, "no-native"));
    json_decref(j);
    /* ...and under Rosetta on a Mac, where the label promises native. */
    j = deep_json("mislabeled", "--target", "apple-silicon");
    row = row_for(j, "linux/arm64/v8");
    assert_string_equal(S(row, "run"), "emulated");
    assert_string_equal(S(row, "emulator"), "rosetta");
    json_decref(j);
    itest_run r;
    itest_mar(&r, NULL, "inspect", "--deep", itest_fixture_ref("mislabeled"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "MISLABELED (amd64)");
    assert_contains(r.out.data, "/bin/busybox: amd64");
    assert_contains(r.err.data, "is labeled arm64 but 1 of 1 ELF files are amd64");
    itest_run_release(&r);
}

static void test_config_mismatch_evidence(void **state)
{
    (void)state;
    json_t *j = deep_json("confmismatch", NULL, NULL);
    assert_string_equal(S(json_object_get(row_for(j, "linux/arm64/v8"), "elf"), "verdict"),
                        "consistent");
    assert_true(has_problem(j, "config-mismatch"));
    assert_true(has_problem(j, "elf-evidence"));
    json_decref(j);
}

static void test_mixed_whiteout_loader(void **state)
{
    (void)state;
    json_t *j = deep_json("mixed", NULL, NULL);
    json_t *elf = json_object_get(row_for(j, "linux/amd64"), "elf");
    assert_string_equal(S(elf, "verdict"), "mixed");
    assert_string_equal(S(json_array_get(json_object_get(elf, "examples"), 0), "path"),
                        "/usr/local/bin/helper");
    json_decref(j);

    /* The arm64 binary of the whiteout image's first layer is whited out by the second. */
    j = deep_json("whiteout", NULL, NULL);
    elf = json_object_get(json_array_get(json_object_get(j, "platforms"), 0), "elf");
    assert_string_equal(S(elf, "verdict"), "consistent");
    assert_int_equal(json_integer_value(json_object_get(elf, "files")), 1);
    json_decref(j);

    j = deep_json("noloader", NULL, NULL);
    json_t *row = json_array_get(json_object_get(j, "platforms"), 0);
    elf = json_object_get(row, "elf");
    assert_true(json_is_true(
            json_object_get(json_object_get(elf, "entrypoint"), "interpreterMissing")));
    assert_true(has_problem(j, "elf-loader"));
    assert_string_equal(S(row, "run"), "unavailable");
    json_decref(j);
}

static void test_codecs_media_types_and_selection(void **state)
{
    (void)state;
    json_t *j = deep_json("zstd", NULL, NULL);
    assert_string_equal(S(json_object_get(row_for(j, "linux/arm64/v8"), "elf"), "verdict"),
                        "consistent");
    json_decref(j);
    j = deep_json("dockerlist", NULL, NULL);
    assert_string_equal(S(json_object_get(row_for(j, "linux/amd64"), "elf"), "verdict"),
                        "consistent");
    json_decref(j);
    /* --platform limits the scan to the chosen entry. */
    j = deep_json("multi", "--platform", "linux/s390x");
    assert_string_equal(S(json_object_get(row_for(j, "linux/s390x"), "elf"), "verdict"),
                        "consistent");
    assert_true(json_is_null(json_object_get(row_for(j, "linux/amd64"), "elf")));
    json_decref(j);
    /* Without --deep the schema is the same, with elf null. */
    itest_run r;
    itest_mar(&r, NULL, "-q", "inspect", "--json", itest_fixture_ref("single"), NULL);
    assert_contains(r.out.data, "\"elf\":null");
    itest_run_release(&r);
    itest_mar(&r, NULL, "-q", "inspect", "--deep", "-j", "0", itest_fixture_ref("single"), NULL);
    assert_int_equal(r.status, 2);
    itest_run_release(&r);
}

/* Layers the store holds are scanned from there, with the same findings. */
static void test_from_store(void **state)
{
    (void)state;
    _cleanup_free_ char *store = mar_xasprintf("%s/deep-store", itest_tmpdir());
    static const char *const fixtures[] = {"whiteout", "mislabeled"};
    for (size_t f = 0; f < MAR_ARRAY_SIZE(fixtures); f++) {
        itest_run r;
        itest_mar(&r, NULL, "-q", "pull", "--no-unpack", "--all-platforms", "--store", store,
                  itest_fixture_ref(fixtures[f]), NULL);
        if (r.status != 0) {
            /* A single manifest: --all-platforms takes it as it is. */
            fail_msg("pull %s: %s", fixtures[f], r.err.data);
        }
        itest_run_release(&r);
        json_t *remote = deep_json(fixtures[f], NULL, NULL);
        itest_mar(&r, NULL, "--debug", "inspect", "--deep", "--json", "--store", store,
                  itest_fixture_ref(fixtures[f]), NULL);
        assert_int_equal(r.status, 0);
        assert_contains(r.err.data, "layers read from the store");
        assert_not_contains(r.err.data, "0 of ");
        json_t *local = json_loads(r.out.data, 0, NULL);
        assert_non_null(local);
        itest_run_release(&r);
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(remote, "platforms"), i, p)
        {
            json_t *q = json_array_get(json_object_get(local, "platforms"), i);
            assert_true(json_equal(json_object_get(p, "elf"), json_object_get(q, "elf")));
        }
        json_decref(remote);
        json_decref(local);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_all_platforms_consistent),
            cmocka_unit_test(test_mislabeled),
            cmocka_unit_test(test_config_mismatch_evidence),
            cmocka_unit_test(test_mixed_whiteout_loader),
            cmocka_unit_test(test_codecs_media_types_and_selection),
            cmocka_unit_test(test_from_store),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
