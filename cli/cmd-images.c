/* mar images, mar rmi, mar gc: what the store holds, and removing it (docs/mar-images.1.md). */
#include "cli-internal.h"

#include <string.h>

typedef struct image_platform {
    char platform[OCI_PLATFORM_STR_MAX];
    mar_digest manifest;
    int64_t size; /* config + layers */
    size_t layers;
    bool complete; /* every blob present */
    bool unpacked;
} image_platform;

typedef struct image_row {
    const reg_store_ref *ref;
    image_platform *p;
    size_t n;
    struct image_row *same_name; /* the next row of the same name (a hand-edited index.json) */
} image_row;

/* One platform of a pulled image, read back from the store. */
static bool describe(reg_store *s, const reg_store_ref *top, const oci_matcher *m,
                     image_platform *ret)
{
    reg_store_image im;
    mar_err *e = NULL;
    if (reg_store_image_of(s, top, m, &im, &e) < 0) {
        mar_err_free(e);
        return false;
    }
    oci_platform_format(&im.platform, ret->platform, sizeof(ret->platform));
    ret->manifest = im.digest;
    ret->size = oci_manifest_total_size(im.manifest);
    ret->layers = im.manifest->n_layers;
    ret->complete = im.blobs_present;
    ret->unpacked = im.unpacked;
    reg_store_image_release(&im);
    return true;
}

static void add_platform(reg_store *s, image_row *r, const oci_matcher *m)
{
    image_platform ip = {0};
    if (describe(s, r->ref, m, &ip)) {
        r->p = mar_xrealloc(r->p, (r->n + 1) * sizeof(*r->p));
        r->p[r->n++] = ip;
    }
}

static bool is_platform_entry(const reg_store_ref *r)
{
    return r->has_platform && strchr(r->name, '@');
}

/* A row per image, with its per-platform entries ("<name>@<os>/<arch>") in index order. Linear
 * in the entries of index.json: the rows are found by name in a hash map, and each image is read
 * from the listing already made. */
static void collect(reg_store *s, const reg_store_refs *refs, image_row **ret, size_t *ret_n)
{
    image_row *rows = mar_xcalloc(refs->n + 1, sizeof(*rows));
    size_t n = 0;
    mar_map by_name = MAR_MAP_INIT;
    for (size_t i = 0; i < refs->n; i++) {
        if (is_platform_entry(&refs->v[i])) {
            continue; /* shown under its image */
        }
        image_row *r = &rows[n++];
        r->ref = &refs->v[i];
        image_row *first = mar_map_get(&by_name, r->ref->name);
        if (!first) {
            mar_map_set(&by_name, r->ref->name, r);
        } else {
            while (first->same_name) {
                first = first->same_name;
            }
            first->same_name = r;
        }
    }
    for (size_t k = 0; k < refs->n; k++) {
        const reg_store_ref *pe = &refs->v[k];
        if (!is_platform_entry(pe)) {
            continue;
        }
        oci_matcher m;
        oci_matcher_only_strict(&m, &pe->platform);
        /* The image is the name before one of its '@'s (a digest reference has two). */
        for (const char *at = strchr(pe->name, '@'); at; at = strchr(at + 1, '@')) {
            _cleanup_free_ char *base = mar_xstrndup(pe->name, (size_t)(at - pe->name));
            for (image_row *r = mar_map_get(&by_name, base); r; r = r->same_name) {
                add_platform(s, r, &m);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].n == 0) {
            oci_matcher m;
            oci_matcher_all(&m);
            add_platform(s, &rows[i], &m);
        }
    }
    mar_map_release(&by_name);
    *ret = rows;
    *ret_n = n;
}

int cmd_images(const cmd_def *def, cmd_args *args)
{
    (void)def;
    mar_err *err = NULL;
    _cleanup_store_ reg_store *s = NULL;
    if (cmd_open_store(args, &s, &err) < 0) {
        return cmd_fail(err);
    }
    reg_store_refs refs;
    if (reg_store_list(s, &refs, &err) < 0) {
        return cmd_fail(err);
    }
    image_row *rows;
    size_t n;
    collect(s, &refs, &rows, &n);
    if (cmd_flag(args, "json")) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *ps = json_array();
            for (size_t k = 0; k < rows[i].n; k++) {
                const image_platform *p = &rows[i].p[k];
                json_array_append_new(ps, json_pack("{s:s, s:s, s:I, s:I, s:b, s:b}", "platform",
                                                    p->platform, "manifest", p->manifest.str,
                                                    "size", (json_int_t)p->size, "layers",
                                                    (json_int_t)p->layers, "complete", p->complete,
                                                    "unpacked", p->unpacked));
            }
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o}", "name", rows[i].ref->name,
                                                 "digest", rows[i].ref->digest.str, "mediaType",
                                                 rows[i].ref->media_type, "platforms", ps));
        }
        json_t *doc = json_pack("{s:s, s:o}", "store", reg_store_path(s), "images", arr);
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else {
        if (!cmd_flag(args, "quiet")) {
            printf("%-44s %-19s %-16s %9s  %s\n", "NAME", "DIGEST", "PLATFORM", "SIZE", "STATE");
        }
        for (size_t i = 0; i < n; i++) {
            char dg[24];
            mar_digest_short(&rows[i].ref->digest, dg, sizeof(dg));
            if (cmd_flag(args, "quiet")) {
                printf("%s\n", cmd_esc(rows[i].ref->name));
                continue;
            }
            if (rows[i].n == 0) {
                printf("%-44s %-19s %-16s %9s  %s\n", cmd_esc(rows[i].ref->name), dg, "-", "-",
                       "incomplete");
            }
            for (size_t k = 0; k < rows[i].n; k++) {
                const image_platform *p = &rows[i].p[k];
                char sz[16];
                mar_format_size(p->size, sz, sizeof(sz));
                printf("%-44s %-19s %-16s %9s  %s\n", k ? "" : cmd_esc(rows[i].ref->name),
                       k ? "" : dg, cmd_esc(p->platform), sz,
                       !p->complete  ? "incomplete"
                       : p->unpacked ? "unpacked"
                                     : "stored");
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i].p);
    }
    free(rows);
    reg_store_refs_release(&refs);
    return 0;
}

static void print_gc(const reg_gc_stats *st, bool dry_run)
{
    char sz[16];
    mar_format_size((int64_t)st->bytes, sz, sizeof(sz));
    fprintf(stderr,
            "mar: %s %zu blobs, %zu unpacked layers, %zu unfinished downloads, %zu unfinished "
            "unpacks (%s); kept %zu blobs, %zu layers\n",
            dry_run ? "would remove" : "removed", st->blobs, st->layers, st->ingests, st->parts, sz,
            st->kept_blobs, st->kept_layers);
    if (st->cache_records) {
        fprintf(stderr, "mar: %s %zu build cache records\n", dry_run ? "would remove" : "removed",
                st->cache_records);
    }
}

int cmd_rmi(const cmd_def *def, cmd_args *args)
{
    (void)def;
    mar_err *err = NULL;
    _cleanup_store_ reg_store *s = NULL;
    if (cmd_open_store(args, &s, &err) < 0) {
        return cmd_fail(err);
    }
    int status = 0;
    for (size_t i = 0; i < args->pos.n; i++) {
        oci_ref ref;
        if (oci_ref_parse(args->pos.v[i], &ref, &err) < 0) {
            return cmd_fail(err);
        }
        _cleanup_free_ char *name = oci_ref_string(&ref);
        oci_ref_release(&ref);
        size_t removed = 0;
        if (reg_store_untag(s, name, &removed, &err) < 0) {
            return cmd_fail(err);
        }
        if (!removed) {
            fprintf(stderr, "mar: '%s' is not in the store '%s'\n", name, reg_store_path(s));
            status = MAR_ENOTFOUND;
            continue;
        }
        printf("untagged %s\n", name);
    }
    reg_gc_stats st;
    if (reg_store_gc(s, false, false, &st, &err) < 0) {
        return cmd_fail(err);
    }
    if (!cmd_flag(args, "quiet")) {
        print_gc(&st, false);
    }
    return status;
}

int cmd_gc(const cmd_def *def, cmd_args *args)
{
    (void)def;
    mar_err *err = NULL;
    _cleanup_store_ reg_store *s = NULL;
    if (cmd_open_store(args, &s, &err) < 0) {
        return cmd_fail(err);
    }
    bool dry = cmd_flag(args, "dry-run");
    reg_gc_stats st;
    if (reg_store_gc(s, dry, cmd_flag(args, "prune-cache"), &st, &err) < 0) {
        return cmd_fail(err);
    }
    if (!cmd_flag(args, "quiet")) {
        print_gc(&st, dry);
    }
    if (cmd_flag(args, "verify")) {
        mar_strv bad = MAR_STRV_INIT;
        int n = reg_store_verify(s, &bad, &err);
        for (size_t i = 0; i < bad.n; i++) {
            printf("bad blob %s\n", bad.v[i]);
        }
        mar_strv_release(&bad);
        if (n > 0) {
            fprintf(stderr, "mar: %d blob%s in '%s' do not match their digest\n", n,
                    n == 1 ? "" : "s", reg_store_path(s));
            return MAR_EINTEGRITY;
        }
    }
    return 0;
}
