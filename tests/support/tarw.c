/* Test tar writer (POSIX.1-2001 ustar + pax). */
#include "tarw.h"
#include "tbuf.h"

#include <string.h>

#include <zlib.h>
#include <zstd.h>

/* n-1 octal digits and a NUL, as ustar wants; values too large for that use the GNU base-256
 * form (first byte 0x80, big-endian binary), which is how a 2^62-byte size is written. */
static void octal(char *dst, size_t n, uint64_t v)
{
    uint64_t max = 1;
    for (size_t i = 0; i + 1 < n; i++) {
        max *= 8;
    }
    if (v < max) {
        dst[n - 1] = '\0';
        for (size_t i = n - 1; i > 0; i--) {
            dst[i - 1] = (char)('0' + (v & 7));
            v >>= 3;
        }
        return;
    }
    memset(dst, 0, n);
    dst[0] = (char)0x80;
    for (size_t i = n - 1; i > 0 && v; i--) {
        dst[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

static void header(mar_buf *out, const tarw_entry *e, const char *name, char type, uint64_t size)
{
    unsigned char h[512];
    memset(h, 0, sizeof(h));
    size_t nl = strlen(name);
    if (nl > 100) {
        nl = 100;
    }
    memcpy(h, name, nl);
    octal((char *)h + 100, 8, e->mode & 07777);
    octal((char *)h + 108, 8, e->uid);
    octal((char *)h + 116, 8, e->gid);
    octal((char *)h + 124, 12, size);
    octal((char *)h + 136, 12, (uint64_t)(e->mtime > 0 ? e->mtime : 0));
    memset(h + 148, ' ', 8);
    h[156] = (unsigned char)type;
    if (e->linkname) {
        size_t ll = strlen(e->linkname);
        memcpy(h + 157, e->linkname, ll > 100 ? 100 : ll);
    }
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    octal((char *)h + 329, 8, e->devmajor);
    octal((char *)h + 337, 8, e->devminor);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++) {
        sum += h[i];
    }
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    T_BUF(mar_buf_append(out, h, sizeof(h)));
}

static void pad(mar_buf *out, size_t n)
{
    static const char zeros[512];
    size_t rem = n % 512;
    if (rem) {
        T_BUF(mar_buf_append(out, zeros, 512 - rem));
    }
}

static void pax_record(mar_buf *rec, const char *kv)
{
    /* "<len> <key>=<value>\n" where len counts itself. */
    size_t body = strlen(kv) + 2;
    size_t len = body + 1;
    for (;;) {
        char tmp[32];
        size_t digits = (size_t)snprintf(tmp, sizeof(tmp), "%zu", len);
        if (body + digits == len) {
            break;
        }
        len = body + digits;
    }
    T_BUF(mar_buf_printf(rec, "%zu %s\n", len, kv));
}

void tarw_add_raw(mar_buf *out, const tarw_entry *e)
{
    uint64_t size = e->header_size > 0 ? (uint64_t)e->header_size : e->size;
    header(out, e, e->name, e->type, e->type == '0' ? size : 0);
    if (e->type == '0' && e->size) {
        T_BUF(mar_buf_append(out, e->data, e->size));
        pad(out, e->size);
    }
}

void tarw_add(mar_buf *out, const tarw_entry *e)
{
    mar_buf rec = MAR_BUF_INIT(MAR_BUF_NOCAP);
    if (strlen(e->name) > 100) {
        _cleanup_free_ char *kv = mar_xasprintf("path=%s", e->name);
        pax_record(&rec, kv);
    }
    if (e->linkname && strlen(e->linkname) > 100) {
        _cleanup_free_ char *kv = mar_xasprintf("linkpath=%s", e->linkname);
        pax_record(&rec, kv);
    }
    for (size_t i = 0; e->pax && e->pax[i]; i++) {
        pax_record(&rec, e->pax[i]);
    }
    if (rec.len) {
        tarw_entry px = *e;
        px.mode = 0644;
        header(out, &px, "PaxHeader", 'x', rec.len);
        T_BUF(mar_buf_append(out, rec.data, rec.len));
        pad(out, rec.len);
    }
    mar_buf_release(&rec);
    tarw_add_raw(out, e);
}

static void checksum(unsigned char *h)
{
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++) {
        sum += h[i];
    }
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

void tarw_add_sparse(mar_buf *out, const char *name, uint64_t realsize, uint64_t off,
                     const char *data, bool old_gnu)
{
    size_t dl = strlen(data);
    if (!old_gnu) {
        /* PAX 1.0: the map ("count\noffset\nsize\n", padded to a block) leads the data. */
        _cleanup_free_ char *nm = mar_xasprintf("GNU.sparse.name=%s", name);
        _cleanup_free_ char *rs =
                mar_xasprintf("GNU.sparse.realsize=%llu", (unsigned long long)realsize);
        const char *pax[] = {"GNU.sparse.major=1", "GNU.sparse.minor=0", nm, rs, NULL};
        char map[512];
        memset(map, 0, sizeof(map));
        snprintf(map, sizeof(map), "1\n%llu\n%zu\n", (unsigned long long)off, dl);
        mar_buf body = MAR_BUF_INIT(MAR_BUF_NOCAP);
        mar_buf_xappend(&body, map, sizeof(map));
        mar_buf_xappend(&body, data, dl);
        _cleanup_free_ char *stored = mar_xasprintf("GNUSparseFile.0/%s", name);
        tarw_add(out, &(tarw_entry){.name = stored,
                                    .type = '0',
                                    .mode = 0644,
                                    .mtime = 1700000000,
                                    .data = body.data,
                                    .size = body.len,
                                    .pax = pax});
        mar_buf_release(&body);
        return;
    }
    /* Old GNU: type 'S', magic "ustar  ", one map entry at 386, the real size at 483. */
    unsigned char h[512];
    memset(h, 0, sizeof(h));
    size_t nl = strlen(name);
    memcpy(h, name, nl > 99 ? 99 : nl);
    octal((char *)h + 100, 8, 0644);
    octal((char *)h + 108, 8, 0);
    octal((char *)h + 116, 8, 0);
    octal((char *)h + 124, 12, dl);
    octal((char *)h + 136, 12, 1700000000);
    h[156] = 'S';
    memcpy(h + 257, "ustar  ", 8);
    octal((char *)h + 386, 12, off);
    octal((char *)h + 398, 12, dl);
    octal((char *)h + 483, 12, realsize);
    checksum(h);
    mar_buf_xappend(out, h, sizeof(h));
    mar_buf_xappend(out, data, dl);
    pad(out, dl);
}

void tarw_add_gnu_prefixed(mar_buf *out, const char *prefix, const char *name, const char *data)
{
    unsigned char h[512];
    memset(h, 0, sizeof(h));
    size_t dl = strlen(data);
    memcpy(h, name, strlen(name) > 99 ? 99 : strlen(name));
    octal((char *)h + 100, 8, 0644);
    octal((char *)h + 108, 8, 0);
    octal((char *)h + 116, 8, 0);
    octal((char *)h + 124, 12, dl);
    octal((char *)h + 136, 12, 1700000000);
    h[156] = '0';
    memcpy(h + 257, "ustar  ", 8);
    /* The USTAR prefix field (345, 155 bytes) overlays GNU atime, ctime and what follows. */
    memcpy(h + 345, prefix, strlen(prefix) > 154 ? 154 : strlen(prefix));
    checksum(h);
    mar_buf_xappend(out, h, sizeof(h));
    mar_buf_xappend(out, data, dl);
    pad(out, dl);
}

void tarw_finish(mar_buf *out)
{
    static const char zeros[1024];
    T_BUF(mar_buf_append(out, zeros, sizeof(zeros)));
}

void tarw_gzip(const mar_buf *in, mar_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    /* windowBits 15 + 16: a gzip wrapper with a fixed (zero) mtime, so output is reproducible. */
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    size_t bound = deflateBound(&z, in->len) + 64;
    unsigned char *buf = mar_xmalloc(bound);
    z.next_in = (unsigned char *)in->data;
    z.avail_in = (uInt)in->len;
    z.next_out = buf;
    z.avail_out = (uInt)bound;
    deflate(&z, Z_FINISH);
    T_BUF(mar_buf_append(out, buf, bound - z.avail_out));
    deflateEnd(&z);
    free(buf);
}

void tarw_zstd(const mar_buf *in, mar_buf *out)
{
    size_t bound = ZSTD_compressBound(in->len);
    void *buf = mar_xmalloc(bound);
    size_t n = ZSTD_compress(buf, bound, in->data, in->len, 3);
    if (!ZSTD_isError(n)) {
        T_BUF(mar_buf_append(out, buf, n));
    }
    free(buf);
}
