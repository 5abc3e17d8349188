/* The production transport: libcurl's multi interface. One multi handle for the whole run, so
 * connections are reused and HTTP/2 is multiplexed where the server offers it; requests are
 * single exchanges (no redirect following, no auth: the client decides both). */
#include "registry-internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static void curl_easy_cleanupp(CURL **h)
{
    if (*h) {
        curl_easy_cleanup(*h);
    }
}
#define _cleanup_curl_ _cleanup_(curl_easy_cleanupp)

typedef struct xfer {
    reg_http_req *req;
    CURL *easy;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    size_t header_bytes;
    bool streaming; /* the final status is 2xx and the body goes to on_data */
    bool status_seen;
    bool unpause; /* asked to resume: done between two curl_multi_perform calls */
    struct xfer *next;
} xfer;

typedef struct curl_ctx {
    reg_curl_options o;
    CURLM *multi;
    xfer *active;
    xfer *delayed; /* not_before in the future */
    size_t n_active;
    bool unpause_pending;
} curl_ctx;

static bool global_done;

static void xfer_free(xfer *x)
{
    if (x->easy) {
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    free(x);
}

static void add_header(reg_http_req *req, const char *name, size_t nl, const char *value, size_t vl)
{
    req->resp_headers =
            mar_xrealloc(req->resp_headers, (req->n_resp_headers + 1) * sizeof(reg_header));
    reg_header *h = &req->resp_headers[req->n_resp_headers++];
    h->name = mar_xstrndup(name, nl);
    for (char *p = h->name; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    h->value = mar_xstrndup(value, vl);
}

static void clear_headers(reg_http_req *req)
{
    for (size_t i = 0; i < req->n_resp_headers; i++) {
        free(req->resp_headers[i].name);
        free(req->resp_headers[i].value);
    }
    free(req->resp_headers);
    req->resp_headers = NULL;
    req->n_resp_headers = 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t n = size * nitems;
    x->header_bytes += n;
    if (x->header_bytes > MAR_CAP_HEADERS) {
        x->req->result = REG_HTTP_ETOOBIG;
        snprintf(x->req->errmsg, sizeof(x->req->errmsg), "response headers exceed %u bytes",
                 MAR_CAP_HEADERS);
        return 0;
    }
    if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue): start over. */
        clear_headers(x->req);
        x->status_seen = true;
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon) {
        return n;
    }
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    const char *end = buf + n;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
        end--;
    }
    if (nl == strlen("www-authenticate") && (size_t)(end - v) > MAR_CAP_AUTH_HEADER) {
        x->req->result = REG_HTTP_ETOOBIG;
        snprintf(x->req->errmsg, sizeof(x->req->errmsg), "WWW-Authenticate exceeds %u bytes",
                 MAR_CAP_AUTH_HEADER);
        return 0;
    }
    add_header(x->req, buf, nl, v, (size_t)(end - v));
    return n;
}

static size_t on_body(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    reg_http_req *req = x->req;
    size_t n = size * nitems;
    if (req->resp_bytes == 0 && !x->streaming) {
        long status = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        req->status = status;
        x->streaming = req->on_data && status >= 200 && status < 300;
    }
    if (x->streaming) {
        int rc = req->on_data(req, buf, n);
        if (rc == REG_HTTP_PAUSE) {
            /* libcurl keeps these bytes and offers them again after the unpause. */
            return CURL_WRITEFUNC_PAUSE;
        }
        if (rc < 0) {
            req->result = REG_HTTP_EABORT;
            return 0;
        }
        req->resp_bytes += n;
        return n;
    }
    req->resp_bytes += n;
    size_t cap = req->on_data ? MAR_CAP_ERROR_BODY : req->body_cap;
    if (req->resp_body.cap != cap) {
        req->resp_body.cap = cap;
    }
    if (mar_buf_append(&req->resp_body, buf, n) < 0) {
        req->result = REG_HTTP_ETOOBIG;
        snprintf(req->errmsg, sizeof(req->errmsg), "response body exceeds %zu bytes", cap);
        return 0;
    }
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    ssize_t n = reg_http_body_next(x->req, buf, size * nitems);
    if (n == REG_BODY_PAUSE) {
        return CURL_READFUNC_PAUSE;
    }
    if (n < 0) {
        if (x->req->result == REG_HTTP_OK) {
            x->req->result = REG_HTTP_EABORT;
        }
        return CURL_READFUNC_ABORT;
    }
    return (size_t)n;
}

/* Adds the registry's extra CA certificates (certs.d) to the default trust store, so both the
 * system CAs and the per-registry ones verify (docs/internals/registry-protocol.md §8). */
static CURLcode on_ssl_ctx(CURL *easy, void *sslctx, void *ud)
{
    (void)easy;
    const char *pem = ud;
    X509_STORE *store = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio || !store) {
        BIO_free(bio);
        return CURLE_SSL_CERTPROBLEM;
    }
    STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!infos) {
        return CURLE_SSL_CERTPROBLEM;
    }
    for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *inf = sk_X509_INFO_value(infos, i);
        if (inf->x509) {
            X509_STORE_add_cert(store, inf->x509);
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    return CURLE_OK;
}

MAR_MUST_USE static int start_xfer(curl_ctx *ctx, xfer *x, mar_err **err)
{
    reg_http_req *req = x->req;
    _cleanup_curl_ CURL *h = curl_easy_init();
    if (!h) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot create a curl handle");
    }
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    /* Redirects are followed by the client, which decides where credentials go
     * (docs/internals/registry-protocol.md §7). */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     ctx->o.connect_timeout_ms ? ctx->o.connect_timeout_ms : 30000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT,
                     ctx->o.low_speed_limit ? ctx->o.low_speed_limit : 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                     ctx->o.low_speed_time ? ctx->o.low_speed_time : 30L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, req->verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, req->verify_tls ? 2L : 0L);
    if (req->ca_blob) {
        curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, req->ca_blob);
    }
    if (req->client_cert && req->client_key) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, req->client_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, req->client_key);
    }
    req->body_pos = 0;
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "POST") == 0 && req->body_kind == REG_BODY_MEMORY) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
               strcmp(req->method, "PATCH") == 0) {
        /* Every body, empty ones included, streams through on_read, so the bytes come from
         * memory, an fd range or a producer alike, with an exact Content-Length. */
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(req->body_kind == REG_BODY_NONE ? 0 : req->body_len));
        if (strcmp(req->method, "PUT") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        }
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
    for (size_t i = 0; i < req->headers.n; i++) {
        struct curl_slist *l = curl_slist_append(x->headers, req->headers.v[i]);
        if (!l) {
            return mar_err_set(err, MAR_EFAIL, 0, "cannot build request headers");
        }
        x->headers = l;
    }
    /* No "Expect: 100-continue": token POSTs are small, and uploads carry a token already (the
     * bodiless POST that opens an upload collects the challenge). */
    x->headers = curl_slist_append(x->headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    mar_buf_init(&req->resp_body, req->body_cap);
    if (curl_multi_add_handle(ctx->multi, h) != CURLM_OK) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot queue a transfer");
    }
    x->easy = TAKE_PTR(h);
    x->next = ctx->active;
    ctx->active = x;
    ctx->n_active++;
    return 0;
}

MAR_MUST_USE static int ctx_submit(void *vctx, reg_http_req *req, mar_err **err)
{
    curl_ctx *ctx = vctx;
    (void)err;
    xfer *x = mar_xcalloc(1, sizeof(*x));
    x->req = req;
    reg_http_req_reset_response(req);
    /* Everything starts from run(), so done() is never called from inside submit(). */
    x->next = ctx->delayed;
    ctx->delayed = x;
    return 0;
}

static int map_result(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return REG_HTTP_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return REG_HTTP_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return REG_HTTP_ETIMEOUT;
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return REG_HTTP_ERECV;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return REG_HTTP_ETLS;
    case CURLE_WRITE_ERROR:
        return REG_HTTP_EABORT;
    default:
        return REG_HTTP_EOTHER;
    }
}

static bool header_overflow(const xfer *x, CURLcode rc)
{
#if LIBCURL_VERSION_NUM >= 0x080600
    if (rc == CURLE_TOO_LARGE) {
        return true;
    }
#endif
    return rc == CURLE_OUT_OF_MEMORY && !x->streaming && x->req->resp_bytes == 0;
}

static void finish(curl_ctx *ctx, CURL *easy, CURLcode rc)
{
    xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    for (xfer **pp = &ctx->active; *pp; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    }
    ctx->n_active--;
    curl_multi_remove_handle(ctx->multi, easy);
    reg_http_req *req = x->req;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &req->status);
    long ver = 0;
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &ver);
    req->http_version = ver == CURL_HTTP_VERSION_2_0 ? 2 : ver == CURL_HTTP_VERSION_3 ? 3 : 1;
    if (req->result == REG_HTTP_OK && header_overflow(x, rc)) {
        /* curl refuses a header line longer than its own limit (100 KiB) before on_header sees
         * it, and says "out of memory": such a line is over MAR_CAP_HEADERS too. */
        req->result = REG_HTTP_ETOOBIG;
        snprintf(req->errmsg, sizeof(req->errmsg), "response headers exceed %u bytes",
                 MAR_CAP_HEADERS);
    } else if (req->result == REG_HTTP_OK) {
        req->result = map_result(rc);
        if (req->result != REG_HTTP_OK) {
            snprintf(req->errmsg, sizeof(req->errmsg), "%s",
                     x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        }
    }
    xfer_free(x);
    req->done(req);
}

MAR_MUST_USE static int ctx_run(void *vctx, mar_err **err)
{
    curl_ctx *ctx = vctx;
    for (;;) {
        /* Start what is due. */
        uint64_t now = mar_now_ms();
        uint64_t next_due = 0;
        for (xfer **pp = &ctx->delayed; *pp;) {
            xfer *x = *pp;
            if (x->req->not_before_ms <= now) {
                *pp = x->next;
                x->next = NULL;
                if (start_xfer(ctx, x, err) < 0) {
                    xfer_free(x);
                    return -MAR_EFAIL;
                }
                continue;
            }
            if (!next_due || x->req->not_before_ms < next_due) {
                next_due = x->req->not_before_ms;
            }
            pp = &x->next;
        }
        if (ctx->n_active == 0 && !ctx->delayed) {
            return 0;
        }
        if (ctx->unpause_pending) {
            /* Outside every callback: libcurl does not want a transfer unpaused from inside
             * another transfer's callback. */
            ctx->unpause_pending = false;
            for (xfer *x = ctx->active; x; x = x->next) {
                if (x->unpause) {
                    x->unpause = false;
                    curl_easy_pause(x->easy, CURLPAUSE_CONT);
                }
            }
        }
        int running = 0;
        CURLMcode mc = curl_multi_perform(ctx->multi, &running);
        if (mc != CURLM_OK) {
            return mar_err_set(err, MAR_EFAIL, 0, "transfer loop failed: %s",
                               curl_multi_strerror(mc));
        }
        CURLMsg *msg;
        int left;
        bool finished = false;
        while ((msg = curl_multi_info_read(ctx->multi, &left))) {
            if (msg->msg == CURLMSG_DONE) {
                finish(ctx, msg->easy_handle, msg->data.result);
                finished = true;
            }
        }
        if (finished || ctx->unpause_pending) {
            /* A callback of this perform may have asked for an unpause: waiting for socket
             * activity first could wait the whole timeout, when the paused transfer is what the
             * others wait for (a copy's download and upload hold each other). */
            continue;
        }
        int wait_ms = 1000;
        if (next_due) {
            now = mar_now_ms();
            uint64_t d = next_due > now ? next_due - now : 0;
            wait_ms = d < 1000 ? (int)d : 1000;
        }
        if (ctx->n_active == 0) {
            if (wait_ms > 0) {
                poll(NULL, 0, wait_ms);
            }
            continue;
        }
        mc = curl_multi_poll(ctx->multi, NULL, 0, wait_ms, NULL);
        if (mc != CURLM_OK) {
            return mar_err_set(err, MAR_EFAIL, 0, "transfer loop failed: %s",
                               curl_multi_strerror(mc));
        }
    }
}

static void ctx_unpause(void *vctx, reg_http_req *req)
{
    curl_ctx *ctx = vctx;
    for (xfer *x = ctx->active; x; x = x->next) {
        if (x->req == req) {
            x->unpause = true;
            ctx->unpause_pending = true;
        }
    }
}

static void ctx_destroy(void *vctx)
{
    curl_ctx *ctx = vctx;
    if (!ctx) {
        return;
    }
    while (ctx->active) {
        xfer *x = ctx->active;
        ctx->active = x->next;
        curl_multi_remove_handle(ctx->multi, x->easy);
        xfer_free(x);
    }
    while (ctx->delayed) {
        xfer *x = ctx->delayed;
        ctx->delayed = x->next;
        xfer_free(x);
    }
    curl_multi_cleanup(ctx->multi);
    free(ctx);
}

static const reg_http_ops curl_ops = {
        .submit = ctx_submit,
        .run = ctx_run,
        .destroy = ctx_destroy,
        .unpause = ctx_unpause,
};

int reg_curl_transport_new(const reg_curl_options *o, const reg_http_ops **ret_ops, void **ret_ctx,
                           mar_err **err)
{
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return mar_err_set(err, MAR_EFAIL, 0, "cannot initialize libcurl");
        }
        global_done = true;
    }
    curl_ctx *ctx = mar_xcalloc(1, sizeof(*ctx));
    if (o) {
        ctx->o = *o;
    }
    ctx->multi = curl_multi_init();
    if (!ctx->multi) {
        free(ctx);
        return mar_err_set(err, MAR_EFAIL, 0, "cannot create a curl multi handle");
    }
    curl_multi_setopt(ctx->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(ctx->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)(ctx->o.max_host_connections ? ctx->o.max_host_connections : 8));
    *ret_ops = &curl_ops;
    *ret_ctx = ctx;
    return 0;
}

const char *reg_http_header(const reg_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_resp_headers; i++) {
        if (strcmp(req->resp_headers[i].name, name) == 0) {
            return req->resp_headers[i].value;
        }
    }
    return NULL;
}

ssize_t reg_http_body_next(reg_http_req *req, void *buf, size_t n)
{
    uint64_t left = req->body_len > req->body_pos ? req->body_len - req->body_pos : 0;
    if (n > left) {
        n = (size_t)left;
    }
    switch (req->body_kind) {
    case REG_BODY_NONE:
        return 0;
    case REG_BODY_MEMORY:
        memcpy(buf, req->body + req->body_pos, n);
        req->body_pos += n;
        return (ssize_t)n;
    case REG_BODY_FD: {
        if (n == 0) {
            return 0;
        }
        ssize_t r;
        do {
            r = pread(req->body_fd, buf, n, (off_t)(req->body_off + req->body_pos));
        } while (r < 0 && errno == EINTR);
        if (r <= 0) {
            snprintf(req->errmsg, sizeof(req->errmsg), "cannot read the request body: %s",
                     r < 0 ? strerror(errno) : "the file ends early");
            req->result = REG_HTTP_EABORT;
            return REG_BODY_ABORT;
        }
        req->body_pos += (uint64_t)r;
        return r;
    }
    case REG_BODY_READER: {
        if (n == 0) {
            return 0;
        }
        ssize_t r = req->body_read(req, buf, n);
        if (r > 0) {
            req->body_pos += (uint64_t)r;
        } else if (r == 0) {
            snprintf(req->errmsg, sizeof(req->errmsg), "the request body ended early");
            req->result = REG_HTTP_EABORT;
            return REG_BODY_ABORT;
        } else if (r == REG_BODY_ABORT && req->result == REG_HTTP_OK) {
            req->result = REG_HTTP_EABORT;
        }
        return r;
    }
    }
    return REG_BODY_ABORT;
}

void reg_http_req_reset_response(reg_http_req *req)
{
    clear_headers(req);
    mar_buf_release(&req->resp_body);
    req->result = REG_HTTP_OK;
    req->errmsg[0] = '\0';
    req->status = 0;
    req->resp_bytes = 0;
}

void reg_http_req_release(reg_http_req *req)
{
    reg_http_req_reset_response(req);
    free(req->url);
    req->url = NULL;
    for (size_t i = 0; i < req->headers.n; i++) {
        /* Header lines may carry credentials. */
        mar_memzero(req->headers.v[i], strlen(req->headers.v[i]));
    }
    mar_strv_release(&req->headers);
}
