/* Whole-file reads with a cap, never through a symlink at the last component. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

int (*mar_test_fault)(const char *site);

int mar_read_file_at(int dirfd, const char *path, size_t cap, mar_buf *ret, mar_err **err)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return mar_err_set(err, e == ENOENT ? MAR_ENOTFOUND : MAR_EIO, e, "cannot open '%s'", path);
    }
    return mar_read_fd(fd, path, cap, ret, err);
}

int mar_read_fd(int fd, const char *path, size_t cap, mar_buf *ret, mar_err **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return mar_err_set(err, MAR_EIO, 0, "'%s' is not a regular file, refusing", path);
    }
    return mar_read_stream(fd, path, cap, ret, err);
}

int mar_read_stream(int fd, const char *path, size_t cap, mar_buf *ret, mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(cap);
    char chunk[16384];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            mar_buf_release(&b);
            return mar_err_set(err, MAR_EIO, e, "cannot read '%s'", path);
        }
        if (n == 0) {
            break;
        }
        if (mar_buf_append(&b, chunk, (size_t)n) < 0) {
            mar_buf_release(&b);
            return mar_err_set(err, MAR_EINTEGRITY, 0, "'%s' is larger than %zu bytes, refusing",
                               path, cap);
        }
    }
    mar_buf_release(ret);
    *ret = b;
    return 0;
}
