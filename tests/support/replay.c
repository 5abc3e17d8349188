/* Replay transport for registry unit tests. */
#include "replay.h"
#include "tbuf.h"

#include <fcntl.h>
#include <string.h>

typedef struct block {
    char *method;
    char *url;
    bool prefix;
    mar_strv has;
    mar_strv lacks;
    mar_strv body_has;
    char *body_is;    /* "FILE" or "FILE START-END": the request body must be exactly those bytes */
    int64_t body_len; /* -1: not checked */
    long status;
    int result;
    size_t fail_after; /* deliver this many body bytes, then fail with result */
    mar_strv headers;
    mar_buf body;
    bool used;
} block;

/* A request on its way through: its body is read (a producer may pause it), then it is answered
 * (a sink may pause the answer). */
typedef struct pending {
    reg_http_req *req;
    mar_buf sent;
    bool body_done;
    block *b;
    size_t delivered;
    bool answering;
    bool paused;
    bool started;
} pending;

struct replay {
    char *dir;
    block *b;
    size_t n;
    pending **queue;
    size_t nq, aq;
    pending **parked;
    size_t nparked;
    size_t requests;
    size_t violations;
    uint64_t max_delay;
    mar_buf report;
    mar_buf transcript;
};

static char *expand(const replay *r, const char *s)
{
    mar_buf out = MAR_BUF_INIT(1 << 20);
    while (*s) {
        const char *open = strstr(s, "{{");
        if (!open) {
            T_BUF(mar_buf_puts(&out, s));
            break;
        }
        T_BUF(mar_buf_append(&out, s, (size_t)(open - s)));
        const char *close = strstr(open, "}}");
        if (!close) {
            T_BUF(mar_buf_puts(&out, open));
            break;
        }
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(close - open - 2), open + 2);
        char *colon = strchr(key, ':');
        if (colon) {
            *colon = '\0';
            _cleanup_free_ char *path = mar_xasprintf("%s/%s", r->dir, colon + 1);
            mar_buf f = MAR_BUF_INIT(64u << 20);
            mar_err *e = NULL;
            if (mar_read_file_at(AT_FDCWD, path, 64u << 20, &f, &e) < 0) {
                fprintf(stderr, "replay: %s\n", e->msg);
                mar_err_free(e);
            } else if (strcmp(key, "digest") == 0) {
                mar_digest d;
                mar_digest_of(MAR_DIGEST_SHA256, f.data, f.len, &d);
                T_BUF(mar_buf_puts(&out, d.str));
            } else if (strcmp(key, "size") == 0) {
                T_BUF(mar_buf_printf(&out, "%zu", f.len));
            }
            mar_buf_release(&f);
        }
        s = close + 2;
    }
    return mar_buf_detach(&out, NULL);
}

replay *replay_load(const char *dir)
{
    _cleanup_free_ char *path = mar_xasprintf("%s/exchanges", dir);
    mar_buf text = MAR_BUF_INIT(1 << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, path, 1 << 20, &text, &e) < 0) {
        fprintf(stderr, "replay: %s\n", e->msg);
        mar_err_free(e);
        return NULL;
    }
    replay *r = mar_xcalloc(1, sizeof(*r));
    r->dir = mar_xstrdup(dir);
    mar_buf_init(&r->report, 1 << 20);
    mar_buf_init(&r->transcript, 16 << 20);
    block *cur = NULL;
    for (char *line = text.data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        _cleanup_free_ char *l = expand(r, line);
        line = nl ? nl + 1 : NULL;
        if (l[0] == '#' || l[0] == '\0') {
            continue;
        }
        if (strcmp(l, "---") == 0) {
            cur = NULL;
            continue;
        }
        if (!cur) {
            r->b = mar_xrealloc(r->b, (r->n + 1) * sizeof(*r->b));
            cur = &r->b[r->n++];
            memset(cur, 0, sizeof(*cur));
            cur->body_len = -1;
            mar_buf_init(&cur->body, 64u << 20);
        }
        const char *v = l + 2;
        if (l[0] == '>') {
            if (mar_str_startswith(v, "has: ")) {
                mar_strv_push(&cur->has, v + 5);
            } else if (mar_str_startswith(v, "lacks: ")) {
                mar_strv_push(&cur->lacks, v + 7);
            } else if (mar_str_startswith(v, "body-has: ")) {
                mar_strv_push(&cur->body_has, v + 10);
            } else if (mar_str_startswith(v, "body-is: ")) {
                cur->body_is = mar_xstrdup(v + 9);
            } else if (mar_str_startswith(v, "body-len: ")) {
                mar_parse_i64(v + 10, 0, INT64_MAX, &cur->body_len);
            } else {
                const char *sp = strchr(v, ' ');
                cur->method = mar_xstrndup(v, (size_t)(sp - v));
                cur->url = mar_xstrdup(sp + 1);
                size_t ul = strlen(cur->url);
                if (ul && cur->url[ul - 1] == '*') {
                    cur->url[ul - 1] = '\0';
                    cur->prefix = true;
                }
            }
        } else if (l[0] == '<') {
            if (mar_str_startswith(v, "!recv-after ")) {
                int64_t k = 0;
                mar_parse_i64(v + 12, 0, INT64_MAX, &k);
                cur->fail_after = (size_t)k;
            } else if (cur->status == 0 && cur->result == 0 && v[0] == '!') {
                cur->result = strcmp(v, "!connect") == 0 ? REG_HTTP_ECONNECT
                              : strcmp(v, "!tls") == 0   ? REG_HTTP_ETLS
                                                         : REG_HTTP_ERECV;
            } else if (cur->status == 0 && cur->result == 0) {
                int64_t st = 0;
                mar_parse_i64(v, 100, 599, &st);
                cur->status = (long)st;
            } else if (mar_str_startswith(v, "@body ")) {
                _cleanup_free_ char *bp = mar_xasprintf("%s/%s", dir, v + 6);
                if (mar_read_file_at(AT_FDCWD, bp, 64u << 20, &cur->body, &e) < 0) {
                    fprintf(stderr, "replay: %s\n", e->msg);
                    e = mar_err_free(e);
                }
            } else if (mar_str_startswith(v, "body ")) {
                T_BUF(mar_buf_puts(&cur->body, v + 5));
            } else {
                mar_strv_push(&cur->headers, v);
            }
        }
    }
    mar_buf_release(&text);
    return r;
}

void replay_free(replay *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        free(r->b[i].method);
        free(r->b[i].url);
        mar_strv_release(&r->b[i].has);
        mar_strv_release(&r->b[i].lacks);
        mar_strv_release(&r->b[i].body_has);
        free(r->b[i].body_is);
        mar_strv_release(&r->b[i].headers);
        mar_buf_release(&r->b[i].body);
    }
    free(r->b);
    for (size_t i = 0; i < r->nq; i++) {
        mar_buf_release(&r->queue[i]->sent);
        free(r->queue[i]);
    }
    for (size_t i = 0; i < r->nparked; i++) {
        mar_buf_release(&r->parked[i]->sent);
        free(r->parked[i]);
    }
    free(r->queue);
    free(r->parked);
    free(r->dir);
    mar_buf_release(&r->report);
    mar_buf_release(&r->transcript);
    free(r);
}

static void enqueue(replay *r, pending *p)
{
    if (r->nq == r->aq) {
        r->aq = r->aq ? r->aq * 2 : 16;
        r->queue = mar_xrealloc(r->queue, r->aq * sizeof(*r->queue));
    }
    r->queue[r->nq++] = p;
}

static int submit(void *ctx, reg_http_req *req, mar_err **err)
{
    (void)err;
    replay *r = ctx;
    pending *p = mar_xcalloc(1, sizeof(*p));
    p->req = req;
    mar_buf_init(&p->sent, 256u << 20);
    enqueue(r, p);
    uint64_t now = mar_now_ms();
    if (req->not_before_ms > now && req->not_before_ms - now > r->max_delay) {
        r->max_delay = req->not_before_ms - now;
    }
    return 0;
}

static block *match(replay *r, reg_http_req *req)
{
    for (size_t i = 0; i < r->n; i++) {
        block *b = &r->b[i];
        if (b->used || strcmp(b->method, req->method) != 0) {
            continue;
        }
        if (b->prefix ? mar_str_startswith(req->url, b->url) : strcmp(b->url, req->url) == 0) {
            return b;
        }
    }
    return NULL;
}

/* "FILE" or "FILE START-END" (inclusive) of the case directory. */
static bool body_matches(const replay *r, const char *spec, const mar_buf *got, char *why, size_t n)
{
    char file[256];
    int64_t start = -1, end = -1;
    const char *sp = strchr(spec, ' ');
    snprintf(file, sizeof(file), "%.*s", sp ? (int)(sp - spec) : (int)strlen(spec), spec);
    if (sp) {
        char a[32], b[32];
        const char *dash = strchr(sp + 1, '-');
        if (!dash) {
            snprintf(why, n, "bad body-is range '%s'", spec);
            return false;
        }
        snprintf(a, sizeof(a), "%.*s", (int)(dash - sp - 1), sp + 1);
        snprintf(b, sizeof(b), "%s", dash + 1);
        mar_parse_i64(a, 0, INT64_MAX, &start);
        mar_parse_i64(b, 0, INT64_MAX, &end);
    }
    _cleanup_free_ char *path = mar_xasprintf("%s/%s", r->dir, file);
    mar_buf f = MAR_BUF_INIT(64u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, path, 64u << 20, &f, &e) < 0) {
        snprintf(why, n, "%s", e->msg);
        mar_err_free(e);
        return false;
    }
    size_t off = start >= 0 ? (size_t)start : 0;
    size_t len = start >= 0 ? (size_t)(end - start + 1) : f.len;
    bool ok = off + len <= f.len && got->len == len && memcmp(got->data, f.data + off, len) == 0;
    if (!ok) {
        snprintf(why, n, "body of %zu bytes is not %s", got->len, spec);
    }
    mar_buf_release(&f);
    return ok;
}

static void check_rules(replay *r, const block *b, const reg_http_req *req, const mar_buf *sent)
{
    for (size_t k = 0; k < b->has.n; k++) {
        bool found = false;
        for (size_t h = 0; h < req->headers.n; h++) {
            found = found || strstr(req->headers.v[h], b->has.v[k]);
        }
        if (!found) {
            T_BUF(mar_buf_printf(&r->report, "%s %s: no header with '%s'\n", req->method, req->url,
                                 b->has.v[k]));
            r->violations++;
        }
    }
    for (size_t k = 0; k < b->lacks.n; k++) {
        for (size_t h = 0; h < req->headers.n; h++) {
            if (mar_str_startswith(req->headers.v[h], b->lacks.v[k])) {
                T_BUF(mar_buf_printf(&r->report, "%s %s: must not send '%s'\n", req->method,
                                     req->url, b->lacks.v[k]));
                r->violations++;
            }
        }
    }
    for (size_t k = 0; k < b->body_has.n; k++) {
        if (!strstr(sent->data, b->body_has.v[k])) {
            T_BUF(mar_buf_printf(&r->report, "%s %s: body lacks '%s'\n", req->method, req->url,
                                 b->body_has.v[k]));
            r->violations++;
        }
    }
    if (b->body_len >= 0 && (int64_t)sent->len != b->body_len) {
        T_BUF(mar_buf_printf(&r->report, "%s %s: body of %zu bytes, want %lld\n", req->method,
                             req->url, sent->len, (long long)b->body_len));
        r->violations++;
    }
    char why[512];
    if (b->body_is && !body_matches(r, b->body_is, sent, why, sizeof(why))) {
        T_BUF(mar_buf_printf(&r->report, "%s %s: %s\n", req->method, req->url, why));
        r->violations++;
    }
}

static void park(replay *r, pending *p)
{
    p->paused = true;
    r->parked = mar_xrealloc(r->parked, (r->nparked + 1) * sizeof(*r->parked));
    r->parked[r->nparked++] = p;
}

static void finish(pending *p)
{
    reg_http_req *req = p->req;
    mar_buf_release(&p->sent);
    free(p);
    req->done(req);
}

/* Reads the request body through reg_http_body_next, as a transport sends it. Returns false
 * when the producer paused (the request is parked) or aborted (answered). */
static bool read_body(replay *r, pending *p)
{
    reg_http_req *req = p->req;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = reg_http_body_next(req, buf, sizeof(buf));
        if (n == 0) {
            p->body_done = true;
            return true;
        }
        if (n == REG_BODY_PAUSE) {
            park(r, p);
            return false;
        }
        if (n < 0) {
            if (req->result == REG_HTTP_OK) {
                req->result = REG_HTTP_EABORT;
            }
            finish(p);
            return false;
        }
        if (mar_buf_append(&p->sent, buf, (size_t)n) < 0) {
            T_BUF(mar_buf_printf(&r->report, "%s %s: request body over 256 MiB\n", req->method,
                                 req->url));
            r->violations++;
            req->result = REG_HTTP_EABORT;
            finish(p);
            return false;
        }
    }
}

/* Returns false when the request was answered already (and p is gone). */
static bool begin(replay *r, pending *p)
{
    reg_http_req *req = p->req;
    r->requests++;
    T_BUF(mar_buf_printf(&r->transcript, "%s %s\n", req->method, req->url));
    for (size_t h = 0; h < req->headers.n; h++) {
        T_BUF(mar_buf_printf(&r->transcript, "  %s\n", req->headers.v[h]));
    }
    if (req->body_kind == REG_BODY_MEMORY && strcmp(req->method, "POST") == 0) {
        T_BUF(mar_buf_printf(&r->transcript, "  body: %.*s\n", (int)p->sent.len, p->sent.data));
    } else if (p->sent.len) {
        T_BUF(mar_buf_printf(&r->transcript, "  body: %zu bytes\n", p->sent.len));
    }
    block *b = match(r, req);
    mar_buf_init(&req->resp_body, req->body_cap);
    if (!b) {
        T_BUF(mar_buf_printf(&r->report, "unexpected request %s %s\n", req->method, req->url));
        r->violations++;
        req->result = REG_HTTP_ECONNECT;
        snprintf(req->errmsg, sizeof(req->errmsg), "replay: no exchange for this request");
        finish(p);
        return false;
    }
    b->used = true;
    p->b = b;
    check_rules(r, b, req, &p->sent);
    if (b->result) {
        req->result = b->result;
        snprintf(req->errmsg, sizeof(req->errmsg), "replayed transport failure");
        finish(p);
        return false;
    }
    req->status = b->status;
    for (size_t h = 0; h < b->headers.n; h++) {
        const char *line = b->headers.v[h];
        const char *colon = strchr(line, ':');
        if (!colon) {
            continue;
        }
        req->resp_headers =
                mar_xrealloc(req->resp_headers, (req->n_resp_headers + 1) * sizeof(reg_header));
        reg_header *rh = &req->resp_headers[req->n_resp_headers++];
        rh->name = mar_xstrndup(line, (size_t)(colon - line));
        for (char *q = rh->name; *q; q++) {
            if (*q >= 'A' && *q <= 'Z') {
                *q = (char)(*q - 'A' + 'a');
            }
        }
        const char *v = colon + 1;
        while (*v == ' ') {
            v++;
        }
        rh->value = mar_xstrdup(v);
    }
    p->answering = true;
    return true;
}

/* Hands the answer's body over: to a streaming sink in pieces of 16 KiB (which may pause it),
 * or into the buffer. */
static void answer(replay *r, pending *p)
{
    reg_http_req *req = p->req;
    block *b = p->b;
    (void)r;
    if (strcmp(req->method, "HEAD") != 0 && b->body.len) {
        size_t deliver = b->fail_after ? b->fail_after : b->body.len;
        if (req->on_data && req->status >= 200 && req->status < 300) {
            while (p->delivered < deliver) {
                size_t k = deliver - p->delivered < 16384 ? deliver - p->delivered : 16384;
                int rc = req->on_data(req, b->body.data + p->delivered, k);
                if (rc == REG_HTTP_PAUSE) {
                    park(r, p);
                    return;
                }
                if (rc < 0) {
                    req->result = REG_HTTP_EABORT;
                    finish(p);
                    return;
                }
                p->delivered += k;
                req->resp_bytes = p->delivered;
            }
            if (b->fail_after) {
                req->result = REG_HTTP_ERECV;
                snprintf(req->errmsg, sizeof(req->errmsg), "replayed connection reset");
            }
        } else {
            req->resp_bytes = deliver;
            size_t cap = req->on_data ? MAR_CAP_ERROR_BODY : req->body_cap;
            req->resp_body.cap = cap;
            if (mar_buf_append(&req->resp_body, b->body.data, b->body.len) < 0) {
                req->result = REG_HTTP_ETOOBIG;
                snprintf(req->errmsg, sizeof(req->errmsg), "response body exceeds %zu bytes", cap);
            }
        }
    }
    finish(p);
}

static void step(replay *r, pending *p)
{
    if (!p->body_done && !read_body(r, p)) {
        return;
    }
    if (!p->answering && !begin(r, p)) {
        return;
    }
    answer(r, p);
}

static int run(void *ctx, mar_err **err)
{
    (void)err;
    replay *r = ctx;
    for (;;) {
        while (r->nq) {
            pending *p = r->queue[0];
            memmove(r->queue, r->queue + 1, (r->nq - 1) * sizeof(*r->queue));
            r->nq--;
            if (!p->started) {
                p->started = true;
                reg_http_req_reset_response(p->req);
                p->req->body_pos = 0;
            }
            step(r, p);
        }
        if (!r->nparked) {
            return 0;
        }
        /* Everything left waits for an unpause nobody will send. */
        pending **stuck = r->parked;
        size_t ns = r->nparked;
        r->parked = NULL;
        r->nparked = 0;
        for (size_t i = 0; i < ns; i++) {
            pending *p = stuck[i];
            T_BUF(mar_buf_printf(&r->report, "%s %s: paused forever\n", p->req->method,
                                 p->req->url));
            r->violations++;
            p->req->result = REG_HTTP_ECONNECT;
            snprintf(p->req->errmsg, sizeof(p->req->errmsg), "replay: paused forever");
            finish(p);
        }
        free(stuck);
    }
}

static void unpause(void *ctx, reg_http_req *req)
{
    replay *r = ctx;
    for (size_t i = 0; i < r->nparked; i++) {
        if (r->parked[i]->req == req) {
            pending *p = r->parked[i];
            memmove(r->parked + i, r->parked + i + 1, (r->nparked - i - 1) * sizeof(*r->parked));
            r->nparked--;
            p->paused = false;
            enqueue(r, p);
            return;
        }
    }
}

static void destroy(void *ctx)
{
    (void)ctx; /* owned by the test */
}

static const reg_http_ops ops = {
        .submit = submit, .run = run, .destroy = destroy, .unpause = unpause};

const reg_http_ops *replay_ops(void)
{
    return &ops;
}

size_t replay_unused(const replay *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        n += !r->b[i].used;
    }
    return n;
}

size_t replay_violations(const replay *r)
{
    return r->violations;
}

const char *replay_report(const replay *r)
{
    return r->report.data;
}

size_t replay_requests(const replay *r)
{
    return r->requests;
}

uint64_t replay_max_delay_ms(const replay *r)
{
    return r->max_delay;
}

const char *replay_transcript(const replay *r)
{
    return r->transcript.data;
}
