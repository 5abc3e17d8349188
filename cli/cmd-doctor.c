/* mar doctor: what is wrong with this machine for running containers of other architectures,
 * with a verdict (ok / warning / problem) and a fix per finding (docs/mar-doctor.1.md). Five
 * areas: the host (and on macOS whether mar itself runs translated), emulation (the effective
 * binfmt_misc handler per architecture, Rosetta shadowed, flags), containerd (reachable,
 * version, snapshotters), the store (size, free space), and every Lima and colima VM
 * configuration on disk (vm/vmcheck.c). Exit 1 when anything is a problem. */
#include "cli-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>
#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

#define DEFAULT_ADDRESS "/run/containerd/containerd.sock"

static vm_finding *add(vm_findings *out, vm_severity sev, const char *area, const char *subject,
                       const char *fix, const char *fmt, ...) MAR_PRINTF(6, 7);
static vm_finding *add(vm_findings *out, vm_severity sev, const char *area, const char *subject,
                       const char *fix, const char *fmt, ...)
{
    vm_finding *f = vm_findings_add(out, sev, area, subject);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
    mar_strlcpy(f->fix, fix ? fix : "", sizeof(f->fix));
    return f;
}

/* 1 when this process runs translated by Rosetta on an Apple Silicon Mac, 0 native, -1 unknown
 * (not macOS). */
static int translated(void)
{
#ifdef __APPLE__
    int v = 0;
    size_t n = sizeof(v);
    if (sysctlbyname("sysctl.proc_translated", &v, &n, NULL, 0) == 0) {
        return v;
    }
    return errno == ENOENT ? 0 : -1;
#else
    return -1;
#endif
}

static void host_findings(const oci_host *h, int xlated, vm_findings *out)
{
    char level[16] = "";
    if (h->amd64_level) {
        snprintf(level, sizeof(level), ", x86-64-v%d", h->amd64_level);
    }
    char plat[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&h->platform, plat, sizeof(plat));
    add(out, VM_OK, "host", "this machine", NULL, "%s %s (%s%s)%s%s", h->platform.os, h->kernel,
        plat, level, h->cpu_model[0] ? ", " : "", h->cpu_model);
    if (xlated == 1) {
        add(out, VM_PROBLEM, "host", "mar",
            "install the arm64 (or universal) build of mar, and "
            "of colima, Lima and QEMU: `file $(command -v colima limactl qemu-system-aarch64)`",
            "mar itself runs translated by Rosetta: an x86-64 toolchain on an M-series Mac makes "
            "VMs it starts x86-64 too, fully emulated (abiosoft/colima#204)");
    }
}

/* What Rosetta translates on this Mac's release (docs/internals/binfmt-and-rosetta.md §11): the
 * real one from sw_vers on macOS, or the one an `apple-silicon:macosN` target names. */
static void rosetta_findings(int major, int minor, const char *target, vm_findings *out)
{
    char rel[96];
    if (!target) {
        snprintf(rel, sizeof(rel), "macOS %d.%d", major, minor);
    } else if (strchr(target, ':')) {
        snprintf(rel, sizeof(rel), "macOS %d (--target)", major);
    } else {
        snprintf(rel, sizeof(rel), "macOS %d, the current release (--target %s:macosN for another)",
                 major, target);
    }
    if (major < VM_MACOS_ROSETTA_AVX) {
        add(out, VM_WARNING, "host", "rosetta",
            "update to macOS 15 or later, or run x86-64-v3 images under QEMU "
            "(`--vm-type qemu` loses Rosetta for everything else)",
            "%s: Rosetta does not translate AVX or AVX2, so x86-64-v3 (and v4) binaries fail "
            "under it; x86-64-v1 and v2 run",
            rel);
        return;
    }
    add(out, VM_OK, "host", "rosetta", NULL,
        "%s: Rosetta translates AVX and AVX2 but not AVX-512; x86-64-v3 binaries may still "
        "fail when they check CPUID first (Rosetta does not report AVX2 there, glibc's "
        "x86-64-v3 check reads it); x86-64-v4 binaries fail",
        rel);
}

/* The first `prog` in PATH, or NULL. */
static char *which(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path) {
        return NULL;
    }
    _cleanup_free_ char *copy = mar_xstrdup(path);
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char *p = mar_xasprintf("%s/%s", *dir ? dir : ".", prog);
        if (access(p, X_OK) == 0) {
            return p;
        }
        free(p);
    }
    return NULL;
}

/* limactl, colima and QEMU must be built for the host's own CPU: an x86-64 build on an M-series
 * Mac runs under Rosetta, sees an x86-64 host and makes every VM x86-64, emulated by TCG
 * (abiosoft/colima#204). */
static void tool_findings(const char *host_arch, vm_findings *out)
{
    static const char *const tools[] = {"limactl", "colima", "qemu-system-aarch64",
                                        "qemu-system-x86_64"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(tools); i++) {
        _cleanup_free_ char *p = which(tools[i]);
        if (!p) {
            continue;
        }
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        unsigned char hdr[4096];
        ssize_t n = fd >= 0 ? read(fd, hdr, sizeof(hdr)) : -1;
        char archs[64];
        if (n <= 0 || !vm_exe_archs(hdr, (size_t)n, archs, sizeof(archs))) {
            continue; /* a script wrapper, or unreadable: nothing to say */
        }
        _cleanup_free_ char *list = mar_xasprintf(",%s,", archs);
        _cleanup_free_ char *want = mar_xasprintf(",%s,", host_arch);
        bool native = strstr(list, want) != NULL;
        if (native) {
            add(out, VM_OK, "host", tools[i], NULL, "%s build (%s)", archs, p);
        } else {
            char fix[512];
            snprintf(fix, sizeof(fix),
                     "install the %s build (on a Mac: from the Homebrew in /opt/homebrew, not an "
                     "Intel one in /usr/local)",
                     host_arch);
            add(out, VM_PROBLEM, "host", tools[i], fix,
                "%s is built for %s only on this %s machine: it runs emulated and starts VMs of "
                "the wrong architecture (abiosoft/colima#204)",
                p, archs, host_arch);
        }
    }
}

/* An enabled Rosetta entry other than the winner that matches the architecture. */
static const binfmt_entry *shadowed_rosetta(const binfmt_status *st, const binfmt_arch_status *s)
{
    unsigned char h2[BINFMT_HEADER_SIZE];
    binfmt_synthetic_header(s->arch, 2, h2);
    for (size_t i = 0; i < st->table.n; i++) {
        const binfmt_entry *e = &st->table.v[i];
        if (e->enabled && binfmt_entry_kind(e) == BINFMT_KIND_ROSETTA &&
            strcmp(e->name, s->handler.name) != 0 && binfmt_entry_matches(e, h2, sizeof(h2))) {
            return e;
        }
    }
    return NULL;
}

static void handler_findings(const binfmt_status *st, const binfmt_arch_status *s, vm_findings *out)
{
    const char *arch = s->arch->elf->arch;
    const binfmt_entry *w = &s->handler;
    char fix[768]; /* two interpreter paths fit */
    bool bad = false;
    const binfmt_entry *ros = shadowed_rosetta(st, s);
    if (ros) {
        snprintf(fix, sizeof(fix),
                 "disable the newer entry (`echo 0 > %s/%s`), or `mar binfmt install --emulator "
                 "rosetta %s` to put Rosetta in front",
                 st->table.root, w->name, arch);
        add(out, VM_PROBLEM, "emulation", arch, fix,
            "Rosetta ('%s') is shadowed by '%s', registered later: %s binaries run under %s",
            ros->name, w->name, arch, binfmt_kind_name(s->kind));
        bad = true;
    }
    if (!binfmt_entry_has_flag(w, 'F')) {
        snprintf(fix, sizeof(fix), "`mar binfmt install %s` registers it with F", arch);
        add(out, VM_WARNING, "emulation", arch, fix,
            "handler '%s' lacks F: inside containers its interpreter is not found (\"no such "
            "file or directory\")",
            w->name);
        bad = true;
    }
    /* Lima and colima register Rosetta with C themselves (docs/internals/binfmt-and-rosetta.md §5).
     */
    if (binfmt_entry_has_flag(w, 'C') && s->kind != BINFMT_KIND_ROSETTA) {
        add(out, VM_WARNING, "emulation", arch,
            "register it without C unless setuid programs must work in emulated containers",
            "handler '%s' has C: setuid programs in emulated containers run the interpreter as "
            "root",
            w->name);
        bad = true;
    }
    struct stat sb;
    if (stat(w->interpreter, &sb) == 0 && (sb.st_uid != 0 || (sb.st_mode & (S_IWGRP | S_IWOTH)))) {
        snprintf(fix, sizeof(fix), "`chown root: %s; chmod go-w %s`", w->interpreter,
                 w->interpreter);
        add(out, VM_PROBLEM, "emulation", arch, fix,
            "interpreter '%s' is writable by non-root: a container could replace it",
            w->interpreter);
        bad = true;
    }
    if (s->has_probe && s->probe.result != BINFMT_PROBE_EMULATED &&
        s->probe.result != BINFMT_PROBE_NATIVE) {
        snprintf(fix, sizeof(fix), "check '%s' exists and runs; `mar binfmt install %s`",
                 w->interpreter, arch);
        add(out, VM_PROBLEM, "emulation", arch, fix,
            "handler '%s' is registered but an %s program does not run: %s", w->name, arch,
            binfmt_probe_result_name(s->probe.result));
        bad = true;
    }
    if (!bad) {
        add(out, VM_OK, "emulation", arch, NULL, "%s ('%s', flags %s)%s", binfmt_kind_name(s->kind),
            w->name, w->flags[0] ? w->flags : "none",
            s->has_probe ? ", an exec probe ran through it" : "");
    }
}

/* native_arch is this host's, or with --target the other machine's (a binfmt tree copied from
 * a VM, or --binfmt-root pointing at one); probes run only for this host. */
void cmd_doctor_emulation(const char *root, const char *native_arch, bool probe, vm_findings *out)
{
    binfmt_status st;
    mar_err *err = NULL;
    if (binfmt_status_read(root, native_arch, probe, &st, &err) < 0) {
        add(out, VM_PROBLEM, "emulation", root, "run mar doctor as root, or check the mount", "%s",
            err->msg);
        mar_err_free(err);
        return;
    }
    if (!st.table.mounted) {
        char fix[512];
        snprintf(fix, sizeof(fix), "`mount -t binfmt_misc binfmt_misc %s` (as root)", root);
        add(out, VM_PROBLEM, "emulation", root, fix,
            "binfmt_misc is not mounted: no foreign binary can run");
        binfmt_status_release(&st);
        return;
    }
    if (!st.table.global_enabled) {
        char fix[512];
        snprintf(fix, sizeof(fix), "`echo 1 > %s/status` (as root)", root);
        add(out, VM_PROBLEM, "emulation", root, fix,
            "binfmt_misc is disabled: every handler is ignored");
    }
    char idle[256] = "";
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch_status *s = &st.arch[i];
        const char *arch = s->arch->elf->arch;
        if (s->native) {
            continue;
        }
        if (s->has_handler) {
            handler_findings(&st, s, out);
        } else if (s->has_probe && s->probe.result == BINFMT_PROBE_NATIVE) {
            add(out, VM_OK, "emulation", arch, NULL, "this CPU runs %s binaries itself", arch);
        } else if (strcmp(arch, "amd64") == 0 || strcmp(arch, "arm64") == 0 ||
                   strcmp(arch, "arm") == 0) {
            char fix[256];
            snprintf(fix, sizeof(fix), "`mar binfmt install %s`%s", arch,
                     strcmp(arch, "amd64") == 0 && strcmp(native_arch, "arm64") == 0
                             ? " (or `--emulator rosetta` in a vz VM with Rosetta)"
                             : "");
            add(out, VM_WARNING, "emulation", arch, fix,
                "no handler: %s images fail with `exec format error`", arch);
        } else {
            size_t n = strlen(idle);
            snprintf(idle + n, sizeof(idle) - n, "%s%s", n ? ", " : "", arch);
        }
    }
    if (idle[0]) {
        add(out, VM_OK, "emulation", "others", NULL,
            "no handler for %s (needed only to run such images)", idle);
    }
    binfmt_status_release(&st);
}

void cmd_doctor_containerd(const char *address, vm_findings *out)
{
    vm_ctd *c = NULL;
    mar_err *err = NULL;
    _cleanup_free_ char *version = NULL;
    if (vm_ctd_connect(address, "mar", &c, &err) < 0 || vm_ctd_version(c, &version, &err) < 0) {
        add(out, VM_WARNING, "containerd", address,
            "start containerd (`systemctl start containerd`) or point CONTAINERD_ADDRESS at its "
            "socket; only `mar run` needs it",
            "not reachable: %s", err->msg);
        mar_err_free(err);
        vm_ctd_free(c);
        return;
    }
    add(out, VM_OK, "containerd", address, NULL, "containerd %s", version);
    vm_ctd_plugin *p = NULL;
    size_t n = 0;
    if (vm_ctd_plugins(c, "io.containerd.snapshotter.v1", &p, &n, &err) < 0) {
        add(out, VM_WARNING, "containerd", address, NULL, "cannot list its snapshotters: %s",
            err->msg);
        mar_err_free(err);
        vm_ctd_free(c);
        return;
    }
    char ok[256] = "";
    for (size_t i = 0; i < n; i++) {
        if (!p[i].init_err[0]) {
            size_t k = strlen(ok);
            snprintf(ok + k, sizeof(ok) - k, "%s%s", k ? ", " : "", p[i].id);
        } else if (strcmp(p[i].id, "overlayfs") == 0) {
            /* The others (btrfs, zfs, devmapper, aufs) fail on most machines by design. */
            add(out, VM_WARNING, "containerd", "overlayfs snapshotter",
                "check the kernel's overlay module and the filesystem under containerd's root",
                "unavailable: %s", p[i].init_err);
        }
    }
    add(out, ok[0] ? VM_OK : VM_WARNING, "containerd", "snapshotters", NULL, "%s",
        ok[0] ? ok : "none works");
    free(p);
    vm_ctd_free(c);
}

static uint64_t walk_bytes;

static int walk_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F) {
        walk_bytes += (uint64_t)sb->st_blocks * 512;
    }
    return 0;
}

static void store_findings(const cmd_args *args, vm_findings *out, bool *amd64_used)
{
    _cleanup_free_ char *path = NULL;
    mar_err *err = NULL;
    if (reg_store_default_path(cmd_value(args, "store"), &path, &err) < 0) {
        add(out, VM_WARNING, "store", "store", "set MAR_STORE or --store", "%s", err->msg);
        mar_err_free(err);
        return;
    }
    _cleanup_store_ reg_store *s = cmd_existing_store(args);
    if (!s) {
        add(out, VM_OK, "store", path, NULL, "no store yet (the first `mar pull` creates it)");
        return;
    }
    reg_store_refs refs = {0};
    size_t images = 0;
    if (reg_store_list(s, &refs, &err) < 0) {
        add(out, VM_PROBLEM, "store", path, "`mar gc --verify`", "%s", err->msg);
        mar_err_free(err);
    }
    for (size_t i = 0; i < refs.n; i++) {
        images += !refs.v[i].has_platform;
        *amd64_used = *amd64_used ||
                      (refs.v[i].has_platform && strcmp(refs.v[i].platform.arch, "amd64") == 0);
    }
    reg_store_refs_release(&refs);
    walk_bytes = 0;
    nftw(path, walk_cb, 16, FTW_PHYS);
    struct statvfs vfs;
    double free_gib = -1;
    if (statvfs(path, &vfs) == 0) {
        free_gib = (double)vfs.f_bavail * (double)vfs.f_frsize / (1024.0 * 1024 * 1024);
    }
    add(out, VM_OK, "store", path, NULL, "%zu image%s, %.1f MiB on disk, %.1f GiB free", images,
        images == 1 ? "" : "s", (double)walk_bytes / (1024.0 * 1024), free_gib);
    if (free_gib >= 0 && free_gib < 1) {
        add(out, VM_PROBLEM, "store", path, "`mar rmi` what is not needed, then `mar gc`",
            "only %.2f GiB free: pulls will fail with exit 9", free_gib);
    } else if (free_gib >= 0 && free_gib < 5) {
        add(out, VM_WARNING, "store", path, "`mar gc` removes what no image needs",
            "%.1f GiB free: a few large images fill it", free_gib);
    }
}

/* docs/internals/binfmt-and-rosetta.md §9: $LIMA_HOME or ~/.lima; $COLIMA_HOME if it exists, else
 * ~/.colima if it exists, else $XDG_CONFIG_HOME/colima (~/.config/colima). */
static void vm_homes(char **lima, char **colima)
{
    const char *home = getenv("HOME");
    const char *lh = getenv("LIMA_HOME");
    *lima = lh && *lh ? mar_xstrdup(lh) : home ? mar_xasprintf("%s/.lima", home) : NULL;
    const char *ch = getenv("COLIMA_HOME");
    if (ch && *ch && access(ch, F_OK) == 0) {
        *colima = mar_xstrdup(ch);
        return;
    }
    _cleanup_free_ char *dot = home ? mar_xasprintf("%s/.colima", home) : NULL;
    if (dot && access(dot, F_OK) == 0) {
        *colima = TAKE_PTR(dot);
        return;
    }
    const char *xdg = getenv("XDG_CONFIG_HOME");
    *colima = xdg && *xdg ? mar_xasprintf("%s/colima", xdg)
              : home      ? mar_xasprintf("%s/.config/colima", home)
                          : NULL;
}

MAR_MUST_USE static int vm_facts(const char *target, const oci_host *h, vm_host_facts *ret,
                                 mar_err **err)
{
    if (!target) {
        mar_strlcpy(ret->os, h->platform.os, sizeof(ret->os));
        mar_strlcpy(ret->arch, h->platform.arch, sizeof(ret->arch));
        return 0;
    }
    if (strncmp(target, "apple-silicon", 13) == 0) {
        mar_strlcpy(ret->os, "darwin", sizeof(ret->os));
        mar_strlcpy(ret->arch, "arm64", sizeof(ret->arch));
        return 0;
    }
    if (strcmp(target, "intel-mac") == 0) {
        mar_strlcpy(ret->os, "darwin", sizeof(ret->os));
        mar_strlcpy(ret->arch, "amd64", sizeof(ret->arch));
        return 0;
    }
    oci_platform p;
    if (oci_platform_parse(target, &h->platform, &p, err) < 0) {
        return mar_err_wrap(err, "--target");
    }
    mar_strlcpy(ret->os, p.os, sizeof(ret->os));
    mar_strlcpy(ret->arch, p.arch, sizeof(ret->arch));
    return 0;
}

/* Each Lima instance against what limactl says it is (when limactl is installed). */
static void live_findings(const vm_confs *confs, vm_findings *out)
{
    _cleanup_free_ char *limactl = which("limactl");
    if (!limactl) {
        return;
    }
    vm_lima_status *live = NULL;
    size_t n = 0;
    mar_err *err = NULL;
    if (vm_lima_list(&vm_runner_system, &live, &n, &err) < 0) {
        add(out, VM_WARNING, "vm", "limactl", "run `limactl list` to see why",
            "cannot list the Lima instances: %s", err->msg);
        mar_err_free(err);
        return;
    }
    for (size_t i = 0; i < confs->n; i++) {
        const vm_conf *c = &confs->v[i];
        for (size_t k = 0; k < n && c->kind == VM_CONF_LIMA; k++) {
            if (strcmp(live[k].name, c->name) == 0) {
                vm_conf_live_findings(c, &live[k], out);
            }
        }
    }
    free(live);
}

static void vm_config_findings(const vm_host_facts *facts, vm_findings *out)
{
    _cleanup_free_ char *lima = NULL, *colima = NULL;
    vm_homes(&lima, &colima);
    vm_confs confs;
    vm_conf_discover(lima, colima, &confs, out);
    for (size_t i = 0; i < confs.n; i++) {
        const vm_conf *c = &confs.v[i];
        /* colima's generated Lima VM is judged through its profile. */
        bool generated = false;
        for (size_t k = 0; k < confs.n; k++) {
            generated = generated || confs.v[k].underlying == (long)i;
        }
        if (generated) {
            continue;
        }
        vm_conf_findings(c, facts, out);
        if (c->underlying >= 0) {
            vm_conf_cross_findings(c, &confs.v[c->underlying], out);
        }
    }
    live_findings(&confs, out);
    if (!confs.n) {
        add(out, VM_OK, "vm", "configurations", NULL,
            "no Lima instance under %s, no colima "
            "profile under %s",
            lima ? lima : "(no HOME)", colima ? colima : "(no HOME)");
    }
    vm_confs_release(&confs);
}

static const char *const areas[] = {"host", "emulation", "containerd", "store", "vm"};

void cmd_doctor_print(const vm_findings *f, const char *const *names, size_t n_names)
{
    for (size_t a = 0; a < n_names; a++) {
        printf("%s%s\n", a ? "\n" : "", names[a]);
        for (size_t i = 0; i < f->n; i++) {
            const vm_finding *x = &f->v[i];
            if (strcmp(x->area, names[a]) != 0) {
                continue;
            }
            printf("  %-8s %s: %s\n", vm_severity_name(x->severity), x->subject, x->message);
            if (x->file[0] && x->line) {
                printf("  %-8s in %s:%zu\n", "", x->file, x->line);
            } else if (x->file[0]) {
                printf("  %-8s in %s\n", "", x->file);
            }
            if (x->fix[0] && x->severity != VM_OK) {
                printf("  %-8s fix: %s\n", "", x->fix);
            }
        }
    }
}

static void print_text(const vm_findings *f, size_t counts[3])
{
    cmd_doctor_print(f, areas, MAR_ARRAY_SIZE(areas));
    printf("\n%zu ok, %zu warning%s, %zu problem%s\n", counts[VM_OK], counts[VM_WARNING],
           counts[VM_WARNING] == 1 ? "" : "s", counts[VM_PROBLEM],
           counts[VM_PROBLEM] == 1 ? "" : "s");
}

static json_t *to_json(const vm_findings *f, const oci_host *h, int xlated, size_t counts[3])
{
    json_t *arr = json_array();
    for (size_t i = 0; i < f->n; i++) {
        const vm_finding *x = &f->v[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "area", x->area, "severity",
                              vm_severity_name(x->severity), "subject", x->subject, "message",
                              x->message);
        if (x->fix[0]) {
            json_object_set_new(o, "fix", json_string(x->fix));
        }
        if (x->file[0]) {
            json_object_set_new(o, "file", json_string(x->file));
            if (x->line) {
                json_object_set_new(o, "line", json_integer((json_int_t)x->line));
            }
        }
        json_array_append_new(arr, o);
    }
    char plat[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&h->platform, plat, sizeof(plat));
    json_t *host = json_pack("{s:s, s:s, s:s, s:s}", "platform", plat, "kernel", h->kernel,
                             "machine", h->machine, "cpu", h->cpu_model);
    if (h->amd64_level) {
        json_object_set_new(host, "amd64Level", json_integer(h->amd64_level));
    }
    if (xlated >= 0) {
        json_object_set_new(host, "translated", json_boolean(xlated == 1));
    }
    return json_pack("{s:o, s:o, s:{s:I, s:I, s:I}}", "host", host, "findings", arr, "summary",
                     "ok", (json_int_t)counts[VM_OK], "warning", (json_int_t)counts[VM_WARNING],
                     "problem", (json_int_t)counts[VM_PROBLEM]);
}

int cmd_doctor(const cmd_def *def, cmd_args *args)
{
    (void)def;
    oci_host host;
    oci_host_detect(&host);
    vm_host_facts facts = {0};
    mar_err *err = NULL;
    if (vm_facts(cmd_value(args, "target"), &host, &facts, &err) < 0) {
        return cmd_fail(err);
    }
    const char *address = cmd_value(args, "address");
    if (!address || !*address) {
        address = getenv("CONTAINERD_ADDRESS");
    }
    int xlated = translated();
    vm_findings f = {0};
    host_findings(&host, xlated, &f);
    const char *target = cmd_value(args, "target");
    if (target && strncmp(target, "apple-silicon", 13) == 0) {
        vm_target t;
        if (vm_target_parse(target, &host.platform, &t, &err) < 0) {
            vm_findings_release(&f);
            return cmd_fail(err);
        }
        rosetta_findings(t.macos_major, 0, target, &f);
    } else if (!target && strcmp(host.platform.os, "darwin") == 0 &&
               strcmp(host.platform.arch, "arm64") == 0) {
        int major = 0, minor = 0;
        if (vm_macos_version(&vm_runner_system, &major, &minor, &err) < 0) {
            add(&f, VM_WARNING, "host", "rosetta", NULL,
                "cannot read the macOS release (%s): what Rosetta translates depends on it",
                err->msg);
            mar_err_free(TAKE_PTR(err));
        } else {
            rosetta_findings(major, minor, NULL, &f);
        }
    }
    tool_findings(facts.arch, &f);
    cmd_doctor_emulation(binfmt_root(cmd_value(args, "binfmt-root")), facts.arch,
                         !cmd_flag(args, "no-probe") && !target, &f);
    cmd_doctor_containerd(address && *address ? address : DEFAULT_ADDRESS, &f);
    store_findings(args, &f, &facts.amd64_used);
    vm_config_findings(&facts, &f);
    size_t counts[3] = {0};
    for (size_t i = 0; i < f.n; i++) {
        counts[f.v[i].severity]++;
    }
    if (cmd_flag(args, "json")) {
        json_t *doc = to_json(&f, &host, xlated, counts);
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else {
        print_text(&f, counts);
    }
    vm_findings_release(&f);
    return counts[VM_PROBLEM] ? 1 : 0;
}
