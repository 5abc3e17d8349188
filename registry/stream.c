/* Streaming blob downloads with resume (docs/internals/registry-protocol.md §13 "Resume with
 * Range"): bytes go to a sink as they arrive while being hashed; an interrupted transfer continues
 * with `Range: bytes=<off>-`; a 206 must start at that offset; a 200 that ignored the range has its
 * first <off> bytes dropped; any other answer starts over from 0 when the sink can, and fails
 * otherwise. The verdict (size and digest) comes only at the end. */
#include "registry-internal.h"

#include <string.h>

struct reg_stream {
    reg_client *c;
    reg_op *op; /* in flight */
    oci_ref ref;
    mar_digest digest;
    uint64_t size;
    mar_hasher *h;
    uint64_t delivered;
    uint64_t skip;
    bool fresh;
    reg_sink sink;
    reg_blob_cb cb;
    void *userdata;
    mar_err *err; /* why the transfer was aborted from the data callback */
    int restarts;
};
typedef struct reg_stream stream;

static void stream_free(stream *s)
{
    mar_hasher_free(s->h);
    mar_err_free(s->err);
    oci_ref_release(&s->ref);
    free(s);
}

static void prepare(reg_op *op)
{
    stream *s = op->userdata;
    s->fresh = true;
    s->skip = 0;
    if (s->delivered) {
        mar_strv_push_take(&op->req.headers,
                           mar_xasprintf("Range: bytes=%llu-", (unsigned long long)s->delivered));
    }
}

/* "bytes <start>-<end>/<total>" -> start. */
static bool range_start(const char *v, uint64_t *ret)
{
    int64_t st;
    if (!v || !mar_str_startswith(v, "bytes ")) {
        return false;
    }
    char num[32];
    size_t l = strcspn(v + 6, "-");
    if (l == 0 || l >= sizeof(num)) {
        return false;
    }
    memcpy(num, v + 6, l);
    num[l] = '\0';
    if (!mar_parse_i64(num, 0, INT64_MAX, &st)) {
        return false;
    }
    *ret = (uint64_t)st;
    return true;
}

static int restart_from_zero(stream *s)
{
    if (!s->sink.reset || s->restarts++ >= 2) {
        return -1;
    }
    mar_err *e = NULL;
    if (s->sink.reset(s->sink.ud, &e) < 0) {
        s->err = e;
        return -1;
    }
    mar_hasher_reset(s->h);
    s->delivered = 0;
    return 0;
}

static int on_data(reg_http_req *req, const void *p, size_t n)
{
    reg_op *op = req->userdata;
    stream *s = op->userdata;
    if (s->fresh) {
        s->fresh = false;
        if (s->delivered) {
            uint64_t start;
            if (req->status == 206 && range_start(reg_http_header(req, "content-range"), &start) &&
                start == s->delivered) {
                /* resumed where we stopped */
            } else if (req->status == 200) {
                s->skip = s->delivered; /* the range was ignored: drop the prefix */
            } else {
                mar_err_set(&s->err, MAR_ENET, 0,
                            "registry answered a resumed download of %s "
                            "with a different range",
                            s->digest.str);
                return -1;
            }
        }
    }
    /* A sink that pauses gets the same bytes again later: nothing changes before it took them. */
    const char *c = p;
    size_t k = n < s->skip ? n : (size_t)s->skip;
    if (k == n) {
        s->skip -= k;
        return 0;
    }
    c += k;
    n -= k;
    if (n > s->size - s->delivered) {
        mar_err_set(&s->err, MAR_EINTEGRITY, 0,
                    "blob %s is longer than its descriptor size %llu, refusing", s->digest.str,
                    (unsigned long long)s->size);
        return -1;
    }
    mar_err *e = NULL;
    int rc = s->sink.write(s->sink.ud, c, n, &e);
    if (rc == REG_HTTP_PAUSE) {
        return REG_HTTP_PAUSE;
    }
    if (rc < 0) {
        s->err = e;
        return -1;
    }
    s->skip -= k;
    mar_hasher_update(s->h, c, n);
    s->delivered += n;
    return 0;
}

static void start(stream *s);

static void finish(stream *s, int rc, mar_err *err)
{
    if (rc == 0) {
        reg_blob b = {.digest = s->digest, .data = MAR_BUF_INIT(0)};
        s->cb(s->c, 0, &b, NULL, s->userdata);
    } else {
        s->cb(s->c, rc, NULL, err, s->userdata);
    }
    stream_free(s);
}

static void on_done(reg_op *op)
{
    stream *s = op->userdata;
    mar_err *err = NULL;
    int rc;
    s->op = NULL;
    if (s->err) {
        err = TAKE_PTR(s->err);
        rc = -mar_err_code(err);
        if (mar_err_code(err) == MAR_ENET && restart_from_zero(s) == 0) {
            mar_err_free(err);
            reg__op_free(op);
            start(s);
            return;
        }
        reg__op_free(op);
        finish(s, rc, err);
        return;
    }
    long st = op->req.status;
    if (op->rc < 0 || st < 200 || st >= 300) {
        rc = reg__op_status_error(op, "GET blob", &err);
        reg__op_free(op);
        finish(s, rc, err);
        return;
    }
    _cleanup_free_ char *u = reg__url_for_log(op->url);
    reg__op_free(op);
    if (s->delivered != s->size) {
        rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                         "'%s' gave %llu bytes but its descriptor says %llu, refusing", u,
                         (unsigned long long)s->delivered, (unsigned long long)s->size);
        finish(s, rc, err);
        return;
    }
    mar_digest got;
    mar_hasher_final(s->h, &got);
    if (!mar_digest_eq(&got, &s->digest)) {
        rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                         "digest mismatch for '%s': expected %s, got %s, refusing", u,
                         s->digest.str, got.str);
        finish(s, rc, err);
        return;
    }
    finish(s, 0, NULL);
}

static void start(stream *s)
{
    reg_host *host = reg__host_get(s->c, s->ref.api_host);
    _cleanup_free_ char *path = mar_xasprintf("/v2/%s/blobs/%s", s->ref.path, s->digest.str);
    reg_op *op = reg__op_new(s->c, host, s->ref.path, "GET", path, on_done, s);
    op->on_data = on_data;
    op->prepare = prepare;
    s->op = op;
    reg__op_start(op);
}

void reg__blob_stream_unpause(reg_stream *s)
{
    if (s->op) {
        s->c->ops->unpause(s->c->tctx, &s->op->req);
    }
}

void reg_blob_stream(reg_client *c, const oci_ref *ref, const oci_descriptor *d, uint64_t from,
                     mar_hasher *resume_hash, const reg_sink *sink, reg_blob_cb cb, void *userdata)
{
    reg__blob_stream_start(c, ref, d, from, resume_hash, sink, cb, userdata);
}

reg_stream *reg__blob_stream_start(reg_client *c, const oci_ref *ref, const oci_descriptor *d,
                                   uint64_t from, mar_hasher *resume_hash, const reg_sink *sink,
                                   reg_blob_cb cb, void *userdata)
{
    stream *s = mar_xcalloc(1, sizeof(*s));
    s->c = c;
    s->ref.domain = mar_xstrdup(ref->domain);
    s->ref.path = mar_xstrdup(ref->path);
    s->ref.api_host = mar_xstrdup(ref->api_host);
    s->digest = d->digest;
    s->size = d->size > 0 ? (uint64_t)d->size : 0;
    s->h = resume_hash ? resume_hash : mar_hasher_new(d->digest.alg);
    s->delivered = resume_hash ? from : 0;
    s->sink = *sink;
    s->cb = cb;
    s->userdata = userdata;
    if (s->delivered > s->size) {
        mar_err *err = NULL;
        int rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                             "partial download of %s is longer than "
                             "the blob, refusing",
                             d->digest.str);
        finish(s, rc, err);
        return NULL;
    }
    start(s);
    return s;
}
