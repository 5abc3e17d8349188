/* mar pull: an image, for one or more platforms, into the store (docs/mar-pull.1.md). */
#include "cli-internal.h"

#include <string.h>

int cmd_open_store(const cmd_args *args, reg_store **ret, mar_err **err)
{
    _cleanup_free_ char *path = NULL;
    if (reg_store_default_path(cmd_value(args, "store"), &path, err) < 0) {
        return -mar_err_code(*err);
    }
    return reg_store_open(path, ret, err);
}

reg_store *cmd_existing_store(const cmd_args *args)
{
    _cleanup_free_ char *path = NULL;
    mar_err *e = NULL;
    if (reg_store_default_path(cmd_value(args, "store"), &path, &e) < 0) {
        mar_err_free(e);
        return NULL;
    }
    _cleanup_free_ char *layout = mar_xasprintf("%s/oci-layout", path);
    reg_store *s = NULL;
    if (access(layout, R_OK) != 0 || reg_store_open(path, &s, &e) < 0) {
        mar_err_free(e);
        return NULL;
    }
    return s;
}

int cmd_parse_platforms(const cmd_args *args, const oci_host *host, oci_platform **ret,
                        size_t *ret_n, mar_err **err)
{
    return cmd_parse_platform_list(args, "platform", host, ret, ret_n, err);
}

int cmd_parse_selection(const cmd_def *def, const cmd_args *args, oci_platform **ret, size_t *ret_n,
                        bool *ret_all)
{
    mar_err *err = NULL;
    oci_host host;
    oci_host_detect(&host);
    *ret_all = cmd_flag(args, "all-platforms");
    if (cmd_parse_platforms(args, &host, ret, ret_n, &err) < 0) {
        return cmd_fail(err);
    }
    if (*ret_all && *ret_n) {
        free(*ret);
        *ret = NULL;
        *ret_n = 0;
        return cmd_usage_error(def, "--platform and --all-platforms exclude each other");
    }
    return 0;
}

int cmd_parse_platform_list(const cmd_args *args, const char *option, const oci_host *host,
                            oci_platform **ret, size_t *ret_n, mar_err **err)
{
    const mar_strv *l = cmd_list(args, option);
    oci_platform *v = NULL;
    size_t n = 0;
    for (size_t i = 0; l && i < l->n; i++) {
        _cleanup_free_ char *copy = mar_xstrdup(l->v[i]);
        for (char *s = copy, *next; s; s = next) {
            next = strchr(s, ',');
            if (next) {
                *next++ = '\0';
            }
            if (!*s) {
                continue;
            }
            v = mar_xrealloc(v, (n + 1) * sizeof(*v));
            if (oci_platform_parse(s, &host->platform, &v[n], err) < 0) {
                free(v);
                return -MAR_EUSAGE;
            }
            n++;
        }
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

int cmd_jobs(const cmd_args *args, int dflt, int *ret, mar_err **err)
{
    const char *j = cmd_value(args, "jobs");
    int64_t v = dflt;
    if (j && !mar_parse_i64(j, 1, 64, &v)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "--jobs wants a number from 1 to 64, not '%s'", j);
    }
    *ret = (int)v;
    return 0;
}

/* Whether the store's match is what was asked for: the stored entry of an index counts only when
 * it is exactly a requested platform (or this host's), not one further down containerd's ladder
 * (linux/386 for linux/amd64, arm/v7 for arm64) that an earlier pull happened to store: the
 * registry is asked then, as docker's "missing" policy does. A single-platform image is what it
 * is. */
static bool stored_is_asked(const reg_store_image *im, const oci_platform *platforms, size_t n)
{
    if (mar_digest_eq(&im->top, &im->digest)) {
        return true;
    }
    if (n == 0) {
        oci_host host;
        oci_host_detect(&host);
        return oci_platform_same(&im->platform, &host.platform);
    }
    for (size_t i = 0; i < n; i++) {
        if (oci_platform_same(&im->platform, &platforms[i])) {
            return true;
        }
    }
    return false;
}

int cmd_stored_or_pull(const cmd_args *args, reg_store *s, const char *image, const char *refname,
                       const oci_matcher *m, const oci_platform *platforms, size_t n_platforms,
                       bool unpacked, reg_store_image *ret, mar_err **err)
{
    int rc = reg_store_image_find(s, refname, m, ret, err);
    if (rc < 0 && mar_err_code(*err) != MAR_ENOTFOUND) {
        return rc;
    }
    if (rc == 0 && (unpacked ? ret->unpacked : ret->blobs_present) &&
        stored_is_asked(ret, platforms, n_platforms)) {
        return 0;
    }
    mar_err_free(TAKE_PTR(*err));
    if (rc == 0) {
        reg_store_image_release(ret);
    }
    reg_pull_result pr;
    if (cmd_pull_image(args, s, image, platforms, n_platforms, false, unpacked, &pr, err) < 0) {
        return -mar_err_code(*err);
    }
    reg_pull_result_release(&pr);
    return reg_store_image_find(s, refname, m, ret, err);
}

static json_t *result_json(const reg_pull_result *r, const char *store)
{
    json_t *imgs = json_array();
    for (size_t i = 0; i < r->n_images; i++) {
        const reg_pull_image *im = &r->images[i];
        char ps[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&im->platform, ps, sizeof(ps));
        json_t *layers = json_array();
        for (size_t j = 0; j < im->n_layers; j++) {
            json_array_append_new(layers, json_pack("{s:s, s:s}", "digest", im->blobs[j].str,
                                                    "chainId", im->chains[j].str));
        }
        json_array_append_new(imgs, json_pack("{s:s, s:s, s:s, s:o}", "platform", ps, "manifest",
                                              im->manifest.str, "config", im->config.str, "layers",
                                              layers));
    }
    const reg_pull_stats *s = &r->stats;
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "name",
                     r->name, "store", store, "digest", r->digest.str, "mediaType", r->media_type,
                     "size", (json_int_t)r->size, "images", imgs, "stats", "blobsDownloaded",
                     (json_int_t)s->blobs_downloaded, "blobsPresent", (json_int_t)s->blobs_present,
                     "layersUnpacked", (json_int_t)s->layers_unpacked, "layersPresent",
                     (json_int_t)s->layers_present, "bytesDownloaded",
                     (json_int_t)s->bytes_downloaded, "retries", (json_int_t)s->retries);
}

int cmd_pull_image(const cmd_args *args, reg_store *s, const char *image,
                   const oci_platform *platforms, size_t n_platforms, bool all, bool unpack,
                   reg_pull_result *ret, mar_err **err)
{
    oci_host host;
    oci_host_detect(&host);
    oci_ref ref;
    if (oci_ref_parse(image, &ref, err) < 0) {
        return -mar_err_code(*err);
    }
    int jobs;
    if (cmd_jobs(args, 4, &jobs, err) < 0) {
        oci_ref_release(&ref);
        return -MAR_EUSAGE;
    }
    _cleanup_client_ reg_client *c = NULL;
    if (cmd_registry_client(args, 0, &c, err) < 0) {
        oci_ref_release(&ref);
        return -mar_err_code(*err);
    }
    bool quiet = cmd_flag(args, "quiet");
    cmd_progress *pr = cmd_progress_new(quiet);
    reg_pull_opts o = {
            .name = image,
            .platforms = platforms,
            .n_platforms = n_platforms,
            .host = &host.platform,
            .all_platforms = all,
            .unpack = unpack,
            .jobs = jobs,
            .progress = cmd_progress_pull,
            .progress_ud = pr,
    };
    int rc = reg_pull_run(c, s, &ref, &o, ret, err);
    cmd_progress_free(pr);
    oci_ref_release(&ref);
    return rc;
}

int cmd_pull(const cmd_def *def, cmd_args *args)
{
    mar_err *err = NULL;
    const char *image = args->pos.v[0];
    bool unpack = !cmd_flag(args, "no-unpack");
    _cleanup_free_ oci_platform *platforms = NULL;
    size_t n_platforms = 0;
    bool all;
    int st = cmd_parse_selection(def, args, &platforms, &n_platforms, &all);
    if (st) {
        return st;
    }
    if (unpack && geteuid() != 0) {
        /* Overlay whiteouts are 0/0 character devices, which only root can make. */
        mar_diag_notice("not root: storing the layers without unpacking them (mar unpack "
                        "works without root)");
        unpack = false;
    }
    _cleanup_store_ reg_store *s = NULL;
    if (cmd_open_store(args, &s, &err) < 0 || reg_store_hold(s, false, true, &err) < 0) {
        return cmd_fail(err);
    }
    uint64_t t0 = mar_now_ms();
    reg_pull_result r;
    if (cmd_pull_image(args, s, image, platforms, n_platforms, all, unpack, &r, &err) < 0) {
        return cmd_fail(err);
    }
    if (cmd_flag(args, "json")) {
        json_t *doc = result_json(&r, reg_store_path(s));
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else {
        printf("%s@%s\n", r.name, r.digest.str);
    }
    if (!cmd_flag(args, "quiet")) {
        char dl[16];
        mar_format_size((int64_t)r.stats.bytes_downloaded, dl, sizeof(dl));
        size_t layers = r.stats.blobs_downloaded + r.stats.blobs_present;
        fprintf(stderr,
                "mar: pulled %zu platform%s, %zu layer%s (%zu downloaded, %zu present%s), %s in "
                "%.1fs\n",
                r.n_images, r.n_images == 1 ? "" : "s", layers, layers == 1 ? "" : "s",
                r.stats.blobs_downloaded, r.stats.blobs_present, unpack ? ", unpacked" : "", dl,
                (double)(mar_now_ms() - t0) / 1000.0);
    }
    reg_pull_result_release(&r);
    return 0;
}
