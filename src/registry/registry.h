/* registry/: the distribution-spec client (registry-protocol.md). An event-driven client over an
 * injectable HTTP transport: libcurl's multi interface in production, canned exchanges in unit
 * tests. Operations are started, then reg_client_run() drives them all concurrently until done;
 * completions arrive through callbacks. Auth (bearer tokens, basic), credential helpers,
 * redirects, retries and verification live here; printing does not. */
#ifndef MAR_REGISTRY_H
#define MAR_REGISTRY_H

#include "oci/oci.h"

/* ---------------------------------------------------------------------------------------------
 * HTTP transport. One request is one exchange: no redirects followed, no auth added. */

typedef struct reg_header {
    char *name; /* lower-case */
    char *value;
} reg_header;

enum {
    REG_HTTP_OK = 0,
    REG_HTTP_ECONNECT, /* refused, reset, DNS: retryable */
    REG_HTTP_ETIMEOUT, /* stall or timeout: retryable */
    REG_HTTP_ERECV,    /* short or broken body: retryable */
    REG_HTTP_ETLS,     /* certificate or handshake failure: not retried */
    REG_HTTP_ETOOBIG,  /* body or headers over the cap */
    REG_HTTP_EABORT,   /* the data callback refused the bytes */
    REG_HTTP_EOTHER,
};

typedef struct reg_http_req reg_http_req;
/* Streaming body sink. Returns 0, or negative to abort the transfer (result REG_HTTP_EABORT). */
typedef int (*reg_http_data_fn)(reg_http_req *req, const void *p, size_t n);
typedef void (*reg_http_done_fn)(reg_http_req *req);

struct reg_http_req {
    /* Request, owned by the submitter. */
    const char *method; /* "GET", "HEAD", "POST" */
    char *url;
    mar_strv headers; /* "Name: value" lines */
    const char *body; /* POST body */
    size_t body_len;
    bool verify_tls;   /* false only for registries the user named insecure */
    char *ca_blob;     /* PEM bundle to verify with instead of the default, or NULL */
    char *client_cert; /* PEM client certificate file, or NULL */
    char *client_key;
    size_t body_cap;          /* cap on a buffered body */
    reg_http_data_fn on_data; /* when set, the body streams here instead of `body` below */
    reg_http_done_fn done;    /* called once from reg transport's run loop */
    void *userdata;
    uint64_t not_before_ms; /* monotonic time before which the request must not start */

    /* Response, filled by the transport. */
    int result;
    char errmsg[256];
    long status;
    reg_header *resp_headers;
    size_t n_resp_headers;
    mar_buf resp_body;
    uint64_t resp_bytes; /* body bytes received */
    int http_version;    /* 1 or 2, when known */
};

/* First value of a response header (name lower-case), or NULL. Borrowed. */
const char *reg_http_header(const reg_http_req *req, const char *name);
/* Releases the response part so the request can be submitted again. */
void reg_http_req_reset_response(reg_http_req *req);
void reg_http_req_release(reg_http_req *req);

typedef struct reg_http_ops {
    /* Queues a request; `done` is called later from run(), never from submit(). */
    int (*submit)(void *ctx, reg_http_req *req, mar_err **err);
    /* Drives every queued request (and those submitted from callbacks) to completion. */
    int (*run)(void *ctx, mar_err **err);
    void (*destroy)(void *ctx);
} reg_http_ops;

typedef struct reg_curl_options {
    int max_host_connections; /* 0 = default (8) */
    long low_speed_limit;     /* bytes/s, 0 = default 1024 */
    long low_speed_time;      /* s, 0 = default 30 */
    long connect_timeout_ms;  /* 0 = default 30 s */
} reg_curl_options;

/* The libcurl transport: one multi handle, connection reuse, HTTP/2 where offered. Errors:
 * MAR_EFAIL. */
int reg_curl_transport_new(const reg_curl_options *o, const reg_http_ops **ret_ops, void **ret_ctx,
                           mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Client. */

typedef struct reg_options {
    mar_strv insecure;         /* host[:port] without TLS verification (plain HTTP fallback) */
    mar_strv tls;              /* loopback host[:port] to reach over verified HTTPS anyway */
    const char *docker_config; /* config.json path; NULL: $DOCKER_CONFIG or ~/.docker */
    const char *
            certs_dirs[4]; /* NULL-terminated; default /etc/docker/certs.d, ~/.config/mar/certs.d */
    int max_attempts;      /* per request; 0 = 5 */
    uint64_t backoff_base_ms;    /* 0 = 500 (registry-protocol.md §9) */
    uint64_t backoff_cap_ms;     /* 0 = 30000 */
    uint64_t retry_after_max_ms; /* longest 429 Retry-After honoured; 0 = 60000 */
    const char *user_agent;
} reg_options;

/* Fills defaults, honouring $MAR_INSECURE_REGISTRIES and $MAR_TLS_REGISTRIES (comma-separated)
 * and $MAR_RETRY_BASE_MS. */
void reg_options_init(reg_options *o);
void reg_options_release(reg_options *o);

typedef struct reg_client reg_client;

typedef struct reg_stats {
    uint64_t requests; /* HTTP exchanges, token requests included */
    uint64_t retries;
    uint64_t token_fetches;
    uint64_t bytes;
} reg_stats;

/* Takes ownership of the transport (destroyed with the client). Returns: new client. */
reg_client *reg_client_new(const reg_options *o, const reg_http_ops *ops, void *ctx);
reg_client *reg_client_free(reg_client *c);
MAR_DEFINE_CLEANUP(reg_client, reg_client_free)
#define _cleanup_client_ _cleanup_(reg_client_freep)

/* Drives all started operations to completion. Errors: only transport failures (MAR_EFAIL); the
 * outcome of each operation goes to its callback. */
int reg_client_run(reg_client *c, mar_err **err);
void reg_client_stats(const reg_client *c, reg_stats *ret);

/* A fetched document. */
typedef struct reg_blob {
    mar_digest digest;  /* verified digest of the bytes */
    char *content_type; /* as served (manifests), or NULL */
    mar_buf data;
} reg_blob;
void reg_blob_release(reg_blob *b);

/* Outcome of an operation: rc 0 and the blob, or rc < 0 and err (owned by the callback, which
 * must free or take it). */
typedef void (*reg_blob_cb)(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *userdata);

/* Resolves ref (tag with HEAD, then GET by digest; or GET by digest) and fetches the manifest or
 * index, verified against the digest it was fetched by and capped at MAR_CAP_MANIFEST. Errors in
 * the callback: MAR_ENOTFOUND, MAR_EAUTH, MAR_ENET, MAR_ERATELIMIT, MAR_EINTEGRITY,
 * MAR_EUNSUPPORTED (schema 1, unknown type). */
void reg_manifest_fetch(reg_client *c, const oci_ref *ref, reg_blob_cb cb, void *userdata);

/* Fetches the manifest a descriptor points to from ref's repository: exactly d->size bytes
 * hashing to d->digest. */
void reg_manifest_fetch_desc(reg_client *c, const oci_ref *ref, const oci_descriptor *d,
                             reg_blob_cb cb, void *userdata);

/* Fetches a blob described by d into memory (at most cap bytes), verifying size and digest. */
void reg_blob_fetch(reg_client *c, const oci_ref *ref, const oci_descriptor *d, size_t cap,
                    reg_blob_cb cb, void *userdata);

/* A streaming destination for blob bytes. write gets them in order (before verification: the
 * caller must not trust them until the completion says so); reset, when set, lets a download
 * start over from byte 0 (a registry that answered a resumed request with the wrong range). */
typedef struct reg_sink {
    int (*write)(void *ud, const void *p, size_t n, mar_err **err);
    int (*reset)(void *ud, mar_err **err);
    void *ud;
} reg_sink;

/* Streams the blob d into sink, resuming interrupted transfers with Range requests, and calls
 * cb once with the verdict: rc 0 (blob->digest verified, no data) when exactly d->size bytes
 * hashing to d->digest went to the sink. `start` bytes already received (from an earlier run) are
 * skipped with a Range request; the sink then gets only the rest. */
void reg_blob_stream(reg_client *c, const oci_ref *ref, const oci_descriptor *d, uint64_t start,
                     mar_hasher *resume_hash, const reg_sink *sink, reg_blob_cb cb, void *userdata);

/* ---------------------------------------------------------------------------------------------
 * Images: a reference resolved to its index (or manifest), every child manifest and config. */

typedef struct reg_image_entry {
    size_t index;               /* position in the index, 0 for a single manifest */
    const oci_descriptor *desc; /* the index entry (borrowed), NULL for a single manifest */
    bool attestation;
    reg_blob manifest_raw;
    oci_manifest *manifest; /* NULL when not fetched or failed */
    oci_config *config;
    mar_err *err; /* why this entry could not be read */
} reg_image_entry;

typedef struct reg_image {
    oci_ref ref;
    reg_blob raw;       /* the top-level document, bytes as served */
    oci_manifest *root; /* parsed top-level document */
    reg_image_entry *entries;
    size_t n_entries;
    int rc;       /* 0, or the failure of the top-level fetch */
    mar_err *err; /* owned */
} reg_image;

typedef enum {
    REG_IMAGE_CHILDREN = 1 << 0, /* fetch every runnable child manifest */
    REG_IMAGE_CONFIGS = 1 << 1,  /* and their configs */
} reg_image_flags;

typedef void (*reg_image_cb)(reg_client *c, reg_image *img, void *userdata);

/* Starts resolving an image; the callback gets the finished image (owned by the callback:
 * reg_image_free). `ref` is copied. */
void reg_image_fetch(reg_client *c, const oci_ref *ref, unsigned flags, reg_image_cb cb,
                     void *userdata);
reg_image *reg_image_free(reg_image *img);
MAR_DEFINE_CLEANUP(reg_image, reg_image_free)
#define _cleanup_image_ _cleanup_(reg_image_freep)

/* ---------------------------------------------------------------------------------------------
 * Hosts. */

/* True for 127.0.0.0/8, ::1 and "localhost" (with any port) after inet_pton
 * (registry-protocol.md §8). */
bool reg_host_is_loopback(const char *hostport);

#endif
