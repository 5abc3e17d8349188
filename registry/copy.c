/* mar copy between registries (docs/internals/registry-protocol.md §15): the source's documents
 * are fetched and put again byte for byte, so an unfiltered copy keeps its digest; every blob is
 * streamed from the source's GET into the destination's upload through the upload's bounded
 * window (upload-source.c), or mounted when both repositories are of one registry. Nothing
 * touches the disk. A --platform filter keeps some entries of an index, with the attestation
 * manifests that describe them, in a new index. */
#include "push-internal.h"

#include <string.h>

void reg_copy_result_release(reg_copy_result *r)
{
    free(r->media_type);
    r->media_type = NULL;
}

void reg_endpoint_release(reg_endpoint *e)
{
    oci_ref_release(&e->ref);
    free(e->path);
    free(e->tag);
    memset(e, 0, sizeof(*e));
}

/* "PATH[:TAG]": the tag is what follows the last ':' when it is a valid tag and the rest is not
 * empty (a path may hold colons; a tag never holds '/'). */
MAR_MUST_USE static int parse_layout(const char *spec, reg_end_kind kind, reg_endpoint *ret,
                                     mar_err **err)
{
    const char *colon = strrchr(spec, ':');
    ret->kind = kind;
    if (colon && colon != spec && !strchr(colon, '/') && oci_tag_valid(colon + 1)) {
        ret->path = mar_xstrndup(spec, (size_t)(colon - spec));
        ret->tag = mar_xstrdup(colon + 1);
    } else {
        ret->path = mar_xstrdup(spec);
    }
    if (!ret->path[0]) {
        reg_endpoint_release(ret);
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s': a layout needs a path",
                           kind == REG_END_LAYOUT ? "oci:" : "oci-archive:");
    }
    return 0;
}

int reg_endpoint_parse(const char *s, reg_endpoint *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    if (strncmp(s, "oci:", 4) == 0) {
        return parse_layout(s + 4, REG_END_LAYOUT, ret, err);
    }
    if (strncmp(s, "oci-archive:", 12) == 0) {
        return parse_layout(s + 12, REG_END_ARCHIVE, ret, err);
    }
    if (strncmp(s, "docker://", 9) == 0) {
        s += 9;
    }
    ret->kind = REG_END_REGISTRY;
    return oci_ref_parse(s, &ret->ref, err);
}

int reg__select_platforms(const char *name, const oci_manifest *idx, const oci_platform *platforms,
                          size_t n_platforms, bool *keep, mar_err **err)
{
    for (size_t k = 0; k < n_platforms; k++) {
        oci_matcher m;
        oci_matcher_only_strict(&m, &platforms[k]);
        bool any = false;
        for (size_t i = 0; i < idx->n_manifests; i++) {
            const oci_descriptor *e = &idx->manifests[i];
            if (e->has_platform && !oci_descriptor_is_attestation(e) &&
                oci_matcher_match(&m, &e->platform)) {
                keep[i] = any = true;
            }
        }
        if (any) {
            continue;
        }
        char want[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&platforms[k], want, sizeof(want));
        /* One line, however many entries the index has. */
        mar_buf have = MAR_BUF_INIT(MAR_BUF_NOCAP);
        for (size_t i = 0; i < idx->n_manifests; i++) {
            const oci_descriptor *e = &idx->manifests[i];
            char ps[OCI_PLATFORM_STR_MAX];
            if (have.len >= 1024) {
                mar_buf_xputs(&have, ", …");
                break;
            }
            if (e->has_platform && !oci_descriptor_is_attestation(e)) {
                oci_platform_format(&e->platform, ps, sizeof(ps));
                mar_buf_xprintf(&have, "%s%s", have.len ? ", " : "", ps);
            }
        }
        int rc = mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' has no entry for %s (it has: %s)", name,
                             want, have.len ? have.data : "none");
        mar_buf_release(&have);
        return rc;
    }
    return 0;
}

int reg__copy_select(const char *name, const oci_manifest *idx, const oci_platform *platforms,
                     size_t n_platforms, bool *keep, mar_err **err)
{
    if (!n_platforms) {
        for (size_t i = 0; i < idx->n_manifests; i++) {
            keep[i] = true;
        }
        return 0;
    }
    if (reg__select_platforms(name, idx, platforms, n_platforms, keep, err) < 0) {
        return -mar_err_code(*err);
    }
    /* Attestations follow the manifests they describe (docs/internals/platforms.md §9). */
    for (size_t i = 0; i < idx->n_manifests; i++) {
        mar_digest subject;
        if (!oci_descriptor_is_attestation(&idx->manifests[i]) ||
            !oci_descriptor_attests(&idx->manifests[i], &subject)) {
            continue;
        }
        for (size_t k = 0; k < idx->n_manifests; k++) {
            if (keep[k] && !oci_descriptor_is_attestation(&idx->manifests[k]) &&
                mar_digest_eq(&idx->manifests[k].digest, &subject)) {
                keep[i] = true;
            }
        }
    }
    return 0;
}

/* A single manifest passes a --platform filter only when its config is every platform asked. */
MAR_MUST_USE static int check_single(reg_client *c, const oci_ref *src, const char *name,
                                     const oci_manifest *m, const oci_platform *platforms,
                                     size_t n_platforms, mar_err **err)
{
    reg__fetched f = {0};
    reg_blob_fetch(c, src, &m->config, MAR_CAP_CONFIG, reg__on_fetch, &f);
    if (reg_client_run(c, err) < 0) {
        reg__fetched_release(&f);
        return -mar_err_code(*err);
    }
    _cleanup_config_ oci_config *cfg = NULL;
    int rc = f.rc;
    if (rc < 0) {
        *err = TAKE_PTR(f.err);
    } else {
        rc = oci_config_parse(f.blob.data.data, f.blob.data.len, &cfg, err);
    }
    reg__fetched_release(&f);
    for (size_t k = 0; rc == 0 && k < n_platforms; k++) {
        oci_matcher mt;
        oci_matcher_only_strict(&mt, &platforms[k]);
        if (!cfg->has_platform || !oci_matcher_match(&mt, &cfg->platform)) {
            char want[OCI_PLATFORM_STR_MAX], have[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&platforms[k], want, sizeof(want));
            oci_platform_format(&cfg->platform, have, sizeof(have));
            rc = mar_err_set(err, MAR_ENOTFOUND, 0,
                             "'%s' is a single manifest for %s: no entry for %s", name, have, want);
        }
    }
    return rc;
}

MAR_MUST_USE static int copy_registry(reg_client *c, const oci_ref *src, const oci_ref *dst,
                                      const reg_copy_opts *o, reg_copy_result *ret, mar_err **err)
{
    _cleanup_free_ char *name = oci_ref_string(src);
    reg__fetched top = {0};
    reg_manifest_fetch(c, src, reg__on_fetch, &top);
    if (reg_client_run(c, err) < 0) {
        reg__fetched_release(&top);
        return -mar_err_code(*err);
    }
    reg_push_opts po = {
            .dst = dst,
            .jobs = o->jobs,
            .mount_sources = true,
            .progress = o->progress,
            .progress_ud = o->progress_ud,
    };
    _cleanup_push_ reg_push *p = reg_push_new(c, &po);
    _cleanup_manifest_ oci_manifest *m = NULL;
    _cleanup_buf_ mar_buf made = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_free_ bool *keep = NULL;
    int rc = reg__push_add_fetched(p, src, &top, top.blob.content_type, &m, err);
    if (rc == 0) {
        ret->source = top.blob.digest;
    }
    if (rc == 0 && m->kind == OCI_KIND_INDEX) {
        size_t n = m->n_manifests;
        keep = mar_xcalloc(n + 1, sizeof(bool));
        rc = reg__copy_select(name, m, o->platforms, o->n_platforms, keep, err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            ret->kept += keep[i];
        }
        ret->entries = n;
        if (rc == 0) {
            rc = reg__push_add_children(c, p, src, m, keep, err);
        }
        if (rc == 0 && ret->kept != n) {
            ret->new_index = true;
            rc = reg__narrowed_index(&top.blob.data, keep, n, &made, err);
        }
    } else if (rc == 0) {
        ret->kept = ret->entries = 1;
        if (o->n_platforms) {
            rc = check_single(c, src, name, m, o->platforms, o->n_platforms, err);
        }
    }
    if (rc == 0) {
        const mar_buf *doc = ret->new_index ? &made : &top.blob.data;
        rc = reg_push_set_top(p, m->media_type, doc->data, doc->len, err);
    }
    reg__fetched_release(&top);
    if (rc < 0) {
        return mar_err_wrap(err, "copying '%s'", name);
    }
    const reg_push_item *items;
    size_t n_items = reg_push_items(p, &items);
    for (size_t i = 0; i < n_items; i++) {
        ret->blobs += !items[i].document;
    }
    reg_push_result pr;
    if (reg_push_run(p, &pr, err) < 0) {
        return -mar_err_code(*err);
    }
    ret->digest = pr.digest;
    ret->media_type = TAKE_PTR(pr.media_type);
    ret->size = pr.size;
    ret->stats = pr.stats;
    ret->bytes = pr.stats.bytes_sent;
    return 0;
}

int reg_copy(reg_client *c, const reg_endpoint *src, const reg_endpoint *dst,
             const reg_copy_opts *o, reg_copy_result *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    if (src->kind == REG_END_REGISTRY && dst->kind == REG_END_REGISTRY) {
        return copy_registry(c, &src->ref, &dst->ref, o, ret, err);
    }
    if (src->kind == REG_END_REGISTRY) {
        return reg__copy_to_layout(c, &src->ref, dst, o, ret, err);
    }
    if (dst->kind == REG_END_REGISTRY) {
        return reg__copy_from_layout(c, src, &dst->ref, o, ret, err);
    }
    return mar_err_set(err, MAR_EUSAGE, 0,
                       "both ends are layouts: mar copy reads or writes a registry");
}
