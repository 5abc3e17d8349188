/* A new name for an image inside one registry (docs/internals/registry-protocol.md §14 "Tags
 * without moving blobs"). In its own repository a tag is only a manifest PUT: the document is
 * fetched by digest and put again, byte for byte, under the new tag. In another repository of
 * the same registry the blobs are mounted (distribution-spec "Mounting a blob from another
 * repository"), or streamed from the source repository when the registry answers a mount with
 * an upload session; the child manifests follow by digest, the top document last. */
#include "push-internal.h"

#include <string.h>

int reg_retag(reg_client *c, const oci_ref *src, const reg_push_opts *o, reg_push_result *ret,
              mar_err **err)
{
    const oci_ref *dst = o->dst;
    if (strcmp(src->api_host, dst->api_host) != 0) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "'%s' and '%s' are different registries: a tag stays in one registry",
                           src->domain, dst->domain);
    }
    reg__fetched top = {0};
    reg_manifest_fetch(c, src, reg__on_fetch, &top);
    if (reg_client_run(c, err) < 0) {
        reg__fetched_release(&top);
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
        rc = reg__push_add_fetched(p, src, &top, top.blob.content_type, &m, err);
        if (rc == 0 && m->kind == OCI_KIND_INDEX) {
            rc = reg__push_add_children(c, p, src, m, NULL, err);
        }
    }
    if (rc == 0) {
        rc = reg_push_set_top(p, m->media_type, top.blob.data.data, top.blob.data.len, err);
    }
    reg__fetched_release(&top);
    if (rc < 0) {
        _cleanup_free_ char *s = oci_ref_string(src);
        return mar_err_wrap(err, "tagging '%s'", s);
    }
    return reg_push_run(p, ret, err);
}
