/* Directories a command is done with (a build's work directory: overlay upper directories of
 * tens of thousands of files) leave the store's namespace with one rename into <store>/trash/
 * and are deleted by a detached process, so that the unlinks are not on the command's critical
 * path (docs/internals/build.md §3). The remover inherits the command's shared hold on the
 * store, so `mar gc` (which takes it exclusively) waits for it; whatever a killed remover
 * leaves in trash/ is removed by the next `mar gc`. */
#include "registry-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Deeper trees are left to `mar gc`: each level costs a buffer on the remover's stack. */
#define TRASH_DEPTH_MAX 256

/* The record getdents64(2) returns. */
struct trash_dirent {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* Runs in the forked child of a process that may have threads: only system calls, no
 * allocation (signal-safety(7) lists what is safe after fork in a multithreaded program). */
static void remove_tree(int dfd, const char *name, int depth)
{
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT || depth > TRASH_DEPTH_MAX) {
        return;
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    /* Entries removed during a listing may shift the rest: list again until the directory is
     * empty or a pass removes nothing. */
    for (int pass = 0; pass < 4; pass++) {
        char buf[8192];
        long n;
        if (lseek(fd, 0, SEEK_SET) < 0) {
            break;
        }
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
            for (long off = 0; off < n;) {
                const struct trash_dirent *d = (const struct trash_dirent *)(void *)(buf + off);
                off += d->reclen;
                if (!strcmp(d->name, ".") || !strcmp(d->name, "..")) {
                    continue;
                }
                if (d->type == DT_DIR || unlinkat(fd, d->name, 0) < 0) {
                    remove_tree(fd, d->name, depth + 1);
                }
            }
        }
        if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno != ENOTEMPTY) {
            break;
        }
    }
    close(fd);
}

static void close_others(long max, int keep_a, int keep_b)
{
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        close(devnull);
    }
    for (int fd = 3; fd < (int)max; fd++) {
        if (fd != keep_a && fd != keep_b) {
            close(fd);
        }
    }
}

int reg_store_trash(reg_store *s, const char *rel, mar_err **err)
{
    if (mkdirat(s->dfd, "trash", 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/trash'", s->path);
    }
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    char name[256];
    int len = snprintf(name, sizeof(name), "%.200s-%08x", base,
                       (unsigned)mar_random_below(UINT32_MAX));
    if (len < 0 || (size_t)len >= sizeof(name)) {
        return mar_err_set(err, MAR_EIO, 0, "the name '%s' is too long", rel);
    }
    _cleanup_close_ int tfd =
            openat(s->dfd, "trash", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s/trash'", s->path);
    }
    if (renameat(s->dfd, rel, tfd, name) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot move '%s/%s' to the trash", s->path, rel);
    }
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) {
        max = 65536;
    }
    /* Two forks: the remover is reparented to init and never a zombie of ours. */
    pid_t pid = fork();
    if (pid < 0) {
        /* Nothing lost: the next `mar gc` removes it. */
        return 0;
    }
    if (pid == 0) {
        if (fork() != 0) {
            _exit(0);
        }
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close_others(max, tfd, s->store_lock);
        remove_tree(tfd, name, 0);
        _exit(0);
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return 0;
}
