/* mar audit: what every image of a project does on a target machine — by default a Lima/colima
 * VM on an Apple Silicon Mac (vz + Rosetta) — and what to change (docs/mar-audit.1.md).
 *
 * Each distinct reference is resolved once, all concurrently on one registry client (one token
 * per registry and scope, tags resolved with HEAD); the planner gives the verdict per image and
 * platform pin; images that do not run natively get their repository's tags listed and up to
 * three newer tags of the same release line checked for a native variant. */
#include "cli-internal.h"

#include <ctype.h>
#include <string.h>

#define ALT_CANDIDATES 3

static void on_image(reg_client *c, reg_image *img, void *ud)
{
    (void)c;
    *(reg_image **)ud = img;
}

static cmd_audit_image *find_image(cmd_audit_run *a, const char *name, const char *pin)
{
    for (size_t i = 0; i < a->n_images; i++) {
        cmd_audit_image *im = &a->images[i];
        if (strcmp(im->name, name) == 0 &&
            ((!pin && !im->pin) || (pin && im->pin && strcmp(pin, im->pin) == 0))) {
            return im;
        }
    }
    return NULL;
}

/* A tag as a version: "v1.2.3-alpine" -> {1,2,3}, suffix "-alpine". */
typedef struct version {
    int64_t n[4];
    size_t k;
    char suffix[64];
} version;

static bool parse_version(const char *tag, version *v)
{
    memset(v, 0, sizeof(*v));
    const char *p = tag[0] == 'v' ? tag + 1 : tag;
    while (v->k < 4 && isdigit((unsigned char)*p)) {
        int64_t x = 0;
        while (isdigit((unsigned char)*p) && x < 100000000) {
            x = x * 10 + (*p++ - '0');
        }
        v->n[v->k++] = x;
        if (*p != '.') {
            break;
        }
        p++;
    }
    snprintf(v->suffix, sizeof(v->suffix), "%s", p);
    return v->k > 0;
}

static int cmp_version(const version *a, const version *b)
{
    for (size_t i = 0; i < 4; i++) {
        if (a->n[i] != b->n[i]) {
            return a->n[i] < b->n[i] ? -1 : 1;
        }
    }
    return 0;
}

/* Newer tags of the same release line: the same major version and the same suffix (a variant
 * such as -alpine stays what it is), closest first. */
static void candidates(const cmd_audit_image *im, const mar_strv *tags, mar_strv *out)
{
    version cur;
    if (!im->ref.tag || !parse_version(im->ref.tag, &cur)) {
        return;
    }
    version best[ALT_CANDIDATES];
    char *names[ALT_CANDIDATES] = {0};
    size_t n = 0;
    for (size_t i = 0; i < tags->n; i++) {
        version v;
        if (!parse_version(tags->v[i], &v) || v.n[0] != cur.n[0] ||
            strcmp(v.suffix, cur.suffix) != 0 || cmp_version(&v, &cur) <= 0) {
            continue;
        }
        /* Insertion into the few closest. */
        size_t pos = n;
        while (pos > 0 && cmp_version(&v, &best[pos - 1]) < 0) {
            pos--;
        }
        if (pos >= ALT_CANDIDATES) {
            continue;
        }
        if (n == ALT_CANDIDATES) {
            free(names[n - 1]);
            n--;
        }
        memmove(&best[pos + 1], &best[pos], (n - pos) * sizeof(best[0]));
        memmove(&names[pos + 1], &names[pos], (n - pos) * sizeof(names[0]));
        best[pos] = v;
        names[pos] = mar_xstrdup(tags->v[i]);
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        mar_strv_push_take(out, names[i]);
    }
}

static void on_tags(reg_client *c, int rc, const mar_strv *tags, mar_err *err, void *ud)
{
    (void)c;
    cmd_audit_image *im = ud;
    if (rc < 0) {
        mar_debug("no tag list for '%s': %s", im->name, err->msg);
        mar_err_free(err);
        return;
    }
    candidates(im, tags, &im->alt_tags);
}

typedef struct alt_ctx {
    cmd_audit_image *im;
    size_t k;
} alt_ctx;

static void on_alt(reg_client *c, reg_image *img, void *ud)
{
    (void)c;
    alt_ctx *x = ud;
    x->im->alt_imgs[x->k] = img;
    free(x);
}

/* The verdict of one image (and pin) on the target. */
static void judge(cmd_audit_run *a, cmd_audit_image *im)
{
    if (im->error[0]) {
        im->verdict = "error";
        snprintf(im->reason, sizeof(im->reason), "%s", im->error);
        return;
    }
    const reg_image *img = im->img;
    const cmd_report *r = &im->report;
    bool any_linux = false;
    for (size_t i = 0; i < r->n_rows; i++) {
        const cmd_row *row = &r->rows[i];
        const oci_platform *p = row->has_platform ? &row->platform : &row->config;
        any_linux = any_linux || strcmp(p->os, "linux") == 0;
    }
    if (!any_linux) {
        im->verdict = "no-linux-image";
        snprintf(im->reason, sizeof(im->reason), "no linux entry");
        return;
    }
    /* The row that would run: containerd's choice for the target (or the pin); without one, the
     * best the target can still execute, under Rosetta before QEMU. */
    const cmd_row *chosen = NULL;
    for (size_t i = 0; i < r->n_rows; i++) {
        if (r->rows[i].selected) {
            chosen = &r->rows[i];
        }
    }
    if (!chosen && im->pin) {
        im->verdict = "error";
        snprintf(im->reason, sizeof(im->reason), "pinned to %s, which the image does not offer",
                 im->pin);
        return;
    }
    for (int pass = 0; !chosen && pass < 3; pass++) {
        for (size_t i = 0; i < r->n_rows && !chosen; i++) {
            const vm_verdict *v = &r->rows[i].verdict;
            if (!cmd_row_ok(&r->rows[i])) {
                continue;
            }
            if ((pass == 0 && v->mode == VM_RUN_EMULATED && v->emu == VM_EMU_ROSETTA) ||
                (pass == 1 && v->mode == VM_RUN_EMULATED) || pass == 2) {
                chosen = &r->rows[i];
            }
        }
    }
    if (!chosen) {
        im->verdict = "error";
        snprintf(im->reason, sizeof(im->reason), "no readable entry");
        return;
    }
    mar_strlcpy(im->platform, chosen->published, sizeof(im->platform));
    im->native = chosen->verdict.mode == VM_RUN_NATIVE;
    if (!chosen->config_matches) {
        char cp[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&chosen->config, cp, sizeof(cp));
        im->verdict = "mislabeled";
        snprintf(im->reason, sizeof(im->reason), "the %s entry's config says %s", chosen->published,
                 cp);
    } else if (chosen->elf && strcmp(chosen->elf->verdict, "mislabeled") == 0) {
        im->verdict = "mislabeled";
        snprintf(im->reason, sizeof(im->reason), "labeled %s but its binaries are %s",
                 chosen->published, chosen->elf->majority_arch);
    } else if (chosen->verdict.mode == VM_RUN_NATIVE) {
        im->verdict = "native";
    } else if (chosen->verdict.mode == VM_RUN_EMULATED) {
        im->verdict = chosen->verdict.emu == VM_EMU_ROSETTA ? "rosetta" : "qemu";
        snprintf(im->reason, sizeof(im->reason), "%s", chosen->verdict.reason);
    } else {
        im->verdict = "will-fail";
        snprintf(im->reason, sizeof(im->reason), "%s", chosen->verdict.reason);
    }
    /* Is there a native entry the pin passes over? */
    for (size_t i = 0; i < r->n_rows; i++) {
        if (r->rows[i].verdict.mode == VM_RUN_NATIVE && cmd_row_ok(&r->rows[i])) {
            im->has_native = true;
            mar_strlcpy(im->native_platform, r->rows[i].published, sizeof(im->native_platform));
        }
    }
    (void)img;
    (void)a;
}

static void recommend(cmd_audit_run *a, cmd_audit_image *im)
{
    char tp[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&a->target.platform, tp, sizeof(tp));
    if (im->pin && im->has_native && !im->native) {
        for (size_t u = 0; u < a->in.n; u++) {
            const bld_input_use *use = &a->in.v[u];
            if (use->pin && strcmp(use->pin, im->pin) == 0 && im == a->use_image[u]) {
                mar_strv_push_take(&im->recs,
                                   mar_xasprintf("%s:%zu: drop `%s%s` from %s: %s is now published",
                                                 use->file, use->pin_line,
                                                 use->kind == BLD_INPUT_DOCKERFILE ? "--platform="
                                                                                   : "platform: ",
                                                 im->pin, use->context, im->native_platform));
            }
        }
    }
    if (strcmp(im->verdict, "mislabeled") == 0) {
        mar_strv_push_take(&im->recs, mar_xasprintf("rebuild %s: its %s entry is not what it says "
                                                    "(see `mar inspect --deep %s`)",
                                                    im->name, im->platform, im->name));
        return;
    }
    if (im->native || strcmp(im->verdict, "error") == 0 ||
        strcmp(im->verdict, "no-linux-image") == 0 || (im->pin && im->has_native)) {
        return;
    }
    for (size_t k = 0; k < im->alt_tags.n; k++) {
        const reg_image *alt = im->alt_imgs[k];
        if (!alt || alt->rc < 0 || !alt->root) {
            continue;
        }
        bool native = false;
        for (size_t i = 0; i < alt->root->n_manifests && !native; i++) {
            const oci_descriptor *d = &alt->root->manifests[i];
            oci_matcher m;
            vm_target_matcher(&a->target, &m);
            native = d->has_platform && oci_descriptor_role(d) == OCI_ENTRY_MANIFEST &&
                     oci_matcher_match(&m, &d->platform);
        }
        if (native) {
            mar_strv_push_take(&im->recs,
                               mar_xasprintf("tag %s has no %s variant; tag %s in the same release "
                                             "line has: use %s/%s:%s",
                                             im->ref.tag, tp, im->alt_tags.v[k], im->ref.domain,
                                             im->ref.path, im->alt_tags.v[k]));
            return;
        }
    }
    mar_strv_push_take(&im->recs,
                       mar_xasprintf("build %s for %s too (`docker buildx build --platform "
                                     "linux/amd64,%s ...`)",
                                     im->name, tp, tp));
}

static void audit_release(cmd_audit_run *a)
{
    for (size_t i = 0; i < a->n_images; i++) {
        cmd_audit_image *im = &a->images[i];
        free(im->name);
        free(im->pin);
        oci_ref_release(&im->ref);
        if (im->has_report) {
            cmd_report_release(&im->report);
        }
        reg_image_free(im->img);
        for (size_t k = 0; k < ALT_CANDIDATES; k++) {
            reg_image_free(im->alt_imgs[k]);
        }
        mar_strv_release(&im->alt_tags);
        mar_strv_release(&im->recs);
    }
    free(a->images);
    free(a->use_image);
    bld_inputs_release(&a->in);
}

/* ---- parse ---------------------------------------------------------------------------------- */

/* The command line, parsed; the inputs themselves land in the run. */
typedef struct audit_opts {
    const char *format; /* table, json or markdown */
    const char *html;   /* --html FILE, or NULL */
    bool deep;
    int conns;
    oci_host host;
} audit_opts;

/* One image per distinct reference and platform pin; a reference that does not parse is an
 * image with its error. */
static void collect_images(cmd_audit_run *a)
{
    a->use_image = mar_xcalloc(a->in.n + 1, sizeof(*a->use_image));
    a->images = mar_xcalloc(a->in.n + 1, sizeof(*a->images));
    for (size_t u = 0; u < a->in.n; u++) {
        const bld_input_use *use = &a->in.v[u];
        oci_ref ref;
        mar_err *e = NULL;
        char *name;
        bool bad = oci_ref_parse(use->image, &ref, &e) < 0;
        name = bad ? mar_xstrdup(use->image) : oci_ref_string(&ref);
        cmd_audit_image *im = find_image(a, name, use->pin);
        if (im) {
            free(name);
            if (!bad) {
                oci_ref_release(&ref);
            }
            mar_err_free(e);
        } else {
            im = &a->images[a->n_images++];
            im->name = name;
            im->pin = use->pin ? mar_xstrdup(use->pin) : NULL;
            im->alt_tags = (mar_strv)MAR_STRV_INIT;
            im->recs = (mar_strv)MAR_STRV_INIT;
            if (bad) {
                snprintf(im->error, sizeof(im->error), "%s", e->msg);
                im->error_code = mar_err_code(e);
                mar_err_free(e);
            } else {
                im->ref = ref;
            }
        }
        a->use_image[u] = im;
    }
}

/* Returns 0, or the exit status of a bad command line or unreadable input (already reported). */
static int audit_parse(const cmd_def *def, const cmd_args *args, audit_opts *o, cmd_audit_run *a)
{
    mar_err *err = NULL;
    *o = (audit_opts){.format = cmd_value(args, "format"), .html = cmd_value(args, "html")};
    if (!o->format) {
        o->format = cmd_flag(args, "json") ? "json" : "table";
    }
    if (strcmp(o->format, "table") && strcmp(o->format, "json") && strcmp(o->format, "markdown")) {
        return cmd_usage_error(def, "--format is table, json or markdown, not '%s'", o->format);
    }
    oci_host_detect(&o->host);
    const char *target = cmd_value(args, "target");
    if (vm_target_parse(target ? target : "apple-silicon", &o->host.platform, &a->target, &err) <
        0) {
        return cmd_fail(err);
    }
    for (size_t i = 0; i < args->pos.n; i++) {
        if (bld_inputs_read(args->pos.v[i], &a->in, &err) < 0) {
            return cmd_fail(err);
        }
    }
    collect_images(a);
    o->deep = cmd_flag(args, "deep");
    if (cmd_jobs(args, CMD_MANY_IMAGES_CONNECTIONS, &o->conns, &err) < 0) {
        return cmd_fail(err);
    }
    return 0;
}

/* ---- fetch ---------------------------------------------------------------------------------- */

/* Resolves every distinct reference once, all on one client, and builds each image's report for
 * the target (its pin as the requested platform); with --deep, scans the entry that would run
 * (and the rest only when nothing native exists). An image that cannot be resolved gets its
 * error; only a failure of the client itself is returned. */
MAR_MUST_USE static int audit_fetch(const cmd_args *args, const audit_opts *o, reg_client *c,
                                    cmd_audit_run *a, mar_err **err)
{
    /* One fetch per distinct reference, even when several pins share it. */
    for (size_t i = 0; i < a->n_images; i++) {
        cmd_audit_image *im = &a->images[i];
        if (im->error[0]) {
            continue;
        }
        for (size_t k = 0; k < i && !im->shares; k++) {
            if (!a->images[k].error[0] && strcmp(a->images[k].name, im->name) == 0) {
                im->shares = &a->images[k];
            }
        }
        if (im->shares) {
            continue;
        }
        reg_image_fetch(c, &im->ref, REG_IMAGE_CHILDREN | REG_IMAGE_CONFIGS, on_image, &im->img);
    }
    if (reg_client_run(c, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_store_ reg_store *store = o->deep ? cmd_existing_store(args) : NULL;
    for (size_t i = 0; i < a->n_images; i++) {
        cmd_audit_image *im = &a->images[i];
        const reg_image *img = im->shares ? im->shares->img : im->img;
        if (im->error[0]) {
            continue;
        }
        if (!img || img->rc < 0) {
            im->error_code = img && img->err ? mar_err_code(img->err) : MAR_EFAIL;
            snprintf(im->error, sizeof(im->error), "%s",
                     img && img->err ? img->err->msg : "no result");
            continue;
        }
        oci_platform pin;
        bool has_pin = im->pin && oci_platform_parse(im->pin, &o->host.platform, &pin, NULL) == 0;
        cmd_report_build(img, &a->target, has_pin ? &pin : NULL, &im->report);
        im->has_report = true;
        if (!o->deep) {
            continue;
        }
        for (size_t k = 0; k < im->report.n_rows; k++) {
            cmd_row *row = &im->report.rows[k];
            row->deep = !row->err && (row->selected || row->verdict.mode != VM_RUN_UNAVAILABLE);
        }
        int rc = cmd_deep_scan(c, store, img, &im->report, 8, err);
        if (rc < 0) {
            return rc;
        }
        cmd_report_add_deep(&im->report, &a->target);
    }
    return 0;
}

/* Newer tags of the images that do not run natively: list, then fetch a few of them. */
MAR_MUST_USE static int audit_fetch_alternatives(reg_client *c, cmd_audit_run *a, mar_err **err)
{
    for (size_t i = 0; i < a->n_images; i++) {
        cmd_audit_image *im = &a->images[i];
        if (!im->error[0] && !im->native && !im->shares && im->ref.tag) {
            reg_tags_list(c, &im->ref, on_tags, im);
        }
    }
    if (reg_client_run(c, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < a->n_images; i++) {
        cmd_audit_image *im = &a->images[i];
        for (size_t k = 0; k < im->alt_tags.n && k < ALT_CANDIDATES; k++) {
            oci_ref alt = {.domain = im->ref.domain,
                           .path = im->ref.path,
                           .tag = im->alt_tags.v[k],
                           .api_host = im->ref.api_host};
            alt_ctx *x = mar_xcalloc(1, sizeof(*x));
            x->im = im;
            x->k = k;
            reg_image_fetch(c, &alt, 0, on_alt, x);
        }
    }
    if (reg_client_run(c, err) < 0) {
        return -mar_err_code(*err);
    }
    return 0;
}

/* ---- judge ---------------------------------------------------------------------------------- */

static void audit_judge(cmd_audit_run *a)
{
    for (size_t i = 0; i < a->n_images; i++) {
        judge(a, &a->images[i]);
    }
}

static void audit_recommend(cmd_audit_run *a)
{
    for (size_t i = 0; i < a->n_images; i++) {
        recommend(a, &a->images[i]);
    }
}

/* ---- render --------------------------------------------------------------------------------- */

MAR_MUST_USE static int audit_render(const audit_opts *o, reg_client *c, cmd_audit_run *a,
                                     mar_err **err)
{
    reg_stats st;
    reg_client_stats(c, &st);
    a->requests = st.requests;
    return cmd_audit_output(a, o->format, o->html, err);
}

/* The verdicts decide which images need alternatives, so a second fetch follows the judging. */
int cmd_audit(const cmd_def *def, cmd_args *args)
{
    audit_opts o;
    cmd_audit_run a = {0};
    int status = audit_parse(def, args, &o, &a);
    if (status) {
        audit_release(&a);
        return status;
    }
    mar_err *err = NULL;
    _cleanup_client_ reg_client *c = NULL;
    if (cmd_registry_client(args, o.conns, &c, &err) < 0) {
        audit_release(&a);
        return cmd_fail(err);
    }
    int rc = audit_fetch(args, &o, c, &a, &err);
    if (rc == 0) {
        audit_judge(&a);
        rc = audit_fetch_alternatives(c, &a, &err);
    }
    if (rc == 0) {
        audit_recommend(&a);
        rc = audit_render(&o, c, &a, &err);
    }
    audit_release(&a);
    return rc < 0 ? cmd_fail(err) : 0;
}
