/* The layer reader: codecs sniffed by magic, DiffIDs over the whole uncompressed stream, name
 * cleaning and refusals, whiteouts, caps (bombs, PAX records), trailing data; bzip2 and xz only
 * for archives (oci_archive_open). Layers are built by
 * the tests' tar writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "oci/oci.h"
#include "tbuf.h"
#include "tarw.h"

static int memfd_of(const mar_buf *b)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    assert_true(fd >= 0);
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(fd, b->data + off, b->len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

typedef enum { RAW, GZ, ZS } codec;

static void compress(const mar_buf *tar, codec c, mar_buf *out)
{
    mar_buf_init(out, MAR_BUF_NOCAP);
    if (c == GZ) {
        tarw_gzip(tar, out);
    } else if (c == ZS) {
        tarw_zstd(tar, out);
    } else {
        T_BUF(mar_buf_append(out, tar->data, tar->len));
    }
}

typedef int (*open_fn)(int fd, const oci_layer_limits *lim, oci_layer_reader **ret, mar_err **err);

/* Reads every entry into a text listing "kind path [-> link] [=data]", the blob opened with
 * open (oci_layer_open, or oci_archive_open). */
static int list_with(open_fn open, const mar_buf *blob, const oci_layer_limits *lim, mar_buf *out,
                     mar_digest *diff, mar_err **err)
{
    int fd = memfd_of(blob);
    oci_layer_reader *r = NULL;
    int rc = open(fd, lim, &r, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    static const char *const kinds[] = {"file", "dir",  "symlink",  "hardlink", "char", "block",
                                        "fifo", "sock", "whiteout", "opaque",   "aufs"};
    const oci_layer_entry *e;
    while ((rc = oci_layer_next(r, &e, err)) == 1) {
        T_BUF(mar_buf_printf(out, "%s %s", kinds[e->kind], e->path));
        if (e->link) {
            T_BUF(mar_buf_printf(out, " -> %s", e->link));
        }
        if (e->kind == OCI_ENTRY_FILE && e->size > 0) {
            char data[64];
            ssize_t n = oci_layer_read(r, data, sizeof(data) - 1, err);
            if (n < 0) {
                rc = (int)n;
                break;
            }
            data[n] = '\0';
            T_BUF(mar_buf_printf(out, " =%s", data));
        }
        T_BUF(mar_buf_puts(out, "\n"));
    }
    if (rc == 0) {
        rc = oci_layer_finish(r, diff, NULL, err);
    }
    oci_layer_free(r);
    close(fd);
    return rc;
}

static int list(const mar_buf *blob, const oci_layer_limits *lim, mar_buf *out, mar_digest *diff,
                mar_err **err)
{
    return list_with(oci_layer_open, blob, lim, out, diff, err);
}

/* in through a compressor program (bzip2 or xz) into out. */
static void compress_with(const char *prog, const mar_buf *in, mar_buf *out)
{
    char *argv[] = {(char *)prog, "-c", NULL};
    mar_proc_result pr;
    mar_err *e = NULL;
    if (mar_proc_run(argv, in->data, in->len, 256u << 20, 1u << 16, 60000, &pr, &e) < 0) {
        fail_msg("%s: %s", prog, e->msg);
    }
    assert_int_equal(pr.status, 0);
    mar_buf_init(out, MAR_BUF_NOCAP);
    T_BUF(mar_buf_append(out, pr.out.data, pr.out.len));
    mar_proc_result_release(&pr);
}

static void base_tar(mar_buf *t)
{
    mar_buf_init(t, MAR_BUF_NOCAP);
    tarw_add(t, &(tarw_entry){.name = "./", .type = '5', .mode = 0755});
    tarw_add(t, &(tarw_entry){.name = "/etc//", .type = '5', .mode = 0755});
    tarw_add(t, &(tarw_entry){.name = "./etc/passwd",
                              .type = '0',
                              .mode = 0644,
                              .data = "root:x:0:0",
                              .size = 10});
    tarw_add(t, &(tarw_entry){.name = "bin/sh", .type = '2', .linkname = "/bin/busybox"});
    tarw_add(t, &(tarw_entry){.name = "bin/ash", .type = '1', .linkname = "./bin/../bin/sh"});
    tarw_add(t, &(tarw_entry){.name = "data/.wh.gone", .type = '0', .mode = 0644});
    tarw_add(t, &(tarw_entry){.name = "data/opaque/.wh..wh..opq", .type = '0', .mode = 0644});
    tarw_add(t, &(tarw_entry){.name = ".wh..wh.plnk/1234", .type = '0', .mode = 0644});
    tarw_add(t, &(tarw_entry){.name = "data/.wh..wh.aufs", .type = '0', .mode = 0644});
    tarw_add(t,
             &(tarw_entry){
                     .name = ".wh.etc/literal", .type = '0', .mode = 0644, .data = "x", .size = 1});
    tarw_finish(t);
}

static const char base_listing[] = "dir etc\n"
                                   "file etc/passwd =root:x:0:0\n"
                                   "symlink bin/sh -> /bin/busybox\n"
                                   "hardlink bin/ash -> bin/sh\n"
                                   "whiteout data/gone\n"
                                   "opaque data/opaque\n"
                                   "file .wh..wh.plnk/1234\n"
                                   "aufs data/.wh..wh.aufs\n"
                                   "file .wh.etc/literal =x\n";

static void test_codecs_and_diff_id(void **state)
{
    (void)state;
    mar_buf tar;
    base_tar(&tar);
    mar_digest want;
    mar_digest_of(MAR_DIGEST_SHA256, tar.data, tar.len, &want);
    for (codec c = RAW; c <= ZS; c++) {
        mar_buf blob, out = MAR_BUF_INIT(1 << 20);
        compress(&tar, c, &blob);
        mar_digest got;
        mar_err *e = NULL;
        if (list(&blob, NULL, &out, &got, &e) != 0) {
            print_error("codec %d: %s\n", (int)c, e->msg);
            fail();
        }
        assert_string_equal(out.data, base_listing);
        assert_string_equal(got.str, want.str);
        mar_buf_release(&out);
        mar_buf_release(&blob);
    }
    mar_buf_release(&tar);
}

static void test_trailing_data(void **state)
{
    (void)state;
    mar_buf tar;
    base_tar(&tar);
    mar_digest want, got;
    mar_err *e = NULL;
    /* Padding inside the uncompressed stream, past the end blocks, is part of the DiffID. */
    mar_buf padded = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_append(&padded, tar.data, tar.len));
    char zeros[5120] = {0};
    T_BUF(mar_buf_append(&padded, zeros, sizeof(zeros)));
    mar_digest_of(MAR_DIGEST_SHA256, padded.data, padded.len, &want);
    mar_buf gz, out = MAR_BUF_INIT(1 << 20);
    compress(&padded, GZ, &gz);
    assert_int_equal(list(&gz, NULL, &out, &got, &e), 0);
    assert_string_equal(got.str, want.str);
    mar_buf_release(&out);

    /* NUL padding after the gzip member: accepted (some generators add it). */
    T_BUF(mar_buf_append(&gz, zeros, 700));
    assert_int_equal(list(&gz, NULL, &out, &got, &e), 0);
    assert_string_equal(got.str, want.str);
    mar_buf_release(&out);

    /* Two gzip members are one stream. */
    mar_buf half1 = MAR_BUF_INIT(MAR_BUF_NOCAP), half2 = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_append(&half1, padded.data, 1024));
    T_BUF(mar_buf_append(&half2, padded.data + 1024, padded.len - 1024));
    mar_buf two;
    compress(&half1, GZ, &two);
    mar_buf g2;
    compress(&half2, GZ, &g2);
    T_BUF(mar_buf_append(&two, g2.data, g2.len));
    assert_int_equal(list(&two, NULL, &out, &got, &e), 0);
    assert_string_equal(got.str, want.str);
    mar_buf_release(&out);

    /* Garbage after the gzip member: refused. */
    T_BUF(mar_buf_append(&gz, "garbage", 7));
    assert_int_equal(list(&gz, NULL, &out, &got, &e), -MAR_EINTEGRITY);
    assert_non_null(strstr(e->msg, "after the gzip stream"));
    e = mar_err_free(e);
    mar_buf_release(&out);

    /* zstd with NUL padding after the frame. */
    mar_buf zs;
    compress(&padded, ZS, &zs);
    T_BUF(mar_buf_append(&zs, zeros, 100));
    assert_int_equal(list(&zs, NULL, &out, &got, &e), 0);
    assert_string_equal(got.str, want.str);
    mar_buf_release(&out);
    mar_buf_release(&zs);
    mar_buf_release(&gz);
    mar_buf_release(&two);
    mar_buf_release(&g2);
    mar_buf_release(&half1);
    mar_buf_release(&half2);
    mar_buf_release(&padded);
    mar_buf_release(&tar);
}

static void test_truncated_and_foreign(void **state)
{
    (void)state;
    mar_buf tar;
    base_tar(&tar);
    mar_digest got;
    mar_err *e = NULL;
    for (codec c = GZ; c <= ZS; c++) {
        mar_buf blob, out = MAR_BUF_INIT(1 << 20);
        compress(&tar, c, &blob);
        mar_buf_truncate(&blob, blob.len / 2);
        assert_int_equal(list(&blob, NULL, &out, &got, &e), -MAR_EINTEGRITY);
        assert_non_null(strstr(e->msg, "truncated"));
        e = mar_err_free(e);
        mar_buf_release(&out);
        mar_buf_release(&blob);
    }
    mar_buf xz = MAR_BUF_INIT(100), out = MAR_BUF_INIT(1 << 20);
    T_BUF(mar_buf_append(&xz,
                         "\xfd"
                         "7zXZ\0\0\0\0\0\0",
                         12));
    assert_int_equal(list(&xz, NULL, &out, &got, &e), -MAR_EUNSUPPORTED);
    assert_non_null(strstr(e->msg, "xz"));
    e = mar_err_free(e);
    mar_buf_release(&xz);
    mar_buf junk = MAR_BUF_INIT(4096);
    for (int i = 0; i < 2048; i++) {
        char ch = (char)('a' + i % 26);
        T_BUF(mar_buf_append(&junk, &ch, 1));
    }
    assert_true(list(&junk, NULL, &out, &got, &e) < 0);
    e = mar_err_free(e);
    mar_buf_release(&junk);
    mar_buf_release(&tar);
}

static int one_entry(const tarw_entry *te, bool raw, mar_err **e)
{
    mar_buf t = MAR_BUF_INIT(MAR_BUF_NOCAP), out = MAR_BUF_INIT(1 << 20);
    if (raw) {
        tarw_add_raw(&t, te);
    } else {
        tarw_add(&t, te);
    }
    tarw_finish(&t);
    mar_digest d;
    int rc = list(&t, NULL, &out, &d, e);
    mar_buf_release(&t);
    mar_buf_release(&out);
    return rc;
}

static void test_refused_names(void **state)
{
    (void)state;
    static const char *const bad[] = {"../../etc/passwd", "a/../../x", "..", "/../x"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(bad); i++) {
        mar_err *e = NULL;
        int rc = one_entry(&(tarw_entry){.name = bad[i], .type = '0', .mode = 0644}, false, &e);
        if (rc != -MAR_EINTEGRITY) {
            print_error("'%s' was not refused\n", bad[i]);
            fail();
        }
        mar_err_free(e);
    }
    mar_err *e = NULL;
    /* Whiteouts aimed at the directory itself or above. */
    static const char *const badwh[] = {".wh..", "etc/.wh..", ".wh...", ".wh."};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(badwh); i++) {
        int rc = one_entry(&(tarw_entry){.name = badwh[i], .type = '0', .mode = 0644}, false, &e);
        if (rc != -MAR_EINTEGRITY) {
            print_error("whiteout '%s' was not refused\n", badwh[i]);
            fail();
        }
        e = mar_err_free(e);
    }
    /* A symlink standing for the root. */
    assert_int_equal(one_entry(&(tarw_entry){.name = ".", .type = '2', .linkname = "/"}, false, &e),
                     -MAR_EINTEGRITY);
    e = mar_err_free(e);
    /* Components over 255 bytes and paths over 4096. */
    char longc[300];
    memset(longc, 'a', sizeof(longc) - 1);
    longc[sizeof(longc) - 1] = '\0';
    assert_int_equal(one_entry(&(tarw_entry){.name = longc, .type = '0'}, false, &e),
                     -MAR_EINTEGRITY);
    e = mar_err_free(e);
    mar_buf lp = MAR_BUF_INIT(MAR_BUF_NOCAP);
    while (lp.len < 5000) {
        T_BUF(mar_buf_puts(&lp, "abcdefgh/"));
    }
    T_BUF(mar_buf_puts(&lp, "f"));
    assert_int_equal(one_entry(&(tarw_entry){.name = lp.data, .type = '0'}, false, &e),
                     -MAR_EINTEGRITY);
    e = mar_err_free(e);
    mar_buf_release(&lp);
    /* A PAX path= climbing out over a benign ustar name. */
    const char *pax[] = {"path=../x", NULL};
    assert_int_equal(one_entry(&(tarw_entry){.name = "benign", .type = '0', .pax = pax}, false, &e),
                     -MAR_EINTEGRITY);
    e = mar_err_free(e);
    /* Cleaning that stays inside is fine. */
    assert_int_equal(one_entry(&(tarw_entry){.name = "a/../b", .type = '0'}, false, &e), 0);
}

static void test_caps(void **state)
{
    (void)state;
    mar_err *e = NULL;
    /* A 1.5 MiB PAX record. */
    mar_buf big = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_puts(&big, "SCHILY.xattr.user.x="));
    while (big.len < (3u << 19)) {
        T_BUF(mar_buf_puts(&big, "0123456789abcdef"));
    }
    const char *pax[] = {big.data, NULL};
    assert_int_equal(one_entry(&(tarw_entry){.name = "f", .type = '0', .pax = pax}, false, &e),
                     -MAR_EINTEGRITY);
    e = mar_err_free(e);
    mar_buf_release(&big);

    /* A gzip bomb: 64 MiB of zeros in 16 files, each under an 8 MiB cap that all of them
     * together exceed (one file over the cap is refused from its header alone). */
    mar_buf t = MAR_BUF_INIT(MAR_BUF_NOCAP);
    size_t n = 4u << 20;
    char *zeros = mar_xcalloc(1, n);
    for (int i = 0; i < 16; i++) {
        char name[16];
        snprintf(name, sizeof(name), "bomb%d", i);
        tarw_add(&t, &(tarw_entry){.name = name, .type = '0', .data = zeros, .size = n});
    }
    tarw_finish(&t);
    free(zeros);
    mar_buf gz;
    compress(&t, GZ, &gz);
    assert_true(gz.len < (1u << 20));
    oci_layer_limits lim;
    oci_layer_limits_default(&lim);
    lim.max_uncompressed = 8u << 20;
    mar_buf out = MAR_BUF_INIT(1 << 20);
    mar_digest d;
    int rc = list(&gz, &lim, &out, &d, &e);
    assert_true(rc < 0);
    assert_non_null(strstr(e->msg, "decompression bomb"));
    e = mar_err_free(e);
    /* The same stream read without its data still hits the cap in finish. */
    lim.max_entries = 0;
    assert_true(list(&gz, &lim, &out, &d, &e) < 0);
    mar_err_free(e);
    mar_buf_release(&gz);
    mar_buf_release(&t);
    mar_buf_release(&out);
}

/* Archives that are not layers (ADD): bzip2 and xz read through oci_archive_open with the same
 * listing and DiffID as the plain tar, never through oci_layer_open, and unpacked by oci_unpack
 * only with .archive; truncation, a stream that is no tar and a bomb against the cap refused. */
static void test_archive_codecs(void **state)
{
    (void)state;
    mar_buf tar;
    base_tar(&tar);
    mar_digest want;
    mar_digest_of(MAR_DIGEST_SHA256, tar.data, tar.len, &want);
    static const char *const progs[] = {"bzip2", "xz"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(progs); i++) {
        mar_buf blob, out = MAR_BUF_INIT(1 << 20);
        mar_digest got;
        mar_err *e = NULL;
        compress_with(progs[i], &tar, &blob);
        assert_int_equal(list_with(oci_archive_open, &blob, NULL, &out, &got, &e), 0);
        assert_string_equal(out.data, base_listing);
        assert_true(mar_digest_eq(&got, &want));
        mar_buf_truncate(&out, 0);
        assert_int_equal(list(&blob, NULL, &out, &got, &e), -MAR_EUNSUPPORTED);
        assert_non_null(strstr(e->msg, progs[i]));
        e = mar_err_free(e);
        /* oci_unpack reads it only as an archive. */
        char tmpl[] = "/tmp/mar-test-archive-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        int root = mar_root_open(tmpl, &e);
        assert_true(root >= 0);
        int bfd = memfd_of(&blob);
        oci_unpack_opts uo = {.mode = OCI_UNPACK_APPLY};
        oci_unpack_result res;
        assert_int_equal(oci_unpack(bfd, root, &uo, &res, &e), -MAR_EUNSUPPORTED);
        e = mar_err_free(e);
        oci_unpack_result_release(&res);
        uo.archive = true;
        lseek(bfd, 0, SEEK_SET);
        assert_int_equal(oci_unpack(bfd, root, &uo, &res, &e), 0);
        assert_true(mar_digest_eq(&res.diff_id, &want));
        oci_unpack_result_release(&res);
        mar_buf passwd = MAR_BUF_INIT(4096);
        assert_int_equal(mar_read_file_at(root, "etc/passwd", 4096, &passwd, &e), 0);
        assert_string_equal(passwd.data, "root:x:0:0");
        mar_buf_release(&passwd);
        close(bfd);
        close(root);
        assert_int_equal(oci_remove_at(AT_FDCWD, tmpl, &e), 0);
        mar_buf_truncate(&blob, blob.len / 2);
        assert_int_equal(list_with(oci_archive_open, &blob, NULL, &out, &got, &e), -MAR_EINTEGRITY);
        assert_non_null(strstr(e->msg, progs[i]));
        e = mar_err_free(e);
        mar_buf_release(&blob);
        /* A compressed text is no tar. */
        mar_buf text = MAR_BUF_INIT(MAR_BUF_NOCAP);
        for (int k = 0; k < 200; k++) {
            T_BUF(mar_buf_puts(&text, "not a tar archive at all\n"));
        }
        compress_with(progs[i], &text, &blob);
        assert_int_equal(list_with(oci_archive_open, &blob, NULL, &out, &got, &e), -MAR_EINTEGRITY);
        assert_non_null(strstr(e->msg, "not a tar"));
        e = mar_err_free(e);
        mar_buf_release(&blob);
        mar_buf_release(&text);
        /* 64 MiB of zeros against an 8 MiB cap. */
        mar_buf t = MAR_BUF_INIT(MAR_BUF_NOCAP);
        size_t n = 4u << 20;
        char *zeros = mar_xcalloc(1, n);
        for (int k = 0; k < 16; k++) {
            char name[16];
            snprintf(name, sizeof(name), "bomb%d", k);
            tarw_add(&t, &(tarw_entry){.name = name, .type = '0', .data = zeros, .size = n});
        }
        tarw_finish(&t);
        free(zeros);
        compress_with(progs[i], &t, &blob);
        assert_true(blob.len < (1u << 20));
        oci_layer_limits lim;
        oci_layer_limits_default(&lim);
        lim.max_uncompressed = 8u << 20;
        assert_true(list_with(oci_archive_open, &blob, &lim, &out, &got, &e) < 0);
        assert_non_null(strstr(e->msg, "decompression bomb"));
        e = mar_err_free(e);
        mar_buf_release(&blob);
        mar_buf_release(&t);
        mar_buf_release(&out);
    }
    mar_buf_release(&tar);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_codecs_and_diff_id),
            cmocka_unit_test(test_trailing_data),
            cmocka_unit_test(test_truncated_and_foreign),
            cmocka_unit_test(test_refused_names),
            cmocka_unit_test(test_caps),
            cmocka_unit_test(test_archive_codecs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
