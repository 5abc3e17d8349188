/* Settling layers unpacked alone: for each case, the layers are unpacked one by one
 * (OCI_UNPACK_LAYER), settled, and mounted with the kernel's overlayfs; the mount must list
 * exactly what flattening the same layers (OCI_UNPACK_APPLY) gives. The merged view of lview.c is
 * checked against the same mount. Needs root (overlay mounts, whiteout devices) in a private
 * mount namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "oci/oci.h"
#include "tbuf.h"
#include "tarw.h"
#include "treecmp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>

#define MAXL 6

typedef struct layers {
    mar_buf tar[MAXL];
    size_t n;
} layers;

static mar_buf *next(layers *l)
{
    assert_true(l->n < MAXL);
    mar_buf_init(&l->tar[l->n], MAR_BUF_NOCAP);
    return &l->tar[l->n++];
}

static void F(mar_buf *t, const char *name, const char *data)
{
    tarw_add(t, &(tarw_entry){.name = name,
                              .type = '0',
                              .mode = 0644,
                              .data = data,
                              .size = strlen(data),
                              .mtime = 1700000000});
}
static void Fm(mar_buf *t, const char *name, unsigned mode, unsigned uid)
{
    tarw_add(t, &(tarw_entry){.name = name,
                              .type = '0',
                              .mode = mode,
                              .uid = uid,
                              .gid = uid,
                              .data = "x",
                              .size = 1,
                              .mtime = 1700000000});
}
static void D(mar_buf *t, const char *name, unsigned mode, unsigned uid)
{
    tarw_add(t, &(tarw_entry){.name = name,
                              .type = '5',
                              .mode = mode,
                              .uid = uid,
                              .gid = uid,
                              .mtime = 1600000000});
}
static void S(mar_buf *t, const char *name, const char *target)
{
    tarw_add(t, &(tarw_entry){.name = name, .type = '2', .mode = 0777, .linkname = target});
}
static void H(mar_buf *t, const char *name, const char *target)
{
    tarw_add(t, &(tarw_entry){.name = name, .type = '1', .mode = 0644, .linkname = target});
}

/* ---- cases ---------------------------------------------------------------------------------- */

static void usrmerge(layers *l)
{
    mar_buf *a = next(l);
    D(a, "usr", 0755, 0);
    D(a, "usr/bin", 0755, 0);
    D(a, "usr/lib", 0755, 0);
    S(a, "bin", "usr/bin");
    S(a, "lib", "/usr/lib");
    F(a, "usr/bin/sh", "sh");
    mar_buf *b = next(l);
    F(b, "bin/x", "x in bin");        /* no bin/ entry: lands in usr/bin */
    F(b, "lib/y/z", "z");             /* implied lib and lib/y */
    F(b, "usr/lib/direct", "direct"); /* implied usr, usr/lib that exist below */
}

static void implied_metadata(layers *l)
{
    mar_buf *a = next(l);
    D(a, "opt", 0750, 7);
    D(a, "opt/deep", 0700, 8);
    mar_buf *b = next(l);
    F(b, "opt/deep/f", "f"); /* /opt must stay 0750 7:7, /opt/deep 0700 8:8 */
    F(b, "new/dir/g", "g");  /* nothing below: 0755 root */
}

static void hardlink_lower(layers *l)
{
    mar_buf *a = next(l);
    D(a, "usr", 0755, 0);
    D(a, "usr/bin", 0755, 0);
    Fm(a, "usr/bin/a", 04755, 0);
    S(a, "bin", "usr/bin");
    mar_buf *b = next(l);
    H(b, "usr/bin/b", "usr/bin/a"); /* copy-up of a, then the link */
    H(b, "bin/c", "bin/a");         /* both sides through the lower symlink */
}

static void whiteout_through_symlink(layers *l)
{
    mar_buf *a = next(l);
    D(a, "usr", 0755, 0);
    D(a, "usr/bin", 0755, 0);
    S(a, "bin", "usr/bin");
    F(a, "usr/bin/old", "old");
    F(a, "usr/bin/keep", "keep");
    mar_buf *b = next(l);
    F(b, "bin/.wh.old", "");
}

static void opaque_dir(layers *l)
{
    mar_buf *a = next(l);
    D(a, "d", 0755, 0);
    F(a, "d/a", "a");
    D(a, "d/sub", 0755, 0);
    F(a, "d/sub/b", "b");
    mar_buf *b = next(l);
    F(b, "d/c", "c");
    F(b, "d/.wh..wh..opq", "");
}

static void absolute_symlink_lower(layers *l)
{
    mar_buf *a = next(l);
    D(a, "etc", 0755, 0);
    S(a, "cfg", "/etc");
    mar_buf *b = next(l);
    F(b, "cfg/x", "x");
}

static void chained_symlinks(layers *l)
{
    mar_buf *a = next(l);
    D(a, "c", 0711, 3);
    S(a, "b", "c");
    mar_buf *b = next(l);
    S(b, "a", "b");
    mar_buf *c = next(l);
    F(c, "a/f", "f"); /* a -> b -> c, across two layers */
}

static void deep_implied(layers *l)
{
    mar_buf *a = next(l);
    D(a, "usr", 0755, 0);
    D(a, "usr/local", 0775, 50);
    S(a, "opt", "usr/local");
    mar_buf *b = next(l);
    F(b, "opt/share/doc/f", "f");
}

static void type_changes(layers *l)
{
    mar_buf *a = next(l);
    D(a, "x", 0755, 0);
    F(a, "x/in", "in");
    F(a, "y", "file y");
    S(a, "z", "x");
    mar_buf *b = next(l);
    F(b, "x", "x is a file now");
    D(b, "y", 0700, 0);
    F(b, "y/in", "y is a dir now");
    D(b, "z", 0755, 0); /* a directory over a symlink: the symlink goes */
    F(b, "z/zz", "zz");
}

static void three_layers_whiteout_readd(layers *l)
{
    mar_buf *a = next(l);
    D(a, "etc", 0755, 0);
    F(a, "etc/conf", "v1");
    mar_buf *b = next(l);
    F(b, "etc/.wh.conf", "");
    mar_buf *c = next(l);
    F(c, "etc/conf", "v3");
    F(c, "etc/other", "o");
}

/* A file replaces a lower directory and whiteouts under it follow (umoci repack writes such
 * layers): the whiteouts are moot (issue 12.3). */
static void dir_to_file_whiteouts(layers *l)
{
    mar_buf *a = next(l);
    D(a, "d", 0755, 0);
    F(a, "d/a", "a");
    F(a, "d/b", "b");
    F(a, "keep", "k");
    mar_buf *b = next(l);
    F(b, "d", "d is a file now");
    F(b, "d/.wh.a", "");
    F(b, "d/.wh..wh..opq", "");
}

/* Writes through a symlink of the same layer whose target climbs with "..": the file lands where
 * the link resolves, in the stored layer as when applied (issue 13.2). */
static void dotdot_symlink_same_layer(layers *l)
{
    mar_buf *a = next(l);
    F(a, "base", "b");
    mar_buf *b = next(l);
    S(b, "a/up", "../t");
    F(b, "a/up/x", "x");
    S(b, "a/b/up", "../../u");
    F(b, "a/b/up/y", "y");
}

typedef struct scase {
    const char *name;
    void (*build)(layers *l);
} scase;

static const scase cases[] = {
        {"usrmerge", usrmerge},
        {"implied-metadata", implied_metadata},
        {"hardlink-lower", hardlink_lower},
        {"whiteout-through-symlink", whiteout_through_symlink},
        {"opaque-dir", opaque_dir},
        {"absolute-symlink-lower", absolute_symlink_lower},
        {"chained-symlinks", chained_symlinks},
        {"deep-implied", deep_implied},
        {"type-changes", type_changes},
        {"whiteout-readd", three_layers_whiteout_readd},
        {"dir-to-file-whiteouts", dir_to_file_whiteouts},
        {"dotdot-symlink", dotdot_symlink_same_layer},
};

/* ---- running -------------------------------------------------------------------------------- */

static int memfd_of(const mar_buf *b)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b->data, b->len), (ssize_t)b->len);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void mkdir_p(const char *p)
{
    assert_int_equal(mkdir(p, 0700) == 0 || errno == EEXIST, 1);
}

static void run(const scase *k, const char *T)
{
    layers l = {.n = 0};
    k->build(&l);
    for (size_t i = 0; i < l.n; i++) {
        tarw_finish(&l.tar[i]);
    }
    _cleanup_free_ char *dir = mar_xasprintf("%s/%s", T, k->name);
    _cleanup_free_ char *flat = mar_xasprintf("%s/flat", dir);
    _cleanup_free_ char *mnt = mar_xasprintf("%s/mnt", dir);
    mkdir_p(dir);
    mkdir_p(flat);
    mkdir_p(mnt);

    mar_err *err = NULL;
    _cleanup_close_ int flatfd = mar_root_open(flat, &err);
    assert_true(flatfd >= 0);
    int lfd[MAXL];
    mar_buf lower = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < l.n; i++) {
        _cleanup_close_ int b1 = memfd_of(&l.tar[i]);
        oci_unpack_opts ao = {.mode = OCI_UNPACK_APPLY};
        oci_unpack_result ar;
        if (oci_unpack(b1, flatfd, &ao, &ar, &err) < 0) {
            fail_msg("%s: apply layer %zu: %s", k->name, i, err->msg);
        }
        oci_unpack_result_release(&ar);

        _cleanup_free_ char *ld = mar_xasprintf("%s/l%zu", dir, i);
        mkdir_p(ld);
        lfd[i] = mar_root_open(ld, &err);
        assert_true(lfd[i] >= 0);
        _cleanup_close_ int b2 = memfd_of(&l.tar[i]);
        oci_unpack_opts lo = {.mode = OCI_UNPACK_LAYER};
        oci_unpack_result lr;
        if (oci_unpack(b2, lfd[i], &lo, &lr, &err) < 0) {
            fail_msg("%s: layer %zu: %s", k->name, i, err->msg);
        }
        /* Lowers, top first. */
        int lowers[MAXL];
        for (size_t j = 0; j < i; j++) {
            lowers[j] = lfd[i - 1 - j];
        }
        oci_lview v = {.fds = lowers, .n = i};
        oci_settle_stats st;
        if (oci_layer_settle(lfd[i], &v, &lr, &st, &err) < 0) {
            fail_msg("%s: settle layer %zu: %s", k->name, i, err->msg);
        }
        oci_unpack_result_release(&lr);
        T_BUF(mar_buf_printf(&lower, "%s%s", i ? ":" : "", ld));
    }
    /* overlayfs lists lowerdir top first. */
    mar_buf opts = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_puts(&opts, "lowerdir="));
    for (size_t i = l.n; i > 0; i--) {
        T_BUF(mar_buf_printf(&opts, "%s%s/l%zu", i == l.n ? "" : ":", dir, i - 1));
    }
    if (mount("overlay", mnt, "overlay", MS_RDONLY, opts.data) < 0) {
        fail_msg("%s: mount overlay (%s): %s", k->name, opts.data, strerror(errno));
    }
    _cleanup_free_ char *a = tree_listing(flat, TREE_INODES);
    _cleanup_free_ char *b = tree_listing(mnt, TREE_INODES);
    assert_non_null(a);
    assert_non_null(b);
    bool same = tree_equal(a, b, "flattened", "overlay");

    /* The user-space view agrees with the mount on every regular file of the flat tree. */
    int top[MAXL];
    for (size_t j = 0; j < l.n; j++) {
        top[j] = lfd[l.n - 1 - j];
    }
    oci_lview v = {.fds = top, .n = l.n};
    size_t files = 0;
    for (char *line = a; line && *line;) {
        char *nl = strchr(line, '\n');
        char *sp = strchr(line, ' ');
        if (sp && sp[1] == 'f') {
            _cleanup_free_ char *path = mar_xstrndup(line, (size_t)(sp - line));
            mar_buf got = MAR_BUF_INIT(1 << 20);
            if (oci_lview_read(&v, path, 1 << 20, &got, &err) < 0) {
                fail_msg("%s: lview read '%s': %s", k->name, path, err->msg);
            }
            _cleanup_free_ char *fp = mar_xasprintf("%s/%s", flat, path);
            mar_buf want = MAR_BUF_INIT(1 << 20);
            assert_int_equal(mar_read_file_at(AT_FDCWD, fp, 1 << 20, &want, NULL), 0);
            assert_int_equal(got.len, want.len);
            assert_memory_equal(got.data, want.data, got.len);
            mar_buf_release(&got);
            mar_buf_release(&want);
            files++;
        }
        line = nl ? nl + 1 : NULL;
    }
    assert_true(files > 0);

    umount2(mnt, MNT_DETACH);
    for (size_t i = 0; i < l.n; i++) {
        close(lfd[i]);
        mar_buf_release(&l.tar[i]);
    }
    mar_buf_release(&opts);
    mar_buf_release(&lower);
    if (!same) {
        fail_msg("%s: the overlay mount differs from the flattened tree", k->name);
    }
}

static void test_cases(void **state)
{
    (void)state;
    char T[] = "/tmp/mar-settle-XXXXXX";
    assert_non_null(mkdtemp(T));
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        run(&cases[i], T);
    }
    char *argv[] = {"rm", "-rf", T, NULL};
    mar_proc_result pr;
    assert_int_equal(mar_proc_run(argv, NULL, 0, 4096, 4096, 60000, &pr, NULL), 0);
    mar_proc_result_release(&pr);
}

/* A hard link to a file no layer has is refused when settling, as applying refuses it. */
static void test_link_to_nothing(void **state)
{
    (void)state;
    char T[] = "/tmp/mar-settle-XXXXXX";
    assert_non_null(mkdtemp(T));
    mar_buf t = MAR_BUF_INIT(MAR_BUF_NOCAP);
    H(&t, "l", "etc/shadow");
    tarw_finish(&t);
    mar_err *err = NULL;
    _cleanup_close_ int fd = mar_root_open(T, &err);
    _cleanup_close_ int b = memfd_of(&t);
    oci_unpack_opts o = {.mode = OCI_UNPACK_LAYER};
    oci_unpack_result r;
    assert_int_equal(oci_unpack(b, fd, &o, &r, &err), 0);
    assert_int_equal(r.deferred_links.n, 2);
    oci_lview v = {.fds = NULL, .n = 0};
    assert_int_equal(oci_layer_settle(fd, &v, &r, NULL, &err), -MAR_EINTEGRITY);
    assert_non_null(strstr(err->msg, "in no layer"));
    mar_err_free(err);
    oci_unpack_result_release(&r);
    mar_buf_release(&t);
    rmdir(T);
}

/* The merged view follows at most MAR_SYMLINK_HOPS links, wherever in the layers each one lies;
 * one more is a loop. */
static void test_lview_symlink_hops(void **state)
{
    (void)state;
    char T[] = "/tmp/mar-settle-XXXXXX";
    assert_non_null(mkdtemp(T));
    int fds[2];
    for (int k = 0; k < 2; k++) {
        _cleanup_free_ char *ld = mar_xasprintf("%s/l%d", T, k);
        assert_int_equal(mkdir(ld, 0755), 0);
        fds[k] = open(ld, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fds[k] >= 0);
    }
    /* Lower (fds[1]): d/f and the even links; upper (fds[0]): the odd ones. l<i> reaches d
     * after i + 1 links. */
    assert_int_equal(mkdirat(fds[1], "d", 0755), 0);
    int f = openat(fds[1], "d/f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(f >= 0);
    assert_int_equal(write(f, "x", 1), 1);
    close(f);
    for (int i = 0; i <= MAR_SYMLINK_HOPS; i++) {
        char name[32], target[32];
        snprintf(name, sizeof(name), "l%d", i);
        snprintf(target, sizeof(target), i ? "./l%d" : "/../d", i - 1);
        assert_int_equal(symlinkat(target, fds[i % 2 ? 0 : 1], name), 0);
    }
    oci_lview v = {.fds = fds, .n = 2};
    mar_err *err = NULL;
    char path[32];
    snprintf(path, sizeof(path), "l%d/f", MAR_SYMLINK_HOPS - 1);
    char *resolved = NULL;
    bool exists = false;
    assert_int_equal(oci_lview_resolve(&v, path, true, &resolved, &exists, &err), 0);
    assert_string_equal(resolved, "d/f");
    assert_true(exists);
    free(resolved);
    snprintf(path, sizeof(path), "l%d", MAR_SYMLINK_HOPS - 1);
    assert_int_equal(oci_lview_resolve(&v, path, true, &resolved, &exists, &err), 0);
    assert_string_equal(resolved, "d");
    free(resolved);
    snprintf(path, sizeof(path), "/l%d/f", MAR_SYMLINK_HOPS);
    assert_int_equal(oci_lview_resolve(&v, path, true, &resolved, &exists, &err), -MAR_EINTEGRITY);
    assert_int_equal(err->sys_errno, ELOOP);
    err = mar_err_free(err);
    /* Not following the last component, the longer chain is only a name. */
    snprintf(path, sizeof(path), "l%d", MAR_SYMLINK_HOPS);
    assert_int_equal(oci_lview_resolve(&v, path, false, &resolved, &exists, &err), 0);
    assert_string_equal(resolved, path);
    free(resolved);
    close(fds[0]);
    close(fds[1]);
    char *argv[] = {"rm", "-rf", T, NULL};
    mar_proc_result pr;
    assert_int_equal(mar_proc_run(argv, NULL, 0, 4096, 4096, 60000, &pr, NULL), 0);
    mar_proc_result_release(&pr);
}

static int setup(void **state)
{
    (void)state;
    if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
        mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
        fprintf(stderr, "skip: needs root for overlay mounts and whiteout devices\n");
        exit(77);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cases),
            cmocka_unit_test(test_link_to_nothing),
            cmocka_unit_test(test_lview_symlink_hops),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
