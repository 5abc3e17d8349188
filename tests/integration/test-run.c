/* mar run against the bed's containerd: native amd64, and arm64, arm/v7, s390x (big endian) and
 * ppc64le through QEMU user-mode printing their `uname -m`; exit statuses, stdout and stderr
 * apart, -e/--env-file/-w/-u/--entrypoint/-i/--network/-v, SIGTERM forwarded, refusals before
 * anything is created, --explain for each mode (this host and a simulated Apple Silicon); after
 * every run nothing is left in containerd's namespace or the store. */
#include "itest.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char store[256];

static const char *ref(const char *fixture)
{
    return itest_fixture_ref(fixture);
}

/* mar run --store S -q ARGS... ; checks the status. */
static void run(itest_run *r, int want, const char *const *extra_env, const char *const *args)
{
    const char *argv[40] = {getenv("MAR_BIN"), "run", "-q", "--store", store};
    size_t n = 5;
    for (size_t i = 0; args[i] && n < 39; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const char *env[8] = {itest_ctd_env()};
    size_t k = 1;
    for (size_t i = 0; extra_env && extra_env[i] && k < 7; i++) {
        env[k++] = extra_env[i];
    }
    env[k] = NULL;
    itest_runv(r, env, argv);
    if (r->status != want) {
        fail_msg("mar run %s %s: %d, want %d\nstdout: %s\nstderr: %s", args[0],
                 args[1] ? args[1] : "", r->status, want, r->out.data, r->err.data);
    }
}

static void test_architectures(void **state)
{
    (void)state;
    static const struct {
        const char *platform, *machine;
    } cases[] = {
            {"linux/amd64", "x86_64\n"},    {"linux/arm64", "aarch64\n"},
            {"linux/arm/v7", "armv7l\n"},   {"linux/s390x", "s390x\n"},
            {"linux/ppc64le", "ppc64le\n"},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        itest_run r;
        const char *a[] = {"--platform", cases[i].platform, ref("multi"), "uname", "-m", NULL};
        run(&r, 0, NULL, a);
        assert_string_equal(r.out.data, cases[i].machine);
        itest_run_release(&r);
        itest_ctd_nothing_left(store);
    }
    /* Big endian really: s390x's busybox reports the byte order it sees. */
    itest_run r;
    const char *be[] = {"--platform", "linux/s390x",
                        ref("multi"), "sh",
                        "-c",         "printf '\\001\\000' | od -An -tx2 | tr -d ' \\n'",
                        NULL};
    run(&r, 0, NULL, be);
    assert_string_equal(r.out.data, "0100");
    itest_run_release(&r);
    const char *le[] = {"--platform", "linux/ppc64le",
                        ref("multi"), "sh",
                        "-c",         "printf '\\001\\000' | od -An -tx2 | tr -d ' \\n'",
                        NULL};
    run(&r, 0, NULL, le);
    assert_string_equal(r.out.data, "0001");
    itest_run_release(&r);
}

static void test_status_and_streams(void **state)
{
    (void)state;
    itest_run r;
    const char *a[] = {ref("multi"), "sh", "-c", "echo to-out; echo to-err >&2; exit 42", NULL};
    run(&r, 42, NULL, a);
    assert_string_equal(r.out.data, "to-out\n");
    assert_contains(r.err.data, "to-err\n");
    assert_not_contains(r.err.data, "to-out");
    itest_run_release(&r);
    /* Under QEMU too. */
    const char *b[] = {"--platform", "linux/arm64", ref("multi"), "sh", "-c", "exit 7", NULL};
    run(&r, 7, NULL, b);
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
}

static void test_options(void **state)
{
    (void)state;
    char *envf = itest_write("run.env", "# comment\nFROM_FILE=yes\n\nOVER=file\n", 0600);
    itest_run r;
    const char *a[] = {"-e",         "A=1",
                       "-e",         "FROM_HOST",
                       "-e",         "OVER=flag",
                       "--env-file", envf,
                       "-w",         "/tmp",
                       ref("multi"), "sh",
                       "-c",         "echo $A $FROM_HOST $FROM_FILE $OVER $HOME; pwd",
                       NULL};
    const char *host[] = {"FROM_HOST=copied", NULL};
    run(&r, 0, host, a);
    assert_string_equal(r.out.data, "1 copied yes flag /root\n/tmp\n");
    itest_run_release(&r);
    free(envf);

    const char *u1[] = {"-u", "nobody", ref("multi"), "id", NULL};
    run(&r, 0, NULL, u1);
    assert_contains(r.out.data, "uid=65534(nobody) gid=65534(nogroup)");
    itest_run_release(&r);
    const char *u2[] = {"-u", "1234:5678", ref("multi"), "sh", "-c", "id -u; id -g", NULL};
    run(&r, 0, NULL, u2);
    assert_string_equal(r.out.data, "1234\n5678\n");
    itest_run_release(&r);
    const char *u3[] = {"-u", "ghost", ref("multi"), "true", NULL};
    run(&r, MAR_EUSAGE, NULL, u3);
    assert_contains(r.err.data, "no user 'ghost'");
    itest_run_release(&r);

    const char *ep[] = {"--entrypoint", "/bin/echo", ref("multi"), "via", "entrypoint", NULL};
    run(&r, 0, NULL, ep);
    assert_string_equal(r.out.data, "via entrypoint\n");
    itest_run_release(&r);

    const char *net[] = {"--network", "none", ref("multi"), "ls", "/sys/class/net", NULL};
    run(&r, 0, NULL, net);
    assert_string_equal(r.out.data, "lo\n");
    itest_run_release(&r);

    char *vol = itest_write("vol/file", "from the host\n", 0644);
    _cleanup_free_ char *vdir = mar_xstrdup(vol);
    *strrchr(vdir, '/') = '\0';
    _cleanup_free_ char *spec = mar_xasprintf("%s:/data:ro", vdir);
    const char *v[] = {"-v",
                       spec,
                       ref("multi"),
                       "sh",
                       "-c",
                       "cat /data/file; touch /data/x 2>/dev/null && echo writable || echo "
                       "read-only",
                       NULL};
    run(&r, 0, NULL, v);
    assert_string_equal(r.out.data, "from the host\nread-only\n");
    itest_run_release(&r);
    free(vol);
    itest_ctd_nothing_left(store);
}

static void test_stdin(void **state)
{
    (void)state;
    _cleanup_free_ char *cmd = mar_xasprintf(
            "printf 'line one\\nline two\\n' | %s=%s %s run -q -i --store %s %s wc -l",
            "CONTAINERD_ADDRESS", itest_bed("MAR_TEST_CONTAINERD"), getenv("MAR_BIN"), store,
            ref("multi"));
    itest_run r;
    const char *argv[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out.data, "2\n");
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
}

/* SIGTERM to mar reaches the container's process (which traps it here: a PID 1 without a
 * handler ignores it, as under docker). */
static void test_signal(void **state)
{
    (void)state;
    _cleanup_free_ char *out = mar_xasprintf("%s/sig.out", itest_tmpdir());
    _cleanup_free_ char *err = mar_xasprintf("%s/sig.err", itest_tmpdir());
    const char *env[] = {itest_ctd_env(), NULL};
    const char *args[] = {
            "run",        "-q",
            "--store",    store,
            ref("multi"), "sh",
            "-c",         "trap 'echo got TERM; exit 3' TERM; echo ready; sleep 60 & wait",
            NULL};
    pid_t pid = itest_mar_spawn(env, out, err, args);
    /* Wait for "ready" before signalling. */
    for (int i = 0; i < 200; i++) {
        mar_buf b = MAR_BUF_INIT(4096);
        if (mar_read_file_at(AT_FDCWD, out, 4096, &b, NULL) == 0 && strstr(b.data, "ready")) {
            mar_buf_release(&b);
            break;
        }
        mar_buf_release(&b);
        usleep(50000);
    }
    kill(pid, SIGTERM);
    int st = itest_wait(pid);
    assert_int_equal(st, 3);
    mar_buf b = MAR_BUF_INIT(4096);
    assert_int_equal(mar_read_file_at(AT_FDCWD, out, 4096, &b, NULL), 0);
    assert_string_equal(b.data, "ready\ngot TERM\n");
    mar_buf_release(&b);
    itest_ctd_nothing_left(store);
}

/* A platform with no working handler: exit 7 with the fixing command, nothing created. */
static void test_refusals(void **state)
{
    (void)state;
    _cleanup_free_ char *fake = mar_xasprintf("%s/empty-binfmt", itest_tmpdir());
    mkdir(fake, 0700);
    char *status = itest_write("empty-binfmt/status", "enabled\n", 0644);
    free(status);
    itest_run r;
    const char *a[] = {"--binfmt-root", fake,   "--platform", "linux/arm64",
                       ref("multi"),    "true", NULL};
    run(&r, MAR_EUNSUPPORTED, NULL, a);
    assert_contains(r.err.data, "no binfmt_misc handler for arm64");
    assert_contains(r.err.data, "mar binfmt install arm64");
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
    /* No containerd there: a clear line, exit 5, nothing left in the store. */
    const char *b[] = {"--address", "/nonexistent/containerd.sock", ref("multi"), "true", NULL};
    run(&r, MAR_ENET, NULL, b);
    assert_contains(r.err.data, "no containerd socket at '/nonexistent/containerd.sock'");
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
    /* A command the image does not have: runc's error, nothing left. */
    _cleanup_free_ char *cmd =
            mar_xasprintf("%s %s run -q --store %s %s /no/such/program", itest_ctd_env(),
                          getenv("MAR_BIN"), store, ref("multi"));
    const char *argv[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, argv);
    assert_true(r.status != 0);
    assert_contains(r.err.data, "/no/such/program");
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
}

static void test_keep(void **state)
{
    (void)state;
    itest_run r;
    const char *a[] = {
            "--keep", "--name", "kept-one", ref("multi"), "sh", "-c", "echo kept > /marker", NULL};
    run(&r, 0, NULL, a);
    itest_run_release(&r);
    _cleanup_free_ char *marker = mar_xasprintf("%s/containers/kept-one/upper/marker", store);
    struct stat st;
    assert_int_equal(stat(marker, &st), 0);
    /* The name is taken while it exists. */
    const char *b[] = {"--name", "kept-one", ref("multi"), "true", NULL};
    run(&r, MAR_EUSAGE, NULL, b);
    itest_run_release(&r);
    /* Removing the image keeps the layers the kept container mounts. */
    itest_mar(&r, NULL, "rmi", "--store", store, ref("multi"), NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    _cleanup_free_ char *lf = mar_xasprintf("%s/containers/kept-one/layers", store);
    mar_buf layers = MAR_BUF_INIT(1 << 16);
    assert_int_equal(mar_read_file_at(AT_FDCWD, lf, 1 << 16, &layers, NULL), 0);
    *strchr(layers.data, '\n') = '\0';
    _cleanup_free_ char *ld = mar_xasprintf("%s/unpack/%s/rootfs/bin/busybox", store, layers.data);
    assert_int_equal(stat(ld, &st), 0);
    const char *del[] = {"sh", "-c", NULL, NULL};
    _cleanup_free_ char *cmd = mar_xasprintf(
            "ctr --address %s -n mar tasks rm kept-one; ctr --address %s -n mar containers rm "
            "kept-one; rm -rf %s/containers/kept-one",
            itest_bed("MAR_TEST_CONTAINERD"), itest_bed("MAR_TEST_CONTAINERD"), store);
    del[2] = cmd;
    itest_runv(&r, NULL, del);
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
    /* Once it is gone, gc collects them. */
    itest_mar(&r, NULL, "gc", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    assert_true(stat(ld, &st) < 0);
    mar_buf_release(&layers);
}

static json_t *explain(int want, const char *target, const char *platform)
{
    itest_run r;
    const char *argv[16] = {getenv("MAR_BIN"), "run", "--explain", "--json"};
    size_t n = 4;
    if (target) {
        argv[n++] = "--target";
        argv[n++] = target;
    }
    argv[n++] = "--platform";
    argv[n++] = platform;
    argv[n++] = ref("multi");
    argv[n] = NULL;
    itest_runv(&r, NULL, argv);
    if (r.status != want) {
        fail_msg("explain %s %s: %d, want %d: %s", target ? target : "", platform, r.status, want,
                 r.err.data);
    }
    json_t *doc = itest_json(r.out.data);
    itest_run_release(&r);
    return doc;
}

static const char *S(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_explain(void **state)
{
    (void)state;
    json_t *d = explain(0, NULL, "linux/amd64");
    assert_string_equal(S(d, "mode"), "native");
    json_decref(d);
    d = explain(0, NULL, "linux/arm64");
    assert_string_equal(S(d, "mode"), "emulated (qemu)");
    assert_string_equal(S(d, "platform"), "linux/arm64/v8");
    assert_true(json_is_true(json_object_get(json_object_get(d, "handler"), "fixBinary")));
    json_decref(d);
    /* 32-bit x86 runs natively where the kernel has IA-32 emulation; elsewhere nothing runs it
     * (the bed registers no qemu-i386), and the plan must say so with the fix. */
    if (itest_host_runs("i386")) {
        d = explain(0, NULL, "linux/386");
        assert_string_equal(S(d, "mode"), "native");
    } else {
        d = explain(MAR_EUNSUPPORTED, NULL, "linux/386");
        assert_string_equal(S(d, "mode"), "impossible");
        assert_string_equal(S(d, "fix"), "mar binfmt install 386");
    }
    json_decref(d);
    d = explain(MAR_ENOTFOUND, NULL, "linux/riscv64");
    assert_false(json_is_true(json_object_get(d, "runnable")));
    json_decref(d);
    /* A simulated Apple Silicon VM: Rosetta for amd64, QEMU for 32-bit Arm and x86. */
    d = explain(0, "apple-silicon", "linux/amd64");
    assert_string_equal(S(d, "mode"), "emulated (rosetta)");
    json_decref(d);
    d = explain(0, "apple-silicon", "linux/arm/v7");
    assert_string_equal(S(d, "mode"), "emulated (qemu)");
    json_decref(d);
    d = explain(0, "apple-silicon", "linux/386");
    assert_string_equal(S(d, "mode"), "emulated (qemu)");
    json_decref(d);
    d = explain(0, "apple-silicon", "linux/arm64");
    assert_string_equal(S(d, "mode"), "native");
    json_decref(d);
    /* Human form. */
    itest_run r;
    itest_mar(&r, NULL, "run", "--explain", "--platform", "linux/s390x", ref("multi"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "plan:      emulated (qemu)");
    assert_contains(r.out.data, "manifest:  linux/s390x sha256:");
    itest_run_release(&r);
}

/* The choice through nested indexes and past entries mar does not read
 * (docs/internals/platforms.md §7): run picks what inspect marks. */
static void test_index_shapes(void **state)
{
    (void)state;
    itest_run r;
    const char *s390x[] = {"--platform", "linux/s390x", ref("nested"), "uname", "-m", NULL};
    run(&r, 0, NULL, s390x);
    assert_string_equal(r.out.data, "s390x\n");
    itest_run_release(&r);
    const char *dflt[] = {ref("nested"), "uname", "-m", NULL};
    run(&r, 0, NULL, dflt);
    assert_string_equal(r.out.data, "x86_64\n");
    itest_run_release(&r);
    const char *unknown[] = {ref("unknownmt"), "true", NULL};
    run(&r, 0, NULL, unknown);
    itest_run_release(&r);
    /* containerd stops at the first platform-less entry when its config does not match. */
    const char *pl[] = {"--platform", "linux/amd64", ref("platformless"), "true", NULL};
    run(&r, MAR_ENOTFOUND, NULL, pl);
    assert_contains(r.err.data, "has no platform and its config says linux/arm64/v8");
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
            cmocka_unit_test(test_architectures), cmocka_unit_test(test_status_and_streams),
            cmocka_unit_test(test_options),       cmocka_unit_test(test_stdin),
            cmocka_unit_test(test_signal),        cmocka_unit_test(test_refusals),
            cmocka_unit_test(test_keep),          cmocka_unit_test(test_explain),
            cmocka_unit_test(test_index_shapes),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
