/* mar copy: registry to a second registry (byte for byte, the same digest), a --platform filter
 * (a new index keeping the entry's attestation), OCI layouts and archives read back by skopeo and
 * umoci and copied back to a registry unchanged; faults through the fault proxy (a blob GET cut
 * mid-stream is resumed; a wrong Docker-Content-Digest is exit 6 with nothing tagged); bad input
 * (an oci: path that is a file, a source that does not exist). */
#include "itest.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static pid_t proxy_pid = -1;
static int port;
static char prefix[64];
static char proxy[64];
static const char *const env[] = {"MAR_RETRY_BASE_MS=20", NULL};

static void must(itest_run *r, int want, const char *what)
{
    if (r->status != want) {
        fail_msg("%s: status %d, want %d\nstdout: %s\nstderr: %s", what, r->status, want,
                 r->out.data, r->err.data);
    }
}

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

/* skopeo inspect --raw of any transport: the status, the bytes in ret. */
static int raw(const char *img, mar_buf *ret)
{
    itest_run r;
    const char *argv[] = {"skopeo", "inspect", "--raw", "--tls-verify=false", img, NULL};
    itest_runv(&r, NULL, argv);
    *ret = r.out;
    mar_buf_release(&r.err);
    return r.status;
}

static void assert_same_raw(const char *a, const char *b)
{
    mar_buf x, y;
    if (raw(a, &x) != 0 || raw(b, &y) != 0) {
        fail_msg("skopeo inspect %s / %s failed", a, b);
    }
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.data, y.data, x.len);
    mar_buf_release(&x);
    mar_buf_release(&y);
}

static const char *fixture_digest(const char *name)
{
    return json_string_value(json_object_get(json_object_get(itest_fixtures(), name), "digest"));
}

static char *reg2(const char *repo_tag)
{
    return mar_xasprintf("%s/%s/%s", itest_bed("MAR_TEST_REGISTRY2"), prefix, repo_tag);
}

static void test_cross_registry(void **state)
{
    (void)state;
    _cleanup_free_ char *dst = reg2("multi:v1");
    itest_run r;
    itest_mar(&r, NULL, "copy", "-q", itest_fixture_ref("multi"), dst, NULL);
    must(&r, 0, "copy to the second registry");
    _cleanup_free_ char *want = mar_xasprintf("%s@%s\n", dst, fixture_digest("multi"));
    assert_string_equal(r.out.data, want);
    itest_run_release(&r);
    _cleanup_free_ char *a = mar_xasprintf("docker://%s", itest_fixture_ref("multi"));
    _cleanup_free_ char *b = mar_xasprintf("docker://%s", dst);
    assert_same_raw(a, b);
    /* Every child manifest, attestations included, is there byte for byte too. */
    _cleanup_free_ char *lst =
            mar_xasprintf("docker://%s/%s/multi:v1", itest_bed("MAR_TEST_REGISTRY2"), prefix);
    mar_buf x;
    assert_int_equal(raw(lst, &x), 0);
    json_t *idx = itest_json(x.data);
    mar_buf_release(&x);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(idx, "manifests"), i, m)
    {
        const char *d = json_string_value(json_object_get(m, "digest"));
        _cleanup_free_ char *s1 =
                mar_xasprintf("docker://%s/mar/multi@%s", itest_bed("MAR_TEST_REGISTRY"), d);
        _cleanup_free_ char *s2 = mar_xasprintf("docker://%s/%s/multi@%s",
                                                itest_bed("MAR_TEST_REGISTRY2"), prefix, d);
        assert_same_raw(s1, s2);
    }
    json_decref(idx);
}

static void test_platform_filter(void **state)
{
    (void)state;
    _cleanup_free_ char *dst = reg2("multi:arm64");
    itest_run r;
    itest_mar(&r, NULL, "copy", "--json", "-p", "linux/arm64", itest_fixture_ref("multi"), dst,
              NULL);
    must(&r, 0, "copy --platform");
    json_t *doc = itest_json(r.out.data);
    assert_true(json_is_true(json_object_get(doc, "newIndex")));
    assert_string_not_equal(json_string_value(json_object_get(doc, "digest")),
                            fixture_digest("multi"));
    assert_contains(r.err.data, "new index");
    json_decref(doc);
    itest_run_release(&r);
    _cleanup_free_ char *img = mar_xasprintf("docker://%s", dst);
    mar_buf x;
    assert_int_equal(raw(img, &x), 0);
    json_t *idx = itest_json(x.data);
    mar_buf_release(&x);
    json_t *ms = json_object_get(idx, "manifests");
    assert_int_equal(json_array_size(ms), 2);
    json_t *e0 = json_array_get(ms, 0), *e1 = json_array_get(ms, 1);
    assert_string_equal(
            json_string_value(json_object_get(json_object_get(e0, "platform"), "architecture")),
            "arm64");
    /* The attestation that describes it follows it. */
    json_t *an = json_object_get(e1, "annotations");
    assert_string_equal(json_string_value(json_object_get(an, "vnd.docker.reference.digest")),
                        json_string_value(json_object_get(e0, "digest")));
    json_decref(idx);
}

static void test_layouts(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/layout", itest_tmpdir());
    _cleanup_free_ char *tar = mar_xasprintf("%s/image.tar", itest_tmpdir());
    _cleanup_free_ char *oci = mar_xasprintf("oci:%s:v1", dir);
    _cleanup_free_ char *arc = mar_xasprintf("oci-archive:%s:v1", tar);
    _cleanup_free_ char *src = mar_xasprintf("docker://%s", itest_fixture_ref("multi"));
    itest_run r;
    itest_mar(&r, NULL, "copy", "-q", itest_fixture_ref("multi"), oci, NULL);
    must(&r, 0, "copy to oci:");
    itest_run_release(&r);
    assert_same_raw(src, oci);
    itest_mar(&r, NULL, "copy", "-q", itest_fixture_ref("multi"), arc, NULL);
    must(&r, 0, "copy to oci-archive:");
    itest_run_release(&r);
    assert_same_raw(src, arc);
    /* umoci reads the layout: the tag, and the arm64 manifest's config through it. */
    const char *ls[] = {"umoci", "ls", "--layout", dir, NULL};
    itest_runv(&r, NULL, ls);
    must(&r, 0, "umoci ls");
    assert_string_equal(r.out.data, "v1\n");
    itest_run_release(&r);
    /* umoci 0.4 stats only a manifest at the top: a single-platform image, in the same layout. */
    _cleanup_free_ char *one = mar_xasprintf("oci:%s:s390x", dir);
    itest_mar(&r, NULL, "copy", "-q", itest_fixture_ref("arch-s390x"), one, NULL);
    must(&r, 0, "copy a single manifest to oci:");
    itest_run_release(&r);
    _cleanup_free_ char *umi = mar_xasprintf("%s:s390x", dir);
    const char *st[] = {"umoci", "stat", "--image", umi, "--json", NULL};
    itest_runv(&r, NULL, st);
    must(&r, 0, "umoci stat");
    json_t *stat = itest_json(r.out.data);
    json_t *h0 = json_array_get(json_object_get(stat, "history"), 0);
    const char *diff = json_string_value(json_object_get(h0, "diff_id"));
    const char *want = json_string_value(json_object_get(
            json_array_get(
                    json_object_get(json_object_get(itest_fixtures(), "arch-s390x"), "platforms"),
                    0),
            "diffId"));
    assert_non_null(diff);
    assert_string_equal(diff, want);
    json_decref(stat);
    itest_run_release(&r);
    itest_runv(&r, NULL, ls);
    assert_string_equal(r.out.data, "v1\ns390x\n");
    itest_run_release(&r);
    /* And back to a registry, unchanged. */
    _cleanup_free_ char *d1 = reg2("fromlayout:v1");
    _cleanup_free_ char *d2 = reg2("fromarchive:v1");
    itest_mar(&r, NULL, "copy", "-q", oci, d1, NULL);
    must(&r, 0, "copy from oci:");
    itest_run_release(&r);
    itest_mar(&r, NULL, "copy", "-q", arc, d2, NULL);
    must(&r, 0, "copy from oci-archive:");
    itest_run_release(&r);
    _cleanup_free_ char *i1 = mar_xasprintf("docker://%s", d1);
    _cleanup_free_ char *i2 = mar_xasprintf("docker://%s", d2);
    assert_same_raw(src, i1);
    assert_same_raw(src, i2);
}

static void test_bad_input(void **state)
{
    (void)state;
    _cleanup_free_ char *file = itest_write("plain-file", "not a layout\n", 0644);
    _cleanup_free_ char *oci = mar_xasprintf("oci:%s", file);
    itest_run r;
    itest_mar(&r, NULL, "copy", itest_fixture_ref("multi"), oci, NULL);
    must(&r, 2, "oci: naming a file");
    assert_contains(r.err.data, "not a directory");
    itest_run_release(&r);
    _cleanup_free_ char *never = reg2("never:v1");
    itest_mar(&r, NULL, "copy", oci, never, NULL);
    must(&r, 2, "oci: source naming a file");
    itest_run_release(&r);
    _cleanup_free_ char *missing =
            mar_xasprintf("%s/mar/does-not-exist:latest", itest_bed("MAR_TEST_REGISTRY"));
    _cleanup_free_ char *dst = reg2("never:v1");
    itest_mar(&r, NULL, "copy", missing, dst, NULL);
    must(&r, 3, "a source that does not exist");
    itest_run_release(&r);
    _cleanup_free_ char *img = mar_xasprintf("docker://%s", dst);
    mar_buf x;
    assert_int_not_equal(raw(img, &x), 0);
    mar_buf_release(&x);
}

/* A blob GET from the source cut halfway: resumed, the copy is whole. */
static void test_drop_mid_stream(void **state)
{
    (void)state;
    control("/_reset", NULL);
    control("/_faults", "[{\"match\":\"/blobs/sha256:\",\"method\":\"GET\",\"fault\":\"reset\","
                        "\"count\":2,\"fraction\":0.5}]");
    _cleanup_free_ char *src = mar_xasprintf("%s/mar/multi:latest", proxy);
    _cleanup_free_ char *dst = reg2("resumed:v1");
    itest_run r;
    itest_mar(&r, env, "copy", "-q", src, dst, NULL);
    must(&r, 0, "copy through a dropping proxy");
    itest_run_release(&r);
    _cleanup_free_ char *a = mar_xasprintf("docker://%s", itest_fixture_ref("multi"));
    _cleanup_free_ char *b = mar_xasprintf("docker://%s", dst);
    assert_same_raw(a, b);
}

/* The destination registry claims another digest for a child manifest: exit 6, and the index
 * is never put, so the tag is not set. */
static void test_wrong_digest(void **state)
{
    (void)state;
    control("/_reset", NULL);
    control("/_faults", "[{\"match\":\"/manifests/sha256:\",\"method\":\"PUT\",\"fault\":"
                        "\"wrongdigest\",\"count\":100}]");
    _cleanup_free_ char *dst = mar_xasprintf("%s/%s/wrong:v1", proxy, prefix);
    itest_run r;
    itest_mar(&r, env, "copy", "-q", itest_fixture_ref("multi"), dst, NULL);
    must(&r, 6, "a wrong Docker-Content-Digest");
    itest_run_release(&r);
    control("/_reset", NULL);
    _cleanup_free_ char *img =
            mar_xasprintf("docker://%s/%s/wrong:v1", itest_bed("MAR_TEST_REGISTRY"), prefix);
    mar_buf x;
    assert_int_not_equal(raw(img, &x), 0);
    mar_buf_release(&x);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_REGISTRY2", "MAR_TEST_FIXTURES",
                                NULL};
    itest_require(need);
    snprintf(prefix, sizeof(prefix), "copy%d", (int)getpid());
    port = itest_free_port();
    proxy_pid =
            itest_faultproxy_start(port, itest_free_port(), itest_bed("MAR_TEST_REGISTRY"), NULL);
    if (proxy_pid < 0) {
        fail_msg("the fault proxy did not start");
    }
    snprintf(proxy, sizeof(proxy), "127.0.0.1:%d", port);
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
            cmocka_unit_test(test_cross_registry),  cmocka_unit_test(test_platform_filter),
            cmocka_unit_test(test_layouts),         cmocka_unit_test(test_bad_input),
            cmocka_unit_test(test_drop_mid_stream), cmocka_unit_test(test_wrong_digest),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
