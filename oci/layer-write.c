/* Directory trees as layers (docs/internals/layer-write.md §2, §4): a walk of a hostile tree,
 * written by a container, through directory fds only. Nothing is followed: every name is lstat'ed
 * relative to its directory's fd, regular files and directories are opened with O_NOFOLLOW (and
 * O_NONBLOCK, so a FIFO swapped in cannot block) and checked with fstat to be the inode lstat
 * saw, symlinks are read with readlinkat, and devices and FIFOs are never opened.
 *
 * In an overlayfs upper directory (the kernel's filesystems/overlayfs.rst, "whiteouts and opaque
 * directories"), a 0/0 character device is a whiteout and a directory whose overlay.opaque xattr
 * is "y" hides what the lower layers hold in it; both become the `.wh.` files of image-spec
 * layer.md. Overlay's own xattrs never reach the layer, and the artefacts of redirect_dir and
 * metacopy, which store a file's content or a directory's origin in the lower layers, are refused:
 * a layer has to be complete on its own. */
#include "oci.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

typedef struct xattr_set {
    oci_xattr *v;
    size_t n;
    char *names;     /* the flistxattr list the names point into */
    void **values;   /* owned copies */
    bool opaque;     /* overlay.opaque = "y" */
    bool whiteout;   /* overlay.whiteout present */
    const char *bad; /* an overlay xattr that must not be there */
} xattr_set;

static void xattr_set_release(xattr_set *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free(x->values[i]);
    }
    free(x->values);
    free(x->v);
    free(x->names);
    memset(x, 0, sizeof(*x));
}

static inline void xattr_set_releasep(xattr_set *x)
{
    xattr_set_release(x);
}

typedef struct walker {
    oci_tarw *w;
    oci_tree_opts o;
    const char *ovl; /* the mount's overlay namespace: "trusted.overlay." or "user.overlay." */
    size_t ovl_len;
    mar_map links; /* "dev:ino" -> the first path of a multiply linked inode */
    oci_tree_stats st;
} walker;

static bool overlay_own(const char *name)
{
    return mar_str_startswith(name, "trusted.overlay.") ||
           mar_str_startswith(name, "user.overlay.");
}

/* Which xattrs go into the layer: all but overlay's own, whatever the mode (a staged tree copied
 * from an upper directory may still carry them), and security.selinux, a label the build host's
 * policy gave the file, which the hosts that run the image assign for themselves. */
static bool xattr_archived(const char *name)
{
    return !overlay_own(name) && strcmp(name, "security.selinux") != 0;
}

static void classify_overlay(walker *wk, xattr_set *x, const char *name, const void *val,
                             size_t len)
{
    if (wk->o.kind != OCI_TREE_OVERLAY_UPPER || strncmp(name, wk->ovl, wk->ovl_len) != 0) {
        return;
    }
    const char *key = name + wk->ovl_len;
    if (strcmp(key, "opaque") == 0) {
        /* "y" is an opaque directory; "x" only marks one that holds xattr whiteouts. */
        x->opaque = len == 1 && ((const char *)val)[0] == 'y';
    } else if (strcmp(key, "whiteout") == 0) {
        x->whiteout = true;
    } else if (strcmp(key, "redirect") == 0 || strcmp(key, "metacopy") == 0) {
        x->bad = strcmp(key, "redirect") == 0 ? "redirect" : "metacopy";
    }
}

/* Reads every xattr of an open file. Filesystems without xattrs have none. */
MAR_MUST_USE static int read_xattrs(walker *wk, int fd, const char *path, xattr_set *ret,
                                    mar_err **err)
{
    ssize_t n;
    for (int tries = 0;; tries++) {
        n = flistxattr(fd, NULL, 0);
        if (n <= 0) {
            if (n < 0 && errno != ENOTSUP && errno != ENODATA) {
                return mar_err_set(err, MAR_EIO, errno, "cannot list the xattrs of '%s'", path);
            }
            return 0;
        }
        free(ret->names);
        ret->names = mar_xmalloc((size_t)n + 1);
        ssize_t got = flistxattr(fd, ret->names, (size_t)n);
        if (got >= 0) {
            n = got;
            break;
        }
        if (errno != ERANGE || tries > 8) {
            return mar_err_set(err, MAR_EIO, errno, "cannot list the xattrs of '%s'", path);
        }
    }
    ret->names[n] = '\0';
    size_t cap = 0;
    for (ssize_t i = 0; i < n; i++) {
        cap += ret->names[i] == '\0';
    }
    ret->v = mar_xcalloc(cap ? cap : 1, sizeof(*ret->v));
    ret->values = mar_xcalloc(cap ? cap : 1, sizeof(*ret->values));
    for (char *name = ret->names; name < ret->names + n; name += strlen(name) + 1) {
        void *val = NULL;
        ssize_t vl;
        for (int tries = 0;; tries++) {
            vl = fgetxattr(fd, name, NULL, 0);
            if (vl < 0) {
                break;
            }
            free(val);
            val = mar_xmalloc((size_t)vl + 1);
            ssize_t got = fgetxattr(fd, name, val, (size_t)vl);
            if (got >= 0) {
                vl = got;
                break;
            }
            if (errno != ERANGE || tries > 8) {
                vl = -1;
                break;
            }
        }
        if (vl < 0) {
            int e = errno;
            free(val);
            if (e == ENODATA) {
                continue; /* removed since the listing */
            }
            return mar_err_set(err, MAR_EIO, e, "cannot read xattr '%.100s' of '%s'", name, path);
        }
        classify_overlay(wk, ret, name, val, (size_t)vl);
        if (!xattr_archived(name)) {
            free(val);
            continue;
        }
        ret->values[ret->n] = val;
        ret->v[ret->n++] = (oci_xattr){name, val, (size_t)vl};
    }
    if (ret->bad) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "'%s' carries the overlayfs %s xattr, which leaves part of it in the "
                           "lower layers (mount the overlay with redirect_dir=off and "
                           "metacopy=off), refusing",
                           path, ret->bad);
    }
    return 0;
}

typedef struct child {
    char *name;
    struct stat st;
    bool whiteout;
} child;

static int cmp_child(const void *a, const void *b)
{
    const child *x = a, *y = b;
    /* image-spec layer.md: whiteouts before their siblings; then byte order of the names. */
    if (x->whiteout != y->whiteout) {
        return x->whiteout ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

MAR_MUST_USE static int changed(const char *path, mar_err **err)
{
    return mar_err_set(err, MAR_EIO, 0, "'%s' changed while being archived", path);
}

/* Opens a regular file or a directory found by lstat, refusing anything else in its place. */
MAR_MUST_USE static int open_checked(int dfd, const char *name, const struct stat *want,
                                     const char *path, struct stat *ret_st, mar_err **err)
{
    int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    if (S_ISDIR(want->st_mode)) {
        flags |= O_DIRECTORY;
    }
    int fd = openat(dfd, name, flags);
    if (fd < 0) {
        return errno == ELOOP || errno == ENOTDIR || errno == ENOENT
                       ? changed(path, err)
                       : mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", path);
    }
    if (fstat(fd, ret_st) < 0) {
        int e = errno;
        close(fd);
        return mar_err_set(err, MAR_EIO, e, "cannot stat '%s'", path);
    }
    if (!same_inode(want, ret_st)) {
        close(fd);
        return changed(path, err);
    }
    return fd;
}

static void entry_from_stat(oci_layer_entry *e, const struct stat *st)
{
    e->mode = st->st_mode & 07777;
    e->uid = st->st_uid;
    e->gid = st->st_gid;
    e->mtime = st->st_mtim.tv_sec; /* whole seconds: docs/internals/layer-write.md §3 */
}

static char *join(const char *dir, const char *name)
{
    return *dir ? mar_xasprintf("%s/%s", dir, name) : mar_xstrdup(name);
}

/* Lists a directory, lstat's every child and marks the whiteouts. */
MAR_MUST_USE static int list_dir(walker *wk, int dfd, const char *dpath, child **ret, size_t *ret_n,
                                 mar_err **err)
{
    int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        int e = errno;
        if (lfd >= 0) {
            close(lfd);
        }
        return mar_err_set(err, MAR_EIO, e, "cannot list '%s'", *dpath ? dpath : ".");
    }
    child *v = NULL;
    size_t n = 0, alloc = 0;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (n == alloc) {
            alloc = alloc ? 2 * alloc : 64;
            v = mar_xrealloc(v, alloc * sizeof(*v));
        }
        v[n++] = (child){.name = mar_xstrdup(de->d_name)};
        errno = 0;
    }
    if (errno) {
        rc = mar_err_set(err, MAR_EIO, errno, "cannot list '%s'", *dpath ? dpath : ".");
    }
    closedir(d);
    for (size_t i = 0; i < n && rc == 0; i++) {
        child *c = &v[i];
        if (fstatat(dfd, c->name, &c->st, AT_SYMLINK_NOFOLLOW) < 0) {
            _cleanup_free_ char *p = join(dpath, c->name);
            rc = errno == ENOENT ? changed(p, err)
                                 : mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", p);
            break;
        }
        if (wk->o.kind != OCI_TREE_OVERLAY_UPPER) {
            continue;
        }
        if (S_ISCHR(c->st.st_mode) && c->st.st_rdev == makedev(0, 0)) {
            c->whiteout = true;
        } else if (S_ISREG(c->st.st_mode) && c->st.st_size == 0) {
            /* A whiteout may also be an empty file with the overlay.whiteout xattr. */
            _cleanup_free_ char *p = join(dpath, c->name);
            struct stat fst;
            _cleanup_close_ int fd = open_checked(dfd, c->name, &c->st, p, &fst, err);
            if (fd < 0) {
                rc = fd;
                break;
            }
            _cleanup_(xattr_set_releasep) xattr_set x = {0};
            if ((rc = read_xattrs(wk, fd, p, &x, err)) < 0) {
                break;
            }
            c->whiteout = x.whiteout;
        }
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            free(v[i].name);
        }
        free(v);
        return rc;
    }
    if (n > 1) {
        qsort(v, n, sizeof(*v), cmp_child);
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

MAR_MUST_USE static int walk_dir(walker *wk, int dfd, const char *dpath, mar_err **err);

MAR_MUST_USE static int add_child(walker *wk, int dfd, const char *dpath, const child *c,
                                  mar_err **err)
{
    _cleanup_free_ char *path = join(dpath, c->name);
    if (strlen(path) > OCI_PATH_MAX) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "'%.200s...': path longer than %d bytes, refusing", path, OCI_PATH_MAX);
    }
    const struct stat *st = &c->st;
    oci_layer_entry e = {.path = path};
    entry_from_stat(&e, st);
    int rc;
    if (c->whiteout) {
        e.kind = OCI_ENTRY_WHITEOUT;
        e.mode = 0644;
        wk->st.whiteouts++;
        wk->st.entries++;
        return oci_tarw_add(wk->w, &e, err);
    }
    /* Hard links: the first path of an inode carries it, later ones link to that path. */
    _cleanup_free_ char *key = NULL;
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
        key = mar_xasprintf("%llx:%llx", (unsigned long long)st->st_dev,
                            (unsigned long long)st->st_ino);
        const char *first = mar_map_get(&wk->links, key);
        if (first) {
            e.kind = OCI_ENTRY_HARDLINK;
            e.link = (char *)first;
            wk->st.hardlinks++;
            wk->st.entries++;
            return oci_tarw_add(wk->w, &e, err);
        }
    }
    switch (st->st_mode & S_IFMT) {
    case S_IFREG: {
        struct stat fst;
        _cleanup_close_ int fd = open_checked(dfd, c->name, st, path, &fst, err);
        if (fd < 0) {
            return fd;
        }
        _cleanup_(xattr_set_releasep) xattr_set x = {0};
        if ((rc = read_xattrs(wk, fd, path, &x, err)) < 0) {
            return rc;
        }
        entry_from_stat(&e, &fst);
        e.kind = OCI_ENTRY_FILE;
        e.size = fst.st_size;
        e.xattrs = x.v;
        e.n_xattrs = x.n;
        if ((rc = oci_tarw_add_fd(wk->w, &e, fd, path, err)) < 0) {
            return rc;
        }
        wk->st.files++;
        wk->st.bytes += (uint64_t)fst.st_size;
        break;
    }
    case S_IFDIR: {
        struct stat fst;
        _cleanup_close_ int fd = open_checked(dfd, c->name, st, path, &fst, err);
        if (fd < 0) {
            return fd;
        }
        _cleanup_(xattr_set_releasep) xattr_set x = {0};
        if ((rc = read_xattrs(wk, fd, path, &x, err)) < 0) {
            return rc;
        }
        entry_from_stat(&e, &fst);
        e.kind = OCI_ENTRY_DIR;
        e.xattrs = x.v;
        e.n_xattrs = x.n;
        if ((rc = oci_tarw_add(wk->w, &e, err)) < 0) {
            return rc;
        }
        wk->st.dirs++;
        wk->st.entries++;
        if (x.opaque) {
            /* Right after the directory, before anything of this layer inside it. */
            oci_layer_entry o = {.kind = OCI_ENTRY_OPAQUE, .path = path, .mode = 0644};
            entry_from_stat(&o, &fst);
            o.mode = 0644;
            if ((rc = oci_tarw_add(wk->w, &o, err)) < 0) {
                return rc;
            }
            wk->st.opaques++;
            wk->st.entries++;
        }
        return walk_dir(wk, fd, path, err);
    }
    case S_IFLNK: {
        _cleanup_free_ char *target = mar_xmalloc(OCI_PATH_MAX + 2);
        ssize_t n = readlinkat(dfd, c->name, target, OCI_PATH_MAX + 1);
        if (n < 0) {
            return errno == EINVAL || errno == ENOENT
                           ? changed(path, err)
                           : mar_err_set(err, MAR_EIO, errno, "cannot read the link '%s'", path);
        }
        if (n > OCI_PATH_MAX) {
            return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                               "'%s': symlink target longer than %d bytes, refusing", path,
                               OCI_PATH_MAX);
        }
        target[n] = '\0';
        e.kind = OCI_ENTRY_SYMLINK;
        e.link = target;
        if ((rc = oci_tarw_add(wk->w, &e, err)) < 0) {
            return rc;
        }
        wk->st.symlinks++;
        break;
    }
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
        e.kind = S_ISCHR(st->st_mode)   ? OCI_ENTRY_CHAR
                 : S_ISBLK(st->st_mode) ? OCI_ENTRY_BLOCK
                                        : OCI_ENTRY_FIFO;
        e.devmajor = major(st->st_rdev);
        e.devminor = minor(st->st_rdev);
        if ((rc = oci_tarw_add(wk->w, &e, err)) < 0) {
            return rc;
        }
        wk->st.specials++;
        break;
    default:
        /* Sockets belong to a running process; tar cannot hold them (ustar has no type). */
        mar_debug("'%s' is a socket, not archived", path);
        wk->st.skipped++;
        return 0;
    }
    wk->st.entries++;
    if (key) {
        mar_map_set(&wk->links, key, mar_xstrdup(path));
    }
    return 0;
}

MAR_MUST_USE static int walk_dir(walker *wk, int dfd, const char *dpath, mar_err **err)
{
    child *v = NULL;
    size_t n = 0;
    int rc = list_dir(wk, dfd, dpath, &v, &n, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = add_child(wk, dfd, dpath, &v[i], err);
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
    }
    free(v);
    return rc;
}

int oci_tarw_add_tree(oci_tarw *w, int dirfd, const char *prefix, const oci_tree_opts *o,
                      oci_tree_stats *ret_stats, mar_err **err)
{
    const char *pfx = prefix ? prefix : "";
    _cleanup_free_ char *clean = NULL;
    if (*pfx && (oci_clean_path(pfx, &clean, NULL) < 0 || strcmp(clean, pfx) != 0)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "'%.200s' is not a clean relative path in the layer, refusing", pfx);
    }
    /* A readable fd of the root, whatever dirfd was opened with (O_PATH included). */
    _cleanup_close_ int root = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open the tree to archive");
    }
    walker wk = {.w = w, .links = MAR_MAP_INIT};
    if (o) {
        wk.o = *o;
    }
    wk.ovl = wk.o.userxattr ? "user.overlay." : "trusted.overlay.";
    wk.ovl_len = strlen(wk.ovl);
    int rc = walk_dir(&wk, root, pfx, err);
    size_t pos = 0;
    const char *k;
    void *val;
    while (mar_map_next(&wk.links, &pos, &k, &val)) {
        free(val);
    }
    mar_map_release(&wk.links);
    if (rc == 0 && ret_stats) {
        *ret_stats = wk.st;
    }
    return rc;
}

int oci_layer_write_dir(int dirfd, const oci_layer_write_opts *o, int out_fd,
                        oci_layer_written *ret, mar_err **err)
{
    _cleanup_layer_out_ oci_layer_out *z = NULL;
    int rc = oci_layer_out_new(o->codec, o->level, o->threads, out_fd, &z, err);
    if (rc < 0) {
        return rc;
    }
    _cleanup_tarw_ oci_tarw *w = oci_tarw_new(&o->tar, oci_layer_out_sink, z);
    oci_tree_stats st;
    oci_layer_written res = {0};
    if ((rc = oci_tarw_add_tree(w, dirfd, NULL, &o->tree, &st, err)) < 0 ||
        (rc = oci_tarw_finish(w, err)) < 0 || (rc = oci_layer_out_finish(z, &res, err)) < 0) {
        return rc;
    }
    res.stats = st;
    *ret = res;
    return 0;
}
