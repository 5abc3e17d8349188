/* mar: multi-architecture container images, made visible and made to work. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Output that did not reach stdout is a failure, as for coreutils' close_stdout: a full disk or a
 * failed device must not leave a truncated file behind a status 0. Stdio keeps the first error in
 * ferror() and fclose() flushes what is still buffered, so checking both at exit catches failed
 * and short writes of every command (docs/mar.1.md EXIT STATUS: 9, unless the command already
 * failed with its own status). EPIPE stays silent with the command's status: mar dies of SIGPIPE
 * before it sees EPIPE except under `mar run`, which ignores SIGPIPE and passes the container's
 * status through; a reader that went away wanted no more output. */
static int close_stdout(int rc)
{
    bool failed = ferror(stdout) != 0;
    int e = 0;
    if (fclose(stdout) != 0) {
        failed = true;
        e = errno;
    }
    if (!failed || e == EPIPE) {
        return rc;
    }
    /* An earlier write failed and fclose() had nothing left to flush: that errno is gone. */
    if (e != 0) {
        fprintf(stderr, "mar: write error: %s\n", strerror(e));
    } else {
        fprintf(stderr, "mar: write error\n");
    }
    return rc == 0 ? MAR_EIO : rc;
}

int main(int argc, char **argv)
{
    return close_stdout(cmd_main(argc, argv));
}
