/* The platform choice is containerd's own: for each requested platform, the manifest mar marks
 * is the one containerd 1.6 unpacks with `ctr images pull --platform` (platforms.Only), read back
 * from the snapshot it creates (the chain ID of a one-layer image is its diff_id). Nested indexes
 * and platform-less entries are chosen by containerd's images.Manifest, unchanged in this respect
 * from 1.6 to 2.x (core/images/image.go). deepnest's amd64 entry, one level below what mar reads
 * (docs/internals/platforms.md §7), is the one case left out on purpose. */
#include "itest.h"

#include <string.h>

static const char *S(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The diff_id of the platform entry whose manifest digest is d, from the fixture summary. */
static const char *diff_id_of(const char *fixture, const char *d)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(json_object_get(itest_fixtures(), fixture), "platforms"), i,
                       p)
    {
        if (strcmp(S(p, "digest"), d) == 0) {
            return S(p, "diffId");
        }
    }
    return NULL;
}

static const char *mar_choice(const char *fixture, const char *platform)
{
    itest_run r;
    const char *ref = itest_fixture_ref(fixture);
    if (platform) {
        itest_mar(&r, NULL, "-q", "inspect", "--json", "--platform", platform, ref, NULL);
    } else {
        itest_mar(&r, NULL, "-q", "inspect", "--json", ref, NULL);
    }
    json_t *j = json_loads(r.out.data, 0, NULL);
    const char *sel = j ? S(j, "selected") : NULL;
    const char *id = sel ? diff_id_of(fixture, sel) : NULL;
    json_decref(j);
    itest_run_release(&r);
    return id;
}

static char *ctr_choice(const char *fixture, const char *platform, int n)
{
    const char *sock = itest_bed("MAR_TEST_CONTAINERD");
    _cleanup_free_ char *ns = mar_xasprintf("marsel-%s-%d-%d", fixture, n, (int)getpid());
    const char *ref = itest_fixture_ref(fixture);
    itest_run r;
    /* Fetch every platform first: ctr's fetch filter is exact, its unpack uses Only(p). */
    const char *fetch[] = {"ctr",          "--address",       sock, "-n", ns, "content", "fetch",
                           "--plain-http", "--all-platforms", ref,  NULL};
    itest_runv(&r, NULL, fetch);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    const char *pull_p[] = {"ctr",  "--address",    sock,         "-n",     ns,  "images",
                            "pull", "--plain-http", "--platform", platform, ref, NULL};
    const char *pull_d[] = {"ctr",    "--address", sock,           "-n", ns,
                            "images", "pull",      "--plain-http", ref,  NULL};
    itest_runv(&r, NULL, platform ? pull_p : pull_d);
    int st = r.status;
    bool nomatch = strstr(r.err.data, "no match for platform") != NULL;
    itest_run_release(&r);
    if (st != 0) {
        assert_true(nomatch);
        return NULL;
    }
    const char *snaps[] = {"ctr", "--address", sock, "-n", ns, "snapshots", "ls", NULL};
    itest_runv(&r, NULL, snaps);
    char *key = NULL;
    char *line = strchr(r.out.data, '\n');
    if (line && mar_str_startswith(line + 1, "sha256:")) {
        key = mar_xstrndup(line + 1, 71);
    }
    itest_run_release(&r);
    return key;
}

static void test_same_choice(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_CONTAINERD", "MAR_TEST_FIXTURES",
                                NULL};
    itest_require(need);
    static const struct {
        const char *fixture, *platform;
    } cases[] = {
            {"multi", NULL},
            {"multi", "linux/amd64"},
            {"multi", "linux/amd64/v2"},
            {"multi", "linux/386"},
            {"multi", "linux/arm64"},
            {"multi", "linux/arm64/v8"},
            {"multi", "linux/arm"},
            {"multi", "linux/arm/v6"},
            {"multi", "linux/arm/v8"},
            {"multi", "linux/arm/v5"},
            {"multi", "linux/s390x"},
            {"multi", "linux/ppc64le"},
            {"multi", "linux/mips64le"},
            {"multi", "linux/riscv64"},
            {"dockerlist", "linux/arm64"},
            {"dockerlist", "linux/arm/v7"},
            {"zstd", "linux/arm64/v8"},
            /* Nested indexes, descended as images.Manifest does: the first candidate of each
             * index only. */
            {"nested", NULL},
            {"nested", "linux/s390x"},
            {"nested", "linux/arm64"},
            {"nested", "linux/ppc64le"},
            {"nested", "linux/riscv64"},
            {"deepnest", "linux/s390x"},
            {"deepnest", "linux/arm64"},
            /* Entries without a platform: the first one's config decides, no second chance. */
            {"platformless", NULL},
            {"platformless", "linux/arm64"},
            {"platformless", "linux/amd64"},
    };
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        const char *m = mar_choice(cases[i].fixture, cases[i].platform);
        char *c = ctr_choice(cases[i].fixture, cases[i].platform, (int)i);
        bool same = (!m && !c) || (m && c && strcmp(m, c) == 0);
        printf("%-10s %-16s mar=%.19s ctr=%.19s %s\n", cases[i].fixture,
               cases[i].platform ? cases[i].platform : "(default)", m ? m : "none", c ? c : "none",
               same ? "same" : "DIFFERENT");
        bad += !same;
        free(c);
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_same_choice)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
