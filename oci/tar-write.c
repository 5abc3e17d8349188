/* The tar writer (docs/internals/layer-write.md §3): POSIX ustar headers, with a PAX extended
 * header in front of an entry only when ustar cannot hold it (long or non-ASCII names and link
 * targets, ids, sizes or times beyond the octal fields, xattrs as SCHILY.xattr.NAME). Every field
 * is a function of the entry alone: no user or group names, no access or change times, no pid or
 * clock in the PAX header's name, so the same entries always give the same bytes. */
#include "oci.h"

#include <errno.h>
#include <string.h>

#define BLOCK        512u
#define PAX_MAX      (1u << 20) /* what oci_layer_open accepts for one entry's records */
#define COPY_CHUNK   (256u << 10)
#define PAX_HDR_NAME "././@PaxHeader"

struct oci_tarw {
    oci_tarw_opts o;
    oci_sink_fn sink;
    void *ud;
    uint64_t entries;
    uint64_t remaining; /* data of the current entry still due */
    size_t pad;         /* zeros after it, to the block boundary */
    char *cur;          /* the current entry's tar name, for messages */
    int failed;         /* sticky MAR_E* code once the sink or the stream failed */
    bool finished;
    unsigned char *copy;
};

static const unsigned char zeros[2 * BLOCK];

oci_tarw *oci_tarw_new(const oci_tarw_opts *opts, oci_sink_fn sink, void *ud)
{
    oci_tarw *w = mar_xcalloc(1, sizeof(*w));
    if (opts) {
        w->o = *opts;
    }
    w->sink = sink;
    w->ud = ud;
    return w;
}

oci_tarw *oci_tarw_free(oci_tarw *w)
{
    if (w) {
        free(w->cur);
        free(w->copy);
        free(w);
    }
    return NULL;
}

uint64_t oci_tarw_entries(const oci_tarw *w)
{
    return w->entries;
}

MAR_MUST_USE static int emit(oci_tarw *w, const void *p, size_t n, mar_err **err)
{
    int rc = w->sink(w->ud, p, n, err);
    if (rc < 0) {
        w->failed = -rc;
    }
    return rc;
}

MAR_MUST_USE static int check_usable(oci_tarw *w, mar_err **err)
{
    if (w->failed) {
        return mar_err_set(err, w->failed, 0, "the tar stream failed earlier");
    }
    if (w->finished) {
        return mar_err_set(err, MAR_EFAIL, 0, "the tar stream is already finished");
    }
    return 0;
}

/* Closes the data of the current entry: all of it must have come, then the padding. */
MAR_MUST_USE static int end_data(oci_tarw *w, mar_err **err)
{
    if (w->remaining) {
        w->failed = MAR_EINTEGRITY;
        return mar_err_set(err, MAR_EINTEGRITY, 0, "'%s': %llu bytes of data missing", w->cur,
                           (unsigned long long)w->remaining);
    }
    if (w->pad) {
        size_t pad = w->pad;
        w->pad = 0;
        return emit(w, zeros, pad, err);
    }
    return 0;
}

static bool is_ascii(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s >= 0x80) {
            return false;
        }
    }
    return true;
}

/* RFC 3629 well-formed UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool is_utf8(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80) {
                return false;
            }
            c = (c << 6) | (s[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return false;
        }
        s += n + 1;
    }
    return true;
}

static bool fits_octal(uint64_t v, size_t width)
{
    size_t digits = width - 1; /* the last byte is the NUL */
    return digits >= 21 || v < (1ull << (3 * digits));
}

static void put_octal(char *field, size_t width, uint64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%0*llo", (int)(width - 1), (unsigned long long)v);
    memcpy(field, tmp, width); /* width - 1 digits and the NUL */
}

/* ustar splits a name into prefix (155) '/' name (100). Returns false when no split fits. */
static bool split_name(const char *name, size_t *ret_prefix)
{
    size_t len = strlen(name);
    if (len <= 100) {
        *ret_prefix = 0;
        return true;
    }
    /* The shortest prefix whose remainder fits; the slash itself is in neither field. */
    for (size_t i = 1; i < len - 1 && i <= 155; i++) {
        if (name[i] == '/' && len - i - 1 <= 100) {
            *ret_prefix = i;
            return true;
        }
    }
    return false;
}

/* One "LEN KEY=VALUE\n" record, LEN counting the whole record with its own digits (POSIX pax
 * "extended header"). */
static int pax_record(mar_buf *b, const char *key, const void *val, size_t vlen)
{
    size_t base = strlen(key) + vlen + 3; /* ' ', '=', '\n' */
    size_t len = base + 1;
    for (size_t d = 1;; d++) {
        len = base + d;
        size_t digits = 0;
        for (size_t v = len; v; v /= 10) {
            digits++;
        }
        if (digits == d) {
            break;
        }
    }
    if (mar_buf_printf(b, "%zu %s=", len, key) < 0 || mar_buf_append(b, val, vlen) < 0 ||
        mar_buf_append(b, "\n", 1) < 0) {
        return -1;
    }
    return 0;
}

static int pax_number(mar_buf *b, const char *key, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%lld", v);
    return pax_record(b, key, num, (size_t)n);
}

/* The ustar block. PAX carries what does not fit; the ustar fields then hold a stand-in a reader
 * without PAX support can still step over: an ASCII-only, truncated name and zero numbers. */
typedef struct hdr_fields {
    const char *name;
    const char *link;
    char type;
    unsigned mode;
    uint64_t uid, gid, size, mtime;
    uint64_t devmajor, devminor;
} hdr_fields;

static void ascii_copy(char *field, size_t width, const char *s)
{
    for (size_t i = 0; i < width && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        field[i] = c < 0x80 ? (char)c : '_';
    }
}

static void build_block(unsigned char blk[BLOCK], const hdr_fields *f)
{
    char *h = (char *)blk;
    memset(h, 0, BLOCK);
    size_t prefix = 0;
    if (is_ascii(f->name) && split_name(f->name, &prefix) && prefix) {
        memcpy(h + 345, f->name, prefix);
        memcpy(h, f->name + prefix + 1, strlen(f->name) - prefix - 1);
    } else {
        ascii_copy(h, 100, f->name);
    }
    put_octal(h + 100, 8, f->mode & 07777);
    put_octal(h + 108, 8, fits_octal(f->uid, 8) ? f->uid : 0);
    put_octal(h + 116, 8, fits_octal(f->gid, 8) ? f->gid : 0);
    put_octal(h + 124, 12, fits_octal(f->size, 12) ? f->size : 0);
    put_octal(h + 136, 12, fits_octal(f->mtime, 12) ? f->mtime : 0);
    h[156] = f->type;
    if (f->link) {
        ascii_copy(h + 157, 100, f->link);
    }
    memcpy(h + 257, "ustar", 6); /* magic "ustar\0", version "00" */
    memcpy(h + 263, "00", 2);
    put_octal(h + 329, 8, f->devmajor);
    put_octal(h + 337, 8, f->devminor);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < BLOCK; i++) {
        sum += blk[i];
    }
    snprintf(h + 148, 8, "%06o", sum); /* six digits, NUL, and the space left in place */
}

static int cmp_xattr(const void *a, const void *b)
{
    const oci_xattr *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Builds the PAX records an entry needs into b (empty when it needs none). */
MAR_MUST_USE static int pax_records(const oci_layer_entry *e, const hdr_fields *f, int64_t mtime,
                                    mar_buf *b, mar_err **err)
{
    size_t prefix;
    bool name_pax = !is_ascii(f->name) || !split_name(f->name, &prefix);
    bool link_pax = f->link && (!is_ascii(f->link) || strlen(f->link) > 100);
    int rc = 0;
    /* Names are UTF-8 in PAX records; bytes that are not UTF-8 are announced as such (POSIX pax
     * "hdrcharset"), which GNU tar, libarchive, Python and Go all take as raw bytes. */
    if ((name_pax && !is_utf8(f->name)) || (link_pax && !is_utf8(f->link))) {
        rc |= pax_record(b, "hdrcharset", "BINARY", 6);
    }
    if (name_pax) {
        rc |= pax_record(b, "path", f->name, strlen(f->name));
    }
    if (link_pax) {
        rc |= pax_record(b, "linkpath", f->link, strlen(f->link));
    }
    if (!fits_octal(f->size, 12)) {
        rc |= pax_number(b, "size", (long long)f->size);
    }
    if (!fits_octal(f->uid, 8)) {
        rc |= pax_number(b, "uid", (long long)f->uid);
    }
    if (!fits_octal(f->gid, 8)) {
        rc |= pax_number(b, "gid", (long long)f->gid);
    }
    if (mtime < 0 || !fits_octal((uint64_t)mtime, 12)) {
        rc |= pax_number(b, "mtime", (long long)mtime);
    }
    if (e->n_xattrs &&
        (e->kind == OCI_ENTRY_FILE || e->kind == OCI_ENTRY_DIR || e->kind == OCI_ENTRY_SYMLINK ||
         e->kind == OCI_ENTRY_CHAR || e->kind == OCI_ENTRY_BLOCK || e->kind == OCI_ENTRY_FIFO)) {
        _cleanup_free_ const oci_xattr **xs = mar_xcalloc(e->n_xattrs, sizeof(*xs));
        for (size_t i = 0; i < e->n_xattrs; i++) {
            xs[i] = &e->xattrs[i];
        }
        qsort(xs, e->n_xattrs, sizeof(*xs), cmp_xattr);
        for (size_t i = 0; i < e->n_xattrs && rc == 0; i++) {
            /* A record's key ends at the first '=': such a name cannot be written. */
            if (!*xs[i]->name || strchr(xs[i]->name, '=')) {
                return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                                   "'%s': xattr name '%.100s' cannot be a PAX key, refusing",
                                   f->name, xs[i]->name);
            }
            if (i && strcmp(xs[i]->name, xs[i - 1]->name) == 0) {
                return mar_err_set(err, MAR_EINTEGRITY, 0, "'%s': xattr '%.100s' given twice",
                                   f->name, xs[i]->name);
            }
            _cleanup_free_ char *key = mar_xasprintf("SCHILY.xattr.%s", xs[i]->name);
            rc |= pax_record(b, key, xs[i]->value, xs[i]->size);
        }
    }
    if (rc) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "'%s': PAX headers over %u bytes (the reader's limit), refusing",
                           f->name, PAX_MAX);
    }
    return 0;
}

/* The tar name of an entry: a clean relative path, "/" after directories, whiteouts as the
 * `.wh.` files of image-spec layer.md "Whiteouts". */
MAR_MUST_USE static int tar_name(const oci_layer_entry *e, char **ret, mar_err **err)
{
    const char *p = e->path ? e->path : "";
    _cleanup_free_ char *clean = NULL;
    if (oci_clean_path(p, &clean, err) < 0) {
        return mar_err_wrap(err, "cannot write '%.200s'", p);
    }
    if (strcmp(clean, p) != 0 || !*p) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "'%.200s' is not a clean relative path in the layer, refusing", p);
    }
    const char *slash = strrchr(p, '/');
    const char *base = slash ? slash + 1 : p;
    size_t dirlen = slash ? (size_t)(slash - p) + 1 : 0;
    if (mar_str_startswith(base, ".wh.")) {
        /* image-spec layer.md: names starting .wh. are whiteout markers and cannot be content. */
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "'%.200s': names starting with '.wh.' are reserved for whiteouts, "
                           "refusing",
                           p);
    }
    switch (e->kind) {
    case OCI_ENTRY_DIR:
        *ret = mar_xasprintf("%s/", p);
        break;
    case OCI_ENTRY_WHITEOUT:
        *ret = mar_xasprintf("%.*s.wh.%s", (int)dirlen, p, base);
        break;
    case OCI_ENTRY_OPAQUE:
        *ret = mar_xasprintf("%s/.wh..wh..opq", p);
        break;
    default:
        *ret = mar_xstrdup(p);
        break;
    }
    /* The marker names must still be names the reader accepts (255-byte components). */
    _cleanup_free_ char *check = NULL;
    if (oci_clean_path(*ret, &check, err) < 0) {
        free(*ret);
        *ret = NULL;
        return mar_err_wrap(err, "cannot write '%.200s'", p);
    }
    return 0;
}

MAR_MUST_USE static int entry_type(const oci_layer_entry *e, char *ret, mar_err **err)
{
    static const char types[] = {
            [OCI_ENTRY_FILE] = '0',     [OCI_ENTRY_DIR] = '5',      [OCI_ENTRY_SYMLINK] = '2',
            [OCI_ENTRY_HARDLINK] = '1', [OCI_ENTRY_CHAR] = '3',     [OCI_ENTRY_BLOCK] = '4',
            [OCI_ENTRY_FIFO] = '6',     [OCI_ENTRY_WHITEOUT] = '0', [OCI_ENTRY_OPAQUE] = '0',
    };
    if ((size_t)e->kind >= sizeof(types) || !types[e->kind]) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "'%.200s': tar has no entry type for a %s, refusing", e->path,
                           e->kind == OCI_ENTRY_SOCKET ? "socket" : "marker of this kind");
    }
    *ret = types[e->kind];
    return 0;
}

MAR_MUST_USE static int check_link(const oci_layer_entry *e, mar_err **err)
{
    if (e->kind == OCI_ENTRY_SYMLINK) {
        if (!e->link || !*e->link || strlen(e->link) > OCI_PATH_MAX) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "'%.200s': bad symlink target, refusing",
                               e->path);
        }
    } else if (e->kind == OCI_ENTRY_HARDLINK) {
        _cleanup_free_ char *clean = NULL;
        if (!e->link || oci_clean_path(e->link, &clean, NULL) < 0 || strcmp(clean, e->link) ||
            !*clean) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "'%.200s': hard link target is not a clean relative path, "
                               "refusing",
                               e->path);
        }
    }
    return 0;
}

int oci_tarw_add(oci_tarw *w, const oci_layer_entry *e, mar_err **err)
{
    int rc;
    if ((rc = check_usable(w, err)) < 0 || (rc = end_data(w, err)) < 0) {
        return rc;
    }
    char type = 0;
    _cleanup_free_ char *name = NULL;
    if ((rc = entry_type(e, &type, err)) < 0 || (rc = tar_name(e, &name, err)) < 0 ||
        (rc = check_link(e, err)) < 0) {
        return rc;
    }
    int64_t uid = w->o.set_owner ? w->o.uid : e->uid;
    int64_t gid = w->o.set_owner ? w->o.gid : e->gid;
    int64_t mtime = e->mtime;
    if (w->o.clamp_mtime && mtime > w->o.mtime_max) {
        mtime = w->o.mtime_max;
    }
    bool data = e->kind == OCI_ENTRY_FILE;
    if (uid < 0 || gid < 0 || (data && e->size < 0)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "'%s': negative owner or size, refusing", name);
    }
    bool dev = e->kind == OCI_ENTRY_CHAR || e->kind == OCI_ENTRY_BLOCK;
    if (dev && (!fits_octal(e->devmajor, 8) || !fits_octal(e->devminor, 8))) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "'%s': device number %llu,%llu does not fit ustar, refusing", name,
                           (unsigned long long)e->devmajor, (unsigned long long)e->devminor);
    }
    hdr_fields f = {
            .name = name,
            .link = (e->kind == OCI_ENTRY_SYMLINK || e->kind == OCI_ENTRY_HARDLINK) ? e->link
                                                                                    : NULL,
            .type = type,
            .mode = e->mode,
            .uid = (uint64_t)uid,
            .gid = (uint64_t)gid,
            .size = data ? (uint64_t)e->size : 0,
            .mtime = mtime < 0 ? 0 : (uint64_t)mtime,
            .devmajor = dev ? e->devmajor : 0,
            .devminor = dev ? e->devminor : 0,
    };
    _cleanup_buf_ mar_buf pax = MAR_BUF_INIT(PAX_MAX);
    if ((rc = pax_records(e, &f, mtime, &pax, err)) < 0) {
        return rc;
    }
    unsigned char blk[BLOCK];
    if (pax.len) {
        hdr_fields xf = {.name = PAX_HDR_NAME, .type = 'x', .mode = 0644, .size = pax.len};
        build_block(blk, &xf);
        size_t padn = (BLOCK - pax.len % BLOCK) % BLOCK;
        if ((rc = emit(w, blk, BLOCK, err)) < 0 || (rc = emit(w, pax.data, pax.len, err)) < 0 ||
            (padn && (rc = emit(w, zeros, padn, err)) < 0)) {
            return rc;
        }
    }
    build_block(blk, &f);
    if ((rc = emit(w, blk, BLOCK, err)) < 0) {
        return rc;
    }
    free(w->cur);
    w->cur = TAKE_PTR(name);
    w->remaining = f.size;
    w->pad = (size_t)((BLOCK - f.size % BLOCK) % BLOCK);
    w->entries++;
    return 0;
}

int oci_tarw_write(oci_tarw *w, const void *buf, size_t n, mar_err **err)
{
    int rc = check_usable(w, err);
    if (rc < 0) {
        return rc;
    }
    if (n > w->remaining) {
        w->failed = MAR_EINTEGRITY;
        return mar_err_set(err, MAR_EINTEGRITY, 0, "'%s': more data than its size",
                           w->cur ? w->cur : "(no entry)");
    }
    w->remaining -= n;
    return n ? emit(w, buf, n, err) : 0;
}

int oci_tarw_add_fd(oci_tarw *w, const oci_layer_entry *e, int fd, const char *what, mar_err **err)
{
    int rc = oci_tarw_add(w, e, err);
    if (rc < 0 || e->kind != OCI_ENTRY_FILE) {
        return rc;
    }
    if (!w->copy) {
        w->copy = mar_xmalloc(COPY_CHUNK);
    }
    while (w->remaining) {
        size_t want = w->remaining < COPY_CHUNK ? (size_t)w->remaining : COPY_CHUNK;
        ssize_t n = read(fd, w->copy, want);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            w->failed = MAR_EIO;
            return n < 0 ? mar_err_set(err, MAR_EIO, errno, "cannot read '%s'", what)
                         : mar_err_set(err, MAR_EIO, 0, "'%s' shrank while being archived", what);
        }
        if ((rc = oci_tarw_write(w, w->copy, (size_t)n, err)) < 0) {
            return rc;
        }
    }
    /* One more byte would mean the size lstat gave is stale: refuse rather than cut the file. */
    for (;;) {
        char extra;
        ssize_t n = read(fd, &extra, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n != 0) {
            w->failed = MAR_EIO;
            return n < 0 ? mar_err_set(err, MAR_EIO, errno, "cannot read '%s'", what)
                         : mar_err_set(err, MAR_EIO, 0, "'%s' grew while being archived", what);
        }
        return 0;
    }
}

int oci_tarw_finish(oci_tarw *w, mar_err **err)
{
    int rc;
    if ((rc = check_usable(w, err)) < 0 || (rc = end_data(w, err)) < 0) {
        return rc;
    }
    /* Two zero blocks end the archive (POSIX ustar); no padding to a record size follows, so the
     * DiffID covers exactly the entries and the end marker. */
    if ((rc = emit(w, zeros, 2 * BLOCK, err)) < 0) {
        return rc;
    }
    w->finished = true;
    return 0;
}
