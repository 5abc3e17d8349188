/* mar run's seccomp filter and no_new_privs against the bed's containerd
 * (docs/internals/seccomp.md): a syscall the default profile blocks fails with EPERM natively and
 * under QEMU, and is no longer refused by seccomp with seccomp=unconfined; a FILE profile's own
 * rule applies instead of the default's; NoNewPrivs is visible and stops a setuid program;
 * ordinary workloads run under the filter natively and under QEMU for every architecture the bed
 * emulates; --explain names the profile; bad options fail before anything is created. */
#include "itest.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>

static char store[256];

static const char *ref(void)
{
    return itest_fixture_ref("multi");
}

/* mar run -q --store S ARGS...; fails the test unless it exits with want. */
static void run(itest_run *r, int want, const char *const *args)
{
    const char *argv[40] = {getenv("MAR_BIN"), "run", "-q", "--store", store};
    size_t n = 5;
    for (size_t i = 0; args[i] && n < 39; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const char *env[] = {itest_ctd_env(), NULL};
    itest_runv(r, env, argv);
    if (r->status != want) {
        fail_msg("mar run %s %s %s: %d, want %d\nstdout: %s\nstderr: %s", args[0],
                 args[1] ? args[1] : "", args[1] && args[2] ? args[2] : "", r->status, want,
                 r->out.data, r->err.data);
    }
}

/* `sh -c SCRIPT` on a platform with up to two --security-opt values. */
static void run_sh(itest_run *r, int want, const char *platform, const char *opt1, const char *opt2,
                   const char *script)
{
    const char *a[16];
    size_t n = 0;
    a[n++] = "--platform";
    a[n++] = platform;
    if (opt1) {
        a[n++] = "--security-opt";
        a[n++] = opt1;
    }
    if (opt2) {
        a[n++] = "--security-opt";
        a[n++] = opt2;
    }
    a[n++] = ref();
    a[n++] = "sh";
    a[n++] = "-c";
    a[n++] = script;
    a[n] = NULL;
    run(r, want, a);
}

/* unshare(CLONE_NEWUSER) needs no capability, so only seccomp refuses it. Under QEMU the call
 * reaches the host kernel as QEMU's own x86-64 unshare. */
static void test_blocked_by_default(void **state)
{
    (void)state;
    static const char *const platforms[] = {"linux/amd64", "linux/arm64"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(platforms); i++) {
        itest_run r;
        run_sh(&r, 1, platforms[i], NULL, NULL, "grep Seccomp: /proc/self/status; unshare -U true");
        assert_contains(r.out.data, "Seccomp:\t2\n");
        assert_contains(r.err.data, "unshare(0x10000000): Operation not permitted");
        itest_run_release(&r);
    }
    itest_ctd_nothing_left(store);
}

static void test_unconfined(void **state)
{
    (void)state;
    itest_run r;
    run_sh(&r, 0, "linux/amd64", "seccomp=unconfined", NULL,
           "grep Seccomp: /proc/self/status; unshare -U true && echo unshared");
    assert_string_equal(r.out.data, "Seccomp:\t0\nunshared\n");
    itest_run_release(&r);
    /* Docker's old spelling. */
    run_sh(&r, 0, "linux/amd64", "seccomp:unconfined", NULL, "unshare -U true && echo unshared");
    assert_string_equal(r.out.data, "unshared\n");
    itest_run_release(&r);
    /* Under QEMU the kernel has its own objection: QEMU is multi-threaded, and unshare of a user
     * namespace wants a single thread (EINVAL); what matters is that seccomp no longer answers. */
    run_sh(&r, 0, "linux/arm64", "seccomp=unconfined", NULL,
           "grep Seccomp: /proc/self/status; unshare -U true 2>&1; true");
    assert_contains(r.out.data, "Seccomp:\t0\n");
    assert_not_contains(r.out.data, "Operation not permitted");
    itest_run_release(&r);
    /* builtin is the default profile again. */
    run_sh(&r, 1, "linux/amd64", "seccomp=unconfined", "seccomp=builtin", "unshare -U true");
    assert_contains(r.err.data, "Operation not permitted");
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
}

/* testdata/seccomp/block-mkdir.json: everything allowed but mkdir/mkdirat, which fail with
 * EACCES (the default profile would say EPERM, and allows them). */
static void test_file_profile(void **state)
{
    (void)state;
    _cleanup_free_ char *opt =
            mar_xasprintf("seccomp=%s/testdata/seccomp/block-mkdir.json", getenv("MAR_SRC"));
    static const char *const platforms[] = {"linux/amd64", "linux/arm64"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(platforms); i++) {
        itest_run r;
        run_sh(&r, 0, platforms[i], opt, NULL, "mkdir /tmp/made 2>&1; echo ls: $(ls /tmp)");
        assert_contains(r.out.data, "can't create directory '/tmp/made': Permission denied");
        assert_contains(r.out.data, "ls:\n");
        itest_run_release(&r);
        run_sh(&r, 0, platforms[i], NULL, NULL, "mkdir /tmp/made && echo made");
        assert_string_equal(r.out.data, "made\n");
        itest_run_release(&r);
    }
    /* The file replaces the default profile: the user namespace is no longer refused. */
    itest_run r;
    run_sh(&r, 0, "linux/amd64", opt, NULL, "unshare -U true && echo unshared");
    assert_string_equal(r.out.data, "unshared\n");
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
}

static void test_no_new_privileges(void **state)
{
    (void)state;
    static const struct {
        const char *platform, *opt, *want;
    } cases[] = {
            {"linux/amd64", NULL, "NoNewPrivs:\t1\n"},
            {"linux/arm64", NULL, "NoNewPrivs:\t1\n"},
            {"linux/amd64", "no-new-privileges=false", "NoNewPrivs:\t0\n"},
            {"linux/arm64", "no-new-privileges=false", "NoNewPrivs:\t0\n"},
            {"linux/amd64", "no-new-privileges", "NoNewPrivs:\t1\n"},
            {"linux/amd64", "no-new-privileges:true", "NoNewPrivs:\t1\n"},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        itest_run r;
        run_sh(&r, 0, cases[i].platform, cases[i].opt, NULL, "grep NoNewPrivs /proc/self/status");
        assert_string_equal(r.out.data, cases[i].want);
        itest_run_release(&r);
    }

    /* What it is for: a setuid-root busybox (from a volume) run by nobody. Its ping keeps the
     * privileges (busybox drops them for most applets) and needs them for a raw socket, since a
     * fresh network namespace allows no unprivileged ICMP sockets (ping_group_range "1 0"). */
    struct statvfs sv;
    if (statvfs(itest_tmpdir(), &sv) == 0 && (sv.f_flag & ST_NOSUID)) {
        fprintf(stderr, "note: '%s' is nosuid, the setuid check is skipped\n", itest_tmpdir());
        return;
    }
    _cleanup_free_ char *src = mar_xasprintf("%s/busybox/amd64/busybox", itest_cache_dir());
    _cleanup_free_ char *dir = mar_xasprintf("%s/suid", itest_tmpdir());
    _cleanup_free_ char *bb = mar_xasprintf("%s/busybox", dir);
    mkdir(dir, 0755);
    chmod(dir, 0755);
    itest_run r;
    const char *cp[] = {"cp", src, bb, NULL};
    itest_runv(&r, NULL, cp);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    assert_int_equal(chmod(bb, 04755), 0);
    _cleanup_free_ char *vol = mar_xasprintf("%s:/suid:ro", dir);
    const char *on[] = {"-u",   "nobody",     "--network",   "none", "-v",
                        vol,    "--platform", "linux/amd64", ref(),  "/suid/busybox",
                        "ping", "-c1",        "127.0.0.1",   NULL};
    run(&r, 1, on);
    assert_contains(r.err.data, "permission denied");
    itest_run_release(&r);
    const char *off[] = {"-u",
                         "nobody",
                         "--network",
                         "none",
                         "-v",
                         vol,
                         "--security-opt",
                         "no-new-privileges=false",
                         "--platform",
                         "linux/amd64",
                         ref(),
                         "/suid/busybox",
                         "ping",
                         "-c1",
                         "127.0.0.1",
                         NULL};
    run(&r, 0, off);
    assert_contains(r.out.data, "1 packets received");
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
}

/* Ordinary programs under the default filter, natively and under QEMU: a pipeline, a
 * background job, ls, date, id, a failing connection, reading /proc. */
static void test_workloads(void **state)
{
    (void)state;
    static const char *const platforms[] = {"linux/amd64", "linux/arm64", "linux/arm/v7",
                                            "linux/s390x", "linux/ppc64le"};
    const char *script = "printf 'b\\na\\nb\\n' | sort | uniq | tr '\\n' ' '; echo;"
                         "sleep 0.1 & wait && echo waited;"
                         "ls -d /bin /proc;"
                         "date +%Y | grep -q '^20' && echo dated;"
                         "id -u;"
                         "wget -q -O- http://127.0.0.1:1/ 2>&1; echo wget=$?;"
                         "head -c 4 /proc/self/status; echo;"
                         "echo sum $(seq 1 100 | awk '{s+=$1} END {print s}')";
    for (size_t i = 0; i < MAR_ARRAY_SIZE(platforms); i++) {
        itest_run r;
        run_sh(&r, 0, platforms[i], NULL, NULL, script);
        assert_contains(r.out.data, "a b \nwaited\n/bin\n/proc\ndated\n0\n");
        assert_contains(r.out.data, "Connection refused");
        assert_contains(r.out.data, "wget=1\nName\nsum 5050\n");
        assert_not_contains(r.out.data, "not permitted");
        assert_not_contains(r.err.data, "not permitted");
        itest_run_release(&r);
    }
    itest_ctd_nothing_left(store);
}

static void test_explain(void **state)
{
    (void)state;
    itest_run r;
    itest_mar(&r, NULL, "run", "--explain", "--json", "--platform", "linux/s390x", ref(), NULL);
    assert_int_equal(r.status, 0);
    json_t *d = itest_json(r.out.data);
    json_t *sec = json_object_get(d, "security");
    assert_string_equal(json_string_value(json_object_get(sec, "seccomp")), "default");
    assert_true(json_is_true(json_object_get(sec, "noNewPrivileges")));
    /* This host's kernel, not the image's s390x. */
    struct utsname u;
    assert_int_equal(uname(&u), 0);
    const char *native = strcmp(u.machine, "x86_64") == 0    ? "SCMP_ARCH_X86_64"
                         : strcmp(u.machine, "aarch64") == 0 ? "SCMP_ARCH_AARCH64"
                                                             : NULL;
    json_t *arches = json_object_get(sec, "architectures");
    if (native) {
        assert_string_equal(json_string_value(json_array_get(arches, 0)), native);
    }
    json_decref(d);
    itest_run_release(&r);

    itest_mar(&r, NULL, "run", "--explain", "--security-opt", "seccomp=unconfined",
              "--security-opt", "no-new-privileges=false", "--platform", "linux/s390x", ref(),
              NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "security:  seccomp=unconfined, no-new-privileges=false\n");
    itest_run_release(&r);
    /* For another machine, its kernel's architectures. */
    itest_mar(&r, NULL, "run", "--explain", "--target", "apple-silicon", "--platform",
              "linux/amd64", ref(), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(
            r.out.data,
            "security:  seccomp=default (SCMP_ARCH_AARCH64 SCMP_ARCH_ARM), no-new-privileges=true");
    itest_run_release(&r);
}

static void test_bad_options(void **state)
{
    (void)state;
    itest_run r;
    const char *missing[] = {"--security-opt", "seccomp=/nonexistent/profile.json", ref(), "true",
                             NULL};
    run(&r, MAR_ENOTFOUND, missing);
    assert_contains(r.err.data, "cannot open seccomp profile '/nonexistent/profile.json'");
    itest_run_release(&r);
    char *bad = itest_write("bad-profile.json",
                            "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": "
                            "[{\"names\": [\"read\"], \"action\": \"SCMP_ACT_PERMIT\"}]}",
                            0644);
    _cleanup_free_ char *opt = mar_xasprintf("seccomp=%s", bad);
    const char *invalid[] = {"--security-opt", opt, ref(), "true", NULL};
    run(&r, MAR_EUSAGE, invalid);
    assert_contains(r.err.data, "syscalls[0]: not a seccomp action");
    itest_run_release(&r);
    free(bad);
    const char *apparmor[] = {"--security-opt", "apparmor=unconfined", ref(), "true", NULL};
    run(&r, MAR_EUSAGE, apparmor);
    assert_contains(r.err.data, "unsupported --security-opt 'apparmor=unconfined'");
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_CONTAINERD",
                                "MAR_TEST_BINFMT", NULL};
    itest_require(need);
    itest_require_root("mar run");
    snprintf(store, sizeof(store), "%s/store", itest_tmpdir());
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_blocked_by_default), cmocka_unit_test(test_unconfined),
            cmocka_unit_test(test_file_profile),       cmocka_unit_test(test_no_new_privileges),
            cmocka_unit_test(test_workloads),          cmocka_unit_test(test_explain),
            cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
