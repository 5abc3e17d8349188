/* mar index create: the 8 per-architecture sample images (mar/arch-*, one repository each, two of
 * them indexes with an attestation) become an index equal to the 8-platform sample mar/multi
 * (entries, platforms, attestations), every blob mounted and none uploaded; it pulls and runs
 * as linux/arm64. --dry-run pushes nothing; --append, --remove (the attestation goes with its
 * entry), --replace and --annotation; a mislabeled source is refused with both platforms; bad
 * input (DST without a tag, a source that does not exist: nothing pushed). */
#include "itest.h"

#include <string.h>
#include <unistd.h>

static char prefix[64];
static const char *const arches[] = {"amd64", "arm64",   "armhf", "armel",
                                     "i386",  "ppc64el", "s390x", "mips64el"};

static void must(itest_run *r, int want, const char *what)
{
    if (r->status != want) {
        fail_msg("%s: status %d, want %d\nstdout: %s\nstderr: %s", what, r->status, want,
                 r->out.data, r->err.data);
    }
}

static char *dst_ref(const char *tag)
{
    return mar_xasprintf("%s/%s/app:%s", itest_bed("MAR_TEST_REGISTRY"), prefix, tag);
}

/* The index a reference names, as skopeo reads it, or NULL when there is none. */
static json_t *remote_index(const char *ref)
{
    _cleanup_free_ char *img = mar_xasprintf("docker://%s", ref);
    itest_run r;
    const char *argv[] = {"skopeo", "inspect", "--raw", "--tls-verify=false", img, NULL};
    itest_runv(&r, NULL, argv);
    json_t *doc = r.status == 0 ? itest_json(r.out.data) : NULL;
    itest_run_release(&r);
    return doc;
}

/* Sorted "digest platform annotations" lines of an index's entries. */
static char *entry_set(json_t *idx)
{
    mar_strv lines = {0};
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(idx, "manifests"), i, m)
    {
        char *p = json_dumps(json_object_get(m, "platform"), JSON_SORT_KEYS | JSON_COMPACT);
        char *a = json_object_get(m, "annotations") ? json_dumps(json_object_get(m, "annotations"),
                                                                 JSON_SORT_KEYS | JSON_COMPACT)
                                                    : NULL;
        mar_strv_push_take(&lines, mar_xasprintf("%s %s %s",
                                                 json_string_value(json_object_get(m, "digest")),
                                                 p ? p : "-", a ? a : "-"));
        free(p);
        free(a);
    }
    mar_strv_sort(&lines);
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t k = 0; k < lines.n; k++) {
        mar_buf_xprintf(&b, "%s\n", lines.v[k]);
    }
    mar_strv_release(&lines);
    return mar_buf_detach(&b, NULL);
}

static size_t n_entries(json_t *idx)
{
    return json_array_size(json_object_get(idx, "manifests"));
}

/* mar index create ARGS... DST SRC(8 per-arch images) */
static void create_from_arches(itest_run *r, const char *dst, const char *extra)
{
    const char *argv[32] = {getenv("MAR_BIN"), "index", "create", "--json"};
    size_t n = 4;
    if (extra) {
        argv[n++] = extra;
    }
    argv[n++] = dst;
    char *refs[8];
    for (size_t i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof(name), "arch-%s", arches[i]);
        refs[i] = mar_xstrdup(itest_fixture_ref(name));
        argv[n++] = refs[i];
    }
    argv[n] = NULL;
    itest_runv(r, NULL, argv);
    for (size_t i = 0; i < 8; i++) {
        free(refs[i]);
    }
}

static void test_equals_multi(void **state)
{
    (void)state;
    _cleanup_free_ char *dst = dst_ref("all");
    itest_run r;
    create_from_arches(&r, dst, NULL);
    must(&r, 0, "index create of the 8 per-arch images");
    json_t *res = itest_json(r.out.data);
    itest_run_release(&r);
    assert_int_equal(json_integer_value(json_object_get(res, "entries")), 8);
    assert_int_equal(json_integer_value(json_object_get(res, "attestations")), 2);
    json_t *st = json_object_get(res, "stats");
    /* Mounted from the per-arch repositories, never uploaded. */
    assert_int_equal(json_integer_value(json_object_get(st, "blobsPushed")), 0);
    assert_true(json_integer_value(json_object_get(st, "blobsMounted")) >= 8);
    json_t *made = remote_index(dst);
    assert_non_null(made);
    assert_string_equal(json_string_value(json_object_get(made, "mediaType")),
                        "application/vnd.oci.image.index.v1+json");
    json_t *multi = remote_index(itest_fixture_ref("multi"));
    _cleanup_free_ char *a = entry_set(made);
    _cleanup_free_ char *b = entry_set(multi);
    assert_string_equal(a, b);
    /* The printed digest is the one the registry serves. */
    _cleanup_free_ char *by_digest =
            mar_xasprintf("%s/%s/app@%s", itest_bed("MAR_TEST_REGISTRY"), prefix,
                          json_string_value(json_object_get(res, "digest")));
    json_t *again = remote_index(by_digest);
    assert_non_null(again);
    json_decref(again);
    json_decref(made);
    json_decref(multi);
    json_decref(res);
}

/* The made index, pulled and run as linux/arm64 (needs containerd, QEMU and root). */
static void test_run_arm64(void **state)
{
    (void)state;
    if (!itest_bed("MAR_TEST_CONTAINERD") || !itest_bed("MAR_TEST_BINFMT") || geteuid() != 0) {
        skip();
    }
    _cleanup_free_ char *dst = dst_ref("run");
    itest_run r;
    create_from_arches(&r, dst, NULL);
    must(&r, 0, "index create");
    itest_run_release(&r);
    _cleanup_free_ char *store = mar_xasprintf("%s/store", itest_tmpdir());
    _cleanup_free_ char *ctd =
            mar_xasprintf("CONTAINERD_ADDRESS=%s", itest_bed("MAR_TEST_CONTAINERD"));
    const char *env[] = {ctd, NULL};
    itest_mar(&r, env, "run", "-q", "--store", store, "--platform", "linux/arm64", dst, "uname",
              "-m", NULL);
    must(&r, 0, "mar run --platform linux/arm64");
    assert_string_equal(r.out.data, "aarch64\n");
    itest_run_release(&r);
}

static void test_dry_run(void **state)
{
    (void)state;
    _cleanup_free_ char *dst = dst_ref("dry");
    _cleanup_free_ char *a = mar_xstrdup(itest_fixture_ref("arch-amd64"));
    itest_run r;
    itest_mar(&r, NULL, "index", "create", "-n", "--annotation", "org.example.k=v", dst, a,
              itest_fixture_ref("arch-s390x"), NULL);
    must(&r, 0, "--dry-run");
    json_t *idx = itest_json(r.out.data);
    itest_run_release(&r);
    assert_int_equal(n_entries(idx), 3); /* amd64, its attestation, s390x */
    assert_string_equal(json_string_value(json_object_get(json_object_get(idx, "annotations"),
                                                          "org.example.k")),
                        "v");
    json_decref(idx);
    json_t *none = remote_index(dst);
    assert_null(none);
    /* A manifest and its attestation carried by two sources are listed once. */
    itest_mar(&r, NULL, "index", "create", "-n", dst, a, itest_fixture_ref("multi"), NULL);
    must(&r, 0, "--dry-run of overlapping sources");
    idx = itest_json(r.out.data);
    itest_run_release(&r);
    assert_int_equal(n_entries(idx), 10);
    json_decref(idx);
}

static void test_append_remove_replace(void **state)
{
    (void)state;
    _cleanup_free_ char *dst = dst_ref("grow");
    itest_run r;
    itest_mar(&r, NULL, "index", "create", "-q", dst, itest_fixture_ref("arch-s390x"), NULL);
    must(&r, 0, "index create of one image");
    itest_run_release(&r);
    itest_mar(&r, NULL, "index", "create", "-q", "--append", dst, itest_fixture_ref("arch-amd64"),
              NULL);
    must(&r, 0, "--append");
    itest_run_release(&r);
    json_t *idx = remote_index(dst);
    assert_int_equal(n_entries(idx), 3);
    json_decref(idx);
    /* The same platform again, another manifest: refused, then replaced. */
    itest_mar(&r, NULL, "index", "create", "-q", "--append", dst, itest_fixture_ref("single"),
              NULL);
    must(&r, 2, "a duplicate platform");
    assert_contains(r.err.data, "linux/amd64 twice");
    itest_run_release(&r);
    itest_mar(&r, NULL, "index", "create", "-q", "--append", "--replace", dst,
              itest_fixture_ref("single"), NULL);
    must(&r, 0, "--replace");
    itest_run_release(&r);
    idx = remote_index(dst);
    assert_int_equal(n_entries(idx), 2); /* s390x, the single amd64; the attestation went */
    json_decref(idx);
    itest_mar(&r, NULL, "index", "create", "-q", "--append", "--remove", "linux/amd64", dst, NULL);
    must(&r, 0, "--remove");
    itest_run_release(&r);
    idx = remote_index(dst);
    assert_int_equal(n_entries(idx), 1);
    assert_string_equal(
            json_string_value(json_object_get(
                    json_object_get(json_array_get(json_object_get(idx, "manifests"), 0),
                                    "platform"),
                    "architecture")),
            "s390x");
    json_decref(idx);
}

static void test_refusals(void **state)
{
    (void)state;
    itest_run r;
    _cleanup_free_ char *untagged =
            mar_xasprintf("%s/%s/untagged", itest_bed("MAR_TEST_REGISTRY"), prefix);
    itest_mar(&r, NULL, "index", "create", untagged, itest_fixture_ref("arch-amd64"), NULL);
    must(&r, 2, "DST without a tag");
    assert_contains(r.err.data, "needs a tag");
    itest_run_release(&r);
    _cleanup_free_ char *dst = dst_ref("never");
    _cleanup_free_ char *missing =
            mar_xasprintf("%s/mar/does-not-exist:latest", itest_bed("MAR_TEST_REGISTRY"));
    itest_mar(&r, NULL, "index", "create", dst, itest_fixture_ref("arch-amd64"), missing, NULL);
    must(&r, 3, "a source that does not exist");
    itest_run_release(&r);
    json_t *none = remote_index(dst);
    assert_null(none);
    /* An entry whose config says another platform: both values named. */
    itest_mar(&r, NULL, "index", "create", dst, itest_fixture_ref("confmismatch"), NULL);
    must(&r, 6, "a mislabeled source");
    assert_contains(r.err.data, "linux/arm64");
    assert_contains(r.err.data, "linux/amd64");
    itest_run_release(&r);
    none = remote_index(dst);
    assert_null(none);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    if (!json_object_get(itest_fixtures(), "arch-amd64")) {
        fail_msg("the bed lacks the per-arch samples (mar/arch-*)");
    }
    snprintf(prefix, sizeof(prefix), "index%d", (int)getpid());
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_equals_multi), cmocka_unit_test(test_run_arm64),
            cmocka_unit_test(test_dry_run),      cmocka_unit_test(test_append_remove_replace),
            cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
