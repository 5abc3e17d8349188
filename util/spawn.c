/* Starting a program: the one fork/exec of mar (credential helpers, limactl, the binfmt probe).
 *
 * mar forks from threaded code (pulls unpack on worker threads), so between fork and exec the
 * child may only make async-signal-safe calls (signal-safety(7)): another thread may have held the
 * allocator's or stdio's lock at the fork, and the child would wait for it forever. Everything
 * that allocates (the PATH candidates, the argv for /bin/sh, the environment) is built before the
 * fork; the child only makes system calls.
 *
 * No descriptor of mar's reaches the program except the ones asked for: the child marks every fd
 * above 2 close-on-exec with close_range(CLOSE_RANGE_CLOEXEC), or by listing /proc/self/fd where
 * the kernel lacks it (before 5.11), and refuses to exec when it can do neither. An fd opened
 * without O_CLOEXEC somewhere (a library, a race with another thread's fork) would otherwise hand
 * the program a host file or directory: the runc CVE-2024-21626 class (docs/internals/style.md
 * §3). MAR_NO_CLOSE_RANGE=1 forces the /proc walk, for its tests.
 *
 * Why exec failed travels to the parent as {stage, errno} over a close-on-exec pipe: end of file
 * means the exec happened. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

enum { STAGE_SETUP = 1, STAGE_CWD, STAGE_EXEC };

typedef struct report {
    int stage;
    int sys_errno;
} report;

/* Everything the child needs, prepared before the fork. */
typedef struct plan {
    char *const *argv;
    char *const *envp;
    char **paths; /* execve candidates, in PATH order */
    size_t n_paths;
    char **sh_argv; /* "/bin/sh", <candidate>, argv[1..]: a script without "#!" (as execvp) */
    int src[3];     /* fds to become 0, 1, 2, or -1 */
    int exec_fd;
    const char *cwd;
    unsigned flags;
    bool no_close_range;
    int report_w;
} plan;

static void plan_release(plan *p)
{
    for (size_t i = 0; i < p->n_paths; i++) {
        free(p->paths[i]);
    }
    free(p->paths);
    free(p->sh_argv);
}

/* The execve candidates of execvp(3): argv0 itself when it holds a slash, otherwise each PATH
 * directory in turn (an empty entry is the current directory). */
static void plan_paths(plan *p, const char *argv0)
{
    if (!*argv0) {
        return; /* no candidate: ENOENT */
    }
    if (strchr(argv0, '/')) {
        p->paths = mar_xcalloc(1, sizeof(*p->paths));
        p->paths[p->n_paths++] = mar_xstrdup(argv0);
        return;
    }
    const char *path = getenv("PATH");
    if (!path) {
        path = "/bin:/usr/bin"; /* glibc's default when PATH is unset */
    }
    size_t n = 1;
    for (const char *s = path; *s; s++) {
        n += *s == ':';
    }
    p->paths = mar_xcalloc(n, sizeof(*p->paths));
    const char *s = path;
    for (;;) {
        const char *e = strchrnul(s, ':');
        p->paths[p->n_paths++] =
                e == s ? mar_xstrdup(argv0) : mar_xasprintf("%.*s/%s", (int)(e - s), s, argv0);
        if (!*e) {
            break;
        }
        s = e + 1;
    }
}

/* Async-signal-safe from here to the end of child(). */

static _Noreturn void child_fail(const plan *p, int stage, int e)
{
    report r = {.stage = stage, .sys_errno = e};
    ssize_t unused = write(p->report_w, &r, sizeof(r));
    (void)unused;
    _exit(127);
}

/* Marks every fd from 3 up close-on-exec by listing /proc/self/fd with getdents64 (no opendir:
 * it allocates). Returns 0, or -1 with errno when /proc cannot be read. */
static int cloexec_from_proc(void)
{
    int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return -1;
    }
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
        if (n < 0) {
            int e = errno;
            close(dfd);
            errno = e;
            return -1;
        }
        if (n == 0) {
            break;
        }
        for (long off = 0; off < n;) {
            /* struct linux_dirent64: d_ino, d_off, d_reclen, d_type, d_name. */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof(reclen));
            const char *name = buf + off + 19;
            int fd = 0;
            bool num = *name != '\0';
            for (const char *c = name; *c; c++) {
                if (*c < '0' || *c > '9' || fd > 100000000) {
                    num = false;
                    break;
                }
                fd = fd * 10 + (*c - '0');
            }
            if (num && fd >= 3 && fd != dfd && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 &&
                errno != EBADF) {
                int e = errno;
                close(dfd);
                errno = e;
                return -1;
            }
            off += reclen;
        }
    }
    close(dfd);
    return 0;
}

static _Noreturn void child(plan *p)
{
    /* Sources and the fds the child keeps must not sit on 0..2, where the dup2s below would
     * overwrite them: move them up first (mar may run with a standard stream closed). */
    int *keep[] = {&p->src[0], &p->src[1], &p->src[2], &p->exec_fd, &p->report_w};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(keep); i++) {
        if (*keep[i] >= 0 && *keep[i] < 3) {
            int fd = fcntl(*keep[i], F_DUPFD_CLOEXEC, 3);
            if (fd < 0) {
                child_fail(p, STAGE_SETUP, errno);
            }
            *keep[i] = fd;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (p->src[i] >= 0 && dup2(p->src[i], i) < 0) {
            child_fail(p, STAGE_SETUP, errno);
        }
    }
    if ((p->no_close_range || close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) &&
        cloexec_from_proc() < 0) {
        child_fail(p, STAGE_SETUP, errno);
    }
    /* The program is run through its fd: an interpreter gets it as /dev/fd/N and must open it. */
    if (p->exec_fd >= 0 && fcntl(p->exec_fd, F_SETFD, 0) < 0) {
        child_fail(p, STAGE_SETUP, errno);
    }
    if ((p->flags & MAR_SPAWN_NEW_SESSION) && setsid() < 0) {
        child_fail(p, STAGE_SETUP, errno);
    }
    if ((p->flags & MAR_SPAWN_NEW_PGRP) && setpgid(0, 0) < 0) {
        child_fail(p, STAGE_SETUP, errno);
    }
    if (p->cwd && chdir(p->cwd) < 0) {
        child_fail(p, STAGE_CWD, errno);
    }
    /* Ignored signals stay ignored across exec (mar run ignores SIGPIPE), and the mask is
     * inherited: the program starts with the defaults. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &dfl, NULL);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (p->exec_fd >= 0) {
        fexecve(p->exec_fd, p->argv, p->envp);
        child_fail(p, STAGE_EXEC, errno);
    }
    /* execvp's search: go on past a candidate that is missing or not searchable, remember that
     * one was found but not executable, stop at any other failure. */
    bool eacces = false;
    for (size_t i = 0; i < p->n_paths; i++) {
        execve(p->paths[i], p->argv, p->envp);
        int e = errno;
        if (e == ENOEXEC) {
            p->sh_argv[1] = p->paths[i];
            execve("/bin/sh", p->sh_argv, p->envp);
            child_fail(p, STAGE_EXEC, errno);
        }
        if (e == EACCES) {
            eacces = true;
        } else if (e != ENOENT && e != ENOTDIR && e != ESTALE && e != ENODEV && e != ETIMEDOUT) {
            child_fail(p, STAGE_EXEC, e);
        }
    }
    child_fail(p, STAGE_EXEC, eacces ? EACCES : ENOENT);
}

/* Async-signal-safe part ends. */

int mar_spawn(char *const argv[], const mar_spawn_opts *o, pid_t *ret_pid, int *ret_exec_errno,
              mar_err **err)
{
    static const mar_spawn_opts defaults = MAR_SPAWN_OPTS_INIT;
    if (!o) {
        o = &defaults;
    }
    plan p = {
            .argv = argv,
            .envp = o->envp ? o->envp : environ,
            .src = {o->stdin_fd, o->stdout_fd, o->stderr_fd},
            .exec_fd = o->exec_fd,
            .cwd = o->cwd,
            .flags = o->flags,
            .report_w = -1,
    };
    const char *ncr = getenv("MAR_NO_CLOSE_RANGE");
    p.no_close_range = ncr && strcmp(ncr, "1") == 0;
    if (o->exec_fd < 0) {
        plan_paths(&p, argv[0]);
        size_t argc = 0;
        while (argv[argc]) {
            argc++;
        }
        p.sh_argv = mar_xcalloc(argc + 2, sizeof(*p.sh_argv));
        p.sh_argv[0] = "/bin/sh";
        for (size_t i = 1; i < argc; i++) {
            p.sh_argv[i + 1] = argv[i];
        }
    }
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) < 0) {
        int e = errno;
        plan_release(&p);
        return mar_err_set(err, MAR_EFAIL, e, "cannot start '%s'", argv[0]);
    }
    p.report_w = rep[1];
    pid_t pid = fork();
    if (pid == 0) {
        close(rep[0]);
        child(&p);
    }
    int fork_errno = errno;
    close(rep[1]);
    plan_release(&p);
    if (pid < 0) {
        close(rep[0]);
        return mar_err_set(err, MAR_EFAIL, fork_errno, "cannot start '%s'", argv[0]);
    }
    report r = {0, 0};
    ssize_t n;
    while ((n = read(rep[0], &r, sizeof(r))) < 0 && errno == EINTR) {
    }
    close(rep[0]);
    if (n == 0) {
        *ret_pid = pid;
        if (ret_exec_errno) {
            *ret_exec_errno = 0;
        }
        return 0;
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof(r)) {
        return mar_err_set(err, MAR_EFAIL, n < 0 ? errno : EPROTO, "cannot start '%s'", argv[0]);
    }
    switch (r.stage) {
    case STAGE_EXEC:
        if (ret_exec_errno) {
            *ret_pid = -1;
            *ret_exec_errno = r.sys_errno;
            return 0;
        }
        return mar_err_set(err, MAR_EFAIL, r.sys_errno, "cannot run '%s'", argv[0]);
    case STAGE_CWD:
        return mar_err_set(err, MAR_EFAIL, r.sys_errno, "cannot run '%s' in '%s'", argv[0], o->cwd);
    default:
        return mar_err_set(err, MAR_EFAIL, r.sys_errno, "cannot start '%s'", argv[0]);
    }
}
