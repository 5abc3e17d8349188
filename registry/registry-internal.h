/* Shared between the files of registry/ only. */
#ifndef MAR_REGISTRY_INTERNAL_H
#define MAR_REGISTRY_INTERNAL_H

#include "registry.h"

/* Credentials for one registry host. Secrets are wiped when released. */
typedef struct reg_creds {
    char *username;
    char *password;
    char *identity_token; /* OAuth2 refresh token (docs/internals/registry-protocol.md §5) */
    char *registry_token; /* a bearer token to send as is */
    char source[96];      /* "config.json auths", "credential helper 'pass'": for messages */
} reg_creds;

void reg__creds_release(reg_creds *cr);
bool reg__creds_any(const reg_creds *cr);

enum { REG_AUTH_NONE = 0, REG_AUTH_BASIC, REG_AUTH_BEARER };

typedef struct reg_op reg_op;

typedef struct reg_host {
    char *host; /* host[:port] the API lives at */
    bool plain_http;
    bool insecure; /* user-named: no TLS verification, plain HTTP fallback */
    /* Insecure hosts: the first request tries HTTPS (the probe); the others are parked until
     * its answer decides the scheme for all of them (hosts.c). */
    bool scheme_known;
    reg_op *probe;
    reg_op **parked;
    size_t n_parked;
    bool notice_done;
    bool certs_loaded;
    char *ca_pem; /* extra CA certificates (certs.d), or NULL */
    char *client_cert;
    char *client_key;
    int auth_kind;
    char *realm;
    char *service;
    bool creds_loaded;
    reg_creds creds;
    struct reg_host *next;
} reg_host;

typedef struct reg_token {
    char *key; /* host \n realm \n service \n scope */
    char *token;
    uint64_t expires_ms; /* monotonic */
    struct reg_token *next;
} reg_token;

typedef void (*reg_op_done_fn)(reg_op *op);

typedef struct reg_token_fetch {
    char *key;
    reg_op **waiters;
    size_t n_waiters;
    struct reg_token_fetch *next;
} reg_token_fetch;

struct reg_client {
    reg_options opts;
    const reg_http_ops *ops;
    void *tctx;
    reg_host *hosts;
    reg_token *tokens;
    reg_token_fetch *fetches;
    reg_stats stats;
    struct reg_shared_cache *shared; /* shared.c */
    json_t *docker_config;           /* loaded once */
    bool docker_config_loaded;
    char *docker_config_path;
};

/* One logical request: auth, redirects, retries and backoff around single HTTP exchanges. */
struct reg_op {
    reg_client *c;
    reg_host *host;
    char *repo; /* repository path, for the pull scope; NULL for token requests */
    const char *method;
    char *url;    /* current URL */
    char *origin; /* scheme://host[:port] credentials belong to */
    char *accept;
    bool is_token;
    char *token_key; /* token requests: the cache key */
    char *post_body; /* token requests: OAuth2 form (secret) */
    int attempts;
    int redirects;
    bool auth_retried;
    bool sent_basic;
    bool manifest_head; /* a manifest HEAD (405 falls back to GET) */
    char *scope;        /* token scopes, space-separated; NULL: repository:<repo>:pull */
    bool own_retries;   /* upload requests: the caller retries transport failures and 5xx
                           itself (it must learn what the registry kept first) */
    size_t body_cap;
    reg_http_data_fn on_data;
    reg_http_req req;
    void (*prepare)(reg_op *op); /* adds per-attempt headers (Range) before each start */
    reg_op_done_fn done;
    void *userdata;
    int rc; /* set when the op failed before a final HTTP status */
    mar_err *err;
};

/* Creates an op for `path` ("/v2/...") on host. */
reg_op *reg__op_new(reg_client *c, reg_host *host, const char *repo, const char *method,
                    const char *path, reg_op_done_fn done, void *userdata);
/* Creates an op for an absolute URL a registry handed out (an upload Location): credentials
 * still belong to host's origin and go only there. */
reg_op *reg__op_new_url(reg_client *c, reg_host *host, const char *repo, const char *method,
                        const char *url, reg_op_done_fn done, void *userdata);
/* Starts (or restarts after a redirect or a retry) the op. */
void reg__op_start(reg_op *op);
reg_op *reg__op_free(reg_op *op);
/* Records why the op failed (replacing an earlier reason) without finishing it: the caller calls
 * op->done, or returns false to a caller that does. Returns false. */
bool reg__op_fail(reg_op *op, int code, const char *fmt, ...) MAR_PRINTF(3, 4);
/* An error for a final non-2xx status ("GET '<url>': 404 MANIFEST_UNKNOWN: manifest unknown"),
 * code from docs/internals/registry-protocol.md §9. Like mar_err_set it always sets *err and
 * returns -code, so it is not MAR_MUST_USE. */
int reg__op_status_error(reg_op *op, const char *what, mar_err **err);
/* The URL without query string, for messages and logs. Returns: new string. */
char *reg__url_for_log(const char *url);

/* Hosts. */
reg_host *reg__host_get(reg_client *c, const char *hostport);
bool reg__host_insecure_listed(const reg_client *c, const char *hostport);
/* An op about to start on an insecure host whose scheme is not decided yet: the first becomes
 * the probe, the others are parked (true) and restarted once the probe's answer came. */
bool reg__host_scheme_park(reg_op *op);
/* The probe's transfer ended with `result` (a reg_http_result): a TLS failure means plain HTTP,
 * an answer means HTTPS; anything else leaves the question to the next op. Restarts the parked
 * ops. */
void reg__host_scheme_probed(reg_op *op, int result);
void reg__host_load_certs(reg_client *c, reg_host *h);
/* Origin "scheme://host[:port]" of a URL, lower-case. Returns: new string or NULL. */
char *reg__url_origin(const char *url);
/* host[:port] of a URL. Returns: new string or NULL. */
char *reg__url_hostport(const char *url);

/* Auth. */
typedef struct reg_challenge {
    char scheme[16]; /* lower-case: "bearer", "basic" */
    char *realm;
    char *service;
    char *scope;
    char *error;
} reg_challenge;

/* Parses a WWW-Authenticate value into up to max challenges (RFC 7235 §4.1). Returns the count,
 * or -1 on a malformed header. */
int reg__challenge_parse(const char *header, reg_challenge *ret, size_t max);
void reg__challenge_release(reg_challenge *ch);

/* Adds an Authorization header when the op's URL is the registry origin and auth is known. */
void reg__auth_attach(reg_op *op);
/* Handles a 401: returns true when the op was parked or restarted, false when it failed (op->rc
 * and op->err are set). */
bool reg__auth_handle_401(reg_op *op);

/* Token requests: Basic credentials for the token service, only to the realm's own origin. */
void reg__auth_attach_token_request(reg_op *top);
/* Parks an op whose host is known to use bearer tokens until its token exists, saving the 401
 * round trip. Returns true when parked. */
bool reg__auth_prefetch(reg_op *op);

/* Credentials (config.json, credential helpers). Never fails: problems become warnings. */
void reg__creds_load(reg_client *c, reg_host *h);
/* The parsers under reg__creds_load, on their own for the fuzz harnesses
 * (fuzz/fuzz-docker-config.c, fuzz/fuzz-cred-helper.c). */
/* Parses config.json's bytes (path names it in the warning). Returns: a new reference to its
 * top-level object, or NULL (warned). */
json_t *reg__creds_config_parse(const void *data, size_t len, const char *path);
/* The credential helper a parsed config.json names for host: credHelpers[host], else credsStore.
 * Returns: borrowed from cfg, or NULL for none. */
const char *reg__creds_config_helper(json_t *cfg, const char *host);
/* Fills ret from config.json's auths entry for host (an undecodable 'auth' is warned about).
 * Returns true when an entry matched. */
bool reg__creds_config_auths(json_t *cfg, const char *host, reg_creds *ret);
/* Interprets what `docker-credential-<helper> get` did (docker/docker-credential-helpers): 1 with
 * credentials in ret, 0 when the helper has none, -1 when its answer is unusable (warned; its
 * stdout is never echoed). */
int reg__creds_helper_result(const char *helper, const mar_proc_result *r, reg_creds *ret);

/* stream.c: reg_blob_stream with a handle, valid until its callback has run (NULL when it ran
 * already), through which a sink that paused the transfer (REG_HTTP_PAUSE) resumes it. */
typedef struct reg_stream reg_stream;
reg_stream *reg__blob_stream_start(reg_client *c, const oci_ref *ref, const oci_descriptor *d,
                                   uint64_t from, mar_hasher *resume_hash, const reg_sink *sink,
                                   reg_blob_cb cb, void *userdata);
void reg__blob_stream_unpause(reg_stream *s);

/* shared.c: digest-addressed fetches shared within a client. reg__shared_join returns true when
 * the request was answered (from memory) or joined one in flight; false when the caller is to
 * fetch, and report with reg__shared_done. */
bool reg__shared_join(reg_client *c, const char *key, reg_blob_cb cb, void *userdata);
void reg__shared_done(reg_client *c, const char *key, int rc, const reg_blob *blob,
                      const mar_err *err);
void reg__shared_free(reg_client *c);

/* store.c */
struct reg_store {
    int dfd;
    char *path;
    int store_lock;
};
MAR_MUST_USE int reg__store_lock(reg_store *s, const char *name, int how, bool wait, mar_err **err);
/* openat below the store's directory fd, every component opened with O_NOFOLLOW (a symbolic
 * link anywhere on the path fails with ELOOP or ENOTDIR). Returns the fd or -1 with errno. */
int reg__store_openat(reg_store *s, const char *rel, int flags, mode_t mode);
MAR_MUST_USE int reg__store_write_atomic(reg_store *s, const char *name, const void *p, size_t n,
                                         mar_err **err);
/* fsyncs the store's directory dir ("." for its top) after a rename into it. Errors: MAR_EIO. */
MAR_MUST_USE int reg__store_sync_dir(reg_store *s, const char *dir, mar_err **err);
char *reg__blob_name(const mar_digest *d);

#endif
