/* Running helper programs without a shell: argv only, bounded output, a deadline. Used for
 * credential helpers (docs/internals/registry-protocol.md §6: 1 MiB stdout, 30 s) and similar
 * children. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* A child that exits without reading all of its stdin must not kill mar with SIGPIPE: the
 * signal is blocked around the write and, when the write raised it, taken off the pending set.
 * The process-wide disposition stays as the caller set it. */
static ssize_t write_nosigpipe(int fd, const void *p, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, p, n);
    int e = errno;
    if (w < 0 && e == EPIPE) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return w;
}

int mar_proc_run(char *const argv[], const void *in, size_t in_len, size_t out_cap, size_t err_cap,
                 int timeout_ms, mar_proc_result *ret, mar_err **err)
{
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    int rc = 0;

    memset(ret, 0, sizeof(*ret));
    mar_buf_init(&ret->out, out_cap);
    mar_buf_init(&ret->errout, err_cap);

    if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) {
        rc = mar_err_set(err, MAR_EFAIL, errno, "cannot create pipes for '%s'", argv[0]);
        goto out;
    }
    mar_spawn_opts so = MAR_SPAWN_OPTS_INIT;
    so.stdin_fd = in_p[0];
    so.stdout_fd = out_p[1];
    so.stderr_fd = err_p[1];
    pid_t pid;
    rc = mar_spawn(argv, &so, &pid, NULL, err);
    if (rc < 0) {
        goto out;
    }
    close_fd(&in_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);

    fcntl(in_p[1], F_SETFL, O_NONBLOCK);
    size_t in_off = 0;
    if (!in || in_len == 0) {
        close_fd(&in_p[1]);
    }
    uint64_t deadline = mar_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    char chunk[4096];
    while (out_p[0] >= 0 || err_p[0] >= 0) {
        struct pollfd pf[3];
        int n = 0, i_out = -1, i_err = -1, i_in = -1;
        if (out_p[0] >= 0) {
            i_out = n;
            pf[n++] = (struct pollfd){.fd = out_p[0], .events = POLLIN};
        }
        if (err_p[0] >= 0) {
            i_err = n;
            pf[n++] = (struct pollfd){.fd = err_p[0], .events = POLLIN};
        }
        if (in_p[1] >= 0) {
            i_in = n;
            pf[n++] = (struct pollfd){.fd = in_p[1], .events = POLLOUT};
        }
        uint64_t now = mar_now_ms();
        if (timeout_ms > 0 && now >= deadline) {
            ret->timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        int wait = timeout_ms > 0 ? (int)(deadline - now) : -1;
        int pr = poll(pf, (nfds_t)n, wait);
        if (pr < 0) {
            if (errno == EINTR) {
                continue;
            }
            kill(pid, SIGKILL);
            break;
        }
        if (i_in >= 0 && (pf[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write_nosigpipe(in_p[1], (const char *)in + in_off, in_len - in_off);
            if (w > 0) {
                in_off += (size_t)w;
            }
            if ((w < 0 && errno != EAGAIN) || in_off >= in_len) {
                close_fd(&in_p[1]);
            }
        }
        int idx[2] = {i_out, i_err};
        int *fds[2] = {&out_p[0], &err_p[0]};
        mar_buf *bufs[2] = {&ret->out, &ret->errout};
        for (int k = 0; k < 2; k++) {
            if (idx[k] < 0 || !(pf[idx[k]].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            ssize_t got = read(*fds[k], chunk, sizeof(chunk));
            if (got > 0) {
                size_t room = bufs[k]->cap - bufs[k]->len;
                size_t take = (size_t)got < room ? (size_t)got : room;
                /* take fits the room left under the cap: the append cannot fail. */
                mar_ignore(mar_buf_append(bufs[k], chunk, take));
                if (take < (size_t)got && k == 0) {
                    ret->out_capped = true;
                }
            } else if (got == 0 || errno != EINTR) {
                close_fd(fds[k]);
            }
        }
        if (ret->out_capped) {
            kill(pid, SIGKILL);
            break;
        }
    }
    close_fd(&in_p[1]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    ret->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
out:
    close_fd(&in_p[0]);
    close_fd(&in_p[1]);
    close_fd(&out_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[0]);
    close_fd(&err_p[1]);
    if (rc < 0) {
        mar_proc_result_release(ret);
    }
    return rc;
}

void mar_proc_result_release(mar_proc_result *r)
{
    /* Helper output may hold secrets. */
    mar_buf_release_secret(&r->out);
    mar_buf_release_secret(&r->errout);
}
