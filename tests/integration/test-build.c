/* mar build against the bed's registry and containerd: the testdata/build corpus built from the
 * bed's busybox sample image for linux/amd64, linux/arm64 and linux/arm/v7 (RUN steps native and
 * under QEMU user mode), each result run with `mar run --platform` (uname -m, files added,
 * removed through a whiteout, ignored by .dockerignore, the environment and working directory)
 * and its config read back from the store; a failing RUN exits 1 and tags nothing, a missing
 * COPY source exits 3, an unsupported instruction exits 2 before anything runs; after every
 * build nothing is left in containerd's namespace or the store's work area. */
#include "itest.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static char store[256];
static char ctd_env[300];
static char insecure_env[300];
static char base_arg[300];

static const char *corpus(const char *name)
{
    static char buf[4][1024];
    static size_t k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof(buf[0]), "%s/testdata/build/%s", getenv("MAR_SRC"), name);
    return b;
}

/* mar --store S ARGS... with the bed's containerd and registry (and extra, "K=V" or NULL, in
 * the environment); checks the status. */
static void mar_env(itest_run *r, int want, const char *extra, const char *const *args)
{
    const char *argv[40] = {getenv("MAR_BIN"), "--store", store};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 39; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const char *env[] = {ctd_env, insecure_env, extra, NULL};
    itest_runv(r, env, argv);
    if (r->status != want) {
        fail_msg("mar %s: %d, want %d\nstdout: %s\nstderr: %s", args[0], r->status, want,
                 r->out.data, r->err.data);
    }
}

static void mar(itest_run *r, int want, const char *const *args)
{
    mar_env(r, want, NULL, args);
}

/* Nothing of mar's in containerd, no work directory in the store. */
static void check_nothing_left(void)
{
    itest_run r;
    const char *c[] = {"ctr", "--address", itest_bed("MAR_TEST_CONTAINERD"),
                       "-n",  "mar",       "containers",
                       "ls",  "-q",        NULL};
    itest_runv(&r, NULL, c);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out.data, "");
    itest_run_release(&r);
    _cleanup_free_ char *dir = mar_xasprintf("%s/containers", store);
    const char *ls[] = {"ls", "-A", dir, NULL};
    itest_runv(&r, NULL, ls);
    assert_string_equal(r.out.data, "");
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

/* The index the store names `name` (as oci_ref_string spells it, ending in `suffix`). */
static json_t *stored_index(const char *suffix)
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
        if (n && mar_str_endswith(n, suffix)) {
            return read_blob(json_string_value(json_object_get(m, "digest")));
        }
    }
    return NULL;
}

static bool has_string(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) {
            return true;
        }
    }
    return false;
}

static const struct {
    const char *platform, *arch, *variant, *machine;
} plats[] = {
        {"linux/amd64", "amd64", NULL, "x86_64"},
        {"linux/arm64", "arm64", NULL, "aarch64"},
        {"linux/arm/v7", "arm", "v7", "armv7l"},
};

static void check_config(const json_t *index)
{
    const json_t *ms = json_object_get(index, "manifests");
    assert_int_equal(json_array_size(ms), MAR_ARRAY_SIZE(plats));
    for (size_t i = 0; i < MAR_ARRAY_SIZE(plats); i++) {
        const json_t *d = json_array_get(ms, i);
        const json_t *p = json_object_get(d, "platform");
        assert_string_equal(json_string_value(json_object_get(p, "architecture")), plats[i].arch);
        _cleanup_json_ json_t *man = read_blob(json_string_value(json_object_get(d, "digest")));
        _cleanup_json_ json_t *cfg = read_blob(
                json_string_value(json_object_get(json_object_get(man, "config"), "digest")));
        assert_string_equal(json_string_value(json_object_get(cfg, "architecture")), plats[i].arch);
        assert_string_equal(json_string_value(json_object_get(cfg, "os")), "linux");
        if (plats[i].variant) {
            assert_string_equal(json_string_value(json_object_get(cfg, "variant")),
                                plats[i].variant);
        }
        const json_t *c = json_object_get(cfg, "config");
        assert_true(has_string(json_object_get(c, "Env"), "GREETING=hello"));
        assert_true(has_string(json_object_get(c, "Env"), "MODE=test"));
        assert_string_equal(json_string_value(json_object_get(c, "WorkingDir")), "/app");
        const json_t *cmd = json_object_get(c, "Cmd");
        assert_int_equal(json_array_size(cmd), 2);
        assert_string_equal(json_string_value(json_array_get(cmd, 0)), "cat");
        assert_string_equal(json_string_value(json_array_get(cmd, 1)), "/app/arch");
        assert_non_null(json_object_get(json_object_get(c, "ExposedPorts"), "8080/tcp"));
        assert_string_equal(json_string_value(json_object_get(json_object_get(c, "Labels"),
                                                              "org.example.corpus")),
                            "multistage");
        /* One diff_id per layer, one non-empty history entry per layer. */
        const json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
        size_t n_layers = json_array_size(json_object_get(man, "layers"));
        assert_int_equal(json_array_size(ids), n_layers);
        size_t with_layer = 0, k;
        json_t *h;
        json_array_foreach(json_object_get(cfg, "history"), k, h)
        {
            with_layer += !json_is_true(json_object_get(h, "empty_layer"));
        }
        assert_int_equal(with_layer, n_layers);
        /* The base's layer, then COPY --from, COPY, COPY, RUN. */
        assert_int_equal(n_layers, 5);
        /* The RUN layer: the whiteout and the file it made, none of runc's mountpoints. */
        const char *last = json_string_value(
                json_object_get(json_array_get(json_object_get(man, "layers"), 4), "digest"));
        _cleanup_free_ char *lp = mar_xasprintf("%s/blobs/sha256/%s", store, last + 7);
        const char *tar[] = {"tar", "-tzf", lp, NULL};
        itest_run t;
        itest_runv(&t, NULL, tar);
        assert_int_equal(t.status, 0);
        assert_contains(t.out.data, "bin/.wh.wc\n");
        assert_contains(t.out.data, "app/ran\n");
        assert_not_contains(t.out.data, "proc/");
        assert_not_contains(t.out.data, "sys/");
        assert_not_contains(t.out.data, "dev/");
        assert_not_contains(t.out.data, "resolv.conf");
        itest_run_release(&t);
    }
}

static void test_multistage(void **state)
{
    (void)state;
    itest_run r;
    const char *b[] = {"build",  "--platform",         "linux/amd64,linux/arm64,linux/arm/v7",
                       "-t",     "built:multi",        "--build-arg",
                       base_arg, corpus("multistage"), NULL};
    mar(&r, 0, b);
    /* RUN output streams with its platform, stage and step; the index digest goes to stdout. */
    assert_contains(r.err.data, "[linux/arm/v7 build 1/1] RUN mkdir");
    assert_contains(r.out.data, "built:multi sha256:");
    itest_run_release(&r);
    check_nothing_left();

    for (size_t i = 0; i < MAR_ARRAY_SIZE(plats); i++) {
        const char *p = plats[i].platform;
        const char *run_cmd[] = {"run", "-q", "--platform", p, "built:multi", NULL};
        mar(&r, 0, run_cmd);
        /* CMD prints what the build stage's RUN recorded: it ran as the target too. */
        _cleanup_free_ char *want = mar_xasprintf("%s\n", plats[i].machine);
        assert_string_equal(r.out.data, want);
        itest_run_release(&r);
        const char *check[] = {
                "run",
                "-q",
                "--platform",
                p,
                "built:multi",
                "sh",
                "-c",
                "uname -m; pwd; echo $GREETING $MODE; cat /app/built /app/ran /app/note.txt "
                "/srv/a.txt /srv/sub/b.txt; test -e /srv/ignored.txt && echo ignored-present; "
                "test -e /bin/wc && echo wc-present; test -e /out && echo out-present; echo end",
                NULL};
        mar(&r, 0, check);
        _cleanup_free_ char *expect =
                mar_xasprintf("%s\n/app\nhello test\nbuilt\nran in /app as test\nnote\na\nb\nend\n",
                              plats[i].machine);
        assert_string_equal(r.out.data, expect);
        itest_run_release(&r);
    }
    _cleanup_json_ json_t *index = stored_index("/built:multi");
    assert_non_null(index);
    check_config(index);
    check_nothing_left();
}

/* The index digest `mar build` prints: "NAME DIGEST". */
static char *built_digest(const itest_run *r)
{
    const char *sp = strrchr(r->out.data, ' ');
    assert_non_null(sp);
    char *d = mar_xstrdup(sp + 1);
    d[strcspn(d, "\n")] = '\0';
    assert_true(mar_str_startswith(d, "sha256:"));
    return d;
}

/* SOURCE_DATE_EPOCH (environment or option): two builds of the same inputs, same index. */
static void test_reproducible(void **state)
{
    (void)state;
    itest_run r;
    const char *a[] = {
            "build",         "-q",          "--platform", "linux/amd64,linux/arm64", "-t",
            "built:repro-a", "--build-arg", base_arg,     corpus("multistage"),      NULL};
    mar_env(&r, 0, "SOURCE_DATE_EPOCH=1700000000", a);
    _cleanup_free_ char *da = built_digest(&r);
    itest_run_release(&r);
    const char *b[] = {"build",
                       "-q",
                       "--platform",
                       "linux/amd64,linux/arm64",
                       "--source-date-epoch",
                       "1700000000",
                       "-t",
                       "built:repro-b",
                       "--build-arg",
                       base_arg,
                       corpus("multistage"),
                       NULL};
    mar(&r, 0, b);
    _cleanup_free_ char *db = built_digest(&r);
    itest_run_release(&r);
    assert_string_equal(da, db);
    /* Platforms one after another (-j 1) give the index of the parallel build. */
    const char *seq[] = {"build",
                         "-q",
                         "-j",
                         "1",
                         "--platform",
                         "linux/amd64,linux/arm64",
                         "--source-date-epoch",
                         "1700000000",
                         "-t",
                         "built:repro-seq",
                         "--build-arg",
                         base_arg,
                         corpus("multistage"),
                         NULL};
    mar(&r, 0, seq);
    _cleanup_free_ char *ds = built_digest(&r);
    itest_run_release(&r);
    assert_string_equal(da, ds);
    /* Another instant is another image: the times are really in it. */
    const char *c[] = {"build",
                       "-q",
                       "--platform",
                       "linux/amd64,linux/arm64",
                       "--source-date-epoch",
                       "1700000001",
                       "-t",
                       "built:repro-c",
                       "--build-arg",
                       base_arg,
                       corpus("multistage"),
                       NULL};
    mar(&r, 0, c);
    _cleanup_free_ char *dc = built_digest(&r);
    itest_run_release(&r);
    assert_string_not_equal(da, dc);
    _cleanup_json_ json_t *index = stored_index("/built:repro-a");
    assert_non_null(index);
    _cleanup_json_ json_t *man = read_blob(json_string_value(
            json_object_get(json_array_get(json_object_get(index, "manifests"), 0), "digest")));
    _cleanup_json_ json_t *cfg =
            read_blob(json_string_value(json_object_get(json_object_get(man, "config"), "digest")));
    assert_string_equal(json_string_value(json_object_get(cfg, "created")), "2023-11-14T22:13:20Z");
    const json_t *hist = json_object_get(cfg, "history");
    const json_t *last = json_array_get(hist, json_array_size(hist) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "created")),
                        "2023-11-14T22:13:20Z");
    /* A bad value is a usage error. */
    const char *bad[] = {"build",     "--source-date-epoch", "yesterday", "-t",
                         "built:bad", corpus("multistage"),  NULL};
    mar(&r, 2, bad);
    itest_run_release(&r);
    check_nothing_left();
}

/* The truth gate: an arm64 image whose new executable is the amd64 build machine's fails (1),
 * naming the path, its ELF machine, the line and stage; --allow-mislabeled makes it a warning;
 * the same Dockerfile for amd64 is consistent. */
static void test_truth_gate(void **state)
{
    (void)state;
    itest_run r;
    const char *arm[] = {"build",       "--platform", "linux/arm64",        "-t", "built:mis-arm",
                         "--build-arg", base_arg,     corpus("mislabeled"), NULL};
    mar(&r, 1, arm);
    assert_contains(r.err.data, "linux/arm64: 1 ELF file the build added is not arm64: "
                                "/usr/local/bin/busybox (ELF machine 62, amd64) from Dockerfile:9 "
                                "(stage stage-1)");
    itest_run_release(&r);
    assert_null(stored_index("/built:mis-arm"));
    check_nothing_left();

    const char *allow[] = {"build",
                           "--allow-mislabeled",
                           "--platform",
                           "linux/arm64",
                           "-t",
                           "built:mis-allowed",
                           "--build-arg",
                           base_arg,
                           corpus("mislabeled"),
                           NULL};
    mar(&r, 0, allow);
    assert_contains(r.err.data, "warning: linux/arm64: 1 ELF file the build added is not arm64");
    itest_run_release(&r);
    _cleanup_json_ json_t *idx = stored_index("/built:mis-allowed");
    assert_non_null(idx);

    const char *amd[] = {"build",       "--platform", "linux/amd64",        "-t", "built:mis-amd",
                         "--build-arg", base_arg,     corpus("mislabeled"), NULL};
    mar(&r, 0, amd);
    assert_not_contains(r.err.data, "ELF file");
    itest_run_release(&r);
    const char *run_cmd[] = {"run",
                             "-q",
                             "--platform",
                             "linux/amd64",
                             "built:mis-amd",
                             "/usr/local/bin/busybox",
                             "echo",
                             "tool runs",
                             NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "tool runs\n");
    itest_run_release(&r);
    check_nothing_left();
}

static json_t *layout_doc(const char *dir, const char *digest)
{
    _cleanup_free_ char *p = digest ? mar_xasprintf("%s/blobs/sha256/%s", dir, digest + 7)
                                    : mar_xasprintf("%s/index.json", dir);
    mar_buf b = MAR_BUF_INIT(16u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, p, 16u << 20, &b, &e) < 0) {
        fail_msg("%s: %s", p, e->msg);
    }
    json_t *j = itest_json(b.data);
    mar_buf_release(&b);
    return j;
}

static void push_unique(mar_strv *v, const json_t *desc)
{
    const char *d = json_string_value(json_object_get(desc, "digest"));
    assert_non_null(d);
    if (!mar_strv_contains(v, d)) {
        mar_strv_push(v, d);
    }
}

/* Every file under DIR/blobs/sha256 hashes to its name (sha256sum -c), and they are exactly the
 * blobs the layout's index reaches. */
static void check_layout_blobs(const char *dir)
{
    _cleanup_strv_ mar_strv want = MAR_STRV_INIT;
    _cleanup_json_ json_t *top = layout_doc(dir, NULL);
    const json_t *m0 = json_array_get(json_object_get(top, "manifests"), 0);
    push_unique(&want, m0);
    _cleanup_json_ json_t *idx = layout_doc(dir, json_string_value(json_object_get(m0, "digest")));
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(idx, "manifests"), i, m)
    {
        push_unique(&want, m);
        _cleanup_json_ json_t *man =
                layout_doc(dir, json_string_value(json_object_get(m, "digest")));
        push_unique(&want, json_object_get(man, "config"));
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(man, "layers"), k, l)
        {
            push_unique(&want, l);
        }
    }
    _cleanup_free_ char *cmd = mar_xasprintf(
            "cd %s/blobs/sha256 && n=0 && for f in *; do echo \"$f  $f\" | sha256sum -c --quiet "
            "|| exit 1; n=$((n+1)); done; echo $n",
            dir);
    const char *sh[] = {"sh", "-c", cmd, NULL};
    itest_run r;
    itest_runv(&r, NULL, sh);
    assert_int_equal(r.status, 0);
    _cleanup_free_ char *count = mar_xasprintf("%zu\n", want.n);
    assert_string_equal(r.out.data, count);
    itest_run_release(&r);
}

/* --output type=oci-layout and type=oci: layouts holding the built index, read back by
 * skopeo per platform. */
static void test_output(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/layout", itest_tmpdir());
    _cleanup_free_ char *tarf = mar_xasprintf("%s/image.tar", itest_tmpdir());
    _cleanup_free_ char *o1 = mar_xasprintf("type=oci-layout,dest=%s", dir);
    _cleanup_free_ char *o2 = mar_xasprintf("type=oci,dest=%s", tarf);
    itest_run r;
    const char *b[] = {"build",
                       "-q",
                       "--platform",
                       "linux/amd64,linux/arm64",
                       "-t",
                       "built:out",
                       "-o",
                       o1,
                       "--output",
                       o2,
                       "--build-arg",
                       base_arg,
                       corpus("multistage"),
                       NULL};
    mar(&r, 0, b);
    _cleanup_free_ char *digest = built_digest(&r);
    itest_run_release(&r);
    check_layout_blobs(dir);
    _cleanup_free_ char *ip = mar_xasprintf("%s/index.json", dir);
    mar_buf ib = MAR_BUF_INIT(1 << 20);
    mar_err *e = NULL;
    assert_int_equal(mar_read_file_at(AT_FDCWD, ip, 1 << 20, &ib, &e), 0);
    _cleanup_json_ json_t *idx = itest_json(ib.data);
    mar_buf_release(&ib);
    const json_t *m0 = json_array_get(json_object_get(idx, "manifests"), 0);
    assert_string_equal(json_string_value(json_object_get(m0, "digest")), digest);
    /* The tar holds the same layout. */
    _cleanup_free_ char *untar = mar_xasprintf("%s/untarred", itest_tmpdir());
    _cleanup_free_ char *cmd = mar_xasprintf("mkdir -p %s && tar -xf %s -C %s && cmp %s/index.json "
                                             "%s/index.json",
                                             untar, tarf, untar, untar, dir);
    const char *sh[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, sh);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    check_layout_blobs(untar);
    if (access("/usr/bin/skopeo", X_OK) == 0) {
        _cleanup_free_ char *lay = mar_xasprintf("oci:%s", dir);
        _cleanup_free_ char *arc = mar_xasprintf("oci-archive:%s", tarf);
        const char *s1[] = {"skopeo", "inspect", "--override-arch", "arm64", lay, NULL};
        itest_runv(&r, NULL, s1);
        assert_int_equal(r.status, 0);
        assert_contains(r.out.data, "\"Architecture\": \"arm64\"");
        itest_run_release(&r);
        const char *s2[] = {"skopeo", "inspect", "--override-arch", "amd64", arc, NULL};
        itest_runv(&r, NULL, s2);
        assert_int_equal(r.status, 0);
        assert_contains(r.out.data, "\"Architecture\": \"amd64\"");
        assert_contains(r.out.data, "org.example.corpus");
        itest_run_release(&r);
    }
    /* A layout is not overwritten; a bad --output is a usage error before anything runs. */
    mar(&r, 2, b);
    assert_contains(r.err.data, "already holds an image layout");
    assert_not_contains(r.err.data, "RUN");
    itest_run_release(&r);
    const char *bad[] = {"build", "-o", "type=docker", "-t", "built:x", corpus("multistage"), NULL};
    mar(&r, 2, bad);
    itest_run_release(&r);
    check_nothing_left();
}

/* --push: the built index goes to the registry; a fresh store pulls and runs each platform. */
static void test_push(void **state)
{
    (void)state;
    _cleanup_free_ char *name =
            mar_xasprintf("%s/mar/built:pushed", itest_bed("MAR_TEST_REGISTRY"));
    itest_run r;
    const char *b[] = {"build", "-q", "--push",      "--platform", "linux/amd64,linux/arm/v7",
                       "-t",    name, "--build-arg", base_arg,     corpus("multistage"),
                       NULL};
    mar(&r, 0, b);
    _cleanup_free_ char *digest = built_digest(&r);
    itest_run_release(&r);
    _cleanup_free_ char *fresh = mar_xasprintf("%s/fresh-store", itest_tmpdir());
    const char *env[] = {ctd_env, insecure_env, NULL};
    itest_mar(&r, env, "--store", fresh, "run", "-q", "--platform", "linux/arm/v7", name, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out.data, "armv7l\n");
    itest_run_release(&r);
    itest_mar(&r, env, "--store", fresh, "run", "-q", "--platform", "linux/amd64", name, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out.data, "x86_64\n");
    itest_run_release(&r);
    /* The registry serves the very index the build made. */
    itest_mar(&r, env, "--store", fresh, "images", "--json", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, digest);
    itest_run_release(&r);
    check_nothing_left();
}

/* --explain: the plan per platform and stage, nothing pulled or run; a platform without a
 * handler is explained with exit 7 and refused by a real build before anything runs. */
static void test_explain(void **state)
{
    (void)state;
    itest_run r;
    const char *e[] = {"build",       "--explain", "--platform",         "linux/amd64,linux/arm64",
                       "--build-arg", base_arg,    corpus("multistage"), NULL};
    mar(&r, 0, e);
    assert_contains(r.out.data, "linux/amd64      build            linux/amd64         1  native");
    assert_contains(r.out.data,
                    "linux/arm64      stage-1          linux/arm64         1  emulated (qemu)");
    assert_contains(r.out.data, "2 RUN steps would run emulated");
    assert_contains(r.out.data, "advice: stage build runs 1 RUN step under qemu for linux/arm64");
    assert_contains(r.out.data, "FROM --platform=$BUILDPLATFORM ${BASE} AS build` (Dockerfile:3)");
    itest_run_release(&r);
    const char *j[] = {"build",      "--explain",          "--json",
                       "--platform", "linux/arm64",        "--build-arg",
                       base_arg,     corpus("mislabeled"), NULL};
    mar(&r, 0, j);
    _cleanup_json_ json_t *doc = itest_json(r.out.data);
    itest_run_release(&r);
    const json_t *b0 = json_array_get(json_object_get(doc, "stages"), 0);
    assert_string_equal(json_string_value(json_object_get(b0, "stage")), "builder");
    assert_true(json_is_true(json_object_get(b0, "buildPlatform")));
    assert_string_equal(json_string_value(json_object_get(b0, "executes")), "native");
    assert_int_equal(json_integer_value(json_object_get(doc, "emulatedRunSteps")), 0);

    _cleanup_free_ char *fake = mar_xasprintf("%s/empty-binfmt", itest_tmpdir());
    mkdir(fake, 0700);
    char *status = itest_write("empty-binfmt/status", "enabled\n", 0644);
    free(status);
    const char *u[] = {"--binfmt-root", fake,          "build",  "--explain",          "--platform",
                       "linux/arm64",   "--build-arg", base_arg, corpus("multistage"), NULL};
    mar(&r, 7, u);
    assert_contains(r.out.data, "no emulator");
    assert_contains(r.out.data, "fix: mar binfmt install arm64");
    itest_run_release(&r);
    const char *b[] = {"--binfmt-root",
                       fake,
                       "build",
                       "-t",
                       "built:nohandler",
                       "--platform",
                       "linux/arm64",
                       "--build-arg",
                       base_arg,
                       corpus("multistage"),
                       NULL};
    mar(&r, 7, b);
    assert_contains(r.err.data, "Dockerfile:4: cannot run the RUN steps of stage build for "
                                "linux/arm64 here: no binfmt_misc handler for arm64");
    assert_contains(r.err.data, "mar binfmt install arm64");
    assert_not_contains(r.err.data, "RUN mkdir");
    itest_run_release(&r);
    assert_null(stored_index("/built:nohandler"));
    check_nothing_left();
}

/* Here-documents: RUN with a shell body, a #! script, a command reading two heredocs, COPY of
 * an expanded and a quoted heredoc (testdata/build/heredoc). */
static void test_heredoc(void **state)
{
    (void)state;
    itest_run r;
    const char *b[] = {"build",         "-q",          "--platform", "linux/arm/v7",    "-t",
                       "built:heredoc", "--build-arg", base_arg,     corpus("heredoc"), NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    const char *run_cmd[] = {"run", "-q", "--platform", "linux/arm/v7", "built:heredoc", NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "shell body as 0\nscript ran as /dev/pipes/EOT\nfirst\n"
                                    "second\nhello world\nkept ${NAME}\none\n");
    itest_run_release(&r);
    check_nothing_left();
}

/* RUN --mount (testdata/build/mounts): the cache survives between builds, tmpfs, binds of the
 * context and of a stage, a secret as a file and a variable; none leaves a mountpoint, and the
 * secret is in no blob and no unpacked layer of the store. */
static void test_mounts(void **state)
{
    (void)state;
    char *sf = itest_write("secret.txt", "MARSECRET-7f3a9c", 0600);
    _cleanup_free_ char *sec = mar_xasprintf("id=token,src=%s", sf);
    itest_run r;
    for (int round = 1; round <= 2; round++) {
        const char *b[] = {
                "build", "-q", "--no-cache",   "--platform",  "linux/arm64", "--secret",
                sec,     "-t", "built:mounts", "--build-arg", base_arg,      corpus("mounts"),
                NULL};
        mar(&r, 0, b);
        itest_run_release(&r);
        const char *run_cmd[] = {"run", "-q", "--platform", "linux/arm64", "built:mounts", NULL};
        mar(&r, 0, run_cmd);
        _cleanup_free_ char *want = mar_xasprintf(
                "cache runs: %d\ntemp\nfrom the context\nfrom a stage\n16\nend\n", round);
        /* No mountpoint is left in the image: ls finds none of them. */
        assert_string_equal(r.out.data, want);
        itest_run_release(&r);
    }
    free(sf);
    /* The secret is nowhere in the store: blobs (decompressed too), unpacked layers, the build
     * cache's records (written with --no-cache too). */
    _cleanup_free_ char *cmd = mar_xasprintf(
            "cd %s && grep -rl MARSECRET-7f3a9c unpack blobs index.json buildcache; "
            "for f in blobs/sha256/*; do zcat -f \"$f\" | grep -l --label=\"$f\" MARSECRET; done; "
            "true",
            store);
    const char *sh[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, sh);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out.data, "");
    itest_run_release(&r);
    /* The same search finds what the steps did write. */
    _cleanup_free_ char *control = mar_xasprintf(
            "cd %s && for f in blobs/sha256/*; do zcat -f \"$f\" | grep -q 'cache runs: 2' && "
            "echo found; done | sort -u",
            store);
    const char *sh2[] = {"sh", "-c", control, NULL};
    itest_runv(&r, NULL, sh2);
    assert_string_equal(r.out.data, "found\n");
    itest_run_release(&r);
    check_nothing_left();
}

/* The config of the single platform of a stored index. */
static json_t *only_config(const char *suffix)
{
    _cleanup_json_ json_t *index = stored_index(suffix);
    assert_non_null(index);
    _cleanup_json_ json_t *man = read_blob(json_string_value(
            json_object_get(json_array_get(json_object_get(index, "manifests"), 0), "digest")));
    return read_blob(json_string_value(json_object_get(json_object_get(man, "config"), "digest")));
}

/* ONBUILD (testdata/build/onbuild): recorded in the base stage's config, run (RUN and COPY from
 * the context) at the start of a stage built on it, whether the base is a stage or a stored
 * image, and not kept in the result. */
static void test_onbuild(void **state)
{
    (void)state;
    itest_run r;
    const char *b[] = {"build",         "-q",          "--platform", "linux/arm64",     "-t",
                       "built:onbuild", "--build-arg", base_arg,     corpus("onbuild"), NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    const char *run_cmd[] = {"run", "-q", "--platform", "linux/arm64", "built:onbuild", NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "triggered with plain\ncopied by a trigger\n");
    itest_run_release(&r);
    _cleanup_json_ json_t *cfg = only_config("/built:onbuild");
    assert_null(json_object_get(json_object_get(cfg, "config"), "OnBuild"));

    const char *t[] = {"build",
                       "-q",
                       "--platform",
                       "linux/arm64",
                       "--target",
                       "base",
                       "-t",
                       "built:onbuild-base",
                       "--build-arg",
                       base_arg,
                       corpus("onbuild"),
                       NULL};
    mar(&r, 0, t);
    itest_run_release(&r);
    _cleanup_json_ json_t *bcfg = only_config("/built:onbuild-base");
    const json_t *ob = json_object_get(json_object_get(bcfg, "config"), "OnBuild");
    assert_int_equal(json_array_size(ob), 2);
    assert_string_equal(json_string_value(json_array_get(ob, 1)), "COPY note.txt /note.txt");

    /* The stored image as a base: its triggers run with this context. */
    _cleanup_free_ char *dir = mar_xasprintf("%s/onbuild-user", itest_tmpdir());
    mkdir(dir, 0755);
    free(itest_write("onbuild-user/note.txt", "another context\n", 0644));
    free(itest_write("onbuild-user/Dockerfile",
                     "FROM built:onbuild-base\nCMD [\"cat\", \"/triggered\", \"/note.txt\"]\n",
                     0644));
    const char *u[] = {"build", "-q", "--platform", "linux/arm64", "-t", "built:onbuild-user",
                       dir,     NULL};
    mar(&r, 0, u);
    itest_run_release(&r);
    const char *run2[] = {"run", "-q", "--platform", "linux/arm64", "built:onbuild-user", NULL};
    mar(&r, 0, run2);
    assert_string_equal(r.out.data, "triggered with plain\nanother context\n");
    itest_run_release(&r);
    check_nothing_left();
}

/* ADD of local archives: a gzip tar is extracted into the destination, a plain file copied
 * (bzip2 and xz: test_add_bz2_xz). */
static void test_add(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/add", itest_tmpdir());
    _cleanup_free_ char *mk =
            mar_xasprintf("mkdir -p %s/tree/sub && echo inner > %s/tree/sub/file.txt && "
                          "tar -czf %s/bundle.tar.gz -C %s/tree . && echo plain > %s/plain.txt",
                          dir, dir, dir, dir, dir);
    const char *sh[] = {"sh", "-c", mk, NULL};
    itest_run r;
    itest_runv(&r, NULL, sh);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    free(itest_write("add/Dockerfile",
                     "ARG BASE\nFROM ${BASE}\nADD bundle.tar.gz /opt/\nADD plain.txt /opt/\n"
                     "CMD [\"sh\", \"-c\", \"cat /opt/sub/file.txt /opt/plain.txt; ls /opt\"]\n",
                     0644));
    const char *b[] = {"build",     "-q",          "--platform", "linux/amd64", "-t",
                       "built:add", "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    const char *run_cmd[] = {"run", "-q", "--platform", "linux/amd64", "built:add", NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "inner\nplain\nplain.txt\nsub\n");
    itest_run_release(&r);
    check_nothing_left();
}

/* A FROM --platform=$BUILDPLATFORM stage is built once and shared by every target platform. */
static void test_shared_stage(void **state)
{
    (void)state;
    itest_run r;
    const char *b[] = {
            "build",        "--allow-mislabeled", "--platform", "linux/amd64,linux/arm64", "-t",
            "built:shared", "--build-arg",        base_arg,     corpus("mislabeled"),      NULL};
    mar(&r, 0, b);
    assert_contains(r.err.data, "[linux/amd64 builder 1/1] RUN mkdir");
    assert_contains(r.err.data, "[linux/arm64 builder] shared with linux/amd64");
    assert_not_contains(r.err.data, "[linux/arm64 builder 1/1]");
    itest_run_release(&r);
    /* Both images hold the one result: the build machine's busybox. */
    const char *run_cmd[] = {"run",         "-q",           "--platform",
                             "linux/arm64", "built:shared", "/usr/local/bin/busybox",
                             "echo",        "shared",       NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "shared\n");
    itest_run_release(&r);
    check_nothing_left();
}

/* `mar run built:TAG cat FILE`'s output. */
static char *cat_in(const char *tag, const char *file)
{
    itest_run r;
    const char *a[] = {"run", "-q", "--platform", "linux/amd64", tag, "cat", file, NULL};
    mar(&r, 0, a);
    char *out = mar_xstrdup(r.out.data);
    itest_run_release(&r);
    return out;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* The step cache: a second build of the same inputs runs nothing (every RUN, COPY step says
 * CACHED, the RUN's random stamp is the first build's); a changed context file invalidates its
 * COPY and the steps after it only; --no-cache runs everything; with a fixed epoch a cached
 * build gives the uncached build's index; plain gc keeps what records name, --prune-cache
 * removes the records. */
static void test_cache(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/cache", itest_tmpdir());
    mkdir(dir, 0755);
    free(itest_write("cache/a.txt", "a\n", 0644));
    free(itest_write("cache/b.txt", "b1\n", 0644));
    free(itest_write("cache/Dockerfile",
                     "ARG BASE\nFROM ${BASE}\n"
                     "COPY a.txt /a.txt\n"
                     "RUN cat /proc/sys/kernel/random/uuid > /stamp1\n"
                     "COPY b.txt /b.txt\n"
                     "RUN cat /proc/sys/kernel/random/uuid > /stamp2\n",
                     0644));
    const char *b1[] = {"build",       "--platform", "linux/amd64", "-t", "built:cache1",
                        "--build-arg", base_arg,     dir,           NULL};
    itest_run r;
    mar(&r, 0, b1);
    assert_int_equal(count(r.err.data, "CACHED"), 0);
    itest_run_release(&r);
    _cleanup_free_ char *s1 = cat_in("built:cache1", "/stamp1");
    _cleanup_free_ char *s2 = cat_in("built:cache1", "/stamp2");

    const char *b2[] = {"build",       "--platform", "linux/amd64", "-t", "built:cache2",
                        "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b2);
    assert_int_equal(count(r.err.data, "] CACHED"), 4);
    itest_run_release(&r);
    _cleanup_free_ char *t1 = cat_in("built:cache2", "/stamp1");
    _cleanup_free_ char *t2 = cat_in("built:cache2", "/stamp2");
    assert_string_equal(s1, t1);
    assert_string_equal(s2, t2);

    /* b.txt changed: the first COPY and RUN are reused, the rest runs again. */
    free(itest_write("cache/b.txt", "b2\n", 0644));
    const char *b3[] = {"build",       "--platform", "linux/amd64", "-t", "built:cache3",
                        "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b3);
    assert_contains(r.err.data, "[linux/amd64 stage-0 1/4] CACHED");
    assert_contains(r.err.data, "[linux/amd64 stage-0 2/4] CACHED");
    assert_int_equal(count(r.err.data, "] CACHED"), 2);
    itest_run_release(&r);
    _cleanup_free_ char *u1 = cat_in("built:cache3", "/stamp1");
    _cleanup_free_ char *u2 = cat_in("built:cache3", "/stamp2");
    _cleanup_free_ char *ub = cat_in("built:cache3", "/b.txt");
    assert_string_equal(s1, u1);
    assert_string_not_equal(s2, u2);
    assert_string_equal(ub, "b2\n");

    /* --no-cache runs every step. */
    const char *b4[] = {"build",        "--no-cache",  "--platform", "linux/amd64", "-t",
                        "built:cache4", "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b4);
    assert_int_equal(count(r.err.data, "CACHED"), 0);
    itest_run_release(&r);
    _cleanup_free_ char *v1 = cat_in("built:cache4", "/stamp1");
    assert_string_not_equal(s1, v1);

    /* With a fixed epoch the cached build is the uncached one, byte for byte. */
    const char *e1[] = {
            "build",      "-q",          "--no-cache", "--source-date-epoch", "1700000000",
            "--platform", "linux/amd64", "-t",         "built:cache-e1",      "--build-arg",
            base_arg,     dir,           NULL};
    mar(&r, 0, e1);
    _cleanup_free_ char *de1 = built_digest(&r);
    itest_run_release(&r);
    const char *e2[] = {"build", "--source-date-epoch", "1700000000",  "--platform", "linux/amd64",
                        "-t",    "built:cache-e2",      "--build-arg", base_arg,     dir,
                        NULL};
    mar(&r, 0, e2);
    assert_int_equal(count(r.err.data, "] CACHED"), 4);
    _cleanup_free_ char *de2 = built_digest(&r);
    itest_run_release(&r);
    assert_string_equal(de1, de2);

    /* Untagged, the layers stay for the records through a plain gc ... */
    const char *rmi[] = {"rmi",
                         "-q",
                         "built:cache1",
                         "built:cache2",
                         "built:cache3",
                         "built:cache4",
                         "built:cache-e1",
                         "built:cache-e2",
                         NULL};
    mar(&r, 0, rmi);
    itest_run_release(&r);
    const char *gc[] = {"gc", NULL};
    mar(&r, 0, gc);
    itest_run_release(&r);
    mar(&r, 0, b3);
    assert_int_equal(count(r.err.data, "] CACHED"), 4);
    itest_run_release(&r);
    /* ... and --prune-cache removes the records. */
    const char *prune[] = {"gc", "--prune-cache", NULL};
    mar(&r, 0, prune);
    assert_contains(r.err.data, "build cache records");
    itest_run_release(&r);
    mar(&r, 0, b3);
    assert_int_equal(count(r.err.data, "CACHED"), 0);
    itest_run_release(&r);
    check_nothing_left();
}

/* The cache keys a COPY by its sources as they are in the context: a directory copied into a
 * directory the base does not have (whose time is the time of the copy) is reused; a file that
 * .dockerignore excludes changes nothing; a source's new modification time or contents run the
 * step again; a COPY --from is keyed by the stage's layers, so it follows its stage. */
static void test_cache_sources(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/csrc", itest_tmpdir());
    mkdir(dir, 0755);
    _cleanup_free_ char *data = mar_xasprintf("%s/csrc/data", itest_tmpdir());
    mkdir(data, 0755);
    free(itest_write("csrc/data/one", "1\n", 0644));
    free(itest_write("csrc/data/two", "2\n", 0644));
    free(itest_write("csrc/.dockerignore", "data/*.tmp\n", 0644));
    free(itest_write("csrc/stamp", "s1\n", 0644));
    free(itest_write("csrc/Dockerfile",
                     "ARG BASE\nFROM ${BASE} AS b\n"
                     "COPY stamp /stamp\n"
                     "RUN cat /proc/sys/kernel/random/uuid > /made\n"
                     "FROM ${BASE}\n"
                     "COPY data/ /newdir/\n"
                     "COPY --from=b /made /made\n",
                     0644));
    const char *b[] = {"build",       "--platform", "linux/amd64", "-t", "built:csrc",
                       "--build-arg", base_arg,     dir,           NULL};
    itest_run r;
    mar(&r, 0, b);
    assert_int_equal(count(r.err.data, "CACHED"), 0);
    itest_run_release(&r);
    _cleanup_free_ char *m1 = cat_in("built:csrc", "/made");

    free(itest_write("csrc/data/scratch.tmp", "ignored\n", 0644));
    mar(&r, 0, b);
    assert_int_equal(count(r.err.data, "] CACHED"), 4);
    itest_run_release(&r);

    /* Same contents, a new time: the layer would hold the new time. */
    _cleanup_free_ char *two = mar_xasprintf("%s/csrc/data/two", itest_tmpdir());
    struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    assert_int_equal(utimensat(AT_FDCWD, two, ts, 0), 0);
    mar(&r, 0, b);
    assert_contains(r.err.data, "[linux/amd64 stage-1 1/2] COPY data/ /newdir/\n");
    assert_int_equal(count(r.err.data, "] CACHED"), 2); /* stage b's two steps */
    itest_run_release(&r);

    /* The stage's COPY source changes: its RUN, and the COPY --from of its result, run again. */
    free(itest_write("csrc/stamp", "s2\n", 0644));
    mar(&r, 0, b);
    assert_int_equal(count(r.err.data, "] CACHED"), 1);
    assert_contains(r.err.data, "[linux/amd64 stage-1 1/2] CACHED");
    itest_run_release(&r);
    _cleanup_free_ char *m2 = cat_in("built:csrc", "/made");
    assert_string_not_equal(m1, m2);
    _cleanup_free_ char *t = cat_in("built:csrc", "/newdir/two");
    assert_string_equal(t, "2\n");
    const char *rmi[] = {"rmi", "-q", "built:csrc", NULL};
    mar(&r, 0, rmi);
    itest_run_release(&r);
    check_nothing_left();
}

/* A base pulled for another platform does not stand in for the one asked: with only multi's
 * linux/386 entry in a fresh store, a linux/amd64 build FROM multi builds on its amd64 entry
 * (the RUN sees a 64-bit busybox: ELF class 2 at offset 4). */
static void test_other_platform_stored(void **state)
{
    (void)state;
    char saved[sizeof(store)];
    memcpy(saved, store, sizeof(store));
    snprintf(store, sizeof(store), "%s/store-386", itest_tmpdir());
    itest_run r;
    const char *pull[] = {"pull", "-q", "--platform", "linux/386", itest_fixture_ref("multi"),
                          NULL};
    mar(&r, 0, pull);
    itest_run_release(&r);
    _cleanup_free_ char *dir = mar_xasprintf("%s/on386", itest_tmpdir());
    mkdir(dir, 0755);
    free(itest_write("on386/Dockerfile",
                     "ARG BASE\nFROM ${BASE}\n"
                     "RUN uname -m > /machine && od -An -tx1 -j4 -N1 /bin/busybox > /class\n",
                     0644));
    const char *b[] = {"build",       "-q",          "--platform", "linux/amd64", "-t",
                       "built:on386", "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    const char *run_cmd[] = {"run", "-q",       "--platform", "linux/amd64", "built:on386",
                             "cat", "/machine", "/class",     NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "x86_64\n 02\n");
    itest_run_release(&r);
    check_nothing_left();
    memcpy(store, saved, sizeof(store));
}

/* --compression zstd: the layers the build adds are zstd (media type and magic), the base's stay
 * gzip, the image runs; the same inputs with gzip are not taken from the cache; a bad value is a
 * usage error. */
static void test_zstd(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/zstd", itest_tmpdir());
    mkdir(dir, 0755);
    free(itest_write("zstd/f.txt", "zstd layer\n", 0644));
    free(itest_write("zstd/Dockerfile",
                     "ARG BASE\nFROM ${BASE}\nCOPY f.txt /f.txt\nRUN cat /f.txt > /g.txt\n", 0644));
    itest_run r;
    const char *b[] = {"build",       "-q", "--compression", "zstd",        "--platform",
                       "linux/amd64", "-t", "built:zstd",    "--build-arg", base_arg,
                       dir,           NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    _cleanup_json_ json_t *index = stored_index("/built:zstd");
    assert_non_null(index);
    _cleanup_json_ json_t *man = read_blob(json_string_value(
            json_object_get(json_array_get(json_object_get(index, "manifests"), 0), "digest")));
    const json_t *layers = json_object_get(man, "layers");
    size_t n = json_array_size(layers);
    assert_true(n >= 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(layers, 0), "mediaType")),
                        "application/vnd.oci.image.layer.v1.tar+gzip");
    for (size_t i = n - 2; i < n; i++) {
        const json_t *l = json_array_get(layers, i);
        assert_string_equal(json_string_value(json_object_get(l, "mediaType")),
                            "application/vnd.oci.image.layer.v1.tar+zstd");
        _cleanup_free_ char *lp = mar_xasprintf(
                "%s/blobs/sha256/%s", store, json_string_value(json_object_get(l, "digest")) + 7);
        unsigned char magic[4] = {0};
        int fd = open(lp, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, magic, 4), 4);
        close(fd);
        assert_int_equal(magic[0], 0x28);
        assert_int_equal(magic[1], 0xb5);
        assert_int_equal(magic[2], 0x2f);
        assert_int_equal(magic[3], 0xfd);
    }
    const char *run_cmd[] = {"run",        "-q",  "--platform", "linux/amd64",
                             "built:zstd", "cat", "/g.txt",     NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "zstd layer\n");
    itest_run_release(&r);
    const char *g[] = {"build",       "--platform", "linux/amd64", "-t", "built:zstd-gzip",
                       "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, g);
    assert_not_contains(r.err.data, "CACHED");
    itest_run_release(&r);
    const char *bad[] = {"build", "--compression", "xz", "-t", "built:bad", dir, NULL};
    mar(&r, 2, bad);
    itest_run_release(&r);
    check_nothing_left();
}

/* ADD URL --checksum: a blob of the bed's registry (its digest known from the fixtures) lands
 * with its content, mode 0600 and root's; a wrong checksum exits 6 and tags nothing. */
static void test_add_url(void **state)
{
    (void)state;
    const json_t *fx = json_object_get(json_object_get(itest_fixtures(), "multi"), "platforms");
    const char *cfg = json_string_value(json_object_get(json_array_get(fx, 0), "config"));
    assert_non_null(cfg);
    _cleanup_free_ char *url =
            mar_xasprintf("http://%s/v2/mar/multi/blobs/%s", itest_bed("MAR_TEST_REGISTRY"), cfg);
    _cleanup_free_ char *dir = mar_xasprintf("%s/addurl", itest_tmpdir());
    mkdir(dir, 0755);
    _cleanup_free_ char *df = mar_xasprintf(
            "ARG BASE\nFROM ${BASE}\nADD --checksum=%s %s /dl/\n"
            "RUN sha256sum /dl/%s | cut -c1-64 > /sum && stat -c '%%a %%u' /dl/%s >> /sum\n",
            cfg, url, cfg, cfg);
    free(itest_write("addurl/Dockerfile", df, 0644));
    itest_run r;
    const char *b[] = {"build",        "-q",          "--platform", "linux/amd64", "-t",
                       "built:addurl", "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    const char *run_cmd[] = {"run",          "-q",  "--platform", "linux/amd64",
                             "built:addurl", "cat", "/sum",       NULL};
    mar(&r, 0, run_cmd);
    _cleanup_free_ char *want = mar_xasprintf("%s\n600 0\n", cfg + 7);
    assert_string_equal(r.out.data, want);
    itest_run_release(&r);
    /* A wrong checksum: exit 6, nothing tagged. */
    _cleanup_free_ char *bad = mar_xasprintf(
            "ARG BASE\nFROM ${BASE}\nADD "
            "--checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 "
            "%s /dl/\n",
            url);
    free(itest_write("addurl/Dockerfile", bad, 0644));
    const char *b2[] = {"build",       "--platform", "linux/amd64", "-t", "built:addurl-bad",
                        "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 6, b2);
    assert_contains(r.err.data, "checksum mismatch");
    itest_run_release(&r);
    assert_null(stored_index("/built:addurl-bad"));
    check_nothing_left();
}

/* COPY --exclude: patterns matched below each source (a directory's contents, a file's name). */
static void test_exclude(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/exclude", itest_tmpdir());
    _cleanup_free_ char *sub = mar_xasprintf("%s/exclude/sub", itest_tmpdir());
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    static const char *const files[] = {"exclude/a.txt", "exclude/b.md", "exclude/sub/c.md",
                                        "exclude/sub/d.txt", "exclude/sub/e.txt"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(files); i++) {
        free(itest_write(files[i], "x\n", 0644));
    }
    free(itest_write("exclude/Dockerfile",
                     "ARG BASE\nFROM ${BASE}\n"
                     "COPY --exclude=**/*.md --exclude=sub/d.txt . /x/\n"
                     "COPY --exclude=*.txt *.txt *.md /y/\n"
                     "CMD [\"ls\", \"/x\", \"/x/sub\", \"/y\"]\n",
                     0644));
    itest_run r;
    const char *b[] = {"build",         "-q",          "--platform", "linux/amd64", "-t",
                       "built:exclude", "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    const char *run_cmd[] = {"run", "-q", "--platform", "linux/amd64", "built:exclude", NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "/x:\nDockerfile\na.txt\nsub\n\n/x/sub:\ne.txt\n\n/y:\nb.md\n");
    itest_run_release(&r);
    check_nothing_left();
}

/* --push-by-digest: each platform's image pushed untagged; each digest runs from a fresh store,
 * and the tag does not exist in the registry. */
static void test_push_by_digest(void **state)
{
    (void)state;
    _cleanup_free_ char *name =
            mar_xasprintf("%s/mar/built:bydigest", itest_bed("MAR_TEST_REGISTRY"));
    _cleanup_free_ char *repo = mar_xasprintf("%s/mar/built@", itest_bed("MAR_TEST_REGISTRY"));
    itest_run r;
    const char *b[] = {"build", "-q", "--push-by-digest", "--platform", "linux/amd64,linux/arm64",
                       "-t",    name, "--build-arg",      base_arg,     corpus("multistage"),
                       NULL};
    mar(&r, 0, b);
    static const struct {
        const char *platform, *machine;
    } want[] = {{"linux/amd64", "x86_64\n"}, {"linux/arm64", "aarch64\n"}};
    _cleanup_free_ char *fresh = mar_xasprintf("%s/bydigest-store", itest_tmpdir());
    const char *env[] = {ctd_env, insecure_env, NULL};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(want); i++) {
        _cleanup_free_ char *suffix = mar_xasprintf(" %s\n", want[i].platform);
        const char *end = strstr(r.out.data, suffix);
        assert_non_null(end);
        const char *start = end;
        while (start > r.out.data && start[-1] != '\n') {
            start--;
        }
        _cleanup_free_ char *ref = mar_xstrndup(start, (size_t)(end - start));
        assert_true(mar_str_startswith(ref, repo));
        itest_run rr;
        itest_mar(&rr, env, "--store", fresh, "run", "-q", "--platform", want[i].platform, ref,
                  NULL);
        assert_int_equal(rr.status, 0);
        assert_string_equal(rr.out.data, want[i].machine);
        itest_run_release(&rr);
    }
    itest_run_release(&r);
    itest_mar(&r, env, "inspect", name, NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    itest_run_release(&r);
    check_nothing_left();
}

static void test_failing_run(void **state)
{
    (void)state;
    itest_run r;
    const char *b[] = {"build",       "--platform", "linux/arm64",  "-t", "built:fail",
                       "--build-arg", base_arg,     corpus("fail"), NULL};
    mar(&r, 1, b);
    assert_contains(r.err.data, "[linux/arm64 stage-0 1/3] before the failure");
    assert_contains(r.err.data, "failing now");
    assert_contains(r.err.data,
                    "linux/arm64 stage stage-0: Dockerfile:4: RUN echo failing now; exit 3: exit "
                    "status 3");
    assert_not_contains(r.err.data, "never");
    itest_run_release(&r);
    assert_null(stored_index("/built:fail"));
    check_nothing_left();
}

static void test_missing_source(void **state)
{
    (void)state;
    itest_run r;
    const char *b[] = {"build",           "-t", "built:missing", "--build-arg", base_arg,
                       corpus("missing"), NULL};
    mar(&r, 3, b);
    assert_contains(r.err.data, "Dockerfile:3: COPY source 'does-not-exist.txt' not found");
    itest_run_release(&r);
    assert_null(stored_index("/built:missing"));
    check_nothing_left();
}

static void test_refused(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/refused", itest_tmpdir());
    mkdir(dir, 0755);
    _cleanup_free_ char *df = mar_xasprintf("%s/Dockerfile", dir);
    FILE *f = fopen(df, "w");
    assert_non_null(f);
    fputs("ARG BASE\nFROM ${BASE}\nRUN echo first\nCOPY --chmod=u+x Dockerfile /\n", f);
    fclose(f);
    itest_run r;
    const char *b[] = {"build", "-t", "built:refused", "--build-arg", base_arg, dir, NULL};
    /* A symbolic --chmod is what mar build does not do yet. */
    mar(&r, 2, b);
    assert_contains(r.err.data, "Dockerfile:4: a symbolic --chmod is not supported by mar build");
    /* Refused before anything ran. */
    assert_not_contains(r.err.data, "first");
    itest_run_release(&r);
    assert_null(stored_index("/built:refused"));
    /* Not root: refused at once (exit 7); checked where nobody may run this mar at all. */
    const char *probe[] = {"setpriv",
                           "--reuid=65534",
                           "--regid=65534",
                           "--clear-groups",
                           getenv("MAR_BIN"),
                           "--version",
                           NULL};
    itest_runv(&r, NULL, probe);
    bool runnable = r.status == 0;
    itest_run_release(&r);
    if (runnable) {
        const char *nr[] = {"setpriv",
                            "--reuid=65534",
                            "--regid=65534",
                            "--clear-groups",
                            getenv("MAR_BIN"),
                            "build",
                            "-t",
                            "built:notroot",
                            corpus("multistage"),
                            NULL};
        itest_runv(&r, NULL, nr);
        assert_int_equal(r.status, MAR_EUNSUPPORTED);
        assert_contains(r.err.data, "mar build needs root");
        itest_run_release(&r);
    }
    check_nothing_left();
}

/* Independent stages of one platform run at the same time (docs/internals/build.md §12). Proof
 * by rendezvous, not by timing: stages a and b each leave a marker in a cache mount they share
 * (same id, same platform) and wait for the other's; run one after another, the first would
 * wait for nothing and fail at its bound (exit 9). Stage c needs a (COPY --from), so its first
 * step starts only after a's RUN ended: a's last output line comes before c's first step line.
 * With SOURCE_DATE_EPOCH the index is the same one stage at a time (-j 1) and four at once
 * (-j 4), for two platforms. */
static void test_parallel_stages(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/par-stages", itest_tmpdir());
    mkdir(dir, 0755);
    static const char meet[] =
            "RUN --mount=type=cache,id=meet,target=/meet if [ -n \"$MEET\" ]; then "
            "touch /meet/$MEET-%s; i=0; while [ ! -e /meet/$MEET-%s ] && [ $i -lt 120 ]; do "
            "sleep 1; i=$((i+1)); done; [ -e /meet/$MEET-%s ] || { echo alone; exit 9; }; fi; "
            "echo %s > /%s.txt; echo %s-done\n";
    _cleanup_free_ char *ra = mar_xasprintf(meet, "a", "b", "b", "a", "a", "a");
    _cleanup_free_ char *rb = mar_xasprintf(meet, "b", "a", "a", "b", "b", "b");
    _cleanup_free_ char *text = mar_xasprintf(
            "ARG BASE\nFROM ${BASE} AS a\nARG MEET\n%s"
            "FROM ${BASE} AS b\nARG MEET\n%s"
            "FROM ${BASE} AS c\nCOPY --from=a /a.txt /c-a.txt\n"
            "RUN cat /c-a.txt > /c.txt && echo c >> /c.txt\n"
            "FROM ${BASE}\nCOPY --from=c /c.txt /c.txt\nCOPY --from=b /b.txt /b.txt\n"
            "COPY --from=a /a.txt /a.txt\nCMD [\"cat\", \"/a.txt\", \"/b.txt\", \"/c.txt\"]\n",
            ra, rb);
    free(itest_write("par-stages/Dockerfile", text, 0644));
    _cleanup_free_ char *id = mar_xasprintf("MEET=%d-%llx", (int)getpid(),
                                            (unsigned long long)mar_random_below(UINT64_MAX));
    itest_run r;
    const char *b[] = {"build",       "--no-cache", "--platform",  "linux/amd64",
                       "-t",          "built:par",  "--build-arg", base_arg,
                       "--build-arg", id,           dir,           NULL};
    mar(&r, 0, b);
    assert_not_contains(r.err.data, "] alone");
    const char *a_done = strstr(r.err.data, "] a-done");
    const char *c_first = strstr(r.err.data, "[linux/amd64 c 1/2] COPY --from=a");
    assert_non_null(a_done);
    assert_non_null(c_first);
    if (c_first < a_done) {
        fail_msg("stage c started before stage a ended:\n%s", r.err.data);
    }
    itest_run_release(&r);
    const char *run_cmd[] = {"run", "-q", "--platform", "linux/amd64", "built:par", NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "a\nb\na\nc\n");
    itest_run_release(&r);
    /* One stage at a time, and four at once: the same documents. */
    char *digests[2];
    const char *jobs[] = {"1", "4"};
    for (size_t k = 0; k < 2; k++) {
        _cleanup_free_ char *tag = mar_xasprintf("built:par-j%s", jobs[k]);
        const char *d[] = {"build",
                           "-q",
                           "--no-cache",
                           "-j",
                           jobs[k],
                           "--platform",
                           "linux/amd64,linux/arm64",
                           "-t",
                           tag,
                           "--build-arg",
                           base_arg,
                           dir,
                           NULL};
        mar_env(&r, 0, "SOURCE_DATE_EPOCH=1700000000", d);
        digests[k] = built_digest(&r);
        itest_run_release(&r);
    }
    assert_string_equal(digests[0], digests[1]);
    free(digests[0]);
    free(digests[1]);
    check_nothing_left();
}

/* Nothing of the store's is still mounted (a writable bind's overlay, a from= stage). */
static void check_no_mounts(void)
{
    mar_buf mi = MAR_BUF_INIT(16u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, "/proc/self/mountinfo", 16u << 20, &mi, &e) < 0) {
        fail_msg("mountinfo: %s", e->msg);
    }
    assert_not_contains(mi.data, store);
    mar_buf_release(&mi);
}

/* RUN --mount=type=bind with rw (and readwrite=true): the step writes into a bind of a context
 * directory, of a context file and of a stage's directory; the writes are seen by the step,
 * then discarded: the context is unchanged, the next step sees the stage's file, and the layer
 * holds only what the step wrote elsewhere. */
static void test_bind_rw(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/bind-rw", itest_tmpdir());
    _cleanup_free_ char *data = mar_xasprintf("%s/bind-rw/data", itest_tmpdir());
    mkdir(dir, 0755);
    mkdir(data, 0755);
    free(itest_write("bind-rw/data/file.txt", "input\n", 0644));
    free(itest_write(
            "bind-rw/Dockerfile",
            "ARG BASE\nFROM ${BASE} AS tools\nRUN mkdir -p /opt && echo 'from a stage' > "
            "/opt/note\n"
            "FROM ${BASE}\n"
            "RUN --mount=type=bind,source=data,target=/ctx,rw \\\n"
            "    --mount=type=bind,from=tools,source=/opt,target=/stage,readwrite=true \\\n"
            "    --mount=type=bind,source=data/file.txt,target=/one,rw \\\n"
            "    echo changed > /ctx/file.txt && echo new > /ctx/new.txt && rm /stage/note && \\\n"
            "    echo x > /stage/made && test -e /stage/made && \\\n"
            "    echo f >> /one && cat /ctx/file.txt /ctx/new.txt /one > /result\n"
            "RUN --mount=type=bind,from=tools,source=/opt,target=/stage \\\n"
            "    test ! -e /stage/made && cat /stage/note >> /result\n"
            "CMD [\"sh\", \"-c\", \"cat /result; ls -d /ctx /stage /one 2>/dev/null; echo end\"]\n",
            0644));
    itest_run r;
    const char *b[] = {"build",         "-q",          "--platform", "linux/amd64", "-t",
                       "built:bind-rw", "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    const char *run_cmd[] = {"run", "-q", "--platform", "linux/amd64", "built:bind-rw", NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "changed\nnew\ninput\nf\nfrom a stage\nend\n");
    itest_run_release(&r);
    /* The context is as it was. */
    _cleanup_free_ char *ls = mar_xasprintf("ls %s; cat %s/file.txt", data, data);
    const char *sh[] = {"sh", "-c", ls, NULL};
    itest_runv(&r, NULL, sh);
    assert_string_equal(r.out.data, "file.txt\ninput\n");
    itest_run_release(&r);
    /* The first RUN's layer: the result, none of the mounts or their contents (a directory
     * the runtime's bound files were copied up into may be there). */
    _cleanup_json_ json_t *index = stored_index("/built:bind-rw");
    assert_non_null(index);
    _cleanup_json_ json_t *man = read_blob(json_string_value(
            json_object_get(json_array_get(json_object_get(index, "manifests"), 0), "digest")));
    const json_t *layers = json_object_get(man, "layers");
    const char *l1 = json_string_value(
            json_object_get(json_array_get(layers, json_array_size(layers) - 2), "digest"));
    _cleanup_free_ char *list = mar_xasprintf("tar -tzf %s/blobs/sha256/%s", store, l1 + 7);
    const char *tar[] = {"sh", "-c", list, NULL};
    itest_runv(&r, NULL, tar);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "result\n");
    static const char *const absent[] = {"ctx", "stage", "one", "file.txt", "new.txt", "made"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(absent); i++) {
        assert_not_contains(r.out.data, absent[i]);
    }
    itest_run_release(&r);
    check_no_mounts();
    check_nothing_left();
}

/* RUN --mount=type=cache with from= and source=: the first use copies the stage's directory
 * into the cache, later builds keep what the steps wrote (sharing=locked), another result of
 * the stage gets another cache; sharing=private takes another instance of the cache while the
 * first is held (here by flock(1)). */
static void test_cache_from(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/cache-from", itest_tmpdir());
    mkdir(dir, 0755);
    free(itest_write(
            "cache-from/Dockerfile",
            "ARG BASE\nFROM ${BASE} AS seed\n"
            "RUN mkdir -p /seed/sub && echo seeded > /seed/sub/v && echo 0 > /seed/count\n"
            "FROM ${BASE}\n"
            "RUN --mount=type=cache,id=cf,from=seed,source=/seed,target=/cache,sharing=locked \\\n"
            "    n=$(cat /cache/count); n=$((n+1)); echo $n > /cache/count; \\\n"
            "    echo \"seeded runs: $n $(cat /cache/sub/v)\" > /result\n"
            "RUN --mount=type=cache,id=cf-private,target=/p,sharing=private \\\n"
            "    n=$(cat /p/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /p/count; \\\n"
            "    echo \"private runs: $n\" >> /result\n"
            "CMD [\"cat\", \"/result\"]\n",
            0644));
    /* A fixed epoch makes the seed stage's layer, and so the cache's key, the same each time. */
    const char *b[] = {"build",    "-q",          "--no-cache",  "--source-date-epoch",
                       "0",        "--platform",  "linux/amd64", "-t",
                       "built:cf", "--build-arg", base_arg,      dir,
                       NULL};
    const char *run_cmd[] = {"run", "-q", "--platform", "linux/amd64", "built:cf", NULL};
    itest_run r;
    for (int round = 1; round <= 2; round++) {
        mar(&r, 0, b);
        itest_run_release(&r);
        mar(&r, 0, run_cmd);
        _cleanup_free_ char *want =
                mar_xasprintf("seeded runs: %d seeded\nprivate runs: %d\n", round, round);
        assert_string_equal(r.out.data, want);
        itest_run_release(&r);
    }
    /* The private cache's first instance held: the step gets a second, empty one. */
    static const char key[] = "cf-private\0linux/amd64";
    mar_digest d;
    mar_digest_of(MAR_DIGEST_SHA256, key, sizeof(key) - 1, &d);
    _cleanup_free_ char *lock = mar_xasprintf("%s/cache/%s.lock", store, mar_digest_hex(&d));
    _cleanup_free_ char *second = mar_xasprintf("%s/cache/%s-1/count", store, mar_digest_hex(&d));
    assert_int_equal(access(lock, F_OK), 0);
    const char *held[] = {
            "flock",       "-x", lock,         getenv("MAR_BIN"),     "--store", store,
            "build",       "-q", "--no-cache", "--source-date-epoch", "0",       "--platform",
            "linux/amd64", "-t", "built:cf",   "--build-arg",         base_arg,  dir,
            NULL};
    const char *env[] = {ctd_env, insecure_env, NULL};
    itest_runv(&r, env, held);
    if (r.status != 0) {
        fail_msg("held build: %d\n%s", r.status, r.err.data);
    }
    itest_run_release(&r);
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "seeded runs: 3 seeded\nprivate runs: 1\n");
    itest_run_release(&r);
    assert_int_equal(access(second, F_OK), 0);
    /* Another seed (its files at another time): another cache, as BuildKit keys a cache
     * mount by its id and its from's result. */
    b[4] = "1";
    mar(&r, 0, b);
    itest_run_release(&r);
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "seeded runs: 1 seeded\nprivate runs: 3\n");
    itest_run_release(&r);
    check_no_mounts();
    check_nothing_left();
}

/* ADD of local bzip2 and xz tars extracts them, as Docker's ADD does; a compressed file that
 * is not a tar (bzip2, gzip) is copied as it is. */
static void test_add_bz2_xz(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("%s/add-bz2-xz", itest_tmpdir());
    _cleanup_free_ char *mk = mar_xasprintf(
            "mkdir -p %s/tree/sub && cd %s && echo inner > tree/sub/file.txt && "
            "ln -s sub/file.txt tree/link && tar -cf - -C tree . | bzip2 > a.tar.bz2 && "
            "tar -cf - -C tree . | xz > b.tar.xz && echo text | bzip2 > notes.txt.bz2 && "
            "echo '{}' | gzip > data.json.gz",
            dir, dir);
    const char *sh[] = {"sh", "-c", mk, NULL};
    itest_run r;
    itest_runv(&r, NULL, sh);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    free(itest_write("add-bz2-xz/Dockerfile",
                     "ARG BASE\nFROM ${BASE}\nADD a.tar.bz2 /bz/\nADD b.tar.xz /xz\n"
                     "ADD notes.txt.bz2 data.json.gz /opt/\n"
                     "CMD [\"sh\", \"-c\", \"cat /bz/sub/file.txt /xz/link; ls /opt\"]\n",
                     0644));
    const char *b[] = {"build",        "-q",          "--platform", "linux/amd64", "-t",
                       "built:bz2-xz", "--build-arg", base_arg,     dir,           NULL};
    mar(&r, 0, b);
    itest_run_release(&r);
    const char *run_cmd[] = {"run", "-q", "--platform", "linux/amd64", "built:bz2-xz", NULL};
    mar(&r, 0, run_cmd);
    assert_string_equal(r.out.data, "inner\ninner\ndata.json.gz\nnotes.txt.bz2\n");
    itest_run_release(&r);
    /* The copied files are byte for byte the context's. */
    const char *cmp_cmd[] = {
            "run",     "-q",     "--platform",         "linux/amd64",       "built:bz2-xz",
            "busybox", "md5sum", "/opt/notes.txt.bz2", "/opt/data.json.gz", NULL};
    mar(&r, 0, cmp_cmd);
    _cleanup_free_ char *local =
            mar_xasprintf("cd %s && md5sum notes.txt.bz2 data.json.gz | sed 's#  #  /opt/#'", dir);
    const char *sh2[] = {"sh", "-c", local, NULL};
    itest_run l;
    itest_runv(&l, NULL, sh2);
    assert_int_equal(l.status, 0);
    assert_string_equal(r.out.data, l.out.data);
    itest_run_release(&l);
    itest_run_release(&r);
    check_nothing_left();
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
    snprintf(store, sizeof(store), "%s/store", itest_tmpdir());
    snprintf(ctd_env, sizeof(ctd_env), "CONTAINERD_ADDRESS=%s", itest_bed("MAR_TEST_CONTAINERD"));
    snprintf(insecure_env, sizeof(insecure_env), "MAR_INSECURE_REGISTRIES=%s",
             itest_bed("MAR_TEST_REGISTRY"));
    snprintf(base_arg, sizeof(base_arg), "BASE=%s", itest_fixture_ref("multi"));
    return 0;
}

/* --explain --build-machine: the plan for another machine, whatever this host's binfmt_misc
 * holds (here: nothing). On apple-silicon linux/arm64 is native, linux/amd64 runs under Rosetta
 * (QEMU for apple-silicon-qemu), and $BUILDPLATFORM is linux/arm64, so the `FROM
 * --platform=$BUILDPLATFORM` stage runs as arm64 for every target; x86-64-v3 cannot run under
 * macOS 14's Rosetta (exit 7 with the fix); without --platform the machine's platform is the
 * target; the option without --explain, or a bad machine, is a usage error. */
static void test_explain_machine(void **state)
{
    (void)state;
    _cleanup_free_ char *fake = mar_xasprintf("%s/empty-binfmt-machine", itest_tmpdir());
    mkdir(fake, 0700);
    free(itest_write("empty-binfmt-machine/status", "enabled\n", 0644));
    itest_run r;
    const char *e[] = {"--binfmt-root",
                       fake,
                       "build",
                       "--explain",
                       "--build-machine",
                       "apple-silicon",
                       "-p",
                       "linux/amd64",
                       "-p",
                       "linux/arm64",
                       "--build-arg",
                       base_arg,
                       corpus("multistage"),
                       NULL};
    mar(&r, 0, e);
    assert_contains(r.out.data, "machine: apple-silicon (macOS 26), native linux/arm64 "
                                "($BUILDPLATFORM, as BuildKit there sets it)");
    assert_contains(r.out.data,
                    "linux/amd64      build            linux/amd64         1  emulated (rosetta)");
    assert_contains(r.out.data,
                    "linux/amd64      stage-1          linux/amd64         1  emulated (rosetta)");
    assert_contains(r.out.data, "linux/arm64      build            linux/arm64         1  native");
    assert_contains(r.out.data, "linux/arm64      stage-1          linux/arm64         1  native");
    assert_contains(r.out.data, "2 RUN steps would run emulated");
    assert_contains(r.out.data,
                    "advice: stage build runs 1 RUN step under rosetta for linux/amd64: "
                    "if it compiles or installs much, run the stage as the build "
                    "machine's own platform (linux/arm64)");
    assert_not_contains(r.out.data, "qemu");
    itest_run_release(&r);

    const char *q[] = {
            "build",      "--explain",   "--json",      "--build-machine", "apple-silicon-qemu",
            "--platform", "linux/amd64", "--build-arg", base_arg,          corpus("multistage"),
            NULL};
    mar(&r, 0, q);
    _cleanup_json_ json_t *doc = itest_json(r.out.data);
    itest_run_release(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "machine")), "apple-silicon-qemu");
    assert_string_equal(json_string_value(json_object_get(doc, "machinePlatform")), "linux/arm64");
    assert_int_equal(json_integer_value(json_object_get(doc, "macos")), 26);
    assert_int_equal(json_integer_value(json_object_get(doc, "emulatedRunSteps")), 2);
    const json_t *b0 = json_array_get(json_object_get(doc, "stages"), 0);
    assert_string_equal(json_string_value(json_object_get(b0, "executes")), "emulated");
    assert_string_equal(json_string_value(json_object_get(b0, "emulator")), "qemu");

    /* The $BUILDPLATFORM stage of the mislabeled corpus runs as the Mac's arm64 for an amd64
     * target, where on this host it runs as amd64. */
    const char *j[] = {"build",         "--explain",          "--json",      "--build-machine",
                       "apple-silicon", "--platform",         "linux/amd64", "--build-arg",
                       base_arg,        corpus("mislabeled"), NULL};
    mar(&r, 0, j);
    _cleanup_json_ json_t *mis = itest_json(r.out.data);
    itest_run_release(&r);
    const json_t *builder = json_array_get(json_object_get(mis, "stages"), 0);
    assert_string_equal(json_string_value(json_object_get(builder, "stage")), "builder");
    assert_true(json_is_true(json_object_get(builder, "buildPlatform")));
    assert_string_equal(json_string_value(json_object_get(builder, "platform")), "linux/arm64");
    assert_string_equal(json_string_value(json_object_get(builder, "executes")), "native");

    const char *v3[] = {"build",
                        "--explain",
                        "--build-machine",
                        "apple-silicon:macos14",
                        "--platform",
                        "linux/amd64/v3",
                        "--build-arg",
                        base_arg,
                        corpus("multistage"),
                        NULL};
    mar(&r, 7, v3);
    assert_contains(r.out.data, "machine: apple-silicon:macos14, native linux/arm64");
    assert_contains(r.out.data, "why: x86-64-v3 binaries need AVX2, which Rosetta translates only "
                                "from macOS 15 on (this Mac: macOS 14)");
    assert_contains(r.out.data, "fix: update the Mac to macOS 15 or later");
    itest_run_release(&r);

    const char *d[] = {"build",       "--explain", "--build-machine",    "apple-silicon",
                       "--build-arg", base_arg,    corpus("multistage"), NULL};
    mar(&r, 0, d);
    assert_contains(r.out.data, "linux/arm64      stage-1          linux/arm64         1  native");
    assert_not_contains(r.out.data, "linux/amd64");
    assert_contains(r.out.data, "0 RUN steps would run emulated");
    itest_run_release(&r);

    const char *nx[] = {"build",
                        "-t",
                        "built:machine",
                        "--build-machine",
                        "apple-silicon",
                        "--build-arg",
                        base_arg,
                        corpus("multistage"),
                        NULL};
    mar(&r, 2, nx);
    assert_contains(r.err.data, "--build-machine goes with --explain");
    assert_string_equal(r.out.data, "");
    itest_run_release(&r);
    const char *bad[] = {"build",       "--explain", "--build-machine",    "apple-silicon:macos12",
                         "--build-arg", base_arg,    corpus("multistage"), NULL};
    mar(&r, 2, bad);
    assert_contains(r.err.data, "apple-silicon:macos12");
    itest_run_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_multistage),
            cmocka_unit_test(test_reproducible),
            cmocka_unit_test(test_truth_gate),
            cmocka_unit_test(test_output),
            cmocka_unit_test(test_push),
            cmocka_unit_test(test_push_by_digest),
            cmocka_unit_test(test_explain),
            cmocka_unit_test(test_heredoc),
            cmocka_unit_test(test_mounts),
            cmocka_unit_test(test_onbuild),
            cmocka_unit_test(test_add),
            cmocka_unit_test(test_shared_stage),
            cmocka_unit_test(test_exclude),
            cmocka_unit_test(test_cache),
            cmocka_unit_test(test_cache_sources),
            cmocka_unit_test(test_other_platform_stored),
            cmocka_unit_test(test_zstd),
            cmocka_unit_test(test_add_url),
            cmocka_unit_test(test_failing_run),
            cmocka_unit_test(test_missing_source),
            cmocka_unit_test(test_refused),
            cmocka_unit_test(test_explain_machine),
            cmocka_unit_test(test_parallel_stages),
            cmocka_unit_test(test_bind_rw),
            cmocka_unit_test(test_cache_from),
            cmocka_unit_test(test_add_bz2_xz),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
