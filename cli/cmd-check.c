/* mar check: a CI gate over an image matrix (docs/mar-check.1.md). Every image is resolved
 * concurrently on one registry client (index, manifests, configs); for every required platform
 * the image must publish an entry equal to it after containerd's normalization (arm64 = arm64/v8,
 * arm = arm/v7), whose config says the same platform, and with --deep whose binaries do too.
 * Attestation manifests never count. Output: one line per image and platform on stdout, or JSON;
 * JUnit XML to a file; GitHub workflow annotations when GITHUB_ACTIONS=true.
 * Exit: 0 all satisfied, 1 something missing or mislabeled, an error status (3-9) when an image
 * could not be checked at all (the error wins), 2 usage. */
#include "cli-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

typedef enum { CK_OK, CK_MISSING, CK_MISLABELED, CK_ERROR } ck_status;

static const char *const ck_names[] = {"ok", "missing", "mislabeled", "error"};

typedef struct ck_result {
    size_t image;
    char platform[OCI_PLATFORM_ALL_STR_MAX]; /* required */
    char entry[OCI_PLATFORM_ALL_STR_MAX];    /* the published entry that satisfied it */
    mar_digest digest;
    bool has_digest;
    const mar_digest *nested; /* the nested index listing that entry, or NULL */
    ck_status status;
    char reason[1024];
} ck_result;

typedef struct ck_image {
    const char *name;
    reg_image *img;
    cmd_report report; /* for --deep */
    bool has_report;
    int error_code;
    char error[512];
} ck_image;

typedef struct ck_run {
    ck_image *images;
    size_t n_images;
    oci_platform *required;
    size_t n_required;
    ck_result *results;
    size_t n_results;
} ck_run;

static void on_image(reg_client *c, reg_image *img, void *ud)
{
    (void)c;
    ((ck_image *)ud)->img = img;
}

/* Image references from -f FILE: one per line, blank lines and # comments skipped. */
MAR_MUST_USE static int read_list(const char *path, mar_strv *out, mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(8u << 20);
    int rc = strcmp(path, "-") == 0 ? mar_read_stream(STDIN_FILENO, "stdin", 8u << 20, &b, err)
                                    : mar_read_file_at(AT_FDCWD, path, 8u << 20, &b, err);
    if (rc < 0) {
        return mar_err_wrap(err, "-f");
    }
    for (char *l = b.data, *next; l && *l; l = next) {
        next = strchr(l, '\n');
        if (next) {
            *next++ = '\0';
        }
        char *hash = strchr(l, '#');
        if (hash) {
            *hash = '\0';
        }
        while (*l == ' ' || *l == '\t') {
            l++;
        }
        size_t n = strlen(l);
        while (n && (l[n - 1] == ' ' || l[n - 1] == '\t' || l[n - 1] == '\r')) {
            l[--n] = '\0';
        }
        if (*l) {
            mar_strv_push(out, l);
        }
    }
    mar_buf_release(&b);
    return 0;
}

/* An entry that can satisfy a requirement: an image manifest, at any nesting depth
 * (docs/internals/platforms.md §7); attestations, ignored and unknown entries and nested indexes
 * themselves never do. */
static bool candidate(const reg_image_entry *e)
{
    return e->role == OCI_ENTRY_MANIFEST && !e->not_read;
}

static void list_entries(const reg_image *img, char *buf, size_t n)
{
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < img->n_entries; i++) {
        const reg_image_entry *e = &img->entries[i];
        if (!candidate(e) || !e->desc || !e->desc->has_platform) {
            continue;
        }
        char ps[OCI_PLATFORM_ALL_STR_MAX];
        oci_platform_format_all(&e->desc->platform, ps, sizeof(ps));
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", ps);
        if (w < 0 || (size_t)w >= n - used) {
            break;
        }
        used += (size_t)w;
    }
}

/* The report row of an entry (for its --deep findings). */
static const cmd_row *row_of(const ck_image *ci, size_t entry)
{
    for (size_t i = 0; ci->has_report && i < ci->report.n_rows; i++) {
        if (ci->report.rows[i].entry == entry) {
            return &ci->report.rows[i];
        }
    }
    return NULL;
}

static void check_one(const ck_run *run, size_t ii, const oci_platform *want, bool deep,
                      ck_result *r)
{
    const ck_image *ci = &run->images[ii];
    const reg_image *img = ci->img;
    memset(r, 0, sizeof(*r));
    r->image = ii;
    oci_platform_format_all(want, r->platform, sizeof(r->platform));
    if (ci->error_code) {
        r->status = CK_ERROR;
        snprintf(r->reason, sizeof(r->reason), "%s", ci->error);
        return;
    }
    const reg_image_entry *hit = NULL;
    for (size_t i = 0; i < img->n_entries && !hit; i++) {
        const reg_image_entry *e = &img->entries[i];
        if (!candidate(e)) {
            continue;
        }
        /* A single manifest is what its config says; an index entry what it publishes. */
        const oci_platform *have = e->desc && e->desc->has_platform ? &e->desc->platform
                                   : e->config                      ? &e->config->platform
                                                                    : NULL;
        if (have && oci_platform_same(have, want)) {
            hit = e;
        }
    }
    if (!hit) {
        /* Sized so that the reason below always fits its 1024 bytes (a platform string is at
         * most OCI_PLATFORM_ALL_STR_MAX); list_entries stops at the last whole entry. */
        char has[1024 - OCI_PLATFORM_ALL_STR_MAX - 32];
        list_entries(img, has, sizeof(has));
        r->status = CK_MISSING;
        snprintf(r->reason, sizeof(r->reason), "no %s entry (it has: %s)", r->platform,
                 *has ? has
                      : (img->n_entries == 1 && img->entries[0].config ? "a single image"
                                                                       : "nothing"));
        if (img->n_entries == 1 && !img->entries[0].desc && img->entries[0].config) {
            char cp[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&img->entries[0].config->platform, cp, sizeof(cp));
            snprintf(r->reason, sizeof(r->reason), "a single %s image, not %s", cp, r->platform);
        }
        return;
    }
    size_t idx = (size_t)(hit - img->entries);
    if (hit->desc && hit->desc->has_platform) {
        oci_platform_format_all(&hit->desc->platform, r->entry, sizeof(r->entry));
        r->digest = hit->desc->digest;
        r->has_digest = true;
        if (hit->parent != SIZE_MAX) {
            r->nested = &img->entries[hit->parent].desc->digest;
        }
    } else {
        mar_strlcpy(r->entry, r->platform, sizeof(r->entry));
        r->digest = img->raw.digest;
        r->has_digest = true;
    }
    if (hit->err) {
        r->status = CK_ERROR;
        snprintf(r->reason, sizeof(r->reason), "%s", hit->err->msg);
        return;
    }
    if (hit->desc && hit->desc->has_platform && hit->config &&
        !oci_platform_same(&hit->desc->platform, &hit->config->platform)) {
        char cp[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&hit->config->platform, cp, sizeof(cp));
        r->status = CK_MISLABELED;
        snprintf(r->reason, sizeof(r->reason), "the %s entry's config says %s", r->entry, cp);
        return;
    }
    const cmd_row *row = deep ? row_of(ci, idx) : NULL;
    if (row && row->elf_err) {
        r->status = CK_ERROR;
        snprintf(r->reason, sizeof(r->reason), "cannot read its layers: %s", row->elf_err->msg);
        return;
    }
    if (row && row->elf && strcmp(row->elf->verdict, "mislabeled") == 0) {
        r->status = CK_MISLABELED;
        snprintf(r->reason, sizeof(r->reason),
                 "labeled %s but %zu of %zu ELF files are %s (--deep)", r->entry,
                 row->elf->n_foreign, row->elf->n_elf, row->elf->majority_arch);
        return;
    }
    r->status = CK_OK;
}

/* XML text: &, <, >, " escaped; control characters other than tab and newline dropped. */
static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n') {
                fputc(*s, f);
            }
        }
    }
}

MAR_MUST_USE static int write_junit(const ck_run *run, const char *path, mar_err **err)
{
    char *tmp;
    FILE *f = cmd_report_open(path, &tmp, err);
    if (!f) {
        return -MAR_EIO;
    }
    size_t failures = 0, errors = 0;
    for (size_t i = 0; i < run->n_results; i++) {
        failures += run->results[i].status == CK_MISSING || run->results[i].status == CK_MISLABELED;
        errors += run->results[i].status == CK_ERROR;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"mar check\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\">\n",
            run->n_results, failures, errors);
    for (size_t ii = 0; ii < run->n_images; ii++) {
        size_t t = 0, fl = 0, er = 0;
        for (size_t i = 0; i < run->n_results; i++) {
            if (run->results[i].image == ii) {
                t++;
                fl += run->results[i].status == CK_MISSING ||
                      run->results[i].status == CK_MISLABELED;
                er += run->results[i].status == CK_ERROR;
            }
        }
        fputs("  <testsuite name=\"", f);
        xml_text(f, run->images[ii].name);
        fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\">\n", t, fl, er);
        for (size_t i = 0; i < run->n_results; i++) {
            const ck_result *r = &run->results[i];
            if (r->image != ii) {
                continue;
            }
            fputs("    <testcase classname=\"", f);
            xml_text(f, run->images[ii].name);
            fputs("\" name=\"", f);
            xml_text(f, r->platform);
            if (r->status == CK_OK) {
                fputs("\"/>\n", f);
                continue;
            }
            const char *tag = r->status == CK_ERROR ? "error" : "failure";
            fprintf(f, "\">\n      <%s type=\"%s\" message=\"", tag, ck_names[r->status]);
            xml_text(f, r->reason);
            fputs("\">", f);
            xml_text(f, r->reason);
            fprintf(f, "</%s>\n    </testcase>\n", tag);
        }
        fputs("  </testsuite>\n", f);
    }
    fputs("</testsuites>\n", f);
    return cmd_report_commit(f, path, tmp, err);
}

/* GitHub workflow command data escaping (%, CR, LF). */
static void gh_escape(const char *s, char *out, size_t n)
{
    size_t o = 0;
    for (; *s && o + 4 < n; s++) {
        const char *rep = *s == '%' ? "%25" : *s == '\r' ? "%0D" : *s == '\n' ? "%0A" : NULL;
        if (rep) {
            memcpy(out + o, rep, 3);
            o += 3;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

static json_t *results_json(const ck_run *run)
{
    json_t *imgs = json_array();
    size_t ok = 0, failed = 0, errors = 0;
    for (size_t ii = 0; ii < run->n_images; ii++) {
        const ck_image *ci = &run->images[ii];
        json_t *res = json_array();
        for (size_t i = 0; i < run->n_results; i++) {
            const ck_result *r = &run->results[i];
            if (r->image != ii) {
                continue;
            }
            ok += r->status == CK_OK;
            failed += r->status == CK_MISSING || r->status == CK_MISLABELED;
            errors += r->status == CK_ERROR;
            json_t *o =
                    json_pack("{s:s, s:s}", "platform", r->platform, "status", ck_names[r->status]);
            if (r->entry[0]) {
                json_object_set_new(o, "entry", json_string(r->entry));
            }
            if (r->has_digest) {
                json_object_set_new(o, "digest", json_string(r->digest.str));
            }
            if (r->nested) {
                json_object_set_new(o, "index", json_string(r->nested->str));
            }
            if (r->reason[0]) {
                json_object_set_new(o, "reason", json_string(r->reason));
            }
            json_array_append_new(res, o);
        }
        json_t *o = json_pack("{s:s, s:o}", "image", ci->name, "results", res);
        if (ci->img && ci->img->rc == 0) {
            json_object_set_new(o, "digest", json_string(ci->img->raw.digest.str));
        }
        if (ci->error_code) {
            json_object_set_new(
                    o, "error",
                    json_pack("{s:s, s:i}", "message", ci->error, "status", ci->error_code));
        }
        json_array_append_new(imgs, o);
    }
    json_t *plats = json_array();
    for (size_t i = 0; i < run->n_required; i++) {
        char ps[OCI_PLATFORM_ALL_STR_MAX];
        oci_platform_format_all(&run->required[i], ps, sizeof(ps));
        json_array_append_new(plats, json_string(ps));
    }
    return json_pack("{s:o, s:o, s:{s:I, s:I, s:I, s:I}}", "platforms", plats, "images", imgs,
                     "summary", "checked", (json_int_t)run->n_results, "ok", (json_int_t)ok,
                     "failed", (json_int_t)failed, "errors", (json_int_t)errors);
}

/* ---- parse ---------------------------------------------------------------------------------- */

/* The command line, parsed. */
typedef struct ck_opts {
    mar_strv names; /* the images: arguments, then the lines of every -f FILE */
    oci_platform *required;
    size_t n_required;
    bool deep;
    bool json;
    bool quiet;
    bool github; /* GITHUB_ACTIONS=true: workflow annotations on stdout */
    const char *junit;
    int conns;
} ck_opts;

static void opts_release(ck_opts *o)
{
    mar_strv_release(&o->names);
    free(o->required);
}

/* Returns 0, or the exit status of a bad command line (already reported). */
static int check_parse(const cmd_def *def, const cmd_args *args, ck_opts *o)
{
    mar_err *err = NULL;
    *o = (ck_opts){.names = MAR_STRV_INIT};
    const char *plist = cmd_value(args, "platforms");
    if (!plist || !*plist) {
        return cmd_usage_error(def, "check needs --platforms P[,P...]");
    }
    for (size_t i = 0; i < args->pos.n; i++) {
        mar_strv_push(&o->names, args->pos.v[i]);
    }
    const mar_strv *files = cmd_list(args, "file");
    for (size_t i = 0; files && i < files->n; i++) {
        if (read_list(files->v[i], &o->names, &err) < 0) {
            return cmd_fail(err);
        }
    }
    if (o->names.n == 0) {
        return cmd_usage_error(def, "check needs images (arguments or -f FILE)");
    }
    oci_host host;
    oci_host_detect(&host);
    _cleanup_free_ char *pl = mar_xstrdup(plist);
    for (char *s = pl, *next; s && *s; s = next) {
        next = strchr(s, ',');
        if (next) {
            *next++ = '\0';
        }
        o->required = mar_xrealloc(o->required, (o->n_required + 1) * sizeof(*o->required));
        if (oci_platform_parse(s, &host.platform, &o->required[o->n_required], &err) < 0) {
            return cmd_fail(err);
        }
        o->n_required++;
    }
    o->deep = cmd_flag(args, "deep");
    o->json = cmd_flag(args, "json");
    o->quiet = cmd_flag(args, "quiet");
    o->github = getenv("GITHUB_ACTIONS") && strcmp(getenv("GITHUB_ACTIONS"), "true") == 0;
    o->junit = cmd_value(args, "junit");
    if (cmd_jobs(args, CMD_MANY_IMAGES_CONNECTIONS, &o->conns, &err) < 0) {
        return cmd_fail(err);
    }
    return 0;
}

/* ---- fetch ---------------------------------------------------------------------------------- */

/* Resolves every image on one client (index, manifests, configs), then with --deep scans the
 * layers of the required entries only. An image that cannot be resolved gets its error; only a
 * failure of the client itself is returned. */
MAR_MUST_USE static int check_fetch(const cmd_args *args, const ck_opts *o, reg_client *c,
                                    ck_run *run, oci_ref *refs, mar_err **err)
{
    for (size_t i = 0; i < run->n_images; i++) {
        ck_image *ci = &run->images[i];
        mar_err *e = NULL;
        if (oci_ref_parse(ci->name, &refs[i], &e) < 0) {
            ci->error_code = mar_err_code(e);
            snprintf(ci->error, sizeof(ci->error), "%s", e->msg);
            mar_err_free(e);
            continue;
        }
        reg_image_fetch(c, &refs[i], REG_IMAGE_CHILDREN | REG_IMAGE_CONFIGS, on_image, ci);
    }
    if (reg_client_run(c, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < run->n_images; i++) {
        ck_image *ci = &run->images[i];
        if (!ci->error_code && (!ci->img || ci->img->rc < 0)) {
            ci->error_code = ci->img && ci->img->err ? mar_err_code(ci->img->err) : MAR_EFAIL;
            snprintf(ci->error, sizeof(ci->error), "%s",
                     ci->img && ci->img->err ? ci->img->err->msg : "no result");
        }
    }
    if (!o->deep) {
        return 0;
    }
    oci_host host;
    oci_host_detect(&host);
    vm_target t;
    vm_target_from_host(&host, &t);
    _cleanup_store_ reg_store *store = cmd_existing_store(args);
    for (size_t i = 0; i < run->n_images; i++) {
        ck_image *ci = &run->images[i];
        if (ci->error_code) {
            continue;
        }
        cmd_report_build(ci->img, &t, NULL, &ci->report);
        ci->has_report = true;
        for (size_t k = 0; k < ci->report.n_rows; k++) {
            cmd_row *row = &ci->report.rows[k];
            const reg_image_entry *e = &ci->img->entries[row->entry];
            const oci_platform *have = e->desc && e->desc->has_platform ? &e->desc->platform
                                       : e->config                      ? &e->config->platform
                                                                        : NULL;
            for (size_t p = 0; have && cmd_row_ok(row) && p < run->n_required; p++) {
                row->deep = row->deep || oci_platform_same(have, &run->required[p]);
            }
        }
        int rc = cmd_deep_scan(c, store, ci->img, &ci->report, 8, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- judge ---------------------------------------------------------------------------------- */

typedef struct ck_summary {
    size_t ok, failed, errors;
    int error_status; /* of the first image that could not be checked, or 0 */
} ck_summary;

/* One result per image and required platform, and their tally. */
static void check_judge(ck_run *run, bool deep, ck_summary *sum)
{
    *sum = (ck_summary){0};
    run->results = mar_xcalloc(run->n_images * run->n_required + 1, sizeof(*run->results));
    for (size_t i = 0; i < run->n_images; i++) {
        for (size_t p = 0; p < run->n_required; p++) {
            check_one(run, i, &run->required[p], deep, &run->results[run->n_results++]);
        }
    }
    for (size_t i = 0; i < run->n_results; i++) {
        const ck_result *r = &run->results[i];
        if (r->status == CK_OK) {
            sum->ok++;
        } else if (r->status == CK_ERROR) {
            sum->errors++;
            if (!sum->error_status) {
                sum->error_status = run->images[r->image].error_code
                                            ? run->images[r->image].error_code
                                            : MAR_EFAIL;
            }
        } else {
            sum->failed++;
        }
    }
}

/* ---- render --------------------------------------------------------------------------------- */

static void print_annotations(const ck_run *run)
{
    for (size_t i = 0; i < run->n_results; i++) {
        const ck_result *r = &run->results[i];
        if (r->status == CK_OK) {
            continue;
        }
        char msg[2400], esc[7220];
        snprintf(msg, sizeof(msg), "%s %s: %s", run->images[r->image].name, r->platform, r->reason);
        gh_escape(cmd_esc(msg), esc, sizeof(esc));
        printf("::error title=mar check::%s\n", esc);
    }
}

static void print_lines(const ck_run *run, bool quiet)
{
    for (size_t i = 0; i < run->n_results; i++) {
        const ck_result *r = &run->results[i];
        const char *name = run->images[r->image].name;
        if (r->status == CK_OK) {
            if (!quiet && r->nested) {
                char nd[32];
                mar_digest_short(r->nested, nd, sizeof(nd));
                printf("ok          %s  %s  (%s in nested index %s)\n", cmd_esc(name),
                       cmd_esc(r->platform), cmd_esc(r->entry), nd);
            } else if (!quiet) {
                printf("ok          %s  %s  (%s)\n", cmd_esc(name), cmd_esc(r->platform),
                       cmd_esc(r->entry));
            }
        } else {
            printf("%-11s %s  %s: %s\n",
                   r->status == CK_MISSING      ? "MISSING"
                   : r->status == CK_MISLABELED ? "MISLABELED"
                                                : "ERROR",
                   cmd_esc(name), cmd_esc(r->platform), cmd_esc(r->reason));
        }
    }
}

/* Annotations, then the JUnit file, then JSON or the lines on stdout, the tally on stderr.
 * Returns the exit status: the first image error, else 1 when anything failed, else 0. */
static int check_render(const ck_opts *o, const ck_run *run, const ck_summary *sum)
{
    mar_err *err = NULL;
    if (o->github) {
        print_annotations(run);
    }
    if (o->junit && write_junit(run, o->junit, &err) < 0) {
        return cmd_fail(err);
    }
    if (o->json) {
        json_t *doc = results_json(run);
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else if (!o->github || !o->quiet) {
        print_lines(run, o->quiet);
    }
    if (!o->quiet) {
        /* After the lines, also when both streams go to one pipe. */
        fflush(stdout);
        fprintf(stderr, "mar: %zu checks: %zu ok, %zu failed, %zu could not be checked\n",
                run->n_results, sum->ok, sum->failed, sum->errors);
    }
    return sum->error_status ? sum->error_status : sum->failed ? 1 : 0;
}

static void run_release(ck_run *run, oci_ref *refs)
{
    for (size_t i = 0; i < run->n_images; i++) {
        if (run->images[i].has_report) {
            cmd_report_release(&run->images[i].report);
        }
        reg_image_free(run->images[i].img);
        oci_ref_release(&refs[i]);
    }
    free(run->images);
    free(run->results);
}

int cmd_check(const cmd_def *def, cmd_args *args)
{
    ck_opts o;
    int status = check_parse(def, args, &o);
    if (status) {
        opts_release(&o);
        return status;
    }
    mar_err *err = NULL;
    _cleanup_client_ reg_client *c = NULL;
    if (cmd_registry_client(args, o.conns, &c, &err) < 0) {
        opts_release(&o);
        return cmd_fail(err);
    }
    ck_run run = {.required = o.required, .n_required = o.n_required};
    run.images = mar_xcalloc(o.names.n, sizeof(*run.images));
    run.n_images = o.names.n;
    for (size_t i = 0; i < o.names.n; i++) {
        run.images[i].name = o.names.v[i];
    }
    oci_ref *refs = mar_xcalloc(o.names.n, sizeof(*refs));
    if (check_fetch(args, &o, c, &run, refs, &err) < 0) {
        status = cmd_fail(err);
    } else {
        ck_summary sum;
        check_judge(&run, o.deep, &sum);
        status = check_render(&o, &run, &sum);
    }
    run_release(&run, refs);
    free(refs);
    opts_release(&o);
    return status;
}
