/* mar tag: another name for an image, in the store or in its registry (docs/mar-tag.1.md). */
#include "cli-internal.h"

#include <string.h>

/* The store entry named `name` (the last one, as reg_store_image_find reads it), or NULL. */
static const reg_store_ref *stored(const reg_store_refs *refs, const char *name)
{
    const reg_store_ref *hit = NULL;
    for (size_t i = 0; i < refs->n; i++) {
        if (strcmp(refs->v[i].name, name) == 0) {
            hit = &refs->v[i];
        }
    }
    return hit;
}

/* Points dst at what src points at, with its per-platform entries (name@os/arch), replacing
 * whatever dst named before. */
MAR_MUST_USE static int tag_local(reg_store *s, const reg_store_refs *refs,
                                  const reg_store_ref *top, const char *src, const char *dst,
                                  mar_err **err)
{
    size_t removed;
    if (reg_store_untag(s, dst, &removed, err) < 0) {
        return -mar_err_code(*err);
    }
    reg_store_ref e = *top;
    e.name = (char *)dst;
    if (reg_store_tag(s, &e, err) < 0) {
        return -mar_err_code(*err);
    }
    size_t sl = strlen(src);
    for (size_t i = 0; i < refs->n; i++) {
        const reg_store_ref *r = &refs->v[i];
        if (!r->has_platform || strncmp(r->name, src, sl) != 0 || r->name[sl] != '@') {
            continue;
        }
        _cleanup_free_ char *pn = mar_xasprintf("%s%s", dst, r->name + sl);
        reg_store_ref pe = *r;
        pe.name = pn;
        if (reg_store_tag(s, &pe, err) < 0) {
            return -mar_err_code(*err);
        }
    }
    return 0;
}

static void print_result(const cmd_args *args, const char *src, const char *dst,
                         const mar_digest *d, const char *media_type, bool local,
                         const reg_push_result *r)
{
    if (cmd_flag(args, "json")) {
        json_t *doc =
                json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", dst, "source", src, "digest", d->str,
                          "mediaType", media_type, "where", local ? "store" : "registry");
        if (r) {
            json_object_set_new(doc, "stats", cmd_push_stats_json(&r->stats));
        }
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
        return;
    }
    printf("%s@%s\n", dst, d->str);
}

int cmd_tag(const cmd_def *def, cmd_args *args)
{
    mar_err *err = NULL;
    bool local = cmd_flag(args, "local"), remote = cmd_flag(args, "remote");
    if (local && remote) {
        return cmd_usage_error(def, "--local and --remote exclude each other");
    }
    int jobs;
    if (cmd_jobs(args, 4, &jobs, &err) < 0) {
        return cmd_fail(err);
    }
    oci_ref src, dst;
    if (oci_ref_parse(args->pos.v[0], &src, &err) < 0) {
        return cmd_fail(err);
    }
    if (oci_ref_parse(args->pos.v[1], &dst, &err) < 0) {
        oci_ref_release(&src);
        return cmd_fail(err);
    }
    if (!dst.tag || dst.has_digest) {
        oci_ref_release(&src);
        oci_ref_release(&dst);
        return cmd_usage_error(def, "a new name is a tag: '%s' %s", args->pos.v[1],
                               dst.has_digest ? "has a digest" : "has none");
    }
    _cleanup_free_ char *src_name = oci_ref_string(&src);
    _cleanup_free_ char *dst_name = oci_ref_string(&dst);
    int rc = 0;
    bool done = false;
    if (!remote) {
        /* The store decides, unless told: an image it holds is named there. */
        _cleanup_store_ reg_store *s = local ? NULL : cmd_existing_store(args);
        if (local && (cmd_open_store(args, &s, &err) < 0)) {
            rc = -mar_err_code(err);
        }
        reg_store_refs refs = {0};
        const reg_store_ref *top = NULL;
        if (rc == 0 && s &&
            (reg_store_hold(s, false, true, &err) < 0 || reg_store_list(s, &refs, &err) < 0)) {
            rc = -mar_err_code(err);
        } else if (rc == 0 && s) {
            top = stored(&refs, src_name);
        }
        if (rc == 0 && top) {
            rc = tag_local(s, &refs, top, src_name, dst_name, &err);
            if (rc == 0) {
                print_result(args, src_name, dst_name, &top->digest, top->media_type, true, NULL);
            }
            done = true;
        } else if (rc == 0 && local) {
            rc = mar_err_set(&err, MAR_ENOTFOUND, 0, "'%s' is not in the store '%s'", src_name,
                             reg_store_path(s));
        }
        reg_store_refs_release(&refs);
    }
    if (rc == 0 && !done) {
        _cleanup_client_ reg_client *c = NULL;
        rc = cmd_registry_client(args, 0, &c, &err);
        if (rc == 0) {
            cmd_push_progress *pr = cmd_push_progress_new(cmd_flag(args, "quiet"));
            reg_push_opts o = {
                    .dst = &dst,
                    .jobs = jobs,
                    .progress = cmd_progress_push,
                    .progress_ud = pr,
            };
            reg_push_result r;
            rc = reg_retag(c, &src, &o, &r, &err);
            cmd_push_progress_free(pr);
            if (rc == 0) {
                print_result(args, src_name, dst_name, &r.digest, r.media_type, false, &r);
                reg_push_result_release(&r);
            }
        }
    }
    oci_ref_release(&src);
    oci_ref_release(&dst);
    return rc < 0 ? cmd_fail(err) : 0;
}
