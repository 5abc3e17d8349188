/* Unpacked layers in the store (docs/internals/unpack-security.md §2 "Layout"): each layer is
 * unpacked into unpack/part-<chain>/rootfs under the chain's lock, settled, marked with .complete,
 * and renamed to unpack/<chain>. Only a directory holding .complete counts as present, so an
 * interrupted run never leaves something that looks unpacked (an empty layer dir taken as present:
 * pelagos#470). The part name is fixed per chain: whoever holds the lock owns it, and a leftover is
 * a dead run's, removed before starting again. */
#include "registry-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

char *reg_store_layer_path(const reg_store *s, const mar_digest *chain)
{
    return mar_xasprintf("%s/unpack/%s/rootfs", s->path, mar_digest_hex(chain));
}

bool reg_store_layer_complete(reg_store *s, const mar_digest *chain)
{
    _cleanup_free_ char *c = mar_xasprintf("unpack/%s/.complete", mar_digest_hex(chain));
    _cleanup_free_ char *r = mar_xasprintf("unpack/%s/rootfs", mar_digest_hex(chain));
    struct stat st;
    return fstatat(s->dfd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           fstatat(s->dfd, r, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

MAR_MUST_USE static int remove_in_store(reg_store *s, const char *rel, mar_err **err)
{
    _cleanup_close_ int ufd =
            openat(s->dfd, "unpack", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ufd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s/unpack'", s->path);
    }
    return oci_remove_at(ufd, rel, err);
}

int reg_store_layer_begin(reg_store *s, const mar_digest *chain, bool wait, int *ret_lock,
                          int *ret_rootfd, mar_err **err)
{
    *ret_lock = *ret_rootfd = -1;
    if (reg_store_layer_complete(s, chain)) {
        return 0;
    }
    _cleanup_free_ char *ln = mar_xasprintf("chain-%s", mar_digest_hex(chain));
    int lock = reg__store_lock(s, ln, LOCK_EX, wait, err);
    if (lock == -EWOULDBLOCK) {
        return 1;
    }
    if (lock < 0) {
        return lock;
    }
    if (reg_store_layer_complete(s, chain)) {
        close(lock);
        return 0;
    }
    _cleanup_free_ char *part = mar_xasprintf("part-%s", mar_digest_hex(chain));
    _cleanup_free_ char *partp = mar_xasprintf("unpack/%s", part);
    _cleanup_free_ char *rootp = mar_xasprintf("unpack/%s/rootfs", part);
    if (remove_in_store(s, part, err) < 0 || remove_in_store(s, mar_digest_hex(chain), err) < 0) {
        close(lock);
        return -mar_err_code(*err);
    }
    /* rootfs is the image's "/": 0755 like any root directory. The 0700 parents keep other
     * users away from setuid files inside (CVE-2021-41091). */
    if (mkdirat(s->dfd, partp, 0700) < 0 || mkdirat(s->dfd, rootp, 0755) < 0) {
        int e = errno;
        close(lock);
        return mar_err_set(err, MAR_EIO, e, "cannot create '%s/%s'", s->path, rootp);
    }
    int fd = openat(s->dfd, rootp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        close(lock);
        return mar_err_set(err, MAR_EIO, e, "cannot open '%s/%s'", s->path, rootp);
    }
    *ret_lock = lock;
    *ret_rootfd = fd;
    return 0;
}

int reg_store_layer_commit(reg_store *s, const mar_digest *chain, const char *info, mar_err **err)
{
    const char *hex = mar_digest_hex(chain);
    _cleanup_free_ char *partp = mar_xasprintf("unpack/part-%s", hex);
    _cleanup_free_ char *done = mar_xasprintf("unpack/part-%s/.complete", hex);
    _cleanup_free_ char *final = mar_xasprintf("unpack/%s", hex);
    _cleanup_close_ int fd =
            openat(s->dfd, done, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t n = strlen(info);
    if (fd < 0 || write(fd, info, n) != (ssize_t)n || fsync(fd) < 0) {
        int e = errno;
        return mar_err_set(err, MAR_EIO, e, "cannot write '%s/%s'%s", s->path, done,
                           e == ENOSPC ? " (disk full)" : "");
    }
    /* The layer's files are not synced (neither does containerd's overlay snapshotter): a
     * killed process loses nothing; a power loss can leave a layer short of data, and removing
     * unpack/<chain> makes the next pull rebuild it from its blob, which was synced. */
    if (renameat2(s->dfd, partp, s->dfd, final, RENAME_NOREPLACE) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot move '%s/%s' into place", s->path, partp);
    }
    return reg__store_sync_dir(s, "unpack", err);
}

void reg_store_layer_abort(reg_store *s, const mar_digest *chain)
{
    _cleanup_free_ char *part = mar_xasprintf("part-%s", mar_digest_hex(chain));
    mar_err *e = NULL;
    /* A part directory left behind is removed by the next reg_store_layer_begin of the chain. */
    if (remove_in_store(s, part, &e) < 0) {
        mar_debug("%s", e->msg);
    }
    mar_err_free(e);
}
