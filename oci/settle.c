/* Settling a layer unpacked alone (OCI_UNPACK_LAYER) against the layers under it, so that
 * mounting the directories with overlayfs shows what applying the layers in order shows
 * (containerd applies each layer through a mount of the ones below; image-spec layer.md
 * "Applying Changesets").
 *
 * Two things differ when a layer is unpacked on its own:
 *
 *  - Directories the layer only implies (it has usr/bin/x but no usr/bin entry). Applied, the
 *    write goes through whatever the lower layers have there: with a usrmerge base, bin/x lands
 *    in usr/bin/x because bin is a symlink. Alone, the unpacker made a real bin/, which overlayfs
 *    would put over the symlink and hide /usr/bin. Such directories are moved to where the
 *    lower layers resolve them, and those that stay take the lower directory's owner, mode and
 *    times (an implied directory must not reset /usr to 0755 root or 0700).
 *  - Hard links to files of a lower layer. Applied, link(2) in the merged tree copies the file
 *    up; alone there is nothing to link to. The file is copied into this layer, then linked.
 *
 * Every path is resolved in-root in the layer directory (mar_in_root_*) or through the merged
 * view (lview.c); nothing follows a symlink out. */
#include "oci.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

typedef struct settler {
    int layerfd;
    const oci_lview *lowers;
    oci_lview full; /* this layer on top of the lowers */
    int full_fds[OCI_LVIEW_MAX_LAYERS];
    mar_strv moves; /* pairs (from, to), in the order they were made */
    oci_settle_stats *st;
} settler;

static bool has_prefix_path(const char *p, const char *prefix, size_t *ret_len)
{
    size_t l = strlen(prefix);
    if (strncmp(p, prefix, l) != 0 || (p[l] != '\0' && p[l] != '/')) {
        return false;
    }
    *ret_len = l;
    return true;
}

/* Where an implied directory (or something under it) is now, after earlier moves. Each move
 * is expressed in the coordinates left by the ones before it, so they apply in order. */
static char *relocate(const settler *s, const char *path)
{
    char *p = mar_xstrdup(path);
    for (size_t i = 0; i + 1 < s->moves.n; i += 2) {
        size_t l;
        if (has_prefix_path(p, s->moves.v[i], &l)) {
            char *np = mar_xasprintf("%s%s", s->moves.v[i + 1], p + l);
            free(p);
            p = np;
        }
    }
    return p;
}

/* Gives the directory at fd the owner, mode and times of the lower layers' directory at path,
 * when they have one. */
static void copy_dir_meta(settler *s, int fd, const char *path)
{
    size_t layer;
    struct stat st;
    mar_err *e = NULL;
    if (!*path || oci_lview_stat(s->lowers, path, &layer, &st, NULL, &e) < 0 ||
        !S_ISDIR(st.st_mode)) {
        mar_err_free(e);
        return;
    }
    if (fchown(fd, st.st_uid, st.st_gid) == 0 && fchmod(fd, st.st_mode & 07777) == 0) {
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        futimens(fd, ts);
        s->st->dirs_matched++;
    }
}

/* The parent directory of path in the layer, creating missing directories with the lower
 * layers' metadata. Returns an fd the caller closes. */
MAR_MUST_USE static int ensure_parent(settler *s, const char *path, const char **ret_name,
                                      mar_err **err)
{
    const char *slash = strrchr(path, '/');
    *ret_name = slash ? slash + 1 : path;
    if (!slash) {
        int fd = fcntl(s->layerfd, F_DUPFD_CLOEXEC, 3);
        return fd >= 0 ? fd : mar_err_set(err, MAR_EIO, errno, "cannot duplicate a layer fd");
    }
    _cleanup_free_ char *dir = mar_xstrndup(path, (size_t)(slash - path));
    size_t dl = strlen(dir);
    for (size_t i = 1; i <= dl; i++) {
        if (dir[i] != '/' && dir[i] != '\0') {
            continue;
        }
        char save = dir[i];
        dir[i] = '\0';
        int fd = mar_in_root_open(s->layerfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
        if (fd < 0 && errno == ENOENT) {
            int pfd;
            const char *nm;
            if (mar_in_root_parent(s->layerfd, dir, false, 0, &pfd, &nm, err) < 0) {
                return -1;
            }
            int mr = mkdirat(pfd, nm, 0755);
            int e = errno;
            close(pfd);
            if (mr < 0 && e != EEXIST) {
                return mar_err_set(err, MAR_EIO, e, "cannot create '%.200s'", dir);
            }
            fd = mar_in_root_open(s->layerfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
            if (fd >= 0 && mr == 0) {
                copy_dir_meta(s, fd, dir);
            }
        }
        if (fd < 0) {
            return mar_err_set(err, MAR_EINTEGRITY, errno, "cannot open '%.200s' in the layer",
                               dir);
        }
        close(fd);
        dir[i] = save;
    }
    int fd = mar_in_root_open(s->layerfd, dir, O_PATH | O_DIRECTORY, 0);
    return fd >= 0 ? fd : mar_err_set(err, MAR_EIO, errno, "cannot open '%.200s'", dir);
}

/* Moves what the layer has at `from` to `to` (which the lower layers resolve `from` to). An
 * entry already at the destination was written by this layer itself and wins. */
MAR_MUST_USE static int merge(settler *s, const char *from, const char *to, mar_err **err)
{
    int fpfd;
    const char *fname;
    if (mar_in_root_parent(s->layerfd, from, false, 0, &fpfd, &fname, err) < 0) {
        return -1;
    }
    _cleanup_close_ int fp = fpfd;
    const char *tname;
    _cleanup_close_ int tp = ensure_parent(s, to, &tname, err);
    if (tp < 0) {
        return -1;
    }
    struct stat fst, tst;
    if (fstatat(fp, fname, &fst, AT_SYMLINK_NOFOLLOW) < 0) {
        return 0;
    }
    if (fstatat(tp, tname, &tst, AT_SYMLINK_NOFOLLOW) < 0) {
        if (renameat(fp, fname, tp, tname) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot move '%.200s' to '%.200s'", from, to);
        }
        s->st->moved++;
        return 0;
    }
    if (!S_ISDIR(fst.st_mode) || !S_ISDIR(tst.st_mode)) {
        s->st->shadowed++;
        return oci_remove_at(fp, fname, err);
    }
    int dfd = openat(fp, fname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0) {
            close(dfd);
        }
        return mar_err_set(err, MAR_EIO, errno, "cannot list '%.200s'", from);
    }
    mar_strv names = MAR_STRV_INIT;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            mar_strv_push(&names, de->d_name);
        }
    }
    closedir(d);
    int rc = 0;
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        _cleanup_free_ char *f = mar_xasprintf("%s/%s", from, names.v[i]);
        _cleanup_free_ char *t = mar_xasprintf("%s/%s", to, names.v[i]);
        rc = merge(s, f, t, err);
    }
    mar_strv_release(&names);
    if (rc == 0 && unlinkat(fp, fname, AT_REMOVEDIR) < 0 && errno != ENOENT) {
        rc = mar_err_set(err, MAR_EIO, errno, "cannot remove '%.200s'", from);
    }
    return rc;
}

static int depth_of(const char *p)
{
    int d = 0;
    for (; *p; p++) {
        d += *p == '/';
    }
    return d;
}

static int cmp_depth(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    int dx = depth_of(x), dy = depth_of(y);
    return dx != dy ? dx - dy : strcmp(x, y);
}

static bool lower_dir(settler *s, const char *to, bool exists)
{
    size_t layer;
    struct stat st;
    mar_err *e = NULL;
    if (!exists || !*to || oci_lview_stat(s->lowers, to, &layer, &st, NULL, &e) < 0) {
        mar_err_free(e);
        return exists && !*to;
    }
    return S_ISDIR(st.st_mode);
}

/* True when the directory holds nothing but whiteouts and directories of the same kind, none
 * of them opaque. */
static bool only_whiteouts(int dfd)
{
    char v[2];
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    bool only = fgetxattr(dirfd(d), "trusted.overlay.opaque", v, sizeof(v)) < 0;
    struct dirent *de;
    while (only && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            only = false;
        } else if (S_ISDIR(st.st_mode)) {
            int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            only = cfd >= 0 && only_whiteouts(cfd);
            if (cfd >= 0) {
                close(cfd);
            }
        } else {
            only = S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
        }
    }
    closedir(d);
    return only;
}

MAR_MUST_USE static int settle_implied(settler *s, const mar_strv *implied, mar_err **err)
{
    mar_strv sorted = MAR_STRV_INIT;
    for (size_t i = 0; i < implied->n; i++) {
        mar_strv_push(&sorted, implied->v[i]);
    }
    if (sorted.n > 1) {
        qsort(sorted.v, sorted.n, sizeof(char *), cmp_depth);
    }
    int rc = 0;
    for (size_t i = 0; i < sorted.n && rc == 0; i++) {
        _cleanup_free_ char *cur = relocate(s, sorted.v[i]);
        _cleanup_close_ int fd =
                mar_in_root_open(s->layerfd, cur, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
        if (fd < 0) {
            continue; /* replaced or removed by a later entry of the layer */
        }
        _cleanup_free_ char *to = NULL;
        bool exists = false;
        if (oci_lview_resolve(s->lowers, cur, true, &to, &exists, err) < 0) {
            rc = -1;
            break;
        }
        if (!lower_dir(s, to, exists) && only_whiteouts(fd)) {
            /* Made only to hold whiteouts of things no lower layer has: applying the layer
             * makes nothing there (a whiteout under a missing or non-directory path is moot),
             * so neither does the stored layer. */
            int pfd;
            const char *nm;
            if (mar_in_root_parent(s->layerfd, cur, false, 0, &pfd, &nm, err) < 0) {
                rc = -1;
                break;
            }
            rc = oci_remove_at(pfd, nm, err);
            close(pfd);
            continue;
        }
        if (strcmp(to, cur) == 0) {
            copy_dir_meta(s, fd, cur);
            continue;
        }
        if (!*to) {
            /* A lower symlink to "/" (or "..") : the layer's directory merges into the root. */
            rc = mar_err_set(err, MAR_EINTEGRITY, 0,
                             "'%.200s' resolves to the root in the lower layers, refusing", cur);
            break;
        }
        rc = merge(s, cur, to, err);
        if (rc == 0) {
            int tfd = mar_in_root_open(s->layerfd, to, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
            if (tfd >= 0) {
                copy_dir_meta(s, tfd, to);
                close(tfd);
            }
            mar_strv_push(&s->moves, cur);
            mar_strv_push(&s->moves, to);
        }
    }
    mar_strv_release(&sorted);
    return rc;
}

static int copy_xattrs(int from, int to)
{
    char names[4096];
    ssize_t n = flistxattr(from, names, sizeof(names));
    for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
        const char *nm = names + off;
        if (strcmp(nm, "security.capability") != 0 && !mar_str_startswith(nm, "user.")) {
            continue;
        }
        char v[4096];
        ssize_t vl = fgetxattr(from, nm, v, sizeof(v));
        if (vl >= 0 && fsetxattr(to, nm, v, (size_t)vl, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Copies the data ranges of a file and keeps its holes as holes: a sparse file of a lower layer
 * must not be written out in full by a hard link above it (unpack.c counts apparent sizes). */
static int copy_sparse(int in, int out, off_t size)
{
    for (off_t pos = 0; pos < size;) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) {
                break; /* only a hole is left */
            }
            return -1;
        }
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0) {
            return -1;
        }
        for (off_t at = data; at < hole;) {
            loff_t ri = at, wo = at;
            ssize_t c = copy_file_range(in, &ri, out, &wo, (size_t)(hole - at), 0);
            if (c <= 0) {
                if (c == 0) {
                    errno = EIO;
                }
                return -1;
            }
            at += c;
        }
        pos = hole;
    }
    return ftruncate(out, size);
}

/* Copies the lower layer's entry name (in the directory spfd) into the layer at dpfd/dname, as
 * overlayfs copy-up would. */
MAR_MUST_USE static int copy_up(int spfd, const char *name, const struct stat *st, int dpfd,
                                const char *dname, const char *path, mar_err **err)
{
    if (S_ISLNK(st->st_mode)) {
        char target[4097];
        ssize_t tl = readlinkat(spfd, name, target, sizeof(target) - 1);
        if (tl < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot read '%.200s'", path);
        }
        target[tl] = '\0';
        if (symlinkat(target, dpfd, dname) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot copy up '%.200s'", path);
        }
    } else if (S_ISREG(st->st_mode)) {
        _cleanup_close_ int in = openat(spfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int out =
                in < 0 ? -1
                       : openat(dpfd, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                0600);
        if (out < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot copy up '%.200s'", path);
        }
        if (copy_sparse(in, out, st->st_size) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot copy up '%.200s'", path);
        }
        if (fchown(out, st->st_uid, st->st_gid) < 0 || fchmod(out, st->st_mode & 07777) < 0 ||
            copy_xattrs(in, out) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot copy up '%.200s'", path);
        }
        struct timespec ts[2] = {st->st_atim, st->st_mtim};
        futimens(out, ts);
        return 0;
    } else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) || S_ISFIFO(st->st_mode)) {
        if (mknodat(dpfd, dname, st->st_mode, st->st_rdev) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot copy up '%.200s'", path);
        }
    } else {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "hard link to '%.200s', a directory, refusing",
                           path);
    }
    /* Without root the copy keeps the caller as owner, as the layer's own entries do. */
    if (fchownat(dpfd, dname, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
        mar_debug("cannot give the copied-up '%.200s' its owner, ignoring", path);
    }
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    utimensat(dpfd, dname, ts, AT_SYMLINK_NOFOLLOW);
    return 0;
}

/* A hard link whose target the layer does not have: resolve it in the merged view (this layer
 * over the lowers), copy it up when a lower layer has it, then link. */
MAR_MUST_USE static int settle_link(settler *s, const char *path, const char *target, mar_err **err)
{
    _cleanup_free_ char *tpath = relocate(s, target);
    const char *tslash = strrchr(tpath, '/');
    _cleanup_free_ char *tdir = tslash ? mar_xstrndup(tpath, (size_t)(tslash - tpath)) : NULL;
    const char *tname = tslash ? tslash + 1 : tpath;
    _cleanup_free_ char *rdir = NULL;
    if (oci_lview_resolve(&s->full, tdir ? tdir : "", true, &rdir, NULL, err) < 0) {
        return -1;
    }
    _cleanup_free_ char *rt = *rdir ? mar_xasprintf("%s/%s", rdir, tname) : mar_xstrdup(tname);
    size_t layer;
    struct stat st;
    int spfd = -1;
    mar_err *le = NULL;
    if (oci_lview_stat(&s->full, rt, &layer, &st, &spfd, &le) < 0) {
        mar_err_free(le);
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "hard link '%.200s' to '%.200s', which is in no layer, refusing", path,
                           target);
    }
    _cleanup_close_ int sp = spfd;
    const char *dname;
    _cleanup_close_ int dp = -1;
    if (layer != 0) {
        dp = ensure_parent(s, rt, &dname, err);
        if (dp < 0 || copy_up(sp, tname, &st, dp, dname, rt, err) < 0) {
            return -1;
        }
        s->st->copied_up++;
        close(sp);
        sp = dp;
        dp = -1;
    }
    /* Where the link itself goes, resolved the same way. */
    _cleanup_free_ char *lpath = relocate(s, path);
    const char *lslash = strrchr(lpath, '/');
    _cleanup_free_ char *ldir = lslash ? mar_xstrndup(lpath, (size_t)(lslash - lpath)) : NULL;
    const char *lname = lslash ? lslash + 1 : lpath;
    _cleanup_free_ char *rl = NULL;
    if (oci_lview_resolve(&s->full, ldir ? ldir : "", true, &rl, NULL, err) < 0) {
        return -1;
    }
    _cleanup_free_ char *dest = *rl ? mar_xasprintf("%s/%s", rl, lname) : mar_xstrdup(lname);
    _cleanup_close_ int lp = ensure_parent(s, dest, &dname, err);
    if (lp < 0 || oci_remove_at(lp, dname, err) < 0) {
        return -1;
    }
    if (linkat(sp, tname, lp, dname, 0) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot link '%.200s' to '%.200s'", path, target);
    }
    s->st->links++;
    return 0;
}

int oci_layer_settle(int layerfd, const oci_lview *lowers, const oci_unpack_result *r,
                     oci_settle_stats *ret_stats, mar_err **err)
{
    if (lowers->n + 1 > OCI_LVIEW_MAX_LAYERS) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "more than %d layers", OCI_LVIEW_MAX_LAYERS);
    }
    oci_settle_stats stats = {0};
    /* A layer whose root is opaque has nothing under it to settle against. */
    oci_lview none = {.fds = lowers->fds, .n = 0};
    if (oci_lview_opaque_root(layerfd)) {
        lowers = &none;
    }
    settler s = {.layerfd = layerfd, .lowers = lowers, .st = &stats};
    s.full_fds[0] = layerfd;
    for (size_t i = 0; i < lowers->n; i++) {
        s.full_fds[i + 1] = lowers->fds[i];
    }
    s.full = (oci_lview){.fds = s.full_fds, .n = lowers->n + 1};
    int rc = settle_implied(&s, &r->implicit_dirs, err);
    for (size_t i = 0; rc == 0 && i + 1 < r->deferred_links.n; i += 2) {
        rc = settle_link(&s, r->deferred_links.v[i], r->deferred_links.v[i + 1], err);
    }
    mar_strv_release(&s.moves);
    if (rc == 0 && ret_stats) {
        *ret_stats = stats;
    }
    return rc;
}
