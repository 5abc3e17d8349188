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
    row->entry = e->index;
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
    row->err = e->err;
}

static void list_platforms(const cmd_report *r, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->n_rows && off + 1 < n; i++) {
        int w = snprintf(buf + off, n - off, "%s%s", i ? ", " : "", r->rows[i].published);
        off += w > 0 ? (size_t)w : 0;
    }
    if (r->n_rows == 0) {
        snprintf(buf, n, "nothing runnable");
    }
}

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
    oci_selection sel;
    oci_index_select(img->root, m, &sel);
    for (size_t k = 0; k < sel.n && !r->has_selected; k++) {
        size_t idx = sel.order[k];
        const reg_image_entry *e = &img->entries[idx];
        if (!e->desc->has_platform) {
            /* containerd matches a platform-less entry by its config (docs/internals/platforms.md
             * §7). */
            if (!e->config || !e->config->has_platform ||
                !oci_matcher_match(m, &e->config->platform)) {
                continue;
            }
        }
        r->has_selected = true;
        r->selected = e->desc->digest;
        for (size_t i = 0; i < r->n_rows; i++) {
            r->rows[i].selected = r->rows[i].entry == idx;
        }
    }
    oci_selection_release(&sel);
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
    for (size_t i = 0; i < img->n_entries; i++) {
        const reg_image_entry *e = &img->entries[i];
        if (e->attestation) {
            r->attestations++;
            continue;
        }
        cmd_row *row = &r->rows[r->n_rows++];
        if (e->desc) {
            row->has_platform = e->desc->has_platform;
            row->platform = e->desc->platform;
            row->digest = e->desc->digest;
        } else {
            row->digest = img->raw.digest;
        }
        fill_row(row, e, t);
        if (e->desc && e->desc->has_platform) {
            oci_platform_format_all(&e->desc->platform, row->published, sizeof(row->published));
        } else if (row->has_config) {
            oci_platform_format_all(&row->config, row->published, sizeof(row->published));
        } else {
            mar_strlcpy(row->published, e->desc ? "(no platform)" : "unknown",
                        sizeof(row->published));
        }
    }

    oci_matcher m;
    if (requested) {
        r->explicit_platform = true;
        oci_platform_format(requested, r->requested, sizeof(r->requested));
        oci_matcher_only(&m, requested);
    } else {
        vm_target_matcher(t, &m);
    }
    select_entry(r, img, &m);

    /* Problems, most specific first. */
    for (size_t i = 0; i < r->n_rows; i++) {
        const cmd_row *row = &r->rows[i];
        if (row->err) {
            cmd_report_problem(r, "unreadable", row->published, "%s", row->err->msg);
            set_status(r, mar_err_code(row->err));
            continue;
        }
        if (!row->config_matches) {
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
    for (size_t i = 0; i < r->n_rows; i++) {
        any_native = any_native || r->rows[i].verdict.mode == VM_RUN_NATIVE;
        runnable += r->rows[i].err == NULL;
    }
    if (r->is_index && r->n_rows > 0 && !any_native) {
        cmd_report_problem(r, "no-native", NULL,
                           "no variant of '%s' runs natively on %s (%s); it has: %s", r->reference,
                           t->is_host ? "this host" : t->name, tp, have);
    }
    if (r->is_index && r->n_rows == 1 && strcmp(r->rows[0].normalized, "linux/amd64") == 0) {
        cmd_report_problem(
                r, "amd64-only", "linux/amd64",
                "'%s' is an index with only linux/amd64: Docker on arm64 refuses it without "
                "--platform linux/amd64; publish linux/arm64 too",
                r->reference);
    }
    (void)runnable;
}

static json_t *platform_json(const oci_platform *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "os", json_string(p->os));
    json_object_set_new(o, "architecture", json_string(p->arch));
    json_object_set_new(o, "variant", p->variant[0] ? json_string(p->variant) : json_null());
    return o;
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
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_rows; i++) {
        const cmd_row *row = &r->rows[i];
        json_t *p = json_object();
        json_object_set_new(p, "platform", json_string(row->published));
        json_object_set_new(p, "normalized", json_string(row->normalized));
        json_object_set_new(p, "digest", json_string(row->digest.str));
        json_object_set_new(p, "size", row->size >= 0 ? json_integer(row->size) : json_null());
        json_object_set_new(p, "config",
                            row->has_config ? platform_json(&row->config) : json_null());
        json_object_set_new(p, "configMatches", json_boolean(row->config_matches));
        json_object_set_new(
                p, "run",
                json_string(row->err ? "unavailable" : vm_run_mode_name(row->verdict.mode)));
        const char *emu = vm_emulator_name(row->verdict.emu);
        json_object_set_new(p, "emulator", emu && !row->err ? json_string(emu) : json_null());
        json_object_set_new(p, "reason",
                            row->verdict.reason[0] ? json_string(row->verdict.reason)
                                                   : json_null());
        json_object_set_new(p, "selected", json_boolean(row->selected));
        json_object_set_new(p, "elf", cmd_elf_json(row));
        json_array_append_new(arr, p);
    }
    json_object_set_new(o, "platforms", arr);
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

    bool deep = false;
    size_t wp = strlen("PLATFORM"), wc = strlen("CONFIG"), we = strlen("ELF");
    for (size_t i = 0; i < r->n_rows; i++) {
        size_t l = strlen(r->rows[i].published);
        wp = l > wp ? l : wp;
        char cp[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&r->rows[i].config, cp, sizeof(cp));
        l = r->rows[i].has_config ? strlen(cp) : 1;
        wc = l > wc ? l : wc;
        if (r->rows[i].elf || r->rows[i].elf_err) {
            deep = true;
            char ec[64];
            cmd_elf_column(&r->rows[i], ec, sizeof(ec));
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
    for (size_t i = 0; i < r->n_rows; i++) {
        const cmd_row *row = &r->rows[i];
        char dig[32], size[32], cp[OCI_PLATFORM_STR_MAX], run[64], ec[64];
        mar_digest_short(&row->digest, dig, sizeof(dig));
        if (row->size >= 0) {
            mar_format_size(row->size, size, sizeof(size));
        } else {
            mar_strlcpy(size, "?", sizeof(size));
        }
        if (row->has_config) {
            oci_platform_format(&row->config, cp, sizeof(cp));
        } else {
            mar_strlcpy(cp, "?", sizeof(cp));
        }
        if (row->err) {
            mar_strlcpy(run, "unreadable", sizeof(run));
        } else {
            vm_verdict_label(&row->verdict, run, sizeof(run));
        }
        fprintf(out, "%c %-*s  %-19s  %9s  %-*s  ", row->selected ? '*' : ' ', (int)wp,
                cmd_esc(row->published), dig, size, (int)wc, cp);
        if (deep) {
            cmd_elf_column(row, ec, sizeof(ec));
            fprintf(out, "%-*s  ", (int)we, ec);
        }
        fprintf(out, "%s%s\n", run, row->config_matches ? "" : "  (!)");
    }
    if (r->attestations) {
        fprintf(out, "  +%zu attestation manifest%s\n", r->attestations,
                r->attestations == 1 ? "" : "s");
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
