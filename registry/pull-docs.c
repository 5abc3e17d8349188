/* The documents of a pull: the top-level index or manifest, the chosen platforms' manifests and
 * their configs. */
#include "pull-internal.h"

#include <string.h>

/* Documents come from the store when it has them. Otherwise the fetch runs under the blob's
 * lock, as layers do, and its bytes are committed under that same lock, so two processes never
 * fetch one config twice. The event loop never blocks on a lock: a document another process
 * holds is set aside and taken once nothing else runs, one at a time (holding one lock while
 * blocking on another could deadlock two processes' event loops). */

typedef struct docctx {
    reg_pull *p;
    size_t image;
    int kind;
    reg_ingest *ing;
} docctx;

static void start_doc(reg_pull *p, size_t i, int kind, bool wait);

static const oci_descriptor *doc_desc(reg_pull *p, size_t i, int kind)
{
    return kind == DOC_MANIFEST ? &p->images[i].desc : &p->images[i].m->config;
}

/* A manifest or config is in (verified, stored): parse it and go on. Takes b's contents. */
static void doc_loaded(reg_pull *p, size_t i, int kind, reg_blob *b)
{
    pimage *im = &p->images[i];
    mar_err *e = NULL;
    if (kind == DOC_CONFIG) {
        im->raw_config = *b;
        *b = (reg_blob){.data = MAR_BUF_INIT(0)};
        if (oci_config_parse(im->raw_config.data.data, im->raw_config.data.len, &im->cfg, &e) < 0) {
            reg__pull_fail(p, e);
        }
        return;
    }
    im->raw = *b;
    *b = (reg_blob){.data = MAR_BUF_INIT(0)};
    if (oci_manifest_parse(im->raw.data.data, im->raw.data.len, im->raw.content_type, &im->m, &e) <
        0) {
        reg__pull_fail(p, e);
        return;
    }
    if (im->m->kind != OCI_KIND_MANIFEST) {
        mar_err_set(&e, MAR_EUNSUPPORTED, 0, "'%s' nests an index in an index, refusing",
                    p->o->name);
        reg__pull_fail(p, e);
        return;
    }
    start_doc(p, i, DOC_CONFIG, false);
}

static void load_from_store(reg_pull *p, size_t i, int kind, const oci_descriptor *d)
{
    reg_blob b = {.digest = d->digest,
                  .content_type = mar_xstrdup(d->media_type ? d->media_type : ""),
                  .data = MAR_BUF_INIT(0)};
    mar_err *e = NULL;
    if (reg_store_read(p->s, &d->digest, kind == DOC_CONFIG ? MAR_CAP_CONFIG : MAR_CAP_MANIFEST,
                       &b.data, &e) < 0) {
        reg_blob_release(&b);
        reg__pull_fail(p, e);
        return;
    }
    doc_loaded(p, i, kind, &b);
    reg_blob_release(&b);
}

static void doc_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    docctx *d = ud;
    reg_pull *p = d->p;
    p->pending_docs--;
    reg_ingest *g = TAKE_PTR(d->ing);
    size_t i = d->image;
    int kind = d->kind;
    free(d);
    if (rc < 0) {
        reg_ingest_free(g);
        reg__pull_fail(p, err);
        return;
    }
    mar_err *e = NULL;
    if (reg_ingest_reset(g, &e) < 0 ||
        reg_ingest_write(g, blob->data.data, blob->data.len, &e) < 0 ||
        reg_ingest_commit(g, &blob->digest, &e) < 0) {
        reg_ingest_discard(g);
        reg__pull_fail(p, e);
        return;
    }
    reg_ingest_free(g);
    doc_loaded(p, i, kind, blob);
}

static void start_doc(reg_pull *p, size_t i, int kind, bool wait)
{
    const oci_descriptor *d = doc_desc(p, i, kind);
    reg_ingest *g = NULL;
    mar_err *e = NULL;
    int rc = reg_ingest_begin(p->s, &d->digest, d->size, wait, &g, &e);
    if (rc < 0) {
        reg__pull_fail(p, e);
        return;
    }
    if (rc == 1) {
        p->dd_image[p->n_dd] = i;
        p->dd_kind[p->n_dd++] = kind;
        return;
    }
    if (!g) {
        load_from_store(p, i, kind, d);
        return;
    }
    docctx *ctx = mar_xcalloc(1, sizeof(*ctx));
    ctx->p = p;
    ctx->image = i;
    ctx->kind = kind;
    ctx->ing = g;
    p->pending_docs++;
    if (kind == DOC_MANIFEST) {
        reg_manifest_fetch_desc(p->c, p->ref, d, doc_done, ctx);
    } else {
        reg_blob_fetch(p->c, p->ref, d, MAR_CAP_CONFIG, doc_done, ctx);
    }
}

/* The top-level document, fetched by tag: stored unless another process is storing it right
 * now, in which case that waits until nothing else runs. */
static void store_top(reg_pull *p)
{
    const reg_blob *b = &p->top;
    reg_ingest *g = NULL;
    mar_err *e = NULL;
    int rc = reg_ingest_begin(p->s, &b->digest, (int64_t)b->data.len, false, &g, &e);
    if (rc == 1) {
        p->top_put_pending = true;
        return;
    }
    if (rc == 0 && g &&
        (reg_ingest_reset(g, &e) < 0 || reg_ingest_write(g, b->data.data, b->data.len, &e) < 0 ||
         reg_ingest_commit(g, &b->digest, &e) < 0)) {
        rc = -1;
        reg_ingest_discard(TAKE_PTR(g));
    }
    reg_ingest_free(g);
    if (rc < 0) {
        reg__pull_fail(p, e);
    }
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

/* Chooses the index entries to pull (docs/internals/platforms.md §7): each requested platform's
 * best match, every runnable entry for --all-platforms, the host's best match by default. */
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
        reg__pull_fail(p, err);
        return;
    }
    p->top = *blob;
    *blob = (reg_blob){.data = MAR_BUF_INIT(0)};
    mar_err *e = NULL;
    if (oci_manifest_parse(p->top.data.data, p->top.data.len, p->top.content_type, &p->topm, &e) <
        0) {
        reg__pull_fail(p, e);
        return;
    }
    store_top(p);
    size_t cap = 2 * (p->topm->n_manifests + 1);
    p->dd_image = mar_xcalloc(cap, sizeof(*p->dd_image));
    p->dd_kind = mar_xcalloc(cap, sizeof(*p->dd_kind));
    if (p->topm->kind == OCI_KIND_INDEX) {
        if (choose(p, &e) < 0) {
            reg__pull_fail(p, e);
            return;
        }
        for (size_t i = 0; i < p->n_images; i++) {
            start_doc(p, i, DOC_MANIFEST, false);
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
    start_doc(p, 0, DOC_CONFIG, false);
}

void reg__pull_docs_start(reg_pull *p)
{
    p->pending_docs = 1;
    reg_manifest_fetch(p->c, p->ref, top_done, p);
}

int reg__pull_docs_finish(reg_pull *p, mar_err **err)
{
    for (;;) {
        if (reg_client_run(p->c, err) < 0) {
            return -1;
        }
        if (reg__pull_failed(p)) {
            return 0;
        }
        if (p->top_put_pending) {
            p->top_put_pending = false;
            mar_err *e = NULL;
            if (reg_store_put(p->s, &p->top.digest, p->top.data.data, p->top.data.len, &e) < 0) {
                reg__pull_fail(p, e);
                return 0;
            }
        }
        if (!p->n_dd) {
            return 0;
        }
        p->n_dd--;
        start_doc(p, p->dd_image[p->n_dd], p->dd_kind[p->n_dd], true);
    }
}

/* A single-manifest image: its config says the platform. An explicit --platform must match;
 * by default a foreign image is pulled with a warning, as docker does. */
int reg__pull_check_single(reg_pull *p, mar_err **err)
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
