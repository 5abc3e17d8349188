/* mar pull through tests/bed/faultproxy.py (docs/internals/unpack-security.md §6): truncated,
 * reset, stalled, wrong and overlong bodies, server errors, rate limits, redirects and broken
 * ranges. After every case the store passes fsck: each blob hashes to its name, nothing incomplete
 * is marked complete; a failed case left no blob for what failed. Also: a store on a full file
 * system. */
#include "itest.h"

#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

static pid_t proxy_pid = -1, auth_proxy_pid = -1;
static int port, auth_port, rport, auth_rport;
static int n_stores;

static pid_t start_proxy(int p, int rp, const char *upstream, const char *target_auth)
{
    pid_t pid = itest_faultproxy_start(p, rp, upstream, target_auth);
    if (pid < 0) {
        fail_msg("the fault proxy did not start");
    }
    return pid;
}

static void control(int p, const char *path, const char *body)
{
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d%s", p, path);
    itest_run r;
    const char *argv[] = {"curl",           "-sf", "-X", "POST", "--data-binary",
                          body ? body : "", url,   NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
}

static json_t *proxy_stats(int p)
{
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d/_stats", p);
    itest_run r;
    const char *argv[] = {"curl", "-sf", url, NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    json_t *doc = itest_json(r.out.data);
    itest_run_release(&r);
    return doc;
}

/* The stats of the one path containing needle. */
static json_t *path_stats(json_t *st, const char *needle)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "paths"), k, v)
    {
        if (strstr(k, needle)) {
            return v;
        }
    }
    return NULL;
}

static const char *layer_digest(const char *fixture, size_t i)
{
    /* Fixtures record configs and manifests; layers come from the manifest, read with skopeo. */
    static char buf[4][80];
    static int k;
    k = (k + 1) % 4;
    _cleanup_free_ char *img = mar_xasprintf("docker://%s", itest_fixture_ref(fixture));
    itest_run r;
    const char *argv[] = {"skopeo", "inspect", "--raw", "--tls-verify=false", img, NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    json_t *m = itest_json(r.out.data);
    const char *d = json_string_value(
            json_object_get(json_array_get(json_object_get(m, "layers"), i), "digest"));
    assert_non_null(d);
    snprintf(buf[k], sizeof(buf[k]), "%s", d);
    json_decref(m);
    itest_run_release(&r);
    return buf[k];
}

static char *via(int p, const char *fixture)
{
    const char *ref = itest_fixture_ref(fixture);
    return mar_xasprintf("127.0.0.1:%d%s", p, strchr(ref, '/'));
}

static const char *const env[] = {"MAR_RETRY_BASE_MS=20", "MAR_STALL_TIMEOUT=2", NULL};

typedef struct outcome {
    int status;
    char err[4096];
    json_t *result;
    char store[256];
} outcome;

static void pull(int p, const char *fixture, const char *const *extra_env, outcome *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->store, sizeof(o->store), "%s/store%d", itest_tmpdir(), ++n_stores);
    _cleanup_free_ char *ref = via(p, fixture);
    const char *e[8];
    size_t n = 0;
    for (size_t i = 0; env[i]; i++) {
        e[n++] = env[i];
    }
    for (size_t i = 0; extra_env && extra_env[i]; i++) {
        e[n++] = extra_env[i];
    }
    e[n] = NULL;
    itest_run r;
    itest_mar(&r, e, "pull", "--json", "--no-unpack", "--store", o->store, ref, NULL);
    o->status = r.status;
    snprintf(o->err, sizeof(o->err), "%s", r.err.data);
    if (r.status == 0) {
        o->result = itest_json(r.out.data);
    }
    itest_run_release(&r);
    itest_fsck f;
    itest_store_fsck(o->store, &f);
    assert_int_equal(f.bad_blobs, 0);
    assert_int_equal(f.incomplete_layers, 0);
    assert_int_equal(f.parts, 0);
}

static bool has_blob(const char *store, const char *digest)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/blobs/sha256/%s", store, strchr(digest, ':') + 1);
    struct stat st;
    return lstat(p, &st) == 0;
}

static void faults(int p, const char *json)
{
    control(p, "/_reset", NULL);
    control(p, "/_faults", json);
}

static void expect_ok(const outcome *o)
{
    if (o->status != 0) {
        fail_msg("pull failed (%d): %s", o->status, o->err);
    }
}

/* Interrupted layer downloads resume with a Range request at the offset reached, and move
 * little more than the blob's size in total. */
static void test_resume(void **state)
{
    (void)state;
    const char *layer = layer_digest("big", 1);
    static const char *const kinds[] = {"truncate", "reset"};
    for (size_t k = 0; k < MAR_ARRAY_SIZE(kinds); k++) {
        _cleanup_free_ char *f =
                mar_xasprintf("[{\"match\":\"%s\",\"fault\":\"%s\",\"fraction\":0.5,\"count\":1}]",
                              layer, kinds[k]);
        faults(port, f);
        outcome o;
        pull(port, "big", NULL, &o);
        expect_ok(&o);
        json_t *st = proxy_stats(port);
        json_t *ps = path_stats(st, layer);
        assert_non_null(ps);
        assert_int_equal(json_array_size(json_object_get(ps, "ranges")), 1);
        const char *rng = json_string_value(json_array_get(json_object_get(ps, "ranges"), 0));
        assert_true(mar_str_startswith(rng, "bytes="));
        assert_true(strcmp(rng, "bytes=0-") != 0);
        json_int_t bytes = json_integer_value(json_object_get(ps, "bytes"));
        json_int_t size = 0;
        /* The bytes served for the layer stay within 1.1x its size. */
        json_t *sizes = json_object_get(json_object_get(o.result, "stats"), "bytesDownloaded");
        size = json_integer_value(sizes);
        assert_true(bytes <= size * 11 / 10);
        assert_true(has_blob(o.store, layer));
        json_decref(st);
        json_decref(o.result);
    }
}

static void test_stall(void **state)
{
    (void)state;
    const char *layer = layer_digest("big", 1);
    _cleanup_free_ char *f = mar_xasprintf(
            "[{\"match\":\"%s\",\"fault\":\"stall\",\"fraction\":0.3,\"seconds\":40,\"count\":1}]",
            layer);
    faults(port, f);
    outcome o;
    pull(port, "big", NULL, &o);
    expect_ok(&o);
    /* mar's stall limit gave up on the silent connection while the proxy still held it open
     * (the proxy saw the hang-up during its 40 s), then resumed with a Range request. */
    json_t *st = proxy_stats(port);
    json_t *ps = path_stats(st, layer);
    assert_int_equal(json_integer_value(json_object_get(ps, "abandoned")), 1);
    assert_int_equal(json_array_size(json_object_get(ps, "ranges")), 1);
    json_decref(st);
    json_decref(o.result);
}

/* Range answers that do not fit: ignored (200, whole body: the prefix is skipped) or wrong
 * (206 starting elsewhere: start over from 0). */
static void test_bad_ranges(void **state)
{
    (void)state;
    const char *layer = layer_digest("big", 1);
    static const char *const kinds[] = {"ignore-range", "bad-range"};
    for (size_t k = 0; k < MAR_ARRAY_SIZE(kinds); k++) {
        _cleanup_free_ char *f = mar_xasprintf(
                "[{\"match\":\"%s\",\"fault\":\"truncate\",\"fraction\":0.4,\"count\":1},"
                "{\"match\":\"%s\",\"fault\":\"%s\",\"count\":1}]",
                layer, layer, kinds[k]);
        faults(port, f);
        outcome o;
        pull(port, "big", NULL, &o);
        expect_ok(&o);
        assert_true(has_blob(o.store, layer));
        json_decref(o.result);
    }
}

/* Bytes that do not hash to the digest are never committed; one retry from byte 0 is made. */
static void test_wrong_bytes(void **state)
{
    (void)state;
    const char *layer = layer_digest("single", 0);
    _cleanup_free_ char *once =
            mar_xasprintf("[{\"match\":\"%s\",\"fault\":\"wrongbytes\",\"count\":1}]", layer);
    faults(port, once);
    outcome o;
    pull(port, "single", NULL, &o);
    expect_ok(&o);
    json_decref(o.result);

    _cleanup_free_ char *always =
            mar_xasprintf("[{\"match\":\"%s\",\"fault\":\"wrongbytes\",\"count\":9}]", layer);
    faults(port, always);
    pull(port, "single", NULL, &o);
    assert_int_equal(o.status, MAR_EINTEGRITY);
    assert_contains(o.err, layer);
    assert_contains(o.err, "expected");
    assert_false(has_blob(o.store, layer));
    /* One error line on stderr (the others are progress). */
    size_t lines = 0;
    for (const char *l = o.err; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        lines += mar_str_startswith(l, "mar: ");
    }
    assert_int_equal(lines, 1);

    _cleanup_free_ char *extra = mar_xasprintf(
            "[{\"match\":\"%s\",\"fault\":\"extra\",\"extra\":4096,\"count\":9}]", layer);
    faults(port, extra);
    pull(port, "single", NULL, &o);
    assert_int_equal(o.status, MAR_EINTEGRITY);
    assert_contains(o.err, "longer than");
    assert_false(has_blob(o.store, layer));

    /* A config that does not match: refused before anything is stored under its name. */
    const char *cfg = json_string_value(json_object_get(
            json_array_get(
                    json_object_get(json_object_get(itest_fixtures(), "single"), "platforms"), 0),
            "config"));
    _cleanup_free_ char *bad_cfg =
            mar_xasprintf("[{\"match\":\"%s\",\"fault\":\"wrongbytes\",\"count\":9}]", cfg);
    faults(port, bad_cfg);
    pull(port, "single", NULL, &o);
    assert_int_equal(o.status, MAR_EINTEGRITY);
    assert_false(has_blob(o.store, cfg));
}

/* 500/502/503/504 and 429 are retried (with backoff, Retry-After honoured); 404 is not. */
static void test_server_errors(void **state)
{
    (void)state;
    const char *layer = layer_digest("single", 0);
    _cleanup_free_ char *f = mar_xasprintf(
            "[{\"match\":\"%s\",\"fault\":\"status\",\"status\":503,\"count\":1},"
            "{\"match\":\"/manifests/\",\"fault\":\"status\",\"status\":500,\"count\":1},"
            "{\"match\":\"/blobs/\",\"fault\":\"status\",\"status\":502,\"count\":1}]",
            layer);
    faults(port, f);
    outcome o;
    pull(port, "single", NULL, &o);
    expect_ok(&o);
    assert_true(json_integer_value(
                        json_object_get(json_object_get(o.result, "stats"), "retries")) >= 0);
    json_decref(o.result);

    _cleanup_free_ char *rl = mar_xasprintf(
            "[{\"match\":\"%s\",\"fault\":\"ratelimit\",\"retry_after\":2,\"count\":1}]", layer);
    faults(port, rl);
    uint64_t t0 = mar_now_ms();
    pull(port, "single", NULL, &o);
    expect_ok(&o);
    assert_true(mar_now_ms() - t0 >= 2000);
    json_decref(o.result);

    _cleanup_free_ char *gone = mar_xasprintf(
            "[{\"match\":\"%s\",\"fault\":\"status\",\"status\":404,\"count\":9}]", layer);
    faults(port, gone);
    pull(port, "single", NULL, &o);
    assert_int_equal(o.status, MAR_ENOTFOUND);
    json_t *st = proxy_stats(port);
    assert_int_equal(json_integer_value(json_object_get(path_stats(st, layer), "requests")), 1);
    json_decref(st);
}

/* A 1 MiB response header: said as such, with the cap, an integrity failure (6) without retries
 * (docs/internals/registry-protocol.md §9), not "out of memory". */
static void test_big_header(void **state)
{
    (void)state;
    faults(port, "[{\"match\":\"/manifests/\",\"fault\":\"bigheader\",\"count\":9}]");
    outcome o;
    pull(port, "single", NULL, &o);
    assert_int_equal(o.status, MAR_EINTEGRITY);
    assert_contains(o.err, "response headers exceed 65536 bytes");
    assert_not_contains(o.err, "memory");
    json_t *st = proxy_stats(port);
    assert_int_equal(json_integer_value(json_object_get(path_stats(st, "/manifests/"), "requests")),
                     1);
    json_decref(st);
    /* Just over the cap, below curl's own line limit: the same. */
    faults(port,
           "[{\"match\":\"/manifests/\",\"fault\":\"bigheader\",\"size\":70000,\"count\":9}]");
    pull(port, "single", NULL, &o);
    assert_int_equal(o.status, MAR_EINTEGRITY);
    assert_contains(o.err, "response headers exceed 65536 bytes");
}

/* A blob redirected to another host: followed, without the registry's Authorization. */
static void test_redirect(void **state)
{
    (void)state;
    const char *layer = layer_digest("single", 0);
    _cleanup_free_ char *f =
            mar_xasprintf("[{\"match\":\"%s\",\"fault\":\"redirect\",\"count\":1}]", layer);
    char *cfg = itest_write("docker/config.json", "", 0600);
    _cleanup_free_ char *auth = NULL;
    {
        itest_run r;
        _cleanup_free_ char *cmd =
                mar_xasprintf("printf %%s '%s:%s' | base64 -w0", itest_bed("MAR_TEST_USER"),
                              itest_bed("MAR_TEST_PASSWORD"));
        const char *argv[] = {"sh", "-c", cmd, NULL};
        itest_runv(&r, NULL, argv);
        auth = mar_xstrdup(r.out.data);
        itest_run_release(&r);
    }
    _cleanup_free_ char *json =
            mar_xasprintf("{\"auths\":{\"127.0.0.1:%d\":{\"auth\":\"%s\"}}}", auth_port, auth);
    free(cfg);
    cfg = itest_write("docker/config.json", json, 0600);
    _cleanup_free_ char *dir = mar_xstrdup(cfg);
    *strrchr(dir, '/') = '\0';
    _cleanup_free_ char *dc = mar_xasprintf("DOCKER_CONFIG=%s", dir);
    const char *extra[] = {dc, NULL};
    faults(auth_port, f);
    outcome o;
    pull(auth_port, "single", extra, &o);
    expect_ok(&o);
    assert_not_contains(o.err, itest_bed("MAR_TEST_PASSWORD"));
    /* Nor anywhere in the store (docs/internals/unpack-security.md §8). */
    itest_run g;
    const char *grep[] = {"grep", "-r", "-l", "-F", itest_bed("MAR_TEST_PASSWORD"), o.store, NULL};
    itest_runv(&g, NULL, grep);
    assert_int_equal(g.status, 1);
    itest_run_release(&g);
    json_t *st = proxy_stats(auth_port);
    json_t *red = json_object_get(st, "redirected");
    assert_int_equal(json_array_size(red), 1);
    json_t *hdrs = json_object_get(json_array_get(red, 0), "headers");
    size_t i;
    json_t *h;
    json_array_foreach(hdrs, i, h)
    {
        assert_string_not_equal(json_string_value(h), "authorization");
    }
    /* The registry itself did get credentials. */
    assert_true(json_integer_value(json_object_get(path_stats(st, "/manifests/"), "requests")) > 0);
    json_decref(st);
    json_decref(o.result);
    free(cfg);
}

/* A store on a 6 MiB file system: the 64 MiB layer cannot fit. One line naming the store and
 * the bytes still needed, exit 9, nothing committed under the layer's name. */
static void test_disk_full(void **state)
{
    (void)state;
    control(port, "/_reset", NULL);
    _cleanup_free_ char *mnt = mar_xasprintf("%s/small", itest_tmpdir());
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=6m") < 0) {
        fail_msg("cannot mount a tmpfs");
    }
    _cleanup_free_ char *store = mar_xasprintf("%s/store", mnt);
    _cleanup_free_ char *ref = via(port, "big");
    itest_run r;
    itest_mar(&r, env, "pull", "--no-unpack", "--store", store, ref, NULL);
    assert_int_equal(r.status, MAR_EIO);
    assert_contains(r.err.data, store);
    assert_contains(r.err.data, "full");
    assert_contains(r.err.data, "bytes needed");
    itest_run_release(&r);
    itest_fsck f;
    itest_store_fsck(store, &f);
    assert_int_equal(f.bad_blobs, 0);
    assert_false(has_blob(store, layer_digest("big", 1)));
    /* gc clears the partial download; the store works again for what fits. */
    itest_mar(&r, NULL, "gc", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_store_fsck(store, &f);
    assert_int_equal(f.ingests, 0);
    _cleanup_free_ char *small = via(port, "single");
    itest_mar(&r, env, "pull", "--no-unpack", "--store", store, small, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    umount2(mnt, MNT_DETACH);
}

/* A store with room for the blobs but not for the unpacked layer: exit 9 naming the store, the
 * layer not marked complete, its part directory gone. */
static void test_disk_full_unpack(void **state)
{
    (void)state;
    control(port, "/_reset", NULL);
    _cleanup_free_ char *mnt = mar_xasprintf("%s/small2", itest_tmpdir());
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1800k") < 0) {
        fail_msg("cannot mount a tmpfs");
    }
    _cleanup_free_ char *store = mar_xasprintf("%s/store", mnt);
    _cleanup_free_ char *ref = via(port, "single");
    itest_run r;
    itest_mar(&r, env, "pull", "--store", store, ref, NULL);
    assert_int_equal(r.status, MAR_EIO);
    assert_contains(r.err.data, store);
    assert_contains(r.err.data, "is full after");
    itest_run_release(&r);
    itest_fsck f;
    itest_store_fsck(store, &f);
    assert_int_equal(f.bad_blobs, 0);
    assert_int_equal(f.incomplete_layers, 0);
    assert_int_equal(f.layers, 0);
    assert_int_equal(f.parts, 0);
    assert_true(has_blob(store, layer_digest("single", 0)));
    umount2(mnt, MNT_DETACH);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_BASIC_REGISTRY",
                                NULL};
    itest_require(need);
    if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
        mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
        fprintf(stderr, "skip: needs root (a tmpfs store for the disk-full case)\n");
        exit(getenv("MAR_CI") ? 1 : 77);
    }
    port = itest_free_port();
    rport = itest_free_port();
    proxy_pid = start_proxy(port, rport, itest_bed("MAR_TEST_REGISTRY"), NULL);
    auth_port = itest_free_port();
    auth_rport = itest_free_port();
    itest_run r;
    _cleanup_free_ char *cmd =
            mar_xasprintf("printf 'Basic '; printf %%s '%s:%s' | base64 -w0",
                          itest_bed("MAR_TEST_USER"), itest_bed("MAR_TEST_PASSWORD"));
    const char *argv[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, argv);
    auth_proxy_pid =
            start_proxy(auth_port, auth_rport, itest_bed("MAR_TEST_BASIC_REGISTRY"), r.out.data);
    itest_run_release(&r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (proxy_pid > 0) {
        kill(proxy_pid, SIGTERM);
        waitpid(proxy_pid, NULL, 0);
    }
    if (auth_proxy_pid > 0) {
        kill(auth_proxy_pid, SIGTERM);
        waitpid(auth_proxy_pid, NULL, 0);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_resume),           cmocka_unit_test(test_stall),
            cmocka_unit_test(test_bad_ranges),       cmocka_unit_test(test_wrong_bytes),
            cmocka_unit_test(test_server_errors),    cmocka_unit_test(test_big_header),
            cmocka_unit_test(test_redirect),         cmocka_unit_test(test_disk_full),
            cmocka_unit_test(test_disk_full_unpack),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
