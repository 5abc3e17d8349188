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
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>

static int n_dirs;

static char *new_dir(const char *what)
{
    return mar_xasprintf("%s/%s%d", itest_tmpdir(), what, ++n_dirs);
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

static bool exists(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", dir, rel);
    struct stat st;
    return lstat(p, &st) == 0;
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

/* ---- 12.1: an opaque marker at the root ------------------------------------------------------ */

/* The busybox of this host's architecture from the bed's cache, as bin/busybox with the applets
 * a test runs. */
static void add_busybox(mar_buf *t)
{
    const char *deb = strcmp(itest_host_arch(), "arm64") == 0 ? "arm64" : "amd64";
    _cleanup_free_ char *p = mar_xasprintf("%s/busybox/%s/busybox", itest_cache_dir(), deb);
    mar_buf bb = MAR_BUF_INIT(64u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, p, 64u << 20, &bb, &e) < 0) {
        fail_msg("no busybox at %s", p);
    }
    tarw_add(t, &(tarw_entry){.name = "bin/busybox",
                              .type = '0',
                              .mode = 0755,
                              .data = bb.data,
                              .size = bb.len,
                              .mtime = 1700000000});
    mar_buf_release(&bb);
    static const char *const applets[] = {"bin/sh", "bin/ls", "bin/cat"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(applets); i++) {
        tarw_add(t, &(tarw_entry){
                            .name = applets[i], .type = '2', .mode = 0777, .linkname = "busybox"});
    }
}

/* A lower layer with files, an upper one with an opaque marker at its root (both spellings) and
 * a busybox: unpack, pull and inspect --deep accept it and show only the upper layer; mar run
 * sees only the upper layer too (the lower one is not mounted). */
static void test_root_opaque(void **state)
{
    (void)state;
    static const char *const markers[] = {".wh..wh..opq", "./.wh..wh..opq"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(markers); i++) {
        mar_buf l[2];
        layers_init(l, 2);
        F(&l[0], "etc/passwd", "root:x:0:0::/:/bin/sh\n");
        F(&l[0], "old/x", "lower");
        F(&l[0], "bin/oldtool", "lower");
        tarw_add(&l[1], &(tarw_entry){.name = markers[i], .type = '0', .mode = 0644});
        add_busybox(&l[1]);
        F(&l[1], "new", "upper");
        char tag[8];
        snprintf(tag, sizeof(tag), "%zu", i);
        _cleanup_free_ char *ref = itest_push_image("mar/root-opaque", tag, l, 2);
        layers_release(l, 2);

        _cleanup_free_ char *dir = unpack(ref, 0, NULL);
        assert_false(exists(dir, "old"));
        assert_false(exists(dir, "etc"));
        assert_false(exists(dir, "bin/oldtool"));
        assert_true(exists(dir, "new"));
        assert_true(exists(dir, "bin/busybox"));

        _cleanup_free_ char *store = pull(ref, 0, NULL);
        itest_run r;
        itest_mar(&r, NULL, "inspect", "--deep", "--store", store, ref, NULL);
        if (r.status != 0) {
            fail_msg("inspect --deep: %d\n%s", r.status, r.err.data);
        }
        itest_run_release(&r);

        const char *ctd = itest_bed("MAR_TEST_CONTAINERD");
        if (!ctd) {
            continue;
        }
        _cleanup_free_ char *env0 = mar_xasprintf("CONTAINERD_ADDRESS=%s", ctd);
        const char *env[] = {env0, NULL};
        itest_mar(&r, env, "run", "-q", "--store", store, ref, "/bin/ls", "/", "/bin", NULL);
        if (r.status != 0) {
            fail_msg("mar run: %d\n%s", r.status, r.err.data);
        }
        assert_contains(r.out.data, "new");
        assert_contains(r.out.data, "busybox");
        assert_not_contains(r.out.data, "old");
        itest_run_release(&r);
    }
}

/* ---- 13.3: FIFO and device modes ----------------------------------------------------------- */

static unsigned mode_of(const char *dir, const char *rel)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", dir, rel);
    struct stat st;
    return lstat(p, &st) == 0 ? (unsigned)st.st_mode : 0;
}

/* Under umask 022, a FIFO and a character device recorded 0666 are 0666 (as root the device is
 * created; rootless it is dropped, which the corpus checks). */
static void test_special_modes(void **state)
{
    (void)state;
    mar_buf l[1];
    layers_init(l, 1);
    tarw_add(&l[0], &(tarw_entry){.name = "run/fifo", .type = '6', .mode = 0666});
    tarw_add(&l[0],
             &(tarw_entry){
                     .name = "dev/null", .type = '3', .mode = 0666, .devmajor = 1, .devminor = 3});
    tarw_add(&l[0], &(tarw_entry){.name = "run/setgid-fifo", .type = '6', .mode = 02640});
    _cleanup_free_ char *ref = itest_push_image("mar/special-modes", "1", l, 1);
    layers_release(l, 1);
    mode_t old = umask(022);
    _cleanup_free_ char *dir = unpack(ref, 0, NULL);
    umask(old);
    assert_int_equal(mode_of(dir, "run/fifo"), S_IFIFO | 0666);
    assert_int_equal(mode_of(dir, "dev/null"), S_IFCHR | 0666);
    assert_int_equal(mode_of(dir, "run/setgid-fifo"), S_IFIFO | 02640);
}

/* ---- 13.2 and 12.3: pull's layers give unpack's tree ---------------------------------------- */

/* mar unpack and an overlay mount of the layers mar pull stored list the same tree. */
static void check_pull_equals_unpack(const char *ref)
{
    _cleanup_free_ char *flat = unpack(ref, 0, NULL);
    _cleanup_free_ char *store = new_dir("store");
    itest_run r;
    itest_mar(&r, NULL, "pull", "--json", "--store", store, ref, NULL);
    if (r.status != 0) {
        fail_msg("mar pull %s: %d\n%s", ref, r.status, r.err.data);
    }
    json_t *doc = itest_json(r.out.data);
    itest_run_release(&r);
    json_t *layers = json_object_get(json_array_get(json_object_get(doc, "images"), 0), "layers");
    mar_buf opts = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xputs(&opts, "lowerdir=");
    for (size_t i = json_array_size(layers); i > 0; i--) {
        const char *c =
                json_string_value(json_object_get(json_array_get(layers, i - 1), "chainId"));
        mar_buf_xprintf(&opts, "%s%s/unpack/%s/rootfs", i == json_array_size(layers) ? "" : ":",
                        store, strchr(c, ':') + 1);
    }
    _cleanup_free_ char *mnt = new_dir("mnt");
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("overlay", mnt, "overlay", MS_RDONLY, opts.data) < 0) {
        fail_msg("mount overlay: %s", strerror(errno));
    }
    _cleanup_free_ char *a = tree_listing(flat, TREE_INODES);
    _cleanup_free_ char *b = tree_listing(mnt, TREE_INODES);
    umount2(mnt, MNT_DETACH);
    assert_true(tree_equal(a, b, "mar unpack", "overlay of mar pull's layers"));
    mar_buf_release(&opts);
    json_decref(doc);
}

/* a/up -> ../t then a/up/x, and a/b/up -> ../../u then a/b/up/y, over a base layer: the files
 * land in t/ and u/ both ways (pull used to keep only a and a/up, or exit 3). */
static void test_dotdot_symlink(void **state)
{
    (void)state;
    mar_buf l[2];
    layers_init(l, 2);
    F(&l[0], "base", "b");
    tarw_add(&l[1], &(tarw_entry){.name = "a/up", .type = '2', .mode = 0777, .linkname = "../t"});
    F(&l[1], "a/up/x", "x");
    tarw_add(&l[1],
             &(tarw_entry){.name = "a/b/up", .type = '2', .mode = 0777, .linkname = "../../u"});
    F(&l[1], "a/b/up/y", "y");
    _cleanup_free_ char *ref = itest_push_image("mar/dotdot-link", "1", l, 2);
    layers_release(l, 2);
    _cleanup_free_ char *dir = unpack(ref, 0, NULL);
    assert_true(exists(dir, "t/x") && exists(dir, "u/y"));
    check_pull_equals_unpack(ref);
}

/* A directory replaced by a file, then whiteouts and an opaque marker under its path (umoci
 * repack writes such layers): pull accepts it and gives unpack's tree. */
static void test_file_then_whiteouts(void **state)
{
    (void)state;
    mar_buf l[2];
    layers_init(l, 2);
    tarw_add(&l[0], &(tarw_entry){.name = "d", .type = '5', .mode = 0755});
    F(&l[0], "d/a", "a");
    F(&l[0], "d/b", "b");
    F(&l[1], "d", "now a file");
    F(&l[1], "d/.wh.a", "");
    F(&l[1], "d/.wh..wh..opq", "");
    _cleanup_free_ char *ref = itest_push_image("mar/file-then-whiteouts", "1", l, 2);
    layers_release(l, 2);
    check_pull_equals_unpack(ref);
}

/* ---- 12.2: directory times ------------------------------------------------------------------- */

/* A later layer adds files to a lower directory without an entry for it, and files under
 * directories no layer lists: two unpacks a second apart give the same tree, directory times
 * included, and the lower directory keeps its recorded time. */
static void test_dir_times(void **state)
{
    (void)state;
    mar_buf l[2];
    layers_init(l, 2);
    tarw_add(&l[0], &(tarw_entry){.name = "etc", .type = '5', .mode = 0755, .mtime = 1600000000});
    F(&l[0], "etc/passwd", "root:x:0:0::/:/bin/sh\n");
    F(&l[0], "etc/gone", "lower");
    F(&l[1], "etc/foo", "upper");
    F(&l[1], "etc/.wh.gone", "");
    F(&l[1], "new/deep/file", "implied parents");
    _cleanup_free_ char *ref = itest_push_image("mar/dir-times", "1", l, 2);
    layers_release(l, 2);
    _cleanup_free_ char *a = unpack(ref, 0, NULL);
    sleep(2);
    _cleanup_free_ char *b = unpack(ref, 0, NULL);
    _cleanup_free_ char *la = tree_listing(a, TREE_DIR_TIMES | TREE_INODES);
    _cleanup_free_ char *lb = tree_listing(b, TREE_DIR_TIMES | TREE_INODES);
    assert_true(tree_equal(la, lb, "first unpack", "second unpack"));
    _cleanup_free_ char *etc = mar_xasprintf("%s/etc", a);
    struct stat st;
    assert_int_equal(lstat(etc, &st), 0);
    assert_int_equal(st.st_mtim.tv_sec, 1600000000);
    _cleanup_free_ char *deep = mar_xasprintf("%s/new/deep", a);
    assert_int_equal(lstat(deep, &st), 0);
    assert_int_equal(st.st_mtim.tv_sec, 1700000000);
}

/* ---- 13.14: what killed unpacks leave ------------------------------------------------------- */

/* The temporary siblings a SIGKILLed unpack leaves (an unlocked `.DIR.mar-XXXXXX` with part of a
 * tree) are removed by the next unpack into that parent; one whose unpack still runs (locked)
 * stays, and so does anything not named like a temporary sibling. */
static void test_dead_temps(void **state)
{
    (void)state;
    mar_buf l[1];
    layers_init(l, 1);
    F(&l[0], "f", "x");
    _cleanup_free_ char *ref = itest_push_image("mar/dead-temps", "1", l, 1);
    layers_release(l, 1);
    _cleanup_free_ char *parent = new_dir("parent");
    assert_int_equal(mkdir(parent, 0755), 0);
    static const char *const dead[] = {".rootfs.mar-AbC123", ".other.mar-zzzzzz"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(dead); i++) {
        _cleanup_free_ char *d = mar_xasprintf("%s/%s/usr/lib", parent, dead[i]);
        _cleanup_free_ char *cmd = mar_xasprintf("mkdir -p %s && chmod 0555 %s", d, d);
        const char *argv[] = {"sh", "-c", cmd, NULL};
        itest_run r;
        itest_runv(&r, NULL, argv);
        assert_int_equal(r.status, 0);
        itest_run_release(&r);
    }
    _cleanup_free_ char *live = mar_xasprintf("%s/.busy.mar-Live01", parent);
    _cleanup_free_ char *mine = mar_xasprintf("%s/.mine.mar", parent);
    assert_int_equal(mkdir(live, 0700), 0);
    assert_int_equal(mkdir(mine, 0700), 0);
    int lfd = open(live, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(lfd >= 0);
    assert_int_equal(flock(lfd, LOCK_EX), 0);

    _cleanup_free_ char *store = new_dir("store");
    _cleanup_free_ char *dest = mar_xasprintf("%s/rootfs", parent);
    itest_run r;
    itest_mar(&r, NULL, "unpack", "--store", store, ref, dest, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    for (size_t i = 0; i < MAR_ARRAY_SIZE(dead); i++) {
        assert_false(exists(parent, dead[i]));
    }
    assert_true(exists(parent, ".busy.mar-Live01"));
    assert_true(exists(parent, ".mine.mar"));
    assert_true(exists(dest, "f"));
    close(lfd);
}

/* ---- 12.4: Go <= 1.7 GNU headers ------------------------------------------------------------- */

/* A GNU-magic header with the USTAR prefix in the atime/ctime bytes: unpack and pull put the file
 * at prefix/name, where containerd (Go's archive/tar) puts it. */
static void test_go17_prefix(void **state)
{
    (void)state;
    mar_buf l[2];
    layers_init(l, 2);
    F(&l[0], "base", "b");
    tarw_add_gnu_prefixed(&l[1], "usr/share/go17", "file.txt", "from an old Go writer");
    _cleanup_free_ char *ref = itest_push_image("mar/go17-prefix", "1", l, 2);
    layers_release(l, 2);
    _cleanup_free_ char *dir = unpack(ref, 0, NULL);
    assert_true(exists(dir, "usr/share/go17/file.txt"));
    assert_false(exists(dir, "file.txt"));
    check_pull_equals_unpack(ref);
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
            cmocka_unit_test(test_sparse_bomb),         cmocka_unit_test(test_sparse_holes),
            cmocka_unit_test(test_uid_range),           cmocka_unit_test(test_root_opaque),
            cmocka_unit_test(test_special_modes),       cmocka_unit_test(test_dotdot_symlink),
            cmocka_unit_test(test_file_then_whiteouts), cmocka_unit_test(test_dir_times),
            cmocka_unit_test(test_dead_temps),          cmocka_unit_test(test_go17_prefix),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
