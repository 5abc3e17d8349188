/* mar index create (docs/internals/registry-protocol.md §15): one index from several sources.
 * Every source is resolved with its child manifests and configs in one round of parallel
 * requests; a single manifest becomes an entry whose platform its config says, an index gives
 * its entries as they are written (annotations included), checked against their configs as
 * mar inspect checks them. Attestation manifests (docs/internals/platforms.md §9) follow the
 * entry they describe: kept with it, dropped with it. Sources of the destination's repository
 * cost nothing more; from another repository of the same registry their blobs are mounted
 * (distribution-spec "Mounting a blob from another repository"), from another registry streamed;
 * then the index is put under the tag, last. */
#include "push-internal.h"

#include <string.h>

typedef struct ent {
    json_t *obj;       /* the descriptor written into the index (owned) */
    mar_digest digest; /* of the manifest */
    bool attestation;  /* subject names the manifest it describes */
    mar_digest subject;
    bool has_platform;
    oci_platform platform;
    size_t src; /* index into the sources, SIZE_MAX for the index appended to */
    size_t pos; /* position in its source's index, SIZE_MAX for a single manifest */
    bool dropped;
} ent;

typedef struct gather {
    reg_image **imgs;
    size_t left;
} gather;

typedef struct builder {
    const reg_index_opts *o;
    ent *v;
    size_t n;
} builder;

void reg_index_result_release(reg_index_result *r)
{
    mar_buf_release(&r->json);
}

static void on_image(reg_client *c, reg_image *img, void *ud)
{
    (void)c;
    reg_image **slot = ud;
    *slot = img;
}

static ent *add_ent(builder *b)
{
    b->v = mar_xrealloc(b->v, (b->n + 1) * sizeof(*b->v));
    memset(&b->v[b->n], 0, sizeof(*b->v));
    return &b->v[b->n++];
}

static json_t *platform_json(const oci_platform *p)
{
    json_t *o = json_pack("{s:s, s:s}", "architecture", p->arch, "os", p->os);
    if (p->variant[0]) {
        json_object_set_new(o, "variant", json_string(p->variant));
    }
    if (p->os_version[0]) {
        json_object_set_new(o, "os.version", json_string(p->os_version));
    }
    if (p->features[0]) {
        /* '+'-joined, %XX-escaped (oci_platform): back to the strings. */
        json_t *f = json_array();
        const char *s = p->features;
        while (*s) {
            mar_buf one = MAR_BUF_INIT(MAR_BUF_NOCAP); /* within a platform string's limit */
            for (; *s && *s != '+'; s++) {
                unsigned x;
                if (*s == '%' && s[1] && s[2] && sscanf(s + 1, "%2x", &x) == 1) {
                    char ch = (char)x;
                    mar_buf_xappend(&one, &ch, 1);
                    s += 2;
                } else {
                    mar_buf_xappend(&one, s, 1);
                }
            }
            json_array_append_new(f, json_stringn(one.data ? one.data : "", one.len));
            mar_buf_release(&one);
            s += *s == '+';
        }
        json_object_set_new(o, "os.features", f);
    }
    return o;
}

/* The entries of an index (appended-to or a source), from its JSON, in order. */
MAR_MUST_USE static int add_index_entries(builder *b, const reg_image *img, size_t src,
                                          const char *name, mar_err **err)
{
    _cleanup_json_ json_t *doc = NULL;
    if (mar_json_load(img->raw.data.data, img->raw.data.len, "index", &doc, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *arr = json_object_get(doc, "manifests");
    for (size_t i = 0; i < img->root->n_manifests; i++) {
        const oci_descriptor *d = &img->root->manifests[i];
        ent *e = add_ent(b);
        e->obj = json_deep_copy(json_array_get(arr, i));
        e->digest = d->digest;
        e->src = src;
        e->pos = i;
        e->attestation = oci_descriptor_is_attestation(d) && oci_descriptor_attests(d, &e->subject);
        e->has_platform = d->has_platform && !oci_descriptor_is_attestation(d);
        e->platform = d->platform;
        if (src == SIZE_MAX || !e->has_platform) {
            continue;
        }
        /* The entry's platform must be what its config says (the check mar inspect makes). */
        for (size_t k = 0; k < img->n_entries; k++) {
            const reg_image_entry *ie = &img->entries[k];
            if (ie->depth != 0 || ie->index != i) {
                continue;
            }
            if (ie->err && !ie->not_read) {
                return mar_err_set(err, ie->err->code, 0, "'%s', entry %s: %s", name, d->digest.str,
                                   ie->err->msg);
            }
            if (ie->config && ie->config->has_platform &&
                !oci_platform_same(&d->platform, &ie->config->platform)) {
                char a[OCI_PLATFORM_STR_MAX], c[OCI_PLATFORM_STR_MAX];
                oci_platform_format(&d->platform, a, sizeof(a));
                oci_platform_format(&ie->config->platform, c, sizeof(c));
                return mar_err_set(err, MAR_EINTEGRITY, 0,
                                   "'%s': the entry %s says %s but its config says %s, refusing",
                                   name, d->digest.str, a, c);
            }
        }
    }
    return 0;
}

MAR_MUST_USE static int add_single(builder *b, const reg_image *img, size_t src, const char *name,
                                   mar_err **err)
{
    const reg_image_entry *ie = img->n_entries ? &img->entries[0] : NULL;
    if (ie && ie->err) {
        return mar_err_set(err, ie->err->code, 0, "'%s': %s", name, ie->err->msg);
    }
    if (!ie || !ie->config || !ie->config->has_platform) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "'%s' has no platform in its config: an index entry needs one", name);
    }
    ent *e = add_ent(b);
    e->digest = img->raw.digest;
    e->src = src;
    e->pos = SIZE_MAX;
    e->has_platform = true;
    e->platform = ie->config->platform;
    e->obj = json_pack("{s:s, s:s, s:I}", "mediaType", img->root->media_type, "digest",
                       img->raw.digest.str, "size", (json_int_t)img->raw.data.len);
    json_object_set_new(e->obj, "platform", platform_json(&e->platform));
    return 0;
}

static const char *src_name(const builder *b, size_t src, char **tmp)
{
    free(*tmp);
    *tmp = src == SIZE_MAX ? oci_ref_string(b->o->dst) : oci_ref_string(&b->o->srcs[src]);
    return *tmp;
}

/* Duplicates, --replace, --remove, then the attestations of what is gone. */
MAR_MUST_USE static int settle(builder *b, mar_err **err)
{
    _cleanup_free_ char *n1 = NULL, *n2 = NULL;
    for (size_t i = 0; i < b->n; i++) {
        ent *e = &b->v[i];
        for (size_t k = 0; k < i && e->has_platform; k++) {
            ent *o = &b->v[k];
            if (o->dropped || !o->has_platform || !oci_platform_same(&o->platform, &e->platform)) {
                continue;
            }
            if (mar_digest_eq(&o->digest, &e->digest)) {
                e->dropped = true; /* the same manifest twice */
                break;
            }
            if (!b->o->replace) {
                char ps[OCI_PLATFORM_STR_MAX];
                oci_platform_format(&e->platform, ps, sizeof(ps));
                return mar_err_set(err, MAR_EUSAGE, 0,
                                   "%s twice: %s in '%s' and %s in '%s' (--replace keeps the "
                                   "later one)",
                                   ps, o->digest.str, src_name(b, o->src, &n1), e->digest.str,
                                   src_name(b, e->src, &n2));
            }
            o->dropped = true;
        }
    }
    for (size_t r = 0; r < b->o->n_remove; r++) {
        oci_matcher m;
        oci_matcher_only_strict(&m, &b->o->remove[r]);
        bool any = false;
        for (size_t i = 0; i < b->n; i++) {
            ent *e = &b->v[i];
            if (!e->dropped && e->has_platform && oci_matcher_match(&m, &e->platform)) {
                e->dropped = any = true;
            }
        }
        if (!any) {
            char ps[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&b->o->remove[r], ps, sizeof(ps));
            return mar_err_set(err, MAR_ENOTFOUND, 0, "--remove %s: no entry has that platform",
                               ps);
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        ent *e = &b->v[i];
        if (!e->attestation || e->dropped) {
            continue;
        }
        bool subject = false;
        for (size_t k = 0; k < b->n && !subject; k++) {
            subject = !b->v[k].dropped && !b->v[k].attestation &&
                      mar_digest_eq(&b->v[k].digest, &e->subject);
        }
        e->dropped = !subject;
        /* Listed once, however many sources carry it. */
        for (size_t k = 0; k < i && !e->dropped; k++) {
            e->dropped = !b->v[k].dropped && mar_digest_eq(&b->v[k].digest, &e->digest);
        }
    }
    return 0;
}

MAR_MUST_USE static int make_json(builder *b, const reg_image *base, reg_index_result *ret,
                                  mar_err **err)
{
    _cleanup_json_ json_t *doc = NULL;
    if (base) {
        if (mar_json_load(base->raw.data.data, base->raw.data.len, "index", &doc, err) < 0) {
            return -mar_err_code(*err);
        }
    } else {
        doc = json_pack("{s:i, s:s}", "schemaVersion", 2, "mediaType", OCI_MT_INDEX);
    }
    json_t *ms = json_array();
    for (size_t i = 0; i < b->n; i++) {
        if (!b->v[i].dropped) {
            json_array_append(ms, b->v[i].obj);
            ret->entries += !b->v[i].attestation;
            ret->attestations += b->v[i].attestation;
        }
    }
    json_object_set_new(doc, "manifests", ms);
    const mar_strv *an = b->o->annotations;
    for (size_t i = 0; an && i < an->n; i++) {
        const char *eq = strchr(an->v[i], '=');
        if (!eq || eq == an->v[i]) {
            return mar_err_set(err, MAR_EUSAGE, 0, "--annotation '%s' is not KEY=VALUE", an->v[i]);
        }
        json_t *a = json_object_get(doc, "annotations");
        if (!json_is_object(a)) {
            a = json_object();
            json_object_set_new(doc, "annotations", a);
        }
        _cleanup_free_ char *key = mar_xstrndup(an->v[i], (size_t)(eq - an->v[i]));
        json_object_set_new(a, key, json_string(eq + 1));
    }
    if (!ret->entries) {
        return mar_err_set(err, MAR_EUSAGE, 0, "the index would have no entry, refusing");
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot serialize the index");
    }
    mar_buf_release(&ret->json);
    ret->json = (mar_buf)MAR_BUF_INIT(MAR_CAP_MANIFEST);
    int rc = mar_buf_append(&ret->json, text, strlen(text));
    free(text);
    if (rc < 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "the index would exceed %u bytes, refusing",
                           (unsigned)MAR_CAP_MANIFEST);
    }
    mar_digest_of(MAR_DIGEST_SHA256, ret->json.data, ret->json.len, &ret->digest);
    return 0;
}

/* Adds a fetched child manifest of a foreign source: its blobs, streamed or mounted from src. */
MAR_MUST_USE static int add_child(reg_push *p, const oci_ref *src, const oci_descriptor *d,
                                  const reg_blob *raw, const oci_manifest *m, mar_err **err)
{
    reg_blob_src bs = {.kind = REG_SRC_REGISTRY, .from = src};
    if (m->kind == OCI_KIND_MANIFEST) {
        reg_push_add_blob(p, &m->config, &bs);
        for (size_t i = 0; i < m->n_layers; i++) {
            reg_push_add_blob(p, &m->layers[i], &bs);
        }
    }
    const oci_platform *pf =
            d && d->has_platform && !oci_descriptor_is_attestation(d) ? &d->platform : NULL;
    return reg_push_add_manifest(p, m->media_type, raw->data.data, raw->data.len, pf, err);
}

/* The children of sources from another repository, added to the push: the manifests
 * reg_image_fetch already holds as they are, the rest (attestations) fetched in one round for
 * every source together; a source with a nested index entry is walked whole. */
MAR_MUST_USE static int add_foreign(reg_client *c, builder *b, reg_image **imgs, reg_push *p,
                                    reg_index_result *ret, mar_err **err)
{
    const oci_ref *dst = b->o->dst;
    size_t cap = b->n + 1, n_fs = 0;
    reg__fetched *fs = mar_xcalloc(cap, sizeof(*fs));
    size_t *fs_src = mar_xcalloc(cap, sizeof(*fs_src));
    int rc = 0;
    for (size_t s = 0; s < b->o->n_srcs && rc == 0; s++) {
        const oci_ref *src = &b->o->srcs[s];
        reg_image *img = imgs[s];
        if (strcmp(src->api_host, dst->api_host) == 0 && strcmp(src->path, dst->path) == 0) {
            continue;
        }
        size_t n = img->root->kind == OCI_KIND_INDEX ? img->root->n_manifests : 1;
        _cleanup_free_ bool *keep = mar_xcalloc(n + 1, sizeof(bool));
        bool any = false, nested = false;
        for (size_t i = 0; i < b->n; i++) {
            if (b->v[i].src == s && !b->v[i].dropped) {
                size_t at = b->v[i].pos == SIZE_MAX ? 0 : b->v[i].pos;
                keep[at] = any = true;
                nested = nested ||
                         (img->root->kind == OCI_KIND_INDEX &&
                          oci_media_kind(img->root->manifests[at].media_type) == OCI_KIND_INDEX);
            }
        }
        if (!any) {
            continue;
        }
        ret->mounted_sources++;
        if (img->root->kind != OCI_KIND_INDEX) {
            rc = add_child(p, src, NULL, &img->raw, img->root, err);
            continue;
        }
        if (nested) {
            rc = reg__push_add_children(c, p, src, img->root, keep, err);
            continue;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (!keep[i]) {
                continue;
            }
            const oci_descriptor *d = &img->root->manifests[i];
            const reg_image_entry *ie = NULL;
            for (size_t k = 0; k < img->n_entries && !ie; k++) {
                if (img->entries[k].depth == 0 && img->entries[k].index == i &&
                    img->entries[k].manifest && img->entries[k].manifest_raw.data.len) {
                    ie = &img->entries[k];
                }
            }
            if (ie) {
                rc = add_child(p, src, d, &ie->manifest_raw, ie->manifest, err);
                continue;
            }
            fs[n_fs].desc = d;
            fs_src[n_fs] = s;
            reg_manifest_fetch_desc(c, src, d, reg__on_fetch, &fs[n_fs]);
            n_fs++;
        }
    }
    if (reg_client_run(c, rc == 0 ? err : NULL) < 0 && rc == 0) {
        rc = -mar_err_code(*err);
    }
    for (size_t i = 0; i < n_fs; i++) {
        if (rc == 0 && fs[i].rc < 0) {
            rc = fs[i].rc;
            *err = TAKE_PTR(fs[i].err);
        }
        _cleanup_manifest_ oci_manifest *m = NULL;
        if (rc == 0) {
            rc = oci_manifest_parse(fs[i].blob.data.data, fs[i].blob.data.len,
                                    fs[i].desc->media_type, &m, err);
        }
        if (rc == 0) {
            rc = add_child(p, &b->o->srcs[fs_src[i]], fs[i].desc, &fs[i].blob, m, err);
        }
        reg__fetched_release(&fs[i]);
    }
    free(fs);
    free(fs_src);
    return rc;
}

MAR_MUST_USE static int fetch_all(reg_client *c, const reg_index_opts *o, reg_image **imgs,
                                  reg_image **base, mar_err **err)
{
    for (size_t s = 0; s < o->n_srcs; s++) {
        /* The attestations too, in the same rounds: a source from another repository needs
         * them put into the destination's. */
        reg_image_fetch(c, &o->srcs[s],
                        REG_IMAGE_CHILDREN | REG_IMAGE_CONFIGS | REG_IMAGE_ATTESTATIONS, on_image,
                        &imgs[s]);
    }
    if (o->append) {
        reg_image_fetch(c, o->dst, 0, on_image, base);
    }
    if (reg_client_run(c, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t s = 0; s <= o->n_srcs; s++) {
        reg_image *img = s < o->n_srcs ? imgs[s] : *base;
        if (!img) {
            continue;
        }
        _cleanup_free_ char *name = oci_ref_string(&img->ref);
        if (img->rc < 0) {
            *err = TAKE_PTR(img->err);
            return mar_err_wrap(err, "%s'%s'", s < o->n_srcs ? "" : "--append: ", name);
        }
        if (s == o->n_srcs && img->root->kind != OCI_KIND_INDEX) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "--append: '%s' is a single manifest, not an index", name);
        }
    }
    return 0;
}

int reg_index_create(reg_client *c, const reg_index_opts *o, reg_index_result *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    reg_image **imgs = mar_xcalloc(o->n_srcs + 1, sizeof(*imgs));
    reg_image *base = NULL;
    builder b = {.o = o};
    int rc = fetch_all(c, o, imgs, &base, err);
    if (rc == 0 && base) {
        rc = add_index_entries(&b, base, SIZE_MAX, "", err);
    }
    for (size_t s = 0; rc == 0 && s < o->n_srcs; s++) {
        _cleanup_free_ char *name = oci_ref_string(&o->srcs[s]);
        rc = imgs[s]->root->kind == OCI_KIND_INDEX ? add_index_entries(&b, imgs[s], s, name, err)
                                                   : add_single(&b, imgs[s], s, name, err);
    }
    if (rc == 0) {
        rc = settle(&b, err);
    }
    if (rc == 0) {
        rc = make_json(&b, base, ret, err);
    }
    if (rc == 0 && !o->dry_run) {
        reg_push_opts po = {
                .dst = o->dst,
                .jobs = o->jobs,
                .mount_sources = true,
                .put_documents = true,
                .progress = o->progress,
                .progress_ud = o->progress_ud,
        };
        _cleanup_push_ reg_push *p = reg_push_new(c, &po);
        rc = add_foreign(c, &b, imgs, p, ret, err);
        if (rc == 0) {
            rc = reg_push_set_top(p, base ? base->root->media_type : OCI_MT_INDEX, ret->json.data,
                                  ret->json.len, err);
        }
        reg_push_result pr;
        if (rc == 0) {
            rc = reg_push_run(p, &pr, err);
        }
        if (rc == 0) {
            ret->pushed = true;
            ret->digest = pr.digest;
            ret->stats = pr.stats;
            reg_push_result_release(&pr);
        }
    }
    for (size_t i = 0; i < b.n; i++) {
        json_decref(b.v[i].obj);
    }
    free(b.v);
    for (size_t s = 0; s < o->n_srcs; s++) {
        reg_image_free(imgs[s]);
    }
    free(imgs);
    reg_image_free(base);
    return rc;
}
