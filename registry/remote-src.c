/* The parts of an image in a registry, added to a push that copies it (retag.c, copy.c,
 * index.c): blobs streamed from the source repository (mounted when it is of the same registry),
 * documents fetched by digest and put byte for byte (docs/internals/registry-protocol.md §14). */
#include "push-internal.h"

#include <string.h>

void reg__on_fetch(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    reg__fetched *f = ud;
    f->done = true;
    f->rc = rc;
    f->err = err;
    if (rc == 0) {
        f->blob.digest = blob->digest;
        f->blob.content_type = blob->content_type ? mar_xstrdup(blob->content_type) : NULL;
        f->blob.data = blob->data;
        blob->data = (mar_buf)MAR_BUF_INIT(0);
    }
}

void reg__fetched_release(reg__fetched *f)
{
    mar_err_free(f->err);
    reg_blob_release(&f->blob);
}

/* Adds a fetched document's blobs (streamed from src when a mount fails) or queues its children
 * for the next round. */
int reg__push_add_fetched(reg_push *p, const oci_ref *src, reg__fetched *f, const char *media_type,
                          oci_manifest **ret, mar_err **err)
{
    if (f->rc < 0) {
        *err = TAKE_PTR(f->err);
        return f->rc;
    }
    if (oci_manifest_parse(f->blob.data.data, f->blob.data.len, media_type, ret, err) < 0) {
        return -mar_err_code(*err);
    }
    const oci_manifest *m = *ret;
    if (m->kind == OCI_KIND_MANIFEST) {
        reg_blob_src bs = {.kind = REG_SRC_REGISTRY, .from = src};
        reg_push_add_blob(p, &m->config, &bs);
        for (size_t i = 0; i < m->n_layers; i++) {
            reg_push_add_blob(p, &m->layers[i], &bs);
        }
    }
    return 0;
}

/* Fetches the children of the indexes in `level`, adds them, and repeats for nested ones. */
int reg__push_add_children(reg_client *c, reg_push *p, const oci_ref *src, oci_manifest *idx,
                           const bool *keep, mar_err **err)
{
    oci_manifest **level = mar_xcalloc(1, sizeof(*level));
    level[0] = idx;
    size_t n_level = 1;
    int rc = 0;
    for (int depth = 0; n_level && rc == 0; depth++) {
        if (depth >= 4) {
            rc = mar_err_set(err, MAR_EUNSUPPORTED, 0, "indexes nested more than 4 deep");
            break;
        }
        size_t total = 0;
        for (size_t k = 0; k < n_level; k++) {
            total += level[k]->n_manifests;
        }
        reg__fetched *fs = mar_xcalloc(total + 1, sizeof(*fs));
        size_t n = 0;
        for (size_t k = 0; k < n_level; k++) {
            for (size_t i = 0; i < level[k]->n_manifests; i++) {
                if (depth == 0 && keep && !keep[i]) {
                    continue;
                }
                fs[n].desc = &level[k]->manifests[i];
                reg_manifest_fetch_desc(c, src, fs[n].desc, reg__on_fetch, &fs[n]);
                n++;
            }
        }
        rc = reg_client_run(c, err);
        oci_manifest **next = mar_xcalloc(total + 1, sizeof(*next));
        size_t n_next = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            oci_manifest *m = NULL;
            rc = reg__push_add_fetched(p, src, &fs[i], fs[i].desc->media_type, &m, err);
            if (rc == 0) {
                const oci_platform *pf = fs[i].desc->has_platform ? &fs[i].desc->platform : NULL;
                rc = reg_push_add_manifest(p, m->media_type, fs[i].blob.data.data,
                                           fs[i].blob.data.len, pf, err);
            }
            if (m && m->kind == OCI_KIND_INDEX) {
                next[n_next++] = m;
            } else {
                oci_manifest_free(m);
            }
        }
        for (size_t i = 0; i < n; i++) {
            reg__fetched_release(&fs[i]);
        }
        free(fs);
        for (size_t k = depth ? 0 : 1; k < n_level; k++) {
            oci_manifest_free(level[k]);
        }
        free(level);
        level = next;
        n_level = n_next;
    }
    for (size_t k = 0; k < n_level; k++) {
        oci_manifest_free(level[k]);
    }
    free(level);
    return rc;
}
