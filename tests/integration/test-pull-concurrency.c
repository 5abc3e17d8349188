/* Several mar processes on one store, and mar killed at random points
 * (docs/internals/unpack-security.md §7):
 *
 *   - 8 concurrent pulls of 4 images sharing a base layer: every blob is fetched once (counted
 *     by the fault proxy in front of the registry), the store passes fsck, every layer is
 *     unpacked once;
 *   - 8 concurrent pulls of one image with a 64 MiB layer: fetched once;
 *   - SIGKILL at a random moment of a pull (download, unpack, settle), then a normal pull:
 *     always recovers, leaves no partial state. MAR_TEST_KILLS sets the rounds (default 20;
 *     the soak figure is 200).
 * Prints a report line with the counts. */
#include "itest.h"

#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static pid_t proxy_pid = -1;
static int port;

static void curl_post(const char *path, const char *body)
{
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d%s", port, path);
    itest_run r;
    const char *argv[] = {"curl",           "-sf", "-X", "POST", "--data-binary",
                          body ? body : "", url,   NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
}

static json_t *stats(void)
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

static char *via(const char *fixture)
{
    const char *ref = itest_fixture_ref(fixture);
    return mar_xasprintf("127.0.0.1:%d%s", port, strchr(ref, '/'));
}

/* Blob GETs answered 200 per blob path; fails when any was served more than once. */
static size_t check_blobs_once(json_t *st)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "paths"), k, v)
    {
        if (!strstr(k, "/blobs/sha256:")) {
            continue;
        }
        size_t ok = 0;
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(v, "statuses"), i, s)
        {
            ok += json_integer_value(s) == 200;
        }
        if (ok != 1) {
            fail_msg("%s was served %zu times", k, ok);
        }
        n++;
    }
    return n;
}

static void run_all(const char *store, const char *const *refs, size_t n)
{
    pid_t pids[16];
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *out = mar_xasprintf("%s/out%zu", itest_tmpdir(), i);
        _cleanup_free_ char *err = mar_xasprintf("%s/err%zu", itest_tmpdir(), i);
        const char *args[] = {"-q", "pull", "--store", store, refs[i], NULL};
        pids[i] = itest_mar_spawn(NULL, out, err, args);
    }
    for (size_t i = 0; i < n; i++) {
        int st = itest_wait(pids[i]);
        if (st != 0) {
            _cleanup_free_ char *err = mar_xasprintf("%s/err%zu", itest_tmpdir(), i);
            mar_buf b = MAR_BUF_INIT(1 << 20);
            /* Only to show mar's message: the test fails below either way. */
            mar_ignore(mar_read_file_at(AT_FDCWD, err, 1 << 20, &b, NULL));
            fail_msg("pull %zu of %s exited %d: %s", i, refs[i], st, b.data);
        }
    }
}

static void check_clean(const char *store, size_t layers)
{
    itest_fsck f;
    itest_store_fsck(store, &f);
    assert_int_equal(f.bad_blobs, 0);
    assert_int_equal(f.incomplete_layers, 0);
    assert_int_equal(f.parts, 0);
    assert_int_equal(f.ingests, 0);
    assert_int_equal(f.layers, layers);
}

static void test_shared_base(void **state)
{
    (void)state;
    curl_post("/_reset", NULL);
    _cleanup_free_ char *store = mar_xasprintf("%s/shared", itest_tmpdir());
    char *refs[8];
    for (size_t i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof(name), "shared%zu", i % 4 + 1);
        refs[i] = via(name);
    }
    run_all(store, (const char *const *)refs, 8);
    json_t *st = stats();
    /* 1 base + 4 tops + 4 configs. */
    assert_int_equal(check_blobs_once(st), 9);
    json_decref(st);
    check_clean(store, 5);
    /* Every image reads back its own top layer. */
    for (size_t i = 0; i < 4; i++) {
        itest_run r;
        _cleanup_free_ char *dest = mar_xasprintf("%s/flat%zu", itest_tmpdir(), i);
        itest_mar(&r, NULL, "unpack", "--store", store, refs[i], dest, NULL);
        assert_int_equal(r.status, 0);
        itest_run_release(&r);
        _cleanup_free_ char *idf = mar_xasprintf("%s/etc/shared-id", dest);
        mar_buf b = MAR_BUF_INIT(64);
        assert_int_equal(mar_read_file_at(AT_FDCWD, idf, 64, &b, NULL), 0);
        _cleanup_free_ char *want = mar_xasprintf("shared image %zu\n", i + 1);
        assert_string_equal(b.data, want);
        mar_buf_release(&b);
    }
    for (size_t i = 0; i < 8; i++) {
        free(refs[i]);
    }
    fprintf(stderr, "pull-concurrency  8 processes, 4 images on one base  0 blobs fetched twice\n");
}

static void test_same_big_image(void **state)
{
    (void)state;
    curl_post("/_reset", NULL);
    _cleanup_free_ char *store = mar_xasprintf("%s/big", itest_tmpdir());
    char *ref = via("big");
    const char *refs[8];
    for (size_t i = 0; i < 8; i++) {
        refs[i] = ref;
    }
    run_all(store, refs, 8);
    json_t *st = stats();
    assert_int_equal(check_blobs_once(st), 3); /* two layers and a config */
    json_decref(st);
    check_clean(store, 2);
    free(ref);
}

static bool dir_has_entries(const char *dir, const char *prefix)
{
    itest_run r;
    const char *argv[] = {"ls", "-A", dir, NULL};
    itest_runv(&r, NULL, argv);
    bool yes = false;
    for (char *l = r.out.data; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl) {
            *nl = '\0';
        }
        yes = yes || (prefix ? mar_str_startswith(l, prefix) : *l != '\0');
        l = nl ? nl + 1 : NULL;
    }
    itest_run_release(&r);
    return yes;
}

static void test_kill_recovery(void **state)
{
    (void)state;
    const char *kv = getenv("MAR_TEST_KILLS");
    int64_t rounds = 20;
    if (kv) {
        mar_parse_i64(kv, 1, 100000, &rounds);
    }
    char *ref = via("big");
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    /* Every other round slows the download down (about 1.5 s for the 64 MiB layer), so kills
     * land both in long transfers and, at full speed, in the unpack and settle that follow. */
    static const char slow[] =
            "[{\"match\":\"/blobs/\",\"fault\":\"slow\",\"rate\":50000000,\"count\":99}]";
    /* One whole pull at full speed sets the window the kills are spread over, so they land in
     * every phase on any machine. */
    uint64_t window;
    {
        curl_post("/_reset", NULL);
        _cleanup_free_ char *store = mar_xasprintf("%s/kill-timing", itest_tmpdir());
        uint64_t t0 = mar_now_ms();
        itest_run r;
        itest_mar(&r, NULL, "-q", "pull", "--store", store, ref, NULL);
        assert_int_equal(r.status, 0);
        itest_run_release(&r);
        window = mar_now_ms() - t0;
        const char *rm[] = {"rm", "-rf", store, NULL};
        itest_runv(&r, NULL, rm);
        itest_run_release(&r);
    }
    size_t in_download = 0, in_unpack = 0, elsewhere = 0, recovered = 0;
    for (int64_t i = 0; i < rounds; i++) {
        curl_post("/_reset", NULL);
        if (i % 2) {
            curl_post("/_faults", slow);
        }
        _cleanup_free_ char *store = mar_xasprintf("%s/kill%lld", itest_tmpdir(), (long long)i);
        _cleanup_free_ char *out = mar_xasprintf("%s/kout", itest_tmpdir());
        _cleanup_free_ char *err = mar_xasprintf("%s/kerr", itest_tmpdir());
        const char *args[] = {"-q", "pull", "--store", store, ref, NULL};
        pid_t pid = itest_mar_spawn(NULL, out, err, args);
        uint64_t w = i % 2 ? window + 1500 : window;
        usleep((useconds_t)((uint64_t)rand() % (w + 1)) * 1000u);
        kill(pid, SIGKILL);
        itest_wait(pid);
        _cleanup_free_ char *ing = mar_xasprintf("%s/ingest", store);
        _cleanup_free_ char *unp = mar_xasprintf("%s/unpack", store);
        if (dir_has_entries(ing, NULL)) {
            in_download++;
        } else if (dir_has_entries(unp, "part-")) {
            in_unpack++;
        } else {
            elsewhere++;
        }
        /* Whatever the kill left, nothing incomplete looks complete. */
        itest_fsck f;
        itest_store_fsck(store, &f);
        assert_int_equal(f.bad_blobs, 0);
        assert_int_equal(f.incomplete_layers, 0);
        curl_post("/_reset", NULL);
        itest_run r;
        itest_mar(&r, NULL, "-q", "pull", "--store", store, ref, NULL);
        if (r.status != 0) {
            fail_msg("round %lld: the pull after the kill failed: %s", (long long)i, r.err.data);
        }
        itest_run_release(&r);
        check_clean(store, 2);
        recovered++;
        const char *rm[] = {"rm", "-rf", store, NULL};
        itest_runv(&r, NULL, rm);
        itest_run_release(&r);
    }
    fprintf(stderr,
            "pull-kill  %lld kills  %zu recoveries  (%zu during download, %zu during unpack, "
            "%zu before or after)\n",
            (long long)rounds, recovered, in_download, in_unpack, elsewhere);
    assert_int_equal(recovered, (size_t)rounds);
    free(ref);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    if (geteuid() != 0) {
        fprintf(stderr, "skip: needs root (unpacking layers)\n");
        exit(getenv("MAR_CI") ? 1 : 77);
    }
    port = itest_free_port();
    int rport = itest_free_port();
    proxy_pid = itest_faultproxy_start(port, rport, itest_bed("MAR_TEST_REGISTRY"), NULL);
    if (proxy_pid < 0) {
        fprintf(stderr, "the fault proxy did not start\n");
        return -1;
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
            cmocka_unit_test(test_shared_base),
            cmocka_unit_test(test_same_big_image),
            cmocka_unit_test(test_kill_recovery),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
