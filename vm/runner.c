/* The real command runner of the VM drivers: programs such as limactl run with mar's terminal
 * (create and start print Lima's progress) or with their output collected (list --json). */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAPTURE_CAP (4u << 20)
#define CAPTURE_MS  (120 * 1000)

static int not_found(const char *prog, int e, mar_err **err)
{
    return mar_err_set(err, e == ENOENT ? MAR_ENOTFOUND : MAR_EFAIL, e, "cannot run '%s'%s", prog,
                       e == ENOENT ? ": is it installed and in PATH?" : "");
}

static int sys_run(void *ctx, const char *const *argv, mar_buf *out, mar_buf *errout,
                   int *ret_status, mar_err **err)
{
    (void)ctx;
    if (out) {
        mar_proc_result r;
        if (mar_proc_run((char *const *)argv, NULL, 0, CAPTURE_CAP, CAPTURE_CAP, CAPTURE_MS, &r,
                         err) < 0) {
            return -mar_err_code(*err);
        }
        if (r.status == 127 && !r.out.len) {
            mar_proc_result_release(&r);
            return not_found(argv[0], ENOENT, err);
        }
        mar_buf_append(out, r.out.data, r.out.len);
        if (errout) {
            mar_buf_append(errout, r.errout.data, r.errout.len);
        }
        *ret_status = r.status;
        mar_proc_result_release(&r);
        return 0;
    }
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        return mar_err_set(err, MAR_EFAIL, errno, "pipe");
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return mar_err_set(err, MAR_EFAIL, errno, "fork");
    }
    if (pid == 0) {
        execvp(argv[0], (char *const *)argv);
        /* Tell the parent why, through the close-on-exec pipe. */
        int e = errno;
        (void)!write(pipefd[1], &e, sizeof(e));
        _exit(127);
    }
    close(pipefd[1]);
    int e = 0;
    ssize_t n = read(pipefd[0], &e, sizeof(e));
    close(pipefd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (n == (ssize_t)sizeof(e)) {
        return not_found(argv[0], e, err);
    }
    *ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

static int sys_exec(void *ctx, const char *const *argv, mar_err **err)
{
    (void)ctx;
    execvp(argv[0], (char *const *)argv);
    return not_found(argv[0], errno, err);
}

const vm_runner vm_runner_system = {.run = sys_run, .exec = sys_exec, .ctx = NULL};
