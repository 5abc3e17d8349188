/* Layer reader: an open blob fd in, validated tar entries out (docs/internals/unpack-security.md
 * §2-§3; docs/internals/registry-protocol.md §11). The compression is sniffed from the magic bytes,
 * never taken from the media type; mar decompresses itself (ISA-L's igzip, about 3.5 times zlib's
 * speed on layers; zstd with a bounded window) so that the uncompressed stream can be hashed for
 * the DiffID, counted against the size cap and read to the very end, and libarchive only ever
 * parses tar. The one exception is oci_archive_open, for archives a Dockerfile's ADD extracts:
 * Docker's ADD also reads bzip2 and xz, which no OCI layer may use (image-spec layer.md lists
 * tar, gzip and zstd), and those are decoded by libarchive's built-in filters in a reader of
 * their own, ahead of the same tar reader, caps and hash. It never writes anything. */
#include "oci.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#define IN_CHUNK            (128u << 10)
#define OUT_CHUNK           (256u << 10)
#define ZSTD_WINDOW_LOG_MAX 27 /* docs/internals/registry-protocol.md §11 */

struct oci_layer_reader {
    int fd;
    oci_layer_limits lim;
    oci_codec codec;
    /* compressed input */
    unsigned char *in;
    size_t in_len, in_pos;
    bool in_eof;
    uint64_t in_total;
    /* decoders */
    struct inflate_state *gz;
    bool gz_member_done;
    ZSTD_DCtx *zs;
    bool zs_frame_done;
    /* bzip2 or xz (archives only, oci_archive_open): libarchive's built-in decoder under its
     * raw format, so that the tar reader below still sees decompressed bytes */
    struct archive *dec;
    const char *dec_name;
    /* uncompressed output handed to libarchive: two buffers used in turn, so that the one
     * handed out before the current one is still there to read a header block back from */
    unsigned char *out;
    unsigned char *outb[2];
    uint64_t outb_start[2];
    size_t outb_len[2];
    int outb_cur;
    uint64_t out_total;
    bool out_eof;
    mar_hasher *hash;
    struct archive *a;
    mar_err *err; /* set by the read callback */
    oci_layer_entry entry;
    mar_strv xattr_names;
    uint64_t entries;
};

void oci_layer_limits_default(oci_layer_limits *l)
{
    l->max_uncompressed = 16ull << 30; /* docs/internals/unpack-security.md §3 */
    l->max_entries = 10u * 1000 * 1000;
    l->max_header_bytes = (1u << 20) + 4096; /* PAX record cap 1 MiB (CVE-2022-2879) */
    l->max_sparse = 100000;                  /* CVE-2025-58183 class */
    l->min_free = 1ull << 30; /* docs/internals/unpack-security.md §3 free-space reserve */
}

const char *oci_codec_name(oci_codec c)
{
    switch (c) {
    case OCI_CODEC_NONE:
        return "tar";
    case OCI_CODEC_GZIP:
        return "gzip";
    case OCI_CODEC_ZSTD:
        return "zstd";
    }
    return "?";
}

/* Refills the input buffer; returns bytes available, 0 at EOF, -1 on error (r->err set). */
static ssize_t fill(oci_layer_reader *r)
{
    if (r->in_pos < r->in_len) {
        return (ssize_t)(r->in_len - r->in_pos);
    }
    if (r->in_eof) {
        return 0;
    }
    for (;;) {
        ssize_t n = read(r->fd, r->in, IN_CHUNK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            mar_err_set(&r->err, MAR_EIO, errno, "cannot read the layer");
            return -1;
        }
        r->in_pos = 0;
        r->in_len = (size_t)n;
        r->in_total += (uint64_t)n;
        if (n == 0) {
            r->in_eof = true;
        }
        return n;
    }
}

/* After a gzip member or zstd data: only zero padding or another member may follow. */
static int after_stream(oci_layer_reader *r, bool *more)
{
    *more = false;
    for (;;) {
        ssize_t n = fill(r);
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            return 0;
        }
        unsigned char *p = r->in + r->in_pos;
        if (r->codec == OCI_CODEC_GZIP && p[0] == 0x1f) {
            *more = true;
            return 0;
        }
        for (size_t i = 0; i < (size_t)n; i++) {
            if (p[i] != 0) {
                mar_err_set(&r->err, MAR_EINTEGRITY, 0,
                            "unexpected data after the %s stream, refusing",
                            oci_codec_name(r->codec));
                return -1;
            }
        }
        r->in_pos = r->in_len; /* zero padding: some generators add it (umoci 0.4.7) */
    }
}

/* Produces up to OUT_CHUNK uncompressed bytes into r->out; returns the count, 0 at the end. */
static ssize_t decode(oci_layer_reader *r)
{
    /* Errors are sticky: libarchive may call again after a failed read. */
    if (r->err) {
        return -1;
    }
    if (r->out_eof) {
        return 0;
    }
    if (r->dec) {
        la_ssize_t n = archive_read_data(r->dec, r->out, OUT_CHUNK);
        if (n < 0) {
            if (!r->err) {
                mar_err_set(&r->err, MAR_EINTEGRITY, 0, "invalid %s data: %s, refusing",
                            r->dec_name, archive_error_string(r->dec));
            }
            return -1;
        }
        r->out_eof = n == 0;
        return (ssize_t)n;
    }
    if (r->codec == OCI_CODEC_NONE) {
        ssize_t n = fill(r);
        if (n <= 0) {
            r->out_eof = n == 0;
            return n;
        }
        size_t take = (size_t)n < OUT_CHUNK ? (size_t)n : OUT_CHUNK;
        memcpy(r->out, r->in + r->in_pos, take);
        r->in_pos += take;
        return (ssize_t)take;
    }
    for (;;) {
        if (r->codec == OCI_CODEC_GZIP && r->gz_member_done) {
            bool more;
            if (after_stream(r, &more) < 0) {
                return -1;
            }
            if (!more) {
                r->out_eof = true;
                return 0;
            }
            isal_inflate_reset(r->gz);
            r->gz->crc_flag = ISAL_GZIP;
            r->gz_member_done = false;
        }
        ssize_t n = fill(r);
        if (n < 0) {
            return -1;
        }
        if (r->codec == OCI_CODEC_GZIP) {
            if (n == 0) {
                mar_err_set(&r->err, MAR_EINTEGRITY, 0, "truncated gzip stream, refusing");
                return -1;
            }
            r->gz->next_in = r->in + r->in_pos;
            r->gz->avail_in = (uint32_t)(r->in_len - r->in_pos);
            r->gz->next_out = r->out;
            r->gz->avail_out = OUT_CHUNK;
            int zr = isal_inflate(r->gz);
            r->in_pos = r->in_len - r->gz->avail_in;
            if (zr < 0 || zr == ISAL_NEED_DICT) {
                mar_err_set(&r->err, MAR_EINTEGRITY, 0, "invalid gzip data (%s), refusing",
                            zr == ISAL_INCORRECT_CHECKSUM ? "checksum mismatch"
                            : zr == ISAL_INVALID_WRAPPER  ? "bad header"
                                                          : "corrupt deflate stream");
                return -1;
            }
            if (r->gz->block_state == ISAL_BLOCK_FINISH) {
                r->gz_member_done = true;
            }
            size_t got = OUT_CHUNK - r->gz->avail_out;
            if (got) {
                return (ssize_t)got;
            }
        } else {
            if (n == 0) {
                if (!r->zs_frame_done) {
                    mar_err_set(&r->err, MAR_EINTEGRITY, 0, "truncated zstd stream, refusing");
                    return -1;
                }
                r->out_eof = true;
                return 0;
            }
            if (r->zs_frame_done && r->in[r->in_pos] == 0) {
                bool more;
                if (after_stream(r, &more) < 0) {
                    return -1;
                }
                r->out_eof = true;
                return 0;
            }
            ZSTD_inBuffer zin = {r->in + r->in_pos, r->in_len - r->in_pos, 0};
            ZSTD_outBuffer zout = {r->out, OUT_CHUNK, 0};
            size_t zr = ZSTD_decompressStream(r->zs, &zout, &zin);
            if (ZSTD_isError(zr)) {
                mar_err_set(&r->err, MAR_EINTEGRITY, 0, "invalid zstd data: %s, refusing",
                            ZSTD_getErrorName(zr));
                return -1;
            }
            r->in_pos += zin.pos;
            r->zs_frame_done = zr == 0;
            if (zout.pos) {
                return (ssize_t)zout.pos;
            }
        }
    }
}

static la_ssize_t on_read(struct archive *a, void *ud, const void **buf)
{
    (void)a;
    oci_layer_reader *r = ud;
    if (r->err) {
        return -1;
    }
    r->outb_cur ^= 1;
    r->out = r->outb[r->outb_cur];
    ssize_t n = decode(r);
    if (n < 0) {
        return -1;
    }
    r->outb_start[r->outb_cur] = r->out_total;
    r->outb_len[r->outb_cur] = (size_t)n;
    r->out_total += (uint64_t)n;
    if (r->out_total > r->lim.max_uncompressed && !r->err) {
        mar_err_set(&r->err, MAR_EINTEGRITY, 0,
                    "layer expands beyond %llu bytes (a decompression bomb?), refusing",
                    (unsigned long long)r->lim.max_uncompressed);
        return -1;
    }
    mar_hasher_update(r->hash, r->out, (size_t)n);
    *buf = r->out;
    return n;
}

static oci_codec sniff(const unsigned char *p, size_t n, int *bad)
{
    *bad = 0;
    if (n >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08) {
        return OCI_CODEC_GZIP;
    }
    if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) {
        return OCI_CODEC_ZSTD;
    }
    if (n >= 4 && p[0] >= 0x50 && p[0] <= 0x5f && p[1] == 0x2a && p[2] == 0x4d && p[3] == 0x18) {
        return OCI_CODEC_ZSTD; /* skippable frame (zstd:chunked) */
    }
    if (n >= 6 && memcmp(p,
                         "\xfd"
                         "7zXZ\0",
                         6) == 0) {
        *bad = 1;
    } else if (n >= 3 && memcmp(p, "BZh", 3) == 0) {
        *bad = 2;
    }
    return OCI_CODEC_NONE;
}

/* The compressed bytes as they are, for the decoder of r->dec. */
static la_ssize_t on_read_raw(struct archive *a, void *ud, const void **buf)
{
    (void)a;
    oci_layer_reader *r = ud;
    ssize_t n = fill(r);
    if (n < 0) {
        return -1;
    }
    *buf = r->in + r->in_pos;
    r->in_pos = r->in_len;
    return n;
}

/* bzip2 (bad 2) or xz (bad 1) through libarchive. A libarchive built without the library
 * answers ARCHIVE_WARN and would run an external bzip2 or xz program instead, which mar never
 * does: refused. */
static int open_decoder(oci_layer_reader *r, int bad, mar_err **err)
{
    r->dec_name = bad == 1 ? "xz" : "bzip2";
    r->dec = archive_read_new();
    int fr = bad == 1 ? archive_read_support_filter_xz(r->dec)
                      : archive_read_support_filter_bzip2(r->dec);
    if (fr != ARCHIVE_OK) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "this libarchive has no built-in %s decoder",
                           r->dec_name);
    }
    archive_read_support_format_raw(r->dec);
    struct archive_entry *e;
    if (archive_read_open(r->dec, r, NULL, on_read_raw, NULL) != ARCHIVE_OK ||
        archive_read_next_header(r->dec, &e) != ARCHIVE_OK) {
        int code = r->err ? mar_err_code(r->err) : MAR_EINTEGRITY;
        return mar_err_set(err, code, 0, "invalid %s data: %s, refusing", r->dec_name,
                           r->err ? r->err->msg : archive_error_string(r->dec));
    }
    return 0;
}

oci_layer_reader *oci_layer_free(oci_layer_reader *r)
{
    if (!r) {
        return NULL;
    }
    if (r->a) {
        archive_read_free(r->a);
    }
    if (r->dec) {
        archive_read_free(r->dec);
    }
    free(r->gz);
    ZSTD_freeDCtx(r->zs);
    mar_hasher_free(r->hash);
    mar_err_free(r->err);
    mar_strv_release(&r->xattr_names);
    free(r->entry.path);
    free(r->entry.link);
    free(r->entry.xattrs);
    free(r->in);
    free(r->outb[0]);
    free(r->outb[1]);
    free(r);
    return NULL;
}

static int open_reader(int fd, const oci_layer_limits *lim, bool archive, oci_layer_reader **ret,
                       mar_err **err)
{
    oci_layer_reader *r = mar_xcalloc(1, sizeof(*r));
    r->fd = fd;
    if (lim) {
        r->lim = *lim;
    } else {
        oci_layer_limits_default(&r->lim);
    }
    r->in = mar_xmalloc(IN_CHUNK);
    r->outb[0] = mar_xmalloc(OUT_CHUNK);
    r->outb[1] = mar_xmalloc(OUT_CHUNK);
    r->out = r->outb[0];
    r->hash = mar_hasher_new(MAR_DIGEST_SHA256);
    ssize_t n = fill(r);
    if (n < 0) {
        int code = mar_err_code(r->err);
        mar_err_set(err, code, 0, "%s", r->err->msg);
        oci_layer_free(r);
        return -code;
    }
    int bad;
    r->codec = sniff(r->in, (size_t)n, &bad);
    if (bad && !archive) {
        oci_layer_free(r);
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "layer is %s-compressed, which is not an OCI layer codec, refusing",
                           bad == 1 ? "xz" : "bzip2");
    }
    if (bad && open_decoder(r, bad, err) < 0) {
        oci_layer_free(r);
        return -mar_err_code(*err);
    }
    if (r->codec == OCI_CODEC_GZIP) {
        r->gz = mar_xmalloc(sizeof(*r->gz));
        isal_inflate_init(r->gz);
        r->gz->crc_flag = ISAL_GZIP; /* parse the RFC 1952 wrapper, check CRC-32 and ISIZE */
    } else if (r->codec == OCI_CODEC_ZSTD) {
        r->zs = ZSTD_createDCtx();
        if (!r->zs ||
            ZSTD_isError(ZSTD_DCtx_setParameter(r->zs, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX))) {
            oci_layer_free(r);
            return mar_err_set(err, MAR_EFAIL, 0, "cannot initialize zstd");
        }
    }
    r->a = archive_read_new();
    /* tar only (ustar, pax, GNU); no filter: the bytes arrive decompressed. */
    archive_read_support_format_tar(r->a);
    archive_read_support_filter_none(r->a);
    if (archive_read_open(r->a, r, NULL, on_read, NULL) != ARCHIVE_OK) {
        int code = r->err ? mar_err_code(r->err) : MAR_EINTEGRITY;
        mar_err_set(err, code, 0, "not a tar layer: %s",
                    r->err ? r->err->msg : archive_error_string(r->a));
        oci_layer_free(r);
        return -code;
    }
    *ret = r;
    return 0;
}

int oci_layer_open(int fd, const oci_layer_limits *lim, oci_layer_reader **ret, mar_err **err)
{
    return open_reader(fd, lim, false, ret, err);
}

int oci_archive_open(int fd, const oci_layer_limits *lim, oci_layer_reader **ret, mar_err **err)
{
    return open_reader(fd, lim, true, ret, err);
}

oci_codec oci_layer_codec(const oci_layer_reader *r)
{
    return r->codec;
}

uint64_t oci_layer_in_bytes(const oci_layer_reader *r)
{
    return r->in_total;
}

int oci_clean_path(const char *in, char **ret, mar_err **err)
{
    size_t inl = strlen(in);
    if (inl > OCI_PATH_MAX) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "path of %zu bytes in layer, refusing", inl);
    }
    /* Lexical cleaning (Go's path.Clean on "/" + name, without the leading slash): "..", ".",
     * empty components resolved; a result that climbs above the root is refused rather than
     * clamped (stricter than containerd, docs/internals/unpack-security.md §4 case 1). */
    char *out = mar_xmalloc(inl + 1);
    size_t ol = 0;
    const char *p = in, *comp;
    size_t cl;
    mar_path_comp kind;
    while ((kind = mar_path_next(&p, &comp, &cl)) != MAR_PATH_END) {
        if (cl > OCI_NAME_MAX) {
            free(out);
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "path component of %zu bytes in layer, refusing", cl);
        }
        if (kind == MAR_PATH_DOTDOT) {
            if (ol == 0) {
                free(out);
                return mar_err_set(err, MAR_EINTEGRITY, 0,
                                   "path '%.200s' climbs out of the root, refusing", in);
            }
            ol = mar_path_dirlen(out, ol);
            continue;
        }
        if (ol) {
            out[ol++] = '/';
        }
        memcpy(out + ol, comp, cl);
        ol += cl;
    }
    out[ol] = '\0';
    *ret = out;
    return 0;
}

static void classify_whiteout(oci_layer_entry *e, mar_err **err)
{
    const char *slash = strrchr(e->path, '/');
    const char *base = slash ? slash + 1 : e->path;
    if (!mar_str_startswith(base, ".wh.")) {
        return;
    }
    size_t dirlen = slash ? (size_t)(slash - e->path) : 0;
    if (strcmp(base, ".wh..wh..opq") == 0) {
        /* image-spec layer.md "Opaque Whiteout": hide lower children of the directory. */
        e->kind = OCI_ENTRY_OPAQUE;
        e->path[dirlen] = '\0';
        return;
    }
    if (mar_str_startswith(base, ".wh..wh.")) {
        e->kind = OCI_ENTRY_AUFS_META; /* AUFS metadata: skipped, as containerd does */
        return;
    }
    const char *target = base + 4;
    if (!*target || strcmp(target, ".") == 0 || strcmp(target, "..") == 0) {
        mar_err_set(err, MAR_EINTEGRITY, 0, "invalid whiteout '%.200s', refusing", e->path);
        return;
    }
    memmove(e->path + dirlen + (dirlen ? 1 : 0), target, strlen(target) + 1);
    e->kind = OCI_ENTRY_WHITEOUT;
}

static int fail_from_archive(oci_layer_reader *r, mar_err **err, const char *what)
{
    if (r->err) {
        int code = mar_err_code(r->err);
        mar_err_set(err, code, r->err->sys_errno, "%s", r->err->msg);
        return -code;
    }
    return mar_err_set(err, MAR_EINTEGRITY, 0, "%s: %s, refusing", what,
                       archive_error_string(r->a) ? archive_error_string(r->a) : "bad archive");
}

static locale_t utf8_loc;

static void utf8_locale_init(void)
{
    utf8_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Created once for the process: unpack workers read layers in parallel. */
static locale_t utf8_locale(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, utf8_locale_init);
    return utf8_loc;
}

MAR_MUST_USE static int next_entry(oci_layer_reader *r, const oci_layer_entry **ret, mar_err **err);

/* Copies the uncompressed stream's bytes [off, off + len) from the two output buffers; false
 * when they no longer hold all of them. */
static bool stream_bytes(const oci_layer_reader *r, uint64_t off, size_t len, unsigned char *dst)
{
    size_t got = 0;
    for (int i = 0; i < 2; i++) {
        uint64_t s0 = r->outb_start[i], s1 = s0 + r->outb_len[i];
        uint64_t a = off > s0 ? off : s0, b = off + len < s1 ? off + len : s1;
        if (a < b) {
            memcpy(dst + (a - off), r->outb[i] + (a - s0), (size_t)(b - a));
            got += (size_t)(b - a);
        }
    }
    return got == len;
}

/* A GNU numeric field as Go's archive/tar parses it: base-256, or octal padded with spaces and
 * NULs (an empty field is 0). */
static bool go_numeric_ok(const unsigned char *b, size_t n)
{
    if (b[0] & 0x80) {
        return true;
    }
    size_t i = 0, e = n;
    while (i < e && (b[i] == ' ' || b[i] == 0)) {
        i++;
    }
    while (e > i && (b[e - 1] == ' ' || b[e - 1] == 0)) {
        e--;
    }
    for (size_t k = i; k < e; k++) {
        if (b[k] == 0) {
            return true; /* the string ends at the first NUL */
        }
        if (b[k] < '0' || b[k] > '7') {
            return false;
        }
    }
    return true;
}

/* Go <= 1.7 wrote the USTAR prefix into GNU-magic headers, over the atime and ctime fields
 * (golang.org/issue/12594). Go's reader (and so containerd 1.6.20, moby) and Python read such a
 * name as prefix/name when atime or ctime does not parse and the prefix is ASCII; libarchive
 * reads name alone. The same rule is applied here, so that the tree is the one they give.
 * Returns: the prefix (caller frees), or NULL. */
static char *go_gnu_prefix(const oci_layer_reader *r, int64_t hdr_pos, int64_t here)
{
    unsigned char h[512];
    if (hdr_pos < 0 || here - hdr_pos != 512 || !stream_bytes(r, (uint64_t)hdr_pos, 512, h) ||
        memcmp(h + 257, "ustar  \0", 8) != 0) {
        return NULL;
    }
    bool bad = (h[345] && !go_numeric_ok(h + 345, 12)) || (h[357] && !go_numeric_ok(h + 357, 12));
    if (!bad) {
        return NULL;
    }
    size_t n = strnlen((const char *)h + 345, 155);
    for (size_t i = 0; i < n; i++) {
        if (h[345 + i] >= 0x80) {
            return NULL;
        }
    }
    return n ? mar_xstrndup((const char *)h + 345, n) : NULL;
}

int oci_layer_next(oci_layer_reader *r, const oci_layer_entry **ret, mar_err **err)
{
    /* Names are UTF-8 in PAX records and raw bytes in ustar: a UTF-8 C locale reads both without
     * conversion failures (docs/internals/unpack-security.md §2 "Pathname charset"), for this
     * thread only. */
    locale_t loc = utf8_locale();
    locale_t old = loc ? uselocale(loc) : (locale_t)0;
    int rc = next_entry(r, ret, err);
    if (loc) {
        uselocale(old);
    }
    return rc;
}

MAR_MUST_USE static int next_entry(oci_layer_reader *r, const oci_layer_entry **ret, mar_err **err)
{
    struct archive_entry *ae;
    for (;;) {
        int ar = archive_read_next_header(r->a, &ae);
        if (ar == ARCHIVE_EOF) {
            return 0;
        }
        /* A warning on a header (a pathname that does not convert, a bad checksum recovered
         * from) is an error here (docs/internals/unpack-security.md §2). */
        if (ar != ARCHIVE_OK) {
            return fail_from_archive(r, err, "invalid tar header");
        }
        if (++r->entries > r->lim.max_entries) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "layer has more than %llu entries, refusing",
                               (unsigned long long)r->lim.max_entries);
        }
        /* The headers of one entry (ustar, PAX records, GNU long names) are capped: libarchive
         * keeps whole PAX records in memory (CVE-2022-2879 class). The filter position is what
         * the tar reader consumed, so this is where the entry's data starts. */
        int64_t hdr_pos = archive_read_header_position(r->a);
        int64_t here = archive_filter_bytes(r->a, -1);
        if (hdr_pos >= 0 && here > hdr_pos &&
            (uint64_t)(here - hdr_pos) > r->lim.max_header_bytes) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "tar headers of %lld bytes for one entry, refusing",
                               (long long)(here - hdr_pos));
        }

        oci_layer_entry *e = &r->entry;
        free(e->path);
        free(e->link);
        free(e->xattrs);
        memset(e, 0, sizeof(*e));
        mar_strv_release(&r->xattr_names);

        const char *name = archive_entry_pathname(ae);
        if (!name) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "tar entry without a name, refusing");
        }
        _cleanup_free_ char *prefix = go_gnu_prefix(r, hdr_pos, here);
        _cleanup_free_ char *joined = prefix ? mar_xasprintf("%s/%s", prefix, name) : NULL;
        if (oci_clean_path(joined ? joined : name, &e->path, err) < 0) {
            return -MAR_EINTEGRITY;
        }
        mode_t type = archive_entry_filetype(ae);
        const char *hl = archive_entry_hardlink(ae);
        if (hl) {
            e->kind = OCI_ENTRY_HARDLINK;
            if (oci_clean_path(hl, &e->link, err) < 0) {
                return mar_err_wrap(err, "hard link '%.200s'", e->path);
            }
            if (!*e->link) {
                return mar_err_set(err, MAR_EINTEGRITY, 0,
                                   "hard link '%.200s' to the root, refusing", e->path);
            }
        } else {
            switch (type) {
            case AE_IFREG:
                e->kind = OCI_ENTRY_FILE;
                break;
            case AE_IFDIR:
                e->kind = OCI_ENTRY_DIR;
                break;
            case AE_IFLNK:
                e->kind = OCI_ENTRY_SYMLINK;
                break;
            case AE_IFCHR:
                e->kind = OCI_ENTRY_CHAR;
                break;
            case AE_IFBLK:
                e->kind = OCI_ENTRY_BLOCK;
                break;
            case AE_IFIFO:
                e->kind = OCI_ENTRY_FIFO;
                break;
            case AE_IFSOCK:
                e->kind = OCI_ENTRY_SOCKET;
                break;
            default:
                return mar_err_set(err, MAR_EINTEGRITY, 0,
                                   "unknown entry type for '%.200s', "
                                   "refusing",
                                   e->path);
            }
            if (e->kind == OCI_ENTRY_SYMLINK) {
                const char *t = archive_entry_symlink(ae);
                if (!t || strlen(t) > OCI_PATH_MAX) {
                    return mar_err_set(err, MAR_EINTEGRITY, 0,
                                       "bad symlink target for "
                                       "'%.200s', refusing",
                                       e->path);
                }
                e->link = mar_xstrdup(t);
            }
        }
        e->mode = (unsigned)archive_entry_perm(ae) | (archive_entry_mode(ae) & 07000);
        e->uid = (int64_t)archive_entry_uid(ae);
        e->gid = (int64_t)archive_entry_gid(ae);
        /* An id must fit uid_t/gid_t and not be -1, which chown reads as "unchanged": 2^32
         * would wrap to root, 2^32-1 leave the file the unpacker's
         * (docs/internals/unpack-security.md §3). */
        if (e->uid < 0 || e->gid < 0 || (uint64_t)e->uid >= (uint64_t)(uid_t)-1 ||
            (uint64_t)e->gid >= (uint64_t)(gid_t)-1) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "'%.200s' has owner %lld:%lld, which is no valid uid:gid, refusing",
                               e->path, (long long)e->uid, (long long)e->gid);
        }
        e->size = archive_entry_size_is_set(ae) ? (int64_t)archive_entry_size(ae) : 0;
        if (e->size < 0 || (uint64_t)e->size > r->lim.max_uncompressed) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "'%.200s' claims %lld bytes, more than a layer may hold, refusing",
                               e->path, (long long)e->size);
        }
        e->sparse = archive_entry_sparse_count(ae) > 0;
        if ((uint64_t)archive_entry_sparse_count(ae) > r->lim.max_sparse) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "sparse file '%.200s' has %d regions, refusing", e->path,
                               archive_entry_sparse_count(ae));
        }
        e->mtime = (int64_t)archive_entry_mtime(ae);
        e->mtime_nsec = (long)archive_entry_mtime_nsec(ae);
        e->devmajor = (uint64_t)archive_entry_rdevmajor(ae);
        e->devminor = (uint64_t)archive_entry_rdevminor(ae);
        if (e->kind == OCI_ENTRY_FILE) {
            mar_err *we = NULL;
            classify_whiteout(e, &we);
            if (we) {
                *err = we;
                return -MAR_EINTEGRITY;
            }
        }
        if (e->kind == OCI_ENTRY_DIR && !*e->path) {
            continue; /* the root itself: nothing to do */
        }
        /* An opaque marker at the root (".wh..wh..opq", "./.wh..wh..opq") hides every lower
         * layer, as containerd 1.6.20 applies it (archive/tar.go); anything else naming the
         * root is refused. */
        if (!*e->path && e->kind != OCI_ENTRY_OPAQUE) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "a non-directory entry names the root, refusing");
        }
        /* xattrs (PAX SCHILY.xattr.*). */
        size_t nx = (size_t)archive_entry_xattr_reset(ae);
        if (nx) {
            e->xattrs = mar_xcalloc(nx, sizeof(*e->xattrs));
            const char *xn;
            const void *xv;
            size_t xs;
            while (archive_entry_xattr_next(ae, &xn, &xv, &xs) == ARCHIVE_OK && e->n_xattrs < nx) {
                mar_strv_push(&r->xattr_names, xn);
                e->xattrs[e->n_xattrs++] = (oci_xattr){NULL, xv, xs};
            }
            for (size_t i = 0; i < e->n_xattrs; i++) {
                e->xattrs[i].name = r->xattr_names.v[i];
            }
        }
        *ret = e;
        return 1;
    }
}

ssize_t oci_layer_read(oci_layer_reader *r, void *buf, size_t n, mar_err **err)
{
    la_ssize_t got = archive_read_data(r->a, buf, n);
    if (got < 0) {
        return fail_from_archive(r, err, "cannot read layer data");
    }
    return (ssize_t)got;
}

int oci_layer_read_block(oci_layer_reader *r, const void **ret_buf, size_t *ret_len,
                         int64_t *ret_off, mar_err **err)
{
    const void *buf;
    size_t len;
    la_int64_t off;
    int ar = archive_read_data_block(r->a, &buf, &len, &off);
    if (ar == ARCHIVE_EOF) {
        return 0;
    }
    if (ar != ARCHIVE_OK) {
        return fail_from_archive(r, err, "cannot read layer data");
    }
    /* A sparse map is the layer's word: a block past the size it declared is refused rather
     * than trusted to stay within the budget counted from that size. */
    if (off < 0 || (uint64_t)off > (uint64_t)r->entry.size ||
        len > (uint64_t)r->entry.size - (uint64_t)off) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "'%.200s' has data at offset %lld, past its size of %lld, refusing",
                           r->entry.path, (long long)off, (long long)r->entry.size);
    }
    *ret_buf = buf;
    *ret_len = len;
    *ret_off = (int64_t)off;
    return 1;
}

int oci_layer_skip(oci_layer_reader *r, mar_err **err)
{
    if (archive_read_data_skip(r->a) != ARCHIVE_OK) {
        return fail_from_archive(r, err, "cannot skip layer data");
    }
    return 0;
}

int oci_layer_finish(oci_layer_reader *r, mar_digest *ret_diff_id, uint64_t *ret_size,
                     mar_err **err)
{
    /* Past the tar end blocks, whatever remains of the uncompressed stream is still part of
     * the DiffID (trailing padding, docs/internals/registry-protocol.md §11). */
    for (;;) {
        ssize_t n = decode(r);
        if (n < 0) {
            return fail_from_archive(r, err, "cannot read the layer to its end");
        }
        if (n == 0) {
            break;
        }
        r->out_total += (uint64_t)n;
        if (r->out_total > r->lim.max_uncompressed) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "layer expands beyond %llu bytes, refusing",
                               (unsigned long long)r->lim.max_uncompressed);
        }
        mar_hasher_update(r->hash, r->out, (size_t)n);
    }
    /* Compressed bytes after the end of the stream are refused by decode(); anything the fd
     * still holds was padding. */
    mar_hasher_final(r->hash, ret_diff_id);
    if (ret_size) {
        *ret_size = r->out_total;
    }
    return 0;
}

int oci_layer_media_codec(const char *media_type)
{
    static const struct {
        const char *type;
        oci_codec codec;
    } known[] = {
            {"application/vnd.oci.image.layer.v1.tar", OCI_CODEC_NONE},
            {"application/vnd.oci.image.layer.v1.tar+gzip", OCI_CODEC_GZIP},
            {"application/vnd.oci.image.layer.v1.tar+zstd", OCI_CODEC_ZSTD},
            {"application/vnd.docker.image.rootfs.diff.tar", OCI_CODEC_NONE},
            {"application/vnd.docker.image.rootfs.diff.tar.gzip", OCI_CODEC_GZIP},
            {"application/vnd.docker.image.rootfs.diff.tar.zstd", OCI_CODEC_ZSTD},
    };
    char base[160];
    oci_media_type_base(media_type ? media_type : "", base, sizeof(base));
    for (size_t i = 0; i < MAR_ARRAY_SIZE(known); i++) {
        if (strcmp(base, known[i].type) == 0) {
            return (int)known[i].codec;
        }
    }
    return -1;
}
