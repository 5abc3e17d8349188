/* The layer writer: mar's tar writer, the tree walk (plain and overlay upper directories) and the
 * blob codecs. Every layer is read back by mar's own reader and by independent ones (Python's
 * tarfile, GNU tar extracting into a directory, umoci when installed), the digests are recomputed
 * with sha256sum over the blob and over gzip -dc / zstd -dc, and the whiteout conversion is
 * checked by applying the layer with oci_unpack over the lower tree of a real overlay mount.
 *
 * `test-layer-write write DIR OUT [gzip|zstd|none] [THREADS] [LEVEL]` writes DIR as a layer and
 * prints what it wrote (bench/layer-write.sh drives it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "oci/oci.h"
#include "tbuf.h"
#include "treecmp.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>

static bool is_root;

/* ---- helpers -------------------------------------------------------------------------------- */

/* Runs a shell command; returns its exit status and (when out is set) its stdout. */
static int sh(char **out, const char *fmt, ...) MAR_PRINTF(2, 3);
static int sh(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *cmd = mar_xvasprintf(fmt, ap);
    va_end(ap);
    char *argv[] = {"sh", "-c", cmd, NULL};
    mar_proc_result r;
    mar_err *err = NULL;
    if (mar_proc_run(argv, NULL, 0, 64u << 20, 64u << 10, 120000, &r, &err) < 0) {
        fail_msg("cannot run '%s': %s", cmd, err->msg);
    }
    int st = r.status;
    if (st != 0) {
        fprintf(stderr, "'%s' exited %d: %s\n", cmd, st, r.errout.data);
    }
    if (out) {
        *out = mar_buf_detach(&r.out, NULL);
    }
    mar_proc_result_release(&r);
    return st;
}

static bool have(const char *prog)
{
    return sh(NULL, "command -v %s >/dev/null", prog) == 0;
}

static const char *python(void)
{
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static char *mktemp_dir(void)
{
    char *t = mar_xstrdup("/tmp/mar-lw-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

static void rm_rf(const char *p)
{
    sh(NULL, "rm -rf '%s'", p);
}

static void put(const char *root, const char *rel, const void *data, size_t n, unsigned mode)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", root, rel);
    int fd = openat(AT_FDCWD, p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void putstr(const char *root, const char *rel, const char *s)
{
    put(root, rel, s, strlen(s), 0644);
}

static void mkd(const char *root, const char *rel, unsigned mode)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", root, rel);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static void setx(const char *root, const char *rel, const char *name, const void *v, size_t n)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", root, rel);
    if (lsetxattr(p, name, v, n, 0) < 0) {
        fail_msg("setxattr %s on %s: %s", name, p, strerror(errno));
    }
}

static void set_mtime(const char *root, const char *rel, int64_t t)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", root, rel);
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* A security.capability value (VFS_CAP_REVISION_2, effective) granting CAP_NET_BIND_SERVICE. */
static const unsigned char cap_bind[20] = {0x01, 0, 0, 0x02, 0x00, 0x04};

/* ---- writing -------------------------------------------------------------------------------- */

static int write_layer(const char *dir, const oci_layer_write_opts *o, const char *out,
                       oci_layer_written *ret, mar_err **err)
{
    _cleanup_close_ int dfd = mar_root_open(dir, err);
    if (dfd < 0) {
        return -MAR_EIO;
    }
    _cleanup_close_ int ofd = openat(AT_FDCWD, out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(ofd >= 0);
    return oci_layer_write_dir(dfd, o, ofd, ret, err);
}

static void write_ok(const char *dir, const oci_layer_write_opts *o, const char *out,
                     oci_layer_written *ret)
{
    mar_err *err = NULL;
    if (write_layer(dir, o, out, ret, &err) < 0) {
        fail_msg("writing '%s': %s", dir, err->msg);
    }
}

static const char *codec_cat(oci_codec c)
{
    return c == OCI_CODEC_GZIP ? "gzip -dc" : c == OCI_CODEC_ZSTD ? "zstd -dcq" : "cat";
}

static char *read_all(const char *path, size_t *n);

/* diff_id, digest and sizes, recomputed by other programs. Leaves the tar at tar_out. */
static void check_digests(const char *blob, const oci_layer_written *w, const char *tar_out)
{
    _cleanup_free_ char *bsum = NULL, *tsum = NULL, *bsize = NULL, *tsize = NULL;
    assert_int_equal(sh(&bsum, "sha256sum '%s' | cut -c1-64", blob), 0);
    assert_int_equal(sh(NULL, "%s '%s' > '%s'", codec_cat(w->codec), blob, tar_out), 0);
    assert_int_equal(sh(&tsum, "sha256sum '%s' | cut -c1-64", tar_out), 0);
    assert_int_equal(sh(&bsize, "stat -c %%s '%s'", blob), 0);
    assert_int_equal(sh(&tsize, "stat -c %%s '%s'", tar_out), 0);
    _cleanup_free_ char *want_digest = mar_xasprintf("sha256:%.64s", bsum);
    _cleanup_free_ char *want_diff = mar_xasprintf("sha256:%.64s", tsum);
    assert_string_equal(w->digest.str, want_digest);
    assert_string_equal(w->diff_id.str, want_diff);
    assert_int_equal(w->size, strtoull(bsize, NULL, 10));
    assert_int_equal(w->uncompressed_size, strtoull(tsize, NULL, 10));
    assert_string_equal(w->media_type, oci_layer_media_type(w->codec));
    if (w->codec == OCI_CODEC_GZIP) {
        assert_int_equal(sh(NULL, "gzip -t '%s'", blob), 0);
        /* One gzip member (zlib stops at its end: nothing may follow), and a header without
         * a name, a time or an OS (RFC 1952 §2.3). */
        assert_int_equal(sh(NULL,
                            "%s -c 'import sys, zlib; b = open(sys.argv[1], \"rb\").read(); "
                            "d = zlib.decompressobj(31); d.decompress(b); "
                            "sys.exit(0 if d.eof and not d.unused_data else 1)' '%s'",
                            python(), blob),
                         0);
        size_t n;
        _cleanup_free_ char *b = read_all(blob, &n);
        assert_true(n > 10);
        assert_memory_equal(b, "\x1f\x8b\x08\x00\x00\x00\x00\x00", 8);
        assert_int_equal((unsigned char)b[9], 255);
    }
}

/* ---- reading back --------------------------------------------------------------------------- */

static int cmp_xattr_name(const void *a, const void *b)
{
    return strcmp(((const oci_xattr *)a)->name, ((const oci_xattr *)b)->name);
}

static void hex(mar_buf *b, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        T_BUF(mar_buf_printf(b, "%02x", ((const unsigned char *)p)[i]));
    }
}

/* The entries of a layer as mar's reader returns them, one line each, in tar order:
 * "TYPE PATH MODE UID:GID SIZE MTIME [-> LINK] [dev MAJ,MIN] [x:NAME=HEX...]". */
static char *mar_listing(const char *blob, mar_digest *ret_diff)
{
    _cleanup_close_ int fd = openat(AT_FDCWD, blob, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    mar_err *err = NULL;
    _cleanup_layer_ oci_layer_reader *r = NULL;
    if (oci_layer_open(fd, NULL, &r, &err) < 0) {
        fail_msg("mar cannot open '%s': %s", blob, err->msg);
    }
    static const char kinds[] = "fdlhcbpswoa";
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    const oci_layer_entry *e;
    int rc;
    while ((rc = oci_layer_next(r, &e, &err)) == 1) {
        T_BUF(mar_buf_printf(&b, "%c %s %04o %lld:%lld %lld %lld", kinds[e->kind], e->path, e->mode,
                             (long long)e->uid, (long long)e->gid,
                             (long long)(e->kind == OCI_ENTRY_FILE ? e->size : 0),
                             (long long)e->mtime));
        if (e->kind == OCI_ENTRY_SYMLINK || e->kind == OCI_ENTRY_HARDLINK) {
            T_BUF(mar_buf_printf(&b, " -> %s", e->link));
        }
        if (e->kind == OCI_ENTRY_CHAR || e->kind == OCI_ENTRY_BLOCK) {
            T_BUF(mar_buf_printf(&b, " dev %llu,%llu", (unsigned long long)e->devmajor,
                                 (unsigned long long)e->devminor));
        }
        oci_xattr *xs = mar_xcalloc(e->n_xattrs + 1, sizeof(*xs));
        if (e->n_xattrs) {
            memcpy(xs, e->xattrs, e->n_xattrs * sizeof(*xs));
        }
        qsort(xs, e->n_xattrs, sizeof(*xs), cmp_xattr_name);
        for (size_t i = 0; i < e->n_xattrs; i++) {
            T_BUF(mar_buf_printf(&b, " x:%s=", xs[i].name));
            hex(&b, xs[i].value, xs[i].size);
        }
        free(xs);
        T_BUF(mar_buf_puts(&b, "\n"));
    }
    if (rc < 0) {
        fail_msg("mar cannot read '%s': %s", blob, err->msg);
    }
    mar_digest d;
    assert_int_equal(oci_layer_finish(r, &d, NULL, &err), 0);
    if (ret_diff) {
        *ret_diff = d;
    }
    return mar_buf_detach(&b, NULL);
}

/* The same listing by Python's tarfile (tar or tar+gzip, decompressed with zlib), plus any PAX key
 * mar's writer is not supposed to write and any user or group name. */
static const char py_list[] =
        "import os, sys, tarfile\n"
        "known = {'path', 'linkpath', 'size', 'uid', 'gid', 'mtime', 'hdrcharset'}\n"
        "out = sys.stdout.buffer\n"
        "with tarfile.open(sys.argv[1], 'r:*', encoding='utf-8', errors='surrogateescape') as tf:\n"
        "    for m in tf:\n"
        "        name = os.fsencode(m.name)\n"
        "        d, _, base = name.rpartition(b'/')\n"
        "        t = b'?'\n"
        "        if m.isreg():\n"
        "            t = b'f'\n"
        "            if base == b'.wh..wh..opq':\n"
        "                t, name = b'o', d\n"
        "            elif base.startswith(b'.wh.'):\n"
        "                t, name = b'w', (d + b'/' if d else b'') + base[4:]\n"
        "        elif m.isdir(): t = b'd'\n"
        "        elif m.issym(): t = b'l'\n"
        "        elif m.islnk(): t = b'h'\n"
        "        elif m.ischr(): t = b'c'\n"
        "        elif m.isblk(): t = b'b'\n"
        "        elif m.isfifo(): t = b'p'\n"
        "        size = m.size if t == b'f' else 0\n"
        "        line = b'%s %s %04o %d:%d %d %d' % (t, name, m.mode & 0o7777, m.uid, m.gid,\n"
        "                                              size, int(m.mtime))\n"
        "        if t in (b'l', b'h'):\n"
        "            line += b' -> ' + os.fsencode(m.linkname)\n"
        "        if t in (b'c', b'b'):\n"
        "            line += b' dev %d,%d' % (m.devmajor, m.devminor)\n"
        "        for k in sorted(m.pax_headers):\n"
        "            v = m.pax_headers[k]\n"
        "            if k.startswith('SCHILY.xattr.'):\n"
        "                line += b' x:' + k[13:].encode('utf-8', 'surrogateescape') + b'=' + \\\n"
        "                        v.encode('utf-8', 'surrogateescape').hex().encode()\n"
        "            elif k not in known:\n"
        "                line += b' pax:' + k.encode()\n"
        "        if m.uname or m.gname:\n"
        "            line += b' names:' + m.uname.encode() + b':' + m.gname.encode()\n"
        "        out.write(line + b'\\n')\n";

static char *py_listing(const char *tar)
{
    char *out = NULL;
    assert_int_equal(sh(&out, "%s -c \"$(cat <<'EOF'\n%s\nEOF\n)\" '%s'", python(), py_list, tar),
                     0);
    return out;
}

/* libarchive with its own decompression filters reads every entry and all the data. */
static void check_libarchive(const char *blob, const char *listing)
{
    /* Names are UTF-8 in PAX records: read them in a UTF-8 locale, as mar's reader does. */
    locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    assert_true(loc != (locale_t)0);
    locale_t old = uselocale(loc);
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, blob, 65536), ARCHIVE_OK);
    struct archive_entry *ae;
    size_t n = 0;
    int rc;
    char buf[65536];
    while ((rc = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
        la_ssize_t got;
        while ((got = archive_read_data(a, buf, sizeof(buf))) > 0) {
        }
        assert_int_equal(got, 0);
        n++;
    }
    if (rc != ARCHIVE_EOF) {
        fail_msg("libarchive: %s", archive_error_string(a));
    }
    archive_read_free(a);
    uselocale(old);
    freelocale(loc);
    size_t lines = 0;
    for (const char *p = listing; *p; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(n, lines);
}

static void assert_same(const char *a, const char *b, const char *la, const char *lb)
{
    if (!tree_equal(a, b, la, lb)) {
        fail_msg("%s and %s differ", la, lb);
    }
}

/* mtime and xattrs of every entry under root ("PATH MTIME x:NAME=HEX..."), sorted. keep_all
 * false keeps only the xattrs mar's unpacker restores (user.*, security.capability). */
static void meta_walk(mar_strv *lines, const char *root, const char *rel, bool keep_all)
{
    _cleanup_free_ char *dir = *rel ? mar_xasprintf("%s/%s", root, rel) : mar_xstrdup(root);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
            continue;
        }
        _cleanup_free_ char *r =
                *rel ? mar_xasprintf("%s/%s", rel, de->d_name) : mar_xstrdup(de->d_name);
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", root, r);
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        if (S_ISSOCK(st.st_mode)) {
            continue;
        }
        mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
        T_BUF(mar_buf_printf(&b, "%s %lld", r, (long long)st.st_mtim.tv_sec));
        char names[4096];
        ssize_t n = llistxattr(p, names, sizeof(names));
        mar_strv xs = MAR_STRV_INIT;
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
            const char *nm = names + i;
            bool restorable =
                    mar_str_startswith(nm, "user.") || strcmp(nm, "security.capability") == 0;
            if (strcmp(nm, "security.selinux") == 0 || (!keep_all && !restorable)) {
                continue;
            }
            unsigned char v[4096];
            ssize_t vl = lgetxattr(p, nm, v, sizeof(v));
            assert_true(vl >= 0);
            mar_buf hb = MAR_BUF_INIT(MAR_BUF_NOCAP);
            hex(&hb, v, (size_t)vl);
            mar_strv_push_take(&xs, mar_xasprintf("x:%s=%s", nm, hb.data));
            mar_buf_release(&hb);
        }
        mar_strv_sort(&xs);
        for (size_t i = 0; i < xs.n; i++) {
            T_BUF(mar_buf_printf(&b, " %s", xs.v[i]));
        }
        mar_strv_release(&xs);
        mar_strv_push_take(lines, mar_buf_detach(&b, NULL));
        if (S_ISDIR(st.st_mode)) {
            meta_walk(lines, root, r, keep_all);
        }
    }
    closedir(d);
}

static char *meta_listing(const char *root, bool keep_all)
{
    mar_strv lines = MAR_STRV_INIT;
    meta_walk(&lines, root, "", keep_all);
    mar_strv_sort(&lines);
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < lines.n; i++) {
        T_BUF(mar_buf_printf(&b, "%s\n", lines.v[i]));
    }
    mar_strv_release(&lines);
    return mar_buf_detach(&b, NULL);
}

/* tree_listing without sockets, which a layer cannot hold. */
static char *listing_no_sockets(const char *root)
{
    _cleanup_free_ char *all = tree_listing(root, TREE_INODES | TREE_DIR_TIMES);
    assert_non_null(all);
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (char *line = all; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        char *sp = memchr(line, ' ', n);
        if (!(sp && sp[1] == 's' && sp[2] == ' ')) {
            T_BUF(mar_buf_append(&b, line, n));
        }
        line += n;
    }
    return mar_buf_detach(&b, NULL);
}

/* ---- the test tree -------------------------------------------------------------------------- */

static void random_bytes(unsigned char *p, size_t n, uint32_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

static void make_tree(const char *T)
{
    mkd(T, "dir", 0755);
    mkd(T, "dir/sub", 0700);
    mkd(T, "empty", 0755);
    mkd(T, "sticky", 01777);
    putstr(T, "small", "hello\n");
    putstr(T, "zero", "");
    put(T, "exec", "#!/bin/sh\n", 10, 0755);
    put(T, "setuid", "s", 1, 04755);
    put(T, "setgid", "g", 1, 02711);
    put(T, "dir/sub/private", "p", 1, 0600);
    /* 3 MiB: text, then random data, so several gzip chunks of both kinds. */
    size_t big_n = 3u << 20;
    unsigned char *big = mar_xmalloc(big_n);
    for (size_t i = 0; i < big_n / 2; i++) {
        big[i] = (unsigned char)("the quick brown fox jumps over the lazy dog\n"[i % 44]);
    }
    random_bytes(big + big_n / 2, big_n - big_n / 2, 7);
    put(T, "dir/big", big, big_n, 0644);
    free(big);
    /* Names: a 240-byte component, a path over 255 bytes, a path that needs the ustar prefix. */
    char c240[241], c100[101], c150[151];
    memset(c240, 'n', 240);
    c240[240] = '\0';
    memset(c100, 'p', 100);
    c100[100] = '\0';
    memset(c150, 'q', 150);
    c150[150] = '\0';
    putstr(T, c240, "long name");
    mkd(T, c100, 0755);
    _cleanup_free_ char *deep1 = mar_xasprintf("%s/%s", c100, c100);
    mkd(T, deep1, 0755);
    _cleanup_free_ char *deep2 = mar_xasprintf("%s/%s", deep1, c100);
    putstr(T, deep2, "over 255");
    _cleanup_free_ char *split = mar_xasprintf("%s/%s", c100, c150 + 60);
    putstr(T, split, "prefix split");
    mkd(T, "日本語", 0755);
    putstr(T, "日本語/ファイル", "utf-8");
    putstr(T, "naïve-ü.txt", "latin");
    /* Links. */
    _cleanup_free_ char *p = mar_xasprintf("%s/small", T);
    _cleanup_free_ char *q = mar_xasprintf("%s/dir/hard", T);
    assert_int_equal(link(p, q), 0);
    _cleanup_free_ char *q2 = mar_xasprintf("%s/dir/sub/hard2", T);
    assert_int_equal(link(p, q2), 0);
    struct {
        const char *name, *target;
    } links[] = {{"up", "../../../../etc/passwd"},
                 {"abs", "/etc"},
                 {"dangling", "nowhere"},
                 {"dir/uni", "日本語/ファイル"}};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(links); i++) {
        _cleanup_free_ char *l = mar_xasprintf("%s/%s", T, links[i].name);
        assert_int_equal(symlink(links[i].target, l), 0);
    }
    char target[301];
    memset(target, 't', 300);
    target[300] = '\0';
    _cleanup_free_ char *ll = mar_xasprintf("%s/longlink", T);
    assert_int_equal(symlink(target, ll), 0);
    /* Specials. */
    _cleanup_free_ char *fifo = mar_xasprintf("%s/fifo", T);
    assert_int_equal(mkfifo(fifo, 0640), 0);
    _cleanup_free_ char *sock = mar_xasprintf("%s/sock", T);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    mar_strlcpy(sa.sun_path, sock, sizeof(sa.sun_path));
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s);
    /* xattrs: text, binary with NULs, on a directory. */
    setx(T, "small", "user.comment", "hello", 5);
    setx(T, "dir", "user.bin", "\0\1\2=\n", 5);
    if (is_root) {
        _cleanup_free_ char *chr = mar_xasprintf("%s/null", T);
        assert_int_equal(mknod(chr, S_IFCHR | 0666, makedev(1, 3)), 0);
        _cleanup_free_ char *blk = mar_xasprintf("%s/loop", T);
        assert_int_equal(mknod(blk, S_IFBLK | 0660, makedev(7, 200)), 0);
        setx(T, "dir/sub", "trusted.kept", "t", 1);
        _cleanup_free_ char *a = mar_xasprintf("%s/exec", T);
        assert_int_equal(lchown(a, 1000, 1001), 0);
        _cleanup_free_ char *b = mar_xasprintf("%s/setgid", T);
        assert_int_equal(lchown(b, 3000000, 4000000), 0); /* beyond the ustar fields */
        assert_int_equal(chmod(b, 02711), 0);             /* chown cleared the bit */
        assert_int_equal(lchown(ll, 5, 6), 0);
        /* After the chown, which drops capabilities. */
        setx(T, "exec", "security.capability", cap_bind, sizeof(cap_bind));
    }
    set_mtime(T, "small", 1700000000);
    set_mtime(T, "zero", 1);
    set_mtime(T, "exec", -86400); /* before the epoch: a PAX mtime */
    set_mtime(T, "up", 1600000000);
    set_mtime(T, "dir/sub", 1500000000);
    set_mtime(T, "dir", 1400000000);
}

/* ---- tests: the tar writer ------------------------------------------------------------------ */

static int buf_sink(void *ud, const void *p, size_t n, mar_err **err)
{
    (void)err;
    return mar_buf_append(ud, p, n) < 0 ? -MAR_EFAIL : 0;
}

static char *save(const mar_buf *b, const char *dir, const char *name)
{
    char *p = mar_xasprintf("%s/%s", dir, name);
    int fd = openat(AT_FDCWD, p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b->data, b->len), (ssize_t)b->len);
    close(fd);
    return p;
}

/* Headers mar writes by hand: every PAX case, read back by mar and by Python alike. */
static void test_tarw_encoding(void **state)
{
    (void)state;
    _cleanup_free_ char *T = mktemp_dir();
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    _cleanup_tarw_ oci_tarw *w = oci_tarw_new(NULL, buf_sink, &b);
    mar_err *err = NULL;
    char longp[400];
    memset(longp, 'a', sizeof(longp));
    for (size_t i = 50; i < sizeof(longp); i += 51) {
        longp[i] = '/';
    }
    longp[sizeof(longp) - 1] = '\0';
    oci_xattr xs[] = {{"user.z", "2", 1}, {"security.capability", cap_bind, sizeof(cap_bind)}};
    oci_layer_entry es[] = {
            {.kind = OCI_ENTRY_DIR, .path = "d", .mode = 0755, .mtime = 5},
            {.kind = OCI_ENTRY_FILE, .path = "d/short", .mode = 0644, .size = 3, .mtime = 7},
            {.kind = OCI_ENTRY_FILE, .path = longp, .mode = 04755, .uid = 2097152, .gid = 7},
            {.kind = OCI_ENTRY_FILE, .path = "d/ü", .mode = 0600, .mtime = -1},
            {.kind = OCI_ENTRY_FILE, .path = "d/bin\xff", .mode = 0600, .mtime = 8589934592},
            {.kind = OCI_ENTRY_SYMLINK, .path = "d/l", .link = longp, .mode = 0777},
            {.kind = OCI_ENTRY_HARDLINK, .path = "d/h", .link = "d/short", .mode = 0644},
            {.kind = OCI_ENTRY_FILE, .path = "d/x", .mode = 0644, .xattrs = xs, .n_xattrs = 2},
            {.kind = OCI_ENTRY_CHAR,
             .path = "d/c",
             .mode = 0666,
             .devmajor = 4095,
             .devminor = 1048575},
            {.kind = OCI_ENTRY_FIFO, .path = "d/p", .mode = 0600},
            {.kind = OCI_ENTRY_WHITEOUT, .path = "d/gone", .mode = 0644},
            {.kind = OCI_ENTRY_OPAQUE, .path = "d", .mode = 0644},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(es); i++) {
        if (oci_tarw_add(w, &es[i], &err) < 0) {
            fail_msg("entry %zu: %s", i, err->msg);
        }
        if (es[i].size) {
            assert_int_equal(oci_tarw_write(w, "abc", 3, &err), 0);
        }
    }
    assert_int_equal(oci_tarw_finish(w, &err), 0);
    assert_int_equal(oci_tarw_entries(w), MAR_ARRAY_SIZE(es));
    /* Whole blocks, two zero blocks at the end, the short ASCII entries without PAX. */
    assert_int_equal(b.len % 512, 0);
    for (size_t i = b.len - 1024; i < b.len; i++) {
        assert_int_equal(b.data[i], 0);
    }
    assert_int_equal(b.data[156], '5');
    assert_string_equal(b.data, "d/");
    assert_int_equal(b.data[512 + 156], '0');
    assert_memory_equal(b.data + 257,
                        "ustar\0"
                        "00",
                        8);
    assert_int_equal(b.data[265], 0); /* no user name */
    assert_int_equal(b.data[297], 0); /* no group name */
    _cleanup_free_ char *tar = save(&b, T, "t.tar");
    _cleanup_free_ char *m = mar_listing(tar, NULL);
    _cleanup_free_ char *py = py_listing(tar);
    assert_same(m, py, "mar", "python");
    _cleanup_free_ char *want = mar_xasprintf(
            "d d 0755 0:0 0 5\n"
            "f d/short 0644 0:0 3 7\n"
            "f %s 4755 2097152:7 0 0\n"
            "f d/ü 0600 0:0 0 -1\n"
            "f d/bin\xff 0600 0:0 0 8589934592\n"
            "l d/l 0777 0:0 0 0 -> %s\n"
            "h d/h 0644 0:0 0 0 -> d/short\n"
            "f d/x 0644 0:0 0 0 x:security.capability=0100000200040000000000000000000000000000 "
            "x:user.z=32\n"
            "c d/c 0666 0:0 0 0 dev 4095,1048575\n"
            "p d/p 0600 0:0 0 0\n"
            "w d/gone 0644 0:0 0 0\n"
            "o d 0644 0:0 0 0\n",
            longp, longp);
    assert_same(m, want, "mar", "expected");
    /* GNU tar lists the same names. */
    _cleanup_free_ char *gnu = NULL;
    assert_int_equal(sh(&gnu, "tar -tf '%s' | wc -l", tar), 0);
    assert_int_equal(strtol(gnu, NULL, 10), (long)MAR_ARRAY_SIZE(es));
    mar_buf_release(&b);
    rm_rf(T);
}

/* A size beyond ustar's 8 GiB goes into PAX: the header alone is checked, by Python. */
static void test_tarw_huge_size(void **state)
{
    (void)state;
    _cleanup_free_ char *T = mktemp_dir();
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    _cleanup_tarw_ oci_tarw *w = oci_tarw_new(NULL, buf_sink, &b);
    mar_err *err = NULL;
    oci_layer_entry e = {.kind = OCI_ENTRY_FILE, .path = "huge", .mode = 0644, .size = 10ll << 30};
    assert_int_equal(oci_tarw_add(w, &e, &err), 0);
    _cleanup_free_ char *tar = save(&b, T, "h.tar");
    _cleanup_free_ char *out = NULL;
    assert_int_equal(sh(&out,
                        "%s -c 'import sys, tarfile; t = tarfile.open(sys.argv[1], \"r|\"); "
                        "m = t.next(); print(m.name, m.size)' '%s'",
                        python(), tar),
                     0);
    assert_string_equal(out, "huge 10737418240\n");
    /* Finishing without the data is refused. */
    assert_int_equal(oci_tarw_finish(w, &err), -MAR_EINTEGRITY);
    assert_non_null(strstr(err->msg, "huge"));
    mar_err_free(err);
    mar_buf_release(&b);
    rm_rf(T);
}

static void expect_refused(const oci_layer_entry *e, int code, const char *what)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    _cleanup_tarw_ oci_tarw *w = oci_tarw_new(NULL, buf_sink, &b);
    mar_err *err = NULL;
    int rc = oci_tarw_add(w, e, &err);
    if (rc != -code) {
        fail_msg("%s: got %d (%s), want %d", what, rc, err ? err->msg : "no error", -code);
    }
    assert_int_equal(b.len, 0);
    mar_err_free(err);
    mar_buf_release(&b);
}

static void test_tarw_refusals(void **state)
{
    (void)state;
    expect_refused(&(oci_layer_entry){.kind = OCI_ENTRY_FILE, .path = "a/../b"}, MAR_EINTEGRITY,
                   "unclean");
    expect_refused(&(oci_layer_entry){.kind = OCI_ENTRY_FILE, .path = "/etc/x"}, MAR_EINTEGRITY,
                   "absolute");
    expect_refused(&(oci_layer_entry){.kind = OCI_ENTRY_FILE, .path = ""}, MAR_EINTEGRITY, "empty");
    expect_refused(&(oci_layer_entry){.kind = OCI_ENTRY_FILE, .path = "d/.wh.x"}, MAR_EINTEGRITY,
                   "reserved name");
    expect_refused(&(oci_layer_entry){.kind = OCI_ENTRY_SOCKET, .path = "s"}, MAR_EUNSUPPORTED,
                   "socket");
    expect_refused(&(oci_layer_entry){.kind = OCI_ENTRY_HARDLINK, .path = "h", .link = "../x"},
                   MAR_EINTEGRITY, "link out");
    expect_refused(&(oci_layer_entry){.kind = OCI_ENTRY_SYMLINK, .path = "l", .link = ""},
                   MAR_EINTEGRITY, "empty symlink");
    expect_refused(&(oci_layer_entry){.kind = OCI_ENTRY_OPAQUE, .path = ""}, MAR_EINTEGRITY,
                   "opaque root");
    oci_xattr bad = {"user.a=b", "v", 1};
    expect_refused(
            &(oci_layer_entry){.kind = OCI_ENTRY_FILE, .path = "x", .xattrs = &bad, .n_xattrs = 1},
            MAR_EUNSUPPORTED, "xattr name with '='");
    /* More data than announced, and a writer that failed stays failed. */
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    _cleanup_tarw_ oci_tarw *w = oci_tarw_new(NULL, buf_sink, &b);
    mar_err *err = NULL;
    oci_layer_entry e = {.kind = OCI_ENTRY_FILE, .path = "f", .size = 2};
    assert_int_equal(oci_tarw_add(w, &e, &err), 0);
    assert_int_equal(oci_tarw_write(w, "abc", 3, &err), -MAR_EINTEGRITY);
    err = mar_err_free(err);
    assert_int_equal(oci_tarw_finish(w, &err), -MAR_EINTEGRITY);
    mar_err_free(err);
    mar_buf_release(&b);
}

/* A file that is not the size its entry says is refused, whichever way it differs. */
static void test_tarw_add_fd_sizes(void **state)
{
    (void)state;
    for (int grow = 0; grow < 2; grow++) {
        int fd = memfd_create("f", MFD_CLOEXEC);
        assert_int_equal(write(fd, "12345", 5), 5);
        lseek(fd, 0, SEEK_SET);
        mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
        _cleanup_tarw_ oci_tarw *w = oci_tarw_new(NULL, buf_sink, &b);
        mar_err *err = NULL;
        oci_layer_entry e = {.kind = OCI_ENTRY_FILE, .path = "f", .size = grow ? 4 : 6};
        assert_int_equal(oci_tarw_add_fd(w, &e, fd, "f", &err), -MAR_EIO);
        assert_non_null(strstr(err->msg, grow ? "grew" : "shrank"));
        mar_err_free(err);
        mar_buf_release(&b);
        close(fd);
    }
}

/* ---- tests: trees --------------------------------------------------------------------------- */

/* Extracts a layer with umoci (Go's archive/tar behind it) from an OCI layout made around it. */
static bool umoci_unpack(const char *T, const char *blob, const oci_layer_written *w,
                         const char *rootfs)
{
    if (!have("umoci")) {
        fprintf(stderr, "umoci not installed: skipping the Go reader\n");
        return false;
    }
    if (w->codec == OCI_CODEC_ZSTD) {
        /* umoci 0.4 knows no zstd layers; the same tar (same DiffID) goes through it as the
         * uncompressed and gzip cases. */
        return false;
    }
    _cleanup_free_ char *L = mar_xasprintf("%s/layout", T);
    rm_rf(L);
    _cleanup_free_ char *cfg =
            mar_xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
                          "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                          w->diff_id.str);
    mar_digest cd;
    mar_digest_of(MAR_DIGEST_SHA256, cfg, strlen(cfg), &cd);
    _cleanup_free_ char *man = mar_xasprintf(
            "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST "\","
            "\"config\":{\"mediaType\":\"" OCI_MT_CONFIG "\",\"digest\":\"%s\",\"size\":%zu},"
            "\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu}]}",
            cd.str, strlen(cfg), w->media_type, w->digest.str, (unsigned long long)w->size);
    mar_digest md;
    mar_digest_of(MAR_DIGEST_SHA256, man, strlen(man), &md);
    _cleanup_free_ char *idx = mar_xasprintf(
            "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" OCI_MT_MANIFEST "\","
            "\"digest\":\"%s\",\"size\":%zu,"
            "\"annotations\":{\"org.opencontainers.image.ref.name\":\"t\"}}]}",
            md.str, strlen(man));
    assert_int_equal(sh(NULL,
                        "set -e; mkdir -p '%s/blobs/sha256'; cd '%s';"
                        "echo '{\"imageLayoutVersion\":\"1.0.0\"}' > oci-layout;"
                        "printf '%%s' '%s' > index.json;"
                        "printf '%%s' '%s' > blobs/sha256/%s;"
                        "printf '%%s' '%s' > blobs/sha256/%s;"
                        "cp '%s' blobs/sha256/%s",
                        L, L, idx, cfg, mar_digest_hex(&cd), man, mar_digest_hex(&md), blob,
                        mar_digest_hex(&w->digest)),
                     0);
    _cleanup_free_ char *out = NULL;
    int st = sh(&out, "umoci raw unpack --image '%s:t' '%s' 2>&1", L, rootfs);
    if (st != 0) {
        fail_msg("umoci raw unpack failed: %s", out);
    }
    return true;
}

static void roundtrip(oci_codec codec, unsigned threads)
{
    _cleanup_free_ char *T = mktemp_dir();
    _cleanup_free_ char *src = mar_xasprintf("%s/src", T);
    assert_int_equal(mkdir(src, 0755), 0);
    make_tree(src);
    _cleanup_free_ char *blob = mar_xasprintf("%s/layer", T);
    _cleanup_free_ char *tar = mar_xasprintf("%s/layer.tar", T);
    oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
    o.codec = codec;
    o.threads = threads;
    oci_layer_written w;
    write_ok(src, &o, blob, &w);
    assert_int_equal(w.codec, codec);
    assert_int_equal(w.stats.skipped, 1); /* the socket */
    assert_int_equal(w.stats.hardlinks, 2);
    check_digests(blob, &w, tar);

    /* mar's reader agrees with Python's tarfile, entry by entry and in order. */
    mar_digest diff;
    _cleanup_free_ char *m = mar_listing(blob, &diff);
    assert_true(mar_digest_eq(&diff, &w.diff_id));
    _cleanup_free_ char *py = py_listing(codec == OCI_CODEC_GZIP ? blob : tar);
    assert_same(m, py, "mar", "python");
    assert_null(strstr(m, "sock"));
    check_libarchive(blob, m);
    assert_non_null(strstr(m, "\nh dir/sub/hard2 0644 0:0 0 1700000000 -> dir/hard\n"));
    assert_non_null(strstr(m, "\nl up 0777 0:0 0 1600000000 -> ../../../../etc/passwd\n"));
    if (is_root) {
        assert_non_null(strstr(m, "\nf setgid 2711 3000000:4000000 1 "));
        assert_non_null(strstr(m, "x:security.capability=01000002"));
    }

    /* GNU tar extracts the same tree: types, modes, owners, contents, links, directory times,
     * file times and xattrs. */
    _cleanup_free_ char *gx = mar_xasprintf("%s/gnu", T);
    assert_int_equal(mkdir(gx, 0755), 0);
    assert_int_equal(sh(NULL, "tar --xattrs --xattrs-include='*' --numeric-owner -xpf '%s' -C '%s'",
                        tar, gx),
                     0);
    _cleanup_free_ char *ls = listing_no_sockets(src), *lg = listing_no_sockets(gx);
    assert_same(ls, lg, "source", "GNU tar");
    _cleanup_free_ char *ms = meta_listing(src, true), *mg = meta_listing(gx, true);
    assert_same(ms, mg, "source", "GNU tar");

    /* umoci (Go) unpacks it to the same tree. */
    _cleanup_free_ char *ux = mar_xasprintf("%s/umoci", T);
    if (umoci_unpack(T, blob, &w, ux)) {
        _cleanup_free_ char *lu = listing_no_sockets(ux);
        assert_same(ls, lu, "source", "umoci");
    }

    /* mar's unpacker restores it too (the xattrs it restores: user.*, security.capability). */
    _cleanup_free_ char *mx = mar_xasprintf("%s/mar", T);
    assert_int_equal(mkdir(mx, 0755), 0);
    mar_err *err = NULL;
    _cleanup_close_ int rfd = mar_root_open(mx, &err);
    _cleanup_close_ int bfd = openat(AT_FDCWD, blob, O_RDONLY | O_CLOEXEC);
    oci_unpack_opts uo = {.mode = OCI_UNPACK_APPLY, .expect_diff_id = &w.diff_id};
    oci_unpack_result ur;
    if (oci_unpack(bfd, rfd, &uo, &ur, &err) < 0) {
        fail_msg("oci_unpack: %s", err->msg);
    }
    oci_unpack_result_release(&ur);
    _cleanup_free_ char *lm = listing_no_sockets(mx);
    assert_same(ls, lm, "source", "mar unpack");
    _cleanup_free_ char *ms2 = meta_listing(src, false), *mm = meta_listing(mx, false);
    assert_same(ms2, mm, "source", "mar unpack");
    rm_rf(T);
}

static void test_roundtrip_tar(void **state)
{
    (void)state;
    roundtrip(OCI_CODEC_NONE, 1);
}

static void test_roundtrip_gzip(void **state)
{
    (void)state;
    roundtrip(OCI_CODEC_GZIP, 1);
}

static void test_roundtrip_gzip_parallel(void **state)
{
    (void)state;
    roundtrip(OCI_CODEC_GZIP, 3);
}

static void test_roundtrip_zstd(void **state)
{
    (void)state;
    roundtrip(OCI_CODEC_ZSTD, 2);
}

static char *read_all(const char *path, size_t *n)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_err *err = NULL;
    if (mar_read_file_at(AT_FDCWD, path, SIZE_MAX / 2, &b, &err) < 0) {
        fail_msg("%s", err->msg);
    }
    return mar_buf_detach(&b, n);
}

static void assert_same_file(const char *a, const char *b)
{
    size_t na, nb;
    _cleanup_free_ char *da = read_all(a, &na), *db = read_all(b, &nb);
    if (na != nb || memcmp(da, db, na) != 0) {
        fail_msg("'%s' (%zu bytes) and '%s' (%zu bytes) differ", a, na, b, nb);
    }
}

/* The same tree gives the same bytes: again, with any number of threads, and from a copy whose
 * inodes and directory order differ. */
static void test_determinism(void **state)
{
    (void)state;
    _cleanup_free_ char *T = mktemp_dir();
    _cleanup_free_ char *src = mar_xasprintf("%s/src", T);
    assert_int_equal(mkdir(src, 0755), 0);
    make_tree(src);
    /* More data, so that parallel gzip has chunks to share out. */
    unsigned char *more = mar_xmalloc(5u << 20);
    for (size_t i = 0; i < (5u << 20); i++) {
        more[i] = (unsigned char)(i * 31 / 7);
    }
    random_bytes(more + (2u << 20), 1u << 20, 3);
    put(src, "dir/more", more, 5u << 20, 0644);
    free(more);
    set_mtime(src, "dir", 1400000000);
    _cleanup_free_ char *copy = mar_xasprintf("%s/copy", T);
    assert_int_equal(sh(NULL, "cp -a '%s' '%s'", src, copy), 0);
    static const struct {
        oci_codec codec;
        int level;
        unsigned threads[3];
    } cases[] = {
            {OCI_CODEC_GZIP, 0, {1, 2, 5}},
            {OCI_CODEC_GZIP, 3, {3, 1, 2}},
            {OCI_CODEC_ZSTD, 0, {1, 2, 3}},
            {OCI_CODEC_NONE, 0, {1, 1, 1}},
    };
    mar_digest diff_ids[MAR_ARRAY_SIZE(cases)];
    for (size_t c = 0; c < MAR_ARRAY_SIZE(cases); c++) {
        _cleanup_free_ char *first = NULL;
        oci_layer_written w0 = {0};
        for (size_t i = 0; i < 4; i++) {
            oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
            o.codec = cases[c].codec;
            o.level = cases[c].level;
            o.threads = cases[c].threads[i % 3];
            _cleanup_free_ char *out = mar_xasprintf("%s/l-%zu-%zu", T, c, i);
            oci_layer_written w;
            write_ok(i == 3 ? copy : src, &o, out, &w);
            if (!first) {
                first = TAKE_PTR(out);
                w0 = w;
                diff_ids[c] = w.diff_id;
                continue;
            }
            assert_same_file(first, out);
            assert_string_equal(w.digest.str, w0.digest.str);
            assert_string_equal(w.diff_id.str, w0.diff_id.str);
        }
    }
    /* One tar whatever the codec. */
    for (size_t c = 1; c < MAR_ARRAY_SIZE(cases); c++) {
        assert_string_equal(diff_ids[0].str, diff_ids[c].str);
    }
    rm_rf(T);
}

/* SOURCE_DATE_EPOCH clamping and --chown rewrite every entry, and only those fields. */
static void test_clamp_and_owner(void **state)
{
    (void)state;
    _cleanup_free_ char *T = mktemp_dir();
    _cleanup_free_ char *src = mar_xasprintf("%s/src", T);
    assert_int_equal(mkdir(src, 0755), 0);
    mkd(src, "d", 0750);
    putstr(src, "d/new", "new");
    putstr(src, "old", "old");
    set_mtime(src, "d/new", 2000000000);
    set_mtime(src, "old", 1000000000);
    set_mtime(src, "d", 1800000000);
    _cleanup_free_ char *blob = mar_xasprintf("%s/l", T);
    oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
    o.codec = OCI_CODEC_NONE;
    o.tar = (oci_tarw_opts){.set_owner = true,
                            .uid = 1234,
                            .gid = 99,
                            .clamp_mtime = true,
                            .mtime_max = 1500000000};
    oci_layer_written w;
    write_ok(src, &o, blob, &w);
    _cleanup_free_ char *m = mar_listing(blob, NULL);
    assert_same(m,
                "d d 0750 1234:99 0 1500000000\n"
                "f d/new 0644 1234:99 3 1500000000\n"
                "f old 0644 1234:99 3 1000000000\n",
                "mar", "expected");
    rm_rf(T);
}

/* What a COPY from a build context does without staging: entries of its own, then a tree below
 * a prefix, through the lower-level API into one blob. */
static void test_entries_and_prefix(void **state)
{
    (void)state;
    _cleanup_free_ char *T = mktemp_dir();
    _cleanup_free_ char *src = mar_xasprintf("%s/ctx", T);
    assert_int_equal(mkdir(src, 0755), 0);
    mkd(src, "lib", 0755);
    putstr(src, "lib/a.txt", "a");
    putstr(src, "main.py", "print()");
    set_mtime(src, "lib/a.txt", 1000);
    set_mtime(src, "main.py", 1000);
    set_mtime(src, "lib", 1000);
    _cleanup_free_ char *blob = mar_xasprintf("%s/l", T);
    _cleanup_close_ int ofd =
            openat(AT_FDCWD, blob, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    _cleanup_close_ int dfd = openat(AT_FDCWD, src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    mar_err *err = NULL;
    _cleanup_layer_out_ oci_layer_out *z = NULL;
    assert_int_equal(oci_layer_out_new(OCI_CODEC_GZIP, 3, 2, ofd, &z, &err), 0);
    oci_tarw_opts to = {.set_owner = true, .uid = 10, .gid = 20};
    _cleanup_tarw_ oci_tarw *w = oci_tarw_new(&to, oci_layer_out_sink, z);
    oci_layer_entry app = {.kind = OCI_ENTRY_DIR, .path = "app", .mode = 0755, .mtime = 5};
    assert_int_equal(oci_tarw_add(w, &app, &err), 0);
    oci_tree_stats st;
    if (oci_tarw_add_tree(w, dfd, "app", NULL, &st, &err) < 0) {
        fail_msg("%s", err->msg);
    }
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.files, 2);
    assert_int_equal(st.bytes, 8);
    oci_layer_entry ver = {.kind = OCI_ENTRY_FILE, .path = "app/VERSION", .mode = 0444, .size = 2};
    assert_int_equal(oci_tarw_add(w, &ver, &err), 0);
    assert_int_equal(oci_tarw_write(w, "1\n", 2, &err), 0);
    assert_int_equal(oci_tarw_finish(w, &err), 0);
    oci_layer_written res;
    assert_int_equal(oci_layer_out_finish(z, &res, &err), 0);
    assert_string_equal(res.media_type, OCI_MT_LAYER_GZIP);
    /* Nothing more can be written to a finished blob. */
    assert_int_equal(oci_layer_out_write(z, "x", 1, &err), -MAR_EFAIL);
    err = mar_err_free(err);
    _cleanup_free_ char *tar = mar_xasprintf("%s/l.tar", T);
    check_digests(blob, &res, tar);
    _cleanup_free_ char *m = mar_listing(blob, NULL);
    assert_same(m,
                "d app 0755 10:20 0 5\n"
                "d app/lib 0755 10:20 0 1000\n"
                "f app/lib/a.txt 0644 10:20 1 1000\n"
                "f app/main.py 0644 10:20 7 1000\n"
                "f app/VERSION 0444 10:20 2 0\n",
                "mar", "expected");
    /* A prefix must be a clean relative path. */
    assert_int_equal(oci_tarw_add_tree(w, dfd, "../x", NULL, NULL, &err), -MAR_EINTEGRITY);
    mar_err_free(err);
    rm_rf(T);
}

/* A symlink is archived as itself, never followed, wherever it points. */
static void test_symlinks_not_followed(void **state)
{
    (void)state;
    _cleanup_free_ char *T = mktemp_dir();
    _cleanup_free_ char *src = mar_xasprintf("%s/src", T);
    _cleanup_free_ char *outside = mar_xasprintf("%s/outside", T);
    assert_int_equal(mkdir(src, 0755), 0);
    assert_int_equal(mkdir(outside, 0755), 0);
    putstr(outside, "secret", "secret");
    _cleanup_free_ char *l1 = mar_xasprintf("%s/to-outside", src);
    assert_int_equal(symlink(outside, l1), 0);
    _cleanup_free_ char *l2 = mar_xasprintf("%s/to-secret", src);
    assert_int_equal(symlink("../outside/secret", l2), 0);
    _cleanup_free_ char *l3 = mar_xasprintf("%s/to-root", src);
    assert_int_equal(symlink("/", l3), 0);
    _cleanup_free_ char *blob = mar_xasprintf("%s/l", T);
    oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
    oci_layer_written w;
    write_ok(src, &o, blob, &w);
    assert_int_equal(w.stats.entries, 3);
    assert_int_equal(w.stats.symlinks, 3);
    _cleanup_free_ char *m = mar_listing(blob, NULL);
    _cleanup_free_ char *want = mar_xasprintf("l to-outside 0777 0:0 0 %%d -> %s\n"
                                              "l to-root 0777 0:0 0 %%d -> /\n"
                                              "l to-secret 0777 0:0 0 %%d -> ../outside/secret\n",
                                              outside);
    /* Symlink times are whatever the clock said: compare without them. */
    mar_buf got = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (char *line = m; *line;) {
        char *nl = strchr(line, '\n');
        char *t = line;
        for (int sp = 0; sp < 5; t++) {
            sp += *t == ' ';
        }
        char *end = strchr(t, ' ');
        T_BUF(mar_buf_printf(&got, "%.*s%%d%.*s", (int)(t - line), line, (int)(nl - end), end));
        T_BUF(mar_buf_puts(&got, "\n"));
        line = nl + 1;
    }
    assert_same(got.data, want, "mar", "expected");
    mar_buf_release(&got);
    rm_rf(T);
}

static void test_tree_refusals(void **state)
{
    (void)state;
    _cleanup_free_ char *T = mktemp_dir();
    _cleanup_free_ char *src = mar_xasprintf("%s/src", T);
    assert_int_equal(mkdir(src, 0755), 0);
    mkd(src, "d", 0755);
    putstr(src, "d/.wh.looks-like-a-whiteout", "");
    _cleanup_free_ char *blob = mar_xasprintf("%s/l", T);
    oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
    oci_layer_written w;
    mar_err *err = NULL;
    assert_int_equal(write_layer(src, &o, blob, &w, &err), -MAR_EINTEGRITY);
    assert_non_null(strstr(err->msg, "d/.wh.looks-like-a-whiteout"));
    err = mar_err_free(err);
    /* A path beyond what a layer may hold. */
    rm_rf(src);
    assert_int_equal(mkdir(src, 0755), 0);
    char comp[201];
    memset(comp, 'c', 200);
    comp[200] = '\0';
    int dfd = openat(AT_FDCWD, src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < 21; i++) { /* beyond PATH_MAX: one directory fd at a time */
        assert_int_equal(mkdirat(dfd, comp, 0755), 0);
        int sub = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(sub >= 0);
        close(dfd);
        dfd = sub;
    }
    close(dfd);
    assert_int_equal(write_layer(src, &o, blob, &w, &err), -MAR_EUNSUPPORTED);
    assert_non_null(strstr(err->msg, "ccc"));
    mar_err_free(err);
    rm_rf(T);
}

/* ---- tests: overlay upper directories ------------------------------------------------------- */

/* An upper directory made by hand: whiteout devices (one hard-linked, as overlayfs shares one
 * whiteout inode), an xattr whiteout, an opaque directory, overlay bookkeeping xattrs. */
static void fake_upper(const char *U, const char *ns)
{
    _cleanup_free_ char *opq = mar_xasprintf("%sopaque", ns);
    _cleanup_free_ char *origin = mar_xasprintf("%sorigin", ns);
    _cleanup_free_ char *wh = mar_xasprintf("%swhiteout", ns);
    mkd(U, "a", 0755);
    mkd(U, "a/opq", 0711);
    putstr(U, "a/opq/new", "new");
    putstr(U, "a/kept", "kept");
    putstr(U, "a/xwh", "");
    setx(U, "a/opq", opq, "y", 1);
    setx(U, "a/kept", origin, "\0\1", 2);
    setx(U, "a/kept", "user.keep", "1", 1);
    setx(U, "a/xwh", wh, "", 0);
    mkd(U, "a/notopq", 0755);
    setx(U, "a/notopq", opq, "x", 1); /* "x": holds xattr whiteouts, not opaque */
    _cleanup_free_ char *w1 = mar_xasprintf("%s/a/gone", U);
    assert_int_equal(mknod(w1, S_IFCHR, makedev(0, 0)), 0);
    _cleanup_free_ char *w2 = mar_xasprintf("%s/zz-gone", U);
    assert_int_equal(link(w1, w2), 0);
    set_mtime(U, "a/opq/new", 100);
    set_mtime(U, "a/kept", 100);
    set_mtime(U, "a/xwh", 100);
    set_mtime(U, "a/gone", 100);
    set_mtime(U, "a/opq", 200);
    set_mtime(U, "a/notopq", 200);
    set_mtime(U, "a", 300);
}

static void overlay_fake(bool userxattr)
{
    _cleanup_free_ char *T = mktemp_dir();
    _cleanup_free_ char *U = mar_xasprintf("%s/upper", T);
    assert_int_equal(mkdir(U, 0755), 0);
    fake_upper(U, userxattr ? "user.overlay." : "trusted.overlay.");
    _cleanup_free_ char *blob = mar_xasprintf("%s/l", T);
    oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
    o.tree = (oci_tree_opts){.kind = OCI_TREE_OVERLAY_UPPER, .userxattr = userxattr};
    oci_layer_written w;
    write_ok(U, &o, blob, &w);
    assert_int_equal(w.stats.whiteouts, 3);
    assert_int_equal(w.stats.opaques, 1);
    assert_int_equal(w.stats.hardlinks, 0);
    _cleanup_free_ char *m = mar_listing(blob, NULL);
    /* Whiteouts first in each directory, the opaque marker right after its directory, overlay's
     * xattrs gone, the rest kept. */
    assert_same(m,
                "w zz-gone 0644 0:0 0 100\n"
                "d a 0755 0:0 0 300\n"
                "w a/gone 0644 0:0 0 100\n"
                "w a/xwh 0644 0:0 0 100\n"
                "f a/kept 0644 0:0 4 100 x:user.keep=31\n"
                "d a/notopq 0755 0:0 0 200\n"
                "d a/opq 0711 0:0 0 200\n"
                "o a/opq 0644 0:0 0 200\n"
                "f a/opq/new 0644 0:0 3 100\n",
                "mar", "expected");
    /* In plain mode the same tree is taken literally (devices stay devices, "a/xwh" a file),
     * but overlay's xattrs are still not archived. */
    o.tree.kind = OCI_TREE_PLAIN;
    write_ok(U, &o, blob, &w);
    _cleanup_free_ char *p = mar_listing(blob, NULL);
    assert_non_null(strstr(p, "\nc a/gone 0000 0:0 0 100 dev 0,0\n"));
    assert_non_null(strstr(p, "\nh zz-gone 0000 0:0 0 100 -> a/gone\n"));
    assert_null(strstr(p, "overlay"));
    rm_rf(T);
}

static void test_overlay_fake_trusted(void **state)
{
    (void)state;
    if (!is_root) {
        skip();
    }
    overlay_fake(false);
}

static void test_overlay_fake_userxattr(void **state)
{
    (void)state;
    if (!is_root) {
        skip(); /* the whiteout devices */
    }
    overlay_fake(true);
}

/* redirect_dir and metacopy leave part of an entry in the lower layers: refused, naming it. */
static void test_overlay_refusals(void **state)
{
    (void)state;
    if (!is_root) {
        skip();
    }
    static const struct {
        const char *xattr, *path;
    } cases[] = {{"trusted.overlay.redirect", "moved"}, {"trusted.overlay.metacopy", "meta"}};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *T = mktemp_dir();
        mkd(T, "x", 0755);
        _cleanup_free_ char *rel = mar_xasprintf("x/%s", cases[i].path);
        if (i == 0) {
            mkd(T, rel, 0755);
        } else {
            putstr(T, rel, "");
            _cleanup_free_ char *p = mar_xasprintf("%s/%s", T, rel);
            assert_int_equal(truncate(p, 100), 0); /* a metacopy file has no data of its own */
        }
        setx(T, rel, cases[i].xattr, "/elsewhere", 10);
        _cleanup_free_ char *blob = mar_xasprintf("%s.layer", T);
        oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
        o.tree.kind = OCI_TREE_OVERLAY_UPPER;
        oci_layer_written w;
        mar_err *err = NULL;
        assert_int_equal(write_layer(T, &o, blob, &w, &err), -MAR_EUNSUPPORTED);
        assert_non_null(strstr(err->msg, rel));
        mar_err_free(err);
        unlink(blob);
        rm_rf(T);
    }
}

/* A real overlay mount: changes made through it, the upper directory written as a layer and
 * applied with oci_unpack over a copy of the lower directory give what the mount showed. */
static void test_overlay_real(void **state)
{
    (void)state;
    if (!is_root || unshare(CLONE_NEWNS) < 0 ||
        mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
        skip();
    }
    _cleanup_free_ char *T = mktemp_dir();
    _cleanup_free_ char *L = mar_xasprintf("%s/lower", T), *U = mar_xasprintf("%s/upper", T),
                        *W = mar_xasprintf("%s/work", T), *M = mar_xasprintf("%s/merged", T);
    assert_int_equal(sh(NULL, "mkdir -p '%s' '%s' '%s' '%s'", L, U, W, M), 0);
    mkd(L, "etc", 0755);
    putstr(L, "etc/keep", "keep");
    putstr(L, "etc/gone", "gone");
    putstr(L, "etc/mod", "old");
    mkd(L, "var", 0755);
    mkd(L, "var/cache", 0755);
    putstr(L, "var/cache/old1", "1");
    mkd(L, "var/cache/sub", 0755);
    putstr(L, "var/cache/sub/old2", "2");
    mkd(L, "gonedir", 0755);
    putstr(L, "gonedir/x", "x");
    put(L, "bin", "elf", 3, 0755);
    _cleanup_free_ char *opts = mar_xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", L, U, W);
    if (mount("overlay", M, "overlay", 0, opts) < 0) {
        fprintf(stderr, "cannot mount overlayfs: %s\n", strerror(errno));
        rm_rf(T);
        skip();
    }
    /* What a RUN step might do. */
    assert_int_equal(sh(NULL,
                        "set -e; cd '%s'; rm etc/gone; rm -rf gonedir var/cache; "
                        "mkdir var/cache; echo new > var/cache/new; echo new > etc/mod; "
                        "chmod 0600 etc/keep; mkdir -p opt/app; echo app > opt/app/run; "
                        "ln opt/app/run opt/app/run2; ln -s ../etc/keep opt/link; "
                        "mkfifo opt/fifo; chown 7:8 opt/app/run",
                        M),
                     0);
    setx(M, "opt/app/run", "user.note", "n", 1);
    setx(M, "bin", "security.capability", cap_bind, sizeof(cap_bind));
    _cleanup_free_ char *want = tree_listing(M, TREE_INODES);
    _cleanup_free_ char *want_meta = meta_listing(M, false);
    assert_int_equal(umount2(M, 0), 0);

    /* The kernel did what the test relies on: a whiteout device and an opaque directory. */
    struct stat st;
    _cleanup_free_ char *wh = mar_xasprintf("%s/etc/gone", U);
    assert_int_equal(lstat(wh, &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
    _cleanup_free_ char *oq = mar_xasprintf("%s/var/cache", U);
    char v[4];
    assert_int_equal(lgetxattr(oq, "trusted.overlay.opaque", v, sizeof(v)), 1);

    _cleanup_free_ char *lb = mar_xasprintf("%s/lower.layer", T);
    _cleanup_free_ char *ub = mar_xasprintf("%s/upper.layer", T);
    oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
    oci_layer_written lw, uw;
    write_ok(L, &o, lb, &lw);
    o.tree.kind = OCI_TREE_OVERLAY_UPPER;
    write_ok(U, &o, ub, &uw);
    assert_int_equal(uw.stats.whiteouts, 2); /* etc/gone, gonedir */
    assert_int_equal(uw.stats.opaques, 1);   /* var/cache */
    _cleanup_free_ char *m = mar_listing(ub, NULL);
    assert_null(strstr(m, "overlay"));
    assert_non_null(strstr(m, "\nw etc/gone "));
    assert_non_null(strstr(m, "\no var/cache "));

    _cleanup_free_ char *A = mar_xasprintf("%s/applied", T);
    assert_int_equal(mkdir(A, 0755), 0);
    mar_err *err = NULL;
    _cleanup_close_ int rfd = mar_root_open(A, &err);
    const char *blobs[] = {lb, ub};
    for (size_t i = 0; i < 2; i++) {
        _cleanup_close_ int bfd = openat(AT_FDCWD, blobs[i], O_RDONLY | O_CLOEXEC);
        oci_unpack_opts uo = {.mode = OCI_UNPACK_APPLY};
        oci_unpack_result ur;
        if (oci_unpack(bfd, rfd, &uo, &ur, &err) < 0) {
            fail_msg("applying '%s': %s", blobs[i], err->msg);
        }
        oci_unpack_result_release(&ur);
    }
    _cleanup_free_ char *got = tree_listing(A, TREE_INODES);
    assert_same(want, got, "overlay mount", "applied layers");
    _cleanup_free_ char *got_meta = meta_listing(A, false);
    assert_same(want_meta, got_meta, "overlay mount", "applied layers");
    rm_rf(T);
}

/* ---- the benchmark driver ------------------------------------------------------------------- */

static int driver(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s write DIR OUT [gzip|zstd|none] [THREADS] [LEVEL]\n", argv[0]);
        return 2;
    }
    oci_layer_write_opts o = OCI_LAYER_WRITE_OPTS_INIT;
    if (argc > 4) {
        o.codec = strcmp(argv[4], "zstd") == 0   ? OCI_CODEC_ZSTD
                  : strcmp(argv[4], "none") == 0 ? OCI_CODEC_NONE
                                                 : OCI_CODEC_GZIP;
    }
    int64_t v;
    if (argc > 5 && mar_parse_i64(argv[5], 0, 1024, &v)) {
        o.threads = (unsigned)v;
    }
    if (argc > 6 && mar_parse_i64(argv[6], -100, 100, &v)) {
        o.level = (int)v;
    }
    mar_err *err = NULL;
    int dfd = mar_root_open(argv[2], &err);
    int ofd = dfd < 0 ? -1
                      : openat(AT_FDCWD, argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    oci_layer_written w;
    if (dfd < 0 || ofd < 0 || oci_layer_write_dir(dfd, &o, ofd, &w, &err) < 0) {
        fprintf(stderr, "%s\n", err ? err->msg : strerror(errno));
        return 1;
    }
    printf("%s %s %s size=%llu uncompressed=%llu entries=%llu\n", w.media_type, w.digest.str,
           w.diff_id.str, (unsigned long long)w.size, (unsigned long long)w.uncompressed_size,
           (unsigned long long)w.stats.entries);
    close(ofd);
    close(dfd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "write") == 0) {
        return driver(argc, argv);
    }
    is_root = geteuid() == 0;
    umask(022);
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_tarw_encoding),
            cmocka_unit_test(test_tarw_huge_size),
            cmocka_unit_test(test_tarw_refusals),
            cmocka_unit_test(test_tarw_add_fd_sizes),
            cmocka_unit_test(test_roundtrip_tar),
            cmocka_unit_test(test_roundtrip_gzip),
            cmocka_unit_test(test_roundtrip_gzip_parallel),
            cmocka_unit_test(test_roundtrip_zstd),
            cmocka_unit_test(test_determinism),
            cmocka_unit_test(test_clamp_and_owner),
            cmocka_unit_test(test_entries_and_prefix),
            cmocka_unit_test(test_symlinks_not_followed),
            cmocka_unit_test(test_tree_refusals),
            cmocka_unit_test(test_overlay_fake_trusted),
            cmocka_unit_test(test_overlay_fake_userxattr),
            cmocka_unit_test(test_overlay_refusals),
            cmocka_unit_test(test_overlay_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
