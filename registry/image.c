/* Image resolution: a reference to its top-level document, then every runnable child manifest and
 * its config, and the entries of nested indexes to OCI_INDEX_DEPTH_MAX levels
 * (docs/internals/platforms.md §7), all fetched concurrently on the client's loop. */
#include "registry-internal.h"

#include <string.h>

typedef struct image_job {
    reg_client *c;
    reg_image *img;
    unsigned flags;
    size_t pending;
    reg_image_cb cb;
    void *userdata;
} image_job;

typedef struct entry_job {
    image_job *job;
    size_t idx;
} entry_job;

reg_image *reg_image_free(reg_image *img)
{
    if (!img) {
        return NULL;
    }
    for (size_t i = 0; i < img->n_entries; i++) {
        reg_image_entry *e = &img->entries[i];
        reg_blob_release(&e->manifest_raw);
        oci_manifest_free(e->manifest);
        oci_config_free(e->config);
        mar_err_free(e->err);
    }
    free(img->entries);
    oci_manifest_free(img->root);
    reg_blob_release(&img->raw);
    oci_ref_release(&img->ref);
    mar_err_free(img->err);
    free(img);
    return NULL;
}

static void job_release_one(image_job *job)
{
    if (--job->pending > 0) {
        return;
    }
    job->cb(job->c, job->img, job->userdata);
    free(job);
}

static void on_config(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    entry_job *ej = ud;
    reg_image_entry *e = &ej->job->img->entries[ej->idx];
    (void)c;
    if (rc < 0) {
        e->err = err;
    } else if (oci_config_parse(blob->data.data, blob->data.len, &e->config, &e->err) < 0) {
        mar_err_wrap(&e->err, "config %s", blob->digest.str);
    }
    image_job *job = ej->job;
    free(ej);
    job_release_one(job);
}

static void fetch_config(image_job *job, size_t idx)
{
    reg_image_entry *e = &job->img->entries[idx];
    if (!(job->flags & REG_IMAGE_CONFIGS) || !e->manifest || !oci_manifest_is_image(e->manifest)) {
        return;
    }
    entry_job *ej = mar_xcalloc(1, sizeof(*ej));
    ej->job = job;
    ej->idx = idx;
    job->pending++;
    reg_blob_fetch(job->c, &job->img->ref, &e->manifest->config, MAR_CAP_CONFIG, on_config, ej);
}

static void add_entries(image_job *job, const oci_manifest *idx, size_t parent, size_t depth);

static void on_child(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    entry_job *ej = ud;
    image_job *job = ej->job;
    size_t idx = ej->idx;
    reg_image_entry *e = &job->img->entries[idx];
    (void)c;
    free(ej);
    if (rc < 0) {
        e->err = err;
        job_release_one(job);
        return;
    }
    e->manifest_raw = *blob;
    blob->data = (mar_buf)MAR_BUF_INIT(0);
    blob->content_type = NULL;
    /* The index entry's mediaType stands in for a missing Content-Type. */
    const char *ct =
            e->manifest_raw.content_type ? e->manifest_raw.content_type : e->desc->media_type;
    oci_kind want = e->role == OCI_ENTRY_INDEX ? OCI_KIND_INDEX : OCI_KIND_MANIFEST;
    if (oci_manifest_parse(e->manifest_raw.data.data, e->manifest_raw.data.len, ct, &e->manifest,
                           &e->err) < 0) {
        mar_err_wrap(&e->err, "manifest %s", e->desc->digest.str);
    } else if (e->manifest->kind != want) {
        /* The descriptor says what the entry is (containerd validateMediaType). */
        mar_err_set(&e->err, MAR_EINTEGRITY, 0, "%s is listed as %s but is %s, refusing",
                    e->desc->digest.str, want == OCI_KIND_INDEX ? "an index" : "a manifest",
                    want == OCI_KIND_INDEX ? "a manifest" : "an index");
        e->manifest = oci_manifest_free(e->manifest);
    } else if (want == OCI_KIND_INDEX) {
        add_entries(job, e->manifest, idx, e->depth + 1);
    } else if (!e->attestation) {
        fetch_config(job, idx);
    }
    job_release_one(job);
}

/* The digests from the top-level document down to the index listing the entries of `parent`. */
static size_t index_path(const reg_image *img, size_t parent, mar_digest *path)
{
    size_t n = 0;
    mar_digest rev[OCI_INDEX_DEPTH_MAX + 1];
    for (size_t p = parent; p != SIZE_MAX && n < OCI_INDEX_DEPTH_MAX; p = img->entries[p].parent) {
        rev[n++] = img->entries[p].desc->digest;
    }
    path[0] = img->raw.digest;
    for (size_t i = 0; i < n; i++) {
        path[i + 1] = rev[n - 1 - i];
    }
    return n + 1;
}

/* Appends the entries of an index (the top-level one, or a nested one read for entry `parent`)
 * and starts fetching those mar reads. May move img->entries. */
static void add_entries(image_job *job, const oci_manifest *idx, size_t parent, size_t depth)
{
    reg_image *img = job->img;
    size_t base = img->n_entries;
    img->entries =
            mar_xrealloc(img->entries, (base + idx->n_manifests + 1) * sizeof(*img->entries));
    memset(img->entries + base, 0, (idx->n_manifests + 1) * sizeof(*img->entries));
    img->n_entries += idx->n_manifests;
    mar_digest path[OCI_INDEX_DEPTH_MAX + 1];
    size_t n_path = index_path(img, parent, path);
    for (size_t i = 0; i < idx->n_manifests; i++) {
        size_t at = base + i;
        reg_image_entry *e = &img->entries[at];
        e->index = i;
        e->desc = &idx->manifests[i];
        e->parent = parent;
        e->depth = depth;
        e->role = oci_descriptor_role(e->desc);
        e->attestation = e->role == OCI_ENTRY_ATTESTATION;
        bool read_attestation =
                e->attestation && (job->flags & REG_IMAGE_ATTESTATIONS) && !e->desc->platform_err;
        if (e->role != OCI_ENTRY_MANIFEST && e->role != OCI_ENTRY_INDEX && !read_attestation) {
            continue;
        }
        if (e->desc->platform_err) {
            char ps[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&e->desc->platform, ps, sizeof(ps));
            mar_err_set(&e->err, MAR_EUNSUPPORTED, 0, "the %s entry %s: %s, not read", ps,
                        e->desc->digest.str, e->desc->platform_err);
            e->not_read = true;
            continue;
        }
        if (e->role == OCI_ENTRY_INDEX &&
            oci_index_nest_check(e->desc, path, n_path, &e->err) < 0) {
            e->not_read = true;
            continue;
        }
        if (!(job->flags & REG_IMAGE_CHILDREN)) {
            continue;
        }
        entry_job *ej = mar_xcalloc(1, sizeof(*ej));
        ej->job = job;
        ej->idx = at;
        job->pending++;
        reg_manifest_fetch_desc(job->c, &img->ref, e->desc, on_child, ej);
    }
}

static void on_root(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    image_job *job = ud;
    reg_image *img = job->img;
    (void)c;
    if (rc < 0) {
        img->rc = rc;
        img->err = err;
        job_release_one(job);
        return;
    }
    img->raw = *blob;
    blob->data = (mar_buf)MAR_BUF_INIT(0);
    blob->content_type = NULL;
    img->rc = oci_manifest_parse(img->raw.data.data, img->raw.data.len, img->raw.content_type,
                                 &img->root, &img->err);
    if (img->rc < 0) {
        job_release_one(job);
        return;
    }
    if (img->root->kind == OCI_KIND_INDEX) {
        add_entries(job, img->root, SIZE_MAX, 0);
    } else {
        img->n_entries = 1;
        img->entries = mar_xcalloc(1, sizeof(*img->entries));
        /* A single manifest is its own only entry; parse it again so the entry owns a copy. */
        reg_image_entry *e = &img->entries[0];
        e->parent = SIZE_MAX;
        e->role = OCI_ENTRY_MANIFEST;
        if (oci_manifest_parse(img->raw.data.data, img->raw.data.len, img->raw.content_type,
                               &e->manifest, &e->err) == 0) {
            fetch_config(job, 0);
        }
    }
    job_release_one(job);
}

void reg_image_fetch(reg_client *c, const oci_ref *ref, unsigned flags, reg_image_cb cb,
                     void *userdata)
{
    image_job *job = mar_xcalloc(1, sizeof(*job));
    job->c = c;
    job->flags = flags;
    job->cb = cb;
    job->userdata = userdata;
    job->pending = 1;
    job->img = mar_xcalloc(1, sizeof(*job->img));
    reg_image *img = job->img;
    img->ref.domain = mar_xstrdup(ref->domain);
    img->ref.path = mar_xstrdup(ref->path);
    img->ref.tag = ref->tag ? mar_xstrdup(ref->tag) : NULL;
    img->ref.has_digest = ref->has_digest;
    img->ref.digest = ref->digest;
    img->ref.api_host = mar_xstrdup(ref->api_host);
    reg_manifest_fetch(c, &img->ref, on_root, job);
}
