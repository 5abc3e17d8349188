/* Shared between upload.c, upload-source.c, push.c, push-store.c and retag.c only. */
#ifndef MAR_PUSH_INTERNAL_H
#define MAR_PUSH_INTERNAL_H

#include "registry-internal.h"

/* The bytes of one blob as an upload reads them (upload-source.c): at any offset from a file or
 * memory; from a producer through a window that keeps the bytes the registry has not yet
 * acknowledged, so a resume inside the window needs no new production. */
typedef struct reg_source reg_source;

/* The largest chunk of an upload from a producer. Its window holds one chunk plus the pieces a
 * transfer hands over at once (a producer writes all of a piece or nothing), so a chunk can
 * always be sent again from memory and a piece always fits once the chunk is acknowledged. */
#define REG__SOURCE_WINDOW (8u << 20)
#define REG__SOURCE_SLACK  (64u << 10)

/* Opens the source of a blob; a producer's window is `chunk` + REG__SOURCE_SLACK bytes (at most
 * the blob). Errors: MAR_ENOTFOUND (a store blob missing), MAR_EINTEGRITY (a file whose size is
 * not the descriptor's), MAR_EIO, MAR_EFAIL (a producer without its callbacks). */
MAR_MUST_USE int reg__source_open(reg_client *c, const reg_blob_src *src, const oci_descriptor *d,
                                  uint64_t chunk, reg_source **ret, mar_err **err);
reg_source *reg__source_free(reg_source *s);
/* Copies up to n bytes at off. Returns the count, REG_BODY_PAUSE when a producer has not
 * delivered them yet (wake is called once they are), or REG_BODY_ABORT with *err set (the
 * producer failed, or lost bytes it cannot produce again). */
ssize_t reg__source_read(reg_source *s, uint64_t off, void *buf, size_t n, mar_err **err);
/* Makes a producer's window hold chunk + REG__SOURCE_SLACK bytes (at most the blob): for a
 * registry whose OCI-Chunk-Min-Length is larger than the chunks mar chose. */
void reg__source_fit_chunk(reg_source *s, uint64_t chunk);
/* The registry acknowledged everything before off: a producer's window may drop it. */
void reg__source_ack(reg_source *s, uint64_t off);
/* Whether reads may start again at off (after a resume or a restart), asking the producer to
 * produce again from there when the window no longer holds it. */
bool reg__source_rewind(reg_source *s, uint64_t off);
/* Who to call when paused bytes arrive: fn(ud), once per pause. */
void reg__source_on_wake(reg_source *s, void (*fn)(void *ud), void *ud);

/* One blob to one repository (upload.c). */
typedef struct reg_upload_params {
    reg_client *c;
    reg_host *host;
    const char *repo;       /* destination repository path */
    const char *mount_from; /* a repository to mount from, or NULL */
    const char *scope;      /* token scopes for every request (reg__push_scope) */
    const oci_descriptor *desc;
    reg_source *src;         /* borrowed; opened by the caller */
    uint64_t chunk_size;     /* PATCH size */
    uint64_t monolithic_max; /* at most this many bytes go in one PUT */
    /* Progress (state, bytes acknowledged or in flight, the offset of the last resume) and the
     * end: rc 0 with the final state (PRESENT, MOUNTED, PUSHED), or a failure (err taken). */
    void (*progress)(void *ud, reg_push_state st, uint64_t sent, uint64_t resumed_from,
                     bool resumed, bool restarted);
    void (*done)(void *ud, int rc, reg_push_state final, uint64_t body_bytes, mar_err *err);
    void *ud;
} reg_upload_params;

void reg__upload_start(const reg_upload_params *prm);

/* The scope a push needs: repository:REPO:pull,push, and repository:FROM:pull to mount.
 * Returns: new string. */
char *reg__push_scope(const char *repo, const char *from);

/* A Location header resolved against the URL it came with, with the redirect rules of
 * docs/internals/registry-protocol.md §7 for the scheme. Returns: new URL, or NULL with *err set
 * (MAR_ENET). */
char *reg__resolve_location(reg_client *c, const char *base, const char *location, mar_err **err);

/* A document fetched for a copy (remote-src.c): reg__on_fetch is its reg_blob_cb. */
typedef struct reg__fetched {
    bool done;
    int rc;
    mar_err *err;
    reg_blob blob;
    const oci_descriptor *desc; /* the index entry, for children */
} reg__fetched;
void reg__on_fetch(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud);
void reg__fetched_release(reg__fetched *f);
/* Parses a fetched document into *ret and adds a manifest's config and layers to the push,
 * streamed from src. Errors: the fetch's, those of oci_manifest_parse. */
MAR_MUST_USE int reg__push_add_fetched(reg_push *p, const oci_ref *src, reg__fetched *f,
                                       const char *media_type, oci_manifest **ret, mar_err **err);
/* Fetches the entries of idx (those keep marks, or all when keep is NULL) from src, nested
 * indexes included, and adds every document and blob to the push. Runs c. Errors: those of the
 * fetches, MAR_EUNSUPPORTED (nested more than 4 deep). */
MAR_MUST_USE int reg__push_add_children(reg_client *c, reg_push *p, const oci_ref *src,
                                        oci_manifest *idx, const bool *keep, mar_err **err);

/* An index with only the entries keep marks (of n); every other field as it was (push-store.c).
 * Errors: MAR_EINTEGRITY (not JSON), MAR_EFAIL. */
MAR_MUST_USE int reg__narrowed_index(const mar_buf *raw, const bool *keep, size_t n, mar_buf *ret,
                                     mar_err **err);

/* The bytes of a document item of a push (push.c). Borrowed. */
const mar_buf *reg__push_item_bytes(const reg_push *p, size_t i);

/* Marks the entries of an index that the platforms select (normalized equality, containerd's
 * OnlyStrict; attestations not included). Errors: MAR_ENOTFOUND naming a platform no entry has,
 * with what the index has. */
MAR_MUST_USE int reg__select_platforms(const char *name, const oci_manifest *idx,
                                       const oci_platform *platforms, size_t n_platforms,
                                       bool *keep, mar_err **err);
/* Which entries of an index a copy keeps (copy.c): those the platforms select (every one when
 * none is given; each platform must select one), and the attestations that describe a kept
 * entry. keep has idx->n_manifests slots, zeroed. Errors: MAR_ENOTFOUND naming what idx has. */
MAR_MUST_USE int reg__copy_select(const char *name, const oci_manifest *idx,
                                  const oci_platform *platforms, size_t n_platforms, bool *keep,
                                  mar_err **err);
/* A copy into, or out of, an OCI image layout directory or archive (copy-layout.c). */
MAR_MUST_USE int reg__copy_to_layout(reg_client *c, const oci_ref *src, const reg_endpoint *dst,
                                     const reg_copy_opts *o, reg_copy_result *ret, mar_err **err);
MAR_MUST_USE int reg__copy_from_layout(reg_client *c, const reg_endpoint *src, const oci_ref *dst,
                                       const reg_copy_opts *o, reg_copy_result *ret, mar_err **err);

#endif
