/* mar push through tests/bed/faultproxy.py: a PATCH dropped half way resumes from the range the
 * registry reports and the blob still verifies; 500 on PUT and 502 on PATCH are retried; 429 waits
 * for Retry-After; a wrong Docker-Content-Digest is exit 6 and a denied push exit 4, with the tag
 * never written; a truncated blob in the store is exit 6 before anything of it is sent. After
 * every case, the tag is absent or names an image whose every part the registry has (checked
 * with skopeo and the registry itself, not through the proxy). */
#include "itest.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static pid_t proxy_pid = -1;
static int port, rport;
static char store[256];
static char prefix[64];
static const char *const env[] = {"MAR_RETRY_BASE_MS=20", "MAR_PUSH_CHUNK_SIZE=8388608", NULL};

static void control(const char *path, const char *body)
{
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d%s", port, path);
    itest_run r;
    const char *argv[] = {"curl",           "-sf", "-X", "POST", "--data-binary",
                          body ? body : "", url,   NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
}

static void faults(const char *json)
{
    control("/_reset", NULL);
    control("/_faults", json);
}

static json_t *proxy_stats(void)
{
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d/_stats", port);
    itest_run r;
    const char *argv[] = {"curl", "-sf", url, NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    json_t *doc = itest_json(r.out.data);
    itest_run_release(&r);
    return doc;
}

/* The upload session of the blob that was PATCHed (the one path with PATCH requests). */
static json_t *patched_upload(json_t *st)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "paths"), k, v)
    {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(v, "methods"), i, m)
        {
            if (strcmp(json_string_value(m), "PATCH") == 0) {
                return v;
            }
        }
    }
    return NULL;
}

static bool any_status(json_t *st, const char *method, int status)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "paths"), k, v)
    {
        json_t *ms = json_object_get(v, "methods"), *ss = json_object_get(v, "statuses");
        for (size_t i = 0; i < json_array_size(ms); i++) {
            if (strcmp(json_string_value(json_array_get(ms, i)), method) == 0 &&
                json_integer_value(json_array_get(ss, i)) == status) {
                return true;
            }
        }
    }
    return false;
}

static int raw(const char *ref, json_t **ret)
{
    _cleanup_free_ char *img = mar_xasprintf("docker://%s", ref);
    itest_run r;
    const char *argv[] = {"skopeo", "inspect", "--raw", "--tls-verify=false", img, NULL};
    itest_runv(&r, NULL, argv);
    int st = r.status;
    *ret = st == 0 ? itest_json(r.out.data) : NULL;
    itest_run_release(&r);
    return st;
}

static bool blob_exists(const char *repo_path, const char *digest)
{
    _cleanup_free_ char *url = mar_xasprintf("http://%s/v2/%s/blobs/%s",
                                             itest_bed("MAR_TEST_REGISTRY"), repo_path, digest);
    itest_run r;
    const char *argv[] = {"curl", "-s", "-I", "-o", "/dev/null", "-w", "%{http_code}", url, NULL};
    itest_runv(&r, NULL, argv);
    bool ok = strcmp(r.out.data, "200") == 0;
    itest_run_release(&r);
    return ok;
}

/* The tag is absent, or every document and blob under it is in the repository. */
static void assert_no_incomplete_tag(const char *name)
{
    const char *host = itest_bed("MAR_TEST_REGISTRY");
    _cleanup_free_ char *repo_path = mar_xasprintf("%s/%s", prefix, name);
    _cleanup_free_ char *ref = mar_xasprintf("%s/%s:1", host, repo_path);
    json_t *top;
    if (raw(ref, &top) != 0) {
        return;
    }
    json_t *list = json_object_get(top, "manifests");
    size_t n = list ? json_array_size(list) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *m = top;
        if (list) {
            _cleanup_free_ char *child = mar_xasprintf(
                    "%s/%s@%s", host, repo_path,
                    json_string_value(json_object_get(json_array_get(list, i), "digest")));
            assert_int_equal(raw(child, &m), 0);
        }
        assert_true(blob_exists(repo_path, json_string_value(json_object_get(
                                                   json_object_get(m, "config"), "digest"))));
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(m, "layers"), k, l)
        {
            assert_true(blob_exists(repo_path, json_string_value(json_object_get(l, "digest"))));
        }
        if (m != top) {
            json_decref(m);
        }
    }
    json_decref(top);
}

static bool tagged(const char *name)
{
    _cleanup_free_ char *ref =
            mar_xasprintf("%s/%s/%s:1", itest_bed("MAR_TEST_REGISTRY"), prefix, name);
    json_t *doc;
    int st = raw(ref, &doc);
    json_decref(doc);
    return st == 0;
}

/* mar push [args...] FIXTURE PROXY/PREFIX/NAME:1, from the given store. */
static void push(itest_run *r, const char *from_store, const char *fixture, const char *name,
                 const char *platforms)
{
    _cleanup_free_ char *dst = mar_xasprintf("127.0.0.1:%d/%s/%s:1", port, prefix, name);
    if (platforms) {
        itest_mar(r, env, "push", "-q", "--store", from_store, "-p", platforms,
                  itest_fixture_ref(fixture), dst, NULL);
    } else {
        itest_mar(r, env, "push", "-q", "--store", from_store, itest_fixture_ref(fixture), dst,
                  NULL);
    }
}

static void expect(itest_run *r, int want)
{
    if (r->status != want) {
        fail_msg("push: %d, want %d\n%s", r->status, want, r->err.data);
    }
}

/* Half of a PATCH reached the registry before the connection broke: the next PATCH starts where
 * the registry says it stopped (not at the chunk mar sent), and the blob verifies. */
static void test_resume(void **state)
{
    (void)state;
    _cleanup_free_ char *f = mar_xasprintf(
            "[{\"match\":\"/%s/big/blobs/uploads/\",\"method\":\"PATCH\",\"fault\":\"drop\","
            "\"fraction\":0.5,\"skip\":2,\"count\":1}]",
            prefix);
    faults(f);
    itest_run r;
    push(&r, store, "big", "big", NULL);
    expect(&r, 0);
    itest_run_release(&r);
    json_t *st = proxy_stats();
    json_t *up = patched_upload(st);
    assert_non_null(up);
    json_t *ranges = json_object_get(up, "ranges"), *ss = json_object_get(up, "statuses");
    json_t *ms = json_object_get(up, "methods");
    /* PATCH, PATCH, PATCH (dropped: status 0), GET (204), PATCH from the middle of the third. */
    assert_string_equal(json_string_value(json_array_get(ms, 2)), "PATCH");
    assert_int_equal(json_integer_value(json_array_get(ss, 2)), 0);
    assert_string_equal(json_string_value(json_array_get(ms, 3)), "GET");
    assert_int_equal(json_integer_value(json_array_get(ss, 3)), 204);
    long long a, b, next;
    assert_int_equal(sscanf(json_string_value(json_array_get(ranges, 2)), "%lld-%lld", &a, &b), 2);
    assert_int_equal(sscanf(json_string_value(json_array_get(ranges, 3)), "%lld-", &next), 1);
    assert_int_equal(next, a + (b - a + 1) / 2);
    json_t *m;
    _cleanup_free_ char *ref = mar_xasprintf("%s/%s/big:1", itest_bed("MAR_TEST_REGISTRY"), prefix);
    assert_int_equal(raw(ref, &m), 0);
    json_t *big = json_array_get(json_object_get(m, "layers"), 1);
    const char *layer = json_string_value(json_object_get(big, "digest"));
    json_int_t size = json_integer_value(json_object_get(big, "size"));
    /* Everything once, plus the half of the broken chunk the registry did not keep. */
    json_int_t sent = json_integer_value(json_object_get(up, "sent"));
    assert_true(sent >= size);
    assert_true(sent <= size * 11 / 10);
    json_decref(st);
    /* The registry verified the digest at the final PUT; read the blob back to be sure. */
    _cleanup_free_ char *cmd = mar_xasprintf("curl -sf http://%s/v2/%s/big/blobs/%s | sha256sum",
                                             itest_bed("MAR_TEST_REGISTRY"), prefix, layer);
    const char *sh[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, sh);
    assert_true(mar_str_startswith(r.out.data, strchr(layer, ':') + 1));
    itest_run_release(&r);
    json_decref(m);
    assert_no_incomplete_tag("big");
}

/* 500 on a PUT and 502 on a PATCH are retried; 429 waits its Retry-After. */
static void test_server_errors(void **state)
{
    (void)state;
    faults("[{\"match\":\"/blobs/uploads/\",\"method\":\"PUT\",\"fault\":\"status\","
           "\"status\":500,\"count\":1}]");
    itest_run r;
    push(&r, store, "single", "single500", NULL);
    expect(&r, 0);
    itest_run_release(&r);
    json_t *st = proxy_stats();
    assert_true(any_status(st, "PUT", 500));
    assert_true(any_status(st, "PUT", 201));
    json_decref(st);
    assert_no_incomplete_tag("single500");

    faults("[{\"match\":\"/blobs/uploads/\",\"method\":\"PATCH\",\"fault\":\"status\","
           "\"status\":502,\"skip\":1,\"count\":1}]");
    push(&r, store, "big", "big502", NULL);
    expect(&r, 0);
    itest_run_release(&r);
    st = proxy_stats();
    assert_true(any_status(st, "PATCH", 502));
    assert_true(any_status(st, "GET", 204));
    json_decref(st);
    assert_no_incomplete_tag("big502");

    faults("[{\"match\":\"/manifests/\",\"method\":\"PUT\",\"fault\":\"ratelimit\","
           "\"retry_after\":2,\"count\":1}]");
    uint64_t t0 = mar_now_ms();
    push(&r, store, "single", "single429", NULL);
    expect(&r, 0);
    assert_true(mar_now_ms() - t0 >= 2000);
    assert_contains(r.err.data, "rate limited");
    itest_run_release(&r);
    assert_no_incomplete_tag("single429");
}

/* The registry claims another digest for a child manifest: exit 6, the index never put. */
static void test_wrong_digest(void **state)
{
    (void)state;
    faults("[{\"match\":\"/manifests/sha256:\",\"method\":\"PUT\",\"fault\":\"wrongdigest\","
           "\"count\":1}]");
    itest_run r;
    push(&r, store, "multi", "wrong", "linux/amd64,linux/arm64");
    expect(&r, MAR_EINTEGRITY);
    assert_contains(r.err.data, "but mar sent");
    itest_run_release(&r);
    assert_false(tagged("wrong"));
    assert_no_incomplete_tag("wrong");
}

/* 403 DENIED on the upload: exit 4 naming the repository, nothing tagged. */
static void test_denied(void **state)
{
    (void)state;
    faults("[{\"match\":\"/blobs/uploads/\",\"method\":\"POST\",\"fault\":\"denied\","
           "\"count\":99}]");
    itest_run r;
    push(&r, store, "single", "denied", NULL);
    expect(&r, MAR_EAUTH);
    assert_contains(r.err.data, "403 DENIED");
    _cleanup_free_ char *repo = mar_xasprintf("%s/denied'", prefix);
    assert_contains(r.err.data, repo);
    itest_run_release(&r);
    assert_false(tagged("denied"));
}

/* A store blob cut short: exit 6 before any of it is sent, nothing tagged. */
static void test_truncated_store_blob(void **state)
{
    (void)state;
    control("/_reset", NULL);
    _cleanup_free_ char *copy = mar_xasprintf("%s/store-cut", itest_tmpdir());
    json_t *m;
    assert_int_equal(raw(itest_fixture_ref("single"), &m), 0);
    const char *layer = json_string_value(
            json_object_get(json_array_get(json_object_get(m, "layers"), 0), "digest"));
    _cleanup_free_ char *cmd =
            mar_xasprintf("cp -a '%s' '%s' && f='%s/blobs/sha256/%s' && chmod u+w \"$f\" && "
                          "truncate -s -1000 \"$f\" && chmod 0444 \"$f\"",
                          store, copy, copy, strchr(layer, ':') + 1);
    itest_run r;
    const char *sh[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, sh);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    push(&r, copy, "single", "cut", NULL);
    expect(&r, MAR_EINTEGRITY);
    assert_contains(r.err.data, layer);
    assert_contains(r.err.data, "in the store");
    itest_run_release(&r);
    json_t *st = proxy_stats();
    _cleanup_free_ char *blob_path = mar_xasprintf("/v2/%s/cut/blobs/%s", prefix, layer);
    assert_null(json_object_get(json_object_get(st, "paths"), blob_path));
    json_decref(st);
    json_decref(m);
    assert_false(tagged("cut"));
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    snprintf(store, sizeof(store), "%s/store", itest_tmpdir());
    snprintf(prefix, sizeof(prefix), "faults%d", (int)getpid());
    static const char *const fixtures[] = {"big", "single", "multi"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(fixtures); i++) {
        itest_run r;
        itest_mar(&r, NULL, "pull", "-q", "--no-unpack", "--all-platforms", "--store", store,
                  itest_fixture_ref(fixtures[i]), NULL);
        if (r.status != 0) {
            fail_msg("pull %s: %s", fixtures[i], r.err.data);
        }
        itest_run_release(&r);
    }
    port = itest_free_port();
    rport = itest_free_port();
    proxy_pid = itest_faultproxy_start(port, rport, itest_bed("MAR_TEST_REGISTRY"), NULL);
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
            cmocka_unit_test(test_resume),
            cmocka_unit_test(test_server_errors),
            cmocka_unit_test(test_wrong_digest),
            cmocka_unit_test(test_denied),
            cmocka_unit_test(test_truncated_store_blob),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
