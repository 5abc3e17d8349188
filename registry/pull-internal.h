/* Shared between pull.c, pull-docs.c and pull-unpack.c only. */
#ifndef MAR_PULL_INTERNAL_H
#define MAR_PULL_INTERNAL_H

#include "registry-internal.h"

#include <pthread.h>

/* Threads and what each field may be touched by (docs/architecture.md "Threads and locks"):
 *   loop       the calling thread: the registry client's event loop and every callback it makes,
 *              then, once the committer and the workers are joined, settling and tagging;
 *   committer  the commit thread (pull.c committer());
 *   worker     an unpack thread (pull-unpack.c reg__pull_worker());
 *   fixed      written before any thread starts (the documents, plan()), read-only afterwards.
 * "mu" means: read or written only with reg_pull.mu held while the committer or a worker runs
 * (before they start and after they are joined the loop is alone and takes no lock). A blob or
 * chain job is owned by one thread at a time and handed to the next through a queue under mu,
 * whose lock orders the hand-over, so the job's own fields need no lock. */

/* One per distinct blob, parallel to the rows. Owned by the loop until it is queued for commit
 * (cq), then by the committer; by the loop again after the committer is joined. */
typedef struct blobjob {
    const oci_descriptor *desc; /* fixed */
    reg_ingest *ing;            /* the owner's */
    bool deferred;              /* loop */
    int attempts;               /* loop */
    mar_digest verified;        /* what the download hashed to: set by the loop, read by the
                                 * committer after the hand-over */
} blobjob;

/* One per distinct ChainID: what gets unpacked. Owned by the worker that took it from the
 * queue, then by the loop once the workers are joined (settling). */
typedef struct chainjob {
    size_t row;       /* the blob; fixed */
    mar_digest chain; /* fixed */
    int lock;
    int rootfd;
    bool extracted; /* by a worker, waiting to be settled */
    bool deferred;  /* another process holds the chain */
    oci_unpack_result res;
} chainjob;

/* Written by the loop while the documents arrive (no other thread runs yet); fixed afterwards. */
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
    reg_client *c;          /* fixed; used by the loop only (the client is single-threaded) */
    reg_store *s;           /* fixed; the store's fds are read-only, so every thread may use it */
    const oci_ref *ref;     /* fixed */
    const reg_pull_opts *o; /* fixed */
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* workers wait on it: queue, closing, err */
    mar_err *err;       /* the first failure; mu */
    reg_blob top;       /* loop */
    oci_manifest *topm; /* loop */
    pimage *images;     /* fixed once the documents are in */
    size_t n_images;    /* fixed */
    /* Rows: desc, size, diff_id, platform, image and index are fixed; state, got, resumed_from
     * and unpacked are mu (the progress callback reads every row under it). */
    reg_pull_layer *rows;
    size_t n_rows;    /* fixed */
    blobjob *blobs;   /* see blobjob */
    size_t n_blobs;   /* fixed */
    chainjob *chains; /* see chainjob */
    size_t n_chains;  /* fixed */
    size_t next_blob; /* next blob to start; loop */
    size_t active;    /* downloads in flight; loop */
    size_t *queue;    /* chain jobs for the workers; queue, q_head, q_tail: mu, signalled on cv */
    size_t q_head, q_tail;
    bool closing; /* mu: no more chain jobs will come */
    /* Downloaded blobs waiting for their commit (fsync, rename, directory fsync), which runs on
     * its own thread: an fsync on the event loop would stall every other download. */
    pthread_t committer;    /* loop */
    bool committer_running; /* loop */
    pthread_cond_t ccv;     /* the committer waits on it: cq, cq_closing */
    size_t *cq;             /* cq, cq_head, cq_tail, cq_closing: mu */
    size_t cq_head, cq_tail;
    bool cq_closing;
    int pending_docs; /* loop */
    /* Documents another process was fetching: taken one at a time once nothing else runs. */
    size_t *dd_image;     /* loop */
    int *dd_kind;         /* loop */
    size_t n_dd;          /* loop */
    bool top_put_pending; /* the top document still has to be stored; loop */
    /* mu while threads run; retries is written by the loop alone (without mu) and
     * layers_present by settling, after the joins. Read once every thread is joined. */
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
MAR_MUST_USE int reg__pull_docs_finish(reg_pull *p, mar_err **err);
/* Checks a config's platform where the index did not say it: a single-manifest image against
 * the request, and an index entry without a platform against the request that chose it (as
 * containerd does, docs/internals/platforms.md §7). */
MAR_MUST_USE int reg__pull_check_single(reg_pull *p, mar_err **err);
/* Frees what pull-docs.c added to p. */
void reg__pull_docs_release(reg_pull *p);

/* pull-unpack.c */
/* Hands the chains of a committed blob to the workers. */
void reg__pull_queue_chains(reg_pull *p, size_t blob);
void *reg__pull_worker(void *arg);
/* Settles and commits an image's unpacked layers bottom-up. */
MAR_MUST_USE int reg__pull_settle_image(reg_pull *p, pimage *im, mar_err **err);

#endif
