/* Pulling an image into the store: resolve the reference, choose the platforms, store the
 * documents, download the layers in parallel into ingest/ (resuming what a killed run left),
 * and unpack each layer into its own directory on worker threads while other layers still
 * download. Layers are then settled in order (settle.c) and marked complete.
 *
 * Cross-process protocol (docs/internals/registry-protocol.md §13): a blob or a chain another
 * process holds is not waited for while this run has work of its own; those are taken afterwards,
 * blocking, in order (blobs in sorted digest order; chains bottom-up, which cannot deadlock because
 * a ChainID fixes every layer under it).
 *
 * Threads: the registry client and everything it calls back run on the calling thread; the
 * workers only unpack. Shared state is guarded by p->mu, and the progress callback is called
 * with it held, so the CLI sees one event at a time. */
#include "pull-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>

/* ---- failure and progress ------------------------------------------------------------------- */

bool reg__pull_failed(reg_pull *p)
{
    pthread_mutex_lock(&p->mu);
    bool f = p->err != NULL;
    pthread_mutex_unlock(&p->mu);
    return f;
}

/* Records the first error (takes e). */
void reg__pull_fail(reg_pull *p, mar_err *e)
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

void reg__pull_emit_locked(reg_pull *p, size_t row)
{
    if (p->o->progress) {
        p->o->progress(p, &p->rows[row], p->o->progress_ud);
    }
}

void reg__pull_set_state(reg_pull *p, size_t row, reg_layer_state st)
{
    pthread_mutex_lock(&p->mu);
    p->rows[row].state = st;
    reg__pull_emit_locked(p, row);
    pthread_mutex_unlock(&p->mu);
}

/* ---- blobs ---------------------------------------------------------------------------------- */

MAR_MUST_USE static int sink_write(void *ud, const void *ptr, size_t n, mar_err **err);
MAR_MUST_USE static int sink_reset(void *ud, mar_err **err);
static void blob_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud);

typedef struct sinkctx {
    reg_pull *p;
    size_t blob;
} sinkctx;

static void queue_commit(reg_pull *p, size_t b)
{
    pthread_mutex_lock(&p->mu);
    p->cq[p->cq_tail++] = b;
    pthread_cond_broadcast(&p->ccv);
    pthread_mutex_unlock(&p->mu);
}

static void start_download(reg_pull *p, size_t b)
{
    blobjob *j = &p->blobs[b];
    reg_pull_layer *row = &p->rows[b];
    uint64_t from = reg_ingest_offset(j->ing);
    if (from == row->size && from > 0) {
        /* A killed run had received every byte but not committed: verify what is there. */
        mar_hasher *h = reg_ingest_take_hasher(j->ing);
        mar_hasher_final(h, &j->verified);
        mar_hasher_free(h);
        if (mar_digest_eq(&j->verified, &j->desc->digest)) {
            pthread_mutex_lock(&p->mu);
            row->got = from;
            row->resumed_from = from;
            pthread_mutex_unlock(&p->mu);
            queue_commit(p, b);
            return;
        }
        mar_err *e = NULL;
        if (reg_ingest_reset(j->ing, &e) < 0) {
            reg__pull_fail(p, e);
            return;
        }
        from = 0;
    }
    pthread_mutex_lock(&p->mu);
    row->got = from;
    row->resumed_from = from;
    row->state = REG_LAYER_DOWNLOADING;
    reg__pull_emit_locked(p, b);
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

/* After reg_ingest_begin: without an ingest the store already holds the blob (this run or
 * another process committed it), and its layers can go on; otherwise download it. */
static void fetch_unless_present(reg_pull *p, size_t b)
{
    if (p->blobs[b].ing) {
        start_download(p, b);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->rows[b].got = p->rows[b].size;
    p->rows[b].state = REG_LAYER_PRESENT;
    p->stats.blobs_present++;
    reg__pull_emit_locked(p, b);
    pthread_mutex_unlock(&p->mu);
    reg__pull_queue_chains(p, b);
}

/* Starts downloads up to the job limit; blobs another process holds are set aside. */
static void pump(reg_pull *p)
{
    while (!reg__pull_failed(p) && p->active < (size_t)p->o->jobs && p->next_blob < p->n_blobs) {
        size_t b = p->next_blob++;
        blobjob *j = &p->blobs[b];
        mar_err *e = NULL;
        int rc = reg_ingest_begin(p->s, &j->desc->digest, j->desc->size, false, &j->ing, &e);
        if (rc < 0) {
            reg__pull_fail(p, e);
            return;
        }
        if (rc == 1) {
            j->deferred = true;
            reg__pull_set_state(p, b, REG_LAYER_LOCKED);
            continue;
        }
        fetch_unless_present(p, b);
    }
}

MAR_MUST_USE static int sink_write(void *ud, const void *ptr, size_t n, mar_err **err)
{
    sinkctx *sc = ud;
    reg_pull *p = sc->p;
    if (reg__pull_failed(p)) {
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
    reg__pull_emit_locked(p, b);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

MAR_MUST_USE static int sink_reset(void *ud, mar_err **err)
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
        queue_commit(p, b);
        pump(p);
        return;
    }
    /* A digest mismatch after a resume may come from the bytes of the earlier run: drop them and
     * try once more from byte 0 (docs/internals/registry-protocol.md §9). */
    if (mar_err_code(err) == MAR_EINTEGRITY && j->attempts < 2 && !reg__pull_failed(p)) {
        mar_err_free(err);
        reg_ingest_discard(TAKE_PTR(j->ing));
        mar_err *e = NULL;
        if (reg_ingest_begin(p->s, &j->desc->digest, j->desc->size, true, &j->ing, &e) < 0) {
            reg__pull_fail(p, e);
            return;
        }
        if (j->ing) {
            p->stats.retries++;
        }
        /* Another process may have committed it while this one waited for the lock. */
        fetch_unless_present(p, b);
        return;
    }
    /* Keep what arrived for the next run's Range request, unless it is known bad. */
    if (mar_err_code(err) == MAR_EINTEGRITY) {
        reg_ingest_discard(TAKE_PTR(j->ing));
    } else {
        j->ing = reg_ingest_free(j->ing);
    }
    reg__pull_set_state(p, b, REG_LAYER_FAILED);
    if (err && err->sys_errno != ECANCELED) {
        mar_err_wrap(&err, "layer %s", j->desc->digest.str);
    }
    reg__pull_fail(p, err);
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
            reg__pull_set_state(p, b, REG_LAYER_FAILED);
            reg__pull_fail(p, e);
            continue;
        }
        j->ing = reg_ingest_free(j->ing);
        pthread_mutex_lock(&p->mu);
        p->rows[b].state = REG_LAYER_DOWNLOADED;
        p->stats.blobs_downloaded++;
        reg__pull_emit_locked(p, b);
        pthread_mutex_unlock(&p->mu);
        reg__pull_queue_chains(p, b);
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

/* ---- the plan: distinct blobs and chains ---------------------------------------------------- */

MAR_MUST_USE static int plan(reg_pull *p, mar_err **err)
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
    if (n > 1) {
        qsort_r(order, n, sizeof(*order), cmp_blob_digest, p);
    }
    for (size_t k = 0; k < n && !reg__pull_failed(p); k++) {
        size_t b = order[k];
        blobjob *j = &p->blobs[b];
        j->deferred = false;
        mar_err *e = NULL;
        if (reg_ingest_begin(p->s, &j->desc->digest, j->desc->size, true, &j->ing, &e) < 0) {
            reg__pull_fail(p, e);
            break;
        }
        fetch_unless_present(p, b);
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

MAR_MUST_USE static int tag(reg_pull *p, reg_pull_result *res, mar_err **err)
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
    free(p->dd_image);
    free(p->dd_kind);
    reg__pull_docs_release(p);
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

    reg__pull_docs_start(&p);
    if (reg__pull_docs_finish(&p, err) < 0) {
        rc = -1;
        goto out;
    }
    if (p.err) {
        goto out;
    }
    if (reg__pull_check_single(&p, err) < 0 || plan(&p, err) < 0) {
        rc = -1;
        goto out;
    }
    if (o->unpack) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        size_t want = (size_t)(o->jobs < ncpu ? o->jobs : ncpu);
        want = want < 1 ? 1 : want > MAR_ARRAY_SIZE(th) ? MAR_ARRAY_SIZE(th) : want;
        for (; n_th < want; n_th++) {
            if (pthread_create(&th[n_th], NULL, reg__pull_worker, &p) != 0) {
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
    if (rc == 0 && !reg__pull_failed(&p)) {
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
            if (reg__pull_settle_image(&p, &p.images[i], err) < 0) {
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
