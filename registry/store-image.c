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

static int read_doc(reg_store *s, const mar_digest *d, const char *media_type, oci_manifest **ret,
                    mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    if (reg_store_read(s, d, MAR_CAP_MANIFEST, &b, err) < 0) {
        return -mar_err_code(*err);
    }
    int rc = oci_manifest_parse(b.data, b.len, media_type, ret, err);
    mar_buf_release(&b);
    return rc;
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
        oci_selection sel;
        oci_index_select(top, m, &sel);
        /* The best match the store holds: a pull of one platform stores only its children. */
        size_t pick = SIZE_MAX;
        for (size_t k = 0; k < sel.n && pick == SIZE_MAX; k++) {
            if (reg_store_has(s, &top->manifests[sel.order[k]].digest, -1)) {
                pick = sel.order[k];
            }
        }
        oci_selection_release(&sel);
        if (pick == SIZE_MAX) {
            reg_store_image_release(&im);
            return mar_err_set(err, MAR_ENOTFOUND, 0,
                               "the store has no matching platform of '%s' (pull it first)", name);
        }
        const oci_descriptor *d = &top->manifests[pick];
        im.digest = d->digest;
        im.platform = d->platform;
        if (read_doc(s, &d->digest, d->media_type, &im.manifest, err) < 0) {
            reg_store_image_release(&im);
            return -mar_err_code(*err);
        }
    } else {
        im.digest = top_digest;
        im.manifest = TAKE_PTR(top);
    }
    if (im.manifest->kind != OCI_KIND_MANIFEST) {
        reg_store_image_release(&im);
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "'%s' nests an index in an index", name);
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
        im.platform = im.config->platform; /* a single manifest: its config says */
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
