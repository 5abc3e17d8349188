/* One blob into one repository (docs/internals/registry-protocol.md §14; distribution-spec
 * "Pushing blobs", "Mounting a blob from another repository"):
 *
 *   HEAD /v2/<name>/blobs/<digest>                    200: the registry has it, nothing to send
 *   POST /v2/<name>/blobs/uploads/?mount=&from=       201: mounted; 202: an upload session
 *   POST /v2/<name>/blobs/uploads/                    202 + Location (+ OCI-Chunk-Min-Length)
 *   PUT  <location>?digest=<d>  (the whole blob)      monolithic, for blobs up to monolithic_max
 *   PATCH <location>  Content-Range: <a>-<b>          202 + Range: 0-<b>, chunk after chunk
 *   GET  <location>                                   204 + Range: where a broken upload stands
 *   PUT  <location>?digest=<d>  (no body)             201 + Docker-Content-Digest: the end
 *
 * The Location of every answer replaces the previous one: it may be relative, absolute, or on
 * another host, and carries state some registries need (distribution's _state). Credentials go
 * only to the registry's own origin. The bytes are hashed as they are read for sending; a source
 * that does not hash to its digest is stopped before its last byte leaves, so the registry never
 * holds a complete wrong blob. A dropped PATCH is continued from the range the registry reports,
 * not from what mar thinks it sent. */
#include "push-internal.h"

#include <string.h>

#include <curl/curl.h>

typedef struct upload {
    reg_upload_params p;
    uint64_t size;
    char *location;     /* the upload URL, absolute: the latest the registry handed out */
    uint64_t acked;     /* bytes the registry holds */
    uint64_t req_start; /* the body of the request in flight covers [req_start, +req_len) */
    uint64_t req_len;
    uint64_t min_chunk; /* OCI-Chunk-Min-Length */
    mar_hasher *h;
    uint64_t hashed; /* the hash covers bytes [0, hashed) */
    uint64_t body_bytes;
    uint64_t resumed_from;
    int failures; /* in a row, without progress */
    int restarts; /* new sessions */
    bool monolithic;
    bool final_retried;
    reg_op *op;   /* the request in flight */
    mar_err *err; /* why a body read stopped */
} upload;

#define MAX_RESTARTS 2

static void step(upload *u);
static void restart(upload *u, mar_err *why);

char *reg__push_scope(const char *repo, const char *from)
{
    if (from && strcmp(from, repo) != 0) {
        return mar_xasprintf("repository:%s:pull,push repository:%s:pull", repo, from);
    }
    return mar_xasprintf("repository:%s:pull,push", repo);
}

char *reg__resolve_location(reg_client *c, const char *base, const char *location, mar_err **err)
{
    CURLU *u = curl_url();
    char *full = NULL;
    if (!location || !*location || !u || curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        return mar_err_set(err, MAR_ENET, 0, "registry answered without a usable upload Location"),
               NULL;
    }
    curl_url_cleanup(u);
    char *url = mar_xstrdup(full);
    curl_free(full);
    /* The rules of redirects (docs/internals/registry-protocol.md §7): https, or plain HTTP from
     * plain HTTP to a host already allowed it; never a downgrade. */
    bool from_https = mar_str_startswith(base, "https://");
    _cleanup_free_ char *hp = reg__url_hostport(url);
    bool ok = mar_str_startswith(url, "https://") ||
              (mar_str_startswith(url, "http://") && !from_https && hp &&
               (reg_host_is_loopback(hp) || reg__host_insecure_listed(c, hp)));
    if (!ok) {
        _cleanup_free_ char *lu = reg__url_for_log(url);
        free(url);
        return mar_err_set(err, MAR_ENET, 0, "upload location '%s' is not https, refusing", lu),
               NULL;
    }
    return url;
}

/* "0-<end>" or "bytes=0-<end>": the registry holds end + 1 bytes. "0-0" is what distribution
 * says for an empty upload as well as for one byte; mar reads it as empty (a resume then sends
 * that byte again, and a registry that kept it refuses the digest: the session starts over). */
static bool range_held(const char *v, uint64_t *ret)
{
    int64_t end;
    if (!v) {
        return false;
    }
    if (mar_str_startswith(v, "bytes=")) {
        v += 6;
    }
    if (!mar_str_startswith(v, "0-") || !mar_parse_i64(v + 2, 0, INT64_MAX, &end)) {
        return false;
    }
    *ret = end == 0 ? 0 : (uint64_t)end + 1;
    return true;
}

static void emit(upload *u, reg_push_state st, uint64_t sent, bool resumed, bool restarted)
{
    if (u->p.progress) {
        u->p.progress(u->p.ud, st, sent, u->resumed_from, resumed, restarted);
    }
}

static void upload_free(upload *u)
{
    mar_hasher_free(u->h);
    mar_err_free(u->err);
    free(u->location);
    free(u);
}

/* A session left behind is released (the spec asks clients to cancel what they abandon); the
 * answer does not matter. */
static void cancel_done(reg_op *op)
{
    reg__op_free(op);
}

static void cancel_session(upload *u)
{
    if (!u->location) {
        return;
    }
    reg_op *op =
            reg__op_new_url(u->p.c, u->p.host, u->p.repo, "DELETE", u->location, cancel_done, NULL);
    op->scope = mar_xstrdup(u->p.scope);
    op->own_retries = true;
    reg__op_start(op);
    free(u->location);
    u->location = NULL;
}

static void finish(upload *u, int rc, reg_push_state final, mar_err *err)
{
    if (rc < 0) {
        cancel_session(u);
        emit(u, REG_PUSH_FAILED, u->acked, false, false);
    }
    u->p.done(u->p.ud, rc, final, u->body_bytes, err);
    upload_free(u);
}

static void fail_op(upload *u, reg_op *op, const char *what)
{
    mar_err *err = NULL;
    int rc;
    if (u->err) {
        err = TAKE_PTR(u->err);
        rc = -mar_err_code(err);
    } else {
        rc = reg__op_status_error(op, what, &err);
    }
    u->op = NULL;
    reg__op_free(op);
    finish(u, rc, REG_PUSH_FAILED, err);
}

/* A 201 ends the upload: its Docker-Content-Digest, when given, must be the blob's. */
static void created(upload *u, reg_op *op, reg_push_state final)
{
    const char *dcd = reg_http_header(&op->req, "docker-content-digest");
    /* The session is closed either way: nothing to cancel. */
    free(u->location);
    u->location = NULL;
    if (dcd && strcmp(dcd, u->p.desc->digest.str) != 0) {
        mar_err *err = NULL;
        int rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                             "registry '%s' took blob %s as %.80s, refusing", u->p.host->host,
                             u->p.desc->digest.str, dcd);
        u->op = NULL;
        reg__op_free(op);
        finish(u, rc, REG_PUSH_FAILED, err);
        return;
    }
    u->op = NULL;
    reg__op_free(op);
    u->acked = u->size;
    emit(u, final, u->size, false, false);
    finish(u, 0, final, NULL);
}

static uint64_t backoff_ms(const reg_client *c, int n)
{
    uint64_t d = c->opts.backoff_base_ms;
    for (int i = 0; i < n && d < c->opts.backoff_cap_ms; i++) {
        d *= 2;
    }
    d = d > c->opts.backoff_cap_ms ? c->opts.backoff_cap_ms : d;
    return mar_random_below(d + 1);
}

static reg_op *new_op(upload *u, const char *method, const char *url_or_path, bool absolute,
                      reg_op_done_fn done)
{
    reg_op *op =
            absolute ? reg__op_new_url(u->p.c, u->p.host, u->p.repo, method, url_or_path, done, u)
                     : reg__op_new(u->p.c, u->p.host, u->p.repo, method, url_or_path, done, u);
    op->scope = mar_xstrdup(u->p.scope);
    u->op = op;
    return op;
}

/* ---- body ----------------------------------------------------------------------------------- */

static void wake(void *ud)
{
    upload *u = ud;
    if (u->op) {
        u->p.c->ops->unpause(u->p.c->tctx, &u->op->req);
    }
}

static ssize_t read_body(reg_http_req *req, void *buf, size_t n)
{
    reg_op *op = req->userdata;
    upload *u = op->userdata;
    uint64_t off = u->req_start + req->body_pos;
    mar_err *e = NULL;
    if (off > u->hashed) {
        mar_err_free(u->err);
        mar_err_set(&u->err, MAR_ENET, 0, "upload of %s would skip bytes it never sent",
                    u->p.desc->digest.str);
        return REG_BODY_ABORT;
    }
    ssize_t r = reg__source_read(u->p.src, off, buf, n, &e);
    if (r == REG_BODY_PAUSE) {
        return r;
    }
    if (r < 0) {
        mar_err_free(u->err);
        u->err = e;
        return REG_BODY_ABORT;
    }
    if (off + (uint64_t)r > u->hashed) {
        /* Bytes sent again after a resume were hashed the first time. */
        uint64_t skip = u->hashed - off;
        mar_hasher_update(u->h, (const char *)buf + skip, (size_t)r - skip);
        u->hashed = off + (uint64_t)r;
        if (u->hashed == u->size) {
            mar_digest got;
            mar_hasher_final(u->h, &got);
            if (!mar_digest_eq(&got, &u->p.desc->digest)) {
                /* Its last bytes never leave: the registry cannot complete a wrong blob. */
                mar_err_free(u->err);
                mar_err_set(&u->err, MAR_EINTEGRITY, 0,
                            "blob %s is %s, not what its descriptor says, refusing",
                            u->p.desc->digest.str, got.str);
                return REG_BODY_ABORT;
            }
        }
    }
    u->body_bytes += (uint64_t)r;
    emit(u, REG_PUSH_UPLOADING, off + (uint64_t)r, false, false);
    return r;
}

static void prepare_body(reg_op *op)
{
    upload *u = op->userdata;
    reg_http_req *req = &op->req;
    if (u->req_len && strcmp(op->method, "PATCH") == 0) {
        mar_strv_push_take(&req->headers,
                           mar_xasprintf("Content-Range: %llu-%llu",
                                         (unsigned long long)u->req_start,
                                         (unsigned long long)(u->req_start + u->req_len - 1)));
    }
    if (u->req_len) {
        mar_strv_push(&req->headers, "Content-Type: application/octet-stream");
        req->body_kind = REG_BODY_READER;
        req->body_read = read_body;
        req->body_len = (size_t)u->req_len;
    }
    mar_strv_push_take(&req->headers,
                       mar_xasprintf("Content-Length: %llu", (unsigned long long)u->req_len));
}

/* ---- steps ---------------------------------------------------------------------------------- */

static void on_head(reg_op *op)
{
    upload *u = op->userdata;
    long st = op->req.status;
    if (op->rc == 0 && st == 200) {
        const char *cl = reg_http_header(&op->req, "content-length");
        int64_t len;
        if (!cl || (mar_parse_i64(cl, 0, INT64_MAX, &len) && (uint64_t)len == u->size)) {
            u->op = NULL;
            reg__op_free(op);
            u->acked = u->size;
            emit(u, REG_PUSH_PRESENT, u->size, false, false);
            finish(u, 0, REG_PUSH_PRESENT, NULL);
            return;
        }
        /* A blob of that digest but another size: send it again and let the registry decide. */
    } else if (op->rc < 0 || st != 404) {
        fail_op(u, op, "HEAD blob");
        return;
    }
    u->op = NULL;
    reg__op_free(op);
    step(u);
}

static void on_post(reg_op *op)
{
    upload *u = op->userdata;
    long st = op->req.status;
    bool mount = strstr(op->url, "?mount=") != NULL;
    if (op->rc == 0 && st == 201 && mount) {
        created(u, op, REG_PUSH_MOUNTED);
        return;
    }
    if (op->rc < 0 || st != 202) {
        fail_op(u, op, mount ? "mounting blob" : "POST upload");
        return;
    }
    mar_err *err = NULL;
    char *loc = reg__resolve_location(u->p.c, op->url, reg_http_header(&op->req, "location"), &err);
    if (!loc) {
        u->op = NULL;
        reg__op_free(op);
        finish(u, -mar_err_code(err), REG_PUSH_FAILED, err);
        return;
    }
    free(u->location);
    u->location = loc;
    int64_t min;
    const char *mv = reg_http_header(&op->req, "oci-chunk-min-length");
    u->min_chunk = mv && mar_parse_i64(mv, 1, INT64_MAX, &min) ? (uint64_t)min : 0;
    if (mount) {
        mar_debug("'%s' did not mount %s: uploading it", u->p.host->host, u->p.desc->digest.str);
    }
    u->op = NULL;
    reg__op_free(op);
    u->acked = 0;
    uint64_t chunk = u->p.chunk_size > u->min_chunk ? u->p.chunk_size : u->min_chunk;
    u->monolithic = u->size <= u->p.monolithic_max || u->size <= chunk;
    reg__source_fit_chunk(u->p.src, chunk);
    step(u);
}

/* Appends digest=<d> to the upload URL, keeping the query the registry put there. */
static char *digest_url(const upload *u)
{
    return mar_xasprintf("%s%sdigest=%s", u->location, strchr(u->location, '?') ? "&" : "?",
                         u->p.desc->digest.str);
}

/* Takes a new Location from an answer, if it has one. */
static bool take_location(upload *u, reg_op *op, mar_err **err)
{
    const char *loc = reg_http_header(&op->req, "location");
    if (!loc) {
        return true;
    }
    char *next = reg__resolve_location(u->p.c, op->url, loc, err);
    if (!next) {
        return false;
    }
    free(u->location);
    u->location = next;
    return true;
}

static void on_status(reg_op *op);

/* Where did a broken upload stop? GET the session; its Range says. */
static void ask_status(upload *u)
{
    reg_op *op = new_op(u, "GET", u->location, true, on_status);
    op->req.not_before_ms = mar_now_ms() + backoff_ms(u->p.c, u->failures - 1);
    reg__op_start(op);
}

/* A failure of a data request (transport or 5xx): the registry may hold part of it. */
static void data_failed(upload *u, reg_op *op, const char *what)
{
    if (u->err || ++u->failures >= u->p.c->opts.max_attempts) {
        fail_op(u, op, what);
        return;
    }
    u->p.c->stats.retries++;
    if (mar_diag_debug_enabled()) {
        mar_debug("%s of %s broke (%s), asking the registry where it stands", what,
                  u->p.desc->digest.str, op->rc < 0 && op->err ? op->err->msg : "server error");
    }
    u->op = NULL;
    reg__op_free(op);
    if (u->monolithic) {
        restart(u, NULL);
        return;
    }
    ask_status(u);
}

/* A transport failure (even after a status line: an answer cut short) or a server error. */
static bool retryable(const reg_op *op)
{
    long st = op->req.status;
    if (op->rc < 0) {
        return mar_err_code(op->err) == MAR_ENET;
    }
    return st == 500 || st == 502 || st == 503 || st == 504 || st == 408;
}

/* A session the registry no longer knows (404 BLOB_UPLOAD_UNKNOWN) or refuses (400
 * BLOB_UPLOAD_INVALID): the spec says to start over. */
static bool session_lost(const reg_op *op)
{
    long st = op->req.status;
    if (op->rc < 0 && st == 0) {
        return false;
    }
    if (st == 404) {
        return true;
    }
    return st == 400 && op->req.resp_body.len &&
           strstr(op->req.resp_body.data, "BLOB_UPLOAD_") != NULL;
}

static void resume_at(upload *u, uint64_t held)
{
    if (held > u->hashed) {
        /* The registry claims bytes mar never read: trust nothing of this session. */
        restart(u, NULL);
        return;
    }
    if (held < u->acked) {
        mar_debug("registry holds %llu bytes of %s, fewer than it acknowledged",
                  (unsigned long long)held, u->p.desc->digest.str);
    }
    if (!reg__source_rewind(u->p.src, held)) {
        restart(u, NULL);
        return;
    }
    if (held > u->acked) {
        u->failures = 0;
    }
    u->acked = held;
    u->resumed_from = held;
    emit(u, REG_PUSH_UPLOADING, held, true, false);
    step(u);
}

static void on_status(reg_op *op)
{
    upload *u = op->userdata;
    long st = op->req.status;
    uint64_t held = 0;
    mar_err *err = NULL;
    if (op->rc == 0 && (st == 204 || st == 200) &&
        range_held(reg_http_header(&op->req, "range"), &held) && held <= u->hashed &&
        held <= u->size) {
        if (!take_location(u, op, &err)) {
            u->op = NULL;
            reg__op_free(op);
            finish(u, -mar_err_code(err), REG_PUSH_FAILED, err);
            return;
        }
        u->op = NULL;
        reg__op_free(op);
        resume_at(u, held);
        return;
    }
    if (op->rc == 0 && (session_lost(op) || st == 204 || st == 200)) {
        /* Gone, or an answer without a usable range: start over in a new session. */
        u->op = NULL;
        reg__op_free(op);
        restart(u, NULL);
        return;
    }
    fail_op(u, op, "GET upload status");
}

static void on_patch(reg_op *op)
{
    upload *u = op->userdata;
    long st = op->req.status;
    mar_err *err = NULL;
    if (op->rc == 0 && (st == 202 || st == 416)) {
        uint64_t held = u->req_start + u->req_len;
        bool has_range = range_held(reg_http_header(&op->req, "range"), &held);
        if (!take_location(u, op, &err)) {
            u->op = NULL;
            reg__op_free(op);
            finish(u, -mar_err_code(err), REG_PUSH_FAILED, err);
            return;
        }
        if (held > u->req_start + u->req_len || held > u->size) {
            u->op = NULL;
            reg__op_free(op);
            int rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                                 "registry '%s' says it holds %llu bytes of %s, more than mar sent",
                                 u->p.host->host, (unsigned long long)held, u->p.desc->digest.str);
            finish(u, rc, REG_PUSH_FAILED, err);
            return;
        }
        u->op = NULL;
        reg__op_free(op);
        if (st == 416) {
            /* Out of order for the registry: continue where it says, or ask it. */
            if (++u->failures >= u->p.c->opts.max_attempts) {
                int rc = mar_err_set(&err, MAR_ENET, 0,
                                     "registry '%s' keeps refusing the chunks of %s (416)",
                                     u->p.host->host, u->p.desc->digest.str);
                finish(u, rc, REG_PUSH_FAILED, err);
            } else if (has_range) {
                resume_at(u, held);
            } else {
                ask_status(u);
            }
            return;
        }
        if (held < u->req_start + u->req_len) {
            resume_at(u, held);
            return;
        }
        u->failures = 0;
        u->acked = held;
        reg__source_ack(u->p.src, held);
        step(u);
        return;
    }
    if (retryable(op)) {
        data_failed(u, op, "PATCH");
        return;
    }
    if (session_lost(op) && !u->err) {
        u->op = NULL;
        reg__op_free(op);
        restart(u, NULL);
        return;
    }
    fail_op(u, op, "PATCH");
}

static void on_head_after(reg_op *op);

static void on_put(reg_op *op)
{
    upload *u = op->userdata;
    long st = op->req.status;
    if (op->rc == 0 && st == 201) {
        created(u, op, REG_PUSH_PUSHED);
        return;
    }
    if (u->monolithic && retryable(op)) {
        data_failed(u, op, "PUT");
        return;
    }
    if (!u->monolithic && st == 404 && u->final_retried) {
        /* An earlier attempt may have completed the blob and lost only its answer. */
        u->op = NULL;
        reg__op_free(op);
        _cleanup_free_ char *path =
                mar_xasprintf("/v2/%s/blobs/%s", u->p.repo, u->p.desc->digest.str);
        reg__op_start(new_op(u, "HEAD", path, false, on_head_after));
        return;
    }
    if (u->monolithic && session_lost(op) && !u->err) {
        u->op = NULL;
        reg__op_free(op);
        restart(u, NULL);
        return;
    }
    if (op->rc == 0 && st == 400 && !u->err && op->req.resp_body.len &&
        strstr(op->req.resp_body.data, "DIGEST_INVALID")) {
        mar_err *err = NULL;
        reg__op_status_error(op, "PUT", &err);
        mar_err_wrap(&err, "registry '%s' computed another digest for %s", u->p.host->host,
                     u->p.desc->digest.str);
        err->code = MAR_EINTEGRITY;
        u->op = NULL;
        reg__op_free(op);
        finish(u, -MAR_EINTEGRITY, REG_PUSH_FAILED, err);
        return;
    }
    fail_op(u, op, "PUT");
}

static void on_head_after(reg_op *op)
{
    upload *u = op->userdata;
    if (op->rc == 0 && op->req.status == 200) {
        u->op = NULL;
        reg__op_free(op);
        u->acked = u->size;
        emit(u, REG_PUSH_PUSHED, u->size, false, false);
        finish(u, 0, REG_PUSH_PUSHED, NULL);
        return;
    }
    fail_op(u, op, "PUT");
}

static void final_prepare(reg_op *op)
{
    upload *u = op->userdata;
    if (op->attempts > 0 || op->redirects > 0) {
        u->final_retried = true;
    }
    prepare_body(op);
}

/* The next request of the upload, from the state it is in. */
static void step(upload *u)
{
    reg_op *op;
    if (!u->location) {
        _cleanup_free_ char *path = NULL;
        if (u->p.mount_from && u->restarts == 0 && strcmp(u->p.mount_from, u->p.repo) != 0) {
            _cleanup_free_ char *from = mar_xstrdup(u->p.mount_from);
            path = mar_xasprintf("/v2/%s/blobs/uploads/?mount=%s&from=%s", u->p.repo,
                                 u->p.desc->digest.str, from);
            emit(u, REG_PUSH_MOUNTING, 0, false, false);
        } else {
            path = mar_xasprintf("/v2/%s/blobs/uploads/", u->p.repo);
        }
        u->req_start = u->req_len = 0;
        op = new_op(u, "POST", path, false, on_post);
        op->prepare = prepare_body;
        if (u->failures) {
            op->req.not_before_ms = mar_now_ms() + backoff_ms(u->p.c, u->failures - 1);
        }
        reg__op_start(op);
        return;
    }
    emit(u, REG_PUSH_UPLOADING, u->acked, false, false);
    if (u->monolithic) {
        u->req_start = 0;
        u->req_len = u->size;
        _cleanup_free_ char *url = digest_url(u);
        op = new_op(u, "PUT", url, true, on_put);
        op->prepare = prepare_body;
        op->own_retries = true;
    } else if (u->acked < u->size) {
        uint64_t chunk = u->p.chunk_size > u->min_chunk ? u->p.chunk_size : u->min_chunk;
        u->req_start = u->acked;
        u->req_len = u->size - u->acked < chunk ? u->size - u->acked : chunk;
        op = new_op(u, "PATCH", u->location, true, on_patch);
        op->prepare = prepare_body;
        op->own_retries = true;
    } else {
        u->req_start = u->size;
        u->req_len = 0;
        _cleanup_free_ char *url = digest_url(u);
        op = new_op(u, "PUT", url, true, on_put);
        op->prepare = final_prepare;
    }
    reg__op_start(op);
}

static void restart(upload *u, mar_err *why)
{
    mar_err_free(why);
    if (++u->restarts > MAX_RESTARTS || !reg__source_rewind(u->p.src, 0)) {
        mar_err *err = NULL;
        int rc = mar_err_set(&err, MAR_ENET, 0, "upload of %s to '%s' broke %d times, giving up",
                             u->p.desc->digest.str, u->p.host->host, u->restarts);
        finish(u, rc, REG_PUSH_FAILED, err);
        return;
    }
    mar_debug("starting the upload of %s over in a new session", u->p.desc->digest.str);
    cancel_session(u);
    u->acked = 0;
    u->resumed_from = 0;
    emit(u, REG_PUSH_UPLOADING, 0, false, true);
    step(u);
}

void reg__upload_start(const reg_upload_params *prm)
{
    upload *u = mar_xcalloc(1, sizeof(*u));
    u->p = *prm;
    u->size = prm->desc->size > 0 ? (uint64_t)prm->desc->size : 0;
    u->h = mar_hasher_new(prm->desc->digest.alg);
    if (u->size == 0) {
        /* Nothing to read, so nothing is hashed while sending: check the digest now. */
        mar_digest got;
        mar_digest_of(prm->desc->digest.alg, "", 0, &got);
        if (!mar_digest_eq(&got, &prm->desc->digest)) {
            mar_err *err = NULL;
            int rc = mar_err_set(&err, MAR_EINTEGRITY, 0,
                                 "blob %s has no bytes but another digest, refusing",
                                 prm->desc->digest.str);
            finish(u, rc, REG_PUSH_FAILED, err);
            return;
        }
    }
    reg__source_on_wake(u->p.src, wake, u);
    if (u->p.mount_from && strcmp(u->p.mount_from, u->p.repo) != 0) {
        /* A mount answers for a blob already there too (201): the HEAD would only cost a round
         * trip (docs/internals/registry-protocol.md §15). */
        step(u);
        return;
    }
    emit(u, REG_PUSH_CHECKING, 0, false, false);
    _cleanup_free_ char *path = mar_xasprintf("/v2/%s/blobs/%s", u->p.repo, u->p.desc->digest.str);
    reg__op_start(new_op(u, "HEAD", path, false, on_head));
}
