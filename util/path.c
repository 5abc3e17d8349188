/* Path components, split one way for every walk over a path inside an image root: the unpacker's
 * name cleaning, the in-root fallback walk, the merged layer view and the scan
 * (docs/internals/unpack-security.md §2). Splitting is lexical and byte-wise: a name is whatever
 * lies between slashes, with no encoding check and no length cap; callers enforce their own
 * limits (OCI_NAME_MAX, NAME_MAX) on what it yields. */
#include "util.h"

mar_path_comp mar_path_next(const char **cursor, const char **ret_comp, size_t *ret_len)
{
    const char *p = *cursor;
    for (;;) {
        while (*p == '/') {
            p++;
        }
        if (!*p) {
            *cursor = p;
            *ret_comp = p;
            *ret_len = 0;
            return MAR_PATH_END;
        }
        const char *s = p;
        while (*p && *p != '/') {
            p++;
        }
        size_t len = (size_t)(p - s);
        /* Past the separators too, so that an empty rest means "this was the last name". */
        while (*p == '/') {
            p++;
        }
        if (len == 1 && s[0] == '.') {
            continue;
        }
        *cursor = p;
        *ret_comp = s;
        *ret_len = len;
        return len == 2 && s[0] == '.' && s[1] == '.' ? MAR_PATH_DOTDOT : MAR_PATH_NAME;
    }
}

size_t mar_path_dirlen(const char *path, size_t len)
{
    while (len > 0 && path[len - 1] != '/') {
        len--;
    }
    while (len > 0 && path[len - 1] == '/') {
        len--;
    }
    return len;
}
