/* A small tar writer for tests: ustar headers with PAX extended records, and the knobs the
 * malicious-layer corpus needs (lying sizes, raw names, PAX overrides). Test code only: mar itself
 * never writes tar. */
#ifndef MAR_TEST_TARW_H
#define MAR_TEST_TARW_H

#include "util/util.h"

typedef struct tarw_entry {
    const char *name;
    char type; /* '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
    unsigned mode;
    unsigned uid, gid;
    int64_t mtime;
    const void *data;
    size_t size;
    const char *linkname;
    unsigned devmajor, devminor;
    const char *const *pax; /* NULL-terminated "key=value" records */
    int64_t header_size;    /* when > 0, the size written in the header (a lie) */
} tarw_entry;

/* Appends one entry (a PAX header first when the name, link or records need it). */
void tarw_add(mar_buf *out, const tarw_entry *e);
/* Appends the two zero blocks that end an archive. */
void tarw_finish(mar_buf *out);
/* Appends a raw 512-byte header block built from the fields, without PAX (for hostile names). */
void tarw_add_raw(mar_buf *out, const tarw_entry *e);

/* A sparse file of apparent size `realsize` holding `data` at `off` and holes elsewhere, as a
 * PAX 1.0 sparse entry (GNU.sparse.* records, map at the start of the data) or, with old_gnu, as
 * an old-GNU 'S' header (map in the header). */
void tarw_add_sparse(mar_buf *out, const char *name, uint64_t realsize, uint64_t off,
                     const char *data, bool old_gnu);
/* A GNU-magic ('ustar  ') header as Go <= 1.7 wrote it: the USTAR prefix put into the bytes of
 * the GNU atime and ctime fields. */
void tarw_add_gnu_prefixed(mar_buf *out, const char *prefix, const char *name, const char *data);

/* gzip (RFC 1952) and zstd compression of a whole buffer. */
void tarw_gzip(const mar_buf *in, mar_buf *out);
void tarw_zstd(const mar_buf *in, mar_buf *out);

#endif
