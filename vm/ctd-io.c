/* A task's I/O while it lives: the container's stdout and stderr arrive on FIFOs the shim writes
 * (containerd's cio) and go to the caller's output and error descriptors, kept apart; the
 * caller's input goes to the stdin FIFO when stdin is open (then CloseIO at its end); with a
 * terminal a pseudo-terminal carries both directions and follows the window size. Signals read
 * from the caller's signalfd are forwarded to the task. Wait runs on a thread of its own (it
 * blocks for the container's life) and signals the loop through an eventfd. */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

typedef struct waiter {
    vm_ctd *c;
    const char *id;
    int efd;
    uint32_t status;
    mar_err *err;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    /* A failure is w->err (set exactly once), which vm_ctd_attach returns after the join. */
    mar_ignore(vm_ctd_task_wait(w->c, w->id, &w->status, &w->err));
    uint64_t one = 1;
    ssize_t n = write(w->efd, &one, sizeof(one));
    (void)n;
    return NULL;
}

int vm_io_fifos(const char *dir, bool in, bool terminal, vm_io *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    ret->in_fd = ret->out_fd = ret->err_fd = -1;
    ret->terminal = terminal;
    ret->out_path = mar_xasprintf("%s/stdout", dir);
    if (!terminal) {
        ret->err_path = mar_xasprintf("%s/stderr", dir);
    }
    if (in) {
        ret->in_path = mar_xasprintf("%s/stdin", dir);
    }
    const char *paths[] = {ret->out_path, ret->err_path, ret->in_path};
    for (size_t i = 0; i < 3; i++) {
        if (paths[i] && mkfifo(paths[i], 0600) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create the FIFO '%s'", paths[i]);
        }
    }
    /* Readers first and non-blocking, so the shim's open for writing does not wait. The stdin
     * FIFO is opened read-write: a write end that never sees ENXIO. */
    ret->out_fd = open(ret->out_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (ret->err_path) {
        ret->err_fd = open(ret->err_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    }
    if (ret->in_path) {
        ret->in_fd = open(ret->in_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    }
    if (ret->out_fd < 0 || (ret->err_path && ret->err_fd < 0) || (ret->in_path && ret->in_fd < 0)) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open the FIFOs in '%s'", dir);
    }
    return 0;
}

void vm_io_release(vm_io *io)
{
    int fds[] = {io->in_fd, io->out_fd, io->err_fd};
    for (size_t i = 0; i < 3; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    free(io->in_path);
    free(io->out_path);
    free(io->err_path);
    memset(io, 0, sizeof(*io));
    io->in_fd = io->out_fd = io->err_fd = -1;
}

/* Copies what is readable on fd to out; returns false at EOF. */
static bool pump(int fd, int out, bool *out_ok)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            return errno == EAGAIN || errno == EINTR;
        }
        if (n == 0) {
            return false;
        }
        for (ssize_t off = 0; off < n && *out_ok;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN) {
                    struct pollfd p = {.fd = out, .events = POLLOUT};
                    poll(&p, 1, 1000);
                    continue;
                }
                *out_ok = false; /* the caller's output went away (EPIPE): keep draining */
                break;
            }
            off += w;
        }
    }
}

static void resize(vm_ctd *c, const char *id, int tty)
{
    struct winsize ws;
    if (ioctl(tty, TIOCGWINSZ, &ws) == 0 && ws.ws_col) {
        mar_err *e = NULL;
        /* The container keeps its old size: worth a debug line, not a failure. */
        if (vm_ctd_task_resize(c, id, ws.ws_col, ws.ws_row, &e) < 0) {
            mar_debug("cannot resize the terminal of '%s': %s", id, e->msg);
        }
        mar_err_free(e);
    }
}

int vm_ctd_attach(vm_ctd *c, const char *id, vm_io *io, const vm_attach *a, uint32_t *ret_status,
                  mar_err **err)
{
    int sigfd = a->sigfd;
    if (a->ret_signal) {
        *a->ret_signal = 0;
    }
    waiter w = {.c = c, .id = id, .efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    if (w.efd < 0) {
        return mar_err_set(err, MAR_EFAIL, errno, "cannot create an eventfd");
    }
    pthread_t th;
    if (pthread_create(&th, NULL, wait_thread, &w) != 0) {
        close(w.efd);
        return mar_err_set(err, MAR_EFAIL, 0, "cannot start the wait thread");
    }
    struct termios saved;
    bool raw = false;
    if (io->terminal && isatty(a->in) && tcgetattr(a->in, &saved) == 0) {
        struct termios t = saved;
        cfmakeraw(&t);
        raw = tcsetattr(a->in, TCSANOW, &t) == 0;
        resize(c, id, a->in);
    }
    bool out_open = io->out_fd >= 0, err_open = io->err_fd >= 0;
    bool in_open = a->stdin_open && io->in_fd >= 0;
    bool out_ok = true, err_ok = true, exited = false;
    int interrupts = 0;
    uint64_t drain_deadline = 0;
    while (out_open || err_open || !exited) {
        struct pollfd p[5];
        int np = 0, i_out = -1, i_err = -1, i_in = -1, i_sig = -1, i_wait = -1;
        if (out_open) {
            i_out = np;
            p[np++] = (struct pollfd){.fd = io->out_fd, .events = POLLIN};
        }
        if (err_open) {
            i_err = np;
            p[np++] = (struct pollfd){.fd = io->err_fd, .events = POLLIN};
        }
        if (in_open) {
            i_in = np;
            p[np++] = (struct pollfd){.fd = a->in, .events = POLLIN};
        }
        i_sig = np;
        p[np++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        if (!exited) {
            i_wait = np;
            p[np++] = (struct pollfd){.fd = w.efd, .events = POLLIN};
        }
        int timeout = exited ? 100 : -1;
        int r = poll(p, (nfds_t)np, timeout);
        if (r < 0 && errno != EINTR) {
            break;
        }
        if (i_out >= 0 && p[i_out].revents) {
            out_open = pump(io->out_fd, a->out, &out_ok);
        }
        if (i_err >= 0 && p[i_err].revents) {
            err_open = pump(io->err_fd, a->err, &err_ok);
        }
        if (i_in >= 0 && p[i_in].revents) {
            char buf[65536];
            ssize_t n = read(a->in, buf, sizeof(buf));
            if (n > 0) {
                for (ssize_t off = 0; off < n;) {
                    ssize_t wr = write(io->in_fd, buf + off, (size_t)(n - off));
                    if (wr < 0 && errno == EAGAIN) {
                        struct pollfd q = {.fd = io->in_fd, .events = POLLOUT};
                        poll(&q, 1, 100);
                        continue;
                    }
                    if (wr < 0) {
                        break;
                    }
                    off += wr;
                }
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                /* End of our stdin: the container's stdin ends too. Our end of the FIFO goes
                 * first (opened read-write, it counts as a writer), then the shim's. */
                in_open = false;
                close(io->in_fd);
                io->in_fd = -1;
                mar_err *e = NULL;
                /* The container would wait for input that never comes: say so. */
                if (vm_ctd_task_close_stdin(c, id, &e) < 0) {
                    mar_diag_warn("cannot close the stdin of '%s': %s", id, e->msg);
                }
                mar_err_free(e);
            }
        }
        if (p[i_sig].revents) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGWINCH) {
                    resize(c, id, a->in);
                    continue;
                }
                /* A container's PID 1 ignores signals it has no handler for: the third
                 * interrupt (Ctrl-C pressed again and again) kills it. */
                int sig = (int)si.ssi_signo;
                if (a->ret_signal) {
                    *a->ret_signal = sig;
                }
                if (a->kill_on_signal) {
                    sig = SIGKILL;
                } else if (sig == SIGINT && ++interrupts >= 3) {
                    mar_diag_notice("killing container '%s'", id);
                    sig = SIGKILL;
                }
                mar_err *e = NULL;
                /* A task that already exited is not found: the exit is on its way. */
                if (vm_ctd_task_kill(c, id, sig, sig == SIGKILL, &e) < 0 &&
                    mar_err_code(e) != MAR_ENOTFOUND) {
                    mar_diag_warn("cannot send signal %d to '%s': %s", sig, id, e->msg);
                }
                mar_err_free(e);
            }
        }
        if (i_wait >= 0 && p[i_wait].revents) {
            exited = true;
            /* The shim flushes and closes the FIFOs after the exit; give it a moment. */
            drain_deadline = mar_now_ms() + 2000;
        }
        if (exited && drain_deadline && mar_now_ms() > drain_deadline) {
            break;
        }
        if (exited) {
            /* A FIFO whose writer is gone polls POLLHUP with nothing left. */
            if (i_out >= 0 && (p[i_out].revents & POLLHUP) && !(p[i_out].revents & POLLIN)) {
                out_open = false;
            }
            if (i_err >= 0 && (p[i_err].revents & POLLHUP) && !(p[i_err].revents & POLLIN)) {
                err_open = false;
            }
        }
    }
    pthread_join(th, NULL);
    close(w.efd);
    if (raw) {
        tcsetattr(a->in, TCSANOW, &saved);
    }
    if (w.err) {
        *err = w.err;
        return -mar_err_code(w.err);
    }
    *ret_status = w.status;
    return 0;
}
