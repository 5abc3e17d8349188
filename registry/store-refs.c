/* References of the store: the `manifests` of index.json, named by the
 * org.opencontainers.image.ref.name annotation (image-spec image-layout.md, annotations.md).
 *
 * A pulled image is one entry named by its full reference ("127.0.0.1:5000/mar/multi:latest")
 * pointing at what the registry served (index or manifest). When that is an index, each pulled
 * platform also gets an entry "<ref>@<os>/<arch>[/<variant>]" pointing at its manifest, with a
 * `platform` field: tools that take one manifest per name (umoci) can then open it, and the
 * index entry still says where the image came from. Updates are read-modify-write under
 * locks/index.lock and land with an atomic rename; entries mar did not write are kept. */
#include "registry-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/file.h>

#define REF_NAME  "org.opencontainers.image.ref.name"
#define INDEX_CAP (64u << 20)

void reg_store_refs_release(reg_store_refs *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].name);
        free(r->v[i].media_type);
        free(r->v[i].created);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

MAR_MUST_USE static int load_index(reg_store *s, json_t **ret, mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(INDEX_CAP);
    if (mar_read_file_at(s->dfd, "index.json", INDEX_CAP, &b, err) < 0) {
        return mar_err_wrap(err, "store '%s'", s->path);
    }
    json_t *doc;
    int rc = mar_json_load(b.data, b.len, "index.json", &doc, err);
    mar_buf_release(&b);
    if (rc < 0) {
        return mar_err_wrap(err, "store '%s'", s->path);
    }
    if (!json_is_array(json_object_get(doc, "manifests"))) {
        json_decref(doc);
        return mar_err_set(err, MAR_EINTEGRITY, 0, "'%s/index.json' has no manifests array",
                           s->path);
    }
    *ret = doc;
    return 0;
}

static const char *entry_name(json_t *e)
{
    return json_string_value(json_object_get(json_object_get(e, "annotations"), REF_NAME));
}

int reg_store_list(reg_store *s, reg_store_refs *ret, mar_err **err)
{
    json_t *doc;
    if (load_index(s, &doc, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *arr = json_object_get(doc, "manifests");
    reg_store_refs r = {.v = mar_xcalloc(json_array_size(arr) + 1, sizeof(reg_store_ref))};
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *name = entry_name(e);
        const char *dg = json_string_value(json_object_get(e, "digest"));
        reg_store_ref *x = &r.v[r.n];
        if (!name || !dg || mar_digest_parse(dg, &x->digest, NULL) < 0) {
            continue; /* not one of ours, or unnamed: skopeo and umoci keep such entries too */
        }
        x->name = mar_xstrdup(name);
        const char *mt = json_string_value(json_object_get(e, "mediaType"));
        x->media_type = mar_xstrdup(mt ? mt : "");
        x->size = json_integer_value(json_object_get(e, "size"));
        json_t *p = json_object_get(e, "platform");
        if (json_is_object(p)) {
            x->has_platform =
                    oci_platform_from_fields(json_string_value(json_object_get(p, "os")),
                                             json_string_value(json_object_get(p, "architecture")),
                                             json_string_value(json_object_get(p, "variant")), NULL,
                                             NULL, &x->platform, NULL) == 0;
        }
        const char *created = json_string_value(json_object_get(
                json_object_get(e, "annotations"), "org.opencontainers.image.created"));
        x->created = created ? mar_xstrdup(created) : NULL;
        r.n++;
    }
    json_decref(doc);
    *ret = r;
    return 0;
}

MAR_MUST_USE static int save_index(reg_store *s, json_t *doc, mar_err **err)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot serialize index.json");
    }
    int rc = reg__store_write_atomic(s, "index.json", text, strlen(text), err);
    free(text);
    return rc;
}

/* name itself, or a per-platform entry of it ("name@linux/arm64"). */
static bool name_matches(const char *have, const char *name, bool with_platforms)
{
    size_t l = strlen(name);
    return strncmp(have, name, l) == 0 &&
           (have[l] == '\0' || (with_platforms && have[l] == '@' && strchr(have + l, '/')));
}

int reg_store_tag(reg_store *s, const reg_store_ref *ref, mar_err **err)
{
    _cleanup_close_ int lock = reg__store_lock(s, "index", LOCK_EX, true, err);
    if (lock < 0) {
        return lock;
    }
    json_t *doc;
    if (load_index(s, &doc, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *arr = json_object_get(doc, "manifests");
    for (size_t i = json_array_size(arr); i > 0; i--) {
        const char *n = entry_name(json_array_get(arr, i - 1));
        if (n && strcmp(n, ref->name) == 0) {
            json_array_remove(arr, i - 1);
        }
    }
    json_t *e = json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", ref->media_type, "digest",
                          ref->digest.str, "size", (json_int_t)ref->size, "annotations", REF_NAME,
                          ref->name);
    if (ref->created) {
        json_object_set_new(json_object_get(e, "annotations"), "org.opencontainers.image.created",
                            json_string(ref->created));
    }
    if (ref->has_platform) {
        json_t *p =
                json_pack("{s:s, s:s}", "architecture", ref->platform.arch, "os", ref->platform.os);
        if (ref->platform.variant[0]) {
            json_object_set_new(p, "variant", json_string(ref->platform.variant));
        }
        json_object_set_new(e, "platform", p);
    }
    json_array_append_new(arr, e);
    int rc = save_index(s, doc, err);
    json_decref(doc);
    return rc;
}

int reg_store_untag(reg_store *s, const char *name, size_t *ret_removed, mar_err **err)
{
    _cleanup_close_ int lock = reg__store_lock(s, "index", LOCK_EX, true, err);
    if (lock < 0) {
        return lock;
    }
    json_t *doc;
    if (load_index(s, &doc, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *arr = json_object_get(doc, "manifests");
    size_t removed = 0;
    for (size_t i = json_array_size(arr); i > 0; i--) {
        const char *n = entry_name(json_array_get(arr, i - 1));
        if (n && name_matches(n, name, true)) {
            json_array_remove(arr, i - 1);
            removed++;
        }
    }
    int rc = removed ? save_index(s, doc, err) : 0;
    json_decref(doc);
    if (rc == 0) {
        *ret_removed = removed;
    }
    return rc;
}
