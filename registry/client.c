/* The client core: operations wrap single HTTP exchanges with auth, redirects, retries and
 * backoff (docs/internals/registry-protocol.md §7, §9). */
#include "registry-internal.h"

#include <string.h>

#include <curl/curl.h>

static void push_list(mar_strv *sv, const char *env)
{
    if (!env || !*env) {
        return;
    }
    _cleanup_free_ char *copy = mar_xstrdup(env);
    for (char *p = copy; p && *p;) {
        char *comma = strchr(p, ',');
        if (comma) {
            *comma = '\0';
        }
        while (*p == ' ') {
            p++;
        }
        if (*p) {
            mar_strv_push(sv, p);
        }
        p = comma ? comma + 1 : NULL;
    }
}

void reg_options_init(reg_options *o)
{
    memset(o, 0, sizeof(*o));
    o->max_attempts = 5;
    o->backoff_base_ms = 500;
    o->backoff_cap_ms = 30000;
    o->retry_after_max_ms = 60000;
    o->user_agent = "mar/" MAR_VERSION;
    push_list(&o->insecure, getenv("MAR_INSECURE_REGISTRIES"));
    push_list(&o->tls, getenv("MAR_TLS_REGISTRIES"));
    const char *env;
    /* A tuning knob for tests and slow links; documented in docs/mar.1.md. */
    int64_t v;
    env = getenv("MAR_RETRY_BASE_MS");
    if (env && mar_parse_i64(env, 1, 60000, &v)) {
        o->backoff_base_ms = (uint64_t)v;
    }
}

void reg_options_release(reg_options *o)
{
    mar_strv_release(&o->insecure);
    mar_strv_release(&o->tls);
}

reg_client *reg_client_new(const reg_options *o, const reg_http_ops *ops, void *ctx)
{
    reg_client *c = mar_xcalloc(1, sizeof(*c));
    c->opts = *o;
    c->opts.insecure = (mar_strv)MAR_STRV_INIT;
    c->opts.tls = (mar_strv)MAR_STRV_INIT;
    for (size_t i = 0; i < o->insecure.n; i++) {
        mar_strv_push(&c->opts.insecure, o->insecure.v[i]);
    }
    for (size_t i = 0; i < o->tls.n; i++) {
        mar_strv_push(&c->opts.tls, o->tls.v[i]);
    }
    if (!c->opts.max_attempts) {
        c->opts.max_attempts = 5;
    }
    if (!c->opts.backoff_base_ms) {
        c->opts.backoff_base_ms = 500;
    }
    if (!c->opts.backoff_cap_ms) {
        c->opts.backoff_cap_ms = 30000;
    }
    if (!c->opts.retry_after_max_ms) {
        c->opts.retry_after_max_ms = 60000;
    }
    if (!c->opts.user_agent) {
        c->opts.user_agent = "mar/" MAR_VERSION;
    }
    c->ops = ops;
    c->tctx = ctx;
    return c;
}

reg_client *reg_client_free(reg_client *c)
{
    if (!c) {
        return NULL;
    }
    if (c->ops && c->ops->destroy) {
        c->ops->destroy(c->tctx);
    }
    reg__shared_free(c);
    while (c->hosts) {
        reg_host *h = c->hosts;
        c->hosts = h->next;
        free(h->host);
        free(h->ca_pem);
        free(h->client_cert);
        free(h->client_key);
        free(h->parked);
        free(h->realm);
        free(h->service);
        reg__creds_release(&h->creds);
        free(h);
    }
    while (c->tokens) {
        reg_token *t = c->tokens;
        c->tokens = t->next;
        free(t->key);
        mar_secret_free(t->token);
        free(t);
    }
    while (c->fetches) {
        reg_token_fetch *f = c->fetches;
        c->fetches = f->next;
        free(f->key);
        free(f->waiters);
        free(f);
    }
    json_decref(c->docker_config);
    free(c->docker_config_path);
    mar_strv_release(&c->opts.insecure);
    mar_strv_release(&c->opts.tls);
    free(c);
    return NULL;
}

int reg_client_run(reg_client *c, mar_err **err)
{
    return c->ops->run(c->tctx, err);
}

void reg_client_stats(const reg_client *c, reg_stats *ret)
{
    *ret = c->stats;
}

char *reg__url_for_log(const char *url)
{
    const char *q = strchr(url, '?');
    return q ? mar_xasprintf("%.*s?…", (int)(q - url), url) : mar_xstrdup(url);
}

static void op_http_done(reg_http_req *req);

reg_op *reg__op_new(reg_client *c, reg_host *host, const char *repo, const char *method,
                    const char *path, reg_op_done_fn done, void *userdata)
{
    reg_op *op = mar_xcalloc(1, sizeof(*op));
    op->c = c;
    op->host = host;
    op->repo = repo ? mar_xstrdup(repo) : NULL;
    op->method = method;
    if (host) {
        op->origin = mar_xasprintf("%s://%s", host->plain_http ? "http" : "https", host->host);
        op->url = mar_xasprintf("%s%s", op->origin, path);
    } else {
        op->url = mar_xstrdup(path);
        op->origin = reg__url_origin(path);
    }
    op->done = done;
    op->userdata = userdata;
    op->body_cap = MAR_CAP_ERROR_BODY;
    op->req.userdata = op;
    op->req.done = op_http_done;
    return op;
}

reg_op *reg__op_new_url(reg_client *c, reg_host *host, const char *repo, const char *method,
                        const char *url, reg_op_done_fn done, void *userdata)
{
    reg_op *op = reg__op_new(c, host, repo, method, "", done, userdata);
    free(op->url);
    op->url = mar_xstrdup(url);
    return op;
}

reg_op *reg__op_free(reg_op *op)
{
    if (!op) {
        return NULL;
    }
    reg_http_req_release(&op->req);
    free(op->repo);
    free(op->url);
    free(op->origin);
    free(op->accept);
    free(op->token_key);
    free(op->scope);
    mar_secret_free(op->post_body);
    mar_err_free(op->err);
    free(op);
    return NULL;
}

bool reg__op_fail(reg_op *op, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mar_xvasprintf(fmt, ap);
    va_end(ap);
    mar_err_free(op->err);
    op->err = NULL;
    op->rc = mar_err_set(&op->err, code, 0, "%s", msg);
    return false;
}

void reg__op_start(reg_op *op)
{
    reg_client *c = op->c;
    reg_http_req *req = &op->req;

    /* The registry origin may have switched to plain HTTP (insecure fallback). */
    if (op->host && op->redirects == 0) {
        _cleanup_free_ char *origin =
                mar_xasprintf("%s://%s", op->host->plain_http ? "http" : "https", op->host->host);
        if (strcmp(origin, op->origin) != 0 && mar_str_startswith(op->url, op->origin)) {
            const char *path = op->url + strlen(op->origin);
            char *url = mar_xasprintf("%s%s", origin, path);
            free(op->url);
            op->url = url;
            free(op->origin);
            op->origin = TAKE_PTR(origin);
        }
    }

    if (reg__host_scheme_park(op)) {
        return;
    }

    free(req->url);
    req->url = mar_xstrdup(op->url);
    for (size_t i = 0; i < req->headers.n; i++) {
        mar_memzero(req->headers.v[i], strlen(req->headers.v[i]));
    }
    mar_strv_release(&req->headers);
    mar_strv_push_take(&req->headers, mar_xasprintf("User-Agent: %s", c->opts.user_agent));
    if (op->accept) {
        mar_strv_push_take(&req->headers, mar_xasprintf("Accept: %s", op->accept));
    }
    req->body_kind = REG_BODY_NONE;
    req->body = NULL;
    req->body_len = 0;
    req->body_read = NULL;
    if (op->post_body) {
        mar_strv_push(&req->headers, "Content-Type: application/x-www-form-urlencoded");
        req->body_kind = REG_BODY_MEMORY;
        req->body = op->post_body;
        req->body_len = strlen(op->post_body);
    }
    req->method = op->method;
    req->body_cap = op->body_cap;
    req->on_data = op->on_data;
    if (op->prepare) {
        op->prepare(op);
    }

    _cleanup_free_ char *hp = reg__url_hostport(op->url);
    reg_host *target = hp ? reg__host_get(c, hp) : NULL;
    req->verify_tls = !(target && target->insecure);
    if (target && !target->plain_http) {
        reg__host_load_certs(c, target);
        req->ca_blob = target->ca_pem;
        req->client_cert = target->client_cert;
        req->client_key = target->client_key;
    } else {
        req->ca_blob = NULL;
        req->client_cert = req->client_key = NULL;
    }
    if (op->is_token) {
        reg__auth_attach_token_request(op);
    } else {
        if (reg__auth_prefetch(op)) {
            return;
        }
        reg__auth_attach(op);
    }
    c->stats.requests++;
    if (mar_diag_debug_enabled()) {
        _cleanup_free_ char *u = reg__url_for_log(op->url);
        mar_debug("%s %s", op->method, u);
    }
    mar_err *e = NULL;
    if (c->ops->submit(c->tctx, req, &e) < 0) {
        reg__host_scheme_probed(op, REG_HTTP_EOTHER);
        op->rc = -mar_err_code(e);
        op->err = e;
        op->done(op);
    }
}

static uint64_t backoff_ms(const reg_client *c, int attempt)
{
    uint64_t d = c->opts.backoff_base_ms;
    for (int i = 0; i < attempt && d < c->opts.backoff_cap_ms; i++) {
        d *= 2;
    }
    if (d > c->opts.backoff_cap_ms) {
        d = c->opts.backoff_cap_ms;
    }
    /* Full jitter: a uniformly random wait in [0, d]. */
    return mar_random_below(d + 1);
}

/* Retries with backoff; returns false when the attempts are used up. */
static bool retry(reg_op *op, uint64_t delay_ms)
{
    if (op->attempts + 1 >= op->c->opts.max_attempts) {
        return false;
    }
    op->attempts++;
    op->c->stats.retries++;
    op->req.not_before_ms = mar_now_ms() + delay_ms;
    mar_debug("retrying %s in %llu ms (attempt %d)", op->method, (unsigned long long)delay_ms,
              op->attempts + 1);
    reg__op_start(op);
    return true;
}

static bool redirect(reg_op *op, const char *location)
{
    reg_client *c = op->c;
    if (++op->redirects > 10) {
        _cleanup_free_ char *u = reg__url_for_log(op->url);
        reg__op_fail(op, MAR_ENET, "%s '%s': more than 10 redirects", op->method, u);
        op->done(op);
        return false;
    }
    CURLU *u = curl_url();
    char *next = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, op->url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &next, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        reg__op_fail(op, MAR_ENET, "%s: invalid redirect location", op->method);
        op->done(op);
        return false;
    }
    curl_url_cleanup(u);
    _cleanup_free_ char *target = mar_xstrdup(next);
    curl_free(next);

    bool from_https = mar_str_startswith(op->url, "https://");
    bool to_https = mar_str_startswith(target, "https://");
    bool to_http = mar_str_startswith(target, "http://");
    _cleanup_free_ char *hp = reg__url_hostport(target);
    if (!to_https && !to_http) {
        reg__op_fail(op, MAR_ENET, "%s: redirect to a non-HTTP location, refusing", op->method);
        op->done(op);
        return false;
    }
    /* https only, except to hosts already allowed plain HTTP; never downgrade. */
    if (to_http &&
        (from_https || !hp || !(reg_host_is_loopback(hp) || reg__host_insecure_listed(c, hp)))) {
        _cleanup_free_ char *lt = reg__url_for_log(target);
        reg__op_fail(op, MAR_ENET, "%s: redirect to plain HTTP '%s', refusing", op->method, lt);
        op->done(op);
        return false;
    }
    if (mar_diag_debug_enabled()) {
        _cleanup_free_ char *lt = reg__url_for_log(target);
        mar_debug("redirected to %s", lt);
    }
    if (op->req.status == 303 && strcmp(op->method, "HEAD") != 0) {
        op->method = "GET";
    }
    free(op->url);
    op->url = TAKE_PTR(target);
    op->req.not_before_ms = 0;
    reg__op_start(op);
    return true;
}

static uint64_t retry_after_ms(const char *v)
{
    int64_t secs;
    if (!v) {
        return 0;
    }
    if (mar_parse_i64(v, 0, 86400 * 365, &secs)) {
        return (uint64_t)secs * 1000;
    }
    time_t when = curl_getdate(v, NULL);
    if (when > 0) {
        int64_t d = (int64_t)when - mar_wall_s();
        return d > 0 ? (uint64_t)d * 1000 : 0;
    }
    return 0;
}

static void ratelimit_text(const reg_http_req *req, char *buf, size_t n)
{
    static const char *const names[] = {"ratelimit-limit", "ratelimit-remaining",
                                        "docker-ratelimit-source"};
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < MAR_ARRAY_SIZE(names) && off < n; i++) {
        const char *v = reg_http_header(req, names[i]);
        if (v) {
            int w = snprintf(buf + off, n - off, "%s%s: %.60s", off ? ", " : "", names[i], v);
            off += w > 0 ? (size_t)w : 0;
        }
    }
}

static void op_http_done(reg_http_req *req)
{
    reg_op *op = req->userdata;
    reg_client *c = op->c;
    c->stats.bytes += req->resp_bytes;
    reg__host_scheme_probed(op, req->result);

    if (req->result != REG_HTTP_OK) {
        _cleanup_free_ char *u = reg__url_for_log(op->url);
        switch (req->result) {
        case REG_HTTP_ETLS:
            if (op->host && op->host->plain_http && op->host->insecure && op->redirects == 0 &&
                mar_str_startswith(op->url, "https://")) {
                /* The scheme probe found no TLS (reg__host_scheme_probed): again over HTTP. */
                reg__op_start(op);
                return;
            }
            reg__op_fail(op, MAR_ENET, "%s '%s': TLS failure: %s", op->method, u, req->errmsg);
            op->done(op);
            return;
        case REG_HTTP_ETOOBIG:
            reg__op_fail(op, MAR_EINTEGRITY, "%s '%s': %s, refusing", op->method, u, req->errmsg);
            op->done(op);
            return;
        case REG_HTTP_EABORT:
            if (!op->err) {
                op->rc = mar_err_set(&op->err, MAR_EIO, 0, "%s '%s': %s", op->method, u,
                                     req->errmsg[0] ? req->errmsg : "transfer aborted");
            }
            op->done(op);
            return;
        default:
            if (!op->own_retries && retry(op, backoff_ms(c, op->attempts))) {
                return;
            }
            reg__op_fail(op, MAR_ENET, "%s '%s': %s", op->method, u, req->errmsg);
            op->done(op);
            return;
        }
    }
    long st = req->status;
    if (mar_diag_debug_enabled()) {
        _cleanup_free_ char *u = reg__url_for_log(op->url);
        mar_debug("%s %s -> %ld (%llu bytes, HTTP/%d)", op->method, u, st,
                  (unsigned long long)req->resp_bytes, req->http_version ? req->http_version : 1);
    }
    if (st == 401 && !op->is_token) {
        if (reg__auth_handle_401(op)) {
            return;
        }
        op->done(op);
        return;
    }
    if (st >= 300 && st < 400 && st != 304) {
        const char *loc = reg_http_header(req, "location");
        if (loc) {
            redirect(op, loc);
            return;
        }
    }
    if (st == 429) {
        char rl[256];
        ratelimit_text(req, rl, sizeof(rl));
        uint64_t wait = retry_after_ms(reg_http_header(req, "retry-after"));
        _cleanup_free_ char *u = reg__url_for_log(op->url);
        mar_diag_warn("rate limited by '%s'%s%s", op->host ? op->host->host : u, rl[0] ? ": " : "",
                      rl);
        if (wait <= c->opts.retry_after_max_ms &&
            retry(op, wait ? wait : backoff_ms(c, op->attempts))) {
            return;
        }
        reg__op_fail(op, MAR_ERATELIMIT, "%s '%s': rate limited (429)%s%s", op->method, u,
                     rl[0] ? "; " : "", rl);
        op->done(op);
        return;
    }
    if ((st == 408 || st == 500 || st == 502 || st == 503 || st == 504) && !op->own_retries) {
        if (retry(op, backoff_ms(c, op->attempts))) {
            return;
        }
    }
    if (st == 405 && op->manifest_head) {
        /* Some registries do not implement HEAD on manifests (containerd retries as GET). */
        op->manifest_head = false;
        op->method = "GET";
        reg__op_start(op);
        return;
    }
    op->done(op);
}

/* The error code for a final status (docs/internals/registry-protocol.md §9). */
static int status_code(long st, const char *errcode)
{
    if (st == 404) {
        return MAR_ENOTFOUND;
    }
    if (st == 401 || st == 403) {
        return MAR_EAUTH;
    }
    if (st == 429) {
        return MAR_ERATELIMIT;
    }
    if (st == 415 || (errcode && strcmp(errcode, "UNSUPPORTED") == 0)) {
        return MAR_EUNSUPPORTED;
    }
    if (st >= 500 || st == 408) {
        return MAR_ENET;
    }
    return MAR_EFAIL;
}

int reg__op_status_error(reg_op *op, const char *what, mar_err **err)
{
    if (op->rc < 0 && op->err) {
        *err = TAKE_PTR(op->err);
        return op->rc;
    }
    const reg_http_req *req = &op->req;
    char detail[320] = "";
    const char *errcode = NULL;
    _cleanup_json_ json_t *j = NULL;
    if (req->resp_body.len) {
        j = json_loadb(req->resp_body.data, req->resp_body.len, 0, NULL);
        json_t *first = json_array_get(json_object_get(j, "errors"), 0);
        errcode = json_string_value(json_object_get(first, "code"));
        const char *msg = json_string_value(json_object_get(first, "message"));
        if (errcode || msg) {
            snprintf(detail, sizeof(detail), " %.60s%s%.200s", errcode ? errcode : "",
                     errcode && msg ? ": " : "", msg ? msg : "");
        }
    }
    if (!detail[0]) {
        /* A HEAD answer has no body to explain itself: name the status. */
        const char *phrase = req->status == 404   ? "not found"
                             : req->status == 401 ? "unauthorized"
                             : req->status == 403 ? "forbidden"
                             : req->status == 429 ? "too many requests"
                             : req->status >= 500 ? "server error"
                                                  : NULL;
        if (phrase) {
            snprintf(detail, sizeof(detail), " (%s)", phrase);
        }
    }
    _cleanup_free_ char *u = reg__url_for_log(op->url);
    int code = status_code(req->status, errcode);
    if (code == MAR_EAUTH && op->host && strcmp(op->host->host, "registry-1.docker.io") == 0) {
        return mar_err_set(err, code, 0, "%s: %ld%s (not found, or private: log in to docker.io)",
                           what, req->status, detail);
    }
    return mar_err_set(err, code, 0, "%s '%s': %ld%s", what, u, req->status, detail);
}
