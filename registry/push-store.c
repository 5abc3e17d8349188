/* Pushing an image of the store (docs/internals/registry-protocol.md §14 "From the store"): its
 * documents are read back and re-verified, its blobs are sent from their files. An index goes as
 * stored, byte for byte, only when the store holds every child; --platform keeps the entries it
 * selects (with the attestations that refer to them) in a new index, whose digest is then not
 * the stored one. */
#include "push-internal.h"

#include <string.h>

#define ATTEST_REF "vnd.docker.reference.digest"

typedef struct plan_ctx {
    reg_push *p;
    reg_store *s;
    const char *name;
    mar_strv missing; /* "sha256:… (what)" */
    int depth;
} plan_ctx;

void reg_push_plan_release(reg_push_plan *pl)
{
    free(pl->name);
    pl->name = NULL;
}

static void note_missing(plan_ctx *x, const mar_digest *d, const char *what, const oci_platform *pf)
{
    char ps[OCI_PLATFORM_STR_MAX] = "";
    if (pf) {
        oci_platform_format(pf, ps, sizeof(ps));
    }
    mar_strv_push_take(&x->missing,
                       mar_xasprintf("%s (%s%s%s)", d->str, what, ps[0] ? " " : "", ps));
}

static void add_blob(plan_ctx *x, const oci_descriptor *d, const char *what, const oci_platform *pf)
{
    if (!reg_store_has(x->s, &d->digest, -1)) {
        note_missing(x, &d->digest, what, pf);
        return;
    }
    reg_blob_src src = {.kind = REG_SRC_STORE, .store = x->s};
    reg_push_add_blob(x->p, d, &src);
}

MAR_MUST_USE static int add_doc(plan_ctx *x, const oci_descriptor *d, const char *what,
                                mar_err **err);

/* The blobs (or, for an index, the children) a document names. */
MAR_MUST_USE static int add_children(plan_ctx *x, const oci_manifest *m, const oci_platform *pf,
                                     mar_err **err)
{
    if (m->kind == OCI_KIND_MANIFEST) {
        add_blob(x, &m->config, "config", pf);
        for (size_t i = 0; i < m->n_layers; i++) {
            add_blob(x, &m->layers[i], "layer", pf);
        }
        return 0;
    }
    if (++x->depth > 4) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "'%s' nests indexes more than 4 deep",
                           x->name);
    }
    for (size_t i = 0; i < m->n_manifests; i++) {
        const oci_descriptor *c = &m->manifests[i];
        if (add_doc(x, c, oci_descriptor_is_attestation(c) ? "attestation" : "manifest", err) < 0) {
            return -mar_err_code(*err);
        }
    }
    x->depth--;
    return 0;
}

MAR_MUST_USE static int read_doc(plan_ctx *x, const mar_digest *d, const char *media_type,
                                 mar_buf *raw, oci_manifest **ret, mar_err **err)
{
    if (reg_store_read(x->s, d, MAR_CAP_MANIFEST, raw, err) < 0 ||
        oci_manifest_parse(raw->data, raw->len, media_type, ret, err) < 0) {
        return mar_err_wrap(err, "'%s'", x->name);
    }
    return 0;
}

MAR_MUST_USE static int add_doc(plan_ctx *x, const oci_descriptor *d, const char *what,
                                mar_err **err)
{
    /* An attestation's platform is unknown/unknown: saying so helps nobody. */
    const oci_platform *pf =
            d->has_platform && !oci_descriptor_is_attestation(d) ? &d->platform : NULL;
    if (!reg_store_has(x->s, &d->digest, d->size)) {
        note_missing(x, &d->digest, what, pf);
        return 0;
    }
    _cleanup_buf_ mar_buf raw = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_manifest_ oci_manifest *m = NULL;
    if (read_doc(x, &d->digest, d->media_type, &raw, &m, err) < 0 ||
        add_children(x, m, pf, err) < 0 ||
        reg_push_add_manifest(x->p, m->media_type, raw.data, raw.len, pf, err) < 0) {
        return -mar_err_code(*err);
    }
    return 0;
}

MAR_MUST_USE static int missing_error(plan_ctx *x, mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < x->missing.n && i < 8; i++) {
        mar_buf_xprintf(&b, "%s%s", i ? ", " : "", x->missing.v[i]);
    }
    if (x->missing.n > 8) {
        mar_buf_xprintf(&b, " and %zu more", x->missing.n - 8);
    }
    int rc = mar_err_set(err, MAR_ENOTFOUND, 0,
                         "the store lacks %zu part%s of '%s': %s (pull them, or push part of it "
                         "with --platform)",
                         x->missing.n, x->missing.n == 1 ? "" : "s", x->name, b.data);
    mar_buf_release(&b);
    return rc;
}

/* Which entries of an index the requested platforms keep: each platform must select at least
 * one (normalized equality, containerd's OnlyStrict); attestations follow the manifest they
 * describe, when stored. */
MAR_MUST_USE static int select_entries(plan_ctx *x, const oci_manifest *idx,
                                       const oci_platform *platforms, size_t n_platforms,
                                       bool *keep, reg_push_plan *pl, mar_err **err)
{
    if (reg__select_platforms(x->name, idx, platforms, n_platforms, keep, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const oci_descriptor *e = &idx->manifests[i];
        const char *ref = oci_descriptor_annotation(e, ATTEST_REF);
        if (!oci_descriptor_is_attestation(e) || !ref) {
            continue;
        }
        for (size_t k = 0; k < idx->n_manifests; k++) {
            if (keep[k] && strcmp(idx->manifests[k].digest.str, ref) == 0) {
                if (reg_store_has(x->s, &e->digest, e->size)) {
                    keep[i] = true;
                } else {
                    pl->dropped_attestations++;
                }
            }
        }
    }
    return 0;
}

/* The stored index with only the kept entries; every other field as it was. */
int reg__narrowed_index(const mar_buf *raw, const bool *keep, size_t n, mar_buf *ret, mar_err **err)
{
    _cleanup_json_ json_t *doc = NULL;
    if (mar_json_load(raw->data, raw->len, "index", &doc, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *arr = json_object_get(doc, "manifests");
    json_t *kept = json_array();
    for (size_t i = 0; i < n && i < json_array_size(arr); i++) {
        if (keep[i]) {
            json_array_append(kept, json_array_get(arr, i));
        }
    }
    json_object_set_new(doc, "manifests", kept);
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot serialize the new index");
    }
    mar_buf_release(ret);
    int rc = mar_buf_append(ret, text, strlen(text));
    free(text);
    if (rc < 0) {
        /* Re-serializing can lengthen a document (a number written "1e2" becomes "100"). */
        return mar_err_set(err, MAR_EINTEGRITY, 0, "the narrowed index is over %zu bytes",
                           ret->cap);
    }
    return 0;
}

MAR_MUST_USE static int plan_index(plan_ctx *x, const reg_store_ref *top, const mar_buf *raw,
                                   const oci_manifest *idx, const oci_platform *platforms,
                                   size_t n_platforms, reg_push_plan *pl, mar_err **err)
{
    size_t n = idx->n_manifests;
    _cleanup_free_ bool *keep = mar_xcalloc(n + 1, sizeof(bool));
    if (!n_platforms) {
        for (size_t i = 0; i < n; i++) {
            keep[i] = true;
        }
    } else if (select_entries(x, idx, platforms, n_platforms, keep, pl, err) < 0) {
        return -mar_err_code(*err);
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        const oci_descriptor *e = &idx->manifests[i];
        if (!keep[i]) {
            continue;
        }
        kept++;
        if (add_doc(x, e, oci_descriptor_is_attestation(e) ? "attestation" : "manifest", err) < 0) {
            return -mar_err_code(*err);
        }
    }
    pl->kept = kept;
    pl->entries = n;
    if (x->missing.n) {
        return missing_error(x, err);
    }
    if (kept == n) {
        return reg_push_set_top(x->p, top->media_type[0] ? top->media_type : idx->media_type,
                                raw->data, raw->len, err);
    }
    _cleanup_buf_ mar_buf made = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    if (reg__narrowed_index(raw, keep, n, &made, err) < 0) {
        return -mar_err_code(*err);
    }
    pl->new_index = true;
    return reg_push_set_top(x->p, idx->media_type, made.data, made.len, err);
}

/* A single manifest is pushed for --platform only when its config says it is every platform
 * asked for. */
MAR_MUST_USE static int check_single(plan_ctx *x, const oci_manifest *m,
                                     const oci_platform *platforms, size_t n_platforms,
                                     mar_err **err)
{
    _cleanup_buf_ mar_buf cb = MAR_BUF_INIT(MAR_CAP_CONFIG);
    _cleanup_config_ oci_config *cfg = NULL;
    if (reg_store_read(x->s, &m->config.digest, MAR_CAP_CONFIG, &cb, err) < 0 ||
        oci_config_parse(cb.data, cb.len, &cfg, err) < 0) {
        return mar_err_wrap(err, "'%s'", x->name);
    }
    for (size_t k = 0; k < n_platforms; k++) {
        oci_matcher mt;
        oci_matcher_only_strict(&mt, &platforms[k]);
        if (!cfg->has_platform || !oci_matcher_match(&mt, &cfg->platform)) {
            char want[OCI_PLATFORM_STR_MAX], have[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&platforms[k], want, sizeof(want));
            oci_platform_format(&cfg->platform, have, sizeof(have));
            return mar_err_set(err, MAR_ENOTFOUND, 0,
                               "'%s' is a single manifest for %s: no entry for %s", x->name, have,
                               want);
        }
    }
    return 0;
}

int reg_push_add_stored(reg_push *p, reg_store *s, const char *name, const oci_platform *platforms,
                        size_t n_platforms, reg_push_plan *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    reg_store_refs refs;
    if (reg_store_list(s, &refs, err) < 0) {
        return -mar_err_code(*err);
    }
    const reg_store_ref *top = NULL;
    for (size_t i = 0; i < refs.n; i++) {
        if (strcmp(refs.v[i].name, name) == 0) {
            top = &refs.v[i];
        }
    }
    if (!top) {
        reg_store_refs_release(&refs);
        return mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' is not in the store '%s'", name,
                           reg_store_path(s));
    }
    plan_ctx x = {.p = p, .s = s, .name = name};
    reg_push_plan pl = {.name = mar_xstrdup(name), .source = top->digest};
    _cleanup_buf_ mar_buf raw = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_manifest_ oci_manifest *m = NULL;
    int rc = read_doc(&x, &top->digest, top->media_type, &raw, &m, err);
    if (rc == 0 && m->kind == OCI_KIND_INDEX) {
        rc = plan_index(&x, top, &raw, m, platforms, n_platforms, &pl, err);
    } else if (rc == 0) {
        /* A single manifest: --platform can only confirm it. */
        pl.kept = pl.entries = 1;
        rc = n_platforms ? check_single(&x, m, platforms, n_platforms, err) : 0;
        if (rc == 0) {
            rc = add_children(&x, m, NULL, err);
        }
        if (rc == 0 && x.missing.n) {
            rc = missing_error(&x, err);
        }
        if (rc == 0) {
            rc = reg_push_set_top(p, top->media_type[0] ? top->media_type : m->media_type, raw.data,
                                  raw.len, err);
        }
    }
    mar_strv_release(&x.missing);
    reg_store_refs_release(&refs);
    if (rc < 0) {
        reg_push_plan_release(&pl);
        return rc;
    }
    *ret = pl;
    return 0;
}
