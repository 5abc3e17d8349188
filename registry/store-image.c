/* Finding a pulled image in the store: a reference name (as index.json records it) and a
 * platform choice give one manifest, its config and its layers, every document re-verified as
 * it is read. mar unpack and mar run start from here when the image is already local. */
#include "registry-internal.h"

#include <string.h>

void reg_store_image_release(reg_store_image *im)
{
    oci_manifest_free(im->manifest);
    oci_config_free(im->config);
    free(im->chains);
    free(im->name);
    memset(im, 0, sizeof(*im));
}

MAR_MUST_USE static int read_doc(reg_store *s, const mar_digest *d, const char *media_type,
                                 oci_manifest **ret, mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    if (reg_store_read(s, d, MAR_CAP_MANIFEST, &b, err) < 0) {
        return -mar_err_code(*err);
    }
    int rc = oci_manifest_parse(b.data, b.len, media_type, ret, err);
    mar_buf_release(&b);
    return rc;
}

/* What oci_index_pick needs from the store: nested indexes read from it, and whether it holds a
 * candidate manifest (a pull of one platform stores only that platform's documents). */
typedef struct store_pick {
    reg_store *s;
    const oci_matcher *m;
    oci_manifest *nested[OCI_INDEX_DEPTH_MAX * 4];
    size_t n_nested;
} store_pick;

MAR_MUST_USE static int lookup_stored(const oci_descriptor *d, void *ud, const oci_manifest **ret,
                                      mar_err **err)
{
    store_pick *x = ud;
    if (x->n_nested == MAR_ARRAY_SIZE(x->nested) || !reg_store_has(x->s, &d->digest, d->size)) {
        return mar_err_set(err, MAR_ENOTFOUND, 0, "the store has no index %s", d->digest.str);
    }
    oci_manifest *m = NULL;
    if (read_doc(x->s, &d->digest, d->media_type, &m, err) < 0) {
        return -mar_err_code(*err);
    }
    x->nested[x->n_nested++] = m;
    *ret = m;
    return 0;
}

/* A manifest the store holds; without a platform, only when its stored config matches (containerd
 * reads that config, docs/internals/platforms.md §7). */
static bool held(const oci_descriptor *d, void *ud)
{
    store_pick *x = ud;
    if (!reg_store_has(x->s, &d->digest, -1)) {
        return false;
    }
    if (d->has_platform) {
        return true;
    }
    _cleanup_manifest_ oci_manifest *m = NULL;
    mar_buf cb = MAR_BUF_INIT(MAR_CAP_CONFIG);
    oci_config *cfg = NULL;
    mar_err *e = NULL;
    bool ok = read_doc(x->s, &d->digest, d->media_type, &m, &e) == 0 &&
              m->kind == OCI_KIND_MANIFEST &&
              reg_store_read(x->s, &m->config.digest, MAR_CAP_CONFIG, &cb, &e) == 0 &&
              oci_config_parse(cb.data, cb.len, &cfg, &e) == 0 && cfg->has_platform &&
              oci_matcher_match(x->m, &cfg->platform);
    mar_err_free(e);
    oci_config_free(cfg);
    mar_buf_release(&cb);
    return ok;
}

int reg_store_image_find(reg_store *s, const char *name, const oci_matcher *m, reg_store_image *ret,
                         mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    reg_store_refs refs;
    if (reg_store_list(s, &refs, err) < 0) {
        return -mar_err_code(*err);
    }
    const reg_store_ref *hit = NULL;
    for (size_t i = 0; i < refs.n; i++) {
        if (strcmp(refs.v[i].name, name) == 0) {
            hit = &refs.v[i];
        }
    }
    int rc = hit ? reg_store_image_of(s, hit, m, ret, err)
                 : mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' is not in the store '%s'", name,
                               s->path);
    reg_store_refs_release(&refs);
    return rc;
}

int reg_store_image_of(reg_store *s, const reg_store_ref *ref, const oci_matcher *m,
                       reg_store_image *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    const char *name = ref->name;
    _cleanup_manifest_ oci_manifest *top = NULL;
    int rc = read_doc(s, &ref->digest, ref->media_type, &top, err);
    mar_digest top_digest = ref->digest;
    if (rc < 0) {
        return rc;
    }
    reg_store_image im = {.name = mar_xstrdup(name), .top = top_digest};
    if (top->kind == OCI_KIND_INDEX) {
        /* The best match the store holds, through nested indexes too. */
        store_pick x = {.s = s, .m = m};
        oci_pick pick;
        rc = oci_index_pick(top, &top_digest, m, lookup_stored, held, &x, &pick, err);
        if (rc == 0) {
            const oci_descriptor *d = pick.desc;
            im.digest = d->digest;
            im.platform = d->platform;
            rc = read_doc(s, &d->digest, d->media_type, &im.manifest, err);
        }
        for (size_t i = 0; i < x.n_nested; i++) {
            oci_manifest_free(x.nested[i]);
        }
        if (rc == 1) {
            reg_store_image_release(&im);
            return mar_err_set(err, MAR_ENOTFOUND, 0,
                               "the store has no matching platform of '%s' (pull it first)", name);
        }
        if (rc < 0) {
            reg_store_image_release(&im);
            return -mar_err_code(*err);
        }
    } else {
        im.digest = top_digest;
        im.manifest = TAKE_PTR(top);
    }
    if (im.manifest->kind != OCI_KIND_MANIFEST) {
        reg_store_image_release(&im);
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "'%s': %s is listed as a manifest but is an index, refusing", name,
                           im.digest.str);
    }
    mar_buf cb = MAR_BUF_INIT(MAR_CAP_CONFIG);
    rc = reg_store_read(s, &im.manifest->config.digest, MAR_CAP_CONFIG, &cb, err);
    if (rc == 0) {
        rc = oci_config_parse(cb.data, cb.len, &im.config, err);
    }
    mar_buf_release(&cb);
    if (rc < 0) {
        reg_store_image_release(&im);
        return rc;
    }
    if (!im.platform.os[0]) {
        im.platform = im.config->platform; /* a single manifest or no label: its config says */
    }
    if (im.config->n_diff_ids != im.manifest->n_layers) {
        reg_store_image_release(&im);
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "'%s' has %zu layers but its config lists %zu diff_ids", name,
                           im.manifest->n_layers, im.config ? im.config->n_diff_ids : 0);
    }
    im.chains = mar_xcalloc(im.manifest->n_layers + 1, sizeof(*im.chains));
    oci_chain_ids(im.config->diff_ids, im.manifest->n_layers, im.chains);
    im.blobs_present = true;
    im.unpacked = true;
    for (size_t i = 0; i < im.manifest->n_layers; i++) {
        const oci_descriptor *l = &im.manifest->layers[i];
        im.blobs_present = im.blobs_present && reg_store_has(s, &l->digest, l->size);
        im.unpacked = im.unpacked && reg_store_layer_complete(s, &im.chains[i]);
    }
    *ret = im;
    return 0;
}
