/* Filesystem access scoped to a root directory fd (docs/internals/unpack-security.md §2): every
 * path is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), so "/"
 * and
 * ".." and absolute symlinks stay inside the root like chroot(2) would keep them, without
 * entering it. Where openat2 is missing (ENOSYS, or a seccomp filter's EPERM) an fd-based walk
 * does the same resolution in user space: one component at a time with O_NOFOLLOW, symlinks read
 * and re-rooted, ".." popped from a stack of directory fds, so a concurrent rename can never move
 * the walk outside. MAR_NO_OPENAT2=1 forces the walk (tests run both). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define EAGAIN_RETRIES 16

/* -1 unknown, 0 walk, 1 openat2. The pull's unpack workers read and set it concurrently; every
 * writer stores the same answer, so relaxed atomics are enough. */
static _Atomic int use_openat2 = -1;

static bool openat2_enabled(void)
{
    int v = atomic_load_explicit(&use_openat2, memory_order_relaxed);
    if (v < 0) {
        const char *env = getenv("MAR_NO_OPENAT2");
        v = !(env && strcmp(env, "1") == 0);
        atomic_store_explicit(&use_openat2, v, memory_order_relaxed);
    }
    return v == 1;
}

static int sys_openat2(int dirfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
            .flags = (uint64_t)flags | O_CLOEXEC,
            .mode = (flags & O_CREAT) ? mode : 0,
            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    for (int i = 0; i < EAGAIN_RETRIES; i++) {
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        if (fd >= 0) {
            return (int)fd;
        }
        /* "could not ensure that a '..' component didn't escape": a rename raced us. */
        if (errno != EAGAIN) {
            break;
        }
    }
    return -1;
}

typedef struct walk {
    int stack[512]; /* directory fds from the root down; stack[0] is a dup of the root */
    size_t depth;
} walk;

static void walk_release(walk *w)
{
    for (size_t i = 0; i < w->depth; i++) {
        close(w->stack[i]);
    }
    w->depth = 0;
}

/* Resolves `path` under rootfd in user space. With follow_last the final symlink is followed
 * too. Returns an O_PATH fd, or -1 with errno. */
static int walk_path(int rootfd, const char *path, bool follow_last)
{
    walk w = {.depth = 0};
    int r = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    if (r < 0) {
        return -1;
    }
    w.stack[w.depth++] = r;
    /* The remaining components, as a string we consume from the front. */
    char *rest = mar_xstrdup(path);
    int hops = 0;
    int result = -1;
    int err = 0;
    const char *p = rest;
    for (;;) {
        const char *name;
        size_t cl;
        mar_path_comp kind = mar_path_next(&p, &name, &cl);
        if (kind == MAR_PATH_END) {
            result = fcntl(w.stack[w.depth - 1], F_DUPFD_CLOEXEC, 3);
            err = errno;
            break;
        }
        if (kind == MAR_PATH_DOTDOT) {
            /* ".." of the root is the root, as under RESOLVE_IN_ROOT. */
            if (w.depth > 1) {
                close(w.stack[--w.depth]);
            }
            continue;
        }
        char comp[256];
        if (cl >= sizeof(comp)) {
            err = ENAMETOOLONG;
            break;
        }
        memcpy(comp, name, cl);
        comp[cl] = '\0';
        bool last = !*p;
        int fd = openat(w.stack[w.depth - 1], comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            err = errno;
            break;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
            err = errno;
            close(fd);
            break;
        }
        if (S_ISLNK(st.st_mode) && (!last || follow_last)) {
            if (++hops > MAR_SYMLINK_HOPS) {
                close(fd);
                err = ELOOP;
                break;
            }
            char target[4097];
            ssize_t tl = readlinkat(fd, "", target, sizeof(target) - 1);
            close(fd);
            if (tl < 0) {
                err = errno;
                break;
            }
            target[tl] = '\0';
            if (target[0] == '/') {
                /* An absolute target restarts at the root, not at the host's "/". */
                while (w.depth > 1) {
                    close(w.stack[--w.depth]);
                }
            }
            size_t nl = (size_t)tl + 1 + strlen(p) + 1;
            char *next = mar_xmalloc(nl);
            snprintf(next, nl, "%s/%s", target, p);
            free(rest);
            rest = next;
            p = rest;
            continue;
        }
        if (last) {
            result = fd;
            break;
        }
        if (!S_ISDIR(st.st_mode)) {
            close(fd);
            err = ENOTDIR;
            break;
        }
        if (w.depth >= MAR_ARRAY_SIZE(w.stack)) {
            close(fd);
            err = ENAMETOOLONG;
            break;
        }
        w.stack[w.depth++] = fd;
    }
    free(rest);
    walk_release(&w);
    if (result < 0) {
        errno = err;
    }
    return result;
}

int mar_root_open(const char *path, mar_err **err)
{
    int fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, errno == ENOENT ? MAR_ENOTFOUND : MAR_EIO, errno,
                           "cannot open '%s'", path);
    }
    return fd;
}

int mar_in_root_open(int rootfd, const char *path, int flags, mode_t mode)
{
    if (openat2_enabled()) {
        int fd = sys_openat2(rootfd, path, flags, mode);
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) {
            return fd;
        }
        /* Old kernel or a seccomp filter: fall back for the rest of the process. */
        atomic_store_explicit(&use_openat2, 0, memory_order_relaxed);
    }
    /* The walk gives an O_PATH fd for the object; reopen it through /proc only for O_PATH
     * requests is not needed: split into parent + last component instead. */
    if ((flags & O_PATH) && !(flags & O_CREAT)) {
        int fd = walk_path(rootfd, path, !(flags & O_NOFOLLOW));
        struct stat st;
        /* O_DIRECTORY holds as with openat2: anything else is ENOTDIR. */
        if (fd >= 0 && (flags & O_DIRECTORY) && (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))) {
            close(fd);
            errno = ENOTDIR;
            return -1;
        }
        return fd;
    }
    /* Resolve the parent, then open the last component relative to it. */
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    int pfd;
    if (slash) {
        _cleanup_free_ char *parent = mar_xstrndup(path, (size_t)(slash - path));
        pfd = walk_path(rootfd, *parent ? parent : "/", true);
    } else {
        pfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    }
    if (pfd < 0) {
        return -1;
    }
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        int fd = walk_path(rootfd, path, true);
        if (fd >= 0 && !(flags & O_PATH)) {
            int real = openat(fd, ".", (flags & ~O_CREAT) | O_CLOEXEC);
            int e = errno;
            close(fd);
            errno = e;
            fd = real;
        }
        close(pfd);
        return fd;
    }
    int fd = openat(pfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == ELOOP && !(flags & O_NOFOLLOW)) {
        /* The last component is a symlink the caller wants followed: walk it in-root. */
        int lfd = walk_path(rootfd, path, true);
        if (lfd >= 0) {
            fd = (flags & O_PATH) ? lfd : openat(lfd, ".", (flags & ~O_CREAT) | O_CLOEXEC);
            if (!(flags & O_PATH)) {
                int e = errno;
                close(lfd);
                errno = e;
            }
        }
    }
    int e = errno;
    close(pfd);
    errno = e;
    return fd;
}

int mar_in_root_parent(int rootfd, const char *path, bool create, mode_t dir_mode, int *ret_fd,
                       const char **ret_name, mar_err **err)
{
    return mar_in_root_parent_created(rootfd, path, create, dir_mode, NULL, ret_fd, ret_name, err);
}

MAR_MUST_USE static int mar_in_root_parent_guarded(int rootfd, const char *path, bool create,
                                                   mode_t dir_mode, mar_strv *created, int *ret_fd,
                                                   const char **ret_name, int depth_guard,
                                                   mar_err **err);

int mar_in_root_parent_created(int rootfd, const char *path, bool create, mode_t dir_mode,
                               mar_strv *created, int *ret_fd, const char **ret_name, mar_err **err)
{
    /* A directory made a moment ago can vanish before it is reopened when something renames
     * inside the root at the same time (the symlink-exchange attack, or a concurrent tool):
     * resolve again from the root a few times before giving up. Every attempt is in-root. */
    for (int attempt = 0;; attempt++) {
        mar_err *e = NULL;
        int rc = mar_in_root_parent_guarded(rootfd, path, create, dir_mode, created, ret_fd,
                                            ret_name, 0, &e);
        if (rc == 0 || !create || attempt == EAGAIN_RETRIES || e->sys_errno != ENOENT) {
            if (rc < 0) {
                if (err) {
                    *err = e;
                } else {
                    mar_err_free(e);
                }
            }
            return rc;
        }
        mar_err_free(e);
    }
}

MAR_MUST_USE static int mar_in_root_parent_guarded(int rootfd, const char *path, bool create,
                                                   mode_t dir_mode, mar_strv *created, int *ret_fd,
                                                   const char **ret_name, int depth_guard,
                                                   mar_err **err)
{
    /* "/a/b" names the same thing as "a/b" in-root; an empty parent is the root itself. */
    while (*path == '/') {
        path++;
    }
    const char *slash = strrchr(path, '/');
    *ret_name = slash ? slash + 1 : path;
    if (!slash) {
        int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot duplicate the root fd");
        }
        *ret_fd = fd;
        return 0;
    }
    _cleanup_free_ char *parent = mar_xstrndup(path, (size_t)(slash - path));
    int fd = mar_in_root_open(rootfd, parent, O_PATH | O_DIRECTORY, 0);
    if (fd >= 0) {
        *ret_fd = fd;
        return 0;
    }
    if (errno != ENOENT || !create) {
        int e = errno;
        return mar_err_set(err, e == ENOTDIR || e == ELOOP || e == EXDEV ? MAR_EINTEGRITY : MAR_EIO,
                           e, "cannot open the directory of '%.200s'", path);
    }
    /* Create the missing directories one component at a time, each resolved in-root. */
    size_t pl = strlen(parent);
    for (size_t i = 0; i <= pl; i++) {
        if (parent[i] != '/' && parent[i] != '\0') {
            continue;
        }
        char save = parent[i];
        parent[i] = '\0';
        int dfd = *parent ? mar_in_root_open(rootfd, parent, O_PATH | O_DIRECTORY, 0) : -1;
        if (*parent && dfd < 0) {
            if (errno != ENOENT) {
                int e = errno;
                return mar_err_set(err, e == ENOTDIR || e == ELOOP ? MAR_EINTEGRITY : MAR_EIO, e,
                                   "cannot open '%.200s'", parent);
            }
            int pfd;
            const char *nm;
            if (mar_in_root_parent(rootfd, parent, false, dir_mode, &pfd, &nm, err) < 0) {
                return -mar_err_code(*err);
            }
            int mr = mkdirat(pfd, nm, dir_mode);
            int e = errno;
            close(pfd);
            if (mr < 0 && e != EEXIST) {
                return mar_err_set(err, MAR_EIO, e, "cannot create '%.200s'%s", parent,
                                   e == ENOSPC ? " (disk full)" : "");
            }
            if (mr == 0 && created) {
                mar_strv_push(created, parent);
            }
            dfd = mar_in_root_open(rootfd, parent, O_PATH | O_DIRECTORY, 0);
            if (dfd < 0 && errno == ENOENT && mr < 0) {
                /* A symlink whose target does not exist yet: create the target, in-root, as
                 * MkdirAll would through the link. */
                char target[4097];
                ssize_t tl = -1;
                int lpfd;
                const char *lnm;
                mar_err *le = NULL;
                if (mar_in_root_parent(rootfd, parent, false, dir_mode, &lpfd, &lnm, &le) == 0) {
                    tl = readlinkat(lpfd, lnm, target, sizeof(target) - 1);
                    close(lpfd);
                }
                mar_err_free(le);
                if (tl > 0 && depth_guard < MAR_SYMLINK_HOPS) {
                    target[tl] = '\0';
                    const char *slash2 = strrchr(parent, '/');
                    _cleanup_free_ char *tpath =
                            target[0] == '/' ? mar_xasprintf("%s/.", target)
                            : slash2 ? mar_xasprintf("%.*s/%s/.", (int)(slash2 - parent), parent,
                                                     target)
                                     : mar_xasprintf("%s/.", target);
                    int tfd;
                    const char *tn;
                    if (mar_in_root_parent_guarded(rootfd, tpath, true, dir_mode, created, &tfd,
                                                   &tn, depth_guard + 1, err) < 0) {
                        return -mar_err_code(*err);
                    }
                    close(tfd);
                }
                dfd = mar_in_root_open(rootfd, parent, O_PATH | O_DIRECTORY, 0);
            }
            if (dfd < 0) {
                e = errno;
                return mar_err_set(err, e == ENOTDIR || e == ELOOP ? MAR_EINTEGRITY : MAR_EIO, e,
                                   "cannot open '%.200s'", parent);
            }
        }
        if (dfd >= 0) {
            close(dfd);
        }
        parent[i] = save;
    }
    fd = mar_in_root_open(rootfd, parent, O_PATH | O_DIRECTORY, 0);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%.200s'", parent);
    }
    *ret_fd = fd;
    return 0;
}

/* Reads a small regular file inside the root: in-root resolution, O_NOFOLLOW|O_NONBLOCK on the
 * last component, S_ISREG, a cap (CVE-2024-9676: /etc/passwd as a FIFO or a symlink to the
 * host). */
int mar_in_root_read(int rootfd, const char *path, size_t cap, mar_buf *ret, mar_err **err)
{
    _cleanup_close_ int fd = mar_in_root_open(rootfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        return mar_err_set(err, e == ENOENT ? MAR_ENOTFOUND : MAR_EIO, e, "cannot open '%s'", path);
    }
    return mar_read_fd(fd, path, cap, ret, err);
}
