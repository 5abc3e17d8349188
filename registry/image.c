/* Image resolution: a reference to its top-level document, then every runnable child manifest and
 * its config, all fetched concurrently on the client's loop. */
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

static void on_child(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    entry_job *ej = ud;
    image_job *job = ej->job;
    reg_image_entry *e = &job->img->entries[ej->idx];
    (void)c;
    if (rc < 0) {
        e->err = err;
    } else {
        e->manifest_raw = *blob;
        blob->data = (mar_buf)MAR_BUF_INIT(0);
        blob->content_type = NULL;
        /* The index entry's mediaType stands in for a missing Content-Type. */
        const char *ct =
                e->manifest_raw.content_type ? e->manifest_raw.content_type : e->desc->media_type;
        if (oci_manifest_parse(e->manifest_raw.data.data, e->manifest_raw.data.len, ct,
                               &e->manifest, &e->err) < 0) {
            mar_err_wrap(&e->err, "manifest %s", e->desc->digest.str);
        } else if (e->manifest->kind != OCI_KIND_MANIFEST) {
            mar_err_set(&e->err, MAR_EUNSUPPORTED, 0,
                        "manifest %s is a nested index, which mar does not descend into",
                        e->desc->digest.str);
            e->manifest = oci_manifest_free(e->manifest);
        } else {
            fetch_config(job, ej->idx);
        }
    }
    free(ej);
    job_release_one(job);
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
        img->n_entries = img->root->n_manifests;
        img->entries = mar_xcalloc(img->n_entries ? img->n_entries : 1, sizeof(*img->entries));
        for (size_t i = 0; i < img->n_entries; i++) {
            reg_image_entry *e = &img->entries[i];
            e->index = i;
            e->desc = &img->root->manifests[i];
            e->attestation = oci_descriptor_is_attestation(e->desc);
            if (e->attestation || !(job->flags & REG_IMAGE_CHILDREN)) {
                continue;
            }
            entry_job *ej = mar_xcalloc(1, sizeof(*ej));
            ej->job = job;
            ej->idx = i;
            job->pending++;
            reg_manifest_fetch_desc(job->c, &img->ref, e->desc, on_child, ej);
        }
    } else {
        img->n_entries = 1;
        img->entries = mar_xcalloc(1, sizeof(*img->entries));
        /* A single manifest is its own only entry; parse it again so the entry owns a copy. */
        reg_image_entry *e = &img->entries[0];
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
