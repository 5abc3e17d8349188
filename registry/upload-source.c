/* Where an upload reads a blob from (docs/internals/registry-protocol.md §14 "Sources").
 *
 * Memory and files are read at any offset, so a resume or a restart simply reads again. A
 * producer (another registry's GET, or the caller's own) delivers bytes once, in order: they go
 * through a window that keeps what the registry has not acknowledged yet, so a PATCH that broke
 * can be sent again from where the registry says it stopped. Only when a failure needs bytes the
 * window already dropped (a new session after acknowledged chunks) is the producer asked to
 * produce again from that offset. The window is at most one chunk plus what the producer runs
 * ahead (REG__SOURCE_SLACK), so a copy never holds a whole layer in memory. */
#include "push-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

struct reg_producer {
    reg_source *src; /* NULL once abandoned: writes are refused until the producer ends */
    bool ended;
};

struct reg_source {
    reg_client *c;
    reg_src_kind kind;
    oci_descriptor desc; /* digest and size only */
    const char *mem;
    int fd;
    bool own_fd;
    /* producers */
    reg_blob_src spec;
    oci_ref from;
    reg_producer *cur;
    char *win;
    size_t win_cap;
    uint64_t base; /* the window holds bytes [base, base + len) */
    size_t len;
    bool done; /* the current production ended; rc and err say how */
    int rc;
    mar_err *err;
    bool want_room;
    bool paused_read;
    void (*wake)(void *ud);
    void *wake_ud;
    /* REG_SRC_REGISTRY */
    reg_stream *stream;
    uint64_t stream_skip; /* bytes of the stream before base, dropped */
    bool stream_cancel;
};

static void registry_produce(void *ud, reg_producer *pr, uint64_t offset);
static void registry_room(void *ud, reg_producer *pr);

int reg__source_open(reg_client *c, const reg_blob_src *src, const oci_descriptor *d,
                     uint64_t chunk, reg_source **ret, mar_err **err)
{
    if (src->kind == REG_SRC_PRODUCER && (!src->produce || !src->room)) {
        return mar_err_set(err, MAR_EFAIL, 0, "a producer source needs produce and room");
    }
    reg_source *s = mar_xcalloc(1, sizeof(*s));
    s->c = c;
    s->kind = src->kind;
    s->desc.digest = d->digest;
    s->desc.size = d->size;
    s->fd = -1;
    s->spec = *src;
    uint64_t size = d->size > 0 ? (uint64_t)d->size : 0;
    switch (src->kind) {
    case REG_SRC_MEMORY:
        s->mem = src->mem;
        break;
    case REG_SRC_STORE:
    case REG_SRC_FD: {
        if (src->kind == REG_SRC_STORE) {
            if (reg_store_blob_open(src->store, &d->digest, &s->fd, err) < 0) {
                free(s);
                return -mar_err_code(*err);
            }
            s->own_fd = true;
        } else {
            s->fd = src->fd;
        }
        struct stat st;
        if (fstat(s->fd, &st) < 0) {
            int e = errno;
            reg__source_free(s);
            return mar_err_set(err, MAR_EIO, e, "cannot read blob %s", d->digest.str);
        }
        if ((uint64_t)st.st_size != size) {
            /* A file cut short (or grown) since it was verified: sending it would make the
             * registry refuse it at the very end, or hold a wrong blob. */
            int rc = mar_err_set(err, MAR_EINTEGRITY, 0,
                                 "blob %s has %lld bytes%s%s but its descriptor says %llu, "
                                 "refusing",
                                 d->digest.str, (long long)st.st_size,
                                 src->kind == REG_SRC_STORE ? " in the store " : "",
                                 src->kind == REG_SRC_STORE ? reg_store_path(src->store) : "",
                                 (unsigned long long)size);
            reg__source_free(s);
            return rc;
        }
        break;
    }
    case REG_SRC_REGISTRY:
        s->from.domain = mar_xstrdup(src->from->domain);
        s->from.path = mar_xstrdup(src->from->path);
        s->from.api_host = mar_xstrdup(src->from->api_host);
        s->spec.produce = registry_produce;
        s->spec.room = registry_room;
        s->spec.ud = s;
        /* fall through */
    case REG_SRC_PRODUCER:
        chunk = chunk < REG__SOURCE_WINDOW ? chunk : REG__SOURCE_WINDOW;
        s->win_cap = size < chunk + REG__SOURCE_SLACK ? (size_t)size
                                                      : (size_t)(chunk + REG__SOURCE_SLACK);
        s->done = true; /* nothing produced yet: the first read starts production */
        s->rc = 1;
        break;
    default:
        free(s);
        return mar_err_set(err, MAR_EFAIL, 0, "unknown blob source");
    }
    *ret = s;
    return 0;
}

reg_source *reg__source_free(reg_source *s)
{
    if (!s) {
        return NULL;
    }
    if (s->cur) {
        /* The producer still runs: it learns from its next write, and frees the handle when it
         * ends. */
        s->cur->src = NULL;
        if (s->cur->ended) {
            free(s->cur);
        }
    }
    if (s->stream) {
        s->stream_cancel = true;
        reg__blob_stream_unpause(s->stream);
    }
    if (s->own_fd && s->fd >= 0) {
        close(s->fd);
    }
    free(s->win);
    mar_err_free(s->err);
    oci_ref_release(&s->from);
    free(s);
    return NULL;
}

void reg__source_on_wake(reg_source *s, void (*fn)(void *ud), void *ud)
{
    s->wake = fn;
    s->wake_ud = ud;
}

/* ---- producers ------------------------------------------------------------------------------ */

static void abandon(reg_source *s)
{
    if (s->cur) {
        if (s->cur->ended) {
            free(s->cur);
        } else {
            s->cur->src = NULL;
        }
        s->cur = NULL;
    }
}

/* Starts producing from off: the window is emptied and based there. */
static void produce_from(reg_source *s, uint64_t off)
{
    abandon(s);
    mar_err_free(s->err);
    s->err = NULL;
    s->base = off;
    s->len = 0;
    s->done = false;
    s->rc = 0;
    s->want_room = false;
    if (!s->win && s->win_cap) {
        s->win = mar_xmalloc(s->win_cap);
    }
    reg_producer *pr = mar_xcalloc(1, sizeof(*pr));
    pr->src = s;
    s->cur = pr;
    s->spec.produce(s->spec.ud, pr, off);
}

static void wake_reader(reg_source *s)
{
    if (s->paused_read) {
        s->paused_read = false;
        if (s->wake) {
            s->wake(s->wake_ud);
        }
    }
}

int reg_producer_write(reg_producer *pr, const void *p, size_t n)
{
    reg_source *s = pr->src;
    if (!s || pr->ended) {
        return -1;
    }
    uint64_t size = s->desc.size > 0 ? (uint64_t)s->desc.size : 0;
    if (s->base + s->len + n > size) {
        mar_err_free(s->err);
        s->err = NULL;
        mar_err_set(&s->err, MAR_EINTEGRITY, 0, "the source of %s gives more than %llu bytes",
                    s->desc.digest.str, (unsigned long long)size);
        s->done = true;
        s->rc = -MAR_EINTEGRITY;
        pr->src = NULL;
        s->cur = NULL;
        wake_reader(s);
        return -1;
    }
    if (s->len + n > s->win_cap) {
        s->want_room = true;
        return 0;
    }
    memcpy(s->win + s->len, p, n);
    s->len += n;
    wake_reader(s);
    return 1;
}

void reg_producer_end(reg_producer *pr, int rc, mar_err *err)
{
    reg_source *s = pr->src;
    pr->ended = true;
    if (!s) {
        mar_err_free(err);
        free(pr);
        return;
    }
    uint64_t size = s->desc.size > 0 ? (uint64_t)s->desc.size : 0;
    s->done = true;
    s->rc = rc;
    mar_err_free(s->err);
    s->err = err;
    if (rc == 0 && s->base + s->len < size) {
        s->rc = -MAR_EINTEGRITY;
        mar_err_free(s->err);
        s->err = NULL;
        mar_err_set(&s->err, MAR_EINTEGRITY, 0, "the source of %s ended after %llu of %llu bytes",
                    s->desc.digest.str, (unsigned long long)(s->base + s->len),
                    (unsigned long long)size);
    }
    wake_reader(s);
}

ssize_t reg__source_read(reg_source *s, uint64_t off, void *buf, size_t n, mar_err **err)
{
    uint64_t size = s->desc.size > 0 ? (uint64_t)s->desc.size : 0;
    if (off + n > size) {
        n = off < size ? (size_t)(size - off) : 0;
    }
    if (n == 0) {
        return 0;
    }
    switch (s->kind) {
    case REG_SRC_MEMORY:
        memcpy(buf, s->mem + off, n);
        return (ssize_t)n;
    case REG_SRC_STORE:
    case REG_SRC_FD: {
        ssize_t r;
        do {
            r = pread(s->fd, buf, n, (off_t)off);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            mar_err_set(err, MAR_EIO, errno, "cannot read blob %s", s->desc.digest.str);
            return REG_BODY_ABORT;
        }
        if (r == 0) {
            mar_err_set(err, MAR_EINTEGRITY, 0, "blob %s ends before its %llu bytes, refusing",
                        s->desc.digest.str, (unsigned long long)size);
            return REG_BODY_ABORT;
        }
        return r;
    }
    default:
        break;
    }
    if (s->rc > 0 || off < s->base) {
        /* Not produced yet at all, or dropped from the window. */
        produce_from(s, off);
    }
    if (off < s->base + s->len) {
        size_t k = (size_t)(s->base + s->len - off);
        k = k < n ? k : n;
        memcpy(buf, s->win + (off - s->base), k);
        return (ssize_t)k;
    }
    if (s->done) {
        if (s->err) {
            *err = TAKE_PTR(s->err);
        } else {
            mar_err_set(err, MAR_EINTEGRITY, 0, "the source of %s ended early", s->desc.digest.str);
        }
        s->rc = 1; /* a later attempt produces again */
        return REG_BODY_ABORT;
    }
    s->paused_read = true;
    return REG_BODY_PAUSE;
}

void reg__source_fit_chunk(reg_source *s, uint64_t chunk)
{
    uint64_t size = s->desc.size > 0 ? (uint64_t)s->desc.size : 0;
    uint64_t want = chunk + REG__SOURCE_SLACK < size ? chunk + REG__SOURCE_SLACK : size;
    if ((s->kind != REG_SRC_REGISTRY && s->kind != REG_SRC_PRODUCER) || want <= s->win_cap) {
        return;
    }
    s->win_cap = (size_t)want;
    if (s->win) {
        s->win = mar_xrealloc(s->win, s->win_cap);
    }
    if (s->want_room && s->cur) {
        s->want_room = false;
        s->spec.room(s->spec.ud, s->cur);
    }
}

void reg__source_ack(reg_source *s, uint64_t off)
{
    if (!s->win || off <= s->base) {
        return;
    }
    uint64_t drop = off - s->base;
    if (drop > s->len) {
        drop = s->len;
    }
    memmove(s->win, s->win + drop, s->len - (size_t)drop);
    s->len -= (size_t)drop;
    s->base += drop;
    if (s->want_room && s->cur) {
        s->want_room = false;
        s->spec.room(s->spec.ud, s->cur);
    }
}

bool reg__source_rewind(reg_source *s, uint64_t off)
{
    if (s->kind == REG_SRC_MEMORY || s->kind == REG_SRC_STORE || s->kind == REG_SRC_FD) {
        return true;
    }
    if (off >= s->base && off <= s->base + s->len) {
        return true;
    }
    /* The window no longer holds it: the next read produces again from there. */
    abandon(s);
    s->rc = 1;
    s->base = off;
    s->len = 0;
    return true;
}

/* ---- REG_SRC_REGISTRY: another repository's GET as the producer ------------------------------ */

MAR_MUST_USE static int stream_write(void *ud, const void *p, size_t n, mar_err **err)
{
    reg_producer *pr = ud;
    reg_source *s = pr->src;
    if (!s || s->stream_cancel) {
        return mar_err_set(err, MAR_EFAIL, ECANCELED, "cancelled");
    }
    /* The stream always starts at byte 0 (the source's digest covers the whole blob); what lies
     * before the offset asked for is dropped. */
    if (s->stream_skip) {
        size_t k = n < s->stream_skip ? n : (size_t)s->stream_skip;
        s->stream_skip -= k;
        p = (const char *)p + k;
        n -= k;
        if (!n) {
            return 0;
        }
    }
    int rc = reg_producer_write(pr, p, n);
    if (rc == 0) {
        mar_debug("the upload window of %s is full: holding its download", s->desc.digest.str);
        return REG_HTTP_PAUSE;
    }
    return rc < 0 ? mar_err_set(err, MAR_EFAIL, ECANCELED, "cancelled") : 0;
}

static void stream_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    (void)blob;
    reg_producer *pr = ud;
    if (pr->src) {
        pr->src->stream = NULL;
    }
    reg_producer_end(pr, rc, err);
}

static void registry_produce(void *ud, reg_producer *pr, uint64_t offset)
{
    reg_source *s = ud;
    if (s->stream) {
        s->stream_cancel = true;
        reg__blob_stream_unpause(s->stream);
        s->stream = NULL;
    }
    s->stream_cancel = false;
    s->stream_skip = offset;
    reg_sink sink = {.write = stream_write, .ud = pr};
    s->stream = reg__blob_stream_start(s->c, &s->from, &s->desc, 0, NULL, &sink, stream_done, pr);
}

static void registry_room(void *ud, reg_producer *pr)
{
    reg_source *s = ud;
    (void)pr;
    if (s->stream) {
        reg__blob_stream_unpause(s->stream);
    }
}
