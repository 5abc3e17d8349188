/* The malicious-layer corpus (docs/internals/unpack-security.md §4) with its oracle (§5): every
 * case is built by the tests' tar writer, run for plain tar, gzip and zstd, as root and rootless,
 * flattened (APPLY) and as an overlay layer (LAYER), and must give its expected class (CONTAIN,
 * REJECT, DROP) while nothing outside the root changes: every path under $T/outside and the listing
 * of $T are recorded before and compared after (type, mode, owner, size, mtime, links, content
 * hash, link target, xattrs). Absolute symlink targets aim into $T/outside, so a containment bug
 * writes there. As root the test runs in a private mount namespace with /etc and /usr read-only,
 * so an escape fails loudly instead of damaging the machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "oci/oci.h"
#include "tbuf.h"
#include "tarw.h"
#include "treecmp.h"

typedef enum { CONTAIN, REJECT, DROP } klass;
static const char *const klass_name[] = {"CONTAIN", "REJECT", "DROP"};

typedef struct ctx {
    char T[256];
    char root[300];
    char out[300];
    mar_buf tar[4];
    size_t n;
    bool rootless;
    oci_unpack_mode mode;
} ctx;

typedef struct kase {
    const char *name;
    klass want;       /* flattened, as root */
    klass want_layer; /* as an overlay layer (single-layer cases) */
    klass want_rootless;
    void (*build)(ctx *c);
    bool (*check)(ctx *c); /* what a CONTAIN or DROP must have produced inside the root */
    bool multi;            /* several layers: flattened runs only */
    uint64_t cap;          /* max_uncompressed for this case, 0 = default */
} kase;

/* ---- building ------------------------------------------------------------------------------- */

static mar_buf *L(ctx *c)
{
    if (c->n == 0) {
        mar_buf_init(&c->tar[c->n++], MAR_BUF_NOCAP);
    }
    return &c->tar[c->n - 1];
}

static mar_buf *next_layer(ctx *c)
{
    assert_true(c->n < sizeof(c->tar) / sizeof(c->tar[0]));
    mar_buf_init(&c->tar[c->n++], MAR_BUF_NOCAP);
    return &c->tar[c->n - 1];
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

static void D(mar_buf *t, const char *name, unsigned mode)
{
    tarw_add(t, &(tarw_entry){.name = name, .type = '5', .mode = mode, .mtime = 1600000000});
}

static void S(mar_buf *t, const char *name, const char *target)
{
    tarw_add(t, &(tarw_entry){.name = name, .type = '2', .mode = 0777, .linkname = target});
}

static void H(mar_buf *t, const char *name, const char *target)
{
    tarw_add(t, &(tarw_entry){.name = name, .type = '1', .mode = 0644, .linkname = target});
}

static char *O(ctx *c, const char *rel)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", c->out, rel);
    return buf[k];
}

/* ---- checking ------------------------------------------------------------------------------- */

static bool has(ctx *c, const char *rel, const char *content)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", c->root, rel);
    mar_buf b = MAR_BUF_INIT(1 << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, p, 1 << 20, &b, &e) < 0) {
        mar_err_free(e);
        return false;
    }
    bool ok = !content || strcmp(b.data, content) == 0;
    mar_buf_release(&b);
    return ok;
}

static bool absent(ctx *c, const char *rel)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", c->root, rel);
    struct stat st;
    return lstat(p, &st) < 0;
}

static bool is_type(ctx *c, const char *rel, mode_t type)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", c->root, rel);
    struct stat st;
    return lstat(p, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

/* ---- the cases ------------------------------------------------------------------------------ */

static void c01(ctx *c)
{
    F(L(c), "../../etc/passwd", "pwned");
}
static void c02(ctx *c)
{
    F(L(c), "/etc/passwd", "one");
    F(L(c), "//etc/group", "two");
}
static bool k02(ctx *c)
{
    return has(c, "etc/passwd", "one") && has(c, "etc/group", "two");
}
static void c03(ctx *c)
{
    F(L(c), "a/../../x", "pwned");
}
static void c04a(ctx *c)
{
    S(L(c), "evil", "/");
    F(L(c), "evil/etc/passwd", "contained");
}
static bool k04a(ctx *c)
{
    return has(c, "etc/passwd", "contained");
}
static void c04b(ctx *c)
{
    S(L(c), "evil", c->out);
    F(L(c), "evil/etc/passwd", "contained");
}
static bool k04b(ctx *c)
{
    _cleanup_free_ char *rel = mar_xasprintf("%s/etc/passwd", c->out + 1);
    return has(c, rel, "contained");
}
static void c05(ctx *c)
{
    S(L(c), "evil", "../../../..");
    F(L(c), "evil/x", "contained");
    D(L(c), "dummy", 0755);
    S(L(c), "lnk", "dummy/../../../etc");
    F(L(c), "lnk/y", "contained");
}
static bool k05(ctx *c)
{
    return has(c, "x", "contained") && has(c, "etc/y", "contained");
}
static void c06a(ctx *c)
{
    S(L(c), ".", O(c, ""));
}
static void c06b(ctx *c)
{
    S(L(c), "/", O(c, ""));
}
static void c06c(ctx *c)
{
    F(L(c), "./", "root as a file");
}
static void c07(ctx *c)
{
    D(L(c), "x", 0755);
    S(L(c), "x/a", ".");
    S(L(c), "x/a/b", ".");
    S(L(c), "x/a/b/c", "../..");
    F(L(c), "x/c/out", "contained");
}
static bool k07(ctx *c)
{
    return has(c, "out", "contained");
}
static void c08(ctx *c)
{
    S(L(c), "a", "b");
    S(L(c), "b", "a");
    F(L(c), "a/f", "loop");
}
static void c09(ctx *c)
{
    H(L(c), "l", O(c, "etc/shadow"));
}
static void c10(ctx *c)
{
    F(L(c), "etc/passwd", "inside");
    S(L(c), "d1", "../../etc");
    H(L(c), "h", "d1/passwd");
}
static bool k10(ctx *c)
{
    _cleanup_free_ char *a = mar_xasprintf("%s/h", c->root);
    _cleanup_free_ char *b = mar_xasprintf("%s/etc/passwd", c->root);
    struct stat x, y;
    return lstat(a, &x) == 0 && lstat(b, &y) == 0 && x.st_ino == y.st_ino && x.st_nlink == 2;
}
static void c11(ctx *c)
{
    S(L(c), "p", O(c, "file"));
    tarw_add(L(c), &(tarw_entry){.name = "q", .type = '1', .mode = 0777, .linkname = "p"});
}
static bool k11(ctx *c)
{
    return is_type(c, "q", S_IFLNK);
}
static void c12a(ctx *c)
{
    H(L(c), "h", "t");
    F(L(c), "t", "late");
}
static void c12b(ctx *c)
{
    F(L(c), "t", "doomed");
    F(L(c), ".wh.t", "");
    H(L(c), "h", "t");
}
static bool k12b(ctx *c)
{
    return has(c, "h", "doomed");
}
static void c13a(ctx *c)
{
    F(L(c), ".wh..", "");
}
static void c13b(ctx *c)
{
    F(L(c), ".wh...", "");
}
static void c13c(ctx *c)
{
    F(L(c), "etc/.wh..", "");
}
static void c14a(ctx *c)
{
    S(L(c), "localetc", "/etc");
    F(L(c), "etc/whitedout", "lower");
    F(L(c), "etc/kept", "lower");
    F(next_layer(c), "localetc/.wh.whitedout", "");
}
static bool k14a(ctx *c)
{
    return absent(c, "etc/whitedout") && has(c, "etc/kept", "lower");
}
static void c14b(ctx *c)
{
    S(L(c), "localetc", O(c, "etc"));
    F(next_layer(c), "localetc/.wh.whitedout", "");
}
static void c15a(ctx *c)
{
    S(L(c), "dir", c->out);
    F(next_layer(c), "dir/.wh..wh..opq", "");
}
static void c15b(ctx *c)
{
    D(L(c), "d", 0755);
    F(L(c), "d/old", "lower");
    mar_buf *u = next_layer(c);
    D(u, "d", 0755);
    F(u, "d/new", "upper");
    F(u, "d/.wh..wh..opq", "");
}
static bool k15b(ctx *c)
{
    return has(c, "d/new", "upper") && absent(c, "d/old");
}
static void c16(ctx *c)
{
    D(L(c), "etc", 0755);
    F(L(c), "etc/keep", "x");
    F(L(c), ".wh.etc/somefile", "literal");
}
static bool k16(ctx *c)
{
    return has(c, ".wh.etc/somefile", "literal") && has(c, "etc/keep", "x");
}
static void c17(ctx *c)
{
    D(L(c), "a", 0755);
    F(L(c), "a/f", "lower");
    F(L(c), "b", "lower file");
    mar_buf *u = next_layer(c);
    F(u, "a", "now a file");
    D(u, "b", 0755);
    F(u, "b/f", "in a dir");
}
static bool k17(ctx *c)
{
    return has(c, "a", "now a file") && has(c, "b/f", "in a dir");
}
static void c18(ctx *c)
{
    S(L(c), "localetc", O(c, "etc"));
    mar_buf *u = next_layer(c);
    D(u, "localetc", 0755);
    F(u, "localetc/x", "real dir");
}
static bool k18(ctx *c)
{
    return is_type(c, "localetc", S_IFDIR) && has(c, "localetc/x", "real dir");
}
static void c19(ctx *c)
{
    D(L(c), "d", 0700);
    S(L(c), "d", O(c, "dir"));
}
static bool k19(ctx *c)
{
    return is_type(c, "d", S_IFLNK);
}
static void c20a(ctx *c)
{
    tarw_add(L(c),
             &(tarw_entry){
                     .name = "dev/null1", .type = '3', .mode = 0666, .devmajor = 1, .devminor = 3});
    tarw_add(L(c), &(tarw_entry){.name = "dev/sda0", .type = '4', .mode = 0660, .devmajor = 8});
    tarw_add(L(c), &(tarw_entry){.name = "run/fifo", .type = '6', .mode = 0600});
    /* Modes the umask (022 here) would cut (issue 13.3). */
    tarw_add(L(c), &(tarw_entry){.name = "run/fifo666", .type = '6', .mode = 0666});
    tarw_add(L(c),
             &(tarw_entry){
                     .name = "dev/zero1", .type = '3', .mode = 0666, .devmajor = 1, .devminor = 5});
}
static bool mode_is(ctx *c, const char *rel, unsigned mode)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", c->root, rel);
    struct stat st;
    return lstat(p, &st) == 0 && (st.st_mode & 07777) == mode;
}
static bool k20a(ctx *c)
{
    if (!is_type(c, "run/fifo", S_IFIFO) || !mode_is(c, "run/fifo", 0600) ||
        !mode_is(c, "run/fifo666", 0666)) {
        return false;
    }
    if (c->rootless) {
        return absent(c, "dev/null1") && absent(c, "dev/sda0") && absent(c, "dev/zero1");
    }
    if (!mode_is(c, "dev/zero1", 0666) || !mode_is(c, "dev/null1", 0666) ||
        !mode_is(c, "dev/sda0", 0660)) {
        return false;
    }
    _cleanup_free_ char *p = mar_xasprintf("%s/dev/null1", c->root);
    struct stat st;
    return lstat(p, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
           minor(st.st_rdev) == 3 && is_type(c, "dev/sda0", S_IFBLK);
}
static void c20b(ctx *c)
{
    tarw_add(L(c), &(tarw_entry){.name = "dev/huge",
                                 .type = '3',
                                 .mode = 0666,
                                 .devmajor = 1u << 20,
                                 .devminor = 1});
}
static void c21(ctx *c)
{
    tarw_add(L(c),
             &(tarw_entry){.name = "bin/su", .type = '0', .mode = 04755, .data = "x", .size = 1});
    D(L(c), "srv", 02775);
    D(L(c), "tmp", 01777);
}
static bool k21(ctx *c)
{
    _cleanup_free_ char *a = mar_xasprintf("%s/bin/su", c->root);
    _cleanup_free_ char *b = mar_xasprintf("%s/srv", c->root);
    _cleanup_free_ char *t = mar_xasprintf("%s/tmp", c->root);
    struct stat x, y, z;
    return stat(a, &x) == 0 && (x.st_mode & 07777) == 04755 && stat(b, &y) == 0 &&
           (y.st_mode & 07777) == 02775 && stat(t, &z) == 0 && (z.st_mode & 07777) == 01777;
}
static void c22(ctx *c)
{
    /* A valid VFS_CAP_REVISION_2 capability set (cap_net_bind_service, effective). */
    static const char cap[] = "SCHILY.xattr.security.capability=\x01\x00\x00\x02\x00\x04\x00"
                              "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    const char *pax[] = {"SCHILY.xattr.user.keep=yes", "SCHILY.xattr.trusted.overlay.opaque=y",
                         "SCHILY.xattr.security.selinux=system_u:object_r:bin_t:s0", NULL};
    tarw_add(L(c), &(tarw_entry){.name = "bin/ping",
                                 .type = '0',
                                 .mode = 0755,
                                 .data = "x",
                                 .size = 1,
                                 .pax = pax});
    (void)cap;
}
static bool k22(ctx *c)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/bin/ping", c->root);
    char v[64];
    ssize_t n = lgetxattr(p, "user.keep", v, sizeof(v));
    bool user_ok = n == 3 || c->rootless; /* user xattrs may be refused on some filesystems */
    return user_ok && lgetxattr(p, "trusted.overlay.opaque", v, sizeof(v)) < 0 &&
           lgetxattr(p, "security.selinux", v, sizeof(v)) < 0;
}
static void c23(ctx *c)
{
    size_t n = 96u << 20;
    char *zeros = mar_xcalloc(1, n);
    tarw_add(L(c),
             &(tarw_entry){.name = "bomb", .type = '0', .mode = 0644, .data = zeros, .size = n});
    free(zeros);
}
static void c24(ctx *c)
{
    tarw_add_raw(L(c), &(tarw_entry){.name = "short",
                                     .type = '0',
                                     .mode = 0644,
                                     .data = "x",
                                     .size = 1,
                                     .header_size = 1ll << 62});
}
static void c25(ctx *c)
{
    /* GNU sparse 1.0 claiming a 1 TiB file. */
    const char *pax[] = {"GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=sparse",
                         "GNU.sparse.realsize=1099511627776", NULL};
    static const char map[512] = "1\n1099511627775\n1\n";
    char data[1024];
    memset(data, 0, sizeof(data));
    memcpy(data, map, sizeof(map));
    data[512] = 'x';
    tarw_add(L(c), &(tarw_entry){.name = "GNUSparseFile.0/sparse",
                                 .type = '0',
                                 .mode = 0644,
                                 .data = data,
                                 .size = 513,
                                 .pax = pax});
}
static void c26(ctx *c)
{
    mar_buf big = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_puts(&big, "SCHILY.xattr.user.big="));
    while (big.len < (2u << 20)) {
        T_BUF(mar_buf_puts(&big, "0123456789abcdef"));
    }
    const char *pax[] = {big.data, NULL};
    tarw_add(L(c), &(tarw_entry){.name = "f", .type = '0', .mode = 0644, .pax = pax});
    mar_buf_release(&big);
}
static void c27a(ctx *c)
{
    char n[300];
    memset(n, 'a', 299);
    n[299] = '\0';
    F(L(c), n, "long component");
}
static void c27b(ctx *c)
{
    mar_buf p = MAR_BUF_INIT(MAR_BUF_NOCAP);
    while (p.len < 4200) {
        T_BUF(mar_buf_puts(&p, "component/"));
    }
    T_BUF(mar_buf_puts(&p, "f"));
    F(L(c), p.data, "long path");
    mar_buf_release(&p);
}
static void c28(ctx *c)
{
    F(L(c), "bin\xff\xfe-raw", "latin1");
    F(L(c), "new\nline", "nl");
}
static bool k28(ctx *c)
{
    return has(c, "bin\xff\xfe-raw", "latin1") && has(c, "new\nline", "nl");
}
static void c29a(ctx *c)
{
    const char *pax[] = {"path=../x", NULL};
    tarw_add(L(c), &(tarw_entry){.name = "benign", .type = '0', .mode = 0644, .pax = pax});
}
static void c29b(ctx *c)
{
    mar_buf *t = L(c);
    /* A PAX global header ('g') before a normal entry: ignored. */
    tarw_entry g = {
            .name = "global", .type = 'g', .mode = 0644, .data = "18 path=../gx\n", .size = 14};
    tarw_add_raw(t, &g);
    F(t, "plain", "ok");
}
static bool k29b(ctx *c)
{
    return has(c, "plain", "ok") && absent(c, "../gx");
}
static void c31(ctx *c)
{
    F(L(c), "Foo", "upper");
    F(L(c), "foo", "lower");
}
static bool k31(ctx *c)
{
    return has(c, "Foo", "upper") && has(c, "foo", "lower");
}
static void c_usrmerge(ctx *c)
{
    D(L(c), "usr", 0755);
    D(L(c), "usr/bin", 0755);
    S(L(c), "bin", "usr/bin");
    F(next_layer(c), "bin/x", "merged");
}
static bool k_usrmerge(ctx *c)
{
    return has(c, "usr/bin/x", "merged") && is_type(c, "bin", S_IFLNK);
}
static void c_dotslash(ctx *c)
{
    D(L(c), "./", 0755);
    F(L(c), "./a/./b//c", "clean");
}
static bool k_dotslash(ctx *c)
{
    return has(c, "a/b/c", "clean");
}
static void c_outside_hardlink(ctx *c)
{
    H(L(c), "h", "../../etc/passwd");
}

/* Sparse entries (issue 13.1): apparent sizes count against the per-layer limit (the case's cap,
 * 64 MiB) before anything is written, and holes stay holes. */
static void c_sparse_budget(ctx *c)
{
    tarw_add_sparse(L(c), "s1", 48u << 20, 1u << 20, "x", false);
    tarw_add_sparse(L(c), "s2", 48u << 20, 1u << 20, "x", false);
}
static void c_sparse_budget_gnu(ctx *c)
{
    tarw_add_sparse(L(c), "s1", 48u << 20, 1u << 20, "x", true);
    tarw_add_sparse(L(c), "s2", 48u << 20, 1u << 20, "x", true);
}
static void c_sparse_holes(ctx *c)
{
    tarw_add_sparse(L(c), "pax", 256u << 20, 128u << 20, "data", false);
    tarw_add_sparse(L(c), "gnu", 256u << 20, 128u << 20, "data", true);
}
static bool sparse_ok(ctx *c, const char *rel)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", c->root, rel);
    struct stat st;
    char head[4] = {1}, at[5] = {0};
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && st.st_size == (256 << 20) &&
              (uint64_t)st.st_blocks * 512 <= (1u << 20) && pread(fd, head, 1, 0) == 1 &&
              head[0] == 0 && pread(fd, at, 4, 128 << 20) == 4 && strcmp(at, "data") == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}
static bool k_sparse_holes(ctx *c)
{
    return sparse_ok(c, "pax") && sparse_ok(c, "gnu");
}

/* Owner ids that do not fit uid_t/gid_t, or are -1 (issue 13.4): a setuid file must not end up
 * root's (2^32 wraps to 0) or the unpacker's (-1 is "unchanged" to chown). */
static void c_uid_max(ctx *c)
{
    tarw_add(L(c), &(tarw_entry){.name = "su", .type = '0', .mode = 04755, .uid = 4294967295u});
}
static void c_gid_max(ctx *c)
{
    tarw_add(L(c), &(tarw_entry){.name = "sg", .type = '0', .mode = 02755, .gid = 4294967295u});
}
static void c_uid_wrap(ctx *c)
{
    const char *pax[] = {"uid=4294967296", NULL};
    tarw_add(L(c), &(tarw_entry){.name = "su", .type = '0', .mode = 04755, .uid = 1, .pax = pax});
}
static void c_gid_wrap(ctx *c)
{
    const char *pax[] = {"gid=4294967296", NULL};
    tarw_add(L(c), &(tarw_entry){.name = "sg", .type = '0', .mode = 02755, .pax = pax});
}

/* An opaque marker at the root (issue 12.1): everything of the lower layers goes, this layer's
 * entries stay, those listed before the marker included. */
static void c_root_opaque(ctx *c)
{
    F(L(c), "etc/passwd", "lower");
    F(L(c), "keep/a", "lower");
    D(L(c), "old", 0755);
    F(L(c), "old/x", "lower");
    mar_buf *t = next_layer(c);
    F(t, "keep/b", "upper");
    tarw_add(t, &(tarw_entry){.name = "./.wh..wh..opq", .type = '0', .mode = 0644});
    F(t, "new", "upper");
}
static bool k_root_opaque(ctx *c)
{
    return absent(c, "etc") && absent(c, "old") && absent(c, "keep/a") &&
           has(c, "keep/b", "upper") && has(c, "new", "upper");
}
static void c_root_opaque1(ctx *c)
{
    tarw_add(L(c), &(tarw_entry){.name = ".wh..wh..opq", .type = '0', .mode = 0644});
    F(L(c), "only", "x");
}
static bool k_root_opaque1(ctx *c)
{
    return has(c, "only", "x");
}

/* Writes through a symlink of the same layer whose target climbs (issue 13.2). */
static void c_dotdot_link(ctx *c)
{
    S(L(c), "a/up", "../t");
    F(L(c), "a/up/x", "x");
    S(L(c), "a/b/up", "../../u");
    F(L(c), "a/b/up/y", "y");
}
static bool k_dotdot_link(ctx *c)
{
    return has(c, "t/x", "x") && has(c, "u/y", "y") && is_type(c, "a/up", S_IFLNK);
}
/* A directory replaced by a file, then whiteouts and an opaque marker under its path (umoci
 * repack, issue 12.3): moot. */
static void c_file_then_whiteouts(ctx *c)
{
    D(L(c), "d", 0755);
    F(L(c), "d/a", "a");
    F(L(c), "d/b", "b");
    mar_buf *t = next_layer(c);
    F(t, "d", "file");
    F(t, "d/.wh.a", "");
    F(t, "d/.wh..wh..opq", "");
    F(t, "e/.wh.nothing", "");
}
static bool k_file_then_whiteouts(ctx *c)
{
    return has(c, "d", "file") && absent(c, "e");
}

/* GNU-magic headers from Go <= 1.7 carry the USTAR prefix in the atime/ctime bytes (issue
 * 12.4): read as Go, containerd and Python read them, prefix/name. A prefix that parses as octal
 * times cannot be told from real times: name alone, as they read it too. */
static void c_go17_prefix(ctx *c)
{
    tarw_add_gnu_prefixed(L(c), "usr/lib/go", "x.so", "prefixed");
    tarw_add_gnu_prefixed(L(c), "", "plain", "no prefix");
    tarw_add_gnu_prefixed(L(c), "0123", "octal", "times");
}
static bool k_go17_prefix(ctx *c)
{
    return has(c, "usr/lib/go/x.so", "prefixed") && has(c, "plain", "no prefix") &&
           has(c, "octal", "times") && absent(c, "x.so");
}
static void c_go17_prefix_climb(ctx *c)
{
    tarw_add_gnu_prefixed(L(c), "../..", "etc/passwd", "pwned");
}

#define ALL(k) k, k, k
static const kase cases[] = {
        {"01 ../../etc/passwd", ALL(REJECT), c01, NULL, false, 0},
        {"02 /etc/passwd, //etc/group", ALL(CONTAIN), c02, k02, false, 0},
        {"03 a/../../x", ALL(REJECT), c03, NULL, false, 0},
        {"04a evil -> / then evil/etc/passwd", ALL(CONTAIN), c04a, k04a, false, 0},
        {"04b evil -> $OUT then evil/etc/passwd", ALL(CONTAIN), c04b, k04b, false, 0},
        {"05 evil -> ../../../.. ; dummy/../etc", ALL(CONTAIN), c05, k05, false, 0},
        {"06a symlink named .", ALL(REJECT), c06a, NULL, false, 0},
        {"06b symlink named /", ALL(REJECT), c06b, NULL, false, 0},
        {"06c root entry as a file", ALL(REJECT), c06c, NULL, false, 0},
        {"07 self-referential chains", ALL(CONTAIN), c07, k07, false, 0},
        {"08 a -> b, b -> a, a/f", ALL(REJECT), c08, NULL, false, 0},
        {"09 hard link to an absent /etc/shadow", REJECT, CONTAIN, REJECT, c09, NULL, false, 0},
        {"10 hard link through d1 -> ../../etc", ALL(CONTAIN), c10, k10, false, 0},
        {"11 hard link to a symlink, mode 0777", ALL(CONTAIN), c11, k11, false, 0},
        {"12a hard link before its target", REJECT, CONTAIN, REJECT, c12a, NULL, false, 0},
        {"12b hard link to a whited-out target", CONTAIN, CONTAIN, CONTAIN, c12b, k12b, false, 0},
        {"13a whiteout .wh..", ALL(REJECT), c13a, NULL, false, 0},
        {"13b whiteout .wh...", ALL(REJECT), c13b, NULL, false, 0},
        {"13c whiteout etc/.wh..", ALL(REJECT), c13c, NULL, false, 0},
        {"14a whiteout through localetc -> /etc", ALL(CONTAIN), c14a, k14a, true, 0},
        {"14b whiteout through localetc -> $OUT/etc", ALL(CONTAIN), c14b, NULL, true, 0},
        {"15a opaque in a symlink to $OUT", ALL(CONTAIN), c15a, NULL, true, 0},
        {"15b opaque listed after siblings", ALL(CONTAIN), c15b, k15b, true, 0},
        {"16 .wh. in a directory name", ALL(CONTAIN), c16, k16, false, 0},
        {"17 directory <-> file replacement", ALL(CONTAIN), c17, k17, true, 0},
        {"18 directory over a symlink", ALL(CONTAIN), c18, k18, true, 0},
        {"19 dir then symlink d -> $OUT/dir", ALL(CONTAIN), c19, k19, false, 0},
        {"20a devices and a FIFO", CONTAIN, CONTAIN, DROP, c20a, k20a, false, 0},
        {"20b device major out of range", ALL(REJECT), c20b, NULL, false, 0},
        {"21 setuid, setgid, sticky", ALL(CONTAIN), c21, k21, false, 0},
        {"22 xattrs", ALL(DROP), c22, k22, false, 0},
        {"23 decompression bomb", ALL(REJECT), c23, NULL, false, 32u << 20},
        {"24 size 2^62, short body", ALL(REJECT), c24, NULL, false, 0},
        {"25 GNU sparse 1 TiB", ALL(REJECT), c25, NULL, false, 1u << 30},
        {"26 2 MiB PAX record", ALL(REJECT), c26, NULL, false, 0},
        {"27a component over 255 bytes", ALL(REJECT), c27a, NULL, false, 0},
        {"27b path over 4096 bytes", ALL(REJECT), c27b, NULL, false, 0},
        {"28 raw bytes and newline in names", ALL(CONTAIN), c28, k28, false, 0},
        {"29a PAX path=../x", ALL(REJECT), c29a, NULL, false, 0},
        {"29b PAX global header", ALL(CONTAIN), c29b, k29b, false, 0},
        {"31 Foo and foo", ALL(CONTAIN), c31, k31, false, 0},
        {"usrmerge: bin -> usr/bin, then bin/x", ALL(CONTAIN), c_usrmerge, k_usrmerge, true, 0},
        {"./ prefixes and // in names", ALL(CONTAIN), c_dotslash, k_dotslash, false, 0},
        {"hard link climbing out", ALL(REJECT), c_outside_hardlink, NULL, false, 0},
        {"sparse PAX 1.0 entries over the cap", ALL(REJECT), c_sparse_budget, NULL, false,
         64u << 20},
        {"sparse old-GNU entries over the cap", ALL(REJECT), c_sparse_budget_gnu, NULL, false,
         64u << 20},
        {"opaque marker at the root over two layers", ALL(CONTAIN), c_root_opaque, k_root_opaque,
         true, 0},
        {".wh..wh..opq at the root of a single layer", ALL(CONTAIN), c_root_opaque1, k_root_opaque1,
         false, 0},
        {"a/up -> ../t then a/up/x, one level deeper too", ALL(CONTAIN), c_dotdot_link,
         k_dotdot_link, false, 0},
        {"file over a directory, then whiteouts under it", ALL(CONTAIN), c_file_then_whiteouts,
         k_file_then_whiteouts, true, 0},
        {"Go 1.7 GNU header with a prefix in atime/ctime", ALL(CONTAIN), c_go17_prefix,
         k_go17_prefix, false, 0},
        {"Go 1.7 GNU prefix climbing out", ALL(REJECT), c_go17_prefix_climb, NULL, false, 0},
        {"uid 2^32-1 on a setuid file", ALL(REJECT), c_uid_max, NULL, false, 0},
        {"gid 2^32-1 on a setgid file", ALL(REJECT), c_gid_max, NULL, false, 0},
        {"PAX uid=2^32 on a setuid file", ALL(REJECT), c_uid_wrap, NULL, false, 0},
        {"PAX gid=2^32 on a setgid file", ALL(REJECT), c_gid_wrap, NULL, false, 0},
        {"sparse entries keep their holes", ALL(CONTAIN), c_sparse_holes, k_sparse_holes, false, 0},
};

/* ---- the oracle ----------------------------------------------------------------------------- */

static void record(const char *path, const char *label, mar_buf *out)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        T_BUF(mar_buf_printf(out, "%s: missing\n", label));
        return;
    }
    T_BUF(mar_buf_printf(out, "%s: %o %u:%u %lld %lld.%09ld nlink %lu", label, st.st_mode,
                         (unsigned)st.st_uid, (unsigned)st.st_gid, (long long)st.st_size,
                         (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                         (unsigned long)st.st_nlink));
    if (S_ISREG(st.st_mode)) {
        mar_buf b = MAR_BUF_INIT(64u << 20);
        mar_err *e = NULL;
        chmod(path, st.st_mode | 0400);
        if (mar_read_file_at(AT_FDCWD, path, 64u << 20, &b, &e) == 0) {
            mar_digest d;
            mar_digest_of(MAR_DIGEST_SHA256, b.data, b.len, &d);
            T_BUF(mar_buf_printf(out, " %s", d.str));
        }
        chmod(path, st.st_mode & 07777);
        mar_err_free(e);
        mar_buf_release(&b);
    } else if (S_ISLNK(st.st_mode)) {
        char t[4096];
        ssize_t n = readlink(path, t, sizeof(t) - 1);
        t[n > 0 ? n : 0] = '\0';
        T_BUF(mar_buf_printf(out, " -> %s", t));
    }
    char names[4096];
    ssize_t nl = llistxattr(path, names, sizeof(names));
    for (ssize_t i = 0; i < nl; i += (ssize_t)strlen(names + i) + 1) {
        T_BUF(mar_buf_printf(out, " x:%s", names + i));
    }
    T_BUF(mar_buf_puts(out, "\n"));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        mar_strv kids = MAR_STRV_INIT;
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                mar_strv_push(&kids, de->d_name);
            }
        }
        if (d) {
            closedir(d);
        }
        mar_strv_sort(&kids);
        for (size_t i = 0; i < kids.n; i++) {
            _cleanup_free_ char *p = mar_xasprintf("%s/%s", path, kids.v[i]);
            _cleanup_free_ char *l = mar_xasprintf("%s/%s", label, kids.v[i]);
            if (strcmp(label, "T") == 0) {
                /* $T itself: its listing, not the contents of root/ */
                T_BUF(mar_buf_printf(out, "T/%s\n", kids.v[i]));
                if (strcmp(kids.v[i], "outside") == 0) {
                    record(p, l, out);
                }
            } else {
                record(p, l, out);
            }
        }
        mar_strv_release(&kids);
    }
}

static void setup_tree(ctx *c)
{
    snprintf(c->T, sizeof(c->T), "/tmp/mar-corpus-XXXXXX");
    assert_non_null(mkdtemp(c->T));
    chmod(c->T, 0755);
    snprintf(c->root, sizeof(c->root), "%s/root", c->T);
    snprintf(c->out, sizeof(c->out), "%s/outside", c->T);
    mkdir(c->root, 0755);
    mkdir(c->out, 0755);
    _cleanup_free_ char *etc = mar_xasprintf("%s/etc", c->out);
    mkdir(etc, 0755);
    static const char *const files[][2] = {{"etc/passwd", "decoy passwd"},
                                           {"etc/shadow", "decoy shadow"},
                                           {"etc/whitedout", "decoy"},
                                           {"file", "outside file"}};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", c->out, files[i][0]);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(write(fd, files[i][1], strlen(files[i][1])) > 0);
        close(fd);
    }
    _cleanup_free_ char *ro = mar_xasprintf("%s/file", c->out);
    chmod(ro, 0400);
    _cleanup_free_ char *dir = mar_xasprintf("%s/dir", c->out);
    mkdir(dir, 0750);
    _cleanup_free_ char *link = mar_xasprintf("%s/link", c->out);
    assert_int_equal(symlink("file", link), 0);
}

static void remove_tree(ctx *c)
{
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    mar_err *e = NULL;
    if (oci_remove_at(fd, c->T + 5, &e) < 0) {
        fail_msg("cannot remove '%s': %s", c->T, e->msg);
    }
    close(fd);
}

/* Layer i of the case as a blob in a memfd. */
static int layer_fd(ctx *c, size_t i, int codec)
{
    mar_buf blob = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf tar = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xappend(&tar, c->tar[i].data, c->tar[i].len);
    tarw_finish(&tar);
    if (codec == 1) {
        tarw_gzip(&tar, &blob);
    } else if (codec == 2) {
        tarw_zstd(&tar, &blob);
    } else {
        mar_buf_xappend(&blob, tar.data, tar.len);
    }
    mar_buf_release(&tar);
    int fd = memfd_create("layer", MFD_CLOEXEC);
    assert_int_equal(write(fd, blob.data, blob.len), (ssize_t)blob.len);
    lseek(fd, 0, SEEK_SET);
    mar_buf_release(&blob);
    return fd;
}

static void case_limits(const kase *k, oci_layer_limits *lim)
{
    oci_layer_limits_default(lim);
    lim->min_free = 0;
    if (k->cap) {
        lim->max_uncompressed = k->cap;
    }
}

/* Runs the layers; returns the class observed. */
static klass run_layers(ctx *c, const kase *k, int codec, mar_err **err)
{
    size_t dropped = 0;
    for (size_t i = 0; i < c->n; i++) {
        int fd = layer_fd(c, i, codec);
        int rootfd = mar_root_open(c->root, err);
        assert_true(rootfd >= 0);
        oci_layer_limits lim;
        case_limits(k, &lim);
        oci_unpack_opts o = {.mode = c->mode, .lim = &lim};
        oci_unpack_result res;
        int rc = oci_unpack(fd, rootfd, &o, &res, err);
        dropped += res.dropped;
        oci_unpack_result_release(&res);
        close(rootfd);
        close(fd);
        if (rc < 0) {
            return REJECT;
        }
    }
    return dropped ? DROP : CONTAIN;
}

typedef struct tally {
    size_t runs, escapes, unexpected, by[3];
} tally;

static void run_case(const kase *k, int codec, bool rootless, oci_unpack_mode mode, tally *t)
{
    ctx c = {.rootless = rootless, .mode = mode};
    setup_tree(&c);
    k->build(&c);
    mar_buf before = MAR_BUF_INIT(MAR_BUF_NOCAP), after = MAR_BUF_INIT(MAR_BUF_NOCAP);
    record(c.T, "T", &before);
    klass got;
    char msg[512] = "";
    if (rootless) {
        /* A child that is nobody, owning the tree. */
        if (chown(c.T, 65534, 65534) < 0 || chown(c.root, 65534, 65534) < 0) {
            fail();
        }
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
                _exit(100);
            }
            mar_err *e = NULL;
            klass k2 = run_layers(&c, k, codec, &e);
            char out[512];
            snprintf(out, sizeof(out), "%d %s", (int)k2, e ? e->msg : "");
            ssize_t w = write(pfd[1], out, strlen(out));
            (void)w;
            _exit(0);
        }
        close(pfd[1]);
        char in[512] = "";
        ssize_t n = read(pfd[0], in, sizeof(in) - 1);
        in[n > 0 ? n : 0] = '\0';
        close(pfd[0]);
        int st;
        waitpid(pid, &st, 0);
        got = (klass)(in[0] - '0');
        snprintf(msg, sizeof(msg), "%s", in + 2);
        assert_int_equal(chown(c.T, 0, 0), 0);
    } else {
        mar_err *e = NULL;
        got = run_layers(&c, k, codec, &e);
        snprintf(msg, sizeof(msg), "%s", e ? e->msg : "");
        mar_err_free(e);
    }
    record(c.T, "T", &after);
    klass want = rootless ? k->want_rootless : mode == OCI_UNPACK_LAYER ? k->want_layer : k->want;
    static const char *const codecs[] = {"tar", "gzip", "zstd"};
    bool escaped = strcmp(before.data, after.data) != 0;
    bool ok = got == want;
    if (ok && got != REJECT && k->check && mode == OCI_UNPACK_APPLY && !k->check(&c)) {
        ok = false;
    }
    t->runs++;
    t->by[got]++;
    if (escaped) {
        t->escapes++;
        print_error("ESCAPE %s (%s, %s, %s): outside changed\n--- before\n%s--- after\n%s", k->name,
                    codecs[codec], rootless ? "rootless" : "root",
                    mode == OCI_UNPACK_LAYER ? "layer" : "apply", before.data, after.data);
    }
    if (!ok) {
        t->unexpected++;
        print_error("UNEXPECTED %s (%s, %s, %s): got %s, want %s%s%s\n", k->name, codecs[codec],
                    rootless ? "rootless" : "root", mode == OCI_UNPACK_LAYER ? "layer" : "apply",
                    klass_name[got], klass_name[want], msg[0] ? ": " : "", msg);
    }
    for (size_t i = 0; i < c.n; i++) {
        mar_buf_release(&c.tar[i]);
    }
    mar_buf_release(&before);
    mar_buf_release(&after);
    remove_tree(&c);
}

/* As root: a private mount namespace with /etc and /usr read-only, as a backstop. */
static void backstop(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0) {
        return;
    }
    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL);
    static const char *const ro[] = {"/etc", "/usr"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(ro); i++) {
        if (mount(ro[i], ro[i], "none", MS_BIND | MS_REC, NULL) == 0) {
            mount("none", ro[i], "none", MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
        }
    }
}

static void test_corpus(void **state)
{
    (void)state;
    backstop();
    umask(022); /* as a user's shell has it: modes must not depend on it */
    uint64_t t0 = mar_now_ms();
    tally t = {0};
    bool root = geteuid() == 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        for (int codec = 0; codec < 3; codec++) {
            run_case(&cases[i], codec, false, OCI_UNPACK_APPLY, &t);
            if (root) {
                run_case(&cases[i], codec, true, OCI_UNPACK_APPLY, &t);
                if (!cases[i].multi) {
                    run_case(&cases[i], codec, false, OCI_UNPACK_LAYER, &t);
                }
            }
        }
    }
    printf("unpack-adversarial  %zu runs  %zu escapes  %zu unexpected  (%zu REJECT / %zu CONTAIN "
           "/ %zu DROP)  %.1f s\n",
           t.runs, t.escapes, t.unexpected, t.by[REJECT], t.by[CONTAIN], t.by[DROP],
           (double)(mar_now_ms() - t0) / 1000.0);
    assert_true(MAR_ARRAY_SIZE(cases) >= 32);
    assert_int_equal(t.escapes, 0);
    assert_int_equal(t.unexpected, 0);
}

/* Pull and unpack must agree (issue 13.2): every case that applies is also unpacked layer by
 * layer as `mar pull` stores layers (OCI_UNPACK_LAYER, settled against the layers under it),
 * mounted with overlayfs as `mar run` mounts them (nothing under a layer with an opaque root), and
 * the mount must list exactly the flattened tree. */
static bool differential(const kase *k)
{
    ctx c = {.mode = OCI_UNPACK_APPLY};
    setup_tree(&c);
    k->build(&c);
    mar_err *e = NULL;
    bool same = true;
    if (run_layers(&c, k, 0, &e) == REJECT) {
        mar_err_free(e);
        for (size_t i = 0; i < c.n; i++) {
            mar_buf_release(&c.tar[i]);
        }
        remove_tree(&c);
        return true;
    }
    int lfd[4];
    mar_buf opts = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xputs(&opts, "lowerdir=");
    size_t bottom = 0;
    for (size_t i = 0; i < c.n; i++) {
        _cleanup_free_ char *ld = mar_xasprintf("%s/l%zu", c.T, i);
        assert_int_equal(mkdir(ld, 0755), 0);
        lfd[i] = mar_root_open(ld, &e);
        assert_true(lfd[i] >= 0);
        _cleanup_close_ int b = layer_fd(&c, i, 0);
        oci_layer_limits lim;
        case_limits(k, &lim);
        oci_unpack_opts o = {.mode = OCI_UNPACK_LAYER, .lim = &lim};
        oci_unpack_result r;
        int lowers[4];
        for (size_t j = 0; j < i; j++) {
            lowers[j] = lfd[i - 1 - j];
        }
        oci_lview v = {.fds = lowers, .n = i};
        if (oci_unpack(b, lfd[i], &o, &r, &e) < 0 ||
            oci_layer_settle(lfd[i], &v, &r, NULL, &e) < 0) {
            print_error("DIFFERENT %s: applies, but as a stored layer %zu: %s\n", k->name, i,
                        e->msg);
            e = mar_err_free(e);
            same = false;
        }
        oci_unpack_result_release(&r);
        if (oci_lview_opaque_root(lfd[i])) {
            bottom = i;
        }
    }
    for (size_t i = c.n; same && i > bottom; i--) {
        mar_buf_xprintf(&opts, "%s%s/l%zu", i == c.n ? "" : ":", c.T, i - 1);
    }
    /* A read-only overlay needs two lower directories. */
    _cleanup_free_ char *empty = mar_xasprintf("%s/empty", c.T);
    _cleanup_free_ char *mnt = mar_xasprintf("%s/mnt", c.T);
    assert_int_equal(mkdir(empty, 0755), 0);
    assert_int_equal(mkdir(mnt, 0755), 0);
    mar_buf_xprintf(&opts, ":%s", empty);
    if (same && mount("overlay", mnt, "overlay", MS_RDONLY, opts.data) < 0) {
        fail_msg("%s: mount overlay (%s): %s", k->name, opts.data, strerror(errno));
    }
    if (same) {
        _cleanup_free_ char *a = tree_listing(c.root, TREE_INODES);
        _cleanup_free_ char *b = tree_listing(mnt, TREE_INODES);
        same = a && b && tree_equal(a, b, "mar unpack", "mar pull's layers");
        if (!same) {
            print_error("DIFFERENT %s: the trees differ (above)\n", k->name);
        }
        umount2(mnt, MNT_DETACH);
    }
    for (size_t i = 0; i < c.n; i++) {
        close(lfd[i]);
    }
    mar_buf_release(&opts);
    for (size_t i = 0; i < c.n; i++) {
        mar_buf_release(&c.tar[i]);
    }
    remove_tree(&c);
    return same;
}

static void test_differential(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        return; /* whiteout devices, trusted xattrs and overlay mounts need root */
    }
    size_t differ = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        differ += !differential(&cases[i]);
    }
    printf("unpack-differential  %zu cases  %zu different\n", MAR_ARRAY_SIZE(cases), differ);
    assert_int_equal(differ, 0);
}

/* Case 32: /etc/passwd as a FIFO or as a symlink to the host, read for USER. */
static void test_passwd_reads(void **state)
{
    (void)state;
    ctx c;
    setup_tree(&c);
    _cleanup_free_ char *etc = mar_xasprintf("%s/etc", c.root);
    mkdir(etc, 0755);
    _cleanup_free_ char *fifo = mar_xasprintf("%s/etc/passwd", c.root);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    _cleanup_free_ char *grp = mar_xasprintf("%s/etc/group", c.root);
    assert_int_equal(symlink("/etc/group", grp), 0);
    mar_err *e = NULL;
    int rootfd = mar_root_open(c.root, &e);
    mar_buf b = MAR_BUF_INIT(1 << 20);
    /* Refused without opening it for reading: an open would block forever on the FIFO (and the
     * test would end by CTest's timeout). */
    assert_true(mar_in_root_read(rootfd, "/etc/passwd", 1 << 20, &b, &e) < 0);
    e = mar_err_free(e);
    assert_true(mar_in_root_read(rootfd, "etc/group", 1 << 20, &b, &e) < 0);
    e = mar_err_free(e);
    close(rootfd);
    remove_tree(&c);
}

/* The symlink limit: a chain of MAR_SYMLINK_HOPS links resolves, one link more is a loop, as the
 * last component and in the middle of a path, through openat2 and through the walk alike. */
static void test_symlink_hops(void **state)
{
    (void)state;
    ctx c;
    setup_tree(&c);
    _cleanup_free_ char *d = mar_xasprintf("%s/d", c.root);
    assert_int_equal(mkdir(d, 0755), 0);
    _cleanup_free_ char *f = mar_xasprintf("%s/d/f", c.root);
    int wfd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(wfd >= 0);
    close(wfd);
    /* l0 -> d, l1 -> l0, ...: reaching d from l<i> follows i + 1 links. */
    for (int i = 0; i <= MAR_SYMLINK_HOPS; i++) {
        _cleanup_free_ char *l = mar_xasprintf("%s/l%d", c.root, i);
        _cleanup_free_ char *t = i ? mar_xasprintf("l%d", i - 1) : mar_xstrdup("/d");
        assert_int_equal(symlink(t, l), 0);
    }
    mar_err *e = NULL;
    int rootfd = mar_root_open(c.root, &e);
    assert_true(rootfd >= 0);
    /* The flags mar's callers use when following the last component. */
    static const int flags[] = {O_RDONLY, O_PATH, O_PATH | O_DIRECTORY};
    for (size_t k = 0; k < MAR_ARRAY_SIZE(flags); k++) {
        char ok[32], over[32];
        snprintf(ok, sizeof(ok), "l%d", MAR_SYMLINK_HOPS - 1);
        snprintf(over, sizeof(over), "l%d", MAR_SYMLINK_HOPS);
        int fd = mar_in_root_open(rootfd, ok, flags[k], 0);
        assert_true(fd >= 0);
        close(fd);
        errno = 0;
        assert_int_equal(mar_in_root_open(rootfd, over, flags[k], 0), -1);
        assert_int_equal(errno, ELOOP);
        snprintf(ok, sizeof(ok), "l%d/f", MAR_SYMLINK_HOPS - 1);
        snprintf(over, sizeof(over), "/l%d/f", MAR_SYMLINK_HOPS);
        fd = mar_in_root_open(rootfd, ok, flags[k] & ~O_DIRECTORY, 0);
        assert_true(fd >= 0);
        close(fd);
        errno = 0;
        assert_int_equal(mar_in_root_open(rootfd, over, flags[k] & ~O_DIRECTORY, 0), -1);
        assert_int_equal(errno, ELOOP);
    }
    close(rootfd);
    remove_tree(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_corpus),
            cmocka_unit_test(test_differential),
            cmocka_unit_test(test_passwd_reads),
            cmocka_unit_test(test_symlink_hops),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* The same corpus through the user-space walk that replaces openat2 on old kernels. Under
     * valgrind (which lacks openat2, so the walk already ran) the re-exec is skipped. */
    const char *pre = getenv("LD_PRELOAD");
    if (rc == 0 && getenv("MAR_NO_OPENAT2") == NULL && !(pre && strstr(pre, "vgpreload"))) {
        setenv("MAR_NO_OPENAT2", "1", 1);
        printf("again without openat2:\n");
        char *argv[] = {"/proc/self/exe", NULL};
        fflush(stdout);
        execv(argv[0], argv);
        return 1;
    }
    return rc;
}
