/* A new name for an image inside one registry (docs/internals/registry-protocol.md §14 "Tags
 * without moving blobs"). In its own repository a tag is only a manifest PUT: the document is
 * fetched by digest and put again, byte for byte, under the new tag. In another repository of
 * the same registry the blobs are mounted (distribution-spec "Mounting a blob from another
 * repository"), or streamed from the source repository when the registry answers a mount with
 * an upload session; the child manifests follow by digest, the top document last. */
#include "push-internal.h"

#include <string.h>

typedef struct fetched {
    bool done;
    int rc;
    mar_err *err;
    reg_blob blob;
    const oci_descriptor *desc; /* the index entry, for children */
} fetched;

static void on_fetch(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    fetched *f = ud;
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

static void fetched_release(fetched *f)
{
    mar_err_free(f->err);
    reg_blob_release(&f->blob);
}

/* Adds a fetched document's blobs (streamed from src when a mount fails) or queues its children
 * for the next round. */
MAR_MUST_USE static int add_fetched(reg_push *p, const oci_ref *src, fetched *f,
                                    const char *media_type, oci_manifest **ret, mar_err **err)
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
MAR_MUST_USE static int add_children(reg_client *c, reg_push *p, const oci_ref *src,
                                     oci_manifest *idx, mar_err **err)
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
        fetched *fs = mar_xcalloc(total + 1, sizeof(*fs));
        size_t n = 0;
        for (size_t k = 0; k < n_level; k++) {
            for (size_t i = 0; i < level[k]->n_manifests; i++) {
                fs[n].desc = &level[k]->manifests[i];
                reg_manifest_fetch_desc(c, src, fs[n].desc, on_fetch, &fs[n]);
                n++;
            }
        }
        rc = reg_client_run(c, err);
        oci_manifest **next = mar_xcalloc(total + 1, sizeof(*next));
        size_t n_next = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            oci_manifest *m = NULL;
            rc = add_fetched(p, src, &fs[i], fs[i].desc->media_type, &m, err);
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
            fetched_release(&fs[i]);
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

int reg_retag(reg_client *c, const oci_ref *src, const reg_push_opts *o, reg_push_result *ret,
              mar_err **err)
{
    const oci_ref *dst = o->dst;
    if (strcmp(src->api_host, dst->api_host) != 0) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "'%s' and '%s' are different registries: a tag stays in one registry",
                           src->domain, dst->domain);
    }
    fetched top = {0};
    reg_manifest_fetch(c, src, on_fetch, &top);
    if (reg_client_run(c, err) < 0) {
        fetched_release(&top);
        return -mar_err_code(*err);
    }
    bool same_repo = strcmp(src->path, dst->path) == 0;
    reg_push_opts po = *o;
    po.mount_from = same_repo ? NULL : src->path;
    _cleanup_push_ reg_push *p = reg_push_new(c, &po);
    _cleanup_manifest_ oci_manifest *m = NULL;
    int rc = 0;
    if (same_repo) {
        if (top.rc < 0) {
            rc = top.rc;
            *err = TAKE_PTR(top.err);
        } else {
            rc = oci_manifest_parse(top.blob.data.data, top.blob.data.len, top.blob.content_type,
                                    &m, err);
        }
    } else {
        rc = add_fetched(p, src, &top, top.blob.content_type, &m, err);
        if (rc == 0 && m->kind == OCI_KIND_INDEX) {
            rc = add_children(c, p, src, m, err);
        }
    }
    if (rc == 0) {
        rc = reg_push_set_top(p, m->media_type, top.blob.data.data, top.blob.data.len, err);
    }
    fetched_release(&top);
    if (rc < 0) {
        _cleanup_free_ char *s = oci_ref_string(src);
        return mar_err_wrap(err, "tagging '%s'", s);
    }
    return reg_push_run(p, ret, err);
}
