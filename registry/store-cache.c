/* The build step cache's records (docs/internals/build.md §11): one small JSON file per step key
 * under buildcache/, named by the key's hex digits, written atomically. A record only names a
 * layer (blob digest, size, media type, diff_id, ChainID); gc keeps what records name unless
 * asked to prune them (store-gc.c). */
#include "registry-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#define CACHE_DIR "buildcache"

int reg_store_cache_get(reg_store *s, const mar_digest *key, mar_buf *ret, mar_err **err)
{
    _cleanup_free_ char *p = mar_xasprintf(CACHE_DIR "/%s", mar_digest_hex(key));
    return mar_read_file_at(s->dfd, p, REG_CACHE_RECORD_MAX, ret, err);
}

int reg_store_cache_put(reg_store *s, const mar_digest *key, const char *text, mar_err **err)
{
    if (mkdirat(s->dfd, CACHE_DIR, 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/" CACHE_DIR "'", s->path);
    }
    _cleanup_free_ char *p = mar_xasprintf(CACHE_DIR "/%s", mar_digest_hex(key));
    return reg__store_write_atomic(s, p, text, strlen(text), err);
}
