/* A read-only, user-space view of overlayfs lower directories, merged the way the kernel's
 * overlayfs merges them (Documentation/filesystems/overlayfs.rst, "Directories" and "whiteouts
 * and opaque directories"):
 *
 *   - the topmost layer that has a name decides what it is;
 *   - a directory merges with the directories below it, until a layer has a non-directory there,
 *     a 0/0 character device (whiteout) hides the name, or a directory carries
 *     trusted.overlay.opaque=y;
 *   - symlinks are resolved in the merged view, clamped to its root.
 *
 * The store settles each unpacked layer against the layers under it with this view, and mar run
 * reads image files (/etc/passwd) through it without mounting anything. Every lookup is an
 * fstatat/openat with O_NOFOLLOW on a directory fd, so nothing in a layer can point the view at
 * the host. */
#include "oci.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

/* The directories of one merged directory, top layer first. */
typedef struct level {
    int fd[OCI_LVIEW_MAX_LAYERS];
    size_t layer[OCI_LVIEW_MAX_LAYERS];
    size_t n;
} level;

static void level_release(level *l)
{
    for (size_t i = 0; i < l->n; i++) {
        close(l->fd[i]);
    }
    l->n = 0;
}

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool is_opaque(int dirfd)
{
    char v[2];
    ssize_t n = fgetxattr(dirfd, "trusted.overlay.opaque", v, sizeof(v));
    return n == 1 && v[0] == 'y';
}

bool oci_lview_opaque_root(int layerfd)
{
    int fd = openat(layerfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool opaque = fd >= 0 && is_opaque(fd);
    if (fd >= 0) {
        close(fd);
    }
    return opaque;
}

MAR_MUST_USE static int level_root(const oci_lview *v, level *ret, mar_err **err)
{
    ret->n = 0;
    for (size_t i = 0; i < v->n; i++) {
        int fd = openat(v->fds[i], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            level_release(ret);
            return mar_err_set(err, MAR_EIO, errno, "cannot open layer %zu", i);
        }
        ret->fd[ret->n] = fd;
        ret->layer[ret->n++] = i;
        /* An opaque root hides the layers below it, as for any directory. */
        if (is_opaque(fd)) {
            break;
        }
    }
    return 0;
}

/* Looks name up in the merged directory `cur`. On a directory the merged child level is built
 * in `next` (when not NULL). Returns 0 with the winning layer and its stat, or -ENOENT. */
static int level_lookup(const level *cur, const char *name, size_t *ret_layer, struct stat *ret_st,
                        level *next)
{
    bool found = false;
    if (next) {
        next->n = 0;
    }
    for (size_t i = 0; i < cur->n; i++) {
        struct stat st;
        if (fstatat(cur->fd[i], name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            continue;
        }
        if (is_whiteout(&st)) {
            break;
        }
        if (!found) {
            found = true;
            *ret_layer = cur->layer[i];
            *ret_st = st;
        }
        if (!S_ISDIR(st.st_mode) || !S_ISDIR(ret_st->st_mode) || !next) {
            break;
        }
        int fd = openat(cur->fd[i], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            break;
        }
        next->fd[next->n] = fd;
        next->layer[next->n++] = cur->layer[i];
        if (is_opaque(fd)) {
            break;
        }
    }
    return found ? 0 : -ENOENT;
}

/* Splits a path into a component list: no "." and no empty names; ".." stays, for the walk to
 * clamp at the root. */
static void split(const char *path, mar_strv *out)
{
    const char *comp;
    size_t len;
    while (mar_path_next(&path, &comp, &len) != MAR_PATH_END) {
        mar_strv_push_take(out, mar_xstrndup(comp, len));
    }
}

static char *join(const mar_strv *c, size_t n)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < n; i++) {
        if (i) {
            mar_buf_xputs(&b, "/");
        }
        mar_buf_xputs(&b, c->v[i]);
    }
    return mar_buf_detach(&b, NULL);
}

/* Walks from the root down the resolved components `cur`, which are all directories. */
MAR_MUST_USE static int level_at(const oci_lview *v, const mar_strv *cur, level *ret, mar_err **err)
{
    if (level_root(v, ret, err) < 0) {
        return -1;
    }
    for (size_t i = 0; i < cur->n; i++) {
        level next;
        size_t layer;
        struct stat st;
        int r = level_lookup(ret, cur->v[i], &layer, &st, &next);
        level_release(ret);
        if (r < 0 || !S_ISDIR(st.st_mode)) {
            level_release(&next);
            return mar_err_set(err, MAR_ENOTFOUND, ENOENT, "'%s' vanished from the layers",
                               cur->v[i]);
        }
        *ret = next;
    }
    return 0;
}

int oci_lview_resolve(const oci_lview *v, const char *path, bool follow_last, char **ret_path,
                      bool *ret_exists, mar_err **err)
{
    if (v->n > OCI_LVIEW_MAX_LAYERS) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "more than %d layers", OCI_LVIEW_MAX_LAYERS);
    }
    mar_strv todo = MAR_STRV_INIT; /* components still to walk, reversed (pop from the end) */
    mar_strv cur = MAR_STRV_INIT;  /* resolved directories so far */
    mar_strv tmp = MAR_STRV_INIT;
    split(path, &tmp);
    for (size_t i = tmp.n; i > 0; i--) {
        mar_strv_push(&todo, tmp.v[i - 1]);
    }
    mar_strv_release(&tmp);
    level lv = {.n = 0};
    int rc = level_at(v, &cur, &lv, err);
    bool exists = true;
    size_t missing_at = 0; /* while !exists: cur.n when the first missing component was pushed */
    int hops = 0;
    while (rc == 0 && todo.n) {
        char *c = todo.v[--todo.n];
        todo.v[todo.n] = NULL;
        if (strcmp(c, "..") == 0) {
            /* ".." of the root is the root (RESOLVE_IN_ROOT semantics). Below a missing
             * component it only drops a literal one, until the walk is back where things
             * exist. */
            free(c);
            if (cur.n) {
                free(cur.v[--cur.n]);
                cur.v[cur.n] = NULL;
                if (exists || cur.n <= missing_at) {
                    exists = true;
                    level_release(&lv);
                    rc = level_at(v, &cur, &lv, err);
                }
            }
            continue;
        }
        size_t layer;
        struct stat st;
        level next = {.n = 0};
        if (!exists || level_lookup(&lv, c, &layer, &st, &next) < 0) {
            /* Missing: the rest is taken literally, as mkdir -p through the view would. */
            if (exists) {
                missing_at = cur.n;
            }
            exists = false;
            mar_strv_push_take(&cur, c);
            continue;
        }
        if (S_ISLNK(st.st_mode) && (todo.n || follow_last)) {
            if (++hops > MAR_SYMLINK_HOPS) {
                free(c);
                rc = mar_err_set(err, MAR_EINTEGRITY, ELOOP, "too many symlinks resolving '%.200s'",
                                 path);
                break;
            }
            /* Read the link from the layer that owns it: the directory fd of that layer. */
            char target[4097];
            ssize_t tl = -1;
            for (size_t i = 0; i < lv.n; i++) {
                if (lv.layer[i] == layer) {
                    tl = readlinkat(lv.fd[i], c, target, sizeof(target) - 1);
                    break;
                }
            }
            free(c);
            if (tl <= 0) {
                rc = mar_err_set(err, MAR_EIO, errno, "cannot read a symlink in '%.200s'", path);
                break;
            }
            target[tl] = '\0';
            split(target, &tmp);
            for (size_t i = tmp.n; i > 0; i--) {
                mar_strv_push(&todo, tmp.v[i - 1]);
            }
            mar_strv_release(&tmp);
            if (target[0] == '/') {
                mar_strv_release(&cur);
            }
            level_release(&lv);
            rc = level_at(v, &cur, &lv, err);
            continue;
        }
        mar_strv_push_take(&cur, c);
        level_release(&lv);
        if (S_ISDIR(st.st_mode)) {
            lv = next;
        } else {
            level_release(&next);
            if (todo.n) {
                /* A non-directory in the middle of the path: nothing below it exists. */
                missing_at = cur.n - 1;
                exists = false;
            }
        }
    }
    level_release(&lv);
    mar_strv_release(&todo);
    if (rc == 0) {
        *ret_path = join(&cur, cur.n);
        if (ret_exists) {
            *ret_exists = exists;
        }
    }
    mar_strv_release(&cur);
    return rc;
}

int oci_lview_stat(const oci_lview *v, const char *resolved, size_t *ret_layer, struct stat *ret_st,
                   int *ret_parent_fd, mar_err **err)
{
    mar_strv c = MAR_STRV_INIT;
    split(resolved, &c);
    if (c.n == 0) {
        mar_strv_release(&c);
        return mar_err_set(err, MAR_EUSAGE, 0, "the root has no parent");
    }
    char *name = c.v[--c.n];
    c.v[c.n] = NULL;
    level lv;
    int rc = level_at(v, &c, &lv, err);
    mar_strv_release(&c);
    if (rc < 0) {
        free(name);
        return rc;
    }
    size_t layer = 0;
    struct stat st;
    if (level_lookup(&lv, name, &layer, &st, NULL) < 0) {
        level_release(&lv);
        rc = mar_err_set(err, MAR_ENOTFOUND, ENOENT, "'%s' is in no layer", resolved);
        free(name);
        return rc;
    }
    free(name);
    if (ret_parent_fd) {
        *ret_parent_fd = -1;
        for (size_t i = 0; i < lv.n; i++) {
            if (lv.layer[i] == layer) {
                *ret_parent_fd = lv.fd[i];
                lv.fd[i] = lv.fd[--lv.n];
                lv.layer[i] = lv.layer[lv.n];
                break;
            }
        }
    }
    level_release(&lv);
    *ret_layer = layer;
    *ret_st = st;
    return 0;
}

int oci_lview_read(const oci_lview *v, const char *path, size_t cap, mar_buf *ret, mar_err **err)
{
    _cleanup_free_ char *resolved = NULL;
    if (oci_lview_resolve(v, path, true, &resolved, NULL, err) < 0) {
        return -1;
    }
    size_t layer;
    struct stat st;
    int pfd = -1;
    if (!*resolved || oci_lview_stat(v, resolved, &layer, &st, &pfd, err) < 0) {
        return *resolved ? -1 : mar_err_set(err, MAR_EIO, 0, "'%s' is a directory", path);
    }
    const char *name = strrchr(resolved, '/');
    name = name ? name + 1 : resolved;
    /* O_NONBLOCK: a FIFO planted at /etc/passwd must not hang the reader (CVE-2024-9676). */
    _cleanup_close_ int fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int e = errno;
    close(pfd);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, e, "cannot open '%s'", path);
    }
    return mar_read_fd(fd, path, cap, ret, err);
}
