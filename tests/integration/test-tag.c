/* mar tag: a new name in the store (the per-platform entries follow, the documents are shared),
 * and in a registry: the same repository takes the manifest again (no blob request at all, seen
 * through the fault proxy), another repository gets every blob mounted (no upload) and the
 * documents byte for byte, also behind the token server (the mount's source asked for with pull
 * only). Across registries, or from a source that does not exist, nothing happens. */
#include "itest.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static pid_t proxy_pid = -1;
static int port;
static char store[256];
static char prefix[64];

static void must(itest_run *r, int want, const char *what)
{
    if (r->status != want) {
        fail_msg("%s: status %d, want %d\nstdout: %s\nstderr: %s", what, r->status, want,
                 r->out.data, r->err.data);
    }
}

static void control(const char *path)
{
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d%s", port, path);
    itest_run r;
    const char *argv[] = {"curl", "-sf", "-X", "POST", url, NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
}

static json_t *proxy_stats(void)
{
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d/_stats", port);
    itest_run r;
    const char *argv[] = {"curl", "-sf", url, NULL};
    itest_runv(&r, NULL, argv);
    json_t *doc = itest_json(r.out.data);
    itest_run_release(&r);
    return doc;
}

/* How many requests of a method went to paths containing needle. */
static size_t count(json_t *st, const char *needle, const char *method)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "paths"), k, v)
    {
        if (!strstr(k, needle)) {
            continue;
        }
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(v, "methods"), i, m)
        {
            n += strcmp(json_string_value(m), method) == 0;
        }
    }
    return n;
}

static void raw(const char *ref, mar_buf *ret)
{
    _cleanup_free_ char *img = mar_xasprintf("docker://%s", ref);
    itest_run r;
    const char *argv[] = {"skopeo", "inspect", "--raw", "--tls-verify=false", img, NULL};
    itest_runv(&r, NULL, argv);
    if (r.status != 0) {
        fail_msg("skopeo inspect %s: %s", ref, r.err.data);
    }
    *ret = r.out;
    mar_buf_release(&r.err);
}

static void assert_same_raw(const char *a, const char *b)
{
    mar_buf x, y;
    raw(a, &x);
    raw(b, &y);
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.data, y.data, x.len);
    mar_buf_release(&x);
    mar_buf_release(&y);
}

/* In the store: the new name points at the same index and has the same platform entries;
 * images and unpack read it. */
static void test_local(void **state)
{
    (void)state;
    itest_run r;
    itest_mar(&r, NULL, "pull", "-q", "--no-unpack", "--store", store, "-p",
              "linux/amd64,linux/arm64", itest_fixture_ref("multi"), NULL);
    must(&r, 0, "pull");
    itest_run_release(&r);
    itest_mar(&r, NULL, "tag", "--store", store, itest_fixture_ref("multi"), "local/multi:v1",
              NULL);
    must(&r, 0, "tag in the store");
    const char *digest = json_string_value(
            json_object_get(json_object_get(itest_fixtures(), "multi"), "digest"));
    _cleanup_free_ char *want = mar_xasprintf("docker.io/local/multi:v1@%s\n", digest);
    assert_string_equal(r.out.data, want);
    itest_run_release(&r);
    itest_mar(&r, NULL, "images", "--json", "--store", store, NULL);
    must(&r, 0, "images");
    json_t *doc = itest_json(r.out.data);
    size_t i;
    json_t *im;
    bool found = false;
    json_array_foreach(json_object_get(doc, "images"), i, im)
    {
        if (strcmp(json_string_value(json_object_get(im, "name")), "docker.io/local/multi:v1") !=
            0) {
            continue;
        }
        found = true;
        assert_string_equal(json_string_value(json_object_get(im, "digest")), digest);
        assert_int_equal(json_array_size(json_object_get(im, "platforms")), 2);
    }
    assert_true(found);
    json_decref(doc);
    itest_run_release(&r);

    /* Tagging again moves the name; --local refuses what the store lacks. */
    itest_mar(&r, NULL, "tag", "--local", "--store", store, "nothing/here:1", "local/x:1", NULL);
    must(&r, 3, "tag --local of what the store lacks");
    itest_run_release(&r);
    itest_mar(&r, NULL, "tag", "--store", store, itest_fixture_ref("multi"),
              "local/x@sha256:"
              "0000000000000000000000000000000000000000000000000000000000000000",
              NULL);
    must(&r, 2, "tag to a digest");
    itest_run_release(&r);
}

/* In the registry, through the proxy: across repositories every blob is mounted and nothing
 * uploaded, the documents arrive byte for byte; within one repository only manifests move. */
static void test_remote(void **state)
{
    (void)state;
    control("/_reset");
    const char *src = itest_fixture_ref("multi"); /* an index with two attestations */
    _cleanup_free_ char *via = mar_xasprintf("127.0.0.1:%d%s", port, strchr(src, '/'));
    _cleanup_free_ char *dst = mar_xasprintf("127.0.0.1:%d/%s/multi:1", port, prefix);
    itest_run r;
    itest_mar(&r, NULL, "tag", "--json", "--store", store, via, dst, NULL);
    must(&r, 0, "tag across repositories");
    json_t *doc = itest_json(r.out.data);
    assert_string_equal(json_string_value(json_object_get(doc, "where")), "registry");
    json_t *stats = json_object_get(doc, "stats");
    assert_true(json_integer_value(json_object_get(stats, "blobsMounted")) >= 8);
    assert_int_equal(json_integer_value(json_object_get(stats, "blobsPushed")), 0);
    /* 8 platforms and 2 attestations, then the index. */
    assert_int_equal(json_integer_value(json_object_get(stats, "manifestsPushed")), 11);
    json_decref(doc);
    itest_run_release(&r);
    json_t *st = proxy_stats();
    assert_int_equal(count(st, "/blobs/uploads/", "PATCH"), 0);
    assert_int_equal(count(st, "/blobs/uploads/", "PUT"), 0);
    assert_true(count(st, "/blobs/uploads/", "POST") >= 8);
    json_decref(st);
    _cleanup_free_ char *direct =
            mar_xasprintf("%s/%s/multi:1", itest_bed("MAR_TEST_REGISTRY"), prefix);
    assert_same_raw(src, direct);

    control("/_reset");
    _cleanup_free_ char *again = mar_xasprintf("127.0.0.1:%d/%s/multi:stable", port, prefix);
    itest_mar(&r, NULL, "tag", "--remote", "--store", store, dst, again, NULL);
    must(&r, 0, "tag within a repository");
    itest_run_release(&r);
    st = proxy_stats();
    assert_int_equal(count(st, "/blobs/", "HEAD") + count(st, "/blobs/", "POST") +
                             count(st, "/blobs/", "GET"),
                     0);
    assert_int_equal(count(st, "/manifests/", "PUT"), 1);
    json_decref(st);
    _cleanup_free_ char *direct2 =
            mar_xasprintf("%s/%s/multi:stable", itest_bed("MAR_TEST_REGISTRY"), prefix);
    assert_same_raw(src, direct2);
}

/* Behind the token server, the mount asks for pull on its source along with pull,push. */
static void test_token_scopes(void **state)
{
    (void)state;
    const char *host = itest_bed("MAR_TEST_TOKEN_REGISTRY");
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
    _cleanup_free_ char *src = mar_xasprintf("%s/mar/single:latest", host);
    _cleanup_free_ char *dst = mar_xasprintf("%s/%s/tokcopy:1", host, prefix);
    itest_mar(&r, env, "tag", "-q", "--remote", "--store", store, src, dst, NULL);
    must(&r, 0, "tag across repositories with tokens");
    itest_run_release(&r);
    mar_buf log = MAR_BUF_INIT(16u << 20);
    mar_err *e = NULL;
    assert_int_equal(
            mar_read_file_at(AT_FDCWD, itest_bed("MAR_TEST_TOKEN_LOG"), 16u << 20, &log, &e), 0);
    _cleanup_free_ char *both = mar_xasprintf(
            "[\"repository:%s/tokcopy:pull,push\", \"repository:mar/single:pull\"]", prefix);
    assert_contains(log.data, both);
    mar_buf_release(&log);
    _cleanup_free_ char *direct =
            mar_xasprintf("%s/%s/tokcopy:1", itest_bed("MAR_TEST_REGISTRY"), prefix);
    assert_same_raw(itest_fixture_ref("single"), direct);
}

static void test_refusals(void **state)
{
    (void)state;
    itest_run r;
    _cleanup_free_ char *other =
            mar_xasprintf("%s/%s/x:1", itest_bed("MAR_TEST_BASIC_REGISTRY"), prefix);
    itest_mar(&r, NULL, "tag", "--remote", "--store", store, itest_fixture_ref("single"), other,
              NULL);
    must(&r, 2, "tag across registries");
    assert_contains(r.err.data, "different registries");
    itest_run_release(&r);
    _cleanup_free_ char *missing =
            mar_xasprintf("%s/mar/no-such-image:1", itest_bed("MAR_TEST_REGISTRY"));
    _cleanup_free_ char *dst =
            mar_xasprintf("%s/%s/missing:1", itest_bed("MAR_TEST_REGISTRY"), prefix);
    itest_mar(&r, NULL, "tag", "--store", store, missing, dst, NULL);
    must(&r, 3, "tag of an image that does not exist");
    itest_run_release(&r);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_TOKEN_REGISTRY",
                                "MAR_TEST_BASIC_REGISTRY", NULL};
    itest_require(need);
    snprintf(store, sizeof(store), "%s/store", itest_tmpdir());
    snprintf(prefix, sizeof(prefix), "tag%d", (int)getpid());
    port = itest_free_port();
    proxy_pid =
            itest_faultproxy_start(port, itest_free_port(), itest_bed("MAR_TEST_REGISTRY"), NULL);
    if (proxy_pid < 0) {
        fail_msg("the fault proxy did not start");
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (proxy_pid > 0) {
        kill(proxy_pid, SIGTERM);
        waitpid(proxy_pid, NULL, 0);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_local),
            cmocka_unit_test(test_remote),
            cmocka_unit_test(test_token_scopes),
            cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
