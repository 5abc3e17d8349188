/* mar push against the bed's registries: plain HTTP, token auth (the scopes asked for, checked in
 * the token server's log; a denied push) and TLS. What lands in the registry is read back with
 * skopeo and compared byte for byte with the store; an index narrowed with --platform is pulled
 * back into an empty store and its arm64 entry run under QEMU. A source the store lacks pushes
 * nothing. */
#include "itest.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static char store[256];
static char prefix[64]; /* a repository prefix of this run: pushed images never collide */

static char *repo_ref(const char *host, const char *name)
{
    return mar_xasprintf("%s/%s/%s", host, prefix, name);
}

static void must(itest_run *r, int want, const char *what)
{
    if (r->status != want) {
        fail_msg("%s: status %d, want %d\nstdout: %s\nstderr: %s", what, r->status, want,
                 r->out.data, r->err.data);
    }
}

/* The bytes skopeo reads for a reference (docker://, TLS unchecked). */
static void skopeo_raw(const char *ref, mar_buf *ret, int *status)
{
    _cleanup_free_ char *img = mar_xasprintf("docker://%s", ref);
    itest_run r;
    const char *argv[] = {"skopeo", "inspect", "--raw", "--tls-verify=false", img, NULL};
    itest_runv(&r, NULL, argv);
    *status = r.status;
    *ret = r.out;
    mar_buf_release(&r.err);
}

static void store_blob(const char *digest, mar_buf *ret)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/blobs/sha256/%s", store, strchr(digest, ':') + 1);
    mar_err *e = NULL;
    *ret = (mar_buf)MAR_BUF_INIT(64u << 20);
    assert_int_equal(mar_read_file_at(AT_FDCWD, p, 64u << 20, ret, &e), 0);
}

/* The registry holds exactly the store's bytes for a document. */
static void assert_same_document(const char *repo, const char *digest)
{
    _cleanup_free_ char *ref = mar_xasprintf("%s@%s", repo, digest);
    mar_buf got, want;
    int st;
    skopeo_raw(ref, &got, &st);
    assert_int_equal(st, 0);
    store_blob(digest, &want);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    mar_buf_release(&got);
    mar_buf_release(&want);
}

/* "NAME@DIGEST\n" on stdout: the digest. */
static const char *printed_digest(const itest_run *r)
{
    static char d[80];
    const char *at = strrchr(r->out.data, '@');
    assert_non_null(at);
    snprintf(d, sizeof(d), "%.71s", at + 1);
    return d;
}

static void pull(const char *fixture, const char *platforms)
{
    itest_run r;
    if (platforms) {
        itest_mar(&r, NULL, "pull", "-q", "--no-unpack", "--store", store, "-p", platforms,
                  itest_fixture_ref(fixture), NULL);
    } else {
        itest_mar(&r, NULL, "pull", "-q", "--no-unpack", "--all-platforms", "--store", store,
                  itest_fixture_ref(fixture), NULL);
    }
    must(&r, 0, "pull");
    itest_run_release(&r);
}

/* Nothing reached the repository: the registry does not know it. */
static void assert_repo_unknown(const char *host, const char *name)
{
    _cleanup_free_ char *url = mar_xasprintf("http://%s/v2/%s/%s/tags/list", host, prefix, name);
    itest_run r;
    const char *argv[] = {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url, NULL};
    itest_runv(&r, NULL, argv);
    assert_string_equal(r.out.data, "404");
    itest_run_release(&r);
}

/* An image pushed as stored: the same digest, every document the same bytes, and a second push
 * finds everything present. */
static void test_exact(void **state)
{
    (void)state;
    const char *host = itest_bed("MAR_TEST_REGISTRY");
    static const char *const fixtures[] = {"single", "zstd", "dockerlist"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(fixtures); i++) {
        pull(fixtures[i], NULL);
        _cleanup_free_ char *dst = repo_ref(host, fixtures[i]);
        _cleanup_free_ char *tagged = mar_xasprintf("%s:1", dst);
        itest_run r;
        itest_mar(&r, NULL, "push", "--json", "--store", store, itest_fixture_ref(fixtures[i]),
                  tagged, NULL);
        must(&r, 0, "push");
        json_t *doc = itest_json(r.out.data);
        const char *digest = json_string_value(json_object_get(doc, "digest"));
        const char *source = json_string_value(
                json_object_get(json_object_get(itest_fixtures(), fixtures[i]), "digest"));
        assert_string_equal(digest, source);
        assert_false(json_is_true(json_object_get(doc, "newIndex")));
        assert_same_document(dst, digest);
        json_t *ms = json_object_get(doc, "manifests");
        size_t k;
        json_t *m;
        json_array_foreach(ms, k, m)
        {
            assert_same_document(dst, json_string_value(json_object_get(m, "digest")));
        }
        json_t *stats = json_object_get(doc, "stats");
        assert_true(json_integer_value(json_object_get(stats, "blobsPushed")) > 0);
        json_decref(doc);
        itest_run_release(&r);

        /* Again: nothing but the top document is sent. */
        itest_mar(&r, NULL, "push", "--json", "--store", store, itest_fixture_ref(fixtures[i]),
                  tagged, NULL);
        must(&r, 0, "push again");
        doc = itest_json(r.out.data);
        stats = json_object_get(doc, "stats");
        assert_int_equal(json_integer_value(json_object_get(stats, "blobsPushed")), 0);
        assert_int_equal(json_integer_value(json_object_get(stats, "manifestsPushed")), 1);
        json_decref(doc);
        itest_run_release(&r);
    }
}

/* An index whose attestations were not pulled: refused, listing them, nothing sent; with
 * --platform a new index of the stored entries, whose children are the stored bytes. Pulled
 * back into an empty store, its arm64 entry runs under QEMU. */
static void test_platforms(void **state)
{
    (void)state;
    const char *host = itest_bed("MAR_TEST_REGISTRY");
    pull("multi", NULL);
    _cleanup_free_ char *dst = repo_ref(host, "multi");
    _cleanup_free_ char *tagged = mar_xasprintf("%s:1", dst);
    itest_run r;
    itest_mar(&r, NULL, "push", "--store", store, itest_fixture_ref("multi"), tagged, NULL);
    must(&r, 3, "push of an incomplete index");
    assert_contains(r.err.data, "lacks 2 parts");
    assert_contains(r.err.data, "(attestation)");
    assert_contains(r.err.data, "--platform");
    assert_string_equal(r.out.data, "");
    itest_run_release(&r);
    assert_repo_unknown(host, "multi");

    itest_mar(&r, NULL, "push", "--store", store, "-p", "linux/amd64,linux/arm64",
              itest_fixture_ref("multi"), tagged, NULL);
    must(&r, 0, "push --platform");
    const char *digest = printed_digest(&r);
    assert_contains(r.err.data, "a new index of 2 of the 10 entries");
    assert_contains(r.err.data, "2 attestations of the chosen platforms are not in the store");
    mar_buf raw;
    int st;
    skopeo_raw(tagged, &raw, &st);
    assert_int_equal(st, 0);
    mar_digest got;
    mar_digest_of(MAR_DIGEST_SHA256, raw.data, raw.len, &got);
    assert_string_equal(got.str, digest);
    json_t *idx = itest_json(raw.data);
    json_t *ms = json_object_get(idx, "manifests");
    assert_int_equal(json_array_size(ms), 2);
    for (size_t i = 0; i < 2; i++) {
        assert_same_document(dst,
                             json_string_value(json_object_get(json_array_get(ms, i), "digest")));
    }
    json_decref(idx);
    mar_buf_release(&raw);
    itest_run_release(&r);

    itest_mar(&r, NULL, "push", "--store", store, "-p", "linux/riscv64", itest_fixture_ref("multi"),
              tagged, NULL);
    must(&r, 3, "push of a platform the index lacks");
    assert_contains(r.err.data, "no entry for linux/riscv64");
    itest_run_release(&r);

    if (geteuid() != 0 || !itest_bed("MAR_TEST_CONTAINERD") || !itest_bed("MAR_TEST_BINFMT")) {
        fprintf(stderr, "the arm64 run needs root, containerd and binfmt: not run\n");
        return;
    }
    _cleanup_free_ char *fresh = mar_xasprintf("%s/fresh", itest_tmpdir());
    _cleanup_free_ char *ctd =
            mar_xasprintf("CONTAINERD_ADDRESS=%s", itest_bed("MAR_TEST_CONTAINERD"));
    const char *env[] = {ctd, NULL};
    itest_mar(&r, env, "run", "-q", "--store", fresh, "--platform", "linux/arm64", tagged, "uname",
              "-m", NULL);
    must(&r, 0, "run --platform linux/arm64 of the pushed image");
    assert_string_equal(r.out.data, "aarch64\n");
    itest_run_release(&r);
}

/* A source the store does not have: exit 3, nothing sent. */
static void test_not_stored(void **state)
{
    (void)state;
    const char *host = itest_bed("MAR_TEST_REGISTRY");
    _cleanup_free_ char *src = mar_xasprintf("%s/mar/never-pulled:1", host);
    _cleanup_free_ char *dst = repo_ref(host, "never:1");
    itest_run r;
    itest_mar(&r, NULL, "push", "--store", store, src, dst, NULL);
    must(&r, 3, "push of what the store lacks");
    assert_contains(r.err.data, "is not in the store");
    itest_run_release(&r);
    assert_repo_unknown(host, "never");
    itest_mar(&r, NULL, "push", "--store", store, "Bad//Name", NULL);
    must(&r, 2, "push of a bad reference");
    itest_run_release(&r);
}

/* Behind the token server: one token for the whole push, asked for pull,push on the
 * repository, with the user's credentials; a repository the user may only pull from is exit 4
 * naming the repository and the action; without credentials too. */
static void test_token_auth(void **state)
{
    (void)state;
    const char *host = itest_bed("MAR_TEST_TOKEN_REGISTRY");
    pull("single", NULL);
    itest_run r;
    _cleanup_free_ char *cmd =
            mar_xasprintf("printf %%s '%s:%s' | base64 -w0", itest_bed("MAR_TEST_USER"),
                          itest_bed("MAR_TEST_PASSWORD"));
    const char *b64[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, b64);
    _cleanup_free_ char *json =
            mar_xasprintf("{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}", host, r.out.data);
    itest_run_release(&r);
    free(itest_write("docker/config.json", json, 0600));
    _cleanup_free_ char *dc = mar_xasprintf("DOCKER_CONFIG=%s/docker", itest_tmpdir());
    const char *env[] = {dc, NULL};

    _cleanup_free_ char *dst = repo_ref(host, "tok:1");
    itest_mar(&r, env, "push", "-q", "--store", store, itest_fixture_ref("single"), dst, NULL);
    must(&r, 0, "push with a token");
    assert_not_contains(r.err.data, itest_bed("MAR_TEST_PASSWORD"));
    itest_run_release(&r);
    mar_buf log = MAR_BUF_INIT(16u << 20);
    mar_err *e = NULL;
    assert_int_equal(
            mar_read_file_at(AT_FDCWD, itest_bed("MAR_TEST_TOKEN_LOG"), 16u << 20, &log, &e), 0);
    _cleanup_free_ char *scope = mar_xasprintf("\"repository:%s/tok:pull,push\"", prefix);
    size_t fetches = 0;
    for (const char *l = log.data; l && *l;) {
        const char *nl = strchr(l, '\n');
        _cleanup_free_ char *line = mar_xstrndup(l, nl ? (size_t)(nl - l) : strlen(l));
        if (strstr(line, scope)) {
            fetches++;
            assert_contains(line, "\"auth\": true");
        }
        l = nl ? nl + 1 : NULL;
    }
    assert_int_equal(fetches, 1);
    mar_buf_release(&log);

    _cleanup_free_ char *ro = mar_xasprintf("%s/readonly/%s:1", host, prefix);
    itest_mar(&r, env, "push", "-q", "--store", store, itest_fixture_ref("single"), ro, NULL);
    must(&r, 4, "push where only pull is granted");
    _cleanup_free_ char *what = mar_xasprintf("push to 'readonly/%s' on '%s' denied", prefix, host);
    assert_contains(r.err.data, what);
    itest_run_release(&r);

    _cleanup_free_ char *anon = mar_xasprintf("DOCKER_CONFIG=%s/nowhere", itest_tmpdir());
    const char *env2[] = {anon, NULL};
    _cleanup_free_ char *dst2 = repo_ref(host, "anon:1");
    itest_mar(&r, env2, "push", "-q", "--store", store, itest_fixture_ref("single"), dst2, NULL);
    must(&r, 4, "push without credentials");
    itest_run_release(&r);
}

/* Over verified TLS (a certs.d CA), HTTP/2 where the server offers it. */
static void test_tls(void **state)
{
    (void)state;
    const char *host = itest_bed("MAR_TEST_TLS_REGISTRY");
    pull("zstd", NULL);
    mar_buf ca = MAR_BUF_INIT(1 << 20);
    mar_err *e = NULL;
    assert_int_equal(mar_read_file_at(AT_FDCWD, itest_bed("MAR_TEST_TLS_CA"), 1 << 20, &ca, &e), 0);
    _cleanup_free_ char *name = mar_xasprintf("xdg/mar/certs.d/%s/ca.crt", host);
    _cleanup_free_ char *d4 = mar_xasprintf("%s/xdg/mar/certs.d/%s", itest_tmpdir(), host);
    _cleanup_free_ char *mk = mar_xasprintf("mkdir -p '%s'", d4);
    itest_run r;
    const char *sh[] = {"sh", "-c", mk, NULL};
    itest_runv(&r, NULL, sh);
    itest_run_release(&r);
    free(itest_write(name, ca.data, 0644));
    mar_buf_release(&ca);
    _cleanup_free_ char *xdg = mar_xasprintf("XDG_CONFIG_HOME=%s/xdg", itest_tmpdir());
    _cleanup_free_ char *tls = mar_xasprintf("MAR_TLS_REGISTRIES=%s", host);
    const char *env[] = {xdg, tls, NULL};
    _cleanup_free_ char *dst = repo_ref(host, "tls");
    _cleanup_free_ char *tagged = mar_xasprintf("%s:1", dst);
    itest_mar(&r, env, "--debug", "push", "--store", store, itest_fixture_ref("zstd"), tagged,
              NULL);
    must(&r, 0, "push over TLS");
    assert_contains(r.err.data, "HTTP/2");
    assert_not_contains(r.err.data, "insecure");
    const char *digest = printed_digest(&r);
    assert_same_document(dst, digest);
    itest_run_release(&r);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY",       "MAR_TEST_FIXTURES",
                                "MAR_TEST_TOKEN_REGISTRY", "MAR_TEST_TLS_REGISTRY",
                                "MAR_TEST_TLS_CA",         NULL};
    itest_require(need);
    snprintf(store, sizeof(store), "%s/store", itest_tmpdir());
    snprintf(prefix, sizeof(prefix), "push%d", (int)getpid());
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_exact),      cmocka_unit_test(test_platforms),
            cmocka_unit_test(test_not_stored), cmocka_unit_test(test_token_auth),
            cmocka_unit_test(test_tls),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
