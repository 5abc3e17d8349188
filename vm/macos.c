/* The Mac's macOS release, which decides what Rosetta translates
 * (docs/internals/binfmt-and-rosetta.md §11). Read through a runner so tests give recorded
 * answers. */
#include "vm.h"

#include <string.h>

int vm_macos_version(const vm_runner *r, int *ret_major, int *ret_minor, mar_err **err)
{
    static const char *const argv[] = {"sw_vers", "-productVersion", NULL};
    mar_buf out = MAR_BUF_INIT(4096), errout = MAR_BUF_INIT(4096);
    int status = 0;
    int rc = r->run(r->ctx, argv, &out, &errout, &status, err);
    mar_buf_release(&errout);
    if (rc < 0) {
        mar_buf_release(&out);
        return rc;
    }
    if (status != 0) {
        mar_buf_release(&out);
        return mar_err_set(err, MAR_EFAIL, 0, "sw_vers -productVersion exited with %d", status);
    }
    /* "15.1", "26.0.1", "14.6.1\n": digits and dots, at least a major and a minor. */
    char text[32] = "";
    mar_strlcpy(text, out.data ? out.data : "", sizeof(text));
    mar_buf_release(&out);
    text[strcspn(text, "\r\n")] = '\0';
    char *dot = strchr(text, '.');
    int64_t major = 0, minor = 0;
    if (dot) {
        *dot = '\0';
        char *rest = strchr(dot + 1, '.');
        if (rest) {
            *rest = '\0';
        }
    }
    if (!dot || !mar_parse_i64(text, 10, 999, &major) || !mar_parse_i64(dot + 1, 0, 999, &minor)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "sw_vers -productVersion answered something that is not a macOS "
                           "version");
    }
    *ret_major = (int)major;
    *ret_minor = (int)minor;
    return 0;
}
