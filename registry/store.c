/* The content store (docs/internals/registry-protocol.md §13): an OCI image layout (image-spec
 * image-layout.md) that skopeo and umoci can read, plus mar's own ingest/, locks/ and unpack/
 * directories.
 *
 *   <store>/oci-layout, index.json     the layout; refs are org.opencontainers.image.ref.name
 *   <store>/blobs/<alg>/<hex>          0444, named only after size and digest were verified
 *   <store>/ingest/<alg>-<hex>/data    a download in progress, resumable
 *   <store>/locks/<alg>-<hex>.lock     flock per digest: one downloader per blob across processes
 *   <store>/locks/store.lock           shared by pulls, exclusive for gc
 *   <store>/unpack/<chain>/            an unpacked layer: rootfs/ and .complete (unpack.c)
 *
 * Every name under the store is built from a digest that mar_digest_parse validated, and every
 * access is relative to the store's directory fd. */
#include "registry-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define INDEX_CAP (64u << 20)

static const char *alg_name(mar_digest_alg a)
{
    return a == MAR_DIGEST_SHA512 ? "sha512" : "sha256";
}

int reg_store_default_path(const char *opt, char **ret, mar_err **err)
{
    const char *env = getenv("MAR_STORE");
    if (opt && *opt) {
        *ret = mar_xstrdup(opt);
    } else if (env && *env) {
        *ret = mar_xstrdup(env);
    } else if (geteuid() == 0) {
        *ret = mar_xstrdup("/var/lib/mar");
    } else {
        const char *xdg = getenv("XDG_DATA_HOME");
        const char *home = getenv("HOME");
        if (xdg && *xdg == '/') {
            *ret = mar_xasprintf("%s/mar", xdg);
        } else if (home && *home == '/') {
            *ret = mar_xasprintf("%s/.local/share/mar", home);
        } else {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "no store location: set --store, $MAR_STORE or $HOME");
        }
    }
    return 0;
}

/* mkdir -p with 0755 parents and a 0700 leaf (CVE-2021-41091: the store must not be
 * traversable by other users, who could run setuid binaries from unpacked layers). */
MAR_MUST_USE static int make_store_dir(const char *path, mar_err **err)
{
    _cleanup_free_ char *p = mar_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", p);
            }
            *s = '/';
        }
    }
    if (mkdir(p, 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create the store '%s'", p);
    }
    return 0;
}

MAR_MUST_USE static int mkdir_at(int dfd, const char *name, const char *store, mar_err **err)
{
    if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/%s'", store, name);
    }
    return 0;
}

/* One of the store's own directories: created when missing, and refused unless it is a real
 * directory. A symbolic link in its place would send lock files, downloads and blobs outside the
 * store; parents are checked before their children are created through them. */
MAR_MUST_USE static int own_dir(int dfd, const char *name, const char *store, mar_err **err)
{
    if (mkdir_at(dfd, name, store, err) < 0) {
        return -MAR_EIO;
    }
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s/%s'", store, name);
    }
    if (S_ISLNK(st.st_mode)) {
        return mar_err_set(err, MAR_EIO, 0,
                           "'%s/%s' is a symbolic link, not the store's own directory, refusing",
                           store, name);
    }
    if (!S_ISDIR(st.st_mode)) {
        return mar_err_set(err, MAR_EIO, 0, "'%s/%s' is not a directory, refusing", store, name);
    }
    return 0;
}

int reg__store_openat(reg_store *s, const char *rel, int flags, mode_t mode)
{
    _cleanup_close_ int dir = -1;
    int at = s->dfd;
    const char *p = rel;
    for (const char *slash; (slash = strchr(p, '/'));) {
        _cleanup_free_ char *comp = mar_xstrndup(p, (size_t)(slash - p));
        int fd = openat(at, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            return -1; /* errno: ELOOP or ENOTDIR for a symbolic link */
        }
        if (dir >= 0) {
            close(dir);
        }
        dir = fd;
        at = fd;
        p = slash + 1;
    }
    return openat(at, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

/* A rename is durable once its directory is: fsync(2) "does not necessarily ensure that the entry
 * in the directory containing the file has also reached disk. For that an explicit fsync() on a
 * file descriptor for the directory is also needed." A failure here is a failure of the commit:
 * the new name is visible but may not survive a power loss, and the caller must not report the
 * write as done (fault site "store-dirsync"). */
int reg__store_sync_dir(reg_store *s, const char *dir, mar_err **err)
{
    _cleanup_close_ int fd = openat(s->dfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s/%s' to sync it", s->path, dir);
    }
    int e = mar_fault("store-dirsync");
    if (e == 0 && fsync(fd) < 0) {
        e = errno;
    }
    if (e != 0) {
        return mar_err_set(err, MAR_EIO, e, "cannot sync the directory '%s/%s'", s->path, dir);
    }
    return 0;
}

/* Writes a small file atomically: a temporary name, fsync, rename over the old one. */
int reg__store_write_atomic(reg_store *s, const char *name, const void *p, size_t n, mar_err **err)
{
    _cleanup_free_ char *tmp = mar_xasprintf("%s.tmp-%d", name, (int)getpid());
    _cleanup_close_ int fd =
            openat(s->dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot write '%s/%s'", s->path, tmp);
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, (const char *)p + off, n - off);
        if (w < 0) {
            int e = errno;
            unlinkat(s->dfd, tmp, 0);
            return mar_err_set(err, MAR_EIO, e, "cannot write '%s/%s'%s", s->path, tmp,
                               e == ENOSPC ? " (disk full)" : "");
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || renameat(s->dfd, tmp, s->dfd, name) < 0) {
        int e = errno;
        unlinkat(s->dfd, tmp, 0);
        return mar_err_set(err, MAR_EIO, e, "cannot write '%s/%s'", s->path, name);
    }
    return reg__store_sync_dir(s, ".", err);
}

int reg_store_open(const char *path, reg_store **ret, mar_err **err)
{
    if (!path || path[0] != '/') {
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        if (!cwd || !path) {
            return mar_err_set(err, MAR_EUSAGE, 0, "bad store path");
        }
        _cleanup_free_ char *abs = mar_xasprintf("%s/%s", cwd, path);
        return reg_store_open(abs, ret, err);
    }
    if (make_store_dir(path, err) < 0) {
        return -MAR_EIO;
    }
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open the store '%s'", path);
    }
    reg_store *s = mar_xcalloc(1, sizeof(*s));
    s->dfd = dfd;
    s->path = mar_xstrdup(path);
    s->store_lock = -1;
    if (own_dir(dfd, "blobs", path, err) < 0 || own_dir(dfd, "blobs/sha256", path, err) < 0 ||
        own_dir(dfd, "ingest", path, err) < 0 || own_dir(dfd, "locks", path, err) < 0 ||
        own_dir(dfd, "unpack", path, err) < 0) {
        reg_store_free(s);
        return -MAR_EIO;
    }
    struct stat st;
    if (fstatat(dfd, "blobs/sha512", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        own_dir(dfd, "blobs/sha512", path, err) < 0) {
        reg_store_free(s);
        return -MAR_EIO;
    }
    if (fstatat(dfd, "oci-layout", &st, AT_SYMLINK_NOFOLLOW) < 0) {
        static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
        if (reg__store_write_atomic(s, "oci-layout", layout, sizeof(layout) - 1, err) < 0) {
            reg_store_free(s);
            return -MAR_EIO;
        }
    }
    if (fstatat(dfd, "index.json", &st, AT_SYMLINK_NOFOLLOW) < 0) {
        static const char index[] = "{\"schemaVersion\":2,\"manifests\":[]}";
        if (reg__store_write_atomic(s, "index.json", index, sizeof(index) - 1, err) < 0) {
            reg_store_free(s);
            return -MAR_EIO;
        }
    }
    *ret = s;
    return 0;
}

reg_store *reg_store_free(reg_store *s)
{
    if (s) {
        if (s->store_lock >= 0) {
            close(s->store_lock);
        }
        close(s->dfd);
        free(s->path);
        free(s);
    }
    return NULL;
}

const char *reg_store_path(const reg_store *s)
{
    return s->path;
}

int reg_store_dirfd(const reg_store *s)
{
    return s->dfd;
}

/* Opens (creating) locks/<name>.lock and takes the flock. Returns the fd, -EWOULDBLOCK when
 * busy and !wait, or a negative code with *err set. */
int reg__store_lock(reg_store *s, const char *name, int how, bool wait, mar_err **err)
{
    _cleanup_free_ char *p = mar_xasprintf("locks/%s.lock", name);
    int fd = reg__store_openat(s, p, O_RDWR | O_CREAT, 0600);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open the lock '%s/%s'", s->path, p);
    }
    for (;;) {
        if (flock(fd, how | (wait ? 0 : LOCK_NB)) == 0) {
            return fd;
        }
        if (errno == EINTR) {
            continue;
        }
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            return -EWOULDBLOCK;
        }
        return mar_err_set(err, MAR_EIO, e, "cannot lock '%s/%s'", s->path, p);
    }
}

int reg_store_hold(reg_store *s, bool exclusive, bool wait, mar_err **err)
{
    if (s->store_lock >= 0) {
        close(s->store_lock);
        s->store_lock = -1;
    }
    int fd = reg__store_lock(s, "store", exclusive ? LOCK_EX : LOCK_SH, wait, err);
    if (fd == -EWOULDBLOCK) {
        return mar_err_set(err, MAR_EIO, EWOULDBLOCK, "the store '%s' is in use by another mar",
                           s->path);
    }
    if (fd < 0) {
        return fd;
    }
    s->store_lock = fd;
    return 0;
}

/* ---- blobs ---------------------------------------------------------------------------------- */

char *reg__blob_name(const mar_digest *d)
{
    return mar_xasprintf("blobs/%s/%s", alg_name(d->alg), mar_digest_hex(d));
}

bool reg_store_has(reg_store *s, const mar_digest *d, int64_t size)
{
    _cleanup_free_ char *name = reg__blob_name(d);
    struct stat st;
    return fstatat(s->dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           (size < 0 || st.st_size == size);
}

int reg_store_blob_open(reg_store *s, const mar_digest *d, int *ret_fd, mar_err **err)
{
    _cleanup_free_ char *name = reg__blob_name(d);
    int fd = reg__store_openat(s, name, O_RDONLY, 0);
    if (fd < 0) {
        int e = errno;
        return mar_err_set(err, e == ENOENT ? MAR_ENOTFOUND : MAR_EIO, e,
                           "blob %s is not in the store '%s'", d->str, s->path);
    }
    *ret_fd = fd;
    return 0;
}

int reg_store_read(reg_store *s, const mar_digest *d, size_t cap, mar_buf *ret, mar_err **err)
{
    int fd;
    if (reg_store_blob_open(s, d, &fd, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_close_ int cfd = fd;
    mar_buf b = MAR_BUF_INIT(cap);
    if (mar_read_fd(cfd, d->str, cap, &b, err) < 0) {
        return -mar_err_code(*err);
    }
    /* Small documents are re-hashed on every read: a damaged store must not feed a wrong
     * manifest to unpack or run. */
    if (!mar_digest_verify(d, b.data, b.len)) {
        mar_buf_release(&b);
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "blob %s in the store '%s' does not match its digest (run mar gc)",
                           d->str, s->path);
    }
    mar_buf_release(ret);
    *ret = b;
    return 0;
}

/* ---- ingest --------------------------------------------------------------------------------- */

struct reg_ingest {
    reg_store *s;
    mar_digest digest;
    int64_t size;
    int lock;
    int data;
    char *dir; /* ingest/<alg>-<hex> */
    uint64_t have;
    uint64_t flushed; /* bytes handed to writeback so far */
    mar_hasher *h;    /* hash of the bytes in data, until handed to the downloader */
};

/* Writeback is started every few MiB while a blob arrives, so the fsync before its commit finds
 * little left to write and does not stall the downloads sharing the event loop. */
#define WRITEBACK_STEP (8u << 20)

static char *lock_name(const mar_digest *d)
{
    return mar_xasprintf("%s-%s", alg_name(d->alg), mar_digest_hex(d));
}

reg_ingest *reg_ingest_free(reg_ingest *g)
{
    if (g) {
        if (g->data >= 0) {
            close(g->data);
        }
        if (g->lock >= 0) {
            close(g->lock);
        }
        mar_hasher_free(g->h);
        free(g->dir);
        free(g);
    }
    return NULL;
}

/* A run killed between the rename of its blob and the removal of its ingest directory leaves
 * the directory behind; whoever next finds the blob present removes it, under the lock. */
static void drop_stale_ingest(reg_store *s, const mar_digest *d, int lock)
{
    _cleanup_free_ char *ln = lock_name(d);
    _cleanup_free_ char *dp = mar_xasprintf("ingest/%s/data", ln);
    _cleanup_free_ char *dir = mar_xasprintf("ingest/%s", ln);
    struct stat st;
    if (fstatat(s->dfd, dir, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return;
    }
    int fd = lock >= 0 ? lock : reg__store_lock(s, ln, LOCK_EX, false, NULL);
    if (fd < 0) {
        return; /* busy: its owner is alive and cleans up itself */
    }
    unlinkat(s->dfd, dp, 0);
    unlinkat(s->dfd, dir, AT_REMOVEDIR);
    if (lock < 0) {
        close(fd);
    }
}

int reg_ingest_begin(reg_store *s, const mar_digest *d, int64_t size, bool wait, reg_ingest **ret,
                     mar_err **err)
{
    *ret = NULL;
    if (reg_store_has(s, d, size)) {
        drop_stale_ingest(s, d, -1);
        return 0;
    }
    _cleanup_free_ char *ln = lock_name(d);
    int lock = reg__store_lock(s, ln, LOCK_EX, wait, err);
    if (lock == -EWOULDBLOCK) {
        return 1;
    }
    if (lock < 0) {
        return lock;
    }
    /* Committed while we waited for the lock. */
    if (reg_store_has(s, d, size)) {
        drop_stale_ingest(s, d, lock);
        close(lock);
        return 0;
    }
    reg_ingest *g = mar_xcalloc(1, sizeof(*g));
    g->s = s;
    g->digest = *d;
    g->size = size;
    g->lock = lock;
    g->data = -1;
    g->dir = mar_xasprintf("ingest/%s", ln);
    if (mkdirat(s->dfd, g->dir, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        reg_ingest_free(g);
        return mar_err_set(err, MAR_EIO, e, "cannot create '%s/ingest/%s'", s->path, ln);
    }
    _cleanup_free_ char *dp = mar_xasprintf("%s/data", g->dir);
    g->data = reg__store_openat(s, dp, O_RDWR | O_CREAT, 0600);
    if (g->data < 0) {
        int e = errno;
        reg_ingest_free(g);
        return mar_err_set(err, MAR_EIO, e, "cannot open '%s/%s'", s->path, dp);
    }
    /* Resume: rebuild the hash of what an earlier run left (containerd resumeStatus). A partial
     * file longer than the blob is garbage. */
    g->h = mar_hasher_new(d->alg);
    struct stat st;
    if (fstat(g->data, &st) == 0 && st.st_size > 0 && (size < 0 || st.st_size <= size)) {
        char buf[1 << 16];
        ssize_t n;
        while ((n = read(g->data, buf, sizeof(buf))) > 0) {
            mar_hasher_update(g->h, buf, (size_t)n);
            g->have += (uint64_t)n;
        }
        if (n < 0 || g->have != (uint64_t)st.st_size) {
            g->have = 0;
            mar_hasher_reset(g->h);
        }
    }
    g->flushed = g->have;
    if (g->have == 0 && (ftruncate(g->data, 0) < 0 || lseek(g->data, 0, SEEK_SET) < 0)) {
        int e = errno;
        reg_ingest_free(g);
        return mar_err_set(err, MAR_EIO, e, "cannot reset '%s/%s'", s->path, dp);
    }
    *ret = g;
    return 0;
}

uint64_t reg_ingest_offset(const reg_ingest *g)
{
    return g->have;
}

mar_hasher *reg_ingest_take_hasher(reg_ingest *g)
{
    mar_hasher *h = g->h;
    g->h = NULL;
    return h;
}

int reg_ingest_write(reg_ingest *g, const void *p, size_t n, mar_err **err)
{
    if (g->size >= 0 && g->have + n > (uint64_t)g->size) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "blob %s is longer than its %lld bytes",
                           g->digest.str, (long long)g->size);
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(g->data, (const char *)p + off, n - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            if (e == ENOSPC) {
                return mar_err_set(
                        err, MAR_EIO, e, "the store '%s' is full: %llu more bytes needed for %s",
                        g->s->path, (unsigned long long)((uint64_t)g->size - g->have - off),
                        g->digest.str);
            }
            return mar_err_set(err, MAR_EIO, e, "cannot write the ingest of %s in '%s'",
                               g->digest.str, g->s->path);
        }
        off += (size_t)w;
    }
    g->have += n;
    if (g->have - g->flushed >= WRITEBACK_STEP) {
        sync_file_range(g->data, (off_t)g->flushed, (off_t)(g->have - g->flushed),
                        SYNC_FILE_RANGE_WRITE);
        g->flushed = g->have;
    }
    return 0;
}

int reg_ingest_reset(reg_ingest *g, mar_err **err)
{
    if (ftruncate(g->data, 0) < 0 || lseek(g->data, 0, SEEK_SET) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot reset the ingest of %s", g->digest.str);
    }
    g->have = 0;
    g->flushed = 0;
    return 0;
}

int reg_ingest_adopt(reg_ingest *g, int fd, int dirfd, const char *name, mar_err **err)
{
    reg_store *s = g->s;
    _cleanup_free_ char *dp = mar_xasprintf("%s/data", g->dir);
    struct stat st, at;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return mar_err_set(err, MAR_EIO, errno, "cannot adopt '%s' into the store: not a file",
                           name);
    }
    if (renameat(dirfd, name, s->dfd, dp) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot move '%s' into '%s/%s'", name, s->path, dp);
    }
    /* The name must still be the file the caller wrote and hands over open. */
    if (fstatat(s->dfd, dp, &at, AT_SYMLINK_NOFOLLOW) < 0 || at.st_dev != st.st_dev ||
        at.st_ino != st.st_ino) {
        return mar_err_set(err, MAR_EIO, 0, "'%s' changed while it was moved into '%s'", name,
                           s->path);
    }
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (nfd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot duplicate a descriptor");
    }
    close(g->data);
    g->data = nfd;
    g->have = (uint64_t)st.st_size;
    /* Writeback starts now and overlaps the caller's hashing; the commit's fsync waits for it. */
    sync_file_range(nfd, 0, 0, SYNC_FILE_RANGE_WRITE);
    g->flushed = g->have;
    mar_hasher_free(g->h);
    g->h = NULL;
    return 0;
}

static void drop_ingest_dir(reg_ingest *g)
{
    _cleanup_free_ char *dp = mar_xasprintf("%s/data", g->dir);
    unlinkat(g->s->dfd, dp, 0);
    unlinkat(g->s->dfd, g->dir, AT_REMOVEDIR);
}

void reg_ingest_discard(reg_ingest *g)
{
    if (g) {
        drop_ingest_dir(g);
        reg_ingest_free(g);
    }
}

int reg_ingest_commit(reg_ingest *g, const mar_digest *verified, mar_err **err)
{
    reg_store *s = g->s;
    struct stat st;
    if (fsync(g->data) < 0 || fstat(g->data, &st) < 0) {
        int e = errno;
        return mar_err_set(err, MAR_EIO, e, "cannot flush the ingest of %s in '%s'%s",
                           g->digest.str, s->path, e == ENOSPC ? " (disk full)" : "");
    }
    if (g->size >= 0 && st.st_size != g->size) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "blob %s has %lld bytes, expected %lld",
                           g->digest.str, (long long)st.st_size, (long long)g->size);
    }
    if (!mar_digest_eq(verified, &g->digest)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "blob content is %s, expected %s, refusing",
                           verified->str, g->digest.str);
    }
    if (fchmod(g->data, 0444) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot chmod the ingest of %s", g->digest.str);
    }
    if (g->digest.alg == MAR_DIGEST_SHA512 && own_dir(s->dfd, "blobs/sha512", s->path, err) < 0) {
        return -MAR_EIO;
    }
    _cleanup_free_ char *dp = mar_xasprintf("%s/data", g->dir);
    _cleanup_free_ char *name = reg__blob_name(&g->digest);
    if (renameat2(s->dfd, dp, s->dfd, name, RENAME_NOREPLACE) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot commit %s to '%s'", g->digest.str, s->path);
    }
    /* The rename is durable once the directory is. */
    _cleanup_free_ char *bdir = mar_xasprintf("blobs/%s", alg_name(g->digest.alg));
    if (reg__store_sync_dir(s, bdir, err) < 0) {
        return -MAR_EIO;
    }
    drop_ingest_dir(g);
    return 0;
}

int reg_store_put(reg_store *s, const mar_digest *d, const void *p, size_t n, mar_err **err)
{
    if (!mar_digest_verify(d, p, n)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "content does not match %s, refusing", d->str);
    }
    reg_ingest *g;
    int rc = reg_ingest_begin(s, d, (int64_t)n, true, &g, err);
    if (rc < 0 || !g) {
        return rc < 0 ? rc : 0;
    }
    if (reg_ingest_reset(g, err) < 0 || reg_ingest_write(g, p, n, err) < 0 ||
        reg_ingest_commit(g, d, err) < 0) {
        rc = -mar_err_code(*err);
        reg_ingest_discard(g);
        return rc;
    }
    reg_ingest_free(g);
    return 0;
}

uint64_t reg_store_free_bytes(const reg_store *s)
{
    struct statvfs sv;
    return fstatvfs(s->dfd, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : UINT64_MAX;
}
