/* Index shapes through the real binary (docs/internals/platforms.md §1, §3, §4, §7, §9): Windows
 * os.version matching, os.features outside the specifier grammar, nested indexes (inspect, check,
 * pull, unpack, the depth limit), entries of unknown media types and the exit status rule,
 * platform-less entries, BuildKit reference annotations, and an image config without an OS. The
 * bed's fixtures (tests/support/mkfixtures.c) hold each shape; expected digests come from its
 * summary. */
#include "itest.h"

#include <string.h>

static int n_dirs;

static char *new_dir(const char *what)
{
    return mar_xasprintf("%s/%s%d", itest_tmpdir(), what, ++n_dirs);
}

static const char *S(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_t *fixture(const char *name)
{
    return json_object_get(itest_fixtures(), name);
}

/* The manifest digest the fixture summary records for a platform ("os/arch[/variant]"). */
static const char *digest_of(const char *name, const char *platform)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(fixture(name), "platforms"), i, p)
    {
        if (strcmp(S(p, "platform"), platform) == 0) {
            return S(p, "digest");
        }
    }
    fail_msg("fixture %s has no %s", name, platform);
    return NULL;
}

/* mar -q inspect --json REF [--platform P]: the document, and the exit status in *status. */
static json_t *inspect(const char *name, const char *platform, int *status)
{
    itest_run r;
    itest_mar(&r, NULL, "-q", "inspect", "--json", itest_fixture_ref(name),
              platform ? "--platform" : NULL, platform, NULL);
    *status = r.status;
    json_t *j = itest_json(r.out.data);
    itest_run_release(&r);
    return j;
}

static json_t *row_by_digest(json_t *j, const char *digest)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "platforms"), i, p)
    {
        if (strcmp(S(p, "digest"), digest) == 0) {
            return p;
        }
    }
    fail_msg("no row for %s", digest);
    return NULL;
}

static const char *selected(const char *name, const char *platform, int *status)
{
    static char buf[128];
    json_t *j = inspect(name, platform, status);
    const char *s = S(j, "selected");
    snprintf(buf, sizeof(buf), "%s", s ? s : "none");
    json_decref(j);
    return buf;
}

/* Item 5: a request for windows(10.0.17763)/amd64 matches 10.0.17763.1 and .2 (win32k aside, as
 * containerd strips it) and picks .2; a build the image lacks fails naming the version asked. */
static void test_windows_version(void **state)
{
    (void)state;
    json_t *fx = json_object_get(fixture("windows"), "platforms");
    const char *rev1 = S(json_array_get(fx, 0), "digest");
    const char *rev2 = S(json_array_get(fx, 1), "digest");
    const char *ltsc22 = S(json_array_get(fx, 2), "digest");
    assert_string_equal(S(json_array_get(fx, 1), "osVersion"), "10.0.17763.2");
    int st;
    assert_string_equal(selected("windows", "windows(10.0.17763)/amd64", &st), rev2);
    assert_int_equal(st, 0);
    /* A host of the revision .1 still takes the higher revision of its build. */
    assert_string_equal(selected("windows", "windows(10.0.17763.1)/amd64", &st), rev2);
    /* Windows Server 2025 runs 2022 images (the LTSC range rule). */
    assert_string_equal(selected("windows", "windows(10.0.26100)/amd64", &st), ltsc22);
    assert_string_equal(selected("windows", "linux/amd64", &st),
                        S(json_array_get(fx, 3), "digest"));
    itest_run r;
    itest_mar(&r, NULL, "inspect", "--platform", "windows(10.0.14393)/amd64",
              itest_fixture_ref("windows"), NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    assert_contains(r.err.data, "no 'windows(10.0.14393)/amd64' entry");
    assert_contains(r.out.data, "no entry would be picked for windows(10.0.14393)/amd64");
    itest_run_release(&r);
    /* Both revisions are listed with their version. */
    itest_mar(&r, NULL, "inspect", itest_fixture_ref("windows"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "windows(10.0.17763.1+win32k)/amd64");
    assert_contains(r.out.data, "windows(10.0.17763.2+win32k)/amd64");
    itest_run_release(&r);
    (void)rev1;
}

/* Item 6: os.features outside the specifier grammar are accepted and escaped; the escaped string
 * selects the same entry when given back; a list longer than mar keeps fails that entry only. */
static void test_odd_features(void **state)
{
    (void)state;
    int st;
    json_t *j = inspect("features", NULL, &st);
    assert_int_equal(st, 0);
    json_t *odd = row_by_digest(j, digest_of("features", "linux/arm64/v8"));
    const char *published = S(odd, "platform");
    assert_string_equal(published, "linux(+has%20space+a%2Fb%2Bc%28d%29%25)/arm64/v8");
    assert_string_equal(S(odd, "status"), "ok");
    json_t *many = row_by_digest(j, digest_of("features", "linux/s390x"));
    assert_string_equal(S(many, "status"), "not-read");
    assert_contains(S(many, "error"), "longer than mar keeps");
    assert_string_equal(S(row_by_digest(j, digest_of("features", "linux/amd64")), "status"), "ok");
    _cleanup_free_ char *pub = mar_xstrdup(published);
    json_decref(j);
    /* Round trip: the printed platform is a valid --platform that selects the entry. */
    assert_string_equal(selected("features", pub, &st), digest_of("features", "linux/arm64/v8"));
    assert_int_equal(st, 0);
    /* Features from --platform are printed escaped, and that text parses back the same. */
    itest_run r;
    itest_mar(&r, NULL, "inspect", "--platform", "linux(+a%2Fb+has%20space)/amd64",
              itest_fixture_ref("multi"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "mar run --platform linux(+a%2Fb+has%20space)/amd64");
    itest_run_release(&r);
    /* Without the features the entry is not chosen; check and pull pass over it. */
    itest_mar(&r, NULL, "inspect", "--platform", "linux/arm64", itest_fixture_ref("features"),
              NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    itest_run_release(&r);
    itest_mar(&r, NULL, "check", "--platforms", "linux/amd64,linux/arm64",
              itest_fixture_ref("features"), NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
}

/* Item 7: the image-spec's nested shape in inspect, table and JSON. */
static void test_nested_inspect(void **state)
{
    (void)state;
    json_t *fx = fixture("nested");
    const char *n1 = json_string_value(json_array_get(json_object_get(fx, "nested"), 0));
    const char *n2 = json_string_value(json_array_get(json_object_get(fx, "nested"), 1));
    int st;
    json_t *j = inspect("nested", NULL, &st);
    assert_int_equal(st, 0);
    assert_int_equal(json_array_size(json_object_get(j, "platforms")), 5);
    assert_int_equal(json_array_size(json_object_get(j, "indexes")), 2);
    json_t *i1 = json_array_get(json_object_get(j, "indexes"), 0);
    assert_string_equal(S(i1, "digest"), n1);
    assert_string_equal(S(i1, "index"), S(fx, "digest"));
    assert_int_equal(json_integer_value(json_object_get(i1, "entries")), 4);
    assert_string_equal(S(i1, "status"), "ok");
    json_t *amd = row_by_digest(j, digest_of("nested", "linux/amd64"));
    assert_string_equal(S(amd, "index"), n1);
    assert_int_equal(json_integer_value(json_object_get(amd, "depth")), 1);
    json_t *s390x = row_by_digest(j, digest_of("nested", "linux/s390x"));
    assert_string_equal(S(s390x, "index"), n2);
    assert_int_equal(json_integer_value(json_object_get(s390x, "depth")), 2);
    json_t *ppc = row_by_digest(j, digest_of("nested", "linux/ppc64le"));
    assert_string_equal(S(ppc, "index"), S(fx, "digest"));
    /* This host is amd64: the top level has no match, the nested index does. */
    assert_string_equal(S(j, "selected"), digest_of("nested", "linux/amd64"));
    json_decref(j);
    static const struct {
        const char *platform, *picked;
    } cases[] = {
            {"linux/s390x", "linux/s390x"},    {"linux/arm64", "linux/arm64/v8"},
            {"linux/arm/v7", "linux/arm/v7"},  {"linux/ppc64le", "linux/ppc64le"},
            {"linux/amd64/v2", "linux/amd64"},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        assert_string_equal(selected("nested", cases[i].platform, &st),
                            digest_of("nested", cases[i].picked));
    }
    assert_string_equal(selected("nested", "linux/riscv64", &st), "none");
    assert_int_equal(st, MAR_ENOTFOUND);
    itest_run r;
    itest_mar(&r, NULL, "inspect", itest_fixture_ref("nested"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "  (index)  ");
    assert_contains(r.out.data, "nested index, 4 entries");
    assert_contains(r.out.data, "*   linux/amd64 ");
    assert_contains(r.out.data, "      linux/s390x ");
    itest_run_release(&r);
}

/* Item 7: check finds platforms in nested indexes and says which index listed them. */
static void test_nested_check(void **state)
{
    (void)state;
    json_t *fx = fixture("nested");
    const char *n2 = json_string_value(json_array_get(json_object_get(fx, "nested"), 1));
    itest_run r;
    itest_mar(&r, NULL, "check", "--json", "--platforms", "linux/s390x,linux/arm64,linux/ppc64le",
              itest_fixture_ref("nested"), NULL);
    assert_int_equal(r.status, 0);
    json_t *j = itest_json(r.out.data);
    json_t *res = json_object_get(json_array_get(json_object_get(j, "images"), 0), "results");
    json_t *s390x = json_array_get(res, 0);
    assert_string_equal(S(s390x, "status"), "ok");
    assert_string_equal(S(s390x, "digest"), digest_of("nested", "linux/s390x"));
    assert_string_equal(S(s390x, "index"), n2);
    assert_null(json_object_get(json_array_get(res, 2), "index"));
    json_decref(j);
    itest_run_release(&r);
    itest_mar(&r, NULL, "check", "--platforms", "linux/s390x,linux/riscv64",
              itest_fixture_ref("nested"), NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.out.data, "(linux/s390x in nested index sha256:");
    assert_contains(r.out.data, "MISSING");
    itest_run_release(&r);
}

/* Item 7: pull and unpack choose through nested indexes, and the store keeps the nested indexes
 * so that its layout stays complete. */
static void test_nested_pull_unpack(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    json_t *fx = fixture("nested");
    const char *ref = itest_fixture_ref("nested");
    itest_run r;
    itest_mar(&r, NULL, "pull", "--json", "--no-unpack", "--store", store, "--platform",
              "linux/s390x,linux/amd64", ref, NULL);
    if (r.status != 0) {
        fail_msg("pull: %s", r.err.data);
    }
    json_t *j = itest_json(r.out.data);
    json_t *imgs = json_object_get(j, "images");
    assert_int_equal(json_array_size(imgs), 2);
    assert_string_equal(S(json_array_get(imgs, 0), "manifest"), digest_of("nested", "linux/s390x"));
    assert_string_equal(S(json_array_get(imgs, 0), "platform"), "linux/s390x");
    json_decref(j);
    itest_run_release(&r);
    for (size_t i = 0; i < 2; i++) {
        const char *d = json_string_value(json_array_get(json_object_get(fx, "nested"), i));
        _cleanup_free_ char *blob = mar_xasprintf("%s/blobs/sha256/%s", store, strchr(d, ':') + 1);
        assert_int_equal(access(blob, R_OK), 0);
    }
    /* gc keeps what the nested indexes reference. */
    itest_mar(&r, NULL, "gc", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.err.data, "removed 0 blobs");
    itest_run_release(&r);
    /* unpack from the store, through the nested indexes. */
    _cleanup_free_ char *dir = new_dir("rootfs");
    itest_mar(&r, NULL, "unpack", "--store", store, "--platform", "linux/s390x", ref, dir, NULL);
    if (r.status != 0) {
        fail_msg("unpack: %s", r.err.data);
    }
    itest_run_release(&r);
    _cleanup_free_ char *bb = mar_xasprintf("%s/bin/busybox", dir);
    const char *file[] = {"file", "-b", bb, NULL};
    itest_runv(&r, NULL, file);
    assert_contains(r.out.data, "S/390");
    itest_run_release(&r);
    /* A platform only the nested index has, pulled by unpack itself. */
    _cleanup_free_ char *dir2 = new_dir("rootfs");
    itest_mar(&r, NULL, "unpack", "--store", store, "--platform", "linux/arm/v7", ref, dir2, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_mar(&r, NULL, "pull", "--json", "--all-platforms", "--no-unpack", "--store", store, ref,
              NULL);
    assert_int_equal(r.status, 0);
    j = itest_json(r.out.data);
    assert_int_equal(json_array_size(json_object_get(j, "images")), 5);
    json_decref(j);
    itest_run_release(&r);
}

/* Item 7: more levels than OCI_INDEX_DEPTH_MAX: the fifth is listed as not read, the rest of the
 * image works, and asking for what only the fifth level has fails cleanly. */
static void test_nested_depth(void **state)
{
    (void)state;
    json_t *fx = fixture("deepnest");
    const char *fifth = json_string_value(json_array_get(json_object_get(fx, "nested"), 4));
    int st;
    json_t *j = inspect("deepnest", NULL, &st);
    assert_int_equal(st, 0);
    json_t *idx = json_object_get(j, "indexes");
    assert_int_equal(json_array_size(idx), 5);
    json_t *last = json_array_get(idx, 4);
    assert_string_equal(S(last, "digest"), fifth);
    assert_string_equal(S(last, "status"), "not-read");
    assert_contains(S(last, "error"), "nested 5 levels deep, more than the 4 mar reads");
    json_decref(j);
    assert_string_equal(selected("deepnest", "linux/s390x", &st),
                        digest_of("deepnest", "linux/s390x"));
    assert_int_equal(st, 0);
    assert_string_equal(selected("deepnest", "linux/arm64", &st),
                        digest_of("deepnest", "linux/arm64/v8"));
    assert_string_equal(selected("deepnest", "linux/amd64", &st), "none");
    assert_int_equal(st, MAR_ENOTFOUND);
    itest_run r;
    itest_mar(&r, NULL, "inspect", itest_fixture_ref("deepnest"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.err.data, "more than the 4 mar reads, not read");
    itest_run_release(&r);
    _cleanup_free_ char *store = new_dir("store");
    itest_mar(&r, NULL, "pull", "--no-unpack", "--store", store, "--platform", "linux/s390x",
              itest_fixture_ref("deepnest"), NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_mar(&r, NULL, "pull", "--no-unpack", "--store", store, "--platform", "linux/amd64",
              itest_fixture_ref("deepnest"), NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    itest_run_release(&r);
}

/* Item 8: one rule for every verb. An entry of an unknown media type is listed as such and never
 * fails a command that got what it asked for. */
static void test_unknown_entries(void **state)
{
    (void)state;
    int st;
    json_t *j = inspect("unknownmt", NULL, &st);
    assert_int_equal(st, 0);
    assert_string_equal(S(j, "selected"), digest_of("unknownmt", "linux/amd64"));
    json_t *u = json_array_get(json_object_get(j, "platforms"), 1);
    assert_string_equal(S(u, "status"), "unknown");
    assert_string_equal(S(u, "mediaType"), "application/vnd.oci.artifact.manifest.v1+json");
    assert_string_equal(S(u, "run"), "unavailable");
    assert_false(json_is_true(json_object_get(u, "selected")));
    json_decref(j);
    /* A jq pipeline sees no failure. */
    itest_run r;
    const char *sh[] = {"bash",
                        "-o",
                        "pipefail",
                        "-c",
                        "\"$MAR_BIN\" -q inspect --json \"$1\" | jq -e '.selected'",
                        "sh",
                        itest_fixture_ref("unknownmt"),
                        NULL};
    itest_runv(&r, NULL, sh);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_mar(&r, NULL, "inspect", itest_fixture_ref("unknownmt"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data,
                    "unknown media type 'application/vnd.oci.artifact.manifest.v1+json'");
    itest_run_release(&r);
    /* What the unknown entry is labelled for is not there to be had: exit 3, as with any platform
     * an image lacks. */
    assert_string_equal(selected("unknownmt", "linux/arm64", &st), "none");
    assert_int_equal(st, MAR_ENOTFOUND);
    itest_mar(&r, NULL, "check", "--platforms", "linux/amd64", itest_fixture_ref("unknownmt"),
              NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    _cleanup_free_ char *store = new_dir("store");
    _cleanup_free_ char *dir = new_dir("rootfs");
    itest_mar(&r, NULL, "unpack", "--store", store, itest_fixture_ref("unknownmt"), dir, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_mar(&r, NULL, "pull", "--no-unpack", "--all-platforms", "--store", store,
              itest_fixture_ref("unknownmt"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.err.data, "pulled 1 platform");
    itest_run_release(&r);
}

/* containerd takes the first platform-less entry and stops when its config does not match;
 * inspect and pull do the same. */
static void test_platformless(void **state)
{
    (void)state;
    int st;
    assert_string_equal(selected("platformless", "linux/amd64", &st), "none");
    assert_int_equal(st, MAR_ENOTFOUND);
    assert_string_equal(selected("platformless", "linux/arm64", &st),
                        digest_of("platformless", "linux/arm64/v8"));
    assert_int_equal(st, 0);
    _cleanup_free_ char *store = new_dir("store");
    itest_run r;
    itest_mar(&r, NULL, "pull", "--no-unpack", "--store", store, "--platform", "linux/amd64",
              itest_fixture_ref("platformless"), NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    assert_contains(r.err.data, "has no platform and its config says linux/arm64/v8");
    itest_run_release(&r);
    itest_mar(&r, NULL, "pull", "--json", "--no-unpack", "--store", store, "--platform",
              "linux/arm64", itest_fixture_ref("platformless"), NULL);
    assert_int_equal(r.status, 0);
    json_t *j = itest_json(r.out.data);
    json_t *img = json_array_get(json_object_get(j, "images"), 0);
    assert_string_equal(S(img, "manifest"), digest_of("platformless", "linux/arm64/v8"));
    /* Named by its config's platform in the store. */
    assert_string_equal(S(img, "platform"), "linux/arm64/v8");
    json_decref(j);
    itest_run_release(&r);
}

/* BuildKit's annotations: an attestation names its entry; another reference type is ignored. */
static void test_attestation_references(void **state)
{
    (void)state;
    int st;
    json_t *j = inspect("reftypes", NULL, &st);
    assert_int_equal(st, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "attestations")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "ignored")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "platforms")), 1);
    json_t *amd = row_by_digest(j, digest_of("reftypes", "linux/amd64"));
    json_t *att = json_object_get(amd, "attestations");
    assert_int_equal(json_array_size(att), 1);
    assert_string_equal(json_string_value(json_array_get(att, 0)),
                        S(fixture("reftypes"), "attestation"));
    json_decref(j);
    assert_string_equal(selected("reftypes", "linux/s390x", &st), "none");
    assert_int_equal(st, MAR_ENOTFOUND);
    itest_run r;
    itest_mar(&r, NULL, "inspect", itest_fixture_ref("reftypes"), NULL);
    assert_contains(r.out.data, "+1 attestation manifest for linux/amd64");
    assert_contains(r.out.data, "+1 manifest ignored");
    itest_run_release(&r);
    itest_mar(&r, NULL, "check", "--platforms", "linux/s390x", itest_fixture_ref("reftypes"), NULL);
    assert_int_equal(r.status, 1);
    itest_run_release(&r);
    /* The multi fixture's buildx attestations name the amd64 and arm64 entries. */
    itest_mar(&r, NULL, "inspect", itest_fixture_ref("multi"), NULL);
    assert_contains(r.out.data, "+2 attestation manifests for linux/amd64, linux/arm64/v8");
    itest_run_release(&r);
}

/* containerd's Format: an image config without an OS is 'unknown', not 'unknown/amd64'. */
static void test_config_without_os(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    itest_run r;
    itest_mar(&r, NULL, "pull", "--no-unpack", "--store", store, "--platform", "linux/arm64",
              itest_fixture_ref("noos"), NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    assert_contains(r.err.data, "is a single unknown image, not linux/arm64");
    assert_not_contains(r.err.data, "unknown/");
    itest_run_release(&r);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_windows_version),        cmocka_unit_test(test_odd_features),
            cmocka_unit_test(test_nested_inspect),         cmocka_unit_test(test_nested_check),
            cmocka_unit_test(test_nested_pull_unpack),     cmocka_unit_test(test_nested_depth),
            cmocka_unit_test(test_unknown_entries),        cmocka_unit_test(test_platformless),
            cmocka_unit_test(test_attestation_references), cmocka_unit_test(test_config_without_os),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
