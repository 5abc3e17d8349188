/* The build executor's driver (docs/internals/build.md): refuse what is not supported before
 * anything runs, plan every platform's RUN steps against this host, resolve the base images,
 * execute the needed stages of each target platform in order, then commit a config and
 * manifest per platform and an OCI index over them (image-spec image-index.md,
 * https://github.com/opencontainers/image-spec/blob/main/image-index.md) and tag it. */
#include "build-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

/* ---- refusals before anything runs ---------------------------------------------------------- */

static int refuse(const bld_dockerfile *df, const bld_instr *in, mar_err **err, const char *what)
{
    return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: %s is not supported by mar build yet",
                       df->filename, in->line, what);
}

/* ADD extracts a local tar archive; bzip2 and xz ones need libarchive's built-in decoders. */
static bool unsupported_archive(int ctxfd, const char *src)
{
    _cleanup_free_ char *clean = NULL;
    mar_err *e = NULL;
    if (strchr(src, '$') || strpbrk(src, "*?[") || oci_clean_path(src, &clean, &e) < 0) {
        mar_err_free(e);
        return false;
    }
    _cleanup_close_ int fd = mar_in_root_open(ctxfd, clean, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
    return fd >= 0 && bld__archive_kind(fd) == BLD__ARCHIVE_UNSUPPORTED;
}

MAR_MUST_USE static int check_instr(const bld_dockerfile *df, int ctxfd, const bld_instr *in,
                                    mar_err **err)
{
    switch (in->kind) {
    case BLD_ONBUILD:
        return in->trigger ? check_instr(df, ctxfd, in->trigger, err) : 0;
    case BLD_COPY:
    case BLD_ADD:
        if (in->chmod) {
            size_t ml = strlen(in->chmod);
            if (ml == 0 || ml > 5 || strspn(in->chmod, "01234567") != ml) {
                return refuse(df, in, err, "a symbolic --chmod");
            }
        }
        if (in->kind == BLD_ADD) {
            bool url = false;
            for (size_t i = 0; i < in->args.n; i++) {
                url = url || bld__is_url(in->args.v[i]);
            }
            if (in->checksum && (!url || in->args.n != 1)) {
                return refuse(df, in, err, "ADD --checksum of anything but one URL");
            }
            if (in->unpack == 1) {
                return refuse(df, in, err, "ADD --unpack");
            }
            for (size_t i = 0; i < in->args.n; i++) {
                const char *s = in->args.v[i];
                if (mar_str_startswith(s, "git@") || (bld__is_url(s) && in->from)) {
                    return refuse(df, in, err, "ADD from git or a URL with --from");
                }
                if (!in->from && !bld__is_url(s) && unsupported_archive(ctxfd, s)) {
                    return refuse(df, in, err,
                                  "ADD of a bzip2 or xz archive without libarchive's decoder");
                }
            }
        }
        return 0;
    default:
        return 0;
    }
}

MAR_MUST_USE int bld__check_dockerfile(const bld_dockerfile *df, int ctxfd, const bool *needed,
                                       mar_err **err)
{
    for (size_t s = 0; s < df->n_stages; s++) {
        for (size_t i = 1; needed[s] && i < df->stages[s].n_instrs; i++) {
            if (check_instr(df, ctxfd, &df->stages[s].instrs[i], err) < 0) {
                return -MAR_EUSAGE;
            }
        }
    }
    return 0;
}

/* ---- per platform ---------------------------------------------------------------------------- */

bool bld__stage_runs(const bld_stage *s)
{
    for (size_t i = 1; i < s->n_instrs; i++) {
        if (s->instrs[i].kind == BLD_RUN) {
            return true;
        }
    }
    return false;
}

bool bld__stage_needs_ctd(const bld__ctx *c, size_t i)
{
    const bld_node *n = &c->graph->nodes[i];
    if (bld__stage_runs(&c->df->stages[i]) || c->stages[i].triggers_run) {
        return true;
    }
    const bld_stage *b = n->base_kind == BLD_BASE_STAGE ? &c->df->stages[n->base_stage] : NULL;
    for (size_t k = 1; b && k < b->n_instrs; k++) {
        const bld_instr *t = b->instrs[k].trigger;
        if (b->instrs[k].kind == BLD_ONBUILD && t && t->kind == BLD_RUN) {
            return true;
        }
    }
    return false;
}

void bld__stage_platform(const bld__ctx *c, size_t i, oci_platform *ret)
{
    const bld_node *n = &c->graph->nodes[i];
    if (n->build_platform) {
        oci_platform_normalize(&c->o->host->platform, ret);
    } else if (n->platform) {
        *ret = n->pinned;
    } else {
        *ret = c->target;
    }
}

void bld__ctx_release(bld__ctx *c)
{
    for (size_t i = 0; i < c->n_stages; i++) {
        bld__image_release(&c->stages[i].img);
        bld_scope_free(c->stages[i].scope);
    }
    free(c->stages);
    for (size_t i = 0; i < c->n_extra; i++) {
        reg_store_image_release(&c->extra[i]);
    }
    free(c->extra);
    bld_graph_free(c->graph);
    bld_scope_free(c->global);
}

MAR_MUST_USE int bld__ctx_init(bld__ctx *c, const bld_opts *o, const bld_dockerfile *df, size_t pi,
                               mar_err **err)
{
    c->o = o;
    c->df = df;
    c->sigfd = o->sigfd;
    oci_platform_normalize(&o->platforms[pi], &c->target);
    oci_platform_format(&c->target, c->target_str, sizeof(c->target_str));
    bld_arg_opts ao = {.build_args = o->build_args,
                       .n_build_args = o->n_build_args,
                       .build_platform = o->host->platform,
                       .target_platform = c->target,
                       .target = o->target};
    _cleanup_free_ bool *needed = NULL;
    if (bld_scope_global(df, &ao, &c->global, err) < 0 ||
        bld_graph_build(df, c->global, &c->graph, err) < 0 ||
        bld_graph_needed(c->graph, df, o->target, &needed, err) < 0) {
        return -mar_err_code(*err);
    }
    c->n_stages = df->n_stages;
    c->stages = mar_xcalloc(c->n_stages + 1, sizeof(*c->stages));
    for (size_t i = 0; i < c->n_stages; i++) {
        bld__stage *st = &c->stages[i];
        st->needed = needed[i];
        if (df->stages[i].name) {
            st->name = df->stages[i].name;
        } else {
            snprintf(st->name_buf, sizeof(st->name_buf), "stage-%zu", i);
            st->name = st->name_buf;
        }
    }
    return 0;
}

/* Every needed stage that runs something must be executable here (as `mar run` decides). */
MAR_MUST_USE static int plan(const bld__ctx *c, mar_err **err)
{
    for (size_t i = 0; i < c->n_stages; i++) {
        const bld_stage *s = &c->df->stages[i];
        if (!c->stages[i].needed || !bld__stage_runs(s)) {
            continue;
        }
        oci_platform p;
        bld__stage_platform(c, i, &p);
        vm_verdict v;
        vm_plan_platform(c->o->vm, &p, &v);
        if (v.mode == VM_RUN_EMULATED && v.reason[0] && strstr(v.reason, "lacks the F flag")) {
            v.mode = VM_RUN_UNAVAILABLE;
        }
        if (v.mode == VM_RUN_UNAVAILABLE) {
            char ps[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&p, ps, sizeof(ps));
            unsigned line = 0;
            for (size_t k = 1; k < s->n_instrs && !line; k++) {
                line = s->instrs[k].kind == BLD_RUN ? s->instrs[k].line : 0;
            }
            return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                               "%s:%u: cannot run the RUN steps of stage %s for %s here: %s%s%s%s",
                               c->df->filename, line, c->stages[i].name, ps, v.reason,
                               v.fix[0] ? " (fix: `" : "", v.fix, v.fix[0] ? "`)" : "");
        }
    }
    return 0;
}

/* Pulls (through the caller) every base image and every image a COPY --from names. */
MAR_MUST_USE static int parse_triggers(const json_t *cfg, const char *base, bld_dockerfile **ret,
                                       mar_err **err);

MAR_MUST_USE int bld__resolve_images(bld__ctx *c, reg_store_image *bases, mar_err **err)
{
    const bld_hooks *h = &c->o->hooks;
    for (size_t i = 0; i < c->n_stages; i++) {
        const bld_node *n = &c->graph->nodes[i];
        if (!c->stages[i].needed || c->stages[i].shared) {
            continue;
        }
        if (n->base_kind == BLD_BASE_IMAGE) {
            oci_platform p;
            bld__stage_platform(c, i, &p);
            if (h->image(h->ud, n->base, &p, &bases[i], err) < 0) {
                return mar_err_wrap(err, "%s:%u: FROM %s", c->df->filename,
                                    c->df->stages[i].instrs[0].line, n->base);
            }
            /* Its ONBUILD triggers must pass the same refusals before anything runs. */
            _cleanup_buf_ mar_buf b = MAR_BUF_INIT(MAR_CAP_CONFIG);
            json_t *doc = NULL;
            if (reg_store_read(c->o->store, &bases[i].manifest->config.digest, MAR_CAP_CONFIG, &b,
                               err) < 0 ||
                mar_json_load(b.data, b.len, "config", &doc, err) < 0) {
                return -mar_err_code(*err);
            }
            _cleanup_dockerfile_ bld_dockerfile *tdf = NULL;
            int rc = parse_triggers(json_object_get(doc, "config"), n->base, &tdf, err);
            json_decref(doc);
            bool all = true;
            if (rc == 0 && tdf && bld__check_dockerfile(tdf, c->context_fd, &all, err) < 0) {
                rc = -MAR_EUSAGE;
            }
            if (rc < 0) {
                return rc;
            }
            for (size_t k = 1; tdf && k < tdf->stages[0].n_instrs; k++) {
                const bld_instr *in = &tdf->stages[0].instrs[k];
                c->stages[i].triggers_run |= in->kind == BLD_RUN;
                c->stages[i].triggers_from |= in->from != NULL;
                for (size_t m = 0; m < in->n_mounts; m++) {
                    c->stages[i].triggers_from |= in->mounts[m].from != NULL;
                }
            }
        }
        for (size_t k = 0; k < n->images.n; k++) {
            reg_store_image im;
            if (h->image(h->ud, n->images.v[k], &c->target, &im, err) < 0) {
                return mar_err_wrap(err, "%s: COPY --from=%s", c->df->filename, n->images.v[k]);
            }
            free(im.name);
            im.name = mar_xstrdup(n->images.v[k]);
            c->extra = mar_xrealloc(c->extra, (c->n_extra + 1) * sizeof(*c->extra));
            c->extra[c->n_extra++] = im;
        }
    }
    return 0;
}

int bld__interrupted(int sigfd, mar_err **err)
{
    struct signalfd_siginfo si;
    if (sigfd >= 0 && read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) &&
        si.ssi_signo != SIGWINCH) {
        return mar_err_set(err, MAR_EFAIL, 0, "interrupted by signal %u", si.ssi_signo);
    }
    return 0;
}

MAR_MUST_USE static int start_stage(bld__ctx *c, size_t i, const reg_store_image *base,
                                    mar_err **err)
{
    bld__stage *st = &c->stages[i];
    const bld_node *n = &c->graph->nodes[i];
    oci_platform p;
    bld__stage_platform(c, i, &p);
    if (n->base_kind == BLD_BASE_STAGE) {
        bld__image_copy(&c->stages[n->base_stage].img, &st->img);
        st->scope = bld_scope_stage(c->global, c->stages[n->base_stage].scope);
        return 0;
    }
    st->scope = bld_scope_stage(c->global, NULL);
    if (n->base_kind == BLD_BASE_SCRATCH) {
        bld__image_scratch(&p, &st->img);
        return 0;
    }
    if (bld__image_from_store(c->o->store, base, &st->img, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *env = json_object_get(bld__cfg(&st->img), "Env");
    size_t k;
    json_t *v;
    json_array_foreach(env, k, v)
    {
        const char *kv = json_string_value(v);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (eq) {
            _cleanup_free_ char *key = mar_xstrndup(kv, (size_t)(eq - kv));
            bld_scope_env(st->scope, key, eq + 1);
        }
    }
    return 0;
}

static char *history_text(const bld__stage *st, const bld_instr *in)
{
    if (in->kind == BLD_RUN && !in->json) {
        mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
        mar_buf_xputs(&b, "RUN");
        for (size_t i = 0; i < st->img.shell.n; i++) {
            mar_buf_xprintf(&b, " %s", st->img.shell.v[i]);
        }
        mar_buf_xprintf(&b, " %s # buildkit", in->args.n ? in->args.v[0] : "");
        return mar_buf_detach(&b, NULL);
    }
    if (in->kind == BLD_RUN || in->kind == BLD_COPY || in->kind == BLD_ADD) {
        return mar_xasprintf("%s # buildkit", in->original);
    }
    return mar_xstrdup(in->original);
}

/* Executes instructions in order (the stage's, or ONBUILD triggers); `what` names them in the
 * step prefix. */
MAR_MUST_USE static int exec_instrs(bld__ctx *c, bld__stage *st, const bld_instr *v, size_t n,
                                    const char *what, mar_err **err)
{
    const bld_hooks *h = &c->o->hooks;
    for (size_t k = 0; k < n; k++) {
        const bld_instr *in = &v[k];
        char prefix[OCI_PLATFORM_STR_MAX + 128];
        snprintf(prefix, sizeof(prefix), "[%s %s%s %zu/%zu]", c->target_str, st->name, what, k + 1,
                 n);
        if (h->step) {
            h->step(h->ud, prefix, in->original);
        }
        if (bld__interrupted(c->sigfd, err) < 0) {
            return -MAR_EFAIL;
        }
        int rc;
        bool layer = false, cached = false;
        switch (in->kind) {
        case BLD_ARG:
            rc = 0;
            for (size_t a = 0; a < in->n_kvs && rc == 0; a++) {
                rc = bld_scope_arg(st->scope, &in->kvs[a], c->df->escape, err);
            }
            if (rc < 0) {
                return mar_err_wrap(err, "%s:%u", c->df->filename, in->line);
            }
            continue; /* BuildKit records no history for ARG */
        case BLD_RUN: {
            mar_digest key;
            bool keyed = bld__cache_key(c, st, in, NULL, &key);
            rc = keyed ? bld__cache_use(c, &st->img, &key, err) : 0;
            cached = rc > 0;
            if (rc == 0) {
                rc = bld__run(c, st, in, prefix, err);
                if (rc == 0 && keyed) {
                    bld__cache_record(c, &st->img, &key);
                }
            }
            rc = rc < 0 ? rc : 0;
            layer = true;
            break;
        }
        case BLD_COPY:
        case BLD_ADD:
            rc = bld__copy(c, st, in, &cached, err);
            layer = true;
            break;
        default:
            rc = bld__config_instr(c, st, in, err);
            break;
        }
        if (rc < 0) {
            return -mar_err_code(*err);
        }
        if (cached && h->step) {
            h->step(h->ud, prefix, "CACHED");
        }
        if (layer && st->img.n_layers) {
            st->img.layers[st->img.n_layers - 1].line = in->line;
            st->img.layers[st->img.n_layers - 1].stage = st->name;
        }
        _cleanup_free_ char *hist = history_text(st, in);
        bld__history(c, &st->img, hist, !layer);
    }
    return 0;
}

/* The ONBUILD triggers of the base's config as a document of their own ("FROM scratch" and one
 * line each), named "BASE ONBUILD" in messages; NULL when there are none. */
static int parse_triggers(const json_t *cfg, const char *base, bld_dockerfile **ret, mar_err **err)
{
    *ret = NULL;
    const json_t *ob = json_object_get(cfg, "OnBuild");
    if (!json_is_array(ob) || json_array_size(ob) == 0) {
        return 0;
    }
    mar_buf b = MAR_BUF_INIT(BLD_CAP_DOCKERFILE);
    int rc = mar_buf_puts(&b, "FROM scratch\n");
    size_t i;
    json_t *t;
    json_array_foreach(ob, i, t)
    {
        if (rc == 0 && json_is_string(t)) {
            rc = mar_buf_printf(&b, "%s\n", json_string_value(t));
        }
    }
    if (rc < 0) {
        mar_buf_release(&b);
        return mar_err_set(err, MAR_EUSAGE, 0, "the ONBUILD triggers of %s are too long", base);
    }
    _cleanup_free_ char *name = mar_xasprintf("%s ONBUILD", base);
    rc = bld_dockerfile_parse(b.data, b.len, name, ret, err);
    mar_buf_release(&b);
    return rc < 0 ? -mar_err_code(*err) : 0;
}

/* Runs the base's ONBUILD triggers at the start of the stage built on it (Dockerfile
 * reference, "ONBUILD"); the image built keeps none of them. */
static int run_triggers(bld__ctx *c, bld__stage *st, const char *base, mar_err **err)
{
    json_t *cfg = bld__cfg(&st->img);
    _cleanup_dockerfile_ bld_dockerfile *tdf = NULL;
    if (parse_triggers(cfg, base, &tdf, err) < 0) {
        return -mar_err_code(*err);
    }
    json_object_del(cfg, "OnBuild");
    if (!tdf) {
        return 0;
    }
    const bld_dockerfile *saved = c->df;
    c->df = tdf;
    int rc = exec_instrs(c, st, tdf->stages[0].instrs + 1, tdf->stages[0].n_instrs - 1, " ONBUILD",
                         err);
    c->df = saved;
    return rc;
}

int bld__build_stage(bld__ctx *c, size_t i, const reg_store_image *base, mar_err **err)
{
    const bld_stage *s = &c->df->stages[i];
    bld__stage *st = &c->stages[i];
    if (start_stage(c, i, base, err) < 0 || run_triggers(c, st, c->graph->nodes[i].base, err) < 0 ||
        exec_instrs(c, st, s->instrs + 1, s->n_instrs - 1, "", err) < 0) {
        return -mar_err_code(*err);
    }
    st->done = true;
    return 0;
}

/* ---- results --------------------------------------------------------------------------------- */

MAR_MUST_USE static int put_json(reg_store *s, json_t *doc, mar_digest *ret, int64_t *ret_size,
                                 mar_err **err)
{
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot serialize a document");
    }
    size_t n = strlen(text);
    mar_digest_of(MAR_DIGEST_SHA256, text, n, ret);
    *ret_size = (int64_t)n;
    return reg_store_put(s, ret, text, n, err);
}

static json_t *platform_json(const oci_platform *p)
{
    json_t *o = json_pack("{s:s, s:s}", "architecture", p->arch, "os", p->os);
    if (p->variant[0]) {
        json_object_set_new(o, "variant", json_string(p->variant));
    }
    return o;
}

/* The final stage's config and manifest, committed to the store. */
MAR_MUST_USE int bld__write_image(bld__ctx *c, bld__image *im, const oci_platform *p,
                                  mar_digest *ret, int64_t *ret_size, mar_err **err)
{
    json_t *doc = im->config;
    char created[40];
    bld__created(c, created, sizeof(created));
    json_object_set_new(doc, "created", json_string(created));
    json_object_set_new(doc, "architecture", json_string(p->arch));
    json_object_set_new(doc, "os", json_string(p->os));
    if (p->variant[0]) {
        json_object_set_new(doc, "variant", json_string(p->variant));
    } else {
        json_object_del(doc, "variant");
    }
    static const char *const stale[] = {"container", "container_config", "docker_version"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(stale); i++) {
        json_object_del(doc, stale[i]);
    }
    json_t *ids = json_array();
    for (size_t i = 0; i < im->n_layers; i++) {
        json_array_append_new(ids, json_string(im->layers[i].diff_id.str));
    }
    json_object_set_new(doc, "rootfs", json_pack("{s:s, s:o}", "type", "layers", "diff_ids", ids));
    mar_digest cd;
    int64_t cs;
    if (put_json(c->o->store, doc, &cd, &cs, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *layers = json_array();
    for (size_t i = 0; i < im->n_layers; i++) {
        json_array_append_new(layers,
                              json_pack("{s:s, s:s, s:I}", "mediaType", im->layers[i].media_type,
                                        "digest", im->layers[i].digest.str, "size",
                                        (json_int_t)im->layers[i].size));
    }
    _cleanup_json_ json_t *m =
            json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
                      OCI_MT_MANIFEST, "config", "mediaType", OCI_MT_CONFIG, "digest", cd.str,
                      "size", (json_int_t)cs, "layers", layers);
    return put_json(c->o->store, m, ret, ret_size, err);
}

MAR_MUST_USE static int tag(const bld_opts *o, const mar_digest *digests, const int64_t *sizes,
                            const oci_platform *plats, bld_result *ret, mar_err **err)
{
    json_t *ms = json_array();
    for (size_t i = 0; i < o->n_platforms; i++) {
        json_array_append_new(ms, json_pack("{s:s, s:s, s:I, s:o}", "mediaType", OCI_MT_MANIFEST,
                                            "digest", digests[i].str, "size", (json_int_t)sizes[i],
                                            "platform", platform_json(&plats[i])));
    }
    _cleanup_json_ json_t *idx = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType",
                                           OCI_MT_INDEX, "manifests", ms);
    if (put_json(o->store, idx, &ret->index, &ret->index_size, err) < 0) {
        return -mar_err_code(*err);
    }
    reg_store_ref top = {.name = (char *)o->name,
                         .media_type = OCI_MT_INDEX,
                         .digest = ret->index,
                         .size = ret->index_size};
    if (reg_store_tag(o->store, &top, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < o->n_platforms; i++) {
        char ps[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&plats[i], ps, sizeof(ps));
        _cleanup_free_ char *pn = mar_xasprintf("%s@%s", o->name, ps);
        reg_store_ref r = {.name = pn,
                           .media_type = OCI_MT_MANIFEST,
                           .digest = digests[i],
                           .size = sizes[i],
                           .has_platform = true,
                           .platform = plats[i]};
        if (reg_store_tag(o->store, &r, err) < 0) {
            return -mar_err_code(*err);
        }
    }
    return 0;
}

void bld_result_release(bld_result *r)
{
    free(r->manifests);
    free(r->platforms);
    memset(r, 0, sizeof(*r));
}

/* ---- the build ----------------------------------------------------------------------------- */

MAR_MUST_USE static int make_work(reg_store *s, char **ret_path, char **ret_rel, mar_err **err)
{
    int sfd = reg_store_dirfd(s);
    if (mkdirat(sfd, "containers", 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/containers'", reg_store_path(s));
    }
    static const char hex[] = "0123456789abcdef";
    char id[13];
    for (size_t i = 0; i < 12; i++) {
        id[i] = hex[mar_random_below(16)];
    }
    id[12] = '\0';
    char *rel = mar_xasprintf("containers/build-%s", id);
    _cleanup_free_ char *empty = mar_xasprintf("%s/empty", rel);
    if (mkdirat(sfd, rel, 0700) < 0 || mkdirat(sfd, empty, 0755) < 0) {
        int e = errno;
        free(rel);
        return mar_err_set(err, MAR_EIO, e, "cannot create a work directory in '%s'",
                           reg_store_path(s));
    }
    *ret_rel = rel;
    *ret_path = mar_xasprintf("%s/%s", reg_store_path(s), rel);
    return 0;
}

static void remove_work(reg_store *s, const char *rel)
{
    mar_err *e = NULL;
    if (reg_store_trash(s, rel, &e) == 0) {
        return; /* deleted in the background (docs/internals/build.md §3) */
    }
    mar_err_free(e);
    e = NULL;
    _cleanup_close_ int cfd =
            openat(reg_store_dirfd(s), "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfd >= 0 && oci_remove_at(cfd, strchr(rel, '/') + 1, &e) < 0) {
        mar_diag_warn("cannot remove '%s/%s': %s", reg_store_path(s), rel, e->msg);
        mar_err_free(e);
    }
}

MAR_MUST_USE static int read_ignore(int ctxfd, const char *context, bld_ignore **ret, mar_err **err)
{
    *ret = NULL;
    _cleanup_buf_ mar_buf b = MAR_BUF_INIT(BLD_CAP_DOCKERIGNORE);
    mar_err *e = NULL;
    if (mar_in_root_read(ctxfd, ".dockerignore", BLD_CAP_DOCKERIGNORE, &b, &e) < 0) {
        bool missing = mar_err_code(e) == MAR_ENOTFOUND;
        if (missing) {
            mar_err_free(e);
            return 0;
        }
        *err = e;
        return mar_err_wrap(err, "%s/.dockerignore", context);
    }
    return bld_ignore_parse(b.data, b.len, ".dockerignore", ret, err);
}

/* A stage nothing of which varies with the target platform (FROM --platform=$BUILDPLATFORM
 * and no TARGET* in it or what it needs; docs/internals/dockerfile.md §7) is built for the first
 * platform only and its result shared, as BuildKit shares it. */
void bld__share_stage(bld__ctx *c, const bld__ctx *first, size_t i)
{
    bld__stage *st = &c->stages[i];
    bld__image_copy(&first->stages[i].img, &st->img);
    st->scope = bld_scope_stage(c->global, first->stages[i].scope);
    st->done = true;
    const bld_hooks *h = &c->o->hooks;
    if (h->step) {
        char prefix[OCI_PLATFORM_STR_MAX + 96];
        snprintf(prefix, sizeof(prefix), "[%s %s]", c->target_str, st->name);
        _cleanup_free_ char *text = mar_xasprintf("shared with %s", first->target_str);
        h->step(h->ud, prefix, text);
    }
}

MAR_MUST_USE static int build_platform(bld__ctx *c, const bld__ctx *first, mar_err **err)
{
    _cleanup_free_ reg_store_image *bases = mar_xcalloc(c->n_stages + 1, sizeof(*bases));
    for (size_t i = 0; i < c->n_stages && first != c; i++) {
        c->stages[i].shared = c->stages[i].needed && c->graph->nodes[i].target_independent &&
                              first->stages[i].done;
    }
    int rc = bld__resolve_images(c, bases, err);
    for (size_t i = 0; rc == 0 && i < c->n_stages; i++) {
        if (c->stages[i].shared) {
            bld__share_stage(c, first, i);
        } else if (c->stages[i].needed) {
            rc = bld__build_stage(c, i, &bases[i], err);
        }
    }
    for (size_t i = 0; i < c->n_stages; i++) {
        if (bases[i].manifest || bases[i].name) {
            reg_store_image_release(&bases[i]);
        }
    }
    return rc;
}

static size_t final_stage(const bld_dockerfile *df, const char *target)
{
    for (size_t i = 0; target && i < df->n_stages; i++) {
        if (df->stages[i].name && mar_str_caseeq(df->stages[i].name, target)) {
            return i;
        }
    }
    return df->n_stages - 1;
}

int bld_build(const bld_opts *o, bld_result *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_dockerfile_ bld_dockerfile *df = NULL;
    if (bld_dockerfile_parse(o->dockerfile_text, o->dockerfile_len, o->dockerfile_name, &df, err) <
        0) {
        return -mar_err_code(*err);
    }
    if (df->n_stages == 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s: no FROM instruction", o->dockerfile_name);
    }
    _cleanup_close_ int ctxfd = mar_root_open(o->context, err);
    if (ctxfd < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_ignore_ bld_ignore *ignore = NULL;
    if (read_ignore(ctxfd, o->context, &ignore, err) < 0) {
        return -mar_err_code(*err);
    }
    size_t np = o->n_platforms;
    bld__ctx *cs = mar_xcalloc(np + 1, sizeof(*cs));
    int rc = 0;
    /* Everything that can be refused is refused for every platform before anything runs. */
    for (size_t p = 0; p < np && rc == 0; p++) {
        rc = bld__ctx_init(&cs[p], o, df, p, err);
        if (rc == 0) {
            bool *needed = mar_xcalloc(df->n_stages + 1, sizeof(*needed));
            for (size_t i = 0; i < df->n_stages; i++) {
                needed[i] = cs[p].stages[i].needed;
            }
            rc = bld__check_dockerfile(df, ctxfd, needed, err);
            free(needed);
        }
        if (rc == 0) {
            rc = plan(&cs[p], err);
        }
    }
    char *work = NULL, *work_rel = NULL;
    if (rc == 0) {
        rc = make_work(o->store, &work, &work_rel, err);
    }
    mar_digest *digests = mar_xcalloc(np + 1, sizeof(*digests));
    int64_t *sizes = mar_xcalloc(np + 1, sizeof(*sizes));
    oci_platform *plats = mar_xcalloc(np + 1, sizeof(*plats));
    size_t fin = final_stage(df, o->target);
    for (size_t p = 0; p < np; p++) {
        cs[p].ignore = ignore;
        cs[p].context_fd = ctxfd;
        cs[p].work = work;
        cs[p].work_rel = work_rel;
    }
    /* Threads pay off with more than one stage to build (docs/internals/build.md §12). */
    size_t n_needed = 0;
    for (size_t i = 0; rc == 0 && i < df->n_stages; i++) {
        n_needed += cs[0].stages[i].needed;
    }
    bool par = rc == 0 && o->jobs != 1 && (np > 1 || n_needed > 1);
    if (par) {
        rc = bld__build_parallel(cs, np, fin, plats, digests, sizes, err);
    }
    for (size_t p = 0; p < np && rc == 0 && !par; p++) {
        bld__ctx *c = &cs[p];
        rc = build_platform(c, &cs[0], err);
        if (rc == 0) {
            bld__stage_platform(c, fin, &plats[p]);
            rc = bld__gate(c, &c->stages[fin].img, &plats[p], err);
        }
        if (rc == 0) {
            rc = bld__write_image(c, &c->stages[fin].img, &plats[p], &digests[p], &sizes[p], err);
        }
    }
    if (rc == 0) {
        rc = tag(o, digests, sizes, plats, ret, err);
    }
    if (rc == 0) {
        ret->manifests = TAKE_PTR(digests);
        ret->platforms = TAKE_PTR(plats);
        ret->n = np;
    }
    for (size_t p = 0; p < np; p++) {
        vm_ctd_free(cs[p].ctd);
        bld__ctx_release(&cs[p]);
    }
    free(cs);
    free(digests);
    free(sizes);
    free(plats);
    if (work_rel) {
        remove_work(o->store, work_rel);
    }
    free(work);
    free(work_rel);
    return rc < 0 ? -mar_err_code(*err) : 0;
}
