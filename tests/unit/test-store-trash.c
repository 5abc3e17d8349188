/* The store's ways of not copying and not waiting (docs/internals/build.md §3): a finished file
 * adopted by an ingest commits under its digest only when the hash given matches, a directory
 * put in the trash leaves the store's namespace at once and is removed by a detached process,
 * and `mar gc` removes trash and work directories killed builds left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "registry/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *scratch(void)
{
    char *t = mar_xstrdup("/tmp/mar-trash-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

static void rm_rf(const char *path)
{
    _cleanup_free_ char *cmd = mar_xasprintf("rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static bool exists(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", dir, rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* A work directory with nested directories and files, as a build leaves. */
static void make_tree(const char *store, const char *rel)
{
    _cleanup_free_ char *top = mar_xasprintf("%s/%s", store, rel);
    assert_int_equal(mkdir(top, 0700), 0);
    for (int d = 0; d < 3; d++) {
        _cleanup_free_ char *dir = mar_xasprintf("%s/d%d", top, d);
        assert_int_equal(mkdir(dir, 0755), 0);
        _cleanup_free_ char *sub = mar_xasprintf("%s/sub", dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        for (int i = 0; i < 50; i++) {
            _cleanup_free_ char *f = mar_xasprintf("%s/f%d", i % 2 ? dir : sub, i);
            put_file(f, "content");
        }
    }
}

static bool dir_empty(const char *path)
{
    _cleanup_free_ char *cmd = mar_xasprintf("[ -z \"$(ls -A '%s')\" ]", path);
    return system(cmd) == 0;
}

static void test_adopt(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = scratch();
    reg_store *s = NULL;
    mar_err *e = NULL;
    assert_int_equal(reg_store_open(dir, &s, &e), 0);
    _cleanup_free_ char *cdir = mar_xasprintf("%s/containers", dir);
    assert_int_equal(mkdir(cdir, 0700), 0);
    static const char body[] = "a layer";
    mar_digest d, wrong;
    mar_digest_of(MAR_DIGEST_SHA256, body, sizeof(body) - 1, &d);
    mar_digest_of(MAR_DIGEST_SHA256, "other", 5, &wrong);
    for (int round = 0; round < 2; round++) {
        _cleanup_free_ char *f = mar_xasprintf("%s/blob.tmp", cdir);
        put_file(f, body);
        int cfd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int fd = open(f, O_RDONLY | O_CLOEXEC);
        assert_true(cfd >= 0 && fd >= 0);
        reg_ingest *g = NULL;
        assert_int_equal(reg_ingest_begin(s, &d, (int64_t)sizeof(body) - 1, true, &g, &e), 0);
        assert_non_null(g);
        assert_int_equal(reg_ingest_adopt(g, fd, cfd, "blob.tmp", &e), 0);
        assert_false(exists(cdir, "blob.tmp"));
        assert_int_equal(reg_ingest_offset(g), sizeof(body) - 1);
        if (round == 0) {
            /* A hash that is not the digest's: refused, nothing named. */
            assert_int_equal(reg_ingest_commit(g, &wrong, &e), -MAR_EINTEGRITY);
            mar_err_free(e);
            e = NULL;
            reg_ingest_discard(g);
            assert_false(reg_store_has(s, &d, -1));
        } else {
            assert_int_equal(reg_ingest_commit(g, &d, &e), 0);
            reg_ingest_free(g);
            assert_true(reg_store_has(s, &d, (int64_t)sizeof(body) - 1));
        }
        close(fd);
        close(cfd);
    }
    _cleanup_free_ char *ing = mar_xasprintf("%s/ingest", dir);
    assert_true(dir_empty(ing));
    reg_store_free(s);
    rm_rf(dir);
}

static void test_trash_and_gc(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = scratch();
    reg_store *s = NULL;
    mar_err *e = NULL;
    assert_int_equal(reg_store_open(dir, &s, &e), 0);
    _cleanup_free_ char *cdir = mar_xasprintf("%s/containers", dir);
    assert_int_equal(mkdir(cdir, 0700), 0);
    make_tree(dir, "containers/build-0123456789ab");
    assert_int_equal(reg_store_trash(s, "containers/build-0123456789ab", &e), 0);
    assert_false(exists(dir, "containers/build-0123456789ab"));
    assert_true(exists(dir, "trash"));
    /* The remover is detached; wait for it (not a timing assertion: it only bounds the wait). */
    _cleanup_free_ char *tdir = mar_xasprintf("%s/trash", dir);
    for (int i = 0; i < 600 && !dir_empty(tdir); i++) {
        usleep(50000);
    }
    assert_true(dir_empty(tdir));

    /* What a killed build and a killed remover leave. */
    make_tree(dir, "containers/build-ba9876543210");
    make_tree(dir, "trash/build-ffffffffffff-0000000a");
    make_tree(dir, "containers/kept");
    reg_gc_stats st;
    assert_int_equal(reg_store_gc(s, false, false, &st, &e), 0);
    assert_false(exists(dir, "containers/build-ba9876543210"));
    assert_true(dir_empty(tdir));
    assert_true(exists(dir, "containers/kept"));
    assert_int_equal(st.tmp, 2);
    reg_store_free(s);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_adopt),
            cmocka_unit_test(test_trash_and_gc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
