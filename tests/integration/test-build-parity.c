/* mar build against Debian's buildah, a real peer: each Dockerfile of testdata/build-parity is
 * built from the bed's busybox sample image by both for the same platform (buildah with a
 * private storage root under the test's scratch directory, pushed to the bed's registry), both
 * results are flattened with `mar unpack`, and the root filesystems (paths, types, modes,
 * owners, symbolic link targets, contents, hard link groups; not times) and the config fields
 * Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Labels, os, architecture and variant
 * must be equal. The differences that are known and explained are in docs/internals/build.md
 * §9 and nowhere else: a case mar refuses must be refused with exit 2 (and buildah must build
 * it, or the case proves nothing). */
#include "itest.h"
#include "treecmp.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static char store[256];
static char bh_root[300];
static char bh_runroot[300];
static char ctd_env[300];
static char insecure_env[300];
static char base_arg[300];
static const char *registry;

/* mar --store S ARGS... with the bed's containerd and registry; returns the status. */
static int mar(itest_run *r, const char *const *args)
{
    const char *argv[40] = {getenv("MAR_BIN"), "--store", store};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 39; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const char *env[] = {ctd_env, insecure_env, NULL};
    itest_runv(r, env, argv);
    return r->status;
}

static void mar_ok(const char *const *args)
{
    itest_run r;
    if (mar(&r, args) != 0) {
        fail_msg("mar %s: %d\nstdout: %s\nstderr: %s", args[0], r.status, r.out.data, r.err.data);
    }
    itest_run_release(&r);
}

/* buildah --root R --runroot RR --storage-driver vfs ARGS...; fails the test unless it exits 0. */
static void buildah(const char *const *args)
{
    const char *argv[40] = {"buildah",  "--root",           bh_root, "--runroot",
                            bh_runroot, "--storage-driver", "vfs"};
    size_t n = 7;
    for (size_t i = 0; args[i] && n < 39; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_run r;
    itest_runv(&r, NULL, argv);
    if (r.status != 0) {
        fail_msg("buildah %s: %d\nstdout: %s\nstderr: %s", args[0], r.status, r.out.data,
                 r.err.data);
    }
    itest_run_release(&r);
}

static json_t *read_blob(const char *digest)
{
    assert_true(mar_str_startswith(digest, "sha256:"));
    _cleanup_free_ char *p = mar_xasprintf("%s/blobs/sha256/%s", store, digest + 7);
    mar_buf b = MAR_BUF_INIT(16u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, p, 16u << 20, &b, &e) < 0) {
        fail_msg("%s: %s", p, e->msg);
    }
    json_t *j = itest_json(b.data);
    mar_buf_release(&b);
    return j;
}

/* The config of the image the store names `suffix` (an index: its entry for arch). */
static json_t *stored_config(const char *suffix, const char *arch)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/index.json", store);
    mar_buf b = MAR_BUF_INIT(16u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, p, 16u << 20, &b, &e) < 0) {
        fail_msg("%s: %s", p, e->msg);
    }
    _cleanup_json_ json_t *idx = itest_json(b.data);
    mar_buf_release(&b);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(idx, "manifests"), i, m)
    {
        const char *n = json_string_value(json_object_get(json_object_get(m, "annotations"),
                                                          "org.opencontainers.image.ref.name"));
        if (!n || !mar_str_endswith(n, suffix)) {
            continue;
        }
        _cleanup_json_ json_t *doc = read_blob(json_string_value(json_object_get(m, "digest")));
        json_t *man = NULL;
        const json_t *list = json_object_get(doc, "manifests");
        size_t k;
        json_t *d;
        json_array_foreach(list, k, d)
        {
            const char *a = json_string_value(
                    json_object_get(json_object_get(d, "platform"), "architecture"));
            if (a && strcmp(a, arch) == 0) {
                man = read_blob(json_string_value(json_object_get(d, "digest")));
                break;
            }
        }
        if (!list) {
            man = json_incref(doc);
        }
        assert_non_null(man);
        json_t *cfg = read_blob(
                json_string_value(json_object_get(json_object_get(man, "config"), "digest")));
        json_decref(man);
        return cfg;
    }
    fail_msg("%s is not in the store", suffix);
    return NULL;
}

/* Replaces the string array at obj[key] by its sorted copy. */
static void sort_strings(json_t *obj, const char *key)
{
    const json_t *a = json_object_get(obj, key);
    if (!json_is_array(a)) {
        return;
    }
    mar_strv v = MAR_STRV_INIT;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        mar_strv_push(&v, json_is_string(e) ? json_string_value(e) : "");
    }
    mar_strv_sort(&v);
    json_t *sorted = json_array();
    for (i = 0; i < v.n; i++) {
        json_array_append_new(sorted, json_string(v.v[i]));
    }
    json_object_set_new(obj, key, sorted);
    mar_strv_release(&v);
}

/* The config fields both builders must agree on. buildah's own identity label
 * (io.buildah.version) is left out, Env is compared as a set (buildah moves a variable that ENV
 * sets again to the end), arm64's variant v8 is no variant: docs/internals/build.md §9. */
static bool configs_equal(json_t *m, json_t *b)
{
    sort_strings(json_object_get(m, "config"), "Env");
    sort_strings(json_object_get(b, "config"), "Env");
    /* buildah spells linux/arm64 with variant v8, the default that containerd's platform
     * matching normalizes away and mar leaves out. */
    const char *arch = json_string_value(json_object_get(b, "architecture"));
    const char *variant = json_string_value(json_object_get(b, "variant"));
    if (arch && variant && strcmp(arch, "arm64") == 0 && strcmp(variant, "v8") == 0) {
        json_object_del(b, "variant");
    }
    json_object_del(json_object_get(json_object_get(b, "config"), "Labels"), "io.buildah.version");
    if (json_object_size(json_object_get(json_object_get(b, "config"), "Labels")) == 0) {
        json_object_del(json_object_get(b, "config"), "Labels");
    }
    static const char *const top[] = {"os", "architecture", "variant"};
    static const char *const fields[] = {"Env",  "Cmd",          "Entrypoint", "WorkingDir",
                                         "User", "ExposedPorts", "Labels"};
    bool ok = true;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(top) + MAR_ARRAY_SIZE(fields); i++) {
        bool is_top = i < MAR_ARRAY_SIZE(top);
        const char *f = is_top ? top[i] : fields[i - MAR_ARRAY_SIZE(top)];
        const json_t *pm = is_top ? m : json_object_get(m, "config");
        const json_t *pb = is_top ? b : json_object_get(b, "config");
        json_t *vm = json_object_get(pm, f), *vb = json_object_get(pb, f);
        /* An empty string, array or map is the same as an absent one. */
        bool em = !vm || (json_is_string(vm) && !*json_string_value(vm)) ||
                  (json_is_array(vm) && !json_array_size(vm)) ||
                  (json_is_object(vm) && !json_object_size(vm));
        bool eb = !vb || (json_is_string(vb) && !*json_string_value(vb)) ||
                  (json_is_array(vb) && !json_array_size(vb)) ||
                  (json_is_object(vb) && !json_object_size(vb));
        if ((em && eb) || (vm && vb && json_equal(vm, vb))) {
            continue;
        }
        _cleanup_free_ char *sm =
                vm ? json_dumps(vm, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        _cleanup_free_ char *sb =
                vb ? json_dumps(vb, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        fprintf(stderr, "  config %s: mar %s, buildah %s\n", f, sm ? sm : "(none)",
                sb ? sb : "(none)");
        ok = false;
    }
    return ok;
}

/* A copy of testdata/CORPUS/NAME in the scratch directory (so that a case can add files that
 * are made, not stored, such as an archive). */
static char *context_in(const char *corpus, const char *name)
{
    char *dir = mar_xasprintf("%s/ctx-%s", itest_tmpdir(), name);
    _cleanup_free_ char *src =
            mar_xasprintf("%s/testdata/%s/%s/.", getenv("MAR_SRC"), corpus, name);
    mkdir(dir, 0755);
    const char *cp[] = {"cp", "-a", src, dir, NULL};
    itest_run r;
    itest_runv(&r, NULL, cp);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    return dir;
}

/* What buildah's chroot isolation leaves in an image after a RUN step, and mar does not: the
 * mount points it made for the step's /etc/hostname and /run, and the runtime's /dev, /proc,
 * /sys, /etc/hosts and /etc/resolv.conf, which mar leaves out of RUN layers as BuildKit does
 * (docs/internals/build.md §5, §9). Dropped from buildah's listing only as these exact lines, and
 * only where mar's lacks them. */
static const char *const buildah_stubs[] = {
        "etc/hostname f 0755 0:0 0:e3b0c44298fc",
        "run d 0755 0:0 ",
        "dev d 0755 0:0 ",
        "proc d 0755 0:0 ",
        "sys d 0755 0:0 ",
        "etc/hosts f 0755 0:0 0:e3b0c44298fc",
        "etc/resolv.conf f 0755 0:0 0:e3b0c44298fc",
};

static char *drop_buildah_stubs(const char *listing, const char *mar_listing)
{
    mar_buf out = MAR_BUF_INIT(MAR_BUF_NOCAP);
    const char *s = listing;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t l = nl ? (size_t)(nl - s) + 1 : strlen(s);
        _cleanup_free_ char *line = mar_xstrndup(s, l);
        bool stub = false;
        for (size_t i = 0; i < MAR_ARRAY_SIZE(buildah_stubs); i++) {
            _cleanup_free_ char *want = mar_xasprintf("%s\n", buildah_stubs[i]);
            _cleanup_free_ char *inside = mar_xasprintf("\n%s", want);
            stub |= strcmp(line, want) == 0 && !mar_str_startswith(mar_listing, want) &&
                    !strstr(mar_listing, inside);
        }
        if (!stub) {
            mar_buf_xappend(&out, line, l);
        }
        s += l;
    }
    return mar_buf_detach(&out, NULL);
}

static char *context_of(const char *name)
{
    return context_in("build-parity", name);
}

typedef enum { BOTH_BUILD, MAR_REFUSES } expect;

/* Builds case NAME (in context CTX) for platform PLAT (architecture ARCH) with both builders,
 * flattens both and compares. With MAR_REFUSES, mar must refuse the case before running
 * anything (exit 2, saying what it does not support) while buildah builds it; should mar build
 * it after all, the results are compared as any other case. */
static void parity(const char *name, const char *ctx, const char *plat, const char *arch,
                   expect want, const char *refusal, const char *const *extra)
{
    _cleanup_free_ char *tag = mar_xasprintf("parity-%s-%s", name, strrchr(plat, '/') + 1);
    _cleanup_free_ char *mar_name = mar_xasprintf("parity/%s:mar", tag);
    _cleanup_free_ char *bh_ref = mar_xasprintf("%s/parity/%s:buildah", registry, tag);
    _cleanup_free_ char *bh_dest = mar_xasprintf("docker://%s", bh_ref);

    /* buildah first: the case must be one a real builder builds. */
    const char *bb[32] = {"build",      "--isolation", "chroot",         "--tls-verify=false",
                          "--platform", plat,          "--layers=false", "-t",
                          tag,          "--build-arg", base_arg};
    size_t n = 11;
    for (size_t i = 0; extra && extra[i] && n < 28; i++) {
        bb[n++] = "--build-arg";
        bb[n++] = extra[i];
    }
    bb[n++] = ctx;
    bb[n] = NULL;
    buildah(bb);
    const char *push[] = {"push", "--tls-verify=false", tag, bh_dest, NULL};
    buildah(push);

    const char *mb[32] = {"build", "-q",     "--platform",  plat,
                          "-t",    mar_name, "--build-arg", base_arg};
    n = 8;
    for (size_t i = 0; extra && extra[i] && n < 28; i++) {
        mb[n++] = "--build-arg";
        mb[n++] = extra[i];
    }
    mb[n++] = ctx;
    mb[n] = NULL;
    itest_run r;
    int st = mar(&r, mb);
    if (want == MAR_REFUSES && st == 2) {
        assert_contains(r.err.data, refusal);
        assert_contains(r.err.data, "is not supported by mar build");
        itest_run_release(&r);
        return;
    }
    if (st != 0) {
        fail_msg("mar build %s: %d\nstderr: %s", name, st, r.err.data);
    }
    itest_run_release(&r);

    _cleanup_free_ char *dm = mar_xasprintf("%s/fs-%s-mar", itest_tmpdir(), tag);
    _cleanup_free_ char *db = mar_xasprintf("%s/fs-%s-buildah", itest_tmpdir(), tag);
    const char *um[] = {"unpack", "--platform", plat, mar_name, dm, NULL};
    mar_ok(um);
    const char *ub[] = {"unpack", "--platform", plat, bh_ref, db, NULL};
    mar_ok(ub);
    _cleanup_free_ char *lm = tree_listing(dm, TREE_INODES);
    _cleanup_free_ char *lb_all = tree_listing(db, TREE_INODES);
    assert_non_null(lm);
    assert_non_null(lb_all);
    _cleanup_free_ char *lb = drop_buildah_stubs(lb_all, lm);
    bool same_fs = tree_equal(lm, lb, "mar", "buildah");

    _cleanup_free_ char *sm = mar_xasprintf("/%s", mar_name);
    _cleanup_free_ char *sb = mar_xasprintf("/parity/%s:buildah", tag);
    _cleanup_json_ json_t *cm = stored_config(sm, arch);
    _cleanup_json_ json_t *cb = stored_config(sb, arch);
    bool same_cfg = configs_equal(cm, cb);
    if (!same_fs || !same_cfg) {
        fail_msg("%s (%s): mar build and buildah differ (listed above)", name, plat);
    }
}

static void test_copy(void **state)
{
    (void)state;
    _cleanup_free_ char *ctx = context_of("copy");
    parity("copy", ctx, "linux/amd64", "amd64", BOTH_BUILD, NULL, NULL);
}

/* it-build's own corpus: a build stage, COPY --from, a directory COPY through .dockerignore,
 * a WORKDIR-relative COPY, a whiteout, ENV from an ARG. */
static void test_multistage(void **state)
{
    (void)state;
    _cleanup_free_ char *ctx = context_in("build", "multistage");
    parity("multistage", ctx, "linux/amd64", "amd64", BOTH_BUILD, NULL, NULL);
}

static const char *const run_args[] = {"VERSION=2", "FLAVOR=parity", NULL};

static void test_run(void **state)
{
    (void)state;
    _cleanup_free_ char *ctx = context_of("run");
    parity("run", ctx, "linux/amd64", "amd64", BOTH_BUILD, NULL, run_args);
}

/* The same RUN steps for arm64, under the bed's QEMU handlers for both builders. */
static void test_run_arm64(void **state)
{
    (void)state;
    if (!itest_host_runs("arm64")) {
        fprintf(stderr, "skip: this host does not execute arm64 binaries\n");
        skip();
    }
    _cleanup_free_ char *ctx = context_of("run");
    parity("run", ctx, "linux/arm64", "arm64", BOTH_BUILD, NULL, run_args);
}

static void test_add_tar(void **state)
{
    (void)state;
    _cleanup_free_ char *ctx = context_of("add-tar");
    _cleanup_free_ char *payload = mar_xasprintf("%s/payload", ctx);
    _cleanup_free_ char *tgz = mar_xasprintf("%s/payload.tar.gz", ctx);
    const char *tar[] = {"tar", "--owner=0", "--group=0", "-czf", tgz, "-C", payload, ".", NULL};
    itest_run r;
    itest_runv(&r, NULL, tar);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    parity("add-tar", ctx, "linux/amd64", "amd64", MAR_REFUSES, "ADD of a local archive", NULL);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", "MAR_TEST_CONTAINERD",
                                "MAR_TEST_BINFMT", NULL};
    itest_require(need);
    if (geteuid() != 0) {
        fprintf(stderr, "skip: mar build needs root\n");
        exit(getenv("MAR_CI") ? 1 : 77);
    }
    itest_run r;
    const char *v[] = {"buildah", "--version", NULL};
    itest_runv(&r, NULL, v);
    if (r.status != 0) {
        fprintf(stderr, "skip: buildah is not installed (ci/deps.sh installs it)\n");
        exit(getenv("MAR_CI") ? 1 : 77);
    }
    itest_run_release(&r);
    registry = itest_bed("MAR_TEST_REGISTRY");
    snprintf(store, sizeof(store), "%s/store", itest_tmpdir());
    snprintf(bh_root, sizeof(bh_root), "%s/buildah-root", itest_tmpdir());
    snprintf(bh_runroot, sizeof(bh_runroot), "%s/buildah-run", itest_tmpdir());
    snprintf(ctd_env, sizeof(ctd_env), "CONTAINERD_ADDRESS=%s", itest_bed("MAR_TEST_CONTAINERD"));
    snprintf(insecure_env, sizeof(insecure_env), "MAR_INSECURE_REGISTRIES=%s", registry);
    snprintf(base_arg, sizeof(base_arg), "BASE=%s", itest_fixture_ref("multi"));
    return 0;
}

/* buildah's vfs storage holds plain directories; its own rm gives them back before the scratch
 * directory goes. */
static int teardown(void **state)
{
    (void)state;
    const char *argv[] = {"buildah", "--root", bh_root, "--runroot", bh_runroot, "--storage-driver",
                          "vfs",     "rmi",    "--all", "--force",   NULL};
    itest_run r;
    itest_runv(&r, NULL, argv);
    itest_run_release(&r);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_multistage), cmocka_unit_test(test_copy),
            cmocka_unit_test(test_run),        cmocka_unit_test(test_run_arm64),
            cmocka_unit_test(test_add_tar),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
