/* `mar binfmt status`: for each architecture, the entry the kernel would pick now, what it
 * shadows, what its flags mean for containers, and what an exec probe really does
 * (docs/internals/binfmt-and-rosetta.md §7). */
#include "binfmt.h"

#include <string.h>
#include <sys/stat.h>

static void hint(binfmt_arch_status *s, const char *fmt, ...) MAR_PRINTF(2, 3);
static void hint(binfmt_arch_status *s, const char *fmt, ...)
{
    if (s->n_hints >= MAR_ARRAY_SIZE(s->hints)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->hints[s->n_hints++], sizeof(s->hints[0]), fmt, ap);
    va_end(ap);
}

static void shadowed_names(const binfmt_table *t, const binfmt_arch *a, const binfmt_entry *win,
                           binfmt_arch_status *s)
{
    unsigned char h2[BINFMT_HEADER_SIZE], h3[BINFMT_HEADER_SIZE];
    binfmt_synthetic_header(a, 2, h2);
    binfmt_synthetic_header(a, 3, h3);
    for (size_t i = 0; i < t->n; i++) {
        const binfmt_entry *e = &t->v[i];
        if (e == win ||
            !(binfmt_entry_matches(e, h2, sizeof(h2)) || binfmt_entry_matches(e, h3, sizeof(h3)))) {
            continue;
        }
        if (s->n_shadowed < MAR_ARRAY_SIZE(s->shadowed)) {
            snprintf(s->shadowed[s->n_shadowed], sizeof(s->shadowed[0]), "%s%s", e->name,
                     e->enabled ? "" : " (disabled)");
            s->n_shadowed++;
        }
        if (win && e->enabled && binfmt_entry_kind(e) == BINFMT_KIND_ROSETTA &&
            binfmt_entry_kind(win) != BINFMT_KIND_ROSETTA) {
            hint(s,
                 "Rosetta ('%s') is shadowed by '%s', registered later: %s binaries run under "
                 "%s",
                 e->name, win->name, a->elf->arch, binfmt_kind_name(binfmt_entry_kind(win)));
        }
    }
}

int binfmt_status_read(const char *root, const char *host_arch, bool probe, binfmt_status *ret,
                       mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    if (binfmt_table_read(root, &ret->table, err) < 0) {
        return -mar_err_code(*err);
    }
    ret->probed = probe && ret->table.mounted && binfmt_root_is_kernel(root);
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch *a = binfmt_arch_get((binfmt_arch_id)i);
        binfmt_arch_status *s = &ret->arch[i];
        s->arch = a;
        s->native = strcmp(a->elf->arch, host_arch) == 0;
        const binfmt_entry *win = binfmt_effective(&ret->table, a, NULL);
        if (win) {
            s->handler = *win;
            s->has_handler = true;
            s->kind = binfmt_entry_kind(win);
        }
        shadowed_names(&ret->table, a, win, s);
        if (ret->probed) {
            mar_err *e = NULL;
            if (binfmt_probe_run(a, &s->probe, &e) < 0) {
                s->probe.result = BINFMT_PROBE_FAILED;
                hint(s, "%s", e->msg);
                mar_err_free(e);
            }
            s->has_probe = true;
        }
        if (s->has_handler && !s->native) {
            if (!binfmt_entry_has_flag(win, 'F')) {
                hint(s,
                     "handler '%s' lacks F: it fails inside containers (\"no such file or "
                     "directory\")",
                     win->name);
            }
            if (binfmt_entry_has_flag(win, 'C')) {
                hint(s,
                     "handler '%s' has C: setuid programs in emulated containers run the "
                     "interpreter as root",
                     win->name);
            }
            struct stat st;
            if (stat(win->interpreter, &st) == 0 &&
                (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
                hint(s, "interpreter '%s' is writable by non-root: a container could replace it",
                     win->interpreter);
            }
        }
        if (s->has_probe && !s->native) {
            switch (s->probe.result) {
            case BINFMT_PROBE_ENOEXEC:
                hint(s, "no handler registered: run `mar binfmt install %s`", a->elf->arch);
                break;
            case BINFMT_PROBE_ENOENT:
                hint(s, "the interpreter is not reachable here: register it with F");
                break;
            case BINFMT_PROBE_NATIVE:
                hint(s, "this CPU runs %s binaries itself", a->elf->arch);
                break;
            default:
                break;
            }
        }
    }
    return 0;
}

void binfmt_status_release(binfmt_status *s)
{
    binfmt_table_release(&s->table);
}
