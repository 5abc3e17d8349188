/* mar index create: one multi-platform index of several images (docs/mar-index.1.md). The
 * engine is reg_index_create; this file parses and prints. */
#include "cli-internal.h"

#include <string.h>

/* DST must name its tag: an index made without one would be unreachable but by digest. */
static bool has_tag(const char *s)
{
    const char *slash = strrchr(s, '/');
    const char *last = slash ? slash + 1 : s;
    return strchr(last, ':') && !strchr(s, '@');
}

MAR_MUST_USE static int parse_removes(const cmd_args *args, const oci_host *host,
                                      oci_platform **ret, size_t *ret_n, mar_err **err)
{
    const mar_strv *l = cmd_list(args, "remove");
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

int cmd_index_create(const cmd_def *def, cmd_args *args)
{
    mar_err *err = NULL;
    const char *dst_s = args->pos.v[0];
    bool append = cmd_flag(args, "append");
    if (!has_tag(dst_s)) {
        return cmd_usage_error(def, "DST '%s' needs a tag (REPOSITORY:TAG)", dst_s);
    }
    if (args->pos.n < 2 && !append) {
        return cmd_usage_error(def, "no source: name at least one SRC (or --append to DST)");
    }
    oci_host host;
    oci_host_detect(&host);
    _cleanup_free_ oci_platform *removes = NULL;
    size_t n_removes = 0;
    int jobs;
    if (parse_removes(args, &host, &removes, &n_removes, &err) < 0 ||
        cmd_jobs(args, 16, &jobs, &err) < 0) {
        return cmd_fail(err);
    }
    oci_ref dst;
    if (oci_ref_parse(dst_s, &dst, &err) < 0) {
        return cmd_fail(err);
    }
    size_t n_srcs = args->pos.n - 1;
    oci_ref *srcs = mar_xcalloc(n_srcs + 1, sizeof(*srcs));
    int rc = 0;
    for (size_t i = 0; i < n_srcs && rc == 0; i++) {
        rc = oci_ref_parse(args->pos.v[i + 1], &srcs[i], &err);
    }
    _cleanup_client_ reg_client *c = NULL;
    if (rc == 0) {
        /* Mounts and manifests are small requests: as many in flight as jobs, rather than
         * waves of 8 connections, each wave a round trip. */
        rc = cmd_registry_client(args, jobs > 8 ? jobs : 0, &c, &err);
    }
    bool dry = cmd_flag(args, "dry-run"), quiet = cmd_flag(args, "quiet");
    reg_index_result r = {0};
    if (rc == 0) {
        cmd_push_progress *pr = cmd_push_progress_new(quiet || dry);
        reg_index_opts o = {
                .dst = &dst,
                .srcs = srcs,
                .n_srcs = n_srcs,
                .append = append,
                .replace = cmd_flag(args, "replace"),
                .remove = removes,
                .n_remove = n_removes,
                .annotations = cmd_list(args, "annotation"),
                .dry_run = dry,
                .jobs = jobs,
                .progress = cmd_progress_push,
                .progress_ud = pr,
        };
        rc = reg_index_create(c, &o, &r, &err);
        cmd_push_progress_free(pr);
    }
    if (rc == 0 && dry) {
        /* The exact bytes that would be pushed. */
        fwrite(r.json.data, 1, r.json.len, stdout);
        putchar('\n');
        if (!quiet) {
            fprintf(stderr,
                    "mar: dry run: an index of %zu entr%s and %zu attestation%s, %s; "
                    "nothing pushed\n",
                    r.entries, r.entries == 1 ? "y" : "ies", r.attestations,
                    r.attestations == 1 ? "" : "s", r.digest.str);
        }
    } else if (rc == 0) {
        _cleanup_free_ char *repo = oci_ref_repo(&dst);
        _cleanup_free_ char *name = mar_xasprintf("%s:%s", repo, dst.tag);
        if (cmd_flag(args, "json")) {
            json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:I}", "name", name, "digest",
                                    r.digest.str, "entries", (json_int_t)r.entries, "attestations",
                                    (json_int_t)r.attestations, "mountedSources",
                                    (json_int_t)r.mounted_sources);
            json_object_set_new(doc, "stats", cmd_push_stats_json(&r.stats));
            cmd_json_print(doc, cmd_stdout_is_tty());
            json_decref(doc);
        } else {
            printf("%s@%s\n", name, r.digest.str);
        }
        if (!quiet) {
            fprintf(stderr,
                    "mar: index of %zu entr%s and %zu attestation%s; %zu blob%s mounted, "
                    "%zu present, %zu uploaded\n",
                    r.entries, r.entries == 1 ? "y" : "ies", r.attestations,
                    r.attestations == 1 ? "" : "s", r.stats.blobs_mounted,
                    r.stats.blobs_mounted == 1 ? "" : "s", r.stats.blobs_present,
                    r.stats.blobs_pushed);
        }
    }
    reg_index_result_release(&r);
    for (size_t i = 0; i < n_srcs; i++) {
        oci_ref_release(&srcs[i]);
    }
    free(srcs);
    oci_ref_release(&dst);
    return rc < 0 ? cmd_fail(err) : 0;
}
