/* mar pull, unpack, images, rmi and gc through the real binary against the bed's registry, with
 * skopeo, umoci and the kernel's overlayfs as independent readers of what mar wrote. */
#include "itest.h"
#include "tbuf.h"
#include "treecmp.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

static int n_stores;

static char *new_dir(const char *what)
{
    return mar_xasprintf("%s/%s%d", itest_tmpdir(), what, ++n_stores);
}

static const char *fixture_digest(const char *name)
{
    return json_string_value(json_object_get(json_object_get(itest_fixtures(), name), "digest"));
}

static void check_store(const char *store)
{
    itest_fsck f;
    itest_store_fsck(store, &f);
    assert_int_equal(f.bad_blobs, 0);
    assert_int_equal(f.incomplete_layers, 0);
    assert_int_equal(f.parts, 0);
    assert_int_equal(f.ingests, 0);
    assert_true(f.mode_ok);
    assert_true(f.blobs > 0);
}

/* mar pull --json into store; returns the parsed result (new reference). */
static json_t *pull_json(const char *store, const char *ref, const char *extra1, const char *extra2)
{
    itest_run r;
    itest_mar(&r, NULL, "pull", "--json", "--store", store, ref, extra1, extra2, NULL);
    if (r.status != 0) {
        fail_msg("mar pull %s: %d\n%s", ref, r.status, r.err.data);
    }
    json_t *doc = itest_json(r.out.data);
    itest_run_release(&r);
    return doc;
}

static json_int_t stat_of(json_t *doc, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(doc, "stats"), key));
}

static void test_pull_default(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    const char *ref = itest_fixture_ref("multi");
    itest_run r;
    itest_mar(&r, NULL, "pull", "--store", store, ref, NULL);
    assert_int_equal(r.status, 0);
    /* stdout is data only: the reference and the digest pulled. */
    _cleanup_free_ char *line = mar_xasprintf("%s@%s\n", ref, fixture_digest("multi"));
    assert_string_equal(r.out.data, line);
    assert_contains(r.err.data, "pulled 1 platform");
    itest_run_release(&r);
    check_store(store);

    json_t *doc = pull_json(store, ref, NULL, NULL);
    /* The host's match, and nothing fetched the second time. */
    json_t *imgs = json_object_get(doc, "images");
    assert_int_equal(json_array_size(imgs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(imgs, 0), "platform")),
                        "linux/amd64");
    assert_int_equal(stat_of(doc, "blobsDownloaded"), 0);
    assert_int_equal(stat_of(doc, "bytesDownloaded"), 0);
    assert_int_equal(stat_of(doc, "layersPresent"), 1);
    /* The unpacked layer is the amd64 busybox root filesystem. */
    const char *chain = json_string_value(json_object_get(
            json_array_get(json_object_get(json_array_get(imgs, 0), "layers"), 0), "chainId"));
    _cleanup_free_ char *bb =
            mar_xasprintf("%s/unpack/%s/rootfs/bin/busybox", store, strchr(chain, ':') + 1);
    struct stat st;
    assert_int_equal(stat(bb, &st), 0);
    assert_true(S_ISREG(st.st_mode) && (st.st_mode & 0111));
    json_decref(doc);
}

static void test_pull_platforms(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    const char *ref = itest_fixture_ref("multi");
    json_t *doc = pull_json(store, ref, "--platform", "linux/arm64,linux/s390x");
    assert_int_equal(json_array_size(json_object_get(doc, "images")), 2);
    assert_int_equal(stat_of(doc, "blobsDownloaded"), 2);
    json_decref(doc);
    doc = pull_json(store, ref, "--all-platforms", NULL);
    size_t all = json_array_size(
            json_object_get(json_object_get(itest_fixtures(), "multi"), "platforms"));
    assert_int_equal(json_array_size(json_object_get(doc, "images")), all);
    /* Only the ones not pulled before were downloaded. */
    assert_int_equal(stat_of(doc, "blobsDownloaded"), (json_int_t)all - 2);
    json_decref(doc);
    check_store(store);

    itest_run r;
    itest_mar(&r, NULL, "images", "--json", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    json_t *list = itest_json(r.out.data);
    json_t *img = json_array_get(json_object_get(list, "images"), 0);
    assert_string_equal(json_string_value(json_object_get(img, "name")), ref);
    assert_int_equal(json_array_size(json_object_get(img, "platforms")), all);
    json_decref(list);
    itest_run_release(&r);

    /* A platform the image lacks: exit 3, one line naming what it has. */
    itest_mar(&r, NULL, "pull", "--store", store, "--platform", "linux/riscv64", ref, NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    assert_contains(r.err.data, "has no linux/riscv64 image (it has: linux/amd64");
    itest_run_release(&r);
    /* A single-platform image asked for another platform. */
    itest_mar(&r, NULL, "pull", "--store", store, "--platform", "linux/arm64",
              itest_fixture_ref("single"), NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    assert_contains(r.err.data, "is a single linux/amd64 image, not linux/arm64");
    itest_run_release(&r);
    itest_mar(&r, NULL, "pull", "--store", store, "Not//A:Ref", NULL);
    assert_int_equal(r.status, MAR_EUSAGE);
    itest_run_release(&r);
}

/* The store is an OCI layout that skopeo and umoci read, and umoci's unpack of a platform equals
 * mar's. */
static void test_peers_read_store(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    const char *ref = itest_fixture_ref("multi");
    json_decref(pull_json(store, ref, "--platform", "linux/amd64,linux/arm64"));
    _cleanup_free_ char *oci = mar_xasprintf("oci:%s:%s", store, ref);
    itest_run r;
    const char *sk[] = {"skopeo", "inspect", "--override-arch", "arm64", oci, NULL};
    itest_runv(&r, NULL, sk);
    assert_int_equal(r.status, 0);
    json_t *doc = itest_json(r.out.data);
    assert_string_equal(json_string_value(json_object_get(doc, "Architecture")), "arm64");
    json_decref(doc);
    itest_run_release(&r);

    _cleanup_free_ char *um = new_dir("umoci");
    _cleanup_free_ char *image = mar_xasprintf("%s:%s@linux/arm64/v8", store, ref);
    const char *uargs[] = {"umoci", "unpack", "--image", image, um, NULL};
    itest_runv(&r, NULL, uargs);
    if (r.status != 0) {
        fail_msg("umoci: %s", r.err.data);
    }
    itest_run_release(&r);
    _cleanup_free_ char *mine = new_dir("unpacked");
    itest_mar(&r, NULL, "unpack", "--store", store, "--platform", "linux/arm64", ref, mine, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    _cleanup_free_ char *umroot = mar_xasprintf("%s/rootfs", um);
    _cleanup_free_ char *a = tree_listing(mine, TREE_INODES);
    _cleanup_free_ char *b = tree_listing(umroot, TREE_INODES);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(tree_equal(a, b, "mar unpack", "umoci unpack"));
}

/* Whiteouts and opaque directories across three layers: mar unpack, umoci unpack, and an overlay
 * mount of the layers mar pull stored all show the same tree. */
static void test_layers_overlay(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    const char *ref = itest_fixture_ref("whiteout");
    json_t *doc = pull_json(store, ref, NULL, NULL);
    _cleanup_free_ char *flat = new_dir("flat");
    itest_run r;
    itest_mar(&r, NULL, "unpack", "--store", store, ref, flat, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    _cleanup_free_ char *gone = mar_xasprintf("%s/data/gone", flat);
    _cleanup_free_ char *old = mar_xasprintf("%s/data/opaque/old", flat);
    _cleanup_free_ char *foreign = mar_xasprintf("%s/usr/bin/foreign", flat);
    _cleanup_free_ char *added = mar_xasprintf("%s/data/added", flat);
    struct stat st;
    assert_true(lstat(gone, &st) < 0 && lstat(old, &st) < 0 && lstat(foreign, &st) < 0);
    assert_int_equal(lstat(added, &st), 0);

    _cleanup_free_ char *um = new_dir("umoci");
    _cleanup_free_ char *image = mar_xasprintf("%s:%s", store, ref);
    const char *uargs[] = {"umoci", "unpack", "--image", image, um, NULL};
    itest_runv(&r, NULL, uargs);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    _cleanup_free_ char *umroot = mar_xasprintf("%s/rootfs", um);
    _cleanup_free_ char *a = tree_listing(flat, TREE_INODES);
    _cleanup_free_ char *b = tree_listing(umroot, TREE_INODES);
    assert_true(tree_equal(a, b, "mar unpack", "umoci unpack"));

    /* lowerdir lists the top layer first. */
    json_t *layers = json_object_get(json_array_get(json_object_get(doc, "images"), 0), "layers");
    mar_buf opts = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_puts(&opts, "lowerdir="));
    for (size_t i = json_array_size(layers); i > 0; i--) {
        const char *c =
                json_string_value(json_object_get(json_array_get(layers, i - 1), "chainId"));
        T_BUF(mar_buf_printf(&opts, "%s%s/unpack/%s/rootfs",
                             i == json_array_size(layers) ? "" : ":", store, strchr(c, ':') + 1));
    }
    _cleanup_free_ char *mnt = new_dir("mnt");
    mkdir(mnt, 0700);
    if (mount("overlay", mnt, "overlay", MS_RDONLY, opts.data) < 0) {
        fail_msg("mount overlay: %s", strerror(errno));
    }
    _cleanup_free_ char *c = tree_listing(mnt, TREE_INODES);
    umount2(mnt, MNT_DETACH);
    assert_true(tree_equal(a, c, "mar unpack", "overlay of mar's layers"));
    mar_buf_release(&opts);
    json_decref(doc);
}

static void test_zstd(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    _cleanup_free_ char *flat = new_dir("flat");
    itest_run r;
    itest_mar(&r, NULL, "unpack", "--store", store, itest_fixture_ref("zstd"), flat, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    _cleanup_free_ char *bb = mar_xasprintf("%s/bin/busybox", flat);
    struct stat st;
    assert_int_equal(stat(bb, &st), 0);
    check_store(store);
}

static void test_unpack_errors(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    const char *ref = itest_fixture_ref("single");
    char *full = itest_write("full/file", "x", 0644);
    _cleanup_free_ char *fulldir = mar_xstrdup(full);
    *strrchr(fulldir, '/') = '\0';
    itest_run r;
    itest_mar(&r, NULL, "unpack", "--store", store, ref, fulldir, NULL);
    assert_int_equal(r.status, MAR_EUSAGE);
    assert_contains(r.err.data, "is not empty");
    itest_run_release(&r);
    itest_mar(&r, NULL, "unpack", "--store", store, ref, full, NULL);
    assert_int_equal(r.status, MAR_EUSAGE);
    assert_contains(r.err.data, "not a directory");
    itest_run_release(&r);
    free(full);
    /* An empty directory is fine, and rootless unpacking works (devices aside). */
    _cleanup_free_ char *empty = new_dir("empty");
    mkdir(empty, 0755);
    itest_mar(&r, NULL, "unpack", "--store", store, ref, empty, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    const char *unpriv[] = {"setpriv",
                            "--reuid=65534",
                            "--regid=65534",
                            "--clear-groups",
                            getenv("MAR_BIN"),
                            "unpack",
                            "--store",
                            NULL,
                            ref,
                            NULL,
                            NULL};
    _cleanup_free_ char *ustore = mar_xasprintf("/tmp/mar-rootless-%d", (int)getpid());
    _cleanup_free_ char *udest = mar_xasprintf("%s-dest", ustore);
    unpriv[7] = ustore;
    unpriv[9] = udest;
    itest_runv(&r, NULL, unpriv);
    if (r.status != 0) {
        fail_msg("rootless unpack: %s", r.err.data);
    }
    itest_run_release(&r);
    _cleanup_free_ char *ub = mar_xasprintf("%s/bin/busybox", udest);
    struct stat st;
    assert_int_equal(stat(ub, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    const char *rm[] = {"rm", "-rf", ustore, udest, NULL};
    itest_runv(&r, NULL, rm);
    itest_run_release(&r);
}

static void test_rmi_gc(void **state)
{
    (void)state;
    _cleanup_free_ char *store = new_dir("store");
    json_decref(pull_json(store, itest_fixture_ref("shared1"), NULL, NULL));
    json_decref(pull_json(store, itest_fixture_ref("shared2"), NULL, NULL));
    itest_fsck before;
    itest_store_fsck(store, &before);
    itest_run r;
    itest_mar(&r, NULL, "rmi", "--store", store, itest_fixture_ref("shared1"), NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_fsck after;
    itest_store_fsck(store, &after);
    /* shared1's own manifest, config and top layer go; the base layer stays for shared2. */
    assert_int_equal(after.blobs, before.blobs - 3);
    assert_int_equal(after.layers, before.layers - 1);
    assert_int_equal(after.bad_blobs, 0);
    itest_mar(&r, NULL, "rmi", "--store", store, itest_fixture_ref("shared1"), NULL);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    itest_run_release(&r);
    itest_mar(&r, NULL, "rmi", "--store", store, itest_fixture_ref("shared2"), NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    itest_store_fsck(store, &after);
    assert_int_equal(after.blobs, 0);
    assert_int_equal(after.layers, 0);
    itest_mar(&r, NULL, "gc", "--verify", "--store", store, NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    /* A damaged blob is found by gc --verify (exit 6). */
    json_decref(pull_json(store, itest_fixture_ref("single"), "--no-unpack", NULL));
    _cleanup_free_ char *cfg = mar_xasprintf(
            "%s/blobs/sha256/%s", store,
            strchr(json_string_value(json_object_get(
                           json_array_get(
                                   json_object_get(json_object_get(itest_fixtures(), "single"),
                                                   "platforms"),
                                   0),
                           "config")),
                   ':') +
                    1);
    chmod(cfg, 0644);
    FILE *f = fopen(cfg, "a");
    assert_non_null(f);
    fputs(" ", f);
    fclose(f);
    itest_mar(&r, NULL, "gc", "--verify", "--store", store, NULL);
    assert_int_equal(r.status, MAR_EINTEGRITY);
    assert_contains(r.out.data, "bad blob sha256:");
    itest_run_release(&r);
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

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    }
    closedir(d);
    return n;
}

/* A store directory of mar's own (locks/, ingest/, unpack/, blobs/sha256) replaced by a symbolic
 * link is refused with a clear error (9), and nothing is created where it points. */
static void test_store_dir_symlinks(void **state)
{
    (void)state;
    static const char *const dirs[] = {"locks", "ingest", "unpack", "blobs/sha256", "blobs"};
    const char *ref = itest_fixture_ref("single");
    for (size_t i = 0; i < MAR_ARRAY_SIZE(dirs); i++) {
        _cleanup_free_ char *store = new_dir("linkstore");
        _cleanup_free_ char *outside = new_dir("outside");
        assert_int_equal(mkdir(outside, 0700), 0);
        itest_run r;
        itest_mar(&r, NULL, "images", "--store", store, NULL);
        assert_int_equal(r.status, 0);
        itest_run_release(&r);
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", store, dirs[i]);
        _cleanup_free_ char *aside = mar_xasprintf("%s.aside", p);
        assert_int_equal(rename(p, aside), 0);
        assert_int_equal(symlink(outside, p), 0);

        itest_mar(&r, NULL, "pull", "--store", store, ref, NULL);
        assert_int_equal(r.status, 9);
        _cleanup_free_ char *msg = mar_xasprintf(
                "'%s' is a symbolic link, not the store's own directory, refusing", p);
        assert_contains(r.err.data, msg);
        itest_run_release(&r);
        itest_mar(&r, NULL, "images", "--store", store, NULL);
        assert_int_equal(r.status, 9);
        itest_run_release(&r);
        assert_int_equal(count_entries(outside), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_pull_default),
            cmocka_unit_test(test_pull_platforms),
            cmocka_unit_test(test_peers_read_store),
            cmocka_unit_test(test_layers_overlay),
            cmocka_unit_test(test_zstd),
            cmocka_unit_test(test_unpack_errors),
            cmocka_unit_test(test_rmi_gc),
            cmocka_unit_test(test_store_dir_symlinks),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
