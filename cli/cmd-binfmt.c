/* mar binfmt status | install | uninstall: which emulator really handles each architecture, and
 * registering QEMU or Rosetta safely. */
#include "cli-internal.h"

#include <string.h>

static const char *root_of(const cmd_args *args)
{
    return binfmt_root(cmd_value(args, "binfmt-root"));
}

/* Architecture arguments: OCI names or aliases ("aarch64", "x86_64", "armhf"), or "all". */
MAR_MUST_USE static int parse_arches(const cmd_args *args, const oci_host *host,
                                     const binfmt_arch **ret, size_t *n, mar_err **err)
{
    *n = 0;
    for (size_t i = 0; i < args->pos.n; i++) {
        const char *a = args->pos.v[i];
        if (strcmp(a, "all") == 0) {
            for (size_t k = 0; k < BINFMT_ARCH_COUNT; k++) {
                const binfmt_arch *ba = binfmt_arch_get((binfmt_arch_id)k);
                if (strcmp(ba->elf->arch, host->platform.arch) != 0) {
                    ret[(*n)++] = ba;
                }
            }
            continue;
        }
        oci_platform p;
        _cleanup_free_ char *spec = strchr(a, '/') ? mar_xstrdup(a) : mar_xasprintf("linux/%s", a);
        if (oci_platform_parse(spec, &host->platform, &p, err) < 0) {
            return mar_err_wrap(err, "unknown architecture '%s'", a);
        }
        oci_platform_normalize(&p, &p);
        const binfmt_arch *ba = binfmt_arch_by_oci(p.arch);
        if (!ba) {
            return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                               "mar has no emulator registration for '%s'", a);
        }
        bool dup = false;
        for (size_t k = 0; k < *n; k++) {
            dup = dup || ret[k] == ba;
        }
        if (!dup) {
            ret[(*n)++] = ba;
        }
    }
    if (*n == 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "name the architectures (or 'all')");
    }
    return 0;
}

static json_t *status_json(const binfmt_status *st, const char *root)
{
    json_t *o = json_object();
    json_object_set_new(o, "root", json_string(root));
    json_object_set_new(o, "mounted", json_boolean(st->table.mounted));
    json_object_set_new(o, "enabled", json_boolean(st->table.global_enabled));
    json_object_set_new(o, "probed", json_boolean(st->probed));
    json_t *arr = json_array();
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch_status *s = &st->arch[i];
        json_t *a = json_object();
        json_object_set_new(a, "arch", json_string(s->arch->elf->arch));
        json_object_set_new(a, "native", json_boolean(s->native));
        if (s->has_handler) {
            json_t *h = json_object();
            json_object_set_new(h, "name", json_string(s->handler.name));
            json_object_set_new(h, "interpreter", json_string(s->handler.interpreter));
            json_object_set_new(h, "flags", json_string(s->handler.flags));
            json_object_set_new(h, "kind", json_string(binfmt_kind_name(s->kind)));
            json_object_set_new(h, "fixBinary",
                                json_boolean(binfmt_entry_has_flag(&s->handler, 'F')));
            json_object_set_new(h, "credentials",
                                json_boolean(binfmt_entry_has_flag(&s->handler, 'C')));
            json_object_set_new(a, "handler", h);
        } else {
            json_object_set_new(a, "handler", json_null());
        }
        json_t *sh = json_array();
        for (size_t k = 0; k < s->n_shadowed; k++) {
            json_array_append_new(sh, json_string(s->shadowed[k]));
        }
        json_object_set_new(a, "shadowed", sh);
        if (s->has_probe) {
            json_object_set_new(a, "probe",
                                json_pack("{s:s, s:o}", "result",
                                          binfmt_probe_result_name(s->probe.result), "interpreter",
                                          s->probe.interpreter[0]
                                                  ? json_string(s->probe.interpreter)
                                                  : json_null()));
        } else {
            json_object_set_new(a, "probe", json_null());
        }
        json_t *h = json_array();
        for (size_t k = 0; k < s->n_hints; k++) {
            json_array_append_new(h, json_string(s->hints[k]));
        }
        json_object_set_new(a, "hints", h);
        json_array_append_new(arr, a);
    }
    json_object_set_new(o, "architectures", arr);
    json_t *entries = json_array();
    for (size_t i = 0; i < st->table.n; i++) {
        const binfmt_entry *e = &st->table.v[i];
        json_array_append_new(entries,
                              json_pack("{s:s, s:b, s:s, s:s, s:s}", "name", e->name, "enabled",
                                        e->enabled, "interpreter", e->interpreter, "flags",
                                        e->flags, "kind", binfmt_kind_name(binfmt_entry_kind(e))));
    }
    json_object_set_new(o, "entries", entries);
    return o;
}

static void status_print(const binfmt_status *st, const char *root)
{
    if (!st->table.mounted) {
        printf("binfmt_misc is not mounted at %s (mount -t binfmt_misc none %s)\n", root, root);
        return;
    }
    printf("binfmt_misc at %s: %s, %zu entr%s%s\n\n", root,
           st->table.global_enabled ? "enabled" : "DISABLED", st->table.n,
           st->table.n == 1 ? "y" : "ies", st->probed ? "" : " (not probed)");
    printf("%-9s %-22s %-8s %-6s %-10s %s\n", "ARCH", "HANDLER", "KIND", "FLAGS", "CONTAINERS",
           "PROBE");
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch_status *s = &st->arch[i];
        char probe[320] = "-";
        if (s->has_probe) {
            snprintf(probe, sizeof(probe), "%s%s%s%s", binfmt_probe_result_name(s->probe.result),
                     s->probe.interpreter[0] ? " (" : "", s->probe.interpreter,
                     s->probe.interpreter[0] ? ")" : "");
        }
        if (s->has_handler) {
            printf("%-9s %-22s %-8s %-6s %-10s %s\n", s->arch->elf->arch, s->handler.name,
                   binfmt_kind_name(s->kind), s->handler.flags[0] ? s->handler.flags : "-",
                   binfmt_entry_has_flag(&s->handler, 'F') ? "yes" : "NO", probe);
        } else {
            printf("%-9s %-22s %-8s %-6s %-10s %s\n", s->arch->elf->arch,
                   s->native ? "(native)" : "-", "-", "-", "-", probe);
        }
    }
    bool first = true;
    size_t no_c = 0;
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        no_c += st->arch[i].has_handler && !st->arch[i].native &&
                !binfmt_entry_has_flag(&st->arch[i].handler, 'C');
    }
    if (no_c) {
        printf("\n  %zu handler%s without C: setuid programs (sudo) fail under emulation\n", no_c,
               no_c == 1 ? "" : "s");
        first = false;
    }
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch_status *s = &st->arch[i];
        for (size_t k = 0; k < s->n_shadowed; k++) {
            if (first) {
                printf("\n");
                first = false;
            }
            printf("  %s: '%s' also matches but is not used\n", s->arch->elf->arch, s->shadowed[k]);
        }
        for (size_t k = 0; k < s->n_hints; k++) {
            if (first) {
                printf("\n");
                first = false;
            }
            printf("  %s: %s\n", s->arch->elf->arch, s->hints[k]);
        }
    }
}

int cmd_binfmt_status(const cmd_def *def, cmd_args *args)
{
    (void)def;
    oci_host host;
    oci_host_detect(&host);
    const char *root = root_of(args);
    binfmt_status st;
    mar_err *err = NULL;
    if (binfmt_status_read(root, host.platform.arch, !cmd_flag(args, "no-probe"), &st, &err) < 0) {
        return cmd_fail(err);
    }
    if (cmd_flag(args, "json")) {
        json_t *doc = status_json(&st, root);
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else {
        status_print(&st, root);
    }
    binfmt_status_release(&st);
    return 0;
}

/* After a change: what really happens now (only against the kernel's own mount). */
static bool probe_after(const char *root, const binfmt_arch *a, binfmt_probe *ret)
{
    if (!binfmt_root_is_kernel(root)) {
        return false;
    }
    mar_err *e = NULL;
    if (binfmt_probe_run(a, ret, &e) < 0) {
        mar_err_free(e);
        return false;
    }
    return true;
}

int cmd_binfmt_install(const cmd_def *def, cmd_args *args)
{
    oci_host host;
    oci_host_detect(&host);
    mar_err *err = NULL;
    const binfmt_arch *arches[BINFMT_ARCH_COUNT];
    size_t n;
    if (parse_arches(args, &host, arches, &n, &err) < 0) {
        return cmd_fail(err);
    }
    binfmt_install_opts o = {
            .root = root_of(args),
            .emulator = BINFMT_KIND_QEMU,
            .qemu_path = cmd_value(args, "qemu-path"),
            .rosetta_path = cmd_value(args, "rosetta-path"),
            .allow_setuid = cmd_flag(args, "allow-setuid"),
            .preserve_argv0 = cmd_flag(args, "preserve-argv0"),
            .replace_handler = cmd_value(args, "replace-handler"),
    };
    const char *emu = cmd_value(args, "emulator");
    if (emu && strcmp(emu, "rosetta") == 0) {
        o.emulator = BINFMT_KIND_ROSETTA;
    } else if (emu && strcmp(emu, "qemu") != 0) {
        return cmd_usage_error(def, "--emulator takes qemu or rosetta");
    }
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        const binfmt_arch *a = arches[i];
        if (strcmp(a->elf->arch, host.platform.arch) == 0) {
            printf("%s: native on this host, nothing to install\n", a->elf->arch);
            continue;
        }
        binfmt_change ch;
        if (binfmt_install(&o, a, &ch, &err) < 0) {
            mar_err_wrap(&err, "%s", a->elf->arch);
            int rc = cmd_fail(err);
            err = NULL;
            status = status ? status : rc;
            continue;
        }
        switch (ch.action) {
        case BINFMT_ALREADY:
            printf("%s: %s is already installed (%s, flags %s)\n", a->elf->arch, ch.name,
                   ch.interpreter, ch.flags);
            break;
        case BINFMT_HANDLED_BY_OTHER:
            printf("%s: already handled by '%s', which mar does not own: left alone (use "
                   "--replace-handler %s to put mar's entry in front of it)\n",
                   a->elf->arch, ch.other, ch.other);
            break;
        default:
            printf("%s: %s %s (%s, flags %s, %s)%s%s%s\n", a->elf->arch,
                   ch.replaced ? "replaced" : "installed", ch.name, ch.interpreter, ch.flags,
                   ch.interp_digest.str, ch.shadows ? "; it now wins over '" : "",
                   ch.shadows ? ch.other : "", ch.shadows ? "'" : "");
            break;
        }
        binfmt_probe pr;
        if (ch.action != BINFMT_HANDLED_BY_OTHER && probe_after(o.root, a, &pr)) {
            if (pr.result == BINFMT_PROBE_EMULATED || pr.result == BINFMT_PROBE_NATIVE) {
                printf("%s: probe: %s%s%s\n", a->elf->arch, binfmt_probe_result_name(pr.result),
                       pr.interpreter[0] ? " via " : "", pr.interpreter);
            } else {
                fprintf(stderr, "mar: %s: registered, but the probe gives: %s\n", a->elf->arch,
                        binfmt_probe_result_name(pr.result));
                status = status ? status : MAR_EFAIL;
            }
        }
    }
    return status;
}

int cmd_binfmt_uninstall(const cmd_def *def, cmd_args *args)
{
    (void)def;
    oci_host host;
    oci_host_detect(&host);
    mar_err *err = NULL;
    const binfmt_arch *arches[BINFMT_ARCH_COUNT];
    size_t n;
    if (parse_arches(args, &host, arches, &n, &err) < 0) {
        return cmd_fail(err);
    }
    const char *root = root_of(args);
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        const binfmt_arch *a = arches[i];
        binfmt_change ch;
        if (binfmt_uninstall(root, a, &ch, &err) < 0) {
            mar_err_wrap(&err, "%s", a->elf->arch);
            int rc = cmd_fail(err);
            err = NULL;
            status = status ? status : rc;
            continue;
        }
        if (ch.action == BINFMT_REMOVED) {
            printf("%s: removed %s\n", a->elf->arch, ch.name);
        } else {
            printf("%s: no entry of mar's to remove\n", a->elf->arch);
        }
        if (ch.other[0]) {
            printf("%s: '%s' is not mar's: left alone, and it handles %s binaries\n", a->elf->arch,
                   ch.other, a->elf->arch);
        }
        binfmt_probe pr;
        if (probe_after(root, a, &pr)) {
            printf("%s: probe: %s%s%s\n", a->elf->arch, binfmt_probe_result_name(pr.result),
                   pr.interpreter[0] ? " via " : "", pr.interpreter);
        }
    }
    return status;
}
