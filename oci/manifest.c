/* Media types, descriptors, manifests and indexes (image-spec descriptor.md, manifest.md,
 * image-index.md; Docker image-manifest-v2-2). Type-confusion checks follow
 * docs/internals/registry-protocol.md §10 and CVE-2021-41190. */
#include "oci.h"

#include <string.h>

void oci_media_type_base(const char *media_type, char *buf, size_t n)
{
    const char *s = media_type ? media_type : "";
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t l = strcspn(s, ";");
    while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t')) {
        l--;
    }
    if (l >= n) {
        l = n - 1;
    }
    for (size_t i = 0; i < l; i++) {
        char c = s[i];
        buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    buf[l] = '\0';
}

oci_kind oci_media_kind(const char *media_type)
{
    char mt[160];
    oci_media_type_base(media_type, mt, sizeof(mt));
    if (strcmp(mt, OCI_MT_INDEX) == 0 || strcmp(mt, OCI_MT_DOCKER_LIST) == 0) {
        return OCI_KIND_INDEX;
    }
    if (strcmp(mt, OCI_MT_MANIFEST) == 0 || strcmp(mt, OCI_MT_DOCKER_MANIFEST) == 0) {
        return OCI_KIND_MANIFEST;
    }
    if (strcmp(mt, OCI_MT_DOCKER_SCHEMA1) == 0 || strcmp(mt, OCI_MT_DOCKER_SCHEMA1_SIGNED) == 0) {
        return OCI_KIND_SCHEMA1;
    }
    return OCI_KIND_UNKNOWN;
}

const char *oci_descriptor_annotation(const oci_descriptor *d, const char *key)
{
    if (!d->annotations) {
        return NULL;
    }
    return json_string_value(json_object_get(d->annotations, key));
}

/* BuildKit's attestation-storage.md: an entry whose vnd.docker.reference.type is
 * attestation-manifest is an attestation of the manifest its vnd.docker.reference.digest names;
 * "if any other value is specified, the entire manifest should be ignored". Without the
 * annotation, an unknown/unknown platform marks an attestation too (containerd's Platforms skips
 * it the same way). */
oci_entry_role oci_descriptor_role(const oci_descriptor *d)
{
    const char *t = oci_descriptor_annotation(d, "vnd.docker.reference.type");
    if (t) {
        return strcmp(t, "attestation-manifest") == 0 ? OCI_ENTRY_ATTESTATION : OCI_ENTRY_IGNORED;
    }
    if (d->has_platform && oci_platform_is_unknown(&d->platform)) {
        return OCI_ENTRY_ATTESTATION;
    }
    switch (oci_media_kind(d->media_type)) {
    case OCI_KIND_MANIFEST:
        return OCI_ENTRY_MANIFEST;
    case OCI_KIND_INDEX:
        return OCI_ENTRY_INDEX;
    default:
        return OCI_ENTRY_UNKNOWN;
    }
}

bool oci_descriptor_is_attestation(const oci_descriptor *d)
{
    return oci_descriptor_role(d) == OCI_ENTRY_ATTESTATION;
}

bool oci_descriptor_attests(const oci_descriptor *d, mar_digest *ret)
{
    const char *ref = oci_descriptor_annotation(d, "vnd.docker.reference.digest");
    mar_digest dg;
    if (oci_descriptor_role(d) != OCI_ENTRY_ATTESTATION || !ref || !mar_digest_valid(ref) ||
        mar_digest_parse(ref, &dg, NULL) < 0) {
        return false;
    }
    *ret = dg;
    return true;
}

void oci_descriptor_release(oci_descriptor *d)
{
    free(d->media_type);
    free(d->platform_err);
    free(d->artifact_type);
    json_decref(d->annotations);
    mar_strv_release(&d->urls);
    memset(d, 0, sizeof(*d));
}

struct raw_platform {
    char *os;
    char *arch;
    char *variant;
    char *os_version;
    json_t *features;
};

static const mar_json_field platform_fields[] = {
        {"architecture", MAR_JSON_STRING, offsetof(struct raw_platform, arch), true},
        {"os", MAR_JSON_STRING, offsetof(struct raw_platform, os), true},
        {"variant", MAR_JSON_STRING, offsetof(struct raw_platform, variant), false},
        {"os.version", MAR_JSON_STRING, offsetof(struct raw_platform, os_version), false},
        {"os.features", MAR_JSON_ARRAY, offsetof(struct raw_platform, features), false},
};

static void raw_platform_release(struct raw_platform *r)
{
    free(r->os);
    free(r->arch);
    free(r->variant);
    free(r->os_version);
}

struct raw_descriptor {
    char *media_type;
    char *digest;
    int64_t size;
    json_t *platform;
    json_t *annotations;
    char *artifact_type;
    mar_strv urls;
};

static const mar_json_field descriptor_fields[] = {
        {"mediaType", MAR_JSON_STRING, offsetof(struct raw_descriptor, media_type), true},
        {"digest", MAR_JSON_STRING, offsetof(struct raw_descriptor, digest), true},
        {"size", MAR_JSON_INT, offsetof(struct raw_descriptor, size), true},
        {"platform", MAR_JSON_OBJECT, offsetof(struct raw_descriptor, platform), false},
        {"annotations", MAR_JSON_OBJECT, offsetof(struct raw_descriptor, annotations), false},
        {"artifactType", MAR_JSON_STRING, offsetof(struct raw_descriptor, artifact_type), false},
        {"urls", MAR_JSON_STRV, offsetof(struct raw_descriptor, urls), false},
};

/* image-spec descriptor.md: mediaType, digest and size are required; size is a non-negative int64.
 */
MAR_MUST_USE static int parse_descriptor(json_t *obj, const char *what, oci_descriptor *ret,
                                         mar_err **err)
{
    struct raw_descriptor r = {0};
    oci_descriptor d = {0};
    int rc = mar_json_dispatch(obj, descriptor_fields, MAR_ARRAY_SIZE(descriptor_fields), &r, what,
                               err);
    if (rc < 0) {
        goto out;
    }
    if (r.size < 0) {
        rc = mar_err_set(err, MAR_EINTEGRITY, 0, "%s has a negative size", what);
        goto out;
    }
    if (mar_digest_parse(r.digest, &d.digest, err) < 0) {
        rc = mar_err_wrap(err, "%s", what);
        goto out;
    }
    if (r.annotations) {
        const char *k;
        json_t *v;
        json_object_foreach(r.annotations, k, v)
        {
            if (!json_is_string(v)) {
                rc = mar_err_set(err, MAR_EINTEGRITY, 0, "%s annotation '%.60s' is not a string",
                                 what, k);
                goto out;
            }
        }
        d.annotations = json_incref(r.annotations);
    }
    if (r.platform) {
        struct raw_platform p = {0};
        rc = mar_json_dispatch(r.platform, platform_fields, MAR_ARRAY_SIZE(platform_fields), &p,
                               "platform", err);
        if (rc == 0) {
            mar_err *pe = NULL;
            rc = oci_platform_from_fields(p.os, p.arch, p.variant, p.os_version, p.features,
                                          &d.platform, &pe);
            if (rc == -MAR_EUNSUPPORTED) {
                /* Valid but beyond mar's limits: this entry is reported, the others still count
                 * (docs/internals/platforms.md §1). */
                d.platform_err = mar_xstrdup(pe->msg);
                mar_err_free(pe);
                rc = 0;
            } else if (rc < 0 && err) {
                *err = pe;
            } else {
                mar_err_free(pe);
            }
        }
        raw_platform_release(&p);
        if (rc < 0) {
            mar_err_wrap(err, "%s", what);
            goto out;
        }
        d.has_platform = true;
    }
    d.media_type = TAKE_PTR(r.media_type);
    d.artifact_type = TAKE_PTR(r.artifact_type);
    d.size = r.size;
    d.urls = r.urls;
    r.urls = (mar_strv)MAR_STRV_INIT;
    *ret = d;
    d = (oci_descriptor){0};
out:
    oci_descriptor_release(&d);
    free(r.media_type);
    free(r.digest);
    free(r.artifact_type);
    mar_strv_release(&r.urls);
    return rc;
}

MAR_MUST_USE static int parse_descriptor_array(json_t *arr, const char *what, oci_descriptor **ret,
                                               size_t *ret_n, mar_err **err)
{
    size_t n = json_array_size(arr);
    oci_descriptor *v = mar_xcalloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        char label[64];
        snprintf(label, sizeof(label), "%s[%zu]", what, i);
        if (parse_descriptor(json_array_get(arr, i), label, &v[i], err) < 0) {
            for (size_t k = 0; k < i; k++) {
                oci_descriptor_release(&v[k]);
            }
            free(v);
            return -MAR_EINTEGRITY;
        }
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

oci_manifest *oci_manifest_free(oci_manifest *m)
{
    if (!m) {
        return NULL;
    }
    for (size_t i = 0; i < m->n_manifests; i++) {
        oci_descriptor_release(&m->manifests[i]);
    }
    free(m->manifests);
    for (size_t i = 0; i < m->n_layers; i++) {
        oci_descriptor_release(&m->layers[i]);
    }
    free(m->layers);
    oci_descriptor_release(&m->config);
    oci_descriptor_release(&m->subject);
    free(m->media_type);
    free(m->artifact_type);
    json_decref(m->annotations);
    free(m);
    return NULL;
}

struct raw_manifest {
    int64_t schema_version;
    char *media_type;
    char *artifact_type;
    json_t *manifests;
    json_t *config;
    json_t *layers;
    json_t *subject;
    json_t *annotations;
    json_t *fs_layers;
};

static const mar_json_field manifest_fields[] = {
        {"schemaVersion", MAR_JSON_INT, offsetof(struct raw_manifest, schema_version), false},
        {"mediaType", MAR_JSON_STRING, offsetof(struct raw_manifest, media_type), false},
        {"artifactType", MAR_JSON_STRING, offsetof(struct raw_manifest, artifact_type), false},
        {"manifests", MAR_JSON_ARRAY, offsetof(struct raw_manifest, manifests), false},
        {"config", MAR_JSON_OBJECT, offsetof(struct raw_manifest, config), false},
        {"layers", MAR_JSON_ARRAY, offsetof(struct raw_manifest, layers), false},
        {"subject", MAR_JSON_OBJECT, offsetof(struct raw_manifest, subject), false},
        {"annotations", MAR_JSON_OBJECT, offsetof(struct raw_manifest, annotations), false},
        {"fsLayers", MAR_JSON_ARRAY, offsetof(struct raw_manifest, fs_layers), false},
};

MAR_MUST_USE static int schema1_error(mar_err **err)
{
    return mar_err_set(err, MAR_EUNSUPPORTED, 0, "schema 1 manifests are not supported, refusing");
}

/* Decides the effective media type from Content-Type, the body's mediaType and the shape. */
MAR_MUST_USE static int effective_type(const struct raw_manifest *r, const char *content_type,
                                       char *buf, size_t n, mar_err **err)
{
    char ct[160] = "", body[160] = "";
    oci_media_type_base(content_type, ct, sizeof(ct));
    oci_media_type_base(r->media_type, body, sizeof(body));

    if (r->fs_layers || r->schema_version == 1 || oci_media_kind(ct) == OCI_KIND_SCHEMA1 ||
        oci_media_kind(body) == OCI_KIND_SCHEMA1) {
        return schema1_error(err);
    }
    /* Registries serving OCI content without a specific type are tolerated: the body decides. */
    bool ct_generic = !ct[0] || strcmp(ct, "application/json") == 0 ||
                      strcmp(ct, "application/octet-stream") == 0 || strcmp(ct, "text/plain") == 0;
    if (!ct_generic && oci_media_kind(ct) == OCI_KIND_UNKNOWN) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "unsupported manifest media type '%s'", ct);
    }
    if (body[0]) {
        if (oci_media_kind(body) == OCI_KIND_UNKNOWN) {
            return mar_err_set(err, MAR_EUNSUPPORTED, 0, "unsupported manifest media type '%s'",
                               body);
        }
        if (!ct_generic && strcmp(ct, body) != 0) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "media type mismatch: served as '%s' but the document says '%s', "
                               "refusing",
                               ct, body);
        }
        mar_strlcpy(buf, body, n);
        return 0;
    }
    if (!ct_generic) {
        mar_strlcpy(buf, ct, n);
        return 0;
    }
    /* mediaType is optional in OCI documents: the shape decides. */
    if (r->manifests && !r->config && !r->layers) {
        mar_strlcpy(buf, OCI_MT_INDEX, n);
        return 0;
    }
    if (r->config && !r->manifests) {
        mar_strlcpy(buf, OCI_MT_MANIFEST, n);
        return 0;
    }
    return mar_err_set(err, MAR_EINTEGRITY, 0,
                       "cannot tell whether the document is a manifest "
                       "or an index");
}

int oci_manifest_parse(const void *buf, size_t len, const char *content_type, oci_manifest **ret,
                       mar_err **err)
{
    _cleanup_json_ json_t *root = NULL;
    struct raw_manifest r = {0};
    _cleanup_manifest_ oci_manifest *m = mar_xcalloc(1, sizeof(*m));
    char mt[160];
    int rc;

    if (len > MAR_CAP_MANIFEST) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "manifest of %zu bytes exceeds the limit of %u",
                           len, MAR_CAP_MANIFEST);
    }
    if ((rc = mar_json_load(buf, len, "manifest", &root, err)) < 0) {
        return rc;
    }
    rc = mar_json_dispatch(root, manifest_fields, MAR_ARRAY_SIZE(manifest_fields), &r, "manifest",
                           err);
    if (rc < 0) {
        goto out;
    }
    if ((rc = effective_type(&r, content_type, mt, sizeof(mt), err)) < 0) {
        goto out;
    }
    if (!json_object_get(root, "schemaVersion")) {
        rc = mar_err_set(err, MAR_EINTEGRITY, 0, "manifest lacks mandatory field 'schemaVersion'");
        goto out;
    }
    if (r.schema_version != 2) {
        rc = mar_err_set(err, MAR_EUNSUPPORTED, 0, "unsupported schemaVersion %lld",
                         (long long)r.schema_version);
        goto out;
    }
    m->kind = oci_media_kind(mt);
    m->media_type = mar_xstrdup(mt);
    m->schema_version = r.schema_version;
    m->size = len;
    if (m->kind == OCI_KIND_INDEX) {
        /* image-spec image-index.md: an index has manifests and no config or layers. */
        if (r.config || r.layers) {
            rc = mar_err_set(err, MAR_EINTEGRITY, 0,
                             "media-type: expected index but found manifest (%s), refusing", mt);
            goto out;
        }
        if (!r.manifests) {
            rc = mar_err_set(err, MAR_EINTEGRITY, 0, "index lacks mandatory field 'manifests'");
            goto out;
        }
        rc = parse_descriptor_array(r.manifests, "manifests", &m->manifests, &m->n_manifests, err);
        if (rc < 0) {
            goto out;
        }
    } else {
        if (r.manifests) {
            rc = mar_err_set(err, MAR_EINTEGRITY, 0,
                             "media-type: expected manifest but found index (%s), refusing", mt);
            goto out;
        }
        if (!r.config || !r.layers) {
            rc = mar_err_set(err, MAR_EINTEGRITY, 0, "manifest lacks mandatory field '%s'",
                             r.config ? "layers" : "config");
            goto out;
        }
        if ((rc = parse_descriptor(r.config, "config", &m->config, err)) < 0) {
            goto out;
        }
        rc = parse_descriptor_array(r.layers, "layers", &m->layers, &m->n_layers, err);
        if (rc < 0) {
            goto out;
        }
    }
    if (r.subject) {
        if ((rc = parse_descriptor(r.subject, "subject", &m->subject, err)) < 0) {
            goto out;
        }
        m->has_subject = true;
    }
    m->artifact_type = TAKE_PTR(r.artifact_type);
    m->annotations = r.annotations ? json_incref(r.annotations) : NULL;
    *ret = TAKE_PTR(m);
    rc = 0;
out:
    free(r.media_type);
    free(r.artifact_type);
    return rc;
}

int64_t oci_manifest_total_size(const oci_manifest *m)
{
    if (m->kind != OCI_KIND_MANIFEST) {
        return (int64_t)m->size;
    }
    int64_t t = m->config.size;
    for (size_t i = 0; i < m->n_layers; i++) {
        t += m->layers[i].size;
    }
    return t;
}

bool oci_manifest_is_image(const oci_manifest *m)
{
    if (m->kind != OCI_KIND_MANIFEST || m->artifact_type) {
        return false;
    }
    char mt[160];
    oci_media_type_base(m->config.media_type, mt, sizeof(mt));
    return strcmp(mt, OCI_MT_CONFIG) == 0 || strcmp(mt, OCI_MT_DOCKER_CONFIG) == 0;
}
