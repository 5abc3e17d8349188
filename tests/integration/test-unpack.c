/* Hostile and odd layers through the real binary (issues 12 and 13): each image is built here
 * with the tests' tar writer and pushed to the bed's registry, then given to `mar unpack`,
 * `mar pull` and `mar inspect --deep`. */
#include "itpush.h"
#include "treecmp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

static int n_dirs;

static char *new_dir(const char *what)
{
    return mar_xasprintf("%s/%s%d", itest_tmpdir(), what, ++n_dirs);
}

static void layers_init(mar_buf *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mar_buf_init(&l[i], SIZE_MAX / 2);
    }
}

static void layers_release(mar_buf *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mar_buf_release(&l[i]);
    }
}

/* mar unpack into a new directory; returns it (caller frees) after checking the status. */
static char *unpack(const char *ref, int want, const char *want_err)
{
    _cleanup_free_ char *store = new_dir("store");
    char *dir = new_dir("flat");
    itest_run r;
    itest_mar(&r, NULL, "unpack", "--store", store, ref, dir, NULL);
    if (r.status != want || (want_err && !itest_contains(r.err.data, want_err))) {
        fail_msg("mar unpack %s: %d, want %d (%s)\n%s", ref, r.status, want,
                 want_err ? want_err : "", r.err.data);
    }
    itest_run_release(&r);
    return dir;
}

/* mar pull into a new store; returns the store (caller frees) after checking the status. */
static char *pull(const char *ref, int want, const char *want_err)
{
    char *store = new_dir("store");
    itest_run r;
    itest_mar(&r, NULL, "pull", "--store", store, ref, NULL);
    if (r.status != want || (want_err && !itest_contains(r.err.data, want_err))) {
        fail_msg("mar pull %s: %d, want %d (%s)\n%s", ref, r.status, want, want_err ? want_err : "",
                 r.err.data);
    }
    itest_run_release(&r);
    return store;
}

/* ---- 13.1: sparse entries ------------------------------------------------------------------ */

/* Two sparse entries of 9 GiB apparent size in a layer of a few hundred bytes: 18 GiB is past the
 * 16 GiB a layer may write, so the second entry is refused (6) before anything is written, in
 * unpack and in pull; the first never took more than a block of disk. */
static void test_sparse_bomb(void **state)
{
    (void)state;
    for (int gnu = 0; gnu < 2; gnu++) {
        mar_buf l[1];
        layers_init(l, 1);
        tarw_add_sparse(&l[0], "big1", 9ull << 30, (9ull << 30) - 1, "x", gnu);
        tarw_add_sparse(&l[0], "big2", 9ull << 30, (9ull << 30) - 1, "x", gnu);
        _cleanup_free_ char *ref = itest_push_image("mar/sparse-bomb", gnu ? "gnu" : "pax", l, 1);
        layers_release(l, 1);
        _cleanup_free_ char *dir = unpack(ref, 6, "layer entry 'big2'");
        struct stat st;
        assert_true(lstat(dir, &st) < 0 && errno == ENOENT);
        _cleanup_free_ char *store = pull(ref, 6, "layer entry 'big2'");
    }
}

/* A sparse entry within the limit is written with its holes: 1 GiB apparent, a few blocks used,
 * its data where the map put it. */
static void test_sparse_holes(void **state)
{
    (void)state;
    mar_buf l[1];
    layers_init(l, 1);
    tarw_add_sparse(&l[0], "holes", 1u << 30, 512u << 20, "data", false);
    _cleanup_free_ char *ref = itest_push_image("mar/sparse-ok", "1", l, 1);
    layers_release(l, 1);
    _cleanup_free_ char *dir = unpack(ref, 0, NULL);
    _cleanup_free_ char *p = mar_xasprintf("%s/holes", dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 1 << 30);
    assert_true((uint64_t)st.st_blocks * 512 <= (1u << 20));
    char b[5] = {0};
    assert_int_equal(pread(fd, b, 4, 512 << 20), 4);
    assert_string_equal(b, "data");
    close(fd);
}

/* ---- 13.4: owner ids out of range ------------------------------------------------------------ */

/* uid 2^32 (wraps to root) and 2^32-1 (chown's "unchanged") on a setuid file: exit 6, named. */
static void test_uid_range(void **state)
{
    (void)state;
    static const char *const recs[] = {"uid=4294967296", "uid=4294967295", "gid=4294967296"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(recs); i++) {
        mar_buf l[1];
        layers_init(l, 1);
        const char *pax[] = {recs[i], NULL};
        tarw_add(&l[0], &(tarw_entry){.name = "bin/su", .type = '0', .mode = 04755, .pax = pax});
        char tag[8];
        snprintf(tag, sizeof(tag), "%zu", i);
        _cleanup_free_ char *ref = itest_push_image("mar/uid-range", tag, l, 1);
        layers_release(l, 1);
        _cleanup_free_ char *dir = unpack(ref, 6, "'bin/su' has owner");
        _cleanup_free_ char *store = pull(ref, 6, "'bin/su' has owner");
    }
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
        mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
        fprintf(stderr, "skip: needs root (overlay mounts, unpacking layers)\n");
        exit(getenv("MAR_CI") ? 1 : 77);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sparse_bomb),
            cmocka_unit_test(test_sparse_holes),
            cmocka_unit_test(test_uid_range),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
