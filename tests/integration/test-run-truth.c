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
    const char *env[] = {itest_ctd_env(), NULL};
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
static size_t blobs_in(const char *store)
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

/* mar itself, with the bed's registry: "tag --remote SRC DST" and "pull ...". */
static void mar_ok(const char *const *args)
{
    const char *argv[24] = {getenv("MAR_BIN")};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 23; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_run r;
    itest_runv(&r, NULL, argv);
    if (r.status != 0) {
        fail_msg("mar %s %s: %d\n%s", args[0], args[1], r.status, r.err.data);
    }
    itest_run_release(&r);
}

/* After a pull of arm/v7 the tag gains arm64: --explain names arm64, and run runs it, not the
 * stored arm/v7 entry further down containerd's ladder. --pull never keeps to the store. */
static void test_moved_tag(void **state)
{
    (void)state;
    _cleanup_free_ char *s = new_store("moved");
    _cleanup_free_ char *tag = mar_xasprintf("%s/mar/stale:moved", itest_bed("MAR_TEST_REGISTRY"));
    const char *t1[] = {"tag", "--remote", ref("stale-v1"), tag, NULL};
    mar_ok(t1);
    const char *pull[] = {"pull", "-q", "--store", s, "--platform", "linux/arm/v7", tag, NULL};
    mar_ok(pull);
    const char *t2[] = {"tag", "--remote", ref("stale-v2"), tag, NULL};
    mar_ok(t2);
    itest_run r;
    itest_mar(&r, NULL, "run", "--explain", "--platform", "linux/arm64", tag, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "manifest:  linux/arm64/v8");
    itest_run_release(&r);
    const char *never[] = {"-q", "--pull", "never", "--platform", "linux/arm64",
                           tag,  "uname",  "-m",    NULL};
    run(&r, 0, s, never);
    assert_string_equal(r.out.data, "armv7l\n");
    itest_run_release(&r);
    const char *dflt[] = {"-q", "--platform", "linux/arm64", tag, "uname", "-m", NULL};
    run(&r, 0, s, dflt);
    assert_string_equal(r.out.data, "aarch64\n");
    itest_run_release(&r);
    /* Now stored exactly: missing pulls nothing, always asks again and runs the same. */
    const char *again[] = {"--platform", "linux/arm64", tag, "uname", "-m", NULL};
    run(&r, 0, s, again);
    assert_string_equal(r.out.data, "aarch64\n");
    assert_not_contains(r.err.data, "downloading");
    itest_run_release(&r);
    const char *always[] = {"-q", "--pull", "always", "--platform", "linux/arm/v7",
                            tag,  "uname",  "-m",     NULL};
    run(&r, 0, s, always);
    assert_string_equal(r.out.data, "armv7l\n");
    itest_run_release(&r);
    /* never with nothing stored; a bad policy. */
    _cleanup_free_ char *empty = new_store("moved-empty");
    const char *none[] = {"-q", "--pull", "never", ref("multi"), "true", NULL};
    run(&r, MAR_ENOTFOUND, empty, none);
    assert_contains(r.err.data, "--pull never");
    itest_run_release(&r);
    assert_int_equal(blobs_in(empty), 0);
    const char *bad[] = {"-q", "--pull", "sometimes", ref("multi"), "true", NULL};
    run(&r, MAR_EUSAGE, empty, bad);
    assert_contains(r.err.data, "--pull is always, missing or never");
    itest_run_release(&r);
}

/* A single-platform arm64 image, no --platform: run under QEMU with docker's warning, the same
 * before and after it is stored; with no handler, 7 and the fix before any download. */
static void test_single_foreign(void **state)
{
    (void)state;
    _cleanup_free_ char *s = new_store("single");
    itest_run r;
    for (int i = 0; i < 2; i++) {
        const char *a[] = {ref("single-arm64"), "uname", "-m", NULL};
        run(&r, 0, s, a);
        assert_string_equal(r.out.data, "aarch64\n");
        assert_contains(r.err.data, "the image's platform (linux/arm64/v8) does not match this "
                                    "host (linux/amd64) and no platform was requested");
        assert_contains(r.err.data, "running linux/arm64/v8 under qemu");
        itest_run_release(&r);
    }
    _cleanup_free_ char *fake = mar_xasprintf("%s/empty-binfmt", itest_tmpdir());
    mkdir(fake, 0700);
    free(itest_write("empty-binfmt/status", "enabled\n", 0644));
    _cleanup_free_ char *s2 = new_store("single-nohandler");
    const char *no[] = {"-q", "--binfmt-root", fake, ref("single-arm64"), "true", NULL};
    run(&r, MAR_EUNSUPPORTED, s2, no);
    assert_contains(r.err.data, "no binfmt_misc handler for arm64");
    assert_contains(r.err.data, "mar binfmt install arm64");
    itest_run_release(&r);
    assert_int_equal(blobs_in(s2), 0);
    /* The same with --platform on an index: refused before the download. */
    const char *idx[] = {"-q",          "--binfmt-root", fake,   "--platform",
                         "linux/s390x", ref("multi"),    "true", NULL};
    run(&r, MAR_EUNSUPPORTED, s2, idx);
    assert_contains(r.err.data, "mar binfmt install s390x");
    itest_run_release(&r);
    assert_int_equal(blobs_in(s2), 0);
    /* Asking for another platform than a single-platform image has is still refused. */
    const char *other[] = {"-q", "--platform", "linux/s390x", ref("single-arm64"), "true", NULL};
    run(&r, MAR_ENOTFOUND, s2, other);
    assert_contains(r.err.data, "single-platform image for linux/arm64/v8");
    itest_run_release(&r);
}

/* Warnings as inspect gives them, and what executes: the command's binary decides. */
static void test_mislabeled(void **state)
{
    (void)state;
    _cleanup_free_ char *s = new_store("mislabeled");
    itest_run r;
    /* Label arm64, config and binaries amd64: native, no QEMU notice. */
    const char *lab[] = {"--platform", "linux/arm64", ref("labelonly"), "uname", "-m", NULL};
    run(&r, 0, s, lab);
    assert_string_equal(r.out.data, "x86_64\n");
    assert_contains(r.err.data, "is labeled linux/arm64/v8 but its config says linux/amd64");
    assert_contains(r.err.data, "its command /bin/uname is built for amd64: it runs as "
                                "linux/amd64, natively here");
    assert_not_contains(r.err.data, "under qemu");
    itest_run_release(&r);
    /* Label and config arm64, binaries amd64: the same truth. */
    const char *mis[] = {"--platform", "linux/arm64", ref("mislabeled"), "uname", "-m", NULL};
    run(&r, 0, s, mis);
    assert_string_equal(r.out.data, "x86_64\n");
    assert_contains(r.err.data, "built for amd64");
    assert_not_contains(r.err.data, "under qemu");
    itest_run_release(&r);
    /* Config amd64, binaries arm64 as labeled: warned, and QEMU really runs it. */
    const char *cm[] = {"--platform", "linux/arm64", ref("confmismatch"), "uname", "-m", NULL};
    run(&r, 0, s, cm);
    assert_string_equal(r.out.data, "aarch64\n");
    assert_contains(r.err.data, "but its config says linux/amd64: the image is mislabeled");
    assert_contains(r.err.data, "running linux/arm64/v8 under qemu");
    itest_run_release(&r);
    /* Stored now: the warning comes from the store's copy too. */
    run(&r, 0, s, cm);
    assert_contains(r.err.data, "but its config says linux/amd64: the image is mislabeled");
    itest_run_release(&r);
}

/* The Rosetta model by macOS release (docs/internals/binfmt-and-rosetta.md §11): x86-64-v3 "may
 * fail" on the current macOS and macOS 15, fails before macOS 15; v4 always fails. */
static json_t *explain_json(int want, const char *target, const char *platform)
{
    itest_run r;
    itest_mar(&r, NULL, "run", "--explain", "--json", "--target", target, "--platform", platform,
              ref("amd64levels"), NULL);
    if (r.status != want) {
        fail_msg("explain %s %s: %d, want %d: %s", target, platform, r.status, want, r.err.data);
    }
    json_t *d = itest_json(r.out.data);
    itest_run_release(&r);
    return d;
}

static void test_rosetta_by_macos(void **state)
{
    (void)state;
    static const struct {
        const char *target, *platform;
        int status;
        const char *mode, *why;
        bool may_fail;
    } cases[] = {
            {"apple-silicon", "linux/amd64/v3", 0, "emulated (rosetta), may fail", "CPUID", true},
            {"apple-silicon:macos15", "linux/amd64/v3", 0, "emulated (rosetta), may fail",
             "glibc's x86-64-v3 check", true},
            {"apple-silicon:macos14", "linux/amd64/v3", MAR_EUNSUPPORTED, "impossible",
             "only from macOS 15 on (this Mac: macOS 14)", false},
            {"apple-silicon:macos13", "linux/amd64/v3", MAR_EUNSUPPORTED, "impossible", "macOS 13",
             false},
            {"apple-silicon", "linux/amd64/v4", MAR_EUNSUPPORTED, "impossible", "AVX-512", false},
            {"apple-silicon:macos15", "linux/amd64/v4", MAR_EUNSUPPORTED, "impossible", "AVX-512",
             false},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        json_t *d = explain_json(cases[i].status, cases[i].target, cases[i].platform);
        assert_string_equal(json_string_value(json_object_get(d, "mode")), cases[i].mode);
        assert_contains(json_string_value(json_object_get(d, "reason")), cases[i].why);
        assert_int_equal(json_is_true(json_object_get(d, "mayFail")), cases[i].may_fail);
        json_decref(d);
    }
    itest_run r;
    itest_mar(&r, NULL, "run", "--explain", "--target", "apple-silicon:macos14", "--platform",
              "linux/amd64/v3", ref("amd64levels"), NULL);
    assert_int_equal(r.status, MAR_EUNSUPPORTED);
    assert_contains(r.out.data, "fix:       update the Mac to macOS 15 or later");
    itest_run_release(&r);
    itest_mar(&r, NULL, "run", "--explain", "--target", "apple-silicon:macos12", ref("multi"),
              NULL);
    assert_int_equal(r.status, MAR_EUSAGE);
    assert_contains(r.err.data, "macosN, N from 13");
    itest_run_release(&r);
    /* mar doctor for such a Mac says what its Rosetta translates. */
    itest_mar(&r, NULL, "doctor", "--no-probe", "--target", "apple-silicon:macos14", NULL);
    assert_contains(r.out.data, "macOS 14 (--target): Rosetta does not translate AVX or AVX2");
    itest_run_release(&r);
    itest_mar(&r, NULL, "doctor", "--no-probe", "--target", "apple-silicon", NULL);
    assert_contains(r.out.data, "the current release");
    assert_contains(r.out.data, "x86-64-v3 binaries may still fail when they check CPUID first");
    itest_run_release(&r);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_CONTAINERD",
                                "MAR_TEST_BINFMT", NULL};
    itest_require(need);
    itest_require_root("mar run");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_hosts_and_hostname), cmocka_unit_test(test_exec_status),
            cmocka_unit_test(test_passwd_over_cap),    cmocka_unit_test(test_moved_tag),
            cmocka_unit_test(test_single_foreign),     cmocka_unit_test(test_mislabeled),
            cmocka_unit_test(test_rosetta_by_macos),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
