/* Manifest and blob fetches with verification (docs/internals/registry-protocol.md §4, §10): tags
 * resolve with HEAD, content is fetched by digest, every byte is checked against the digest it was
 * requested by, and reads addressed by a descriptor stop at its size. */
#include "registry-internal.h"

#include <string.h>

typedef enum { F_MANIFEST_HEAD, F_MANIFEST_GET, F_BLOB } fetch_kind;

typedef struct fetch {
    reg_client *c;
    reg_host *host;
    char *repo;
    char *tag; /* manifest by tag */
    fetch_kind kind;
    bool has_digest;
    mar_digest digest;
    int64_t size; /* expected size, -1 when unknown */
    size_t cap;
    int integrity_retries;
    reg_blob_cb cb;
    void *userdata;
} fetch;

void reg_blob_release(reg_blob *b)
{
    free(b->content_type);
    b->content_type = NULL;
    mar_buf_release(&b->data);
}

static void fetch_free(fetch *f)
{
    free(f->repo);
    free(f->tag);
    free(f);
}

static void finish_err(fetch *f, int rc, mar_err *err)
{
    f->cb(f->c, rc, NULL, err, f->userdata);
    fetch_free(f);
}

static void finish_ok(fetch *f, reg_blob *b)
{
    f->cb(f->c, 0, b, NULL, f->userdata);
    reg_blob_release(b);
    fetch_free(f);
}

static void announce(reg_client *c, reg_host *h)
{
    if (h->notice_done) {
        return;
    }
    h->notice_done = true;
    if (h->insecure) {
        mar_diag_warn("registry '%s' is insecure (no TLS verification)", h->host);
    } else if (h->plain_http) {
        /* Expected for a local registry, so not worth a line on every run. */
        mar_debug("registry '%s' is on loopback: using plain HTTP", h->host);
    }
    (void)c;
}

static void start(fetch *f);

static void on_done(reg_op *op)
{
    fetch *f = op->userdata;
    mar_err *err = NULL;
    int rc;
    long st = op->req.status;
    const char *what = f->kind == F_BLOB ? "GET blob" : op->method;

    if (op->rc < 0 || st < 200 || st >= 300) {
        rc = reg__op_status_error(op, what, &err);
        reg__op_free(op);
        finish_err(f, rc, err);
        return;
    }
    _cleanup_free_ char *u = reg__url_for_log(op->url);
    const char *ctype = reg_http_header(&op->req, "content-type");

    if (f->kind != F_BLOB && oci_media_kind(ctype) == OCI_KIND_SCHEMA1) {
        rc = mar_err_set(&err, MAR_EUNSUPPORTED, 0,
                         "'%s' is a schema 1 manifest: schema 1 manifests are not supported, "
                         "refusing",
                         u);
        reg__op_free(op);
        finish_err(f, rc, err);
        return;
    }

    if (f->kind == F_MANIFEST_HEAD && strcmp(op->method, "HEAD") == 0) {
        /* Trust Docker-Content-Digest for resolution only with a Content-Length (containerd
         * resolver.go); otherwise GET by tag and hash the bytes. */
        const char *dcd = reg_http_header(&op->req, "docker-content-digest");
        const char *clen = reg_http_header(&op->req, "content-length");
        int64_t len = -1;
        if (dcd && clen && mar_digest_valid(dcd) && mar_parse_i64(clen, 0, INT64_MAX, &len)) {
            if (len > (int64_t)MAR_CAP_MANIFEST) {
                rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                                 "manifest '%s' of %lld bytes exceeds the limit of %u, refusing", u,
                                 (long long)len, MAR_CAP_MANIFEST);
                reg__op_free(op);
                finish_err(f, rc, err);
                return;
            }
            /* Valid (checked above): the parse does not fail, and has_digest follows it. */
            f->has_digest = mar_digest_parse(dcd, &f->digest, NULL) == 0;
            f->size = len;
        }
        f->kind = F_MANIFEST_GET;
        reg__op_free(op);
        start(f);
        return;
    }

    reg_blob b = {0};
    b.data = op->req.resp_body;
    op->req.resp_body = (mar_buf)MAR_BUF_INIT(0);
    b.content_type = ctype ? mar_xstrdup(ctype) : NULL;
    reg__op_free(op);

    if (f->size >= 0 && (int64_t)b.data.len != f->size) {
        rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                         "'%s' is %zu bytes but its descriptor says %lld, refusing", u, b.data.len,
                         (long long)f->size);
        goto integrity;
    }
    if (f->has_digest) {
        mar_digest got;
        mar_digest_of(f->digest.alg, b.data.data, b.data.len, &got);
        if (!mar_digest_eq(&got, &f->digest)) {
            rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                             "digest mismatch for '%s': expected %s, got %s, refusing", u,
                             f->digest.str, got.str);
            goto integrity;
        }
        b.digest = f->digest;
    } else {
        /* Fetched by tag without a usable digest header: the bytes define the digest. */
        mar_digest_of(MAR_DIGEST_SHA256, b.data.data, b.data.len, &b.digest);
    }
    finish_ok(f, &b);
    return;
integrity:
    reg_blob_release(&b);
    /* One fresh attempt from byte 0 (docs/internals/registry-protocol.md §9). */
    if (f->integrity_retries++ == 0) {
        mar_debug("%s, retrying once", err->msg);
        mar_err_free(err);
        f->c->stats.retries++;
        start(f);
        return;
    }
    finish_err(f, rc, err);
}

static void start(fetch *f)
{
    _cleanup_free_ char *path = NULL;
    const char *method = "GET";
    if (f->kind == F_BLOB) {
        path = mar_xasprintf("/v2/%s/blobs/%s", f->repo, f->digest.str);
    } else if (f->kind == F_MANIFEST_HEAD) {
        path = mar_xasprintf("/v2/%s/manifests/%s", f->repo, f->tag);
        method = "HEAD";
    } else {
        path = mar_xasprintf("/v2/%s/manifests/%s", f->repo,
                             f->has_digest ? f->digest.str : f->tag);
    }
    reg_op *op = reg__op_new(f->c, f->host, f->repo, method, path, on_done, f);
    if (f->kind == F_BLOB) {
        op->body_cap = f->cap;
    } else {
        op->accept = mar_xstrdup(OCI_MANIFEST_ACCEPT);
        op->manifest_head = f->kind == F_MANIFEST_HEAD;
        op->body_cap = f->size >= 0 && (uint64_t)f->size < MAR_CAP_MANIFEST ? (size_t)f->size
                                                                            : MAR_CAP_MANIFEST;
    }
    reg__op_start(op);
}

static fetch *fetch_new(reg_client *c, const oci_ref *ref, reg_blob_cb cb, void *userdata)
{
    fetch *f = mar_xcalloc(1, sizeof(*f));
    f->c = c;
    f->host = reg__host_get(c, ref->api_host);
    f->repo = mar_xstrdup(ref->path);
    f->size = -1;
    f->cb = cb;
    f->userdata = userdata;
    announce(c, f->host);
    return f;
}

void reg_manifest_fetch(reg_client *c, const oci_ref *ref, reg_blob_cb cb, void *userdata)
{
    fetch *f = fetch_new(c, ref, cb, userdata);
    if (ref->has_digest) {
        f->kind = F_MANIFEST_GET;
        f->has_digest = true;
        f->digest = ref->digest;
    } else {
        f->kind = F_MANIFEST_HEAD;
        f->tag = mar_xstrdup(ref->tag);
    }
    start(f);
}

typedef struct shared_ctx {
    char *key;
    reg_blob_cb cb;
    void *userdata;
} shared_ctx;

static void shared_cb(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    shared_ctx *x = ud;
    reg__shared_done(c, x->key, rc, blob, err);
    x->cb(c, rc, blob, err, x->userdata);
    free(x->key);
    free(x);
}

/* Joins an identical fetch (same registry, repository, digest, size and cap) or returns a
 * context through which this one's answer is shared. The repository is part of the key: a blob
 * one repository holds proves nothing about another, and a check must see the other's 404. */
static shared_ctx *share(reg_client *c, const oci_ref *ref, const char *kind,
                         const oci_descriptor *d, size_t cap, reg_blob_cb cb, void *userdata)
{
    char *key = mar_xasprintf("%s %s/%s %s %lld %zu", kind, ref->api_host, ref->path, d->digest.str,
                              (long long)d->size, cap);
    if (reg__shared_join(c, key, cb, userdata)) {
        free(key);
        return NULL;
    }
    shared_ctx *x = mar_xcalloc(1, sizeof(*x));
    x->key = key;
    x->cb = cb;
    x->userdata = userdata;
    return x;
}

void reg_manifest_fetch_desc(reg_client *c, const oci_ref *ref, const oci_descriptor *d,
                             reg_blob_cb cb, void *userdata)
{
    shared_ctx *x = share(c, ref, "manifest", d, MAR_CAP_MANIFEST, cb, userdata);
    if (!x) {
        return;
    }
    fetch *f = fetch_new(c, ref, shared_cb, x);
    f->kind = F_MANIFEST_GET;
    f->has_digest = true;
    f->digest = d->digest;
    if (d->size < 0 || (uint64_t)d->size > MAR_CAP_MANIFEST) {
        mar_err *err = NULL;
        int rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                             "manifest %s of %lld bytes exceeds the limit of %u, refusing",
                             d->digest.str, (long long)d->size, MAR_CAP_MANIFEST);
        finish_err(f, rc, err);
        return;
    }
    f->size = d->size;
    start(f);
}

void reg_blob_fetch(reg_client *c, const oci_ref *ref, const oci_descriptor *d, size_t cap,
                    reg_blob_cb cb, void *userdata)
{
    shared_ctx *x = share(c, ref, "blob", d, cap, cb, userdata);
    if (!x) {
        return;
    }
    fetch *f = fetch_new(c, ref, shared_cb, x);
    f->kind = F_BLOB;
    f->has_digest = true;
    f->digest = d->digest;
    f->size = d->size;
    if (d->size < 0 || (uint64_t)d->size > cap) {
        mar_err *err = NULL;
        int rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                             "blob %s of %lld bytes exceeds the limit of %zu, refusing",
                             d->digest.str, (long long)d->size, cap);
        finish_err(f, rc, err);
        return;
    }
    f->cap = (size_t)d->size;
    start(f);
}
