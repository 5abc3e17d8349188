/* Choosing through nested indexes as containerd's images.Manifest does
 * (docs/internals/platforms.md §7, §9): the first candidate of each index, descent into nested
 * indexes with a depth limit and loop detection, platform-less entries, and the entries that are
 * never candidates (attestations, other BuildKit reference types, unknown media types, platforms
 * mar cannot keep). Indexes are built from compact entry specs; digests are numbered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "oci/oci.h"
#include "tbuf.h"

static mar_digest dig(unsigned id)
{
    mar_digest d;
    char s[80];
    snprintf(s, sizeof(s), "sha256:%064x", id);
    assert_int_equal(mar_digest_parse(s, &d, NULL), 0);
    return d;
}

/* Entry specs "KIND:ID:PLATFORM[:EXTRA]": KIND m (manifest), i (index), u (unknown media type),
 * x (vnd.docker.reference.type EXTRA), a (attestation of manifest EXTRA), e (overlong
 * os.features); PLATFORM "-" for none. */
static oci_manifest *index_of(const char *const *specs)
{
    mar_buf b = MAR_BUF_INIT(1 << 20);
    T_BUF(mar_buf_puts(&b,
                       "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_INDEX "\",\"manifests\":["));
    for (size_t i = 0; specs[i]; i++) {
        char kind = specs[i][0];
        unsigned id = (unsigned)strtoul(specs[i] + 2, NULL, 10);
        const char *plat = strchr(specs[i] + 2, ':') + 1;
        const char *extra = strchr(plat, ':');
        char ps[64];
        snprintf(ps, sizeof(ps), "%.*s", (int)(extra ? (size_t)(extra - plat) : strlen(plat)),
                 plat);
        extra = extra ? extra + 1 : NULL;
        const char *mt = kind == 'i'   ? OCI_MT_INDEX
                         : kind == 'u' ? "application/vnd.oci.artifact.manifest.v1+json"
                                       : OCI_MT_MANIFEST;
        T_BUF(mar_buf_printf(&b, "%s{\"mediaType\":\"%s\",\"size\":100,\"digest\":\"%s\"",
                             i ? "," : "", mt, dig(id).str));
        if (kind == 'a') {
            T_BUF(mar_buf_printf(&b,
                                 ",\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"},"
                                 "\"annotations\":{\"vnd.docker.reference.type\":"
                                 "\"attestation-manifest\",\"vnd.docker.reference.digest\":\"%s\"}",
                                 dig((unsigned)atoi(extra)).str));
        } else if (strcmp(ps, "-") != 0) {
            oci_platform p;
            oci_platform host = {.os = "linux", .arch = "amd64"};
            mar_err *e = NULL;
            assert_int_equal(oci_platform_parse(ps, &host, &p, &e), 0);
            T_BUF(mar_buf_printf(&b, ",\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"", p.os,
                                 p.arch));
            if (p.variant[0]) {
                T_BUF(mar_buf_printf(&b, ",\"variant\":\"%s\"", p.variant));
            }
            if (kind == 'e') {
                T_BUF(mar_buf_puts(&b, ",\"os.features\":["));
                for (int k = 0; k < 30; k++) {
                    T_BUF(mar_buf_printf(&b, "%s\"a feature with spaces %d\"", k ? "," : "", k));
                }
                T_BUF(mar_buf_puts(&b, "]"));
            }
            T_BUF(mar_buf_puts(&b, "}"));
            if (kind == 'x') {
                T_BUF(mar_buf_printf(&b, ",\"annotations\":{\"vnd.docker.reference.type\":\"%s\"}",
                                     extra));
            }
        }
        T_BUF(mar_buf_puts(&b, "}"));
    }
    T_BUF(mar_buf_puts(&b, "]}"));
    oci_manifest *m = NULL;
    mar_err *e = NULL;
    if (oci_manifest_parse(b.data, b.len, OCI_MT_INDEX, &m, &e) < 0) {
        print_error("index: %s\n", e->msg);
        fail();
    }
    mar_buf_release(&b);
    return m;
}

/* The nested indexes a test knows, by digest number. */
typedef struct docs {
    unsigned id[16];
    oci_manifest *m[16];
    size_t n;
    size_t lookups;
    unsigned missing; /* a digest number lookup says it lacks (MAR_ENOTFOUND) */
    unsigned failing; /* a digest number lookup fails with MAR_ENET */
} docs;

static void add(docs *d, unsigned id, oci_manifest *m)
{
    d->id[d->n] = id;
    d->m[d->n++] = m;
}

static void docs_release(docs *d)
{
    for (size_t i = 0; i < d->n; i++) {
        oci_manifest_free(d->m[i]);
    }
}

static int lookup(const oci_descriptor *desc, void *ud, const oci_manifest **ret, mar_err **err)
{
    docs *d = ud;
    d->lookups++;
    for (size_t i = 0; i < d->n; i++) {
        mar_digest want = dig(d->id[i]);
        if (mar_digest_eq(&want, &desc->digest) && d->id[i] != d->missing) {
            if (d->id[i] == d->failing) {
                return mar_err_set(err, MAR_ENET, 0, "cannot fetch %s", desc->digest.str);
            }
            *ret = d->m[i];
            return 0;
        }
    }
    return mar_err_set(err, MAR_ENOTFOUND, 0, "no %s", desc->digest.str);
}

static bool accept_all(const oci_descriptor *d, void *ud)
{
    (void)d;
    (void)ud;
    return true;
}

/* Picks for spec with Only(spec); returns the chosen digest number, 0 for no match, -code. */
static long pick(const oci_manifest *top, docs *d, const char *spec, bool accept, size_t *depth)
{
    oci_platform host = {.os = "linux", .arch = "amd64"}, p;
    mar_err *e = NULL;
    assert_int_equal(oci_platform_parse(spec, &host, &p, &e), 0);
    oci_matcher m;
    oci_matcher_only(&m, &p);
    mar_digest td = dig(1000);
    oci_pick r;
    int rc = oci_index_pick(top, &td, &m, lookup, accept ? accept_all : NULL, d, &r, &e);
    if (rc < 0) {
        long code = -(long)mar_err_code(e);
        mar_err_free(e);
        return code;
    }
    if (rc == 1) {
        return 0;
    }
    if (depth) {
        *depth = r.depth;
    }
    return (long)strtoul(r.desc->digest.str + 7 + 56, NULL, 16);
}

/* The image-spec's shape: a nested index without a platform beside labelled manifests. */
static void test_nested(void **state)
{
    (void)state;
    docs d = {0};
    const char *const top_s[] = {"i:10:-", "m:5:linux/ppc64le", NULL};
    const char *const n1_s[] = {"m:1:linux/amd64", "m:2:linux/arm64/v8", "i:11:-", NULL};
    const char *const n2_s[] = {"m:3:linux/s390x", NULL};
    oci_manifest *top = index_of(top_s);
    add(&d, 10, index_of(n1_s));
    add(&d, 11, index_of(n2_s));
    size_t depth = 99;
    assert_int_equal(pick(top, &d, "linux/amd64", false, &depth), 1);
    assert_int_equal(depth, 1);
    assert_int_equal(pick(top, &d, "linux/arm64", false, NULL), 2);
    assert_int_equal(pick(top, &d, "linux/ppc64le", false, &depth), 5);
    assert_int_equal(depth, 0);
    assert_int_equal(pick(top, &d, "linux/s390x", false, &depth), 3);
    assert_int_equal(depth, 2);
    assert_int_equal(pick(top, &d, "linux/riscv64", false, NULL), 0);
    /* The path names the nested indexes, outermost first. */
    oci_platform host = {.os = "linux", .arch = "amd64"}, p;
    assert_int_equal(oci_platform_parse("linux/s390x", &host, &p, NULL), 0);
    oci_matcher m;
    oci_matcher_only(&m, &p);
    mar_digest td = dig(1000);
    oci_pick r;
    assert_int_equal(oci_index_pick(top, &td, &m, lookup, NULL, &d, &r, NULL), 0);
    mar_digest want10 = dig(10), want11 = dig(11);
    assert_true(mar_digest_eq(&r.via[0], &want10));
    assert_true(mar_digest_eq(&r.via[1], &want11));
    oci_manifest_free(top);
    docs_release(&d);
}

/* containerd looks at the first candidate of each index only: two platform-less nested indexes,
 * and the second one's platforms are never reached. With accept (the store) the search goes on. */
static void test_first_candidate_only(void **state)
{
    (void)state;
    docs d = {0};
    const char *const top_s[] = {"i:10:-", "i:11:-", NULL};
    const char *const a_s[] = {"m:1:linux/amd64", NULL};
    const char *const b_s[] = {"m:3:linux/s390x", NULL};
    oci_manifest *top = index_of(top_s);
    add(&d, 10, index_of(a_s));
    add(&d, 11, index_of(b_s));
    assert_int_equal(pick(top, &d, "linux/amd64", false, NULL), 1);
    assert_int_equal(pick(top, &d, "linux/s390x", false, NULL), 0);
    assert_int_equal(pick(top, &d, "linux/s390x", true, NULL), 3);
    /* Platform-less manifests: the first one is returned, whatever its config says (the caller
     * checks it and stops there). */
    const char *const pl_s[] = {"m:7:-", "m:8:-", NULL};
    oci_manifest *pl = index_of(pl_s);
    assert_int_equal(pick(pl, &d, "linux/arm64", false, NULL), 7);
    /* A labelled match sorts before platform-less entries. */
    const char *const mix_s[] = {"m:7:-", "m:9:linux/386", NULL};
    oci_manifest *mix = index_of(mix_s);
    assert_int_equal(pick(mix, &d, "linux/amd64", false, NULL), 9);
    oci_manifest_free(mix);
    oci_manifest_free(pl);
    oci_manifest_free(top);
    docs_release(&d);
}

/* OCI_INDEX_DEPTH_MAX levels are read; an index deeper than that is never a candidate, and the
 * entries beside it still are. */
static void test_depth_limit(void **state)
{
    (void)state;
    docs d = {0};
    char specs[8][32];
    /* top -> 10 -> 11 -> 12 -> 13 -> 14 -> [amd64]: 14 is the fifth level. */
    const char *const top_s[] = {"i:10:-", "m:2:linux/arm64", NULL};
    oci_manifest *top = index_of(top_s);
    for (unsigned lvl = 10; lvl <= 13; lvl++) {
        snprintf(specs[lvl - 10], sizeof(specs[0]), "i:%u:-", lvl + 1);
        const char *const s[] = {specs[lvl - 10], NULL};
        add(&d, lvl, index_of(s));
    }
    const char *const leaf_s[] = {"m:1:linux/amd64", NULL};
    add(&d, 14, index_of(leaf_s));
    assert_int_equal(pick(top, &d, "linux/amd64", false, NULL), 0);
    assert_int_equal(pick(top, &d, "linux/arm64", false, NULL), 2);
    /* Level 4 is read. */
    const char *const top4_s[] = {"i:11:-", NULL};
    oci_manifest *top4 = index_of(top4_s);
    size_t depth = 0;
    assert_int_equal(pick(top4, &d, "linux/amd64", false, &depth), 1);
    assert_int_equal(depth, OCI_INDEX_DEPTH_MAX);
    /* The check the listings use says why. */
    mar_digest path[OCI_INDEX_DEPTH_MAX + 1];
    for (size_t i = 0; i < MAR_ARRAY_SIZE(path); i++) {
        path[i] = dig(900 + (unsigned)i);
    }
    oci_descriptor nd = {.digest = dig(14)};
    mar_err *e = NULL;
    assert_int_equal(oci_index_nest_check(&nd, path, OCI_INDEX_DEPTH_MAX, &e), 0);
    assert_int_equal(oci_index_nest_check(&nd, path, OCI_INDEX_DEPTH_MAX + 1, &e),
                     -MAR_EUNSUPPORTED);
    assert_non_null(strstr(e->msg, "nested 5 levels deep, more than the 4 mar reads"));
    mar_err_free(e);
    oci_manifest_free(top4);
    oci_manifest_free(top);
    docs_release(&d);
}

/* A digest already on the path is a loop: never followed (only a lying source can serve one, as a
 * document cannot contain its own digest). */
static void test_loop(void **state)
{
    (void)state;
    docs d = {0};
    const char *const top_s[] = {"i:10:-", "m:2:linux/arm64", NULL};
    const char *const a_s[] = {"i:11:-", NULL};
    const char *const b_s[] = {"i:10:-", "m:1:linux/amd64", NULL};
    oci_manifest *top = index_of(top_s);
    add(&d, 10, index_of(a_s));
    add(&d, 11, index_of(b_s));
    /* 10 -> 11 -> (10: loop, skipped) -> amd64 */
    assert_int_equal(pick(top, &d, "linux/amd64", false, NULL), 1);
    assert_true(d.lookups <= 2);
    const char *const self_s[] = {"i:1000:-", "m:2:linux/arm64", NULL};
    oci_manifest *self = index_of(self_s);
    d.lookups = 0;
    assert_int_equal(pick(self, &d, "linux/arm64", false, NULL), 2);
    assert_int_equal(d.lookups, 0);
    mar_digest path[1] = {dig(1000)};
    oci_descriptor nd = {.digest = dig(1000)};
    mar_err *e = NULL;
    assert_int_equal(oci_index_nest_check(&nd, path, 1, &e), -MAR_EINTEGRITY);
    assert_non_null(strstr(e->msg, "(a loop)"));
    mar_err_free(e);
    oci_manifest_free(self);
    oci_manifest_free(top);
    docs_release(&d);
}

/* Entries that are never candidates, whatever their platform. */
static void test_not_candidates(void **state)
{
    (void)state;
    docs d = {0};
    const char *const s[] = {"u:1:linux/amd64", "x:2:linux/amd64:sbom-index", "a:3:-:9",
                             "e:4:linux/amd64", "m:9:linux/amd64/v1",         NULL};
    oci_manifest *top = index_of(s);
    assert_int_equal(oci_descriptor_role(&top->manifests[0]), OCI_ENTRY_UNKNOWN);
    assert_int_equal(oci_descriptor_role(&top->manifests[1]), OCI_ENTRY_IGNORED);
    assert_int_equal(oci_descriptor_role(&top->manifests[2]), OCI_ENTRY_ATTESTATION);
    assert_int_equal(oci_descriptor_role(&top->manifests[3]), OCI_ENTRY_MANIFEST);
    assert_non_null(top->manifests[3].platform_err);
    assert_null(top->manifests[4].platform_err);
    assert_int_equal(pick(top, &d, "linux/amd64", false, NULL), 9);
    mar_digest att;
    assert_true(oci_descriptor_attests(&top->manifests[2], &att));
    mar_digest nine = dig(9);
    assert_true(mar_digest_eq(&att, &nine));
    assert_false(oci_descriptor_attests(&top->manifests[1], &att));
    oci_matcher m;
    oci_platform p = {.os = "linux", .arch = "amd64"};
    oci_matcher_only(&m, &p);
    oci_selection sel;
    oci_index_select(top, &m, &sel);
    assert_int_equal(sel.n, 1);
    assert_int_equal(sel.n_attestations, 1);
    oci_selection_release(&sel);
    oci_manifest_free(top);
}

/* Lookup failures: containerd's path fails with them; the store's search passes over a nested
 * index it does not hold. A nested entry that is really a manifest is type confusion. */
static void test_lookup_failures(void **state)
{
    (void)state;
    docs d = {0};
    const char *const top_s[] = {"i:10:-", "i:11:-", NULL};
    const char *const a_s[] = {"m:1:linux/amd64", NULL};
    const char *const b_s[] = {"m:3:linux/amd64", NULL};
    oci_manifest *top = index_of(top_s);
    add(&d, 10, index_of(a_s));
    add(&d, 11, index_of(b_s));
    d.failing = 10;
    assert_int_equal(pick(top, &d, "linux/amd64", false, NULL), -MAR_ENET);
    d.failing = 0;
    d.missing = 10;
    assert_int_equal(pick(top, &d, "linux/amd64", false, NULL), -MAR_ENOTFOUND);
    assert_int_equal(pick(top, &d, "linux/amd64", true, NULL), 3);
    d.missing = 0;
    /* 10 served as a manifest. */
    oci_manifest_free(d.m[0]);
    const char *mf = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST
                     "\",\"config\":{\"mediaType\":\"" OCI_MT_CONFIG "\",\"size\":2,\"digest\":"
                     "\"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"},"
                     "\"layers\":[]}";
    assert_int_equal(oci_manifest_parse(mf, strlen(mf), OCI_MT_MANIFEST, &d.m[0], NULL), 0);
    assert_int_equal(pick(top, &d, "linux/amd64", false, NULL), -MAR_EINTEGRITY);
    oci_manifest_free(top);
    docs_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_nested),         cmocka_unit_test(test_first_candidate_only),
            cmocka_unit_test(test_depth_limit),    cmocka_unit_test(test_loop),
            cmocka_unit_test(test_not_candidates), cmocka_unit_test(test_lookup_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
