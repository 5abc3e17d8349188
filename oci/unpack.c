/* Writing a layer (docs/internals/unpack-security.md §2, the table of entry types): every parent is
 * resolved in-root from one root dirfd and the last component is only ever touched with *at() calls
 * that do not follow it. Two modes:
 *
 *   OCI_UNPACK_LAYER  the layer alone, as an overlayfs lower directory: whiteouts become 0/0
 *                     character devices, opaque markers the trusted.overlay.opaque xattr;
 *                     directories created only as parents and hard links whose target is not in
 *                     this layer are reported, to be settled against the lower layers.
 *   OCI_UNPACK_APPLY  the layer applied onto a tree (flattening): whiteouts delete, opaque
 *                     markers empty a directory of what lower layers put there; entries of the
 *                     same layer are never affected (image-spec layer.md).
 *
 * Numeric ids only; nothing from the tree is ever read back as configuration or executed. */
#include "oci.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

typedef struct fixup {
    char *path;
    unsigned mode;
    struct timespec mtime;
    int depth;
} fixup;

typedef struct unpacker {
    int rootfd;
    const oci_unpack_opts *o;
    oci_unpack_result *res;
    bool root; /* running as root: chown, devices, trusted xattrs */
    /* The parent directory of the previous entry, reused while nothing changes above it. */
    char *cache_path;
    int cache_fd;
    /* Paths this layer created (APPLY mode: whiteouts and opaque markers spare them). */
    mar_map created;
    mar_map above; /* directories with something this layer created below them */
    /* APPLY: directories this layer changes without an entry of its own, with the times they
     * are given back at the end of the layer (struct timespec[2], owned). */
    mar_map dirtimes;
    struct timespec now_entry; /* the current entry's mtime: for directories made as parents */
    fixup *fix;
    size_t n_fix, a_fix;
    uint64_t since_check; /* bytes written since the last free-space check */
    uint64_t min_free;
    uint64_t written, max_written; /* apparent size of the files written, and its limit */
    oci_layer_reader *r;
    uint64_t reported; /* input bytes at the last progress call */
} unpacker;

static void maybe_progress(unpacker *u)
{
    if (!u->o->progress) {
        return;
    }
    uint64_t in = oci_layer_in_bytes(u->r);
    if (in - u->reported >= (1u << 20)) {
        u->reported = in;
        u->o->progress(u->o->progress_ud, in);
    }
}

static void cache_drop(unpacker *u)
{
    if (u->cache_fd >= 0) {
        close(u->cache_fd);
    }
    u->cache_fd = -1;
    free(u->cache_path);
    u->cache_path = NULL;
}

/* An entry at `path` can change how the cached parent resolves only if it is that directory or
 * one of its ancestors. */
static void cache_invalidate(unpacker *u, const char *path)
{
    if (!u->cache_path) {
        return;
    }
    size_t l = strlen(path);
    if (strncmp(u->cache_path, path, l) == 0 &&
        (u->cache_path[l] == '\0' || u->cache_path[l] == '/')) {
        cache_drop(u);
    }
}

static void note_created(unpacker *u, const char *path)
{
    if (u->o->mode != OCI_UNPACK_APPLY) {
        return;
    }
    mar_map_set(&u->created, path, (void *)1);
    /* Its ancestors: an opaque marker later in the layer must look inside them. */
    char *p = mar_xstrdup(path);
    for (char *slash = strrchr(p, '/'); slash; slash = strrchr(p, '/')) {
        *slash = '\0';
        if (mar_map_get(&u->above, p)) {
            break;
        }
        mar_map_set(&u->above, p, (void *)1);
    }
    free(p);
}

/* Records the times of the directory dir (the nearest existing ancestor when dir does not exist
 * yet) before the layer changes it, so that they can be given back (umoci does the same): an
 * unpack must not depend on when it ran. */
static void note_dir_time(unpacker *u, const char *dir)
{
    if (u->o->mode != OCI_UNPACK_APPLY) {
        return;
    }
    char *d = mar_xstrdup(dir);
    for (;;) {
        if (mar_map_get(&u->dirtimes, d)) {
            break;
        }
        int fd = *d ? mar_in_root_open(u->rootfd, d, O_PATH | O_DIRECTORY, 0)
                    : fcntl(u->rootfd, F_DUPFD_CLOEXEC, 3);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0) {
            struct timespec *ts = mar_xmalloc(2 * sizeof(*ts));
            ts[0] = st.st_atim;
            ts[1] = st.st_mtim;
            mar_map_set(&u->dirtimes, d, ts);
            close(fd);
            break;
        }
        if (fd >= 0) {
            close(fd);
        }
        if (!*d) {
            break;
        }
        char *slash = strrchr(d, '/');
        if (slash) {
            *slash = '\0';
        } else {
            d[0] = '\0';
        }
    }
    free(d);
}

/* Directories made only as parents take the time of the entry that implied them. */
static void note_made_dir(unpacker *u, const char *dir)
{
    if (u->o->mode != OCI_UNPACK_APPLY || mar_map_get(&u->dirtimes, dir)) {
        return;
    }
    struct timespec *ts = mar_xmalloc(2 * sizeof(*ts));
    ts[0] = ts[1] = u->now_entry;
    mar_map_set(&u->dirtimes, dir, ts);
}

static void parent_dir_time(unpacker *u, const char *path)
{
    const char *slash = strrchr(path, '/');
    _cleanup_free_ char *dir = slash ? mar_xstrndup(path, (size_t)(slash - path)) : mar_xstrdup("");
    note_dir_time(u, dir);
}

/* Gives the recorded directories their times back (before the fixups of the layer's own
 * directory entries, which win). */
MAR_MUST_USE static int restore_dir_times(unpacker *u, mar_err **err)
{
    size_t pos = 0;
    const char *k;
    void *v;
    while (mar_map_next(&u->dirtimes, &pos, &k, &v)) {
        int fd = *k ? mar_in_root_open(u->rootfd, k, O_RDONLY | O_DIRECTORY, 0)
                    : openat(u->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            /* Removed or replaced by a later entry of this layer: nothing to restore. */
            continue;
        }
        int rc = futimens(fd, v);
        int e = errno;
        close(fd);
        if (rc < 0) {
            return mar_err_set(err, MAR_EIO, e, "cannot restore the times of '%s'", *k ? k : "/");
        }
    }
    return 0;
}

/* The parent directory of path, created when missing (implicit directories are reported in
 * LAYER mode). Returns an fd owned by the cache (do not close) and the last component. */
MAR_MUST_USE static int parent_of(unpacker *u, const char *path, const char **ret_name,
                                  mar_err **err)
{
    const char *slash = strrchr(path, '/');
    size_t pl = slash ? (size_t)(slash - path) : 0;
    *ret_name = slash ? slash + 1 : path;
    if (u->cache_path && strlen(u->cache_path) == pl && strncmp(u->cache_path, path, pl) == 0) {
        return u->cache_fd;
    }
    cache_drop(u);
    parent_dir_time(u, path);
    mar_strv made = MAR_STRV_INIT;
    int fd;
    const char *nm;
    if (mar_in_root_parent_created(u->rootfd, path, true, 0755, &made, &fd, &nm, err) < 0) {
        mar_strv_release(&made);
        return -1;
    }
    for (size_t i = 0; i < made.n; i++) {
        /* A directory made through a symlink of this layer is named by the way it was reached
         * ("a/up/../t" for a/up -> ../t): settling needs where it is ("t"), or it would merge
         * the directory into itself. */
        _cleanup_free_ char *at = NULL;
        mar_err *ce = NULL;
        oci_lview self = {.fds = &u->rootfd, .n = 1};
        if (oci_lview_resolve(&self, made.v[i], true, &at, NULL, &ce) < 0) {
            mar_err_free(ce);
            at = mar_xstrdup(made.v[i]);
        }
        if (u->o->mode == OCI_UNPACK_LAYER) {
            mar_strv_push(&u->res->implicit_dirs, at);
        }
        note_created(u, at);
        note_made_dir(u, at);
    }
    mar_strv_release(&made);
    u->cache_path = mar_xstrndup(path, pl);
    u->cache_fd = fd;
    return fd;
}

/* Removes whatever is at name in dirfd, directories recursively, never following a symlink. */
int oci_remove_at(int dirfd, const char *name, mar_err **err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno == ENOENT ? 0 : mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", name);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
            return mar_err_set(err, MAR_EIO, errno, "cannot remove '%s'", name);
        }
        return 0;
    }
    int dfd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", name);
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return mar_err_set(err, MAR_EIO, errno, "cannot list '%s'", name);
    }
    /* A directory made read-only by a layer must stay removable. Ignoring a failure is safe: the
     * removals below then fail with EACCES and report it. */
    (void)fchmod(dfd, 0700);
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) && rc == 0) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        rc = oci_remove_at(dfd, de->d_name, err);
    }
    closedir(d);
    if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
        rc = mar_err_set(err, MAR_EIO, errno, "cannot remove '%s'", name);
    }
    return rc;
}

/* Clears the way for a non-directory entry at name (the last entry wins). */
MAR_MUST_USE static int make_room(int pfd, const char *name, mar_err **err)
{
    return oci_remove_at(pfd, name, err);
}

/* Owner and mode, each changed only when it differs from what the file got at creation: every
 * chown or chmod is an inode update and a journal handle, and on a busy ext4 they, more than the
 * data, bound how fast a layer unpacks. */
MAR_MUST_USE static int set_owner_mode_time(unpacker *u, int fd, const oci_layer_entry *e,
                                            bool set_mode, mar_err **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", e->path);
    }
    bool chowned = false;
    if (u->root && (st.st_uid != (uid_t)e->uid || st.st_gid != (gid_t)e->gid)) {
        if (fchown(fd, (uid_t)e->uid, (gid_t)e->gid) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot chown '%s'", e->path);
        }
        chowned = true;
    }
    /* After the chown: chown clears setuid and setgid. */
    if (set_mode && (chowned || (st.st_mode & 07777) != (e->mode & 07777)) &&
        fchmod(fd, e->mode & 07777) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot chmod '%s'", e->path);
    }
    return 0;
}

static bool xattr_allowed(const char *name)
{
    /* security.capability is kept; trusted.* (overlay's own namespace, among others),
     * security.selinux and ACL/NFS4 forms are dropped (docs/internals/unpack-security.md §3). */
    if (mar_str_startswith(name, "trusted.") || strcmp(name, "security.selinux") == 0 ||
        mar_str_startswith(name, "system.")) {
        return false;
    }
    return mar_str_startswith(name, "user.") || strcmp(name, "security.capability") == 0;
}

MAR_MUST_USE static int apply_xattrs(unpacker *u, int fd, const oci_layer_entry *e, mar_err **err)
{
    for (size_t i = 0; i < e->n_xattrs; i++) {
        const oci_xattr *x = &e->xattrs[i];
        if (!xattr_allowed(x->name)) {
            u->res->dropped++;
            continue;
        }
        if (fsetxattr(fd, x->name, x->value, x->size, 0) < 0) {
            if ((errno == EPERM && !u->root) || errno == ENOTSUP) {
                u->res->dropped++;
                continue;
            }
            return mar_err_set(err, MAR_EIO, errno, "cannot set xattr '%.100s' on '%s'", x->name,
                               e->path);
        }
    }
    return 0;
}

/* Every 64 MiB written, the target must still have the reserve free. */
MAR_MUST_USE static int check_free(unpacker *u, int fd, const oci_layer_entry *e, uint64_t n,
                                   mar_err **err)
{
    u->since_check += n;
    if (u->since_check < (64u << 20)) {
        return 0;
    }
    u->since_check = 0;
    struct statvfs sv;
    if (u->min_free && fstatvfs(fd, &sv) == 0 &&
        (uint64_t)sv.f_bavail * sv.f_frsize < u->min_free) {
        return mar_err_set(err, MAR_EIO, ENOSPC, "less than %llu MB free while unpacking '%s'",
                           (unsigned long long)(u->min_free >> 20), e->path);
    }
    return 0;
}

/* The data of a file, block by block at its offset: the holes of a sparse entry stay holes
 * (never written as zeros), and the file is sized to its apparent size at the end. */
MAR_MUST_USE static int copy_data(unpacker *u, oci_layer_reader *r, int fd,
                                  const oci_layer_entry *e, mar_err **err)
{
    int64_t got = 0;
    for (;;) {
        const void *buf;
        size_t len;
        int64_t off;
        int rc = oci_layer_read_block(r, &buf, &len, &off, err);
        if (rc < 0) {
            return -1;
        }
        if (rc == 0) {
            break;
        }
        for (size_t done = 0; done < len;) {
            ssize_t w = pwrite(fd, (const char *)buf + done, len - done, (off_t)off + (off_t)done);
            if (w < 0) {
                int e2 = errno;
                return mar_err_set(err, MAR_EIO, e2, "cannot write '%s'%s", e->path,
                                   e2 == ENOSPC ? " (disk full)" : "");
            }
            done += (size_t)w;
        }
        got += (int64_t)len;
        u->res->bytes += len;
        maybe_progress(u);
        if (check_free(u, fd, e, len, err) < 0) {
            return -1;
        }
    }
    if (!e->sparse && got < e->size) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "file '%s' incomplete, refusing", e->path);
    }
    if (e->sparse && ftruncate(fd, (off_t)e->size) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot size '%s'", e->path);
    }
    return 0;
}

/* With link_from: the file of the tree the layer was written from, hard-linked in place of a
 * new one (no inode to allocate, no data to write: on ext4 the allocation of tens of thousands
 * of inodes dominates a commit). Only a regular file of the entry's size qualifies, opened
 * inside the tree without following links; whatever xattrs it carries are replaced by the
 * entry's. 1 when linked, 0 when the file is to be written as usual. */
MAR_MUST_USE static int link_file(unpacker *u, oci_layer_reader *r, const oci_layer_entry *e,
                                  int pfd, const char *name, mar_err **err)
{
    if (!u->o->link_from || e->sparse) {
        return 0;
    }
    _cleanup_close_ int src = mar_in_root_open(*u->o->link_from, e->path, O_PATH | O_NOFOLLOW, 0);
    struct stat st;
    if (src < 0 || fstat(src, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != e->size ||
        linkat(src, "", pfd, name, AT_EMPTY_PATH) < 0) {
        return 0;
    }
    note_created(u, e->path);
    _cleanup_close_ int fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", e->path);
    }
    /* An xattr that cannot be listed or removed (a label the policy keeps): written instead. */
    char names[4096];
    ssize_t n = flistxattr(fd, names, sizeof(names));
    bool clean = n >= 0 || errno == ENOTSUP;
    for (ssize_t off = 0; clean && n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
        clean = fremovexattr(fd, names + off) == 0;
    }
    if (!clean) {
        if (unlinkat(pfd, name, 0) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot remove '%s'", e->path);
        }
        return 0;
    }
    if (oci_layer_skip(r, err) < 0) {
        return -1;
    }
    if (set_owner_mode_time(u, fd, e, true, err) < 0 || apply_xattrs(u, fd, e, err) < 0) {
        return -1;
    }
    struct timespec ts[2] = {{e->mtime, e->mtime_nsec}, {e->mtime, e->mtime_nsec}};
    if (futimens(fd, ts) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot set the times of '%s'", e->path);
    }
    u->res->files++;
    u->res->bytes += (uint64_t)e->size;
    return 1;
}

MAR_MUST_USE static int write_file(unpacker *u, oci_layer_reader *r, const oci_layer_entry *e,
                                   mar_err **err)
{
    /* What the layer makes the disk hold is counted by apparent size, before anything is
     * created: a few hundred bytes of sparse map can describe gigabytes of file
     * (docs/internals/unpack-security.md §3). */
    if ((uint64_t)e->size > u->max_written - u->written) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "its %lld bytes (holes included) would take the layer's files past %llu "
                           "bytes, refusing",
                           (long long)e->size, (unsigned long long)u->max_written);
    }
    u->written += (uint64_t)e->size;
    const char *name;
    int pfd = parent_of(u, e->path, &name, err);
    if (pfd < 0 || make_room(pfd, name, err) < 0) {
        return -1;
    }
    int linked = link_file(u, r, e, pfd, name, err);
    if (linked != 0) {
        return linked < 0 ? -1 : 0;
    }
    /* Created with its permission bits (the umask may take some; set_owner_mode_time puts them
     * back); special bits only after the chown, which would clear them. */
    _cleanup_close_ int fd =
            openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, e->mode & 0777);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", e->path);
    }
    note_created(u, e->path);
    if (copy_data(u, r, fd, e, err) < 0 || set_owner_mode_time(u, fd, e, true, err) < 0 ||
        apply_xattrs(u, fd, e, err) < 0) {
        return -1;
    }
    struct timespec ts[2] = {{e->mtime, e->mtime_nsec}, {e->mtime, e->mtime_nsec}};
    if (futimens(fd, ts) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot set the times of '%s'", e->path);
    }
    u->res->files++;
    return 0;
}

static int add_fixup(unpacker *u, const oci_layer_entry *e)
{
    if (u->n_fix == u->a_fix) {
        u->a_fix = u->a_fix ? u->a_fix * 2 : 64;
        u->fix = mar_xrealloc(u->fix, u->a_fix * sizeof(*u->fix));
    }
    int depth = 0;
    for (const char *p = e->path; *p; p++) {
        depth += *p == '/';
    }
    u->fix[u->n_fix++] =
            (fixup){mar_xstrdup(e->path), e->mode & 07777, {e->mtime, e->mtime_nsec}, depth};
    return 0;
}

MAR_MUST_USE static int write_dir(unpacker *u, const oci_layer_entry *e, mar_err **err)
{
    const char *name;
    cache_invalidate(u, e->path);
    int pfd = parent_of(u, e->path, &name, err);
    if (pfd < 0) {
        return -1;
    }
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
        /* A directory replaces whatever non-directory was there (even a symlink). */
        if (make_room(pfd, name, err) < 0) {
            return -1;
        }
    }
    /* 0700 until the end of the layer: a 0555 directory must stay writable for its children. */
    if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create directory '%s'", e->path);
    }
    note_created(u, e->path);
    _cleanup_close_ int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open directory '%s'", e->path);
    }
    if (set_owner_mode_time(u, fd, e, false, err) < 0 || apply_xattrs(u, fd, e, err) < 0) {
        return -1;
    }
    /* Explicit now: no longer an implicit parent to settle against lower layers. */
    for (size_t i = 0; i < u->res->implicit_dirs.n; i++) {
        if (strcmp(u->res->implicit_dirs.v[i], e->path) == 0) {
            free(u->res->implicit_dirs.v[i]);
            u->res->implicit_dirs.v[i] = u->res->implicit_dirs.v[--u->res->implicit_dirs.n];
            u->res->implicit_dirs.v[u->res->implicit_dirs.n] = NULL;
            break;
        }
    }
    return add_fixup(u, e);
}

MAR_MUST_USE static int write_symlink(unpacker *u, const oci_layer_entry *e, mar_err **err)
{
    const char *name;
    cache_invalidate(u, e->path);
    int pfd = parent_of(u, e->path, &name, err);
    if (pfd < 0 || make_room(pfd, name, err) < 0) {
        return -1;
    }
    /* The target is stored verbatim and never resolved here. */
    if (symlinkat(e->link, pfd, name) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create symlink '%s'", e->path);
    }
    note_created(u, e->path);
    struct stat st;
    if (u->root && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        (st.st_uid != (uid_t)e->uid || st.st_gid != (gid_t)e->gid) &&
        fchownat(pfd, name, (uid_t)e->uid, (gid_t)e->gid, AT_SYMLINK_NOFOLLOW) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot chown '%s'", e->path);
    }
    struct timespec ts[2] = {{e->mtime, e->mtime_nsec}, {e->mtime, e->mtime_nsec}};
    utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
    if (e->n_xattrs) {
        u->res->dropped += e->n_xattrs;
    }
    return 0;
}

MAR_MUST_USE static int write_hardlink(unpacker *u, const oci_layer_entry *e, mar_err **err)
{
    /* The source's parent resolves in-root; its last component is never followed, so a link to
     * a symlink links the symlink itself (CVE-2021-23177 class). */
    int spfd;
    const char *sname;
    mar_err *serr = NULL;
    if (mar_in_root_parent(u->rootfd, e->link, false, 0, &spfd, &sname, &serr) < 0) {
        mar_err_free(serr);
        spfd = -1;
    }
    struct stat st;
    bool found = spfd >= 0 && fstatat(spfd, sname, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!found || S_ISDIR(st.st_mode)) {
        if (spfd >= 0) {
            close(spfd);
        }
        if (found) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "hard link '%s' to a directory, refusing",
                               e->path);
        }
        if (u->o->mode == OCI_UNPACK_LAYER) {
            /* Maybe in a lower layer: settled when layers are combined. */
            mar_strv_push(&u->res->deferred_links, e->path);
            mar_strv_push(&u->res->deferred_links, e->link);
            return 0;
        }
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "hard link '%s' to '%s', which is not in the image, refusing", e->path,
                           e->link);
    }
    const char *name;
    int pfd = parent_of(u, e->path, &name, err);
    int rc = 0;
    if (pfd < 0 || make_room(pfd, name, err) < 0) {
        rc = -1;
    } else if (linkat(spfd, sname, pfd, name, 0) < 0) {
        rc = mar_err_set(err, MAR_EIO, errno, "cannot link '%s' to '%s'", e->path, e->link);
    } else {
        note_created(u, e->path);
    }
    close(spfd);
    return rc;
}

/* Linux keeps device numbers in 12 bits of major and 20 of minor: anything larger would be
 * silently truncated, so it is refused (containerd's Devmajor check). */
MAR_MUST_USE static int write_special(unpacker *u, const oci_layer_entry *e, mar_err **err)
{
    if (e->kind == OCI_ENTRY_SOCKET) {
        u->res->dropped++;
        mar_debug("dropping socket '%s'", e->path);
        return 0;
    }
    if (e->kind != OCI_ENTRY_FIFO) {
        if (e->devmajor >= (1u << 12) || e->devminor >= (1u << 20)) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "device '%s' has numbers %llu:%llu out of range, refusing", e->path,
                               (unsigned long long)e->devmajor, (unsigned long long)e->devminor);
        }
        if (!u->root) {
            u->res->dropped++;
            mar_diag_warn("dropping device '%s': creating devices needs root", e->path);
            return 0;
        }
    }
    const char *name;
    cache_invalidate(u, e->path);
    int pfd = parent_of(u, e->path, &name, err);
    if (pfd < 0 || make_room(pfd, name, err) < 0) {
        return -1;
    }
    mode_t type = e->kind == OCI_ENTRY_CHAR    ? S_IFCHR
                  : e->kind == OCI_ENTRY_BLOCK ? S_IFBLK
                                               : S_IFIFO;
    if (mknodat(pfd, name, type | (e->mode & 07777),
                makedev((unsigned)e->devmajor, (unsigned)e->devminor)) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", e->path);
    }
    note_created(u, e->path);
    if (u->root && fchownat(pfd, name, (uid_t)e->uid, (gid_t)e->gid, AT_SYMLINK_NOFOLLOW) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot chown '%s'", e->path);
    }
    /* mknodat applied the umask: the recorded mode exactly, after the owner change (which clears
     * setuid and setgid). The node was made a moment ago and is no symlink; where the kernel
     * or libc cannot chmod without following, following it is the same. */
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        (st.st_mode & 07777) != (e->mode & 07777)) {
        int cr = fchmodat(pfd, name, e->mode & 07777, AT_SYMLINK_NOFOLLOW);
        if (cr < 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
            cr = fchmodat(pfd, name, e->mode & 07777, 0);
        }
        if (cr < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot chmod '%s'", e->path);
        }
    }
    struct timespec ts[2] = {{e->mtime, e->mtime_nsec}, {e->mtime, e->mtime_nsec}};
    utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
    return 0;
}

/* True when a component above path resolves to something that is not a directory. */
static bool under_nondir(unpacker *u, const char *path)
{
    int pfd;
    const char *name;
    mar_err *pe = NULL;
    if (mar_in_root_parent(u->rootfd, path, false, 0, &pfd, &name, &pe) == 0) {
        close(pfd);
        return false;
    }
    bool r = pe && pe->sys_errno == ENOTDIR;
    mar_err_free(pe);
    return r;
}

MAR_MUST_USE static int whiteout(unpacker *u, const oci_layer_entry *e, mar_err **err)
{
    cache_invalidate(u, e->path);
    if (u->o->mode == OCI_UNPACK_APPLY) {
        if (mar_map_get(&u->created, e->path)) {
            return 0; /* never affects entries of the same layer */
        }
        int pfd;
        const char *name;
        mar_err *pe = NULL;
        if (mar_in_root_parent(u->rootfd, e->path, false, 0, &pfd, &name, &pe) < 0) {
            mar_err_free(pe);
            return 0; /* nothing there to delete */
        }
        parent_dir_time(u, e->path);
        int rc = oci_remove_at(pfd, name, err);
        close(pfd);
        return rc;
    }
    /* LAYER: an overlay whiteout, unless this layer already put something there. Under a
     * non-directory of this layer (a directory replaced by a file, then whiteouts under its
     * path, as umoci repack writes) it is moot: the file already hides all below. */
    if (under_nondir(u, e->path)) {
        return 0;
    }
    const char *name;
    int pfd = parent_of(u, e->path, &name, err);
    if (pfd < 0) {
        return -1;
    }
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        return 0;
    }
    if (mknodat(pfd, name, S_IFCHR | 0000, makedev(0, 0)) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create the whiteout for '%s'%s", e->path,
                           errno == EPERM ? " (needs root)" : "");
    }
    u->res->whiteouts++;
    return 0;
}

static int clear_lower(unpacker *u, int fd, const char *path, mar_err **err);

MAR_MUST_USE static int opaque(unpacker *u, const oci_layer_entry *e, mar_err **err)
{
    cache_invalidate(u, e->path);
    /* Under a non-directory (or naming one) the marker is moot, as a whiteout is there. */
    _cleanup_free_ char *probe = mar_xasprintf("%s%s.", e->path, *e->path ? "/" : "");
    if (*e->path && under_nondir(u, probe)) {
        return 0;
    }
    /* The directory itself: make sure it exists (created as a parent if it is not explicit). */
    _cleanup_free_ char *marker = mar_xasprintf("%s%s.wh..wh..opq", e->path, *e->path ? "/" : "");
    const char *nm;
    int dfd_parent = parent_of(u, marker, &nm, err);
    if (dfd_parent < 0) {
        return -1;
    }
    _cleanup_close_ int dfd = fcntl(dfd_parent, F_DUPFD_CLOEXEC, 3);
    if (u->o->mode == OCI_UNPACK_LAYER) {
        _cleanup_close_ int rfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0 || fsetxattr(rfd, "trusted.overlay.opaque", "y", 1, 0) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot mark '%s' opaque%s", e->path,
                               errno == EPERM ? " (needs root)" : "");
        }
        u->res->opaques++;
        return 0;
    }
    /* APPLY: remove what lower layers put in the directory, sparing this layer's entries. */
    _cleanup_close_ int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lfd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot list '%s'", e->path);
    }
    note_dir_time(u, e->path);
    int rc = clear_lower(u, lfd, e->path, err);
    cache_drop(u);
    return rc;
}

/* Empties the directory at fd (path) of what lower layers put there. This layer's entries stay;
 * its directories, and the lower directories on the way to its entries (an entry listed before
 * the opaque marker was written through them), are emptied in turn. */
static int clear_lower(unpacker *u, int fd, const char *path, mar_err **err)
{
    int lfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        if (lfd >= 0) {
            close(lfd);
        }
        return mar_err_set(err, MAR_EIO, errno, "cannot list '%s'", path);
    }
    mar_strv victims = MAR_STRV_INIT, keep_dirs = MAR_STRV_INIT;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        _cleanup_free_ char *p = mar_xasprintf("%s%s%s", path, *path ? "/" : "", de->d_name);
        /* Directories of this layer, and lower ones holding its entries, are looked into;
         * anything else of a lower layer goes. */
        struct stat st;
        bool mine = mar_map_get(&u->created, p) != NULL;
        if ((mine || mar_map_get(&u->above, p)) &&
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            mar_strv_push(&keep_dirs, de->d_name);
        } else if (!mine) {
            mar_strv_push(&victims, de->d_name);
        }
    }
    int rc = 0;
    for (size_t i = 0; i < victims.n && rc == 0; i++) {
        rc = oci_remove_at(dirfd(d), victims.v[i], err);
    }
    for (size_t i = 0; i < keep_dirs.n && rc == 0; i++) {
        int cfd = openat(dirfd(d), keep_dirs.v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_free_ char *p = mar_xasprintf("%s%s%s", path, *path ? "/" : "", keep_dirs.v[i]);
        note_dir_time(u, p);
        if (cfd < 0) {
            rc = mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", p);
            break;
        }
        rc = clear_lower(u, cfd, p, err);
        close(cfd);
    }
    mar_strv_release(&victims);
    mar_strv_release(&keep_dirs);
    closedir(d);
    return rc;
}

static int cmp_fix(const void *a, const void *b)
{
    const fixup *x = a, *y = b;
    return y->depth - x->depth;
}

/* Directory modes and times, deepest first, each re-opened in-root and checked to still be a
 * directory: a later entry may have replaced it with a symlink (CVE-2021-31566 class) or removed
 * it, and then there is nothing to fix: ENOENT, ENOTDIR and ELOOP skip the entry. Any other
 * failure leaves a directory with the wrong mode (a 0700 one where the image says 0755, or the
 * reverse) and fails the layer (fault sites "unpack-fixup-chmod", "unpack-fixup-times"). */
MAR_MUST_USE static int apply_fixups(unpacker *u, mar_err **err)
{
    if (u->n_fix > 1) { /* qsort on a NULL array is undefined even for 0 elements */
        qsort(u->fix, u->n_fix, sizeof(*u->fix), cmp_fix);
    }
    for (size_t i = 0; i < u->n_fix; i++) {
        const fixup *f = &u->fix[i];
        _cleanup_close_ int fd =
                mar_in_root_open(u->rootfd, f->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
        if (fd < 0) {
            if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
                continue;
            }
            return mar_err_set(err, MAR_EIO, errno, "cannot open directory '%s'", f->path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot stat directory '%s'", f->path);
        }
        if (!S_ISDIR(st.st_mode)) {
            continue;
        }
        int e = mar_fault("unpack-fixup-chmod");
        if (e == 0 && fchmod(fd, f->mode) < 0) {
            e = errno;
        }
        if (e != 0) {
            return mar_err_set(err, MAR_EIO, e, "cannot set the mode of directory '%s'", f->path);
        }
        struct timespec ts[2] = {f->mtime, f->mtime};
        e = mar_fault("unpack-fixup-times");
        if (e == 0 && futimens(fd, ts) < 0) {
            e = errno;
        }
        if (e != 0) {
            return mar_err_set(err, MAR_EIO, e, "cannot set the times of directory '%s'", f->path);
        }
    }
    return 0;
}

void oci_unpack_result_release(oci_unpack_result *r)
{
    mar_strv_release(&r->implicit_dirs);
    mar_strv_release(&r->deferred_links);
    memset(r, 0, sizeof(*r));
}

int oci_unpack(int blobfd, int rootfd, const oci_unpack_opts *o, oci_unpack_result *ret,
               mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_layer_ oci_layer_reader *r = NULL;
    if ((o->archive ? oci_archive_open : oci_layer_open)(blobfd, o->lim, &r, err) < 0) {
        return -mar_err_code(*err);
    }
    ret->codec = oci_layer_codec(r);
    unpacker u = {
            .rootfd = rootfd, .o = o, .res = ret, .root = geteuid() == 0, .cache_fd = -1, .r = r};
    oci_layer_limits dl;
    oci_layer_limits_default(&dl);
    u.min_free = o->lim ? o->lim->min_free : dl.min_free;
    u.max_written = o->lim ? o->lim->max_uncompressed : dl.max_uncompressed;
    int rc = 0;
    const oci_layer_entry *e;
    for (;;) {
        rc = oci_layer_next(r, &e, err);
        if (rc <= 0) {
            break;
        }
        ret->entries++;
        u.now_entry = (struct timespec){e->mtime, e->mtime_nsec};
        maybe_progress(&u);
        switch (e->kind) {
        case OCI_ENTRY_FILE:
            rc = write_file(&u, r, e, err);
            break;
        case OCI_ENTRY_DIR:
            rc = write_dir(&u, e, err);
            break;
        case OCI_ENTRY_SYMLINK:
            rc = write_symlink(&u, e, err);
            break;
        case OCI_ENTRY_HARDLINK:
            rc = write_hardlink(&u, e, err);
            break;
        case OCI_ENTRY_CHAR:
        case OCI_ENTRY_BLOCK:
        case OCI_ENTRY_FIFO:
        case OCI_ENTRY_SOCKET:
            rc = write_special(&u, e, err);
            break;
        case OCI_ENTRY_WHITEOUT:
            rc = whiteout(&u, e, err);
            break;
        case OCI_ENTRY_OPAQUE:
            rc = opaque(&u, e, err);
            break;
        case OCI_ENTRY_AUFS_META:
            break;
        }
        if (rc < 0) {
            mar_err_wrap(err, "layer entry '%.200s'", e->path);
            break;
        }
    }
    if (rc == 0) {
        rc = oci_layer_finish(r, &ret->diff_id, &ret->size, err);
    }
    if (rc == 0 && o->expect_diff_id && !mar_digest_eq(o->expect_diff_id, &ret->diff_id)) {
        rc = mar_err_set(err, MAR_EINTEGRITY, 0,
                         "layer content is %s but the image config says %s, refusing",
                         ret->diff_id.str, o->expect_diff_id->str);
    }
    cache_drop(&u);
    if (rc == 0) {
        rc = restore_dir_times(&u, err);
    }
    if (rc == 0) {
        rc = apply_fixups(&u, err);
    }
    size_t pos = 0;
    const char *k;
    void *v;
    while (mar_map_next(&u.dirtimes, &pos, &k, &v)) {
        free(v);
    }
    mar_map_release(&u.dirtimes);
    for (size_t i = 0; i < u.n_fix; i++) {
        free(u.fix[i].path);
    }
    free(u.fix);
    mar_map_release(&u.created);
    mar_map_release(&u.above);
    return rc < 0 ? rc : 0;
}
