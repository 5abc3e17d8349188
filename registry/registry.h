/* registry/: the distribution-spec client (docs/internals/registry-protocol.md). An event-driven
 * client over an injectable HTTP transport: libcurl's multi interface in production, canned
 * exchanges in unit tests. Operations are started, then reg_client_run() drives them all
 * concurrently until done; completions arrive through callbacks. Auth (bearer tokens, basic),
 * credential helpers, redirects, retries and verification live here; printing does not. */
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
/* Streaming body sink. Returns 0, REG_HTTP_PAUSE to leave the bytes untaken and hold the transfer
 * until reg_http_ops.unpause (they are offered again then), or negative to abort the transfer
 * (result REG_HTTP_EABORT). */
typedef int (*reg_http_data_fn)(reg_http_req *req, const void *p, size_t n);
typedef void (*reg_http_done_fn)(reg_http_req *req);
#define REG_HTTP_PAUSE 1

/* Where a request body comes from (PUT, PATCH, POST). The transport reads it in order, once per
 * submission, through reg_http_body_next(); resubmitting a request starts the body over. */
typedef enum {
    REG_BODY_NONE = 0, /* no body: POST, PUT and PATCH send Content-Length: 0 */
    REG_BODY_MEMORY,   /* body, body_len */
    REG_BODY_FD,       /* body_len bytes of body_fd from body_off (pread: the fd offset stays) */
    REG_BODY_READER,   /* body_read produces body_len bytes */
} reg_body_kind;

/* A producer body: fills at most n bytes of buf and returns how many, REG_BODY_PAUSE when none
 * are ready yet (the transport holds the request until reg_http_ops.unpause), or REG_BODY_ABORT
 * (result REG_HTTP_EABORT). It must produce exactly body_len bytes. */
typedef ssize_t (*reg_http_read_fn)(reg_http_req *req, void *buf, size_t n);
#define REG_BODY_ABORT ((ssize_t)-1)
#define REG_BODY_PAUSE ((ssize_t)-2)

struct reg_http_req {
    /* Request, owned by the submitter. */
    const char *method; /* "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" */
    char *url;
    mar_strv headers; /* "Name: value" lines; Content-Length, Content-Type, Content-Range of a
                         body are the submitter's to set */
    reg_body_kind body_kind;
    const char *body; /* REG_BODY_MEMORY */
    size_t body_len;  /* bytes of any body kind */
    int body_fd;      /* REG_BODY_FD */
    uint64_t body_off;
    reg_http_read_fn body_read; /* REG_BODY_READER */
    uint64_t body_pos;          /* bytes of the body handed to the transport so far */
    bool verify_tls;            /* false only for registries the user named insecure */
    char *ca_blob;              /* PEM bundle to verify with instead of the default, or NULL */
    char *client_cert;          /* PEM client certificate file, or NULL */
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
/* For transports: the next bytes of the request body (any kind), as reg_http_read_fn returns
 * them; 0 at its end. An fd that ends early is REG_BODY_ABORT with errmsg set. */
ssize_t reg_http_body_next(reg_http_req *req, void *buf, size_t n);
/* Releases the response part so the request can be submitted again. */
void reg_http_req_reset_response(reg_http_req *req);
void reg_http_req_release(reg_http_req *req);

typedef struct reg_http_ops {
    /* Queues a request; `done` is called later from run(), never from submit(). */
    int (*submit)(void *ctx, reg_http_req *req, mar_err **err);
    /* Drives every queued request (and those submitted from callbacks) to completion. */
    int (*run)(void *ctx, mar_err **err);
    void (*destroy)(void *ctx);
    /* Resumes a request whose body reader or data sink paused it; may be called from any
     * callback of run(). */
    void (*unpause)(void *ctx, reg_http_req *req);
} reg_http_ops;

typedef struct reg_curl_options {
    int max_host_connections; /* 0 = default (8) */
    long low_speed_limit;     /* bytes/s, 0 = default 1024 */
    long low_speed_time;      /* s, 0 = default 30 */
    long connect_timeout_ms;  /* 0 = default 30 s */
} reg_curl_options;

/* The libcurl transport: one multi handle, connection reuse, HTTP/2 where offered. Errors:
 * MAR_EFAIL. */
MAR_MUST_USE int reg_curl_transport_new(const reg_curl_options *o, const reg_http_ops **ret_ops,
                                        void **ret_ctx, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Client. */

typedef struct reg_options {
    mar_strv insecure;         /* host[:port] without TLS verification (plain HTTP fallback) */
    mar_strv tls;              /* loopback host[:port] to reach over verified HTTPS anyway */
    const char *docker_config; /* config.json path; NULL: $DOCKER_CONFIG or ~/.docker */
    const char *
            certs_dirs[4]; /* NULL-terminated; default /etc/docker/certs.d, ~/.config/mar/certs.d */
    int max_attempts;      /* per request; 0 = 5 */
    uint64_t backoff_base_ms;    /* 0 = 500 (docs/internals/registry-protocol.md §9) */
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
MAR_MUST_USE int reg_client_run(reg_client *c, mar_err **err);
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
 * caller must not trust them until the completion says so) and returns 0, REG_HTTP_PAUSE to
 * hold the transfer (the same bytes come again once it resumes; registry/ uses this
 * internally), or negative with *err set; reset, when set, lets a download start over from byte
 * 0 (a registry that answered a resumed request with the wrong range). */
typedef struct reg_sink {
    int (*write)(void *ud, const void *p, size_t n, mar_err **err);
    int (*reset)(void *ud, mar_err **err);
    void *ud;
} reg_sink;

/* Streams the blob d into sink, resuming interrupted transfers with Range requests, and calls
 * cb once with the verdict: rc 0 (blob->digest verified, no data) when exactly d->size bytes
 * hashing to d->digest went to the sink. `start` bytes already received (from an earlier run) are
 * skipped with a Range request; the sink then gets only the rest, and resume_hash holds the
 * hash of the first `start` bytes. */
void reg_blob_stream(reg_client *c, const oci_ref *ref, const oci_descriptor *d, uint64_t start,
                     mar_hasher *resume_hash, const reg_sink *sink, reg_blob_cb cb, void *userdata);

/* A repository's tags, all pages (at most 10 of 1000). The callback gets them borrowed, or rc < 0
 * and err (owned by the callback). */
typedef void (*reg_tags_cb)(reg_client *c, int rc, const mar_strv *tags, mar_err *err,
                            void *userdata);
void reg_tags_list(reg_client *c, const oci_ref *ref, reg_tags_cb cb, void *userdata);

/* ---------------------------------------------------------------------------------------------
 * Images: a reference resolved to its index (or manifest), every child manifest and config. */

typedef struct reg_image_entry {
    size_t index;               /* position in the index listing it, 0 for a single manifest */
    const oci_descriptor *desc; /* the index entry (borrowed), NULL for a single manifest */
    oci_entry_role role;        /* of an index entry */
    bool attestation;
    /* Nested indexes (docs/internals/platforms.md §7): the entry of the nested index listing this
     * one, or SIZE_MAX for the top-level document's entries; and how many nested indexes are
     * above it (0 for the top-level index's entries). */
    size_t parent;
    size_t depth;
    reg_blob manifest_raw;
    oci_manifest *manifest; /* NULL when not fetched or failed; an index for a nested index */
    oci_config *config;
    mar_err *err;  /* why this entry could not be read */
    bool not_read; /* err is a rule, not a failure: nested too deep, a loop, a platform beyond
                      mar's limits */
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
    /* fetch every runnable child manifest, descending into nested indexes (their entries are
     * appended to entries) */
    REG_IMAGE_CHILDREN = 1 << 0,
    REG_IMAGE_CONFIGS = 1 << 1, /* and their configs */
    /* and the attestation manifests (the documents only): for copying them (mar index create) */
    REG_IMAGE_ATTESTATIONS = 1 << 2,
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
 * Content store (docs/internals/registry-protocol.md §13): an OCI image layout plus ingest/, locks/
 * and unpack/. Safe for several mar processes at once: per-digest flocks, atomic renames. */

typedef struct reg_store reg_store;

/* The store location: opt (--store), else $MAR_STORE, else /var/lib/mar for root and
 * $XDG_DATA_HOME/mar or ~/.local/share/mar otherwise. Returns: new string. Errors: MAR_EUSAGE. */
MAR_MUST_USE int reg_store_default_path(const char *opt, char **ret, mar_err **err);
/* Opens the store, creating it (0700) and its layout when missing. Errors: MAR_EIO. */
MAR_MUST_USE int reg_store_open(const char *path, reg_store **ret, mar_err **err);
reg_store *reg_store_free(reg_store *s);
MAR_DEFINE_CLEANUP(reg_store, reg_store_free)
#define _cleanup_store_ _cleanup_(reg_store_freep)
const char *reg_store_path(const reg_store *s);
int reg_store_dirfd(const reg_store *s);
/* Takes the store-wide lock, shared (pull, unpack, run) or exclusive (gc, rmi), for the life of
 * the handle. Errors: MAR_EIO (busy when !wait). */
MAR_MUST_USE int reg_store_hold(reg_store *s, bool exclusive, bool wait, mar_err **err);
uint64_t reg_store_free_bytes(const reg_store *s);

/* A committed blob of this size (size < 0: any). */
bool reg_store_has(reg_store *s, const mar_digest *d, int64_t size);
/* Errors: MAR_ENOTFOUND, MAR_EIO. */
MAR_MUST_USE int reg_store_blob_open(reg_store *s, const mar_digest *d, int *ret_fd, mar_err **err);
/* Reads a whole blob (at most cap bytes) and verifies it again. Errors: MAR_ENOTFOUND,
 * MAR_EINTEGRITY, MAR_EIO. */
MAR_MUST_USE int reg_store_read(reg_store *s, const mar_digest *d, size_t cap, mar_buf *ret,
                                mar_err **err);
/* Stores bytes already in memory under their digest (verified first). Errors: MAR_EINTEGRITY,
 * MAR_EIO. */
MAR_MUST_USE int reg_store_put(reg_store *s, const mar_digest *d, const void *p, size_t n,
                               mar_err **err);

/* A download into ingest/, under the blob's lock. */
typedef struct reg_ingest reg_ingest;
/* Returns 0 with *ret NULL when the blob is already committed, 0 with an ingest (resuming what
 * an earlier run left), or 1 when another process holds the blob and !wait. Errors: MAR_EIO. */
MAR_MUST_USE int reg_ingest_begin(reg_store *s, const mar_digest *d, int64_t size, bool wait,
                                  reg_ingest **ret, mar_err **err);
uint64_t reg_ingest_offset(const reg_ingest *g);
/* The hash state of the bytes already ingested (ownership passes to the caller). */
mar_hasher *reg_ingest_take_hasher(reg_ingest *g);
/* Errors: MAR_EIO (disk full names the store and the bytes still needed), MAR_EINTEGRITY (more
 * bytes than the descriptor's size). */
MAR_MUST_USE int reg_ingest_write(reg_ingest *g, const void *p, size_t n, mar_err **err);
MAR_MUST_USE int reg_ingest_reset(reg_ingest *g, mar_err **err);
/* Checks the size, compares the digest the downloader verified with the expected one, then
 * renames into blobs/ (RENAME_NOREPLACE) and syncs the directory. Errors: MAR_EINTEGRITY,
 * MAR_EIO. The ingest is still to be freed. */
MAR_MUST_USE int reg_ingest_commit(reg_ingest *g, const mar_digest *verified, mar_err **err);
/* Makes a finished file of the caller's the ingest's data without copying it: renames dirfd/name
 * (on the store's filesystem: the store's work area, containers/) over ingest/<alg>-<hex>/data
 * and leaves the ingest at its end, its hash state dropped; fd is that file, open. The caller
 * still hashes the file and passes the result to reg_ingest_commit, so nothing unverified gets a
 * name (docs/architecture.md "The content store"). Errors: MAR_EIO. */
MAR_MUST_USE int reg_ingest_adopt(reg_ingest *g, int fd, int dirfd, const char *name,
                                  mar_err **err);
/* Unlocks, keeping the partial data for a later resume. */
reg_ingest *reg_ingest_free(reg_ingest *g);
/* Unlocks and deletes the partial data (it failed verification). */
void reg_ingest_discard(reg_ingest *g);

/* References in index.json (org.opencontainers.image.ref.name). */
typedef struct reg_store_ref {
    char *name;
    char *media_type;
    mar_digest digest;
    int64_t size;
    bool has_platform; /* a per-platform entry of a pulled index */
    oci_platform platform;
    char *created; /* org.opencontainers.image.created when set */
} reg_store_ref;

typedef struct reg_store_refs {
    reg_store_ref *v;
    size_t n;
} reg_store_refs;
void reg_store_refs_release(reg_store_refs *r);

/* Errors: MAR_EIO, MAR_EINTEGRITY (index.json unreadable). */
MAR_MUST_USE int reg_store_list(reg_store *s, reg_store_refs *ret, mar_err **err);
/* Points name at a descriptor, replacing an entry of the same name. Errors: MAR_EIO. */
MAR_MUST_USE int reg_store_tag(reg_store *s, const reg_store_ref *ref, mar_err **err);
/* Removes name and its per-platform entries (name@os/arch...). Returns the number removed. */
MAR_MUST_USE int reg_store_untag(reg_store *s, const char *name, size_t *ret_removed,
                                 mar_err **err);

/* Unpacked layers, by ChainID: unpack/<hex>/rootfs plus .complete, written last. */
char *reg_store_layer_path(const reg_store *s, const mar_digest *chain); /* .../rootfs */
bool reg_store_layer_complete(reg_store *s, const mar_digest *chain);
/* Locks the chain and prepares unpack/part-<hex>/rootfs (removing a dead run's leftovers).
 * Returns 0 with *ret_rootfd (O_PATH) and *ret_lock, 0 with both -1 when the layer is complete,
 * 1 when another process holds it and !wait. Errors: MAR_EIO. */
MAR_MUST_USE int reg_store_layer_begin(reg_store *s, const mar_digest *chain, bool wait,
                                       int *ret_lock, int *ret_rootfd, mar_err **err);
/* Marks the part directory complete (info is written to .complete) and renames it into place.
 * Errors: MAR_EIO. */
MAR_MUST_USE int reg_store_layer_commit(reg_store *s, const mar_digest *chain, const char *info,
                                        mar_err **err);
/* Removes the part directory. */
void reg_store_layer_abort(reg_store *s, const mar_digest *chain);

/* A pulled image found in the store. */
typedef struct reg_store_image {
    char *name;
    mar_digest top;    /* what the name points at (index or manifest) */
    mar_digest digest; /* the chosen manifest */
    oci_platform platform;
    oci_manifest *manifest;
    oci_config *config;
    mar_digest *chains; /* per layer, bottom first */
    bool blobs_present; /* every layer blob is in the store */
    bool unpacked;      /* every layer is unpacked */
} reg_store_image;

/* Finds name (as recorded by a pull) and, for an index, the best entry the matcher accepts
 * among those the store holds. Errors: MAR_ENOTFOUND, MAR_EINTEGRITY, MAR_EIO. */
MAR_MUST_USE int reg_store_image_find(reg_store *s, const char *name, const oci_matcher *m,
                                      reg_store_image *ret, mar_err **err);
/* The same for a reference already listed (reg_store_list), without reading index.json again:
 * for callers that walk every reference. Errors: as reg_store_image_find. */
MAR_MUST_USE int reg_store_image_of(reg_store *s, const reg_store_ref *ref, const oci_matcher *m,
                                    reg_store_image *ret, mar_err **err);
void reg_store_image_release(reg_store_image *im);

/* Takes a directory of the store (rel, e.g. a build's work directory containers/build-<id>)
 * out of use with one rename into trash/ and deletes it in a detached process that holds the
 * caller's shared hold on the store; what it does not finish, `mar gc` removes. Errors: MAR_EIO
 * (nothing moved: the caller removes it itself). */
MAR_MUST_USE int reg_store_trash(reg_store *s, const char *rel, mar_err **err);

typedef struct reg_gc_stats {
    size_t blobs, layers, ingests, parts, tmp;
    uint64_t bytes;
    size_t kept_blobs, kept_layers;
    size_t cache_records; /* build cache records removed (prune_cache) */
} reg_gc_stats;
/* Removes what no reference reaches (blobs, unpacked layers), every ingest and part directory,
 * and stray temporary files, trash/ and the work directories of killed builds (containers/build-*),
 * under the exclusive store lock. The build cache's records keep the
 * layers they name, unless prune_cache removes the records first. Errors: MAR_EIO. */
MAR_MUST_USE int reg_store_gc(reg_store *s, bool dry_run, bool prune_cache, reg_gc_stats *ret,
                              mar_err **err);

/* Build cache records (store-cache.c; docs/internals/build.md §11): buildcache/<key hex>, small
 * JSON documents the builder writes and reads. */
#define REG_CACHE_RECORD_MAX (16 * 1024)
/* Errors: MAR_ENOTFOUND (no record), MAR_EIO. */
MAR_MUST_USE int reg_store_cache_get(reg_store *s, const mar_digest *key, mar_buf *ret,
                                     mar_err **err);
/* Writes (or replaces) the record atomically. Errors: MAR_EIO. */
MAR_MUST_USE int reg_store_cache_put(reg_store *s, const mar_digest *key, const char *text,
                                     mar_err **err);
/* Checks every blob against its name: returns the number of bad ones (listed in ret_bad). */
MAR_MUST_USE int reg_store_verify(reg_store *s, mar_strv *ret_bad, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Pulling into the store (pull.c). */

typedef enum {
    REG_LAYER_WAITING = 0,
    REG_LAYER_LOCKED, /* another process is fetching or unpacking it: waiting */
    REG_LAYER_DOWNLOADING,
    REG_LAYER_DOWNLOADED, /* verified and committed */
    REG_LAYER_PRESENT,    /* already in the store */
    REG_LAYER_EXTRACTING,
    REG_LAYER_DONE, /* unpacked (or stored, without unpacking) */
    REG_LAYER_FAILED,
} reg_layer_state;

typedef struct reg_pull reg_pull;

/* One distinct layer blob of a pull, as the progress display shows it. */
typedef struct reg_pull_layer {
    reg_pull *pull;
    const oci_descriptor *desc;
    char platform[OCI_PLATFORM_STR_MAX]; /* of the first image using it */
    size_t image, index;                 /* where it first appears */
    mar_digest diff_id;
    reg_layer_state state;
    uint64_t size;
    uint64_t got;          /* bytes in the store's ingest, resumed ones included */
    uint64_t resumed_from; /* bytes an earlier run had left */
    uint64_t unpacked;     /* compressed bytes the unpacker consumed */
} reg_pull_layer;

typedef void (*reg_pull_progress_fn)(reg_pull *p, const reg_pull_layer *row, void *ud);

typedef struct reg_pull_opts {
    const char *name; /* the reference as given, for messages */
    const oci_platform *platforms;
    size_t n_platforms;
    const oci_platform *host; /* the default choice when no platform is given */
    bool all_platforms;
    bool unpack;
    int jobs; /* parallel downloads; unpack threads are min(jobs, CPUs) */
    const oci_layer_limits *lim;
    reg_pull_progress_fn progress; /* called with the pull's lock held, from any thread */
    void *progress_ud;
} reg_pull_opts;

typedef struct reg_pull_stats {
    size_t blobs_downloaded, blobs_present;
    size_t layers_unpacked, layers_present;
    size_t retries;
    uint64_t bytes_downloaded;
} reg_pull_stats;

typedef struct reg_pull_image {
    oci_platform platform;
    mar_digest manifest, config;
    size_t n_layers;
    mar_digest *blobs;  /* per layer */
    mar_digest *chains; /* per layer: the unpacked directories, bottom first */
} reg_pull_image;

typedef struct reg_pull_result {
    char *name; /* the reference recorded in index.json */
    mar_digest digest;
    char *media_type;
    int64_t size;
    reg_pull_image *images;
    size_t n_images;
    reg_pull_stats stats;
} reg_pull_result;

/* Pulls ref into the store. Errors: those of the registry client, MAR_ENOTFOUND (no such
 * platform), MAR_EINTEGRITY (verification, hostile layers), MAR_EUNSUPPORTED (layer types),
 * MAR_EIO (store). */
MAR_MUST_USE int reg_pull_run(reg_client *c, reg_store *s, const oci_ref *ref,
                              const reg_pull_opts *o, reg_pull_result *ret, mar_err **err);
void reg_pull_result_release(reg_pull_result *r);
/* All rows of a pull (for a progress display). Borrowed. */
size_t reg_pull_rows(const reg_pull *p, const reg_pull_layer **ret);

/* ---------------------------------------------------------------------------------------------
 * Deep scan (deep-scan.c): what the binaries of image entries really are. */

typedef struct reg_deep_entry {
    size_t entry;         /* in: index into img->entries */
    oci_platform label;   /* in: the platform the entry claims (published, else its config's) */
    oci_elf_summary *elf; /* out: new (free), NULL when not scanned or on failure */
    mar_err *err;         /* out: why the entry could not be scanned (owned), or NULL */
} reg_deep_entry;

/* Scans the tar layers of every entry in v (whose manifest and config img holds; others are
 * left with neither elf nor err) and summarizes each entry's final filesystem against its label
 * (oci_elf_summarize). A layer the store s holds is read from there (s may be NULL); every
 * other layer streams from the registry through c into a scanner thread, `jobs` at a time (0:
 * 8), and counts only if its bytes match the descriptor digest. Runs c until done. Errors: those
 * of reg_client_run; a failure of one entry (a layer that cannot be fetched or read) lands in
 * its err. */
MAR_MUST_USE int reg_deep_scan(reg_client *c, reg_store *s, const reg_image *img, reg_deep_entry *v,
                               size_t n, int jobs, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Pushing (upload.c, upload-source.c, push.c, push-store.c, retag.c;
 * docs/internals/registry-protocol.md §14).
 *
 * A push is a set of blobs and documents for one destination repository, sent children before
 * parents: every blob (HEAD first, skipping what the registry has; a cross-repository mount when
 * a source repository is named; otherwise a monolithic PUT, or chunked PATCHes that resume from
 * the range the registry reports after a dropped connection), then every manifest by digest,
 * then every index by digest, and last the top document under the tag. A failure stops the push
 * before the next stage, so a tag never names something the registry does not hold entirely.
 * Everything runs on the client's event loop, on the calling thread; callbacks are called
 * without any lock held.
 *
 * The users and how they feed it:
 *   - mar push: reg_push_add_stored() adds a stored image (blobs read from the store's files);
 *   - mar build --push: the built layers and config are committed to the store first, then
 *     added as REG_SRC_STORE (or REG_SRC_MEMORY for a config still in memory); its manifest or
 *     index with reg_push_add_manifest()/reg_push_set_top();
 *   - mar copy: every blob as REG_SRC_REGISTRY (streamed from the source registry's GET through a
 *     bounded window, never whole in memory) or, within one registry, mounted with
 *     reg_push_opts.mount_from; the documents as fetched, byte for byte;
 *   - mar index create: the children are already in the repository: reg_push_expect_manifest()
 *     checks each exists, and the new index is the top. */

/* Where a blob's bytes come from. */
typedef enum {
    REG_SRC_MEMORY = 1, /* mem: borrowed until the push ends */
    REG_SRC_STORE,      /* store: its blob of the descriptor's digest, opened when needed */
    REG_SRC_FD,         /* fd: borrowed, bytes 0..size of it */
    REG_SRC_REGISTRY,   /* from: the blob is streamed from that repository (a GET per attempt) */
    REG_SRC_PRODUCER,   /* produce: the caller hands bytes over as they come (reg_producer_write) */
} reg_src_kind;

typedef struct reg_producer reg_producer;

typedef struct reg_blob_src {
    reg_src_kind kind;
    const void *mem;
    reg_store *store;
    int fd;
    const oci_ref *from; /* copied */
    /* REG_SRC_PRODUCER: called when the upload wants bytes from `offset` on (0 first; again only
     * when a failure lost bytes the upload no longer holds), after any earlier production was
     * abandoned. The producer answers with reg_producer_write() calls as bytes come, and one
     * reg_producer_end(). `room` says it may write again after a write returned 0. The upload
     * hashes what it sends, so a producer's bytes are verified like any others. */
    void (*produce)(void *ud, reg_producer *pr, uint64_t offset);
    void (*room)(void *ud, reg_producer *pr);
    void *ud;
} reg_blob_src;

/* Hands over the next bytes, in order, all or nothing. Returns 1 when taken, 0 when the upload's
 * window has no room for them (offer them again after `room`), -1 when the upload no longer
 * wants this production (stop, and end it). */
int reg_producer_write(reg_producer *pr, const void *p, size_t n);
/* The producer is done: rc 0 when every byte was written, or a failure (err is taken). */
void reg_producer_end(reg_producer *pr, int rc, mar_err *err);

typedef enum {
    REG_PUSH_WAITING = 0,
    REG_PUSH_CHECKING,  /* asking whether the registry has it */
    REG_PUSH_MOUNTING,  /* a cross-repository mount */
    REG_PUSH_UPLOADING, /* bytes on their way (sent counts them) */
    REG_PUSH_PRESENT,   /* the registry had it: nothing sent */
    REG_PUSH_MOUNTED,   /* mounted from another repository: nothing sent */
    REG_PUSH_PUSHED,    /* uploaded, and the registry's digest matched */
    REG_PUSH_FAILED,
} reg_push_state;

typedef struct reg_push reg_push;

/* One blob or document of a push, as a progress display or a report shows it. */
typedef struct reg_push_item {
    reg_push *push;
    bool document;       /* a manifest or index (pushed after every blob) */
    bool top;            /* the document put under the tag */
    bool expect_only;    /* reg_push_expect_manifest: checked, never sent */
    oci_descriptor desc; /* media type, digest, size; platform for an index entry */
    reg_push_state state;
    uint64_t sent;         /* bytes of this blob the registry acknowledged or has in flight */
    uint64_t resumed_from; /* where the last resume started, 0 for none */
    unsigned resumes;      /* continued after a failure from the range the registry reported */
    unsigned restarts;     /* started over in a new upload session */
} reg_push_item;

/* Called on every state change and as bytes go out, on the event loop, without locks. */
typedef void (*reg_push_progress_fn)(reg_push *p, const reg_push_item *item, void *ud);

typedef struct reg_push_opts {
    const oci_ref *dst;     /* repository, and the tag for the top document (NULL tag: by
                               digest only); copied */
    const char *mount_from; /* a repository path of the same registry to mount blobs from */
    int jobs;               /* blobs in flight at once; 0 = 4 */
    /* Blobs up to monolithic_max bytes go in one PUT, larger ones in PATCHes of chunk_size
     * (raised to the registry's OCI-Chunk-Min-Length). 0 = 32 MiB each, or
     * $MAR_PUSH_CHUNK_SIZE (bytes), for tests. */
    uint64_t chunk_size;
    uint64_t monolithic_max;
    /* Put child documents without a HEAD first: for small documents the repository most
     * likely lacks (mar index create), a round trip less. */
    bool put_documents;
    /* Mount every REG_SRC_REGISTRY blob from its own repository when that is of the
     * destination's registry (mar copy, mar index create gather several repositories). */
    bool mount_sources;
    reg_push_progress_fn progress;
    void *progress_ud;
} reg_push_opts;

typedef struct reg_push_stats {
    size_t blobs_pushed, blobs_mounted, blobs_present;
    size_t documents_pushed, documents_present;
    uint64_t bytes_sent; /* request body bytes, resent ones included */
    size_t resumes, restarts;
    uint64_t retries; /* of single requests, as reg_stats counts them */
} reg_push_stats;

typedef struct reg_push_result {
    mar_digest digest; /* the top document, as pushed and confirmed */
    char *media_type;
    int64_t size;
    reg_push_stats stats;
} reg_push_result;
void reg_push_result_release(reg_push_result *r);

/* Returns: new push (nothing starts before reg_push_run). */
reg_push *reg_push_new(reg_client *c, const reg_push_opts *o);
reg_push *reg_push_free(reg_push *p);
MAR_DEFINE_CLEANUP(reg_push, reg_push_free)
#define _cleanup_push_ _cleanup_(reg_push_freep)
/* Adds a blob (config or layer). A digest added twice is pushed once. */
void reg_push_add_blob(reg_push *p, const oci_descriptor *d, const reg_blob_src *src);
/* Adds a manifest or index sent by digest before the top: its exact bytes (copied), as
 * Content-Type its media type. platform (may be NULL) is for display. Errors: MAR_EUNSUPPORTED
 * (not a manifest media type), MAR_EINTEGRITY (over the manifest cap). */
MAR_MUST_USE int reg_push_add_manifest(reg_push *p, const char *media_type, const void *bytes,
                                       size_t n, const oci_platform *platform, mar_err **err);
/* Adds a document the repository must already have (checked with HEAD, never sent): the
 * children of an index made from what a registry holds. */
void reg_push_expect_manifest(reg_push *p, const oci_descriptor *d);
/* Sets the top document, put last, under opts.dst's tag (or by digest). Errors: as
 * reg_push_add_manifest. */
MAR_MUST_USE int reg_push_set_top(reg_push *p, const char *media_type, const void *bytes, size_t n,
                                  mar_err **err);
/* Runs the push to its end. Errors: the first failure (MAR_EAUTH naming the repository and the
 * action, MAR_ENET, MAR_ERATELIMIT, MAR_EINTEGRITY for a digest the registry disagrees on or a
 * source that does not match its descriptor, MAR_ENOTFOUND for an expected document the
 * repository lacks, MAR_EIO). */
MAR_MUST_USE int reg_push_run(reg_push *p, reg_push_result *ret, mar_err **err);
/* Every item, in the order added. Borrowed, valid until reg_push_free. */
size_t reg_push_items(const reg_push *p, const reg_push_item **ret);

/* What reg_push_add_stored did with an image of the store. */
typedef struct reg_push_plan {
    char *name;                  /* the stored reference */
    mar_digest source;           /* what the name points at */
    bool new_index;              /* --platform kept part of an index: a new index is pushed */
    size_t kept, entries;        /* index entries pushed, of how many */
    size_t dropped_attestations; /* of the kept platforms, not in the store */
} reg_push_plan;
void reg_push_plan_release(reg_push_plan *pl);

/* Adds a stored image to a push: its index (or manifest), child manifests, configs and layers,
 * read from the store and re-verified. With platforms, an index keeps only the entries those
 * select (and the attestations that refer to them, when stored) and a new index is made; without
 * them every child must be stored. Errors: MAR_ENOTFOUND (the name is not stored; a child is
 * missing: the message lists them; no entry for a platform), MAR_EINTEGRITY (a stored blob does
 * not match its descriptor), MAR_EIO. */
MAR_MUST_USE int reg_push_add_stored(reg_push *p, reg_store *s, const char *name,
                                     const oci_platform *platforms, size_t n_platforms,
                                     reg_push_plan *ret, mar_err **err);

/* Gives the image src names in a registry the name o->dst of the same registry: in the same
 * repository the document is put again under the new tag (no blob moves); in another repository
 * its blobs are mounted from src (streamed from it when the registry does not mount) and its
 * child manifests put by digest first. o->mount_from is ignored. Errors: MAR_EUSAGE (another
 * registry), those of reg_manifest_fetch and reg_push_run. */
MAR_MUST_USE int reg_retag(reg_client *c, const oci_ref *src, const reg_push_opts *o,
                           reg_push_result *ret, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Copying and assembling images (copy.c, copy-layout.c, index.c;
 * docs/internals/registry-protocol.md §15). Both are pushes fed from elsewhere. */

/* Where an image is: a registry reference, an OCI image layout directory (oci:DIR[:TAG]) or an
 * OCI image layout in a tar archive (oci-archive:FILE[:TAG]). TAG is the layout's
 * org.opencontainers.image.ref.name. */
typedef enum {
    REG_END_REGISTRY = 1,
    REG_END_LAYOUT,
    REG_END_ARCHIVE,
} reg_end_kind;

typedef struct reg_endpoint {
    reg_end_kind kind;
    oci_ref ref; /* REG_END_REGISTRY */
    char *path;  /* the directory or the archive */
    char *tag;   /* NULL: the layout's only image (source) or none (destination) */
} reg_endpoint;

/* Parses "oci:DIR[:TAG]", "oci-archive:FILE[:TAG]", "docker://REF" or a reference. Errors:
 * MAR_EUSAGE. */
MAR_MUST_USE int reg_endpoint_parse(const char *s, reg_endpoint *ret, mar_err **err);
void reg_endpoint_release(reg_endpoint *e);

typedef struct reg_copy_opts {
    const oci_platform *platforms; /* keep only these entries of an index (NULL: all) */
    size_t n_platforms;
    int jobs; /* blobs in flight; 0 = 4 */
    reg_push_progress_fn progress;
    void *progress_ud;
} reg_copy_opts;

typedef struct reg_copy_result {
    mar_digest source; /* the source's top document */
    mar_digest digest; /* what the destination holds: source unless filtered */
    char *media_type;
    int64_t size;
    bool new_index;       /* --platform kept part of an index */
    size_t kept, entries; /* index entries copied, of how many */
    size_t blobs;         /* distinct blobs */
    uint64_t bytes;       /* blob bytes written (a layout) or sent (a registry) */
    reg_push_stats stats; /* to a registry */
} reg_copy_result;
void reg_copy_result_release(reg_copy_result *r);

/* Copies an image: registry to registry (blobs streamed from the source's GET into the
 * destination's upload, or mounted within one registry; never stored), registry to or from an
 * OCI layout directory or archive. Documents go byte for byte, so the destination holds the
 * source's digest, unless platforms narrow an index: then a new index of the kept entries (and
 * the attestations that describe them) is made. Children before parents, the tag last.
 * Errors: MAR_EUSAGE (a layout path that is not a directory, layout to layout),
 * MAR_ENOTFOUND (no such image, tag or platform), those of reg_push_run and of the fetches,
 * MAR_EINTEGRITY (a blob or document that does not match its descriptor), MAR_EIO. */
MAR_MUST_USE int reg_copy(reg_client *c, const reg_endpoint *src, const reg_endpoint *dst,
                          const reg_copy_opts *o, reg_copy_result *ret, mar_err **err);

typedef struct reg_index_opts {
    const oci_ref *dst; /* the repository and tag of the new index */
    const oci_ref *srcs;
    size_t n_srcs;
    bool append;                /* start from the index dst names */
    bool replace;               /* a later source replaces an entry of the same platform */
    const oci_platform *remove; /* entries to drop (with their attestations) */
    size_t n_remove;
    const mar_strv *annotations; /* "KEY=VALUE", index level */
    bool dry_run;                /* make the index, push nothing */
    int jobs;
    reg_push_progress_fn progress;
    void *progress_ud;
} reg_index_opts;

typedef struct reg_index_result {
    mar_buf json; /* the index, as pushed */
    mar_digest digest;
    size_t entries, attestations;
    size_t mounted_sources; /* sources from another repository */
    bool pushed;
    reg_push_stats stats;
} reg_index_result;
void reg_index_result_release(reg_index_result *r);

/* Makes one index of several sources: each single-platform image becomes an entry whose
 * platform its config gives (a descriptor that disagrees with the config is refused), each
 * index gives its entries, attestation manifests following the entries they describe. Sources
 * of another repository are mounted (streamed from another registry). Errors: MAR_EUSAGE (a
 * duplicate platform without replace, a bad annotation, a mislabeled source), MAR_ENOTFOUND (a
 * source, or the index to append to, does not exist), those of reg_push_run. */
MAR_MUST_USE int reg_index_create(reg_client *c, const reg_index_opts *o, reg_index_result *ret,
                                  mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Hosts. */

/* True for 127.0.0.0/8, ::1 and "localhost" (with any port) after inet_pton
 * (docs/internals/registry-protocol.md §8). */
bool reg_host_is_loopback(const char *hostport);

#endif
