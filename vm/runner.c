/* The real command runner of the VM drivers: programs such as limactl run with mar's terminal
 * (create and start print Lima's progress) or with their output collected (list --json). */
#include "vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAPTURE_CAP (4u << 20)
#define CAPTURE_MS  (120 * 1000)

MAR_MUST_USE static int not_found(const char *prog, int e, mar_err **err)
{
    return mar_err_set(err, e == ENOENT ? MAR_ENOTFOUND : MAR_EFAIL, e, "cannot run '%s'%s", prog,
                       e == ENOENT ? ": is it installed and in PATH?" : "");
}

MAR_MUST_USE static int sys_run(void *ctx, const char *const *argv, mar_buf *out, mar_buf *errout,
                                int *ret_status, mar_err **err)
{
    (void)ctx;
    if (out) {
        mar_proc_result r;
        mar_err *e = NULL;
        if (mar_proc_run((char *const *)argv, NULL, 0, CAPTURE_CAP, CAPTURE_CAP, CAPTURE_MS, &r,
                         &e) < 0) {
            if (e->sys_errno == ENOENT) {
                mar_err_free(e);
                return not_found(argv[0], ENOENT, err);
            }
            int rc = -mar_err_code(e);
            if (err) {
                *err = e;
            } else {
                mar_err_free(e);
            }
            return rc;
        }
        if (mar_buf_append(out, r.out.data, r.out.len) < 0 ||
            (errout && mar_buf_append(errout, r.errout.data, r.errout.len) < 0)) {
            mar_proc_result_release(&r);
            return mar_err_set(err, MAR_EFAIL, 0, "the output of '%s' is too long", argv[0]);
        }
        *ret_status = r.status;
        mar_proc_result_release(&r);
        return 0;
    }
    /* With mar's terminal: limactl create and start print their progress there. */
    pid_t pid;
    int exec_errno = 0;
    int rc = mar_spawn((char *const *)argv, NULL, &pid, &exec_errno, err);
    if (rc < 0) {
        return rc;
    }
    if (exec_errno) {
        return not_found(argv[0], exec_errno, err);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    *ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

MAR_MUST_USE static int sys_exec(void *ctx, const char *const *argv, mar_err **err)
{
    (void)ctx;
    execvp(argv[0], (char *const *)argv);
    return not_found(argv[0], errno, err);
}

const vm_runner vm_runner_system = {.run = sys_run, .exec = sys_exec, .ctx = NULL};
