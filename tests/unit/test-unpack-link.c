/* oci_unpack with link_from (what mar build does with the tree a layer was just written from):
 * the layer directory it gives must be the one a plain unpack of the same blob gives — same
 * entries, contents, modes, owners, times and xattrs — while its regular files are the tree's
 * inodes, not new ones. A tree file whose size no longer matches its entry is written instead,
 * and xattrs the layer does not carry (overlay's own) do not follow the inode into the layer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "oci/oci.h"
#include "treecmp.h"

#include <fcntl.h>
#include <stdlib.h>
#include <ftw.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/xattr.h>

static char T[] = "/tmp/mar-unpack-link-XXXXXX";

static void put(const char *rel, const char *data, mode_t mode, time_t mtime)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/tree/%s", T, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    assert_int_equal(fchmod(fd, mode), 0);
    struct timespec ts[2] = {{mtime, 5}, {mtime, 5}};
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

static mar_buf meta;

/* Owner, mode, mtime and xattrs of every entry: what tree_listing leaves out. */
static int meta_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)flag;
    (void)f;
    const char *root = strstr(path, "/out-");
    root = root ? strchr(root + 1, '/') : NULL;
    mar_buf_xprintf(&meta, "%s %o %u:%u %lld.%09ld", root ? root : ".", (unsigned)st->st_mode,
                    (unsigned)st->st_uid, (unsigned)st->st_gid, (long long)st->st_mtim.tv_sec,
                    S_ISDIR(st->st_mode) ? 0L : st->st_mtim.tv_nsec);
    char names[1024];
    ssize_t n = llistxattr(path, names, sizeof(names));
    for (ssize_t o = 0; n > 0 && o < n; o += (ssize_t)strlen(names + o) + 1) {
        char v[256];
        ssize_t k = lgetxattr(path, names + o, v, sizeof(v) - 1);
        v[k > 0 ? k : 0] = '\0';
        mar_buf_xprintf(&meta, " %s=%s", names + o, v);
    }
    mar_buf_xputs(&meta, "\n");
    return 0;
}

static char *meta_listing(const char *root)
{
    mar_buf_init(&meta, MAR_BUF_NOCAP);
    assert_int_equal(nftw(root, meta_one, 16, FTW_PHYS), 0);
    return mar_buf_detach(&meta, NULL);
}

static void unpack(const char *blob, const mar_digest *diff_id, const char *out, const int *tree)
{
    _cleanup_free_ char *dir = mar_xasprintf("%s/%s", T, out);
    assert_int_equal(mkdir(dir, 0755), 0);
    mar_err *err = NULL;
    _cleanup_close_ int rfd = mar_root_open(dir, &err);
    assert_true(rfd >= 0);
    _cleanup_close_ int bfd = open(blob, O_RDONLY | O_CLOEXEC);
    oci_unpack_opts uo = {.mode = OCI_UNPACK_LAYER, .expect_diff_id = diff_id, .link_from = tree};
    oci_unpack_result res;
    if (oci_unpack(bfd, rfd, &uo, &res, &err) < 0) {
        fail_msg("oci_unpack: %s", err->msg);
    }
    oci_unpack_result_release(&res);
}

static ino_t inode(const char *rel)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", T, rel);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    return st.st_ino;
}

static void test_link_equals_write(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip(); /* chown to other owners, trusted.* xattrs */
    }
    assert_non_null(mkdtemp(T));
    _cleanup_free_ char *tree = mar_xasprintf("%s/tree", T);
    _cleanup_free_ char *sub = mar_xasprintf("%s/tree/sub", T);
    assert_int_equal(mkdir(tree, 0755), 0);
    assert_int_equal(mkdir(sub, 0750), 0);
    put("plain", "plain\n", 0644, 1600000000);
    put("sub/setuid", "#!/bin/sh\n", 04755, 1600000001);
    put("sub/owned", "owned\n", 0600, 1600000002);
    put("capped", "cap\n", 0755, 1600000003);
    put("overlaid", "copied up\n", 0644, 1600000004);
    _cleanup_free_ char *owned = mar_xasprintf("%s/tree/sub/owned", T);
    assert_int_equal(chown(owned, 1234, 5678), 0);
    _cleanup_free_ char *capped = mar_xasprintf("%s/tree/capped", T);
    assert_int_equal(setxattr(capped, "user.note", "kept", 4, 0), 0);
    /* overlayfs marks copied-up files; the layer does not carry it, so neither may the link. */
    _cleanup_free_ char *ov = mar_xasprintf("%s/tree/overlaid", T);
    assert_int_equal(setxattr(ov, "trusted.overlay.origin", "x", 1, 0), 0);
    _cleanup_free_ char *hl = mar_xasprintf("%s/tree/sub/hardlink", T);
    assert_int_equal(link(owned, hl), 0);
    _cleanup_free_ char *sl = mar_xasprintf("%s/tree/link", T);
    assert_int_equal(symlink("plain", sl), 0);

    oci_layer_write_opts wo = OCI_LAYER_WRITE_OPTS_INIT;
    wo.codec = OCI_CODEC_GZIP;
    _cleanup_free_ char *blob = mar_xasprintf("%s/blob", T);
    _cleanup_close_ int ofd = open(blob, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    _cleanup_close_ int tfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    oci_layer_written w;
    mar_err *err = NULL;
    if (oci_layer_write_dir(tfd, &wo, ofd, &w, &err) < 0) {
        fail_msg("oci_layer_write_dir: %s", err->msg);
    }

    unpack(blob, &w.diff_id, "out-written", NULL);
    /* Since the blob was written, one file changed size: it cannot be linked. */
    put("plain", "plain, longer now\n", 0644, 1600000000);
    unpack(blob, &w.diff_id, "out-linked", &tfd);

    _cleanup_free_ char *dw = mar_xasprintf("%s/out-written", T);
    _cleanup_free_ char *dl = mar_xasprintf("%s/out-linked", T);
    _cleanup_free_ char *lw = tree_listing(dw, TREE_INODES);
    _cleanup_free_ char *ll = tree_listing(dl, TREE_INODES);
    assert_true(tree_equal(lw, ll, "written", "linked"));
    _cleanup_free_ char *mw = meta_listing(dw);
    _cleanup_free_ char *ml = meta_listing(dl);
    assert_string_equal(mw, ml);
    assert_non_null(strstr(ml, "user.note=kept"));
    assert_null(strstr(ml, "trusted.overlay"));

    /* The same inodes as the tree, but for the file that changed. */
    assert_int_equal(inode("out-linked/sub/setuid"), inode("tree/sub/setuid"));
    assert_int_equal(inode("out-linked/sub/owned"), inode("tree/sub/owned"));
    assert_int_equal(inode("out-linked/sub/hardlink"), inode("out-linked/sub/owned"));
    assert_int_equal(inode("out-linked/overlaid"), inode("tree/overlaid"));
    assert_int_not_equal(inode("out-linked/plain"), inode("tree/plain"));
    assert_int_not_equal(inode("out-written/sub/setuid"), inode("tree/sub/setuid"));

    _cleanup_free_ char *rm = mar_xasprintf("rm -rf '%s'", T);
    assert_int_equal(system(rm), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_link_equals_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
