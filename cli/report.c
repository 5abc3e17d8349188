/* The platform report of an image for a target machine: rows, the entry `mar run` would pick,
 * and the problems found. One structure renders as a table or as JSON. */
#include "cli-internal.h"

#include <string.h>

void cmd_report_problem(cmd_report *r, const char *kind, const char *platform, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = mar_xvasprintf(fmt, ap);
    va_end(ap);
    r->problems = mar_xrealloc(r->problems, (r->n_problems + 1) * sizeof(*r->problems));
    r->problems[r->n_problems++] = (cmd_problem){
            .kind = mar_xstrdup(kind),
            .platform = platform ? mar_xstrdup(platform) : NULL,
            .message = msg,
    };
}

void cmd_report_release(cmd_report *r)
{
    for (size_t i = 0; i < r->n_problems; i++) {
        free(r->problems[i].kind);
        free(r->problems[i].platform);
        free(r->problems[i].message);
    }
    free(r->problems);
    for (size_t i = 0; i < r->n_rows; i++) {
        free(r->rows[i].elf);
        mar_err_free(r->rows[i].elf_err);
    }
    free(r->rows);
    free(r->indexes);
    free(r->reference);
    free(r->media_type);
    memset(r, 0, sizeof(*r));
}

static void set_status(cmd_report *r, int code)
{
    if (!r->status) {
        r->status = code;
    }
}

static void fill_row(cmd_row *row, const reg_image_entry *e, const vm_target *t)
{
    row->size = e->manifest ? oci_manifest_total_size(e->manifest) : -1;
    if (e->config && e->config->has_platform) {
        row->has_config = true;
        row->config = e->config->platform;
    }
    if (row->has_platform && row->has_config) {
        row->config_matches = oci_platform_same(&row->platform, &row->config);
    } else {
        row->config_matches = true;
    }
    row->err = e->err;
    if (row->status == CMD_ROW_UNKNOWN) {
        /* Listed, never chosen (docs/mar.1.md EXIT STATUS). */
        mar_strlcpy(row->normalized, "unknown", sizeof(row->normalized));
        if (row->has_platform) {
            oci_platform norm;
            oci_platform_normalize(&row->platform, &norm);
            oci_platform_format(&norm, row->normalized, sizeof(row->normalized));
        }
        row->verdict.mode = VM_RUN_UNAVAILABLE;
        snprintf(row->verdict.reason, sizeof(row->verdict.reason), "unknown media type '%.200s'",
                 row->media_type ? row->media_type : "");
        return;
    }
    if (row->has_platform || row->has_config) {
        oci_platform norm;
        oci_platform_normalize(row->has_platform ? &row->platform : &row->config, &norm);
        oci_platform_format(&norm, row->normalized, sizeof(row->normalized));
        /* The runtime selects and runs by the index label; a disagreeing config is reported as
         * a problem, and only the binaries (--deep) can say which of the two is right. */
        vm_plan_platform(t, row->has_platform ? &row->platform : &row->config, &row->verdict);
    } else {
        mar_strlcpy(row->normalized, "unknown", sizeof(row->normalized));
        row->verdict.mode = VM_RUN_UNAVAILABLE;
        snprintf(row->verdict.reason, sizeof(row->verdict.reason), "platform unknown");
    }
}

static void list_platforms(const cmd_report *r, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->n_rows && off + 1 < n; i++) {
        if (!cmd_row_ok(&r->rows[i])) {
            continue;
        }
        int w = snprintf(buf + off, n - off, "%s%s", off ? ", " : "", r->rows[i].published);
        off += w > 0 ? (size_t)w : 0;
    }
    if (off == 0) {
        snprintf(buf, n, "nothing runnable");
    }
}

/* oci_index_pick's view of the nested indexes the image resolution read. */
MAR_MUST_USE static int lookup_nested(const oci_descriptor *d, void *ud, const oci_manifest **ret,
                                      mar_err **err)
{
    const reg_image *img = ud;
    const mar_err *why = NULL;
    for (size_t i = 0; i < img->n_entries; i++) {
        const reg_image_entry *e = &img->entries[i];
        if (e->role != OCI_ENTRY_INDEX || !mar_digest_eq(&e->desc->digest, &d->digest)) {
            continue;
        }
        if (e->manifest && e->manifest->kind == OCI_KIND_INDEX) {
            *ret = e->manifest;
            return 0;
        }
        why = why ? why : e->err;
    }
    if (why) {
        return mar_err_set(err, mar_err_code(why), 0, "%s", why->msg);
    }
    return mar_err_set(err, MAR_ENOTFOUND, 0, "index %s was not read", d->digest.str);
}

static cmd_row *row_of_desc(cmd_report *r, const reg_image *img, const oci_descriptor *d)
{
    for (size_t i = 0; i < r->n_rows; i++) {
        if (img->entries[r->rows[i].entry].desc == d) {
            return &r->rows[i];
        }
    }
    return NULL;
}

/* containerd's choice (docs/internals/platforms.md §7): oci_index_pick, then a chosen entry
 * without a platform only when its config matches; otherwise nothing. */
static void select_entry(cmd_report *r, const reg_image *img, const oci_matcher *m)
{
    if (!r->is_index) {
        r->has_selected = r->n_rows > 0;
        if (r->has_selected) {
            r->selected = r->rows[0].digest;
            r->rows[0].selected = true;
        }
        return;
    }
    oci_pick pick;
    mar_err *e = NULL;
    int rc = oci_index_pick(img->root, &img->raw.digest, m, lookup_nested, NULL, (void *)img, &pick,
                            &e);
    if (rc != 0) {
        if (rc < 0) {
            mar_debug("no choice in '%s': %s", r->reference, e->msg);
        }
        mar_err_free(e);
        return;
    }
    cmd_row *row = row_of_desc(r, img, pick.desc);
    if (!row) {
        return;
    }
    if (!pick.desc->has_platform) {
        /* containerd reads the config of a platform-less entry and stops there when it does not
         * match: it does not go on to the next candidate. */
        const reg_image_entry *en = &img->entries[row->entry];
        if (!en->config || !en->config->has_platform ||
            !oci_matcher_match(m, &en->config->platform)) {
            char cp[OCI_PLATFORM_STR_MAX] = "nothing";
            if (en->config && en->config->has_platform) {
                oci_platform_format(&en->config->platform, cp, sizeof(cp));
            }
            snprintf(r->none_reason, sizeof(r->none_reason),
                     "the entry chosen for it, %.140s, has no platform and its config says %.200s",
                     pick.desc->digest.str, cp);
            return;
        }
    }
    r->has_selected = true;
    r->selected = pick.desc->digest;
    row->selected = true;
}

typedef struct build_ctx {
    cmd_report *r;
    const reg_image *img;
    const vm_target *t;
    size_t *first; /* per entry: where the entries of the nested index it is start */
    size_t seq;
} build_ctx;

static void add_row(build_ctx *x, size_t i)
{
    const reg_image_entry *e = &x->img->entries[i];
    cmd_report *r = x->r;
    cmd_row *row = &r->rows[r->n_rows++];
    row->entry = i;
    row->seq = x->seq++;
    row->depth = e->depth;
    if (e->desc) {
        row->has_platform = e->desc->has_platform;
        row->platform = e->desc->platform;
        row->digest = e->desc->digest;
        row->media_type = e->desc->media_type;
        row->in_index = e->parent == SIZE_MAX ? &x->img->raw.digest
                                              : &x->img->entries[e->parent].desc->digest;
    } else {
        row->digest = x->img->raw.digest;
        row->media_type = x->img->root->media_type;
    }
    row->status = e->role == OCI_ENTRY_UNKNOWN ? CMD_ROW_UNKNOWN
                  : e->not_read                ? CMD_ROW_NOT_READ
                  : e->err                     ? CMD_ROW_UNREADABLE
                                               : CMD_ROW_OK;
    fill_row(row, e, x->t);
    if (e->desc && e->desc->has_platform) {
        oci_platform_format_all(&e->desc->platform, row->published, sizeof(row->published));
    } else if (row->has_config) {
        oci_platform_format_all(&row->config, row->published, sizeof(row->published));
    } else {
        mar_strlcpy(row->published, e->desc ? "(no platform)" : "unknown", sizeof(row->published));
    }
}

/* The entries of one index, in order, nested indexes followed by their own entries. */
static void visit(build_ctx *x, size_t from, size_t n)
{
    for (size_t i = from; i < from + n && i < x->img->n_entries; i++) {
        const reg_image_entry *e = &x->img->entries[i];
        if (e->role == OCI_ENTRY_ATTESTATION) {
            x->r->attestations++;
            continue;
        }
        if (e->role == OCI_ENTRY_IGNORED) {
            x->r->ignored++;
            continue;
        }
        if (e->role != OCI_ENTRY_INDEX) {
            add_row(x, i);
            continue;
        }
        cmd_index_row *ir = &x->r->indexes[x->r->n_indexes++];
        ir->entry = i;
        ir->seq = x->seq++;
        ir->depth = e->depth;
        ir->digest = &e->desc->digest;
        ir->in_index = e->parent == SIZE_MAX ? &x->img->raw.digest
                                             : &x->img->entries[e->parent].desc->digest;
        ir->media_type = e->desc->media_type;
        ir->size = e->desc->size;
        ir->err = e->err;
        ir->not_read = e->not_read;
        if (e->desc->has_platform) {
            oci_platform_format_all(&e->desc->platform, ir->published, sizeof(ir->published));
        }
        if (e->manifest && e->manifest->kind == OCI_KIND_INDEX && x->first[i] != SIZE_MAX) {
            ir->n_entries = e->manifest->n_manifests;
            visit(x, x->first[i], ir->n_entries);
        }
    }
}

void cmd_report_build(const reg_image *img, const vm_target *t, const oci_platform *requested,
                      cmd_report *r)
{
    memset(r, 0, sizeof(*r));
    r->img = img;
    r->reference = oci_ref_string(&img->ref);
    r->digest = img->raw.digest;
    r->media_type = mar_xstrdup(img->root->media_type);
    r->is_index = img->root->kind == OCI_KIND_INDEX;
    char tp[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&t->platform, tp, sizeof(tp));
    r->on_host = t->is_host;
    if (t->is_host) {
        snprintf(r->host, sizeof(r->host), "%s", tp);
        if (t->amd64_level) {
            snprintf(r->host_detail, sizeof(r->host_detail), "this host, x86-64-v%d",
                     t->amd64_level);
        } else {
            snprintf(r->host_detail, sizeof(r->host_detail), "this host");
        }
    } else {
        snprintf(r->host, sizeof(r->host), "%s", t->name);
    }
    r->rows = mar_xcalloc(img->n_entries ? img->n_entries : 1, sizeof(*r->rows));
    r->indexes = mar_xcalloc(img->n_entries ? img->n_entries : 1, sizeof(*r->indexes));
    build_ctx x = {.r = r, .img = img, .t = t};
    x.first = mar_xcalloc(img->n_entries + 1, sizeof(*x.first));
    for (size_t i = 0; i < img->n_entries; i++) {
        x.first[i] = SIZE_MAX;
    }
    for (size_t i = img->n_entries; i-- > 0;) {
        size_t p = img->entries[i].parent;
        if (p != SIZE_MAX) {
            x.first[p] = i; /* the entries of one nested index are appended together */
        }
    }
    visit(&x, 0, r->is_index ? img->root->n_manifests : img->n_entries);
    free(x.first);

    oci_matcher m;
    if (requested) {
        r->explicit_platform = true;
        oci_platform_format_all(requested, r->requested, sizeof(r->requested));
        oci_matcher_only(&m, requested);
    } else {
        vm_target_matcher(t, &m);
    }
    select_entry(r, img, &m);

    /* Problems, most specific first. An entry mar does not read by rule is mentioned; one it
     * could not read fails the report (docs/mar.1.md EXIT STATUS). */
    for (size_t i = 0; i < r->n_indexes; i++) {
        const cmd_index_row *ir = &r->indexes[i];
        if (ir->err) {
            cmd_report_problem(r, ir->not_read ? "not-read" : "unreadable", NULL, "%s",
                               ir->err->msg);
            if (!ir->not_read) {
                set_status(r, mar_err_code(ir->err));
            }
        }
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        const cmd_row *row = &r->rows[i];
        if (row->err) {
            bool rule = row->status == CMD_ROW_NOT_READ;
            cmd_report_problem(r, rule ? "not-read" : "unreadable", row->published, "%s",
                               row->err->msg);
            if (!rule) {
                set_status(r, mar_err_code(row->err));
            }
            continue;
        }
        if (row->status == CMD_ROW_OK && !row->config_matches) {
            char cp[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&row->config, cp, sizeof(cp));
            cmd_report_problem(
                    r, "config-mismatch", row->published,
                    "the %s entry of '%s' is labeled %s but its config says %s: the image is "
                    "mislabeled",
                    row->published, r->reference, row->published, cp);
        }
    }
    char have[1024];
    list_platforms(r, have, sizeof(have));
    if (!r->is_index && r->n_rows == 1 && r->rows[0].has_config) {
        const cmd_row *row = &r->rows[0];
        if (requested && !oci_matcher_match(&m, &row->config)) {
            cmd_report_problem(r, "platform-mismatch", row->published,
                               "'%s' is a single-platform image for %s, not %s, refusing",
                               r->reference, row->published, r->requested);
            r->has_selected = false;
            r->rows[0].selected = false;
            set_status(r, MAR_ENOTFOUND);
        } else if (!requested && row->verdict.mode != VM_RUN_NATIVE) {
            cmd_report_problem(
                    r, "platform-mismatch", row->published,
                    "the image's platform (%s) does not match %s (%s) and no platform was "
                    "requested",
                    row->published, t->is_host ? "this host" : t->name, tp);
        }
    }
    if (r->is_index && requested && !r->has_selected) {
        cmd_report_problem(r, "no-match", r->requested, "no '%s' entry in '%s' (has: %s), refusing",
                           r->requested, r->reference, have);
        set_status(r, MAR_ENOTFOUND);
    }
    bool any_native = false;
    size_t runnable = 0;
    const cmd_row *only = NULL;
    for (size_t i = 0; i < r->n_rows; i++) {
        if (!cmd_row_ok(&r->rows[i])) {
            continue;
        }
        any_native = any_native || r->rows[i].verdict.mode == VM_RUN_NATIVE;
        runnable++;
        only = &r->rows[i];
    }
    if (r->is_index && runnable > 0 && !any_native) {
        cmd_report_problem(r, "no-native", NULL,
                           "no variant of '%s' runs natively on %s (%s); it has: %s", r->reference,
                           t->is_host ? "this host" : t->name, tp, have);
    }
    if (r->is_index && runnable == 1 && strcmp(only->normalized, "linux/amd64") == 0) {
        cmd_report_problem(
                r, "amd64-only", "linux/amd64",
                "'%s' is an index with only linux/amd64: Docker on arm64 refuses it without "
                "--platform linux/amd64; publish linux/arm64 too",
                r->reference);
    }
}

static json_t *platform_json(const oci_platform *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "os", json_string(p->os));
    json_object_set_new(o, "architecture", json_string(p->arch));
    json_object_set_new(o, "variant", p->variant[0] ? json_string(p->variant) : json_null());
    return o;
}

static const char *const row_status_names[] = {"ok", "unknown", "not-read", "unreadable"};

/* Digests of the attestation manifests that name this entry (vnd.docker.reference.digest). */
static json_t *attestations_of(const cmd_report *r, const mar_digest *d)
{
    json_t *a = json_array();
    for (size_t i = 0; r->img && i < r->img->n_entries; i++) {
        const reg_image_entry *e = &r->img->entries[i];
        mar_digest ref;
        if (e->role == OCI_ENTRY_ATTESTATION && oci_descriptor_attests(e->desc, &ref) &&
            mar_digest_eq(&ref, d)) {
            json_array_append_new(a, json_string(e->desc->digest.str));
        }
    }
    return a;
}

json_t *cmd_report_json(const cmd_report *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "reference", json_string(r->reference));
    json_object_set_new(o, "digest", json_string(r->digest.str));
    json_object_set_new(o, "mediaType", json_string(r->media_type));
    json_object_set_new(o, "kind", json_string(r->is_index ? "index" : "manifest"));
    json_object_set_new(o, "host", json_string(r->host));
    json_object_set_new(o, "selected",
                        r->has_selected ? json_string(r->selected.str) : json_null());
    json_object_set_new(o, "attestations", json_integer((json_int_t)r->attestations));
    json_object_set_new(o, "ignored", json_integer((json_int_t)r->ignored));
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_rows; i++) {
        const cmd_row *row = &r->rows[i];
        json_t *p = json_object();
        json_object_set_new(p, "platform", json_string(row->published));
        json_object_set_new(p, "normalized", json_string(row->normalized));
        json_object_set_new(p, "digest", json_string(row->digest.str));
        json_object_set_new(p, "mediaType",
                            row->media_type ? json_string(row->media_type) : json_null());
        json_object_set_new(p, "status", json_string(row_status_names[row->status]));
        json_object_set_new(p, "error", row->err ? json_string(row->err->msg) : json_null());
        json_object_set_new(p, "index",
                            row->in_index ? json_string(row->in_index->str) : json_null());
        json_object_set_new(p, "depth", json_integer((json_int_t)row->depth));
        json_object_set_new(p, "size", row->size >= 0 ? json_integer(row->size) : json_null());
        json_object_set_new(p, "config",
                            row->has_config ? platform_json(&row->config) : json_null());
        json_object_set_new(p, "configMatches", json_boolean(row->config_matches));
        json_object_set_new(p, "run",
                            json_string(!cmd_row_ok(row) ? "unavailable"
                                                         : vm_run_mode_name(row->verdict.mode)));
        const char *emu = vm_emulator_name(row->verdict.emu);
        json_object_set_new(p, "emulator", emu && cmd_row_ok(row) ? json_string(emu) : json_null());
        json_object_set_new(p, "reason",
                            row->verdict.reason[0] ? json_string(row->verdict.reason)
                                                   : json_null());
        json_object_set_new(p, "selected", json_boolean(row->selected));
        json_object_set_new(p, "attestations", attestations_of(r, &row->digest));
        json_object_set_new(p, "elf", cmd_elf_json(row));
        json_array_append_new(arr, p);
    }
    json_object_set_new(o, "platforms", arr);
    json_t *idx = json_array();
    for (size_t i = 0; i < r->n_indexes; i++) {
        const cmd_index_row *ir = &r->indexes[i];
        json_t *p = json_object();
        json_object_set_new(p, "digest", json_string(ir->digest->str));
        json_object_set_new(p, "mediaType", json_string(ir->media_type));
        json_object_set_new(p, "platform",
                            ir->published[0] ? json_string(ir->published) : json_null());
        json_object_set_new(p, "index", json_string(ir->in_index->str));
        json_object_set_new(p, "depth", json_integer((json_int_t)ir->depth));
        json_object_set_new(p, "size", json_integer(ir->size));
        json_object_set_new(p, "entries", json_integer((json_int_t)ir->n_entries));
        json_object_set_new(p, "status",
                            json_string(!ir->err       ? "ok"
                                        : ir->not_read ? "not-read"
                                                       : "unreadable"));
        json_object_set_new(p, "error", ir->err ? json_string(ir->err->msg) : json_null());
        json_array_append_new(idx, p);
    }
    json_object_set_new(o, "indexes", idx);
    json_t *probs = json_array();
    for (size_t i = 0; i < r->n_problems; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "kind", json_string(r->problems[i].kind));
        json_object_set_new(p, "platform",
                            r->problems[i].platform ? json_string(r->problems[i].platform)
                                                    : json_null());
        json_object_set_new(p, "message", json_string(r->problems[i].message));
        json_array_append_new(probs, p);
    }
    json_object_set_new(o, "problems", probs);
    return o;
}

/* One line of the listing: a row or a nested index, indented by its depth. */
typedef struct print_line {
    const cmd_row *row;
    const cmd_index_row *index;
} print_line;

static void line_platform(const print_line *l, char *buf, size_t n)
{
    size_t depth = l->row ? l->row->depth : l->index->depth;
    const char *text = l->row                   ? l->row->published
                       : l->index->published[0] ? l->index->published
                                                : "(index)";
    snprintf(buf, n, "%*s%s%s", (int)(2 * depth), "", text,
             l->index && l->index->published[0] ? " (index)" : "");
}

/* "for linux/amd64, linux/arm64/v8": the entries attestations name. */
static void attested(const cmd_report *r, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->n_rows && off + 1 < n; i++) {
        json_t *a = attestations_of(r, &r->rows[i].digest);
        if (json_array_size(a)) {
            int w = snprintf(buf + off, n - off, "%s%s", off ? ", " : "for ", r->rows[i].published);
            off += w > 0 ? (size_t)w : 0;
        }
        json_decref(a);
    }
}

void cmd_report_print(const cmd_report *r, FILE *out)
{
    fprintf(out, "Reference:   %s\n", cmd_esc(r->reference));
    fprintf(out, "Digest:      %s\n", r->digest.str);
    fprintf(out, "Media type:  %s\n", cmd_esc(r->media_type));
    if (r->host_detail[0]) {
        fprintf(out, "Evaluated:   %s (%s)\n\n", r->host, r->host_detail);
    } else {
        fprintf(out, "Evaluated:   %s\n\n", r->host);
    }

    /* Rows and nested indexes in listing order. */
    size_t n_lines = r->n_rows + r->n_indexes;
    print_line *lines = mar_xcalloc(n_lines + 1, sizeof(*lines));
    for (size_t i = 0, a = 0, b = 0; i < n_lines; i++) {
        if (b >= r->n_indexes || (a < r->n_rows && r->rows[a].seq < r->indexes[b].seq)) {
            lines[i].row = &r->rows[a++];
        } else {
            lines[i].index = &r->indexes[b++];
        }
    }

    bool deep = false;
    size_t wp = strlen("PLATFORM"), wc = strlen("CONFIG"), we = strlen("ELF");
    for (size_t i = 0; i < n_lines; i++) {
        char pl[OCI_PLATFORM_ALL_STR_MAX + 64];
        line_platform(&lines[i], pl, sizeof(pl));
        wp = strlen(pl) > wp ? strlen(pl) : wp;
        const cmd_row *row = lines[i].row;
        if (!row) {
            continue;
        }
        char cp[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&row->config, cp, sizeof(cp));
        size_t l = row->has_config ? strlen(cp) : 1;
        wc = l > wc ? l : wc;
        if (row->elf || row->elf_err) {
            deep = true;
            char ec[64];
            cmd_elf_column(row, ec, sizeof(ec));
            we = strlen(ec) > we ? strlen(ec) : we;
        }
    }
    char on[sizeof(r->host) + 4] = "ON THIS HOST";
    if (!r->on_host) {
        snprintf(on, sizeof(on), "ON %s", r->host);
        for (char *c = on; *c; c++) {
            *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
        }
    }
    fprintf(out, "  %-*s  %-19s  %9s  %-*s  ", (int)wp, "PLATFORM", "MANIFEST", "SIZE", (int)wc,
            "CONFIG");
    if (deep) {
        fprintf(out, "%-*s  ", (int)we, "ELF");
    }
    fprintf(out, "%s\n", on);
    for (size_t i = 0; i < n_lines; i++) {
        char pl[OCI_PLATFORM_ALL_STR_MAX + 64], dig[32], size[32], cp[OCI_PLATFORM_STR_MAX],
                run[320], ec[64];
        line_platform(&lines[i], pl, sizeof(pl));
        const cmd_row *row = lines[i].row;
        const cmd_index_row *ir = lines[i].index;
        mar_digest_short(row ? &row->digest : ir->digest, dig, sizeof(dig));
        int64_t sz = row ? row->size : ir->size;
        if (sz >= 0) {
            mar_format_size(sz, size, sizeof(size));
        } else {
            mar_strlcpy(size, "?", sizeof(size));
        }
        if (row && row->has_config) {
            oci_platform_format(&row->config, cp, sizeof(cp));
        } else {
            mar_strlcpy(cp, row ? "?" : "-", sizeof(cp));
        }
        if (ir) {
            if (ir->err) {
                mar_strlcpy(run, ir->not_read ? "not read" : "unreadable", sizeof(run));
            } else {
                snprintf(run, sizeof(run), "nested index, %zu entr%s", ir->n_entries,
                         ir->n_entries == 1 ? "y" : "ies");
            }
        } else if (row->status == CMD_ROW_UNKNOWN) {
            mar_strlcpy(run, row->verdict.reason, sizeof(run));
        } else if (row->err) {
            mar_strlcpy(run, row->status == CMD_ROW_NOT_READ ? "not read" : "unreadable",
                        sizeof(run));
        } else {
            vm_verdict_label(&row->verdict, run, sizeof(run));
        }
        fprintf(out, "%c %-*s  %-19s  %9s  %-*s  ", row && row->selected ? '*' : ' ', (int)wp,
                cmd_esc(pl), dig, size, (int)wc, cp);
        if (deep) {
            if (row) {
                cmd_elf_column(row, ec, sizeof(ec));
            } else {
                mar_strlcpy(ec, "", sizeof(ec));
            }
            fprintf(out, "%-*s  ", (int)we, ec);
        }
        fprintf(out, "%s%s\n", run, !row || row->config_matches ? "" : "  (!)");
    }
    free(lines);
    if (r->attestations) {
        char forl[1024];
        attested(r, forl, sizeof(forl));
        fprintf(out, "  +%zu attestation manifest%s%s%s\n", r->attestations,
                r->attestations == 1 ? "" : "s", forl[0] ? " " : "", forl);
    }
    if (r->ignored) {
        fprintf(out,
                "  +%zu manifest%s ignored: vnd.docker.reference.type is not "
                "attestation-manifest\n",
                r->ignored, r->ignored == 1 ? "" : "s");
    }
    cmd_elf_evidence(r, out);
    if (r->has_selected) {
        fprintf(out, "\n* = the entry `mar run%s%s` would pick %s\n",
                r->explicit_platform ? " --platform " : "",
                r->explicit_platform ? r->requested : "", r->on_host ? "here" : "there");
    } else {
        fprintf(out, "\nno entry would be picked%s%s\n", r->explicit_platform ? " for " : "",
                r->explicit_platform ? r->requested : " without --platform");
    }
}
