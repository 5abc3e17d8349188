/* mar copy: an image from a registry, an OCI layout or an OCI archive to another
 * (docs/mar-copy.1.md). The engine is reg_copy; this file parses and prints. */
#include "cli-internal.h"

#include <string.h>

static const char *end_word(const reg_endpoint *e)
{
    return e->kind == REG_END_REGISTRY ? "registry"
           : e->kind == REG_END_LAYOUT ? "oci"
                                       : "oci-archive";
}

/* What DST now names: a reference NAME[:TAG]@DIGEST, or LAYOUT[:TAG]@DIGEST. */
static char *dst_string(const reg_endpoint *e, const mar_digest *d)
{
    if (e->kind == REG_END_REGISTRY) {
        _cleanup_free_ char *repo = oci_ref_repo(&e->ref);
        return e->ref.tag ? mar_xasprintf("%s:%s@%s", repo, e->ref.tag, d->str)
                          : mar_xasprintf("%s@%s", repo, d->str);
    }
    return mar_xasprintf("%s:%s%s%s@%s", e->kind == REG_END_LAYOUT ? "oci" : "oci-archive", e->path,
                         e->tag ? ":" : "", e->tag ? e->tag : "", d->str);
}

int cmd_copy(const cmd_def *def, cmd_args *args)
{
    mar_err *err = NULL;
    _cleanup_free_ oci_platform *platforms = NULL;
    size_t n_platforms = 0;
    bool all;
    int st = cmd_parse_selection(def, args, &platforms, &n_platforms, &all);
    if (st) {
        return st;
    }
    int jobs;
    if (cmd_jobs(args, 4, &jobs, &err) < 0) {
        return cmd_fail(err);
    }
    reg_endpoint src = {0}, dst = {0};
    if (reg_endpoint_parse(args->pos.v[0], &src, &err) < 0 ||
        reg_endpoint_parse(args->pos.v[1], &dst, &err) < 0) {
        reg_endpoint_release(&src);
        return cmd_fail(err);
    }
    int rc = 0;
    _cleanup_client_ reg_client *c = NULL;
    if (cmd_registry_client(args, 0, &c, &err) < 0) {
        rc = -mar_err_code(err);
    }
    bool quiet = cmd_flag(args, "quiet");
    uint64_t t0 = mar_now_ms();
    reg_copy_result r = {0};
    if (rc == 0) {
        cmd_push_progress *pr = cmd_push_progress_new(quiet);
        reg_copy_opts o = {
                .platforms = platforms,
                .n_platforms = n_platforms,
                .jobs = jobs,
                .progress = cmd_progress_push,
                .progress_ud = pr,
        };
        rc = reg_copy(c, &src, &dst, &o, &r, &err);
        cmd_push_progress_free(pr);
    }
    if (rc == 0) {
        if (r.new_index) {
            mar_diag_notice("copied a new index of %zu of the %zu entries of '%s': its digest %s "
                            "is not the source's %s",
                            r.kept, r.entries, args->pos.v[0], r.digest.str, r.source.str);
        }
        _cleanup_free_ char *name = dst_string(&dst, &r.digest);
        if (cmd_flag(args, "json")) {
            json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:{s:I, s:I}, s:I, s:I}",
                                    "name", name, "from", end_word(&src), "to", end_word(&dst),
                                    "digest", r.digest.str, "size", (json_int_t)r.size, "source",
                                    r.source.str, "newIndex", r.new_index, "entries", "copied",
                                    (json_int_t)r.kept, "of", (json_int_t)r.entries, "blobs",
                                    (json_int_t)r.blobs, "bytes", (json_int_t)r.bytes);
            json_object_set_new(doc, "mediaType", json_string(r.media_type));
            if (dst.kind == REG_END_REGISTRY) {
                json_object_set_new(doc, "stats", cmd_push_stats_json(&r.stats));
            }
            cmd_json_print(doc, cmd_stdout_is_tty());
            json_decref(doc);
        } else {
            printf("%s\n", name);
        }
        if (!quiet) {
            char sent[16];
            mar_format_size((int64_t)r.bytes, sent, sizeof(sent));
            fprintf(stderr, "mar: copied %zu blob%s (%s %s) in %.1fs\n", r.blobs,
                    r.blobs == 1 ? "" : "s", sent,
                    dst.kind == REG_END_REGISTRY ? "sent" : "written",
                    (double)(mar_now_ms() - t0) / 1000.0);
        }
    }
    reg_copy_result_release(&r);
    reg_endpoint_release(&src);
    reg_endpoint_release(&dst);
    return rc < 0 ? cmd_fail(err) : 0;
}
