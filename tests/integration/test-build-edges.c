/* mar build seen from outside and at its edges: a two-platform result imported into the bed's
 * containerd and run by `ctr run` for each platform (containerd's own unpacker and QEMU through
 * binfmt_misc, nothing of mar in the path); a base image that does not exist (exit 3), one the
 * registry denies (exit 4), a store on a full filesystem (exit 9), and Dockerfiles mar refuses
 * (exit 2), each with one line naming the cause, nothing tagged and nothing left in containerd
 * or the store's work area. */
#include "itest.h"

#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>

static char store[256];
static char insecure_env[600];
static char base_arg[300];

static void mar_in(itest_run *r, const char *st, int want, const char *const *args)
{
    const char *argv[40] = {getenv("MAR_BIN"), "--store", st};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 39; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const char *env[] = {itest_ctd_env(), insecure_env, NULL};
    itest_runv(r, env, argv);
    if (r->status != want) {
        fail_msg("mar %s: %d, want %d\nstdout: %s\nstderr: %s", args[0], r->status, want,
                 r->out.data, r->err.data);
    }
}

static void mar(itest_run *r, int want, const char *const *args)
{
    mar_in(r, store, want, args);
}

/* A context directory under the scratch directory holding one Dockerfile. */
static char *context(const char *name, const char *dockerfile)
{
    char *dir = mar_xasprintf("%s/%s", itest_tmpdir(), name);
    mkdir(dir, 0755);
    _cleanup_free_ char *df = mar_xasprintf("%s/Dockerfile", name);
    free(itest_write(df, dockerfile, 0644));
    return dir;
}

/* The error output is one line (mar's warnings about the bed's plain-HTTP registry aside). */
static void assert_one_error_line(const char *err)
{
    size_t lines = 0;
    for (const char *p = err; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && !(len > 12 && memcmp(p, "mar: warning", 12) == 0)) {
            lines++;
        }
        p += len + (nl ? 1 : 0);
    }
    if (lines != 1) {
        fail_msg("want one line of error, got %zu:\n%s", lines, err);
    }
}

static bool tagged(const char *st, const char *name)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/index.json", st);
    mar_buf b = MAR_BUF_INIT(16u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, p, 16u << 20, &b, &e) < 0) {
        mar_err_free(e);
        return false;
    }
    bool found = strstr(b.data, name) != NULL;
    mar_buf_release(&b);
    return found;
}

static void ctr(itest_run *r, const char *const *args)
{
    const char *argv[24] = {"ctr", "--address", itest_bed("MAR_TEST_CONTAINERD"), "-n",
                            "mar-build-edges"};
    size_t n = 5;
    for (size_t i = 0; args[i] && n < 23; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_runv(r, NULL, argv);
}

/* containerd runs what mar built: the multistage corpus for three platforms, written with
 * `--output type=oci`, imported with `ctr images import` (containerd's own unpacker applies the
 * layers, the whiteout of RUN rm included) and started with `ctr run --platform`: its CMD
 * prints what the build stage's RUN recorded, natively or under QEMU. */
static void test_ctr_runs(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/testdata/build/multistage", getenv("MAR_SRC"));
    _cleanup_free_ char *out = mar_xasprintf("type=oci,dest=%s/ctr.tar", itest_tmpdir());
    const char *b[] = {
            "build",       "-q",          "--platform", "linux/amd64,linux/arm64,linux/arm/v7",
            "-t",          "edges/ctr:1", "--output",   out,
            "--build-arg", base_arg,      dir,          NULL};
    itest_run r;
    mar(&r, 0, b);
    itest_run_release(&r);
    _cleanup_free_ char *tar = mar_xasprintf("%s/ctr.tar", itest_tmpdir());
    const char *imp[] = {"images", "import", "--all-platforms", tar, NULL};
    ctr(&r, imp);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    const struct {
        const char *platform, *machine;
    } want[] = {{"linux/amd64", "x86_64\n"},
                {"linux/arm64", "aarch64\n"},
                {"linux/arm/v7", "armv7l\n"}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *run[] = {
                "run",           "--rm", "--platform", want[i].platform, "docker.io/edges/ctr:1",
                "mar-edges-run", NULL};
        ctr(&r, run);
        if (r.status != 0) {
            fail_msg("ctr run %s: %d\n%s", want[i].platform, r.status, r.err.data);
        }
        assert_string_equal(r.out.data, want[i].machine);
        itest_run_release(&r);
        const char *check[] = {"run",
                               "--rm",
                               "--platform",
                               want[i].platform,
                               "docker.io/edges/ctr:1",
                               "mar-edges-check",
                               "sh",
                               "-c",
                               "test ! -e /bin/wc && cat /app/ran /srv/a.txt",
                               NULL};
        ctr(&r, check);
        if (r.status != 0) {
            fail_msg("ctr run %s (check): %d\n%s%s", want[i].platform, r.status, r.out.data,
                     r.err.data);
        }
        assert_string_equal(r.out.data, "ran in /app as test\na\n");
        itest_run_release(&r);
    }
    const char *rm[] = {"images", "rm", "--sync", "docker.io/edges/ctr:1", NULL};
    ctr(&r, rm);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    const char *snaps[] = {"snapshots", "ls", NULL};
    ctr(&r, snaps);
    assert_int_equal(r.status, 0);
    assert_false(itest_contains(r.out.data, "sha256:"));
    itest_run_release(&r);
    const char *nsrm[] = {"ctr",        "--address", itest_bed("MAR_TEST_CONTAINERD"),
                          "namespaces", "rm",        "mar-build-edges",
                          NULL};
    itest_runv(&r, NULL, nsrm);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_ctd_nothing_left(store);
}

/* A base that is not in the registry: exit 3 naming it, before any step. */
static void test_base_missing(void **state)
{
    (void)state;
    _cleanup_free_ char *df = mar_xasprintf("FROM %s/mar/no-such-image:1\nRUN echo ran\n",
                                            itest_bed("MAR_TEST_REGISTRY"));
    _cleanup_free_ char *dir = context("nobase", df);
    const char *b[] = {"build", "--platform", "linux/amd64", "-t", "edges/nobase:1", dir, NULL};
    itest_run r;
    mar(&r, 3, b);
    assert_contains(r.err.data, "mar/no-such-image");
    assert_not_contains(r.err.data, "ran");
    assert_one_error_line(r.err.data);
    itest_run_release(&r);
    assert_false(tagged(store, "edges/nobase"));
    itest_ctd_nothing_left(store);
}

/* A base behind the bed's token auth with no credentials: exit 4. */
static void test_base_denied(void **state)
{
    (void)state;
    const char *reg = itest_bed("MAR_TEST_TOKEN_REGISTRY");
    if (!reg) {
        const char *need[] = {"MAR_TEST_TOKEN_REGISTRY", NULL};
        itest_require(need);
    }
    _cleanup_free_ char *df = mar_xasprintf("FROM %s/mar/multi:latest\nRUN echo ran\n", reg);
    _cleanup_free_ char *dir = context("denied", df);
    /* An empty Docker config: no credentials from the machine's own. */
    _cleanup_free_ char *cfgdir = mar_xasprintf("%s/nocreds", itest_tmpdir());
    mkdir(cfgdir, 0700);
    free(itest_write("nocreds/config.json", "{}\n", 0600));
    _cleanup_free_ char *cfg_env = mar_xasprintf("DOCKER_CONFIG=%s", cfgdir);
    _cleanup_free_ char *ins = mar_xasprintf("MAR_INSECURE_REGISTRIES=%s", reg);
    const char *argv[] = {
            getenv("MAR_BIN"), "--store", store, "build", "--platform", "linux/amd64", "-t",
            "edges/denied:1",  dir,       NULL};
    const char *env[] = {itest_ctd_env(), ins, cfg_env, NULL};
    itest_run r;
    itest_runv(&r, env, argv);
    if (r.status != 4) {
        fail_msg("mar build: %d, want 4\n%s", r.status, r.err.data);
    }
    assert_not_contains(r.err.data, "ran");
    assert_one_error_line(r.err.data);
    itest_run_release(&r);
    assert_false(tagged(store, "edges/denied"));
    itest_ctd_nothing_left(store);
}

/* A store on a filesystem too small for a step's layer: the RUN's 30 MB fit in its upper
 * directory, their layer does not fit beside them. Exit 9 saying so, nothing tagged, no work
 * directory left, and the store still consistent. */
static void test_disk_full(void **state)
{
    (void)state;
    _cleanup_free_ char *small = mar_xasprintf("%s/small", itest_tmpdir());
    mkdir(small, 0755);
    if (mount("tmpfs", small, "tmpfs", MS_NOSUID | MS_NODEV, "size=48m") < 0) {
        fail_msg("cannot mount a tmpfs at %s", small);
    }
    _cleanup_free_ char *st = mar_xasprintf("%s/store", small);
    _cleanup_free_ char *dir = context("full", "ARG BASE\nFROM ${BASE}\n"
                                               "RUN head -c 31457280 /dev/urandom > /big\n"
                                               "RUN echo after\n");
    const char *b[] = {"build",       "--platform", "linux/amd64", "-t", "edges/full:1",
                       "--build-arg", base_arg,     dir,           NULL};
    itest_run r;
    mar_in(&r, st, 9, b);
    assert_contains(r.err.data, "No space left on device");
    assert_not_contains(r.err.data, "after");
    itest_run_release(&r);
    assert_false(tagged(st, "edges/full"));
    itest_ctd_nothing_left(st);
    itest_fsck f;
    itest_store_fsck(st, &f);
    assert_int_equal(f.bad_blobs, 0);
    assert_int_equal(f.incomplete_layers, 0);
    assert_int_equal(umount2(small, MNT_DETACH), 0);
}

/* What mar refuses in a Dockerfile: exit 2, `Dockerfile:LINE: …`, before anything runs. */
static void test_refused_syntax(void **state)
{
    (void)state;
    const struct {
        const char *name, *dockerfile, *want;
    } cases[] = {
            {"unknown-instr", "ARG BASE\nFROM ${BASE}\nRUN echo ran\nFETCH x\n", "Dockerfile:4:"},
            {"unknown-flag", "ARG BASE\nFROM ${BASE}\nRUN echo ran\nCOPY --bogus=1 a /a\n",
             "Dockerfile:4:"},
            {"heredoc", "ARG BASE\nFROM ${BASE}\nRUN echo ran\nRUN <<EOF\necho never\n",
             "Dockerfile:4:"},
            {"no-from", "RUN echo ran\n", "Dockerfile:1:"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        _cleanup_free_ char *dir = context(cases[i].name, cases[i].dockerfile);
        const char *b[] = {"build",       "--platform", "linux/amd64", "-t", "edges/refused:1",
                           "--build-arg", base_arg,     dir,           NULL};
        itest_run r;
        mar(&r, 2, b);
        assert_contains(r.err.data, cases[i].want);
        assert_not_contains(r.err.data, "] RUN echo ran");
        assert_one_error_line(r.err.data);
        itest_run_release(&r);
    }
    assert_false(tagged(store, "edges/refused"));
    itest_ctd_nothing_left(store);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_CONTAINERD",
                                "MAR_TEST_BINFMT", NULL};
    itest_require(need);
    itest_require_root("mar build");
    snprintf(store, sizeof(store), "%s/store", itest_tmpdir());
    snprintf(insecure_env, sizeof(insecure_env), "MAR_INSECURE_REGISTRIES=%s",
             itest_bed("MAR_TEST_REGISTRY"));
    snprintf(base_arg, sizeof(base_arg), "BASE=%s", itest_fixture_ref("multi"));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ctr_runs),       cmocka_unit_test(test_base_missing),
            cmocka_unit_test(test_base_denied),    cmocka_unit_test(test_disk_full),
            cmocka_unit_test(test_refused_syntax),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
