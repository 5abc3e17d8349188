/* Pulling an image into the store: resolve the reference, choose the platforms, store the
 * documents, download the layers in parallel into ingest/ (resuming what a killed run left),
 * and unpack each layer into its own directory on worker threads while other layers still
 * download. Layers are then settled in order (settle.c) and marked complete.
 *
 * Cross-process protocol (registry-protocol.md §13): a blob or a chain another process holds
 * is not waited for while this run has work of its own; those are taken afterwards, blocking,
 * in order (blobs in sorted digest order; chains bottom-up, which cannot deadlock because a
 * ChainID fixes every layer under it).
 *
 * Threads: the registry client and everything it calls back run on the calling thread; the
 * workers only unpack. Shared state is guarded by p->mu, and the progress callback is called
 * with it held, so the CLI sees one event at a time. */
#include "registry-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>

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
    reg_pull_stats stats;
};

/* ---- failure and progress ------------------------------------------------------------------- */

static bool failed(reg_pull *p)
{
    pthread_mutex_lock(&p->mu);
    bool f = p->err != NULL;
    pthread_mutex_unlock(&p->mu);
    return f;
}

/* Records the first error (takes e). */
static void fail(reg_pull *p, mar_err *e)
{
    pthread_mutex_lock(&p->mu);
    if (!p->err) {
        p->err = e;
        e = NULL;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    mar_err_free(e);
}

static void emit_locked(reg_pull *p, size_t row)
{
    if (p->o->progress) {
        p->o->progress(p, &p->rows[row], p->o->progress_ud);
    }
}

static void set_state(reg_pull *p, size_t row, reg_layer_state st)
{
    pthread_mutex_lock(&p->mu);
    p->rows[row].state = st;
    emit_locked(p, row);
    pthread_mutex_unlock(&p->mu);
}

/* ---- documents ------------------------------------------------------------------------------ */

static int store_doc(reg_pull *p, const reg_blob *b, mar_err **err)
{
    return reg_store_put(p->s, &b->digest, b->data.data, b->data.len, err);
}

typedef struct docctx {
    reg_pull *p;
    size_t image;
} docctx;

static void config_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    docctx *d = ud;
    reg_pull *p = d->p;
    pimage *im = &p->images[d->image];
    free(d);
    p->pending_docs--;
    if (rc < 0) {
        fail(p, err);
        return;
    }
    im->raw_config = *blob;
    *blob = (reg_blob){.data = MAR_BUF_INIT(0)};
    mar_err *e = NULL;
    if (oci_config_parse(im->raw_config.data.data, im->raw_config.data.len, &im->cfg, &e) < 0 ||
        store_doc(p, &im->raw_config, &e) < 0) {
        fail(p, e);
    }
}

static void start_config(reg_pull *p, size_t i)
{
    docctx *d = mar_xcalloc(1, sizeof(*d));
    d->p = p;
    d->image = i;
    p->pending_docs++;
    reg_blob_fetch(p->c, p->ref, &p->images[i].m->config, MAR_CAP_CONFIG, config_done, d);
}

static void manifest_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    docctx *d = ud;
    reg_pull *p = d->p;
    size_t i = d->image;
    free(d);
    p->pending_docs--;
    if (rc < 0) {
        fail(p, err);
        return;
    }
    pimage *im = &p->images[i];
    im->raw = *blob;
    *blob = (reg_blob){.data = MAR_BUF_INIT(0)};
    mar_err *e = NULL;
    if (oci_manifest_parse(im->raw.data.data, im->raw.data.len, im->raw.content_type, &im->m, &e) <
        0) {
        fail(p, e);
        return;
    }
    if (im->m->kind != OCI_KIND_MANIFEST) {
        mar_err_set(&e, MAR_EUNSUPPORTED, 0, "'%s' nests an index in an index, refusing",
                    p->o->name);
        fail(p, e);
        return;
    }
    if (store_doc(p, &im->raw, &e) < 0) {
        fail(p, e);
        return;
    }
    start_config(p, i);
}

static void start_manifest(reg_pull *p, size_t i)
{
    docctx *d = mar_xcalloc(1, sizeof(*d));
    d->p = p;
    d->image = i;
    p->pending_docs++;
    reg_manifest_fetch_desc(p->c, p->ref, &p->images[i].desc, manifest_done, d);
}

static void list_platforms(const oci_manifest *idx, char *buf, size_t n)
{
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const oci_descriptor *d = &idx->manifests[i];
        if (!d->has_platform || oci_descriptor_is_attestation(d) ||
            oci_platform_is_unknown(&d->platform)) {
            continue;
        }
        char ps[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&d->platform, ps, sizeof(ps));
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", ps);
        if (w < 0 || (size_t)w >= n - used) {
            break;
        }
        used += (size_t)w;
    }
}

static void add_image(reg_pull *p, const oci_descriptor *d)
{
    for (size_t i = 0; i < p->n_images; i++) {
        if (mar_digest_eq(&p->images[i].desc.digest, &d->digest)) {
            return; /* two requested platforms chose the same entry */
        }
    }
    p->images = mar_xrealloc(p->images, (p->n_images + 1) * sizeof(*p->images));
    pimage *im = &p->images[p->n_images++];
    memset(im, 0, sizeof(*im));
    im->desc = *d;
    im->has_desc = true;
    im->platform = d->platform;
    im->raw.data = (mar_buf)MAR_BUF_INIT(0);
    im->raw_config.data = (mar_buf)MAR_BUF_INIT(0);
}

/* Chooses the index entries to pull (platforms.md §7): each requested platform's best match,
 * every runnable entry for --all-platforms, the host's best match by default. */
static int choose(reg_pull *p, mar_err **err)
{
    const oci_manifest *idx = p->topm;
    if (p->o->all_platforms) {
        for (size_t i = 0; i < idx->n_manifests; i++) {
            const oci_descriptor *d = &idx->manifests[i];
            if (oci_descriptor_is_attestation(d) ||
                (d->has_platform && oci_platform_is_unknown(&d->platform))) {
                continue;
            }
            add_image(p, d);
        }
        if (!p->n_images) {
            return mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' has no runnable entry", p->o->name);
        }
        return 0;
    }
    size_t n = p->o->n_platforms ? p->o->n_platforms : 1;
    for (size_t k = 0; k < n; k++) {
        const oci_platform *want = p->o->n_platforms ? &p->o->platforms[k] : p->o->host;
        oci_matcher m;
        oci_matcher_only(&m, want);
        oci_selection sel;
        oci_index_select(idx, &m, &sel);
        if (sel.n == 0) {
            oci_selection_release(&sel);
            char ws[OCI_PLATFORM_STR_MAX], have[1024];
            oci_platform_format(want, ws, sizeof(ws));
            list_platforms(idx, have, sizeof(have));
            return mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' has no %s image (it has: %s)",
                               p->o->name, ws, *have ? have : "nothing runnable");
        }
        add_image(p, &idx->manifests[sel.order[0]]);
        oci_selection_release(&sel);
    }
    return 0;
}

static void top_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    reg_pull *p = ud;
    p->pending_docs--;
    if (rc < 0) {
        fail(p, err);
        return;
    }
    p->top = *blob;
    *blob = (reg_blob){.data = MAR_BUF_INIT(0)};
    mar_err *e = NULL;
    if (oci_manifest_parse(p->top.data.data, p->top.data.len, p->top.content_type, &p->topm, &e) <
                0 ||
        store_doc(p, &p->top, &e) < 0) {
        fail(p, e);
        return;
    }
    if (p->topm->kind == OCI_KIND_INDEX) {
        if (choose(p, &e) < 0) {
            fail(p, e);
            return;
        }
        for (size_t i = 0; i < p->n_images; i++) {
            start_manifest(p, i);
        }
        return;
    }
    /* A single manifest: its config says what platform it is (checked after the fetch). */
    p->images = mar_xcalloc(1, sizeof(*p->images));
    p->n_images = 1;
    pimage *im = &p->images[0];
    im->raw = (reg_blob){.digest = p->top.digest, .data = MAR_BUF_INIT(0)};
    im->raw_config.data = (mar_buf)MAR_BUF_INIT(0);
    im->m = TAKE_PTR(p->topm);
    p->topm = NULL;
    start_config(p, 0);
}

/* ---- blobs ---------------------------------------------------------------------------------- */

static int sink_write(void *ud, const void *ptr, size_t n, mar_err **err);
static int sink_reset(void *ud, mar_err **err);
static void blob_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud);
static void queue_chains_of(reg_pull *p, size_t blob);

typedef struct sinkctx {
    reg_pull *p;
    size_t blob;
} sinkctx;

static void start_download(reg_pull *p, size_t b)
{
    blobjob *j = &p->blobs[b];
    reg_pull_layer *row = &p->rows[b];
    uint64_t from = reg_ingest_offset(j->ing);
    pthread_mutex_lock(&p->mu);
    row->got = from;
    row->resumed_from = from;
    row->state = REG_LAYER_DOWNLOADING;
    emit_locked(p, b);
    pthread_mutex_unlock(&p->mu);
    sinkctx *sc = mar_xcalloc(1, sizeof(*sc));
    sc->p = p;
    sc->blob = b;
    reg_sink sink = {.write = sink_write, .reset = sink_reset, .ud = sc};
    p->active++;
    j->attempts++;
    reg_blob_stream(p->c, p->ref, j->desc, from, from ? reg_ingest_take_hasher(j->ing) : NULL,
                    &sink, blob_done, sc);
}

/* Starts downloads up to the job limit; blobs another process holds are set aside. */
static void pump(reg_pull *p)
{
    while (!failed(p) && p->active < (size_t)p->o->jobs && p->next_blob < p->n_blobs) {
        size_t b = p->next_blob++;
        blobjob *j = &p->blobs[b];
        mar_err *e = NULL;
        int rc = reg_ingest_begin(p->s, &j->desc->digest, j->desc->size, false, &j->ing, &e);
        if (rc < 0) {
            fail(p, e);
            return;
        }
        if (rc == 1) {
            j->deferred = true;
            set_state(p, b, REG_LAYER_LOCKED);
            continue;
        }
        if (!j->ing) {
            pthread_mutex_lock(&p->mu);
            p->rows[b].got = p->rows[b].size;
            p->rows[b].state = REG_LAYER_PRESENT;
            p->stats.blobs_present++;
            emit_locked(p, b);
            pthread_mutex_unlock(&p->mu);
            queue_chains_of(p, b);
            continue;
        }
        start_download(p, b);
    }
}

static int sink_write(void *ud, const void *ptr, size_t n, mar_err **err)
{
    sinkctx *sc = ud;
    reg_pull *p = sc->p;
    if (failed(p)) {
        return mar_err_set(err, MAR_EFAIL, ECANCELED, "cancelled");
    }
    size_t b = sc->blob;
    blobjob *j = &p->blobs[b];
    if (reg_ingest_write(j->ing, ptr, n, err) < 0) {
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->rows[b].got += n;
    p->stats.bytes_downloaded += n;
    emit_locked(p, b);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static int sink_reset(void *ud, mar_err **err)
{
    sinkctx *sc = ud;
    reg_pull *p = sc->p;
    size_t b = sc->blob;
    blobjob *j = &p->blobs[b];
    pthread_mutex_lock(&p->mu);
    p->rows[b].got = 0;
    pthread_mutex_unlock(&p->mu);
    return reg_ingest_reset(j->ing, err);
}

static void blob_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    sinkctx *sc = ud;
    reg_pull *p = sc->p;
    size_t b = sc->blob;
    free(sc);
    blobjob *j = &p->blobs[b];
    p->active--;
    if (rc == 0) {
        j->verified = blob->digest;
        pthread_mutex_lock(&p->mu);
        p->cq[p->cq_tail++] = b;
        pthread_cond_broadcast(&p->ccv);
        pthread_mutex_unlock(&p->mu);
        pump(p);
        return;
    }
    /* A digest mismatch after a resume may come from the bytes of the earlier run: drop them and
     * try once more from byte 0 (registry-protocol.md §9). */
    if (mar_err_code(err) == MAR_EINTEGRITY && j->attempts < 2 && !failed(p)) {
        mar_err_free(err);
        reg_ingest_discard(TAKE_PTR(j->ing));
        mar_err *e = NULL;
        if (reg_ingest_begin(p->s, &j->desc->digest, j->desc->size, true, &j->ing, &e) < 0) {
            fail(p, e);
            return;
        }
        if (j->ing) {
            p->stats.retries++;
            start_download(p, b);
        }
        return;
    }
    /* Keep what arrived for the next run's Range request, unless it is known bad. */
    if (mar_err_code(err) == MAR_EINTEGRITY) {
        reg_ingest_discard(TAKE_PTR(j->ing));
    } else {
        j->ing = reg_ingest_free(j->ing);
    }
    set_state(p, b, REG_LAYER_FAILED);
    if (err && err->sys_errno != ECANCELED) {
        mar_err_wrap(&err, "layer %s", j->desc->digest.str);
    }
    fail(p, err);
}

static void *committer(void *arg)
{
    reg_pull *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->cq_head == p->cq_tail && !p->cq_closing) {
            pthread_cond_wait(&p->ccv, &p->mu);
        }
        if (p->cq_head == p->cq_tail) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        size_t b = p->cq[p->cq_head++];
        pthread_mutex_unlock(&p->mu);
        blobjob *j = &p->blobs[b];
        mar_err *e = NULL;
        if (reg_ingest_commit(j->ing, &j->verified, &e) < 0) {
            reg_ingest_discard(TAKE_PTR(j->ing));
            set_state(p, b, REG_LAYER_FAILED);
            fail(p, e);
            continue;
        }
        j->ing = reg_ingest_free(j->ing);
        pthread_mutex_lock(&p->mu);
        p->rows[b].state = REG_LAYER_DOWNLOADED;
        p->stats.blobs_downloaded++;
        emit_locked(p, b);
        pthread_mutex_unlock(&p->mu);
        queue_chains_of(p, b);
    }
}

static void stop_committer(reg_pull *p)
{
    if (!p->committer_running) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->cq_closing = true;
    pthread_cond_broadcast(&p->ccv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->committer, NULL);
    p->committer_running = false;
}

/* ---- unpacking ------------------------------------------------------------------------------ */

static void queue_chains_of(reg_pull *p, size_t blob)
{
    if (!p->o->unpack) {
        set_state(p, blob, REG_LAYER_DONE);
        return;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_chains; i++) {
        if (p->chains[i].row == blob) {
            p->queue[p->q_tail++] = i;
        }
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void unpack_progress(void *ud, uint64_t in_bytes)
{
    reg_pull_layer *row = ud;
    reg_pull *p = row->pull;
    pthread_mutex_lock(&p->mu);
    row->unpacked = in_bytes;
    emit_locked(p, (size_t)(row - p->rows));
    pthread_mutex_unlock(&p->mu);
}

/* Unpacks a chain's layer into its part directory (the lock is held until it is settled). */
static int extract(reg_pull *p, chainjob *cj, mar_err **err)
{
    reg_pull_layer *row = &p->rows[cj->row];
    set_state(p, cj->row, REG_LAYER_EXTRACTING);
    int bfd;
    if (reg_store_blob_open(p->s, &row->desc->digest, &bfd, err) < 0) {
        return -1;
    }
    _cleanup_close_ int blobfd = bfd;
    oci_unpack_opts uo = {
            .mode = OCI_UNPACK_LAYER,
            .lim = p->o->lim,
            .expect_diff_id = &row->diff_id,
            .progress = unpack_progress,
            .progress_ud = row,
    };
    if (oci_unpack(blobfd, cj->rootfd, &uo, &cj->res, err) < 0) {
        return mar_err_wrap(err, "layer %s", row->desc->digest.str);
    }
    if ((int)cj->res.codec != oci_layer_media_codec(row->desc->media_type)) {
        mar_diag_warn("layer %s is labeled '%s' but is %s data", row->desc->digest.str,
                      row->desc->media_type, oci_codec_name(cj->res.codec));
    }
    cj->extracted = true;
    return 0;
}

static void *worker(void *arg)
{
    reg_pull *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->q_head == p->q_tail && !p->closing && !p->err) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->err || p->q_head == p->q_tail) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        size_t ci = p->queue[p->q_head++];
        pthread_mutex_unlock(&p->mu);
        chainjob *cj = &p->chains[ci];
        mar_err *e = NULL;
        int rc = reg_store_layer_begin(p->s, &cj->chain, false, &cj->lock, &cj->rootfd, &e);
        if (rc < 0) {
            fail(p, e);
            continue;
        }
        if (rc == 1) {
            cj->deferred = true;
            set_state(p, cj->row, REG_LAYER_LOCKED);
            continue;
        }
        if (cj->lock < 0) {
            pthread_mutex_lock(&p->mu);
            p->stats.layers_present++;
            p->rows[cj->row].state = REG_LAYER_DONE;
            emit_locked(p, cj->row);
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        if (extract(p, cj, &e) < 0) {
            set_state(p, cj->row, REG_LAYER_FAILED);
            fail(p, e);
        }
    }
}

/* Settles and commits the layers of one image bottom-up. Chains other processes held are
 * waited for here; a chain nobody finished is unpacked now. */
static int settle_image(reg_pull *p, pimage *im, mar_err **err)
{
    size_t n = im->m->n_layers;
    int lowers_fd[OCI_LVIEW_MAX_LAYERS];
    size_t n_low = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        chainjob *cj = &p->chains[im->chains[i]];
        reg_pull_layer *row = &p->rows[cj->row];
        if (cj->deferred && cj->lock < 0) {
            cj->deferred = false;
            if (reg_store_layer_begin(p->s, &cj->chain, true, &cj->lock, &cj->rootfd, err) < 0) {
                rc = -1;
                break;
            }
            if (cj->lock >= 0 && extract(p, cj, err) < 0) {
                rc = -1;
                break;
            }
            if (cj->lock < 0) {
                p->stats.layers_present++;
                set_state(p, cj->row, REG_LAYER_DONE);
            }
        }
        if (cj->extracted) {
            /* Lowers top first. */
            int lw[OCI_LVIEW_MAX_LAYERS];
            for (size_t k = 0; k < n_low; k++) {
                lw[k] = lowers_fd[n_low - 1 - k];
            }
            oci_lview v = {.fds = lw, .n = n_low};
            _cleanup_free_ char *info = mar_xasprintf(
                    "{\"diff_id\":\"%s\",\"chain_id\":\"%s\",\"blob\":\"%s\",\"size\":%llu,"
                    "\"entries\":%llu}\n",
                    row->diff_id.str, cj->chain.str, row->desc->digest.str,
                    (unsigned long long)cj->res.size, (unsigned long long)cj->res.entries);
            if (oci_layer_settle(cj->rootfd, &v, &cj->res, NULL, err) < 0 ||
                reg_store_layer_commit(p->s, &cj->chain, info, err) < 0) {
                mar_err_wrap(err, "layer %s", row->desc->digest.str);
                reg_store_layer_abort(p->s, &cj->chain);
                rc = -1;
            } else {
                pthread_mutex_lock(&p->mu);
                p->stats.layers_unpacked++;
                row->state = REG_LAYER_DONE;
                emit_locked(p, cj->row);
                pthread_mutex_unlock(&p->mu);
            }
            cj->extracted = false;
            oci_unpack_result_release(&cj->res);
            close(cj->rootfd);
            cj->rootfd = -1;
            close(cj->lock);
            cj->lock = -1;
        }
        if (rc == 0) {
            _cleanup_free_ char *lp = reg_store_layer_path(p->s, &cj->chain);
            int fd = open(lp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 || n_low >= OCI_LVIEW_MAX_LAYERS) {
                rc = mar_err_set(err, MAR_EIO, errno, "cannot open the unpacked layer '%s'", lp);
                if (fd >= 0) {
                    close(fd);
                }
                break;
            }
            lowers_fd[n_low++] = fd;
        }
    }
    for (size_t k = 0; k < n_low; k++) {
        close(lowers_fd[k]);
    }
    return rc;
}

/* ---- the plan: distinct blobs and chains ---------------------------------------------------- */

static int plan(reg_pull *p, mar_err **err)
{
    size_t total = 0;
    for (size_t i = 0; i < p->n_images; i++) {
        pimage *im = &p->images[i];
        if (!im->cfg) {
            return mar_err_set(err, MAR_EFAIL, 0, "no config for an image of '%s'", p->o->name);
        }
        /* image-spec config.md: one diff_id per layer, in order. */
        if (im->cfg->n_diff_ids != im->m->n_layers) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "'%s' has %zu layers but its config lists %zu diff_ids, refusing",
                               p->o->name, im->m->n_layers, im->cfg->n_diff_ids);
        }
        if (im->m->n_layers > OCI_LVIEW_MAX_LAYERS - 1) {
            return mar_err_set(err, MAR_EUNSUPPORTED, 0, "'%s' has %zu layers, more than %d",
                               p->o->name, im->m->n_layers, OCI_LVIEW_MAX_LAYERS - 1);
        }
        total += im->m->n_layers;
        if (!im->has_desc) {
            im->platform = im->cfg->platform;
        }
    }
    p->rows = mar_xcalloc(total + 1, sizeof(*p->rows));
    p->blobs = mar_xcalloc(total + 1, sizeof(*p->blobs));
    p->chains = mar_xcalloc(total + 1, sizeof(*p->chains));
    p->queue = mar_xcalloc(total + 1, sizeof(*p->queue));
    p->cq = mar_xcalloc(total + 1, sizeof(*p->cq));
    for (size_t i = 0; i < p->n_images; i++) {
        pimage *im = &p->images[i];
        size_t n = im->m->n_layers;
        mar_digest *chains = mar_xcalloc(n + 1, sizeof(*chains));
        oci_chain_ids(im->cfg->diff_ids, n, chains);
        im->chains = mar_xcalloc(n + 1, sizeof(*im->chains));
        for (size_t j = 0; j < n; j++) {
            const oci_descriptor *d = &im->m->layers[j];
            if (oci_layer_media_codec(d->media_type) < 0) {
                free(chains);
                return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                                   "layer %s of '%s' has media type '%s', refusing", d->digest.str,
                                   p->o->name, d->media_type);
            }
            size_t r = 0;
            while (r < p->n_rows && !mar_digest_eq(&p->rows[r].desc->digest, &d->digest)) {
                r++;
            }
            if (r == p->n_rows) {
                reg_pull_layer *row = &p->rows[p->n_rows++];
                row->pull = p;
                row->desc = d;
                row->size = (uint64_t)d->size;
                row->diff_id = im->cfg->diff_ids[j];
                row->image = i;
                row->index = j;
                oci_platform_format(&im->platform, row->platform, sizeof(row->platform));
                p->blobs[r].desc = d;
                p->n_blobs++;
            } else if (!mar_digest_eq(&p->rows[r].diff_id, &im->cfg->diff_ids[j])) {
                free(chains);
                return mar_err_set(err, MAR_EINTEGRITY, 0,
                                   "blob %s has two different diff_ids in '%s', refusing",
                                   d->digest.str, p->o->name);
            }
            size_t c = 0;
            while (c < p->n_chains && !mar_digest_eq(&p->chains[c].chain, &chains[j])) {
                c++;
            }
            if (c == p->n_chains) {
                p->chains[c] = (chainjob){.row = r, .chain = chains[j], .lock = -1, .rootfd = -1};
                p->n_chains++;
            }
            im->chains[j] = c;
        }
        free(chains);
    }
    return 0;
}

static int cmp_blob_digest(const void *a, const void *b, void *ud)
{
    const reg_pull *p = ud;
    const size_t *x = a, *y = b;
    return strcmp(p->blobs[*x].desc->digest.str, p->blobs[*y].desc->digest.str);
}

/* Blobs another process held while this run had its own work: wait for each, in sorted
 * digest order, and download those it did not finish. */
static void take_deferred(reg_pull *p)
{
    size_t *order = mar_xcalloc(p->n_blobs + 1, sizeof(*order));
    size_t n = 0;
    for (size_t b = 0; b < p->n_blobs; b++) {
        if (p->blobs[b].deferred) {
            order[n++] = b;
        }
    }
    qsort_r(order, n, sizeof(*order), cmp_blob_digest, p);
    for (size_t k = 0; k < n && !failed(p); k++) {
        size_t b = order[k];
        blobjob *j = &p->blobs[b];
        j->deferred = false;
        mar_err *e = NULL;
        if (reg_ingest_begin(p->s, &j->desc->digest, j->desc->size, true, &j->ing, &e) < 0) {
            fail(p, e);
            break;
        }
        if (!j->ing) {
            pthread_mutex_lock(&p->mu);
            p->rows[b].got = p->rows[b].size;
            p->rows[b].state = REG_LAYER_PRESENT;
            p->stats.blobs_present++;
            emit_locked(p, b);
            pthread_mutex_unlock(&p->mu);
            queue_chains_of(p, b);
            continue;
        }
        start_download(p, b);
    }
    free(order);
}

static void release_work(reg_pull *p)
{
    for (size_t b = 0; b < p->n_blobs; b++) {
        p->blobs[b].ing = reg_ingest_free(p->blobs[b].ing);
    }
    for (size_t c = 0; c < p->n_chains; c++) {
        chainjob *cj = &p->chains[c];
        if (cj->rootfd >= 0) {
            close(cj->rootfd);
            reg_store_layer_abort(p->s, &cj->chain);
        }
        if (cj->lock >= 0) {
            close(cj->lock);
        }
        oci_unpack_result_release(&cj->res);
    }
}

static int tag(reg_pull *p, reg_pull_result *res, mar_err **err)
{
    _cleanup_free_ char *name = oci_ref_string(p->ref);
    reg_store_ref top = {
            .name = name,
            .media_type = p->top.content_type ? p->top.content_type : "",
            .digest = p->top.digest,
            .size = (int64_t)p->top.data.len,
    };
    if (p->topm && p->topm->media_type) {
        top.media_type = p->topm->media_type;
    } else if (p->n_images == 1 && p->images[0].m && p->images[0].m->media_type) {
        top.media_type = p->images[0].m->media_type;
    }
    if (reg_store_tag(p->s, &top, err) < 0) {
        return -1;
    }
    res->name = mar_xstrdup(name);
    res->digest = top.digest;
    res->media_type = mar_xstrdup(top.media_type);
    res->size = top.size;
    for (size_t i = 0; i < p->n_images && p->topm; i++) {
        pimage *im = &p->images[i];
        char ps[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&im->platform, ps, sizeof(ps));
        _cleanup_free_ char *pn = mar_xasprintf("%s@%s", name, ps);
        reg_store_ref r = {
                .name = pn,
                .media_type = im->desc.media_type,
                .digest = im->desc.digest,
                .size = im->desc.size,
                .has_platform = true,
                .platform = im->platform,
        };
        if (reg_store_tag(p->s, &r, err) < 0) {
            return -1;
        }
    }
    return 0;
}

static void fill_result(reg_pull *p, reg_pull_result *res)
{
    res->images = mar_xcalloc(p->n_images + 1, sizeof(*res->images));
    res->n_images = p->n_images;
    for (size_t i = 0; i < p->n_images; i++) {
        pimage *im = &p->images[i];
        reg_pull_image *ri = &res->images[i];
        ri->platform = im->platform;
        ri->manifest = im->has_desc ? im->desc.digest : p->top.digest;
        ri->config = im->m->config.digest;
        ri->n_layers = im->m->n_layers;
        ri->chains = mar_xcalloc(ri->n_layers + 1, sizeof(*ri->chains));
        ri->blobs = mar_xcalloc(ri->n_layers + 1, sizeof(*ri->blobs));
        for (size_t j = 0; j < ri->n_layers; j++) {
            ri->chains[j] = p->chains[im->chains[j]].chain;
            ri->blobs[j] = im->m->layers[j].digest;
        }
    }
    res->stats = p->stats;
}

void reg_pull_result_release(reg_pull_result *r)
{
    for (size_t i = 0; i < r->n_images; i++) {
        free(r->images[i].chains);
        free(r->images[i].blobs);
    }
    free(r->images);
    free(r->name);
    free(r->media_type);
    memset(r, 0, sizeof(*r));
}

static void pull_release(reg_pull *p)
{
    for (size_t i = 0; i < p->n_images; i++) {
        pimage *im = &p->images[i];
        reg_blob_release(&im->raw);
        reg_blob_release(&im->raw_config);
        oci_manifest_free(im->m);
        oci_config_free(im->cfg);
        free(im->chains);
    }
    free(p->images);
    free(p->rows);
    free(p->blobs);
    free(p->chains);
    free(p->queue);
    free(p->cq);
    reg_blob_release(&p->top);
    oci_manifest_free(p->topm);
    mar_err_free(p->err);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->ccv);
}

size_t reg_pull_rows(const reg_pull *p, const reg_pull_layer **ret)
{
    *ret = p->rows;
    return p->n_rows;
}

/* A single-manifest image: its config says the platform. An explicit --platform must match;
 * by default a foreign image is pulled with a warning, as docker does. */
static int check_single(reg_pull *p, mar_err **err)
{
    if (p->topm || p->o->all_platforms || !p->images[0].cfg) {
        return 0;
    }
    const oci_config *cfg = p->images[0].cfg;
    char have[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&cfg->platform, have, sizeof(have));
    if (!p->o->n_platforms) {
        oci_matcher m;
        oci_matcher_only(&m, p->o->host);
        if (!oci_matcher_match(&m, &cfg->platform)) {
            mar_diag_warn("'%s' is a %s image, which this host does not run natively", p->o->name,
                          have);
        }
        return 0;
    }
    for (size_t k = 0; k < p->o->n_platforms; k++) {
        oci_matcher m;
        oci_matcher_only(&m, &p->o->platforms[k]);
        if (!oci_matcher_match(&m, &cfg->platform)) {
            char want[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&p->o->platforms[k], want, sizeof(want));
            return mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' is a single %s image, not %s",
                               p->o->name, have, want);
        }
    }
    return 0;
}

int reg_pull_run(reg_client *c, reg_store *s, const oci_ref *ref, const reg_pull_opts *o,
                 reg_pull_result *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    reg_pull p = {.c = c, .s = s, .ref = ref, .o = o};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_cond_init(&p.ccv, NULL);
    p.top.data = (mar_buf)MAR_BUF_INIT(0);
    int rc = 0;
    pthread_t th[16];
    size_t n_th = 0;

    p.pending_docs = 1;
    reg_manifest_fetch(c, ref, top_done, &p);
    if (reg_client_run(c, err) < 0) {
        rc = -1;
        goto out;
    }
    if (p.err) {
        goto out;
    }
    if (check_single(&p, err) < 0 || plan(&p, err) < 0) {
        rc = -1;
        goto out;
    }
    if (o->unpack) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        size_t want = (size_t)(o->jobs < ncpu ? o->jobs : ncpu);
        want = want < 1 ? 1 : want > MAR_ARRAY_SIZE(th) ? MAR_ARRAY_SIZE(th) : want;
        for (; n_th < want; n_th++) {
            if (pthread_create(&th[n_th], NULL, worker, &p) != 0) {
                break;
            }
        }
        if (!n_th) {
            rc = mar_err_set(err, MAR_EFAIL, errno, "cannot start unpack threads");
            goto out;
        }
    }
    if (pthread_create(&p.committer, NULL, committer, &p) != 0) {
        rc = mar_err_set(err, MAR_EFAIL, errno, "cannot start the commit thread");
        goto out;
    }
    p.committer_running = true;
    pump(&p);
    if (reg_client_run(c, err) < 0) {
        rc = -1;
    }
    if (rc == 0 && !failed(&p)) {
        take_deferred(&p);
        if (reg_client_run(c, err) < 0) {
            rc = -1;
        }
    }
    stop_committer(&p);
    pthread_mutex_lock(&p.mu);
    p.closing = true;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    for (size_t i = 0; i < n_th; i++) {
        pthread_join(th[i], NULL);
    }
    n_th = 0;
    if (rc == 0 && !p.err && o->unpack) {
        for (size_t i = 0; i < p.n_images && rc == 0; i++) {
            if (settle_image(&p, &p.images[i], err) < 0) {
                rc = -1;
            }
        }
    }
    if (rc == 0 && !p.err && tag(&p, ret, err) < 0) {
        rc = -1;
    }
    if (rc == 0 && !p.err) {
        fill_result(&p, ret);
    }
out:
    stop_committer(&p);
    if (n_th) {
        pthread_mutex_lock(&p.mu);
        p.closing = true;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        for (size_t i = 0; i < n_th; i++) {
            pthread_join(th[i], NULL);
        }
    }
    release_work(&p);
    if (rc == 0 && p.err) {
        rc = -mar_err_code(p.err);
        if (err) {
            *err = TAKE_PTR(p.err);
        }
    } else if (rc < 0) {
        rc = -mar_err_code(err ? *err : NULL);
    }
    if (rc < 0) {
        reg_pull_result_release(ret);
    }
    pull_release(&p);
    return rc;
}
