/* Shared between pull.c, pull-docs.c and pull-unpack.c only. */
#ifndef MAR_PULL_INTERNAL_H
#define MAR_PULL_INTERNAL_H

#include "registry-internal.h"

#include <pthread.h>

/* One per distinct blob, parallel to the rows. */
typedef struct blobjob {
    const oci_descriptor *desc;
    reg_ingest *ing;
    bool deferred;
    int attempts;
    mar_digest verified; /* what the download hashed to, for the commit */
} blobjob;

/* One per distinct ChainID: what gets unpacked. */
typedef struct chainjob {
    size_t row; /* the blob */
    mar_digest chain;
    int lock;
    int rootfd;
    bool extracted; /* by a worker, waiting to be settled */
    bool deferred;  /* another process holds the chain */
    oci_unpack_result res;
} chainjob;

typedef struct pimage {
    oci_platform platform;
    oci_descriptor desc; /* the manifest's descriptor (index entry, or the top document) */
    bool has_desc;
    reg_blob raw;
    oci_manifest *m;
    reg_blob raw_config;
    oci_config *cfg;
    size_t *chains; /* chain job per layer */
} pimage;

struct reg_pull {
    reg_client *c;
    reg_store *s;
    const oci_ref *ref;
    const reg_pull_opts *o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mar_err *err; /* the first failure */
    reg_blob top;
    oci_manifest *topm;
    pimage *images;
    size_t n_images;
    reg_pull_layer *rows;
    size_t n_rows;
    blobjob *blobs;
    size_t n_blobs;
    chainjob *chains;
    size_t n_chains;
    size_t next_blob; /* next blob to start */
    size_t active;    /* downloads in flight */
    size_t *queue;    /* chain jobs for the workers */
    size_t q_head, q_tail;
    bool closing;
    /* Downloaded blobs waiting for their commit (fsync, rename, directory fsync), which runs on
     * its own thread: an fsync on the event loop would stall every other download. */
    pthread_t committer;
    bool committer_running;
    pthread_cond_t ccv;
    size_t *cq;
    size_t cq_head, cq_tail;
    bool cq_closing;
    int pending_docs;
    /* Documents another process was fetching: taken one at a time once nothing else runs. */
    size_t *dd_image;
    int *dd_kind;
    size_t n_dd;
    bool top_put_pending; /* the top document still has to be stored */
    reg_pull_stats stats;
    /* Nested indexes read on the way to the chosen entries (docs/internals/platforms.md §7):
     * choosing runs again each time one arrives. */
    reg_blob *nested_raw;
    oci_manifest **nested;
    size_t n_nested;
    const oci_descriptor *want_nested; /* the one the last choice is waiting for */
    bool *nested_put_pending;          /* nested_raw[i] still to be stored */
    /* Per requested platform (or the host): the entry chosen for it (borrowed). */
    const oci_descriptor **picked;
    size_t n_picked;
};

enum { DOC_MANIFEST, DOC_CONFIG };

/* pull.c */
bool reg__pull_failed(reg_pull *p);
/* Records the first error (takes e). */
void reg__pull_fail(reg_pull *p, mar_err *e);
/* Calls the progress callback for a row; p->mu held. */
void reg__pull_emit_locked(reg_pull *p, size_t row);
void reg__pull_set_state(reg_pull *p, size_t row, reg_layer_state st);

/* pull-docs.c: the index, manifests and configs, through the store. */
/* Starts resolving the reference. */
void reg__pull_docs_start(reg_pull *p);
/* Runs the client until every document is in (waiting, one at a time, for those another
 * process holds). Errors: transport failures; the rest lands in p->err. */
int reg__pull_docs_finish(reg_pull *p, mar_err **err);
/* Checks a config's platform where the index did not say it: a single-manifest image against
 * the request, and an index entry without a platform against the request that chose it (as
 * containerd does, docs/internals/platforms.md §7). */
int reg__pull_check_single(reg_pull *p, mar_err **err);
/* Frees what pull-docs.c added to p. */
void reg__pull_docs_release(reg_pull *p);

/* pull-unpack.c */
/* Hands the chains of a committed blob to the workers. */
void reg__pull_queue_chains(reg_pull *p, size_t blob);
void *reg__pull_worker(void *arg);
/* Settles and commits an image's unpacked layers bottom-up. */
int reg__pull_settle_image(reg_pull *p, pimage *im, mar_err **err);

#endif
