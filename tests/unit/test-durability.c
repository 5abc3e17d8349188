/* Failures that must not pass silently: a directory fsync after a rename into the store, and the
 * directory modes and times an unpack sets last. The kernel rarely fails these calls on demand,
 * so mar_test_fault (util/util.h) makes the named call fail with the errno chosen here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "registry/registry.h"
#include "tarw.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *fail_site; /* the site that fails, NULL for none */
static int fail_count;        /* how often it was asked */

static int fault(const char *site)
{
    if (fail_site && strcmp(site, fail_site) == 0) {
        fail_count++;
        return EIO;
    }
    return 0;
}

static char *scratch(void)
{
    char *t = mar_xstrdup("/tmp/mar-durability-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

static void rm_rf(const char *path)
{
    _cleanup_free_ char *cmd = mar_xasprintf(
            "[ ! -e '%s' ] || { chmod -R u+rwx '%s' && rm -rf '%s'; }", path, path, path);
    assert_int_equal(system(cmd), 0);
}

static void set_fault(const char *site)
{
    fail_site = site;
    fail_count = 0;
    mar_test_fault = fault;
}

static int teardown(void **state)
{
    (void)state;
    mar_test_fault = NULL;
    fail_site = NULL;
    return 0;
}

/* A new store writes oci-layout and index.json atomically: a failed sync of the store directory
 * fails the open. */
static void test_store_open_dirsync(void **state)
{
    (void)state;
    _cleanup_free_ char *t = scratch();
    _cleanup_free_ char *path = mar_xasprintf("%s/store", t);
    set_fault("store-dirsync");
    mar_err *e = NULL;
    reg_store *s = NULL;
    assert_int_equal(reg_store_open(path, &s, &e), -MAR_EIO);
    assert_null(s);
    assert_int_equal(fail_count, 1);
    assert_non_null(strstr(e->msg, "cannot sync the directory"));
    assert_non_null(strstr(e->msg, "Input/output error"));
    e = mar_err_free(e);

    mar_test_fault = NULL;
    assert_int_equal(reg_store_open(path, &s, &e), 0);
    reg_store_free(s);
    rm_rf(t);
}

/* A blob committed into blobs/sha256 is not reported stored when the directory sync fails. */
static void test_blob_commit_dirsync(void **state)
{
    (void)state;
    _cleanup_free_ char *t = scratch();
    _cleanup_free_ char *path = mar_xasprintf("%s/store", t);
    mar_err *e = NULL;
    _cleanup_store_ reg_store *s = NULL;
    assert_int_equal(reg_store_open(path, &s, &e), 0);
    static const char blob[] = "durable?";
    mar_digest d;
    mar_digest_of(MAR_DIGEST_SHA256, blob, strlen(blob), &d);

    set_fault("store-dirsync");
    assert_int_equal(reg_store_put(s, &d, blob, strlen(blob), &e), -MAR_EIO);
    assert_int_equal(fail_count, 1);
    assert_non_null(strstr(e->msg, "blobs/sha256"));
    e = mar_err_free(e);

    mar_test_fault = NULL;
    assert_int_equal(reg_store_put(s, &d, blob, strlen(blob), &e), 0);
    rm_rf(t);
}

/* A layer renamed into unpack/ is not reported complete when unpack/ cannot be synced. */
static void test_layer_commit_dirsync(void **state)
{
    (void)state;
    _cleanup_free_ char *t = scratch();
    _cleanup_free_ char *path = mar_xasprintf("%s/store", t);
    mar_err *e = NULL;
    _cleanup_store_ reg_store *s = NULL;
    assert_int_equal(reg_store_open(path, &s, &e), 0);
    mar_digest chain;
    mar_digest_of(MAR_DIGEST_SHA256, "chain", 5, &chain);
    int lock = -1, rootfd = -1;
    assert_int_equal(reg_store_layer_begin(s, &chain, true, &lock, &rootfd, &e), 0);
    assert_true(lock >= 0 && rootfd >= 0);

    set_fault("store-dirsync");
    assert_int_equal(reg_store_layer_commit(s, &chain, "{}", &e), -MAR_EIO);
    assert_int_equal(fail_count, 1);
    assert_non_null(strstr(e->msg, "unpack"));
    e = mar_err_free(e);
    mar_test_fault = NULL;
    close(rootfd);
    close(lock);
    rm_rf(t);
}

/* One directory with mode 0750 and an old time, then a file in it. */
static void unpack_layer(const char *t, int expect_rc, const char *expect_msg)
{
    mar_buf tar = MAR_BUF_INIT(1 << 20);
    tarw_add(&tar, &(tarw_entry){.name = "d/", .type = '5', .mode = 0750, .mtime = 1000000});
    tarw_add(&tar, &(tarw_entry){.name = "d/f",
                                 .type = '0',
                                 .mode = 0644,
                                 .mtime = 1000000,
                                 .data = "x",
                                 .size = 1});
    tarw_finish(&tar);
    _cleanup_free_ char *blob = mar_xasprintf("%s/layer.tar", t);
    _cleanup_close_ int bfd = open(blob, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(bfd >= 0);
    assert_int_equal(write(bfd, tar.data, tar.len), (ssize_t)tar.len);
    assert_int_equal(lseek(bfd, 0, SEEK_SET), 0);
    mar_buf_release(&tar);

    _cleanup_free_ char *root = mar_xasprintf("%s/root", t);
    rm_rf(root);
    assert_int_equal(mkdir(root, 0755), 0);
    mar_err *e = NULL;
    _cleanup_close_ int rfd = mar_root_open(root, &e);
    assert_true(rfd >= 0);
    oci_unpack_opts uo = {.mode = OCI_UNPACK_APPLY};
    oci_unpack_result ur;
    int rc = oci_unpack(bfd, rfd, &uo, &ur, &e);
    assert_int_equal(rc, expect_rc);
    if (expect_msg) {
        assert_non_null(strstr(e->msg, expect_msg));
        e = mar_err_free(e);
    }
    oci_unpack_result_release(&ur);
}

static void test_unpack_fixups(void **state)
{
    (void)state;
    _cleanup_free_ char *t = scratch();
    set_fault("unpack-fixup-chmod");
    unpack_layer(t, -MAR_EIO, "cannot set the mode of directory 'd'");
    assert_int_equal(fail_count, 1);
    set_fault("unpack-fixup-times");
    unpack_layer(t, -MAR_EIO, "cannot set the times of directory 'd'");
    assert_int_equal(fail_count, 1);

    /* Without a fault the mode and the time are the layer's. */
    mar_test_fault = NULL;
    unpack_layer(t, 0, NULL);
    _cleanup_free_ char *d = mar_xasprintf("%s/root/d", t);
    struct stat st;
    assert_int_equal(stat(d, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(st.st_mtim.tv_sec, 1000000);
    rm_rf(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(test_store_open_dirsync, teardown),
            cmocka_unit_test_teardown(test_blob_commit_dirsync, teardown),
            cmocka_unit_test_teardown(test_layer_commit_dirsync, teardown),
            cmocka_unit_test_teardown(test_unpack_fixups, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
