/* mar push: an image of the store to its registry, or to another name (docs/mar-push.1.md). */
#include "cli-internal.h"

#include <string.h>

static json_t *result_json(const reg_push *p, const char *name, const reg_push_result *r,
                           const reg_push_plan *pl)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:s}, s:b, s:{s:I, s:I}}", "name", name,
                            "digest", r->digest.str, "mediaType", r->media_type, "size",
                            (json_int_t)r->size, "source", "name", pl->name, "digest",
                            pl->source.str, "newIndex", pl->new_index, "entries", "pushed",
                            (json_int_t)pl->kept, "of", (json_int_t)pl->entries);
    json_object_set_new(doc, "manifests", cmd_push_items_json(p, true));
    json_object_set_new(doc, "blobs", cmd_push_items_json(p, false));
    json_object_set_new(doc, "stats", cmd_push_stats_json(&r->stats));
    return doc;
}

static void summary(const reg_push_result *r, uint64_t t0)
{
    const reg_push_stats *s = &r->stats;
    char sent[16];
    mar_format_size((int64_t)s->bytes_sent, sent, sizeof(sent));
    size_t blobs = s->blobs_pushed + s->blobs_mounted + s->blobs_present;
    fprintf(stderr,
            "mar: pushed %zu blob%s (%zu uploaded, %zu mounted, %zu present), %zu manifest%s "
            "(%zu present), %s sent",
            blobs, blobs == 1 ? "" : "s", s->blobs_pushed, s->blobs_mounted, s->blobs_present,
            s->documents_pushed + s->documents_present,
            s->documents_pushed + s->documents_present == 1 ? "" : "s", s->documents_present, sent);
    if (s->resumes || s->restarts) {
        fprintf(stderr, ", %zu resumed, %zu restarted", s->resumes, s->restarts);
    }
    fprintf(stderr, " in %.1fs\n", (double)(mar_now_ms() - t0) / 1000.0);
}

int cmd_push(const cmd_def *def, cmd_args *args)
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
    oci_ref src, dst;
    if (oci_ref_parse(args->pos.v[0], &src, &err) < 0) {
        return cmd_fail(err);
    }
    if (oci_ref_parse(args->pos.n > 1 ? args->pos.v[1] : args->pos.v[0], &dst, &err) < 0) {
        oci_ref_release(&src);
        return cmd_fail(err);
    }
    _cleanup_free_ char *src_name = oci_ref_string(&src);
    /* Printed as NAME[:TAG]@DIGEST, the digest being the one pushed. */
    _cleanup_free_ char *dst_repo = oci_ref_repo(&dst);
    _cleanup_free_ char *dst_name =
            dst.tag ? mar_xasprintf("%s:%s", dst_repo, dst.tag) : mar_xstrdup(dst_repo);
    oci_ref_release(&src);

    _cleanup_store_ reg_store *s = NULL;
    _cleanup_client_ reg_client *c = NULL;
    if (cmd_open_store(args, &s, &err) < 0 || reg_store_hold(s, false, true, &err) < 0 ||
        cmd_registry_client(args, 0, &c, &err) < 0) {
        oci_ref_release(&dst);
        return cmd_fail(err);
    }
    bool quiet = cmd_flag(args, "quiet");
    cmd_push_progress *pr = cmd_push_progress_new(quiet);
    reg_push_opts o = {
            .dst = &dst,
            .jobs = jobs,
            .progress = cmd_progress_push,
            .progress_ud = pr,
    };
    _cleanup_push_ reg_push *p = reg_push_new(c, &o);
    oci_ref_release(&dst);
    reg_push_plan pl;
    if (reg_push_add_stored(p, s, src_name, platforms, n_platforms, &pl, &err) < 0) {
        cmd_push_progress_free(pr);
        return cmd_fail(err);
    }
    if (pl.dropped_attestations) {
        mar_diag_warn("%zu attestation%s of the chosen platforms %s not in the store, leaving "
                      "%s out",
                      pl.dropped_attestations, pl.dropped_attestations == 1 ? "" : "s",
                      pl.dropped_attestations == 1 ? "is" : "are",
                      pl.dropped_attestations == 1 ? "it" : "them");
    }
    uint64_t t0 = mar_now_ms();
    reg_push_result r;
    int rc = reg_push_run(p, &r, &err);
    cmd_push_progress_free(pr);
    if (rc < 0) {
        reg_push_plan_release(&pl);
        return cmd_fail(err);
    }
    if (pl.new_index) {
        mar_diag_notice("pushed a new index of %zu of the %zu entries of '%s': its digest %s is "
                        "not the stored %s",
                        pl.kept, pl.entries, src_name, r.digest.str, pl.source.str);
    }
    if (cmd_flag(args, "json")) {
        json_t *doc = result_json(p, dst_name, &r, &pl);
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else {
        printf("%s@%s\n", dst_name, r.digest.str);
    }
    if (!quiet) {
        summary(&r, t0);
    }
    reg_push_result_release(&r);
    reg_push_plan_release(&pl);
    return 0;
}
