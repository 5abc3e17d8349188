/* Registry authentication (docs/internals/registry-protocol.md §5; distribution token.md, oauth.md;
 * RFC 7235 §4.1, RFC 6750 §3): WWW-Authenticate parsing, bearer tokens cached per host, realm,
 * service and scope with their expiry, Basic credentials, and one token fetch shared by every
 * operation waiting for it. */
#include "registry-internal.h"

#include <string.h>

#include <openssl/evp.h>

#define VALUE_MAX 4096

static bool is_tchar(char c)
{
    /* RFC 7230 tchar */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\t') {
        (*p)++;
    }
}

/* Reads a token into buf; returns its length (0 when none). */
static size_t read_token(const char **p, char *buf, size_t n)
{
    size_t l = 0;
    while (is_tchar(**p)) {
        if (l + 1 < n) {
            buf[l] = **p;
        }
        l++;
        (*p)++;
    }
    buf[l < n ? l : n - 1] = '\0';
    return l;
}

/* Reads a quoted-string (with \-escapes) or a token as a parameter value. */
static int read_value(const char **p, char **ret)
{
    mar_buf b = MAR_BUF_INIT(VALUE_MAX);
    if (**p == '"') {
        (*p)++;
        for (;;) {
            char c = **p;
            if (c == '\0') {
                mar_buf_release(&b);
                return -1;
            }
            (*p)++;
            if (c == '"') {
                break;
            }
            if (c == '\\') {
                c = **p;
                if (c == '\0') {
                    mar_buf_release(&b);
                    return -1;
                }
                (*p)++;
            }
            if (mar_buf_append(&b, &c, 1) < 0) {
                return -1;
            }
        }
    } else {
        const char *s = *p;
        while (is_tchar(**p) || **p == '/' || **p == ':' || **p == '=') {
            (*p)++;
        }
        if (*p == s || mar_buf_append(&b, s, (size_t)(*p - s)) < 0) {
            mar_buf_release(&b);
            return -1;
        }
    }
    *ret = mar_buf_detach(&b, NULL);
    return 0;
}

void reg__challenge_release(reg_challenge *ch)
{
    free(ch->realm);
    free(ch->service);
    free(ch->scope);
    free(ch->error);
    memset(ch, 0, sizeof(*ch));
}

static void set_param(reg_challenge *ch, const char *name, char *value)
{
    char **slot = NULL;
    if (mar_str_caseeq(name, "realm")) {
        slot = &ch->realm;
    } else if (mar_str_caseeq(name, "service")) {
        slot = &ch->service;
    } else if (mar_str_caseeq(name, "scope")) {
        slot = &ch->scope;
    } else if (mar_str_caseeq(name, "error")) {
        slot = &ch->error;
    }
    if (slot && !*slot) {
        *slot = value;
    } else {
        free(value);
    }
}

int reg__challenge_parse(const char *header, reg_challenge *ret, size_t max)
{
    const char *p = header;
    size_t n = 0;
    if (!header) {
        return 0;
    }
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (!*p) {
            break;
        }
        char scheme[32];
        if (read_token(&p, scheme, sizeof(scheme)) == 0) {
            goto bad;
        }
        reg_challenge ch = {0};
        for (char *s = scheme; *s; s++) {
            if (*s >= 'A' && *s <= 'Z') {
                *s = (char)(*s - 'A' + 'a');
            }
        }
        mar_strlcpy(ch.scheme, scheme, sizeof(ch.scheme));
        /* Parameters, until the next challenge starts (a token not followed by '='). */
        for (;;) {
            skip_ws(&p);
            while (*p == ',') {
                p++;
                skip_ws(&p);
            }
            if (!*p) {
                break;
            }
            const char *save = p;
            char name[64];
            if (read_token(&p, name, sizeof(name)) == 0) {
                reg__challenge_release(&ch);
                goto bad;
            }
            skip_ws(&p);
            if (*p != '=') {
                /* Not a parameter: the next challenge (or a token68) starts here. */
                p = save;
                break;
            }
            p++;
            skip_ws(&p);
            if (*p == '=' || *p == ',' || *p == '\0') {
                /* token68 padding ("abc=="): skip it. */
                while (*p == '=') {
                    p++;
                }
                continue;
            }
            char *value = NULL;
            if (read_value(&p, &value) < 0) {
                reg__challenge_release(&ch);
                goto bad;
            }
            set_param(&ch, name, value);
        }
        if (n < max) {
            ret[n++] = ch;
        } else {
            reg__challenge_release(&ch);
        }
    }
    return (int)n;
bad:
    for (size_t i = 0; i < n; i++) {
        reg__challenge_release(&ret[i]);
    }
    return -1;
}

static char *url_escape(const char *s)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~", c)) {
            mar_buf_xappend(&b, s, 1);
        } else {
            mar_buf_xprintf(&b, "%%%02X", c);
        }
    }
    return mar_buf_detach(&b, NULL);
}

/* The scopes an op needs (distribution token.md "Requesting a Token"), space-separated: pull by
 * default; pushes ask for pull,push on their repository, plus pull on a mount's source. */
static char *op_scope(const reg_op *op)
{
    return op->scope ? mar_xstrdup(op->scope)
                     : mar_xasprintf("repository:%s:pull", op->repo ? op->repo : "");
}

static char *token_key(const reg_op *op)
{
    _cleanup_free_ char *scope = op_scope(op);
    return mar_xasprintf("%s\n%s\n%s\n%s", op->host->host, op->host->realm,
                         op->host->service ? op->host->service : "", scope);
}

static reg_token *token_lookup(reg_client *c, const char *key)
{
    uint64_t now = mar_now_ms();
    for (reg_token *t = c->tokens; t; t = t->next) {
        if (strcmp(t->key, key) == 0 && t->expires_ms > now) {
            return t;
        }
    }
    return NULL;
}

static void token_forget(reg_client *c, const char *key)
{
    for (reg_token **pp = &c->tokens; *pp;) {
        reg_token *t = *pp;
        if (strcmp(t->key, key) == 0) {
            *pp = t->next;
            free(t->key);
            mar_secret_free(t->token);
            free(t);
            continue;
        }
        pp = &t->next;
    }
}

static char *basic_header(const reg_creds *cr)
{
    _cleanup_secret_ char *plain = mar_xasprintf("%s:%s", cr->username, cr->password);
    size_t pl = strlen(plain);
    _cleanup_secret_ char *enc = mar_xmalloc(4 * ((pl + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)plain, (int)pl);
    return mar_xasprintf("Authorization: Basic %s", enc);
}

static bool origin_matches(const reg_op *op)
{
    _cleanup_free_ char *o = reg__url_origin(op->url);
    return o && op->origin && strcmp(o, op->origin) == 0;
}

void reg__auth_attach(reg_op *op)
{
    reg_host *h = op->host;
    /* Credentials go only to the origin they belong to (docs/internals/registry-protocol.md §7). */
    if (!h || !origin_matches(op)) {
        return;
    }
    if (h->auth_kind == REG_AUTH_BASIC) {
        if (h->creds.username && h->creds.password) {
            mar_strv_push_take(&op->req.headers, basic_header(&h->creds));
            op->sent_basic = true;
        }
        return;
    }
    if (h->auth_kind == REG_AUTH_BEARER) {
        _cleanup_free_ char *key = token_key(op);
        reg_token *t = token_lookup(op->c, key);
        if (t) {
            mar_strv_push_take(&op->req.headers,
                               mar_xasprintf("Authorization: Bearer %s", t->token));
        } else if (h->creds.registry_token) {
            mar_strv_push_take(&op->req.headers,
                               mar_xasprintf("Authorization: Bearer %s", h->creds.registry_token));
        }
    }
}

static void token_fetch_done(reg_op *top);

/* Parks `waiter` until the token for `key` exists, starting the fetch if nobody has. */
static void token_wait(reg_op *waiter, const char *key)
{
    reg_client *c = waiter->c;
    reg_host *h = waiter->host;
    for (reg_token_fetch *f = c->fetches; f; f = f->next) {
        if (strcmp(f->key, key) == 0) {
            f->waiters = mar_xrealloc(f->waiters, (f->n_waiters + 1) * sizeof(reg_op *));
            f->waiters[f->n_waiters++] = waiter;
            return;
        }
    }
    reg_token_fetch *f = mar_xcalloc(1, sizeof(*f));
    f->key = mar_xstrdup(key);
    f->waiters = mar_xcalloc(1, sizeof(reg_op *));
    f->waiters[0] = waiter;
    f->n_waiters = 1;
    f->next = c->fetches;
    c->fetches = f;

    reg__creds_load(c, h);
    _cleanup_free_ char *scope = op_scope(waiter);
    /* OAuth2 takes the scopes space-delimited in one field (distribution oauth.md); the GET repeats
     * `scope`. */
    _cleanup_free_ char *esc_scope = url_escape(scope);
    mar_buf query_scopes = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (const char *p = scope; *p;) {
        size_t l = strcspn(p, " ");
        _cleanup_free_ char *one = mar_xstrndup(p, l);
        _cleanup_free_ char *esc = url_escape(one);
        mar_buf_xprintf(&query_scopes, "%sscope=%s", query_scopes.len ? "&" : "", esc);
        p += l;
        p += *p == ' ';
    }
    _cleanup_free_ char *scopes_q = mar_buf_detach(&query_scopes, NULL);
    _cleanup_free_ char *esc_service = url_escape(h->service ? h->service : "");
    reg_op *top;
    if (h->creds.identity_token) {
        /* OAuth2 refresh-token grant (distribution oauth.md). */
        _cleanup_free_ char *esc_tok = url_escape(h->creds.identity_token);
        top = reg__op_new(c, NULL, NULL, "POST", h->realm, token_fetch_done, NULL);
        top->post_body = mar_xasprintf("grant_type=refresh_token&refresh_token=%s&service=%s"
                                       "&scope=%s&client_id=mar",
                                       esc_tok, esc_service, esc_scope);
        mar_memzero(esc_tok, strlen(esc_tok));
    } else {
        _cleanup_free_ char *url =
                mar_xasprintf("%s%sservice=%s&%s", h->realm, strchr(h->realm, '?') ? "&" : "?",
                              esc_service, scopes_q);
        top = reg__op_new(c, NULL, NULL, "GET", url, token_fetch_done, NULL);
    }
    top->is_token = true;
    top->token_key = mar_xstrdup(key);
    top->body_cap = MAR_CAP_TOKEN_BODY;
    top->host = NULL;
    c->stats.token_fetches++;
    if (h->creds.username && h->creds.password) {
        /* Basic credentials for the token service (distribution token.md "Requesting a Token"). */
        top->userdata = h;
    }
    reg__op_start(top);
}

static reg_token_fetch *take_fetch(reg_client *c, const char *key)
{
    for (reg_token_fetch **pp = &c->fetches; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            reg_token_fetch *f = *pp;
            *pp = f->next;
            return f;
        }
    }
    return NULL;
}

MAR_MUST_USE static int parse_token(reg_op *top, char **ret_token, int64_t *ret_expires,
                                    mar_err **err)
{
    _cleanup_json_ json_t *j = NULL;
    _cleanup_free_ char *u = reg__url_for_log(top->url);
    j = json_loadb(top->req.resp_body.data, top->req.resp_body.len, 0, NULL);
    /* The body is a secret: never quote it. */
    mar_buf_release_secret(&top->req.resp_body);
    if (!json_is_object(j)) {
        return mar_err_set(err, MAR_EAUTH, 0, "token response from '%s' is not JSON", u);
    }
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (!tok || !*tok) {
        tok = json_string_value(json_object_get(j, "access_token"));
    }
    if (!tok || !*tok) {
        return mar_err_set(err, MAR_EAUTH, 0, "token response from '%s' has no token", u);
    }
    json_t *exp = json_object_get(j, "expires_in");
    int64_t expires = json_is_integer(exp) ? (int64_t)json_integer_value(exp) : 60;
    if (expires < 1) {
        expires = 60;
    }
    *ret_token = mar_xstrdup(tok);
    *ret_expires = expires;
    json_t *t1 = json_object_get(j, "token"), *t2 = json_object_get(j, "access_token");
    if (json_is_string(t1)) {
        mar_memzero((void *)json_string_value(t1), json_string_length(t1));
    }
    if (json_is_string(t2)) {
        mar_memzero((void *)json_string_value(t2), json_string_length(t2));
    }
    return 0;
}

static void token_fetch_done(reg_op *top)
{
    reg_client *c = top->c;
    reg_token_fetch *f = take_fetch(c, top->token_key);
    mar_err *err = NULL;
    char *token = NULL;
    int64_t expires = 0;
    int rc = top->rc;
    if (rc < 0) {
        err = TAKE_PTR(top->err);
    } else if (top->req.status != 200) {
        _cleanup_free_ char *u = reg__url_for_log(top->url);
        long st = top->req.status;
        rc = mar_err_set(&err,
                         st == 401 || st == 403 || st == 400 ? MAR_EAUTH
                                                             : (st >= 500 ? MAR_ENET : MAR_EAUTH),
                         0, "token request to '%s' failed: %ld%s", u, st,
                         st == 401 ? " (invalid credentials?)" : "");
    } else {
        rc = parse_token(top, &token, &expires, &err);
    }
    if (rc == 0) {
        reg_token *t = mar_xcalloc(1, sizeof(*t));
        t->key = mar_xstrdup(top->token_key);
        t->token = token;
        /* Renew a little early: a token must not expire between use and arrival. */
        int64_t margin = expires / 10 < 30 ? expires / 10 : 30;
        t->expires_ms = mar_now_ms() + (uint64_t)(expires - margin) * 1000;
        t->next = c->tokens;
        c->tokens = t;
    }
    reg__op_free(top);
    if (!f) {
        mar_err_free(err);
        return;
    }
    for (size_t i = 0; i < f->n_waiters; i++) {
        reg_op *w = f->waiters[i];
        if (rc == 0) {
            reg__op_start(w);
        } else {
            mar_err_free(w->err);
            w->err = NULL;
            w->rc = mar_err_set(&w->err, mar_err_code(err), 0, "%s", err->msg);
            w->done(w);
        }
    }
    mar_err_free(err);
    free(f->key);
    free(f->waiters);
    free(f);
}

static bool realm_allowed(reg_client *c, const char *realm)
{
    if (mar_str_startswith(realm, "https://")) {
        return true;
    }
    if (!mar_str_startswith(realm, "http://")) {
        return false;
    }
    _cleanup_free_ char *hp = reg__url_hostport(realm);
    return hp && (reg_host_is_loopback(hp) || reg__host_insecure_listed(c, hp));
}

bool reg__auth_handle_401(reg_op *op)
{
    reg_client *c = op->c;
    reg_host *h = op->host;
    if (!h) {
        return reg__op_fail(op, MAR_EAUTH, "unexpected authentication challenge");
    }
    if (!origin_matches(op)) {
        /* A redirect target or an upload Location on another host: the registry's credentials
         * are not for it (docs/internals/registry-protocol.md §7), and its challenge must not
         * change how mar authenticates to the registry. */
        _cleanup_free_ char *hp = reg__url_hostport(op->url);
        return reg__op_fail(op, MAR_EAUTH,
                            "'%s' asked for credentials, refusing (those of '%s' go nowhere else)",
                            hp ? hp : "?", h->host);
    }
    reg_challenge ch[4];
    int n = reg__challenge_parse(reg_http_header(&op->req, "www-authenticate"), ch, 4);
    if (n < 0) {
        return reg__op_fail(op, MAR_EAUTH, "malformed WWW-Authenticate header from '%s'", h->host);
    }
    reg_challenge *bearer = NULL, *basic = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(ch[i].scheme, "bearer") == 0 && !bearer) {
            bearer = &ch[i];
        } else if (strcmp(ch[i].scheme, "basic") == 0 && !basic) {
            basic = &ch[i];
        }
    }
    bool ok = false;
    if (bearer) {
        if (bearer->error && strcmp(bearer->error, "insufficient_scope") == 0 && op->scope &&
            strstr(op->scope, ",push")) {
            /* The challenge names the scope the registry wanted, which says which action (push
             * here, or pull on a mount's source) was not granted. */
            ok = reg__op_fail(op, MAR_EAUTH,
                              "%s '%s' on '%s' denied (insufficient_scope%s%.200s%s)",
                              strcmp(op->method, "HEAD") == 0 ? "access to" : "push to", op->repo,
                              h->host, bearer->scope ? ": needs '" : "",
                              bearer->scope ? bearer->scope : "", bearer->scope ? "'" : "");
        } else if (bearer->error && strcmp(bearer->error, "insufficient_scope") == 0) {
            ok = reg__op_fail(op, MAR_EAUTH,
                              "access to '%s' on '%s' denied (insufficient_scope): not found, or "
                              "private",
                              op->repo, h->host);
        } else if (op->auth_retried) {
            reg__creds_load(c, h);
            ok = reg__op_fail(op, MAR_EAUTH, "authentication to '%s' failed%s", h->host,
                              reg__creds_any(&h->creds) ? " (credentials rejected)"
                                                        : ": not found, or private: log in");
        } else if (!bearer->realm || !realm_allowed(c, bearer->realm)) {
            ok = reg__op_fail(op, MAR_EAUTH, "token realm '%s' of '%s' is not https, refusing",
                              bearer->realm ? bearer->realm : "", h->host);
        } else {
            h->auth_kind = REG_AUTH_BEARER;
            free(h->realm);
            free(h->service);
            h->realm = mar_xstrdup(bearer->realm);
            h->service = bearer->service ? mar_xstrdup(bearer->service) : NULL;
            op->auth_retried = true;
            _cleanup_free_ char *key = token_key(op);
            token_forget(c, key);
            reg__creds_load(c, h);
            if (h->creds.registry_token && !op->sent_basic) {
                op->sent_basic = true; /* the static token gets one try */
                reg__op_start(op);
            } else {
                token_wait(op, key);
            }
            ok = true;
        }
    } else if (basic) {
        reg__creds_load(c, h);
        if (op->sent_basic) {
            ok = reg__op_fail(op, MAR_EAUTH,
                              "authentication to '%s' failed: credentials from %s "
                              "rejected",
                              h->host, h->creds.source);
        } else if (!h->creds.username || !h->creds.password) {
            ok = reg__op_fail(op, MAR_EAUTH,
                              "'%s' requires authentication: no credentials found "
                              "(log in first)",
                              h->host);
        } else {
            h->auth_kind = REG_AUTH_BASIC;
            reg__op_start(op);
            ok = true;
        }
    } else {
        ok = reg__op_fail(op, MAR_EAUTH, "'%s' answered 401 without a usable challenge", h->host);
    }
    for (int i = 0; i < n; i++) {
        reg__challenge_release(&ch[i]);
    }
    return ok;
}

void reg__auth_attach_token_request(reg_op *top)
{
    reg_host *h = top->userdata;
    if (!h || !h->creds.username || !h->creds.password || top->post_body) {
        return;
    }
    _cleanup_free_ char *o = reg__url_origin(top->url);
    _cleanup_free_ char *realm_origin = reg__url_origin(h->realm);
    if (o && realm_origin && strcmp(o, realm_origin) == 0) {
        mar_strv_push_take(&top->req.headers, basic_header(&h->creds));
    }
}

bool reg__auth_prefetch(reg_op *op)
{
    reg_host *h = op->host;
    if (!h || op->is_token || h->auth_kind != REG_AUTH_BEARER || !h->realm || !op->repo ||
        !origin_matches(op)) {
        return false;
    }
    if (h->creds.registry_token) {
        return false;
    }
    _cleanup_free_ char *key = token_key(op);
    if (token_lookup(op->c, key)) {
        return false;
    }
    op->auth_retried = true;
    token_wait(op, key);
    return true;
}
