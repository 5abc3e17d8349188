/* What --deep adds to a report: the verdict of the binaries against the label, the run verdict
 * recomputed from the binaries' real architecture (an arm64-labeled image of x86-64 binaries runs
 * "natively" on an x86-64 host and under Rosetta on a Mac), and the predictions of
 * docs/internals/platforms.md §12: x86-64-v3 under Rosetta, 386 under Rosetta, a missing dynamic
 * loader. */
#include "cli-internal.h"

#include <string.h>

static const char *effective_arch(const oci_elf_summary *s)
{
    return s->ep_arch[0] ? s->ep_arch : s->majority_arch;
}

static size_t count_of(const oci_elf_summary *s, const char *arch)
{
    for (size_t i = 0; i < s->n_counts; i++) {
        if (strcmp(s->counts[i].arch, arch) == 0) {
            return s->counts[i].n;
        }
    }
    return 0;
}

int cmd_deep_scan(reg_client *c, reg_store *s, const reg_image *img, cmd_report *r, int jobs,
                  mar_err **err)
{
    reg_deep_entry *v = mar_xcalloc(r->n_rows + 1, sizeof(*v));
    size_t *row_of = mar_xcalloc(r->n_rows + 1, sizeof(*row_of));
    size_t n = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        const cmd_row *row = &r->rows[i];
        if (!row->deep) {
            continue;
        }
        v[n] = (reg_deep_entry){.entry = row->entry,
                                .label = row->has_platform ? row->platform : row->config};
        row_of[n++] = i;
    }
    int rc = reg_deep_scan(c, s, img, v, n, jobs, err);
    for (size_t k = 0; k < n; k++) {
        r->rows[row_of[k]].elf = v[k].elf;
        r->rows[row_of[k]].elf_err = v[k].err;
    }
    free(row_of);
    free(v);
    return rc;
}

/* Drops the problems of one kind (a label-based conclusion the binaries overturned). */
static void drop_problems(cmd_report *r, const char *kind)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n_problems; i++) {
        if (strcmp(r->problems[i].kind, kind) == 0) {
            free(r->problems[i].kind);
            free(r->problems[i].platform);
            free(r->problems[i].message);
            continue;
        }
        r->problems[k++] = r->problems[i];
    }
    r->n_problems = k;
}

void cmd_report_add_deep(cmd_report *r, const vm_target *t)
{
    bool any_native = false;
    for (size_t i = 0; i < r->n_rows; i++) {
        cmd_row *row = &r->rows[i];
        if (row->elf_err) {
            cmd_report_problem(r, "unreadable", row->published, "cannot scan the layers of %s: %s",
                               row->published, row->elf_err->msg);
            if (!r->status) {
                r->status = mar_err_code(row->elf_err);
            }
            continue;
        }
        const oci_elf_summary *s = row->elf;
        if (!s) {
            continue;
        }
        oci_platform label;
        oci_platform_normalize(row->has_platform ? &row->platform : &row->config, &label);
        const char *eff = effective_arch(s);
        if (strcmp(s->verdict, "mislabeled") == 0) {
            char ep[600] = "";
            if (s->ep_arch[0]) {
                snprintf(ep, sizeof(ep), "; the entrypoint %s is %s", s->ep_resolved, s->ep_arch);
            }
            cmd_report_problem(r, "elf-mismatch", row->published,
                               "the %s entry of '%s' is labeled %s but %zu of %zu ELF files are "
                               "%s%s: the image is mislabeled",
                               row->published, r->reference, label.arch, s->n_foreign, s->n_elf,
                               s->majority_arch, ep);
            /* What really runs is decided by the binaries, not the label. */
            oci_platform real = label;
            mar_strlcpy(real.arch, eff, sizeof(real.arch));
            real.variant[0] = '\0';
            vm_plan_platform(t, &real, &row->verdict);
            /* Composed here; the copy below truncates it to the field. */
            mar_buf why = MAR_BUF_INIT(MAR_BUF_NOCAP);
            mar_buf_xprintf(&why, "its binaries are %s%s%s", eff,
                            row->verdict.reason[0] ? "; " : "", row->verdict.reason);
            mar_strlcpy(row->verdict.reason, why.data, sizeof(row->verdict.reason));
            mar_buf_release(&why);
        } else if (strcmp(s->verdict, "mixed") == 0) {
            cmd_report_problem(r, "elf-mismatch", row->published,
                               "the %s entry of '%s' has %zu ELF files of another architecture "
                               "than %s (e.g. %s is %s)",
                               row->published, r->reference, s->n_foreign, label.arch,
                               s->examples[0].path, s->examples[0].arch);
        }
        if (s->has_entrypoint && !s->ep_found) {
            cmd_report_problem(r, "elf-entrypoint", row->published,
                               "the entrypoint '%s' of %s is not in the image", s->ep_path,
                               row->published);
        }
        if (s->ep_interp_missing) {
            cmd_report_problem(r, "elf-loader", row->published,
                               "the entrypoint %s of %s needs the loader %s, which the image "
                               "lacks: it cannot start (\"no such file or directory\"; under "
                               "Rosetta \"failed to open elf at %s\")",
                               s->ep_resolved, row->published, s->ep_interp, s->ep_interp);
            row->verdict.mode = VM_RUN_UNAVAILABLE;
            snprintf(row->verdict.reason, sizeof(row->verdict.reason), "loader %s missing",
                     s->ep_interp);
        } else if (s->n_missing_loader) {
            cmd_report_problem(r, "elf-loader", row->published,
                               "%zu dynamic binaries of %s need a loader the image lacks (e.g. %s "
                               "needs %s)",
                               s->n_missing_loader, row->published, s->loader_example,
                               s->loader_missing);
        }
        bool rosetta = row->verdict.emu == VM_EMU_ROSETTA;
        if (strcmp(eff, "amd64") == 0 && s->max_isa_level >= 3 && rosetta) {
            /* The planner's Rosetta model decides "fail" or "may fail" by the Mac's macOS
             * release (docs/internals/binfmt-and-rosetta.md §11). */
            oci_platform lvl = {.os = "linux", .arch = "amd64"};
            snprintf(lvl.variant, sizeof(lvl.variant), "v%d", s->max_isa_level);
            vm_verdict iv;
            vm_plan_platform(t, &lvl, &iv);
            cmd_report_problem(r, "elf-isa", row->published,
                               "%zu binaries of %s need x86-64-v3 or higher (e.g. %s): they %s "
                               "under Rosetta (%s)",
                               s->n_isa_v3plus, row->published, s->isa_example,
                               iv.mode == VM_RUN_UNAVAILABLE ? "fail" : "may fail", iv.reason);
            if (s->ep_isa_level >= 3) {
                snprintf(lvl.variant, sizeof(lvl.variant), "v%d", s->ep_isa_level);
                vm_plan_platform(t, &lvl, &iv);
                if (iv.mode == VM_RUN_UNAVAILABLE) {
                    row->verdict.mode = VM_RUN_UNAVAILABLE;
                    snprintf(row->verdict.reason, sizeof(row->verdict.reason),
                             "the entrypoint needs x86-64-v%d: %.200s", s->ep_isa_level, iv.reason);
                } else if (iv.uncertain) {
                    row->verdict.uncertain = true;
                    snprintf(row->verdict.reason, sizeof(row->verdict.reason),
                             "the entrypoint needs x86-64-v%d: %.200s", s->ep_isa_level, iv.reason);
                }
            }
        } else if (strcmp(eff, "amd64") == 0 && t->amd64_level &&
                   s->max_isa_level > t->amd64_level && row->verdict.mode == VM_RUN_NATIVE) {
            cmd_report_problem(r, "elf-isa", row->published,
                               "binaries of %s need x86-64-v%d (e.g. %s), this CPU is x86-64-v%d",
                               row->published, s->max_isa_level, s->isa_example, t->amd64_level);
        }
        if (!row->config_matches && row->has_config) {
            oci_platform cfg;
            oci_platform_normalize(&row->config, &cfg);
            bool cfg_right = strcmp(cfg.arch, eff) == 0, label_right = strcmp(label.arch, eff) == 0;
            if (cfg_right != label_right) {
                cmd_report_problem(r, "elf-evidence", row->published,
                                   "the binaries of %s are %s: the %s is wrong", row->published,
                                   eff, cfg_right ? "index label" : "config");
            }
        }
        size_t n386 = count_of(s, "386");
        if (n386 && (rosetta || strcmp(t->platform.arch, "arm64") == 0)) {
            cmd_report_problem(r, "elf-386", row->published,
                               "%zu 386 binaries in %s: Rosetta cannot run 32-bit x86, they need "
                               "qemu-i386",
                               n386, row->published);
        }
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        any_native = any_native || r->rows[i].verdict.mode == VM_RUN_NATIVE;
    }
    if (any_native) {
        drop_problems(r, "no-native");
    }
}

json_t *cmd_elf_json(const cmd_row *row)
{
    const oci_elf_summary *s = row->elf;
    if (!s) {
        return json_null();
    }
    json_t *o = json_object();
    json_object_set_new(o, "verdict", json_string(s->verdict));
    json_object_set_new(o, "files", json_integer((json_int_t)s->n_elf));
    json_t *counts = json_object();
    for (size_t i = 0; i < s->n_counts; i++) {
        json_object_set_new(counts, s->counts[i].arch, json_integer((json_int_t)s->counts[i].n));
    }
    json_object_set_new(o, "counts", counts);
    json_object_set_new(o, "foreign", json_integer((json_int_t)s->n_foreign));
    if (s->has_entrypoint) {
        json_t *ep = json_object();
        json_object_set_new(ep, "path", json_string(s->ep_path));
        json_object_set_new(ep, "script",
                            s->ep_script[0] ? json_string(s->ep_script) : json_null());
        json_object_set_new(ep, "resolved",
                            s->ep_found ? json_string(s->ep_resolved) : json_null());
        json_object_set_new(ep, "arch", s->ep_arch[0] ? json_string(s->ep_arch) : json_null());
        json_object_set_new(ep, "interpreter",
                            s->ep_interp[0] ? json_string(s->ep_interp) : json_null());
        json_object_set_new(ep, "interpreterMissing", json_boolean(s->ep_interp_missing));
        json_object_set_new(o, "entrypoint", ep);
    } else {
        json_object_set_new(o, "entrypoint", json_null());
    }
    json_t *ex = json_array();
    for (size_t i = 0; i < s->n_examples; i++) {
        json_array_append_new(ex, json_pack("{s:s, s:s}", "path", s->examples[i].path, "arch",
                                            s->examples[i].arch));
    }
    json_object_set_new(o, "examples", ex);
    json_object_set_new(o, "maxIsaLevel", json_integer(s->max_isa_level));
    json_object_set_new(o, "missingLoaders", json_integer((json_int_t)s->n_missing_loader));
    return o;
}

void cmd_elf_column(const cmd_row *row, char *buf, size_t n)
{
    const oci_elf_summary *s = row->elf;
    if (row->elf_err) {
        snprintf(buf, n, "error");
    } else if (!s) {
        snprintf(buf, n, "-");
    } else if (strcmp(s->verdict, "mislabeled") == 0) {
        snprintf(buf, n, "MISLABELED (%s)", effective_arch(s));
    } else if (strcmp(s->verdict, "mixed") == 0) {
        snprintf(buf, n, "mixed (%zu foreign)", s->n_foreign);
    } else if (strcmp(s->verdict, "no-elf") == 0) {
        snprintf(buf, n, "no ELF");
    } else {
        snprintf(buf, n, "ok (%zu)", s->n_elf);
    }
}

void cmd_elf_evidence(const cmd_report *r, FILE *out)
{
    bool header = false;
    for (size_t i = 0; i < r->n_rows; i++) {
        const cmd_row *row = &r->rows[i];
        const oci_elf_summary *s = row->elf;
        if (!s) {
            continue;
        }
        if (!header) {
            fprintf(out, "\nBinaries (--deep):\n");
            header = true;
        }
        fprintf(out, "  %s: %s, %zu ELF file%s", row->published, s->verdict, s->n_elf,
                s->n_elf == 1 ? "" : "s");
        for (size_t k = 0; k < s->n_counts; k++) {
            fprintf(out, "%s%zu %s", k ? ", " : " (", s->counts[k].n, s->counts[k].arch);
        }
        fprintf(out, "%s", s->n_counts ? ")" : "");
        if (s->has_entrypoint) {
            if (s->ep_found) {
                fprintf(out, "; entrypoint %s%s%s%s is %s", cmd_esc(s->ep_path),
                        strcmp(s->ep_path, s->ep_resolved) ? " -> " : "",
                        strcmp(s->ep_path, s->ep_resolved) ? cmd_esc(s->ep_resolved) : "",
                        s->ep_script[0] ? " (script interpreter)" : "",
                        s->ep_arch[0] ? s->ep_arch : "not ELF");
            } else {
                fprintf(out, "; entrypoint %s not found", cmd_esc(s->ep_path));
            }
        }
        fputc('\n', out);
        for (size_t k = 0; k < s->n_examples && strcmp(s->verdict, "consistent"); k++) {
            fprintf(out, "      %s: %s\n", cmd_esc(s->examples[k].path), s->examples[k].arch);
        }
    }
}
