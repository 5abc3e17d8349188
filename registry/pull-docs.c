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
        mar_err_set(&e, MAR_EINTEGRITY, 0,
                    "%s in '%s' is listed as a manifest but is an index, "
                    "refusing",
                    im->desc.digest.str, p->o->name);
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

/* The platforms an image offers, from the top-level index and the nested indexes read so far. */
static void list_platforms(const reg_pull *p, char *buf, size_t n)
{
    buf[0] = '\0';
    size_t used = 0;
    for (size_t k = 0; k <= p->n_nested; k++) {
        const oci_manifest *idx = k == 0 ? p->topm : p->nested[k - 1];
        for (size_t i = 0; i < idx->n_manifests; i++) {
            const oci_descriptor *d = &idx->manifests[i];
            if (!d->has_platform || oci_descriptor_role(d) != OCI_ENTRY_MANIFEST ||
                oci_platform_is_unknown(&d->platform)) {
                continue;
            }
            char ps[OCI_PLATFORM_ALL_STR_MAX];
            oci_platform_format_all(&d->platform, ps, sizeof(ps));
            int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", ps);
            if (w < 0 || (size_t)w >= n - used) {
                return;
            }
            used += (size_t)w;
        }
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

/* oci_index_pick's view of the nested indexes read so far; a missing one is noted in
 * p->want_nested and fetched before choosing again. */
MAR_MUST_USE static int lookup_nested(const oci_descriptor *d, void *ud, const oci_manifest **ret,
                                      mar_err **err)
{
    reg_pull *p = ud;
    for (size_t i = 0; i < p->n_nested; i++) {
        if (mar_digest_eq(&p->nested_raw[i].digest, &d->digest)) {
            *ret = p->nested[i];
            return 0;
        }
    }
    if (!p->want_nested) {
        p->want_nested = d;
    }
    return mar_err_set(err, MAR_ENOTFOUND, 0, "index %s is not read yet", d->digest.str);
}

/* --all-platforms: every manifest entry at any depth, attestations and unknown platforms aside.
 * Returns 0, or 1 when a nested index has to be read first. */
static int collect_all(reg_pull *p, const oci_manifest *idx, mar_digest *path, size_t n_path,
                       mar_strv *skipped)
{
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const oci_descriptor *d = &idx->manifests[i];
        oci_entry_role role = oci_descriptor_role(d);
        if (role == OCI_ENTRY_MANIFEST) {
            if (!d->platform_err && !(d->has_platform && oci_platform_is_unknown(&d->platform))) {
                p->picked = mar_xrealloc(p->picked, (p->n_picked + 1) * sizeof(*p->picked));
                p->picked[p->n_picked++] = d;
            }
            continue;
        }
        if (role != OCI_ENTRY_INDEX) {
            continue;
        }
        mar_err *e = NULL;
        const oci_manifest *nested = NULL;
        if (oci_index_nest_check(d, path, n_path, &e) < 0) {
            mar_strv_push_take(skipped, mar_xstrdup(e->msg));
            mar_err_free(e);
            continue;
        }
        if (lookup_nested(d, p, &nested, &e) < 0) {
            mar_err_free(e);
            return 1;
        }
        path[n_path] = d->digest;
        int rc = collect_all(p, nested, path, n_path + 1, skipped);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* Chooses the index entries to pull (docs/internals/platforms.md §7): each requested platform's
 * choice as containerd makes it, every manifest entry for --all-platforms, the host's choice by
 * default. Returns 0, 1 when a nested index has to be read first (p->want_nested), or -1. */
MAR_MUST_USE static int choose(reg_pull *p, mar_err **err)
{
    const oci_manifest *idx = p->topm;
    p->want_nested = NULL;
    free(p->picked);
    p->picked = NULL;
    p->n_picked = 0;
    if (p->o->all_platforms) {
        mar_digest path[OCI_INDEX_DEPTH_MAX + 1] = {p->top.digest};
        mar_strv skipped = MAR_STRV_INIT;
        int rc = collect_all(p, idx, path, 1, &skipped);
        if (rc == 0) {
            for (size_t i = 0; i < skipped.n; i++) {
                mar_diag_warn("'%s': %s", p->o->name, skipped.v[i]);
            }
        }
        mar_strv_release(&skipped);
        if (rc) {
            return rc;
        }
        if (!p->n_picked) {
            return mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' has no runnable entry", p->o->name);
        }
    } else {
        size_t n = p->o->n_platforms ? p->o->n_platforms : 1;
        p->picked = mar_xcalloc(n, sizeof(*p->picked));
        for (size_t k = 0; k < n; k++) {
            const oci_platform *want = p->o->n_platforms ? &p->o->platforms[k] : p->o->host;
            oci_matcher m;
            oci_matcher_only(&m, want);
            oci_pick pick;
            mar_err *e = NULL;
            int rc = oci_index_pick(idx, &p->top.digest, &m, lookup_nested, NULL, p, &pick, &e);
            if (rc < 0 && p->want_nested) {
                mar_err_free(e);
                return 1;
            }
            if (rc < 0) {
                if (err) {
                    *err = e;
                } else {
                    mar_err_free(e);
                }
                return mar_err_wrap(err, "'%s'", p->o->name);
            }
            if (rc == 1) {
                char ws[OCI_PLATFORM_ALL_STR_MAX], have[1024];
                oci_platform_format_all(want, ws, sizeof(ws));
                list_platforms(p, have, sizeof(have));
                return mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' has no %s image (it has: %s)",
                                   p->o->name, ws, *have ? have : "nothing runnable");
            }
            p->picked[p->n_picked++] = pick.desc;
        }
    }
    for (size_t i = 0; i < p->n_picked; i++) {
        add_image(p, p->picked[i]);
    }
    return 0;
}

static void choose_and_start(reg_pull *p);

typedef struct nestctx {
    reg_pull *p;
    char *media_type;
} nestctx;

/* A nested index is in: keep it (stored unless another process is storing it right now, in
 * which case that waits until nothing else runs) and choose again. Takes b's contents. */
static void nested_loaded(reg_pull *p, reg_blob *b, const char *media_type, bool store)
{
    mar_err *e = NULL;
    oci_manifest *m = NULL;
    const char *ct = b->content_type ? b->content_type : media_type;
    if (oci_manifest_parse(b->data.data, b->data.len, ct, &m, &e) < 0) {
        reg__pull_fail(p, e);
        return;
    }
    if (m->kind != OCI_KIND_INDEX) {
        mar_err_set(&e, MAR_EINTEGRITY, 0,
                    "%s in '%s' is listed as an index but is a manifest, refusing", b->digest.str,
                    p->o->name);
        oci_manifest_free(m);
        reg__pull_fail(p, e);
        return;
    }
    bool pending = false;
    if (store) {
        reg_ingest *g = NULL;
        int rc = reg_ingest_begin(p->s, &b->digest, (int64_t)b->data.len, false, &g, &e);
        if (rc == 1) {
            pending = true;
        } else if (rc == 0 && g &&
                   (reg_ingest_reset(g, &e) < 0 ||
                    reg_ingest_write(g, b->data.data, b->data.len, &e) < 0 ||
                    reg_ingest_commit(g, &b->digest, &e) < 0)) {
            rc = -1;
            reg_ingest_discard(TAKE_PTR(g));
        }
        reg_ingest_free(g);
        if (rc < 0) {
            oci_manifest_free(m);
            reg__pull_fail(p, e);
            return;
        }
    }
    size_t n = p->n_nested + 1;
    p->nested_raw = mar_xrealloc(p->nested_raw, n * sizeof(*p->nested_raw));
    p->nested = mar_xrealloc(p->nested, n * sizeof(*p->nested));
    p->nested_put_pending = mar_xrealloc(p->nested_put_pending, n * sizeof(*p->nested_put_pending));
    p->nested_raw[p->n_nested] = *b;
    *b = (reg_blob){.data = MAR_BUF_INIT(0)};
    p->nested[p->n_nested] = m;
    p->nested_put_pending[p->n_nested] = pending;
    p->n_nested = n;
    choose_and_start(p);
}

static void nested_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    nestctx *x = ud;
    reg_pull *p = x->p;
    p->pending_docs--;
    if (rc < 0) {
        reg__pull_fail(p, err);
    } else {
        nested_loaded(p, blob, x->media_type, true);
    }
    free(x->media_type);
    free(x);
}

/* Reads the nested index d from the store when it has it, else from the registry. */
static void fetch_nested(reg_pull *p, const oci_descriptor *d)
{
    if (reg_store_has(p->s, &d->digest, d->size)) {
        reg_blob b = {.digest = d->digest, .data = MAR_BUF_INIT(0)};
        mar_err *e = NULL;
        if (reg_store_read(p->s, &d->digest, MAR_CAP_MANIFEST, &b.data, &e) < 0) {
            reg__pull_fail(p, e);
            return;
        }
        nested_loaded(p, &b, d->media_type, false);
        reg_blob_release(&b);
        return;
    }
    nestctx *x = mar_xcalloc(1, sizeof(*x));
    x->p = p;
    x->media_type = mar_xstrdup(d->media_type);
    p->pending_docs++;
    reg_manifest_fetch_desc(p->c, p->ref, d, nested_done, x);
}

static void choose_and_start(reg_pull *p)
{
    mar_err *e = NULL;
    int rc = choose(p, &e);
    if (rc < 0) {
        reg__pull_fail(p, e);
        return;
    }
    if (rc == 1) {
        fetch_nested(p, p->want_nested);
        return;
    }
    p->dd_image = mar_xcalloc(2 * (p->n_images + 1), sizeof(*p->dd_image));
    p->dd_kind = mar_xcalloc(2 * (p->n_images + 1), sizeof(*p->dd_kind));
    for (size_t i = 0; i < p->n_images; i++) {
        start_doc(p, i, DOC_MANIFEST, false);
    }
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
    if (p->topm->kind == OCI_KIND_INDEX) {
        choose_and_start(p);
        return;
    }
    p->dd_image = mar_xcalloc(2, sizeof(*p->dd_image));
    p->dd_kind = mar_xcalloc(2, sizeof(*p->dd_kind));
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
        for (size_t i = 0; i < p->n_nested; i++) {
            const reg_blob *b = &p->nested_raw[i];
            mar_err *e = NULL;
            if (p->nested_put_pending[i]) {
                p->nested_put_pending[i] = false;
                if (reg_store_put(p->s, &b->digest, b->data.data, b->data.len, &e) < 0) {
                    reg__pull_fail(p, e);
                    return 0;
                }
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
 * by default a foreign image is pulled with a warning, as docker does. An index entry without a
 * platform is what its config says, and must match the request that chose it: containerd reads
 * that config and finds no match when it differs, without trying another entry
 * (docs/internals/platforms.md §7). */
int reg__pull_check_single(reg_pull *p, mar_err **err)
{
    if (p->topm) {
        for (size_t k = 0; k < p->n_picked; k++) {
            const oci_descriptor *d = p->picked[k];
            if (d->has_platform) {
                continue;
            }
            pimage *im = NULL;
            for (size_t i = 0; i < p->n_images && !im; i++) {
                im = mar_digest_eq(&p->images[i].desc.digest, &d->digest) ? &p->images[i] : NULL;
            }
            if (!im || !im->cfg) {
                continue;
            }
            char have[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&im->cfg->platform, have, sizeof(have));
            if (!p->o->all_platforms) {
                const oci_platform *want = p->o->n_platforms ? &p->o->platforms[k] : p->o->host;
                oci_matcher m;
                oci_matcher_only(&m, want);
                if (!im->cfg->has_platform || !oci_matcher_match(&m, &im->cfg->platform)) {
                    char ws[OCI_PLATFORM_ALL_STR_MAX];
                    oci_platform_format_all(want, ws, sizeof(ws));
                    return mar_err_set(err, MAR_ENOTFOUND, 0,
                                       "'%s' has no %s image: the entry chosen for it, %s, has "
                                       "no platform and its config says %s",
                                       p->o->name, ws, d->digest.str,
                                       im->cfg->has_platform ? have : "nothing");
                }
            }
            if (im->cfg->has_platform) {
                im->platform = im->cfg->platform;
            }
        }
        return 0;
    }
    if (p->o->all_platforms || !p->images[0].cfg) {
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
            char want[OCI_PLATFORM_ALL_STR_MAX];
            oci_platform_format_all(&p->o->platforms[k], want, sizeof(want));
            return mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' is a single %s image, not %s",
                               p->o->name, have, want);
        }
    }
    return 0;
}

void reg__pull_docs_release(reg_pull *p)
{
    for (size_t i = 0; i < p->n_nested; i++) {
        reg_blob_release(&p->nested_raw[i]);
        oci_manifest_free(p->nested[i]);
    }
    free(p->nested_raw);
    free(p->nested);
    free(p->nested_put_pending);
    free(p->picked);
}
