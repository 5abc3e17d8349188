/* The EXIT STATUS table of docs/mar.1.md, row by row: each status is provoked for real through the
 * mar binary against the bed (a registry that refuses, a port nothing listens on, a corrupted
 * blob, a rate limit from the fault proxy, a store that cannot be created), and the table in the
 * page is read back so a row without a case here fails. */
#include "itest.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *const quick[] = {"MAR_RETRY_BASE_MS=1", NULL};

static const char *ref(const char *fixture)
{
    return itest_fixture_ref(fixture);
}

static char *host_of(const char *r)
{
    return mar_xstrndup(r, strcspn(r, "/"));
}

/* Runs mar with args (NULL-terminated) and env, and checks the status and a stderr substring. */
static void expect(int want, const char *msg, const char *const *env, const char *const *args)
{
    const char *argv[32] = {getenv("MAR_BIN")};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 31; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_run r;
    itest_runv(&r, env, argv);
    if (r.status != want) {
        fail_msg("mar %s ...: exit %d, want %d\n%s", args[0], r.status, want, r.err.data);
    }
    if (msg) {
        assert_contains(r.err.data, msg);
    }
    itest_run_release(&r);
}

static char *scratch(const char *name)
{
    static int n;
    return mar_xasprintf("%s/%s%d", itest_tmpdir(), name, ++n);
}

static void status_0(void)
{
    const char *a[] = {"inspect", ref("single"), NULL};
    expect(0, NULL, NULL, a);
}

/* A gate that is not met. */
static void status_1(void)
{
    const char *a[] = {"check", "--platforms", "linux/riscv64", ref("single"), NULL};
    expect(1, "0 ok, 1 failed", NULL, a);
}

static void status_2(void)
{
    const char *a[] = {"inspect", "--bogus", ref("single"), NULL};
    expect(2, "unknown option '--bogus'", NULL, a);
    /* References: each names its actual problem. */
    const char *b[] = {"inspect", "x@", NULL};
    expect(2, "no digest after '@'", NULL, b);
    _cleanup_free_ char *twice = mar_xasprintf(
            "x@@sha256:%s", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *c[] = {"inspect", twice, NULL};
    expect(2, "more than one '@'", NULL, c);
    _cleanup_free_ char *host = host_of(ref("single"));
    _cleanup_free_ char *creds = mar_xasprintf("user:Pa55word@%s/mar/single:latest", host);
    itest_run r;
    const char *argv[] = {getenv("MAR_BIN"), "inspect", creds, NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 2);
    assert_contains(r.err.data, "credentials never go in a reference");
    assert_not_contains(r.err.data, "Pa55word");
    itest_run_release(&r);
    /* Ports outside 1-65535: refused before any request (nothing could answer at those). */
    const char *e[] = {"inspect", "127.0.0.1:99999/mar/single:latest", NULL};
    expect(2, "port '99999'", quick, e);
    const char *f[] = {"inspect", "127.0.0.1:0/mar/single:latest", NULL};
    expect(2, "port '0'", quick, f);
    /* A path is not a platform. */
    _cleanup_free_ char *store = scratch("store");
    const char *g[] = {"pull", "--store", store, "-p", "../../etc", ref("single"), NULL};
    expect(2, "invalid platform component", NULL, g);
    /* --env-file: missing, a directory, a FIFO (never opened for reading: it would block). */
    _cleanup_free_ char *missing = scratch("no-such-env");
    _cleanup_free_ char *dir = scratch("env-dir");
    _cleanup_free_ char *fifo = scratch("env-fifo");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *files[] = {missing, dir, fifo};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(files); i++) {
        const char *h[] = {"run", "--env-file", files[i], ref("single"), "true", NULL};
        expect(2, "--env-file", NULL, h);
    }
}

static void status_3(void)
{
    _cleanup_free_ char *host = host_of(ref("single"));
    _cleanup_free_ char *nope = mar_xasprintf("%s/mar/nope:1", host);
    const char *a[] = {"inspect", nope, NULL};
    expect(3, "404", NULL, a);
}

static void status_4(void)
{
    const char *reg = itest_bed("MAR_TEST_TOKEN_REGISTRY");
    if (!reg) {
        fail_msg("the bed has no token registry");
    }
    _cleanup_free_ char *r = mar_xasprintf("%s%s", reg, strchr(ref("single"), '/'));
    _cleanup_free_ char *cfg = mar_xasprintf("DOCKER_CONFIG=%s", scratch("empty"));
    const char *env[] = {cfg, NULL};
    const char *a[] = {"inspect", r, NULL};
    expect(4, NULL, env, a);
}

/* Nothing listens on the port: connection refused after every retry. */
static void status_5(void)
{
    _cleanup_free_ char *r = mar_xasprintf("127.0.0.1:%d/mar/single:latest", itest_free_port());
    const char *a[] = {"inspect", r, NULL};
    expect(5, NULL, quick, a);
}

/* A stored blob that no longer matches its digest. */
static void status_6(void)
{
    _cleanup_free_ char *store = scratch("store");
    const char *a[] = {"pull", "--no-unpack", "--store", store, ref("single"), NULL};
    expect(0, NULL, NULL, a);
    const char *digest = json_string_value(
            json_object_get(json_object_get(itest_fixtures(), "single"), "digest"));
    _cleanup_free_ char *blob = mar_xasprintf("%s/blobs/sha256/%s", store, strchr(digest, ':') + 1);
    assert_int_equal(chmod(blob, 0644), 0);
    FILE *f = fopen(blob, "a");
    assert_non_null(f);
    fputs(" ", f);
    fclose(f);
    const char *b[] = {"gc", "--verify", "--store", store, NULL};
    expect(6, "do not match their digest", NULL, b);
}

/* A well-formed digest of an algorithm mar does not support. */
static void status_7(void)
{
    _cleanup_free_ char *host = host_of(ref("single"));
    _cleanup_free_ char *r =
            mar_xasprintf("%s/mar/single@md5:d41d8cd98f00b204e9800998ecf8427e", host);
    const char *a[] = {"inspect", r, NULL};
    expect(7, "unsupported digest algorithm", NULL, a);
}

/* A 429 whose Retry-After is beyond the 60 s mar waits. */
static void status_8(void)
{
    int port = itest_free_port(), rport = itest_free_port();
    _cleanup_free_ char *upstream = host_of(ref("single"));
    pid_t pid = itest_faultproxy_start(port, rport, upstream, NULL);
    if (pid < 0) {
        fail_msg("the fault proxy did not start");
    }
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d/_faults", port);
    const char *ctl[] = {"curl",
                         "-sf",
                         "-X",
                         "POST",
                         "--data-binary",
                         "[{\"match\":\"/manifests/\",\"fault\":\"ratelimit\",\"retry_after\":"
                         "3600,\"count\":99}]",
                         url,
                         NULL};
    itest_run r;
    itest_runv(&r, NULL, ctl);
    int ctl_status = r.status;
    itest_run_release(&r);
    _cleanup_free_ char *via = mar_xasprintf("127.0.0.1:%d%s", port, strchr(ref("single"), '/'));
    const char *a[] = {"inspect", via, NULL};
    if (ctl_status == 0) {
        expect(8, "rate limited", quick, a);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    assert_int_equal(ctl_status, 0);
}

/* A store that cannot be created. */
static void status_9(void)
{
    const char *a[] = {"pull", "--store", "/dev/null/store", ref("single"), NULL};
    expect(9, "cannot create", NULL, a);
}

typedef struct status_case {
    int status;
    void (*fn)(void);
} status_case;

static const status_case status_cases[] = {
        {0, status_0}, {1, status_1}, {2, status_2}, {3, status_3}, {4, status_4},
        {5, status_5}, {6, status_6}, {7, status_7}, {8, status_8}, {9, status_9},
};

/* The statuses docs/mar.1.md lists under EXIT STATUS ("| N | meaning |" rows). */
static size_t doc_statuses(int *ret, size_t max)
{
    _cleanup_free_ char *path = mar_xasprintf("%s/docs/mar.1.md", getenv("MAR_SRC"));
    mar_buf b = MAR_BUF_INIT(1 << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(-100, path, 1 << 20, &b, &e) < 0) {
        fail_msg("%s", e->msg);
    }
    const char *sec = strstr(b.data, "\n## EXIT STATUS\n");
    assert_non_null(sec);
    const char *end = strstr(sec + 1, "\n## ");
    size_t n = 0;
    for (const char *l = sec; l && (!end || l < end) && n < max; l = strchr(l + 1, '\n')) {
        int v;
        char c;
        if (sscanf(l, "\n| %d %c", &v, &c) == 2 && c == '|') {
            ret[n++] = v;
        }
    }
    mar_buf_release(&b);
    return n;
}

static void test_every_documented_status(void **state)
{
    (void)state;
    int documented[32];
    size_t n = doc_statuses(documented, 32);
    assert_int_equal(n, MAR_ARRAY_SIZE(status_cases));
    for (size_t i = 0; i < n; i++) {
        const status_case *c = NULL;
        for (size_t k = 0; k < MAR_ARRAY_SIZE(status_cases); k++) {
            if (status_cases[k].status == documented[i]) {
                c = &status_cases[k];
            }
        }
        if (!c) {
            fail_msg("docs/mar.1.md lists exit status %d, and no case here provokes it",
                     documented[i]);
        }
        print_message("exit status %d\n", c->status);
        c->fn();
    }
}

int main(void)
{
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_TOKEN_REGISTRY",
                                NULL};
    itest_require(need);
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_every_documented_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
