/* What is wrong with a Lima or colima VM configuration for running containers of other
 * architectures, with a fix for each finding. The pitfalls are those of
 * docs/internals/binfmt-and-rosetta.md §9 and §10: a QEMU VM on Apple Silicon (no Rosetta), a VM of
 * a foreign architecture (the whole machine emulated), colima's silent QEMU fallback for vz +
 * Rosetta with a foreign arch (abiosoft/colima#805, #988), Rosetta mounted but not registered, too
 * little memory for emulated amd64 (OOM kills), and Lima's deprecated top-level `rosetta:`
 * disagreeing with `vmOpts.vz.rosetta`. */
#include "vm.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *vm_severity_name(vm_severity s)
{
    static const char *const names[] = {"ok", "warning", "problem"};
    return names[s];
}

vm_finding *vm_findings_add(vm_findings *f, vm_severity sev, const char *area, const char *subject)
{
    f->v = mar_xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
    vm_finding *x = &f->v[f->n++];
    memset(x, 0, sizeof(*x));
    x->severity = sev;
    mar_strlcpy(x->area, area, sizeof(x->area));
    mar_strlcpy(x->subject, subject, sizeof(x->subject));
    return x;
}

void vm_findings_release(vm_findings *f)
{
    free(f->v);
    f->v = NULL;
    f->n = 0;
}

static vm_finding *add(vm_findings *out, const vm_conf *c, vm_severity sev, size_t line,
                       const char *fix, const char *fmt, ...) MAR_PRINTF(6, 7);
static vm_finding *add(vm_findings *out, const vm_conf *c, vm_severity sev, size_t line,
                       const char *fix, const char *fmt, ...)
{
    char subject[160];
    snprintf(subject, sizeof(subject), "%s %s",
             c->kind == VM_CONF_LIMA ? "lima instance" : "colima profile", c->name);
    vm_finding *f = vm_findings_add(out, sev, "vm", subject);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
    mar_strlcpy(f->fix, fix ? fix : "", sizeof(f->fix));
    mar_strlcpy(f->file, c->path, sizeof(f->file));
    f->line = line;
    return f;
}

/* The VM architecture a host runs natively, in Lima's spelling. */
static const char *native_vm_arch(const vm_host_facts *h)
{
    return strcmp(h->arch, "arm64") == 0   ? "aarch64"
           : strcmp(h->arch, "amd64") == 0 ? "x86_64"
                                           : h->arch;
}

void vm_conf_findings(const vm_conf *c, const vm_host_facts *h, vm_findings *out)
{
    size_t before = out->n;
    bool lima = c->kind == VM_CONF_LIMA;
    bool mac = strcmp(h->os, "darwin") == 0;
    bool apple_silicon = mac && strcmp(h->arch, "arm64") == 0;
    const char *host_arch = native_vm_arch(h);
    bool foreign = c->arch[0] && strcmp(c->arch, host_arch) != 0;
    /* Lima defaults to vz on macOS 13.5+ (it is fixed at creation); colima's file always says. */
    const char *vm_type = c->vm_type[0] ? c->vm_type : lima && mac ? "vz" : "";
    bool vz = strcmp(vm_type, "vz") == 0;
    vm_conf_int ros = c->rosetta.value >= 0 ? c->rosetta : c->rosetta_old;
    vm_conf_int ros_binfmt =
            c->rosetta_binfmt.value >= 0 ? c->rosetta_binfmt : c->rosetta_old_binfmt;
    bool rosetta = ros.value == 1;
    char fix[512];

    if (foreign) {
        snprintf(fix, sizeof(fix),
                 "recreate it as a native %s VM and run %s containers through %s: `mar vm create` "
                 "or %s",
                 host_arch,
                 strcmp(c->arch, "x86_64") == 0    ? "amd64"
                 : strcmp(c->arch, "aarch64") == 0 ? "arm64"
                                                   : c->arch,
                 apple_silicon ? "Rosetta (vz)" : "QEMU user mode",
                 lima ? "`limactl create --arch=default --vm-type=vz --rosetta`"
                      : "`colima delete; colima start --arch aarch64 --vm-type vz --vz-rosetta`");
        if (!lima && vz && rosetta) {
            add(out, c, VM_PROBLEM, c->arch_line, fix,
                "vz with Rosetta was asked for an %s VM on an %s host: colima silently falls back "
                "to a QEMU VM that emulates the whole machine (abiosoft/colima#805)",
                c->arch, host_arch);
        } else if (lima && vz) {
            add(out, c, VM_PROBLEM, c->arch_line, fix,
                "vmType vz cannot run an %s VM on an %s host: the instance will not start", c->arch,
                host_arch);
        } else {
            add(out, c, VM_PROBLEM, c->arch_line, fix,
                "the VM is %s on an %s host: QEMU emulates the whole machine, kernel included, and "
                "every container is many times slower than native",
                c->arch, host_arch);
        }
    }
    if (apple_silicon && !foreign && strcmp(vm_type, "qemu") == 0) {
        add(out, c, h->amd64_used ? VM_PROBLEM : VM_WARNING, c->vm_type_line,
            lima ? "recreate the instance with `limactl create --vm-type=vz --rosetta` (the VM "
                   "type is fixed at creation)"
                 : "recreate the profile with `colima delete; colima start --vm-type vz "
                   "--vz-rosetta` (the VM type is fixed at creation)",
            "vmType qemu on Apple Silicon: no Rosetta, amd64 containers run under QEMU user mode "
            "(slower, and some programs crash)");
    }
    if (apple_silicon && !foreign && vz && !rosetta) {
        add(out, c, h->amd64_used ? VM_PROBLEM : VM_WARNING, ros.line ? ros.line : c->vm_type_line,
            lima ? "set vmOpts.vz.rosetta.enabled and binfmt to true (`limactl edit --rosetta "
                   "NAME`), then restart it"
                 : "`colima stop; colima start --vz-rosetta`",
            "Rosetta is off%s: amd64 containers run under QEMU user mode, or fail with `exec "
            "format error`",
            h->amd64_used ? " and the store holds amd64 images" : "");
    }
    if (lima && rosetta && ros_binfmt.value == 0) {
        add(out, c, VM_WARNING, ros_binfmt.line,
            "set vmOpts.vz.rosetta.binfmt: true, or register it with `mar binfmt install "
            "--emulator rosetta` inside the VM",
            "Rosetta is mounted but not registered with binfmt_misc: amd64 binaries go to QEMU if "
            "a handler is registered, else fail");
    }
    /* Lima 2 reads vmOpts.vz.rosetta; the top-level key is the deprecated spelling. */
    if (lima && c->rosetta.value >= 0 && c->rosetta_old.value >= 0) {
        if (c->rosetta.value != c->rosetta_old.value) {
            add(out, c, VM_PROBLEM, c->rosetta_old.line,
                "keep only vmOpts.vz.rosetta and delete the top-level `rosetta:` block",
                "the deprecated top-level rosetta.enabled (%s) contradicts "
                "vmOpts.vz.rosetta.enabled (%s, line %zu): which one applies depends on the Lima "
                "version",
                c->rosetta_old.value ? "true" : "false", c->rosetta.value ? "true" : "false",
                c->rosetta.line);
        } else {
            add(out, c, VM_WARNING, c->rosetta_old.line, "delete the top-level `rosetta:` block",
                "Rosetta is set twice: the deprecated top-level `rosetta:` and "
                "vmOpts.vz.rosetta");
        }
    }
    /* Emulated amd64 needs more memory than native code (JITs, translation caches); at 2 GiB
     * builds and JVMs are OOM-killed. colima's default is 2 GiB, Lima's min(4 GiB, half the
     * host). */
    bool emulated = foreign || (apple_silicon && (rosetta || h->amd64_used));
    double mem = c->memory_gib ? c->memory_gib : lima ? 0 : 2;
    if (emulated && mem > 0 && mem <= 2.0) {
        add(out, c, VM_PROBLEM, c->memory_line,
            lima ? "set `memory: \"4GiB\"` or more and restart the instance"
                 : "`colima stop; colima start --memory 4` (or more)",
            "%.3g GiB of memory%s for emulated amd64 workloads: expect OOM kills; give it at "
            "least 4 GiB",
            mem, c->memory_gib ? "" : " (colima's default)");
    }
    if (out->n == before) {
        char mem_s[32] = "default memory";
        if (c->memory_gib) {
            snprintf(mem_s, sizeof(mem_s), "%.3g GiB", c->memory_gib);
        }
        add(out, c, VM_OK, 0, NULL, "%s, %s VM, Rosetta %s, %s",
            vm_type[0] ? vm_type : "vm type unset", c->arch[0] ? c->arch : host_arch,
            rosetta ? "on" : "off", mem_s);
    }
}

void vm_conf_cross_findings(const vm_conf *colima, const vm_conf *lima, vm_findings *out)
{
    if (strcmp(colima->vm_type, "vz") == 0 && lima->vm_type[0] &&
        strcmp(lima->vm_type, "vz") != 0) {
        add(out, colima, VM_PROBLEM, colima->vm_type_line,
            "`colima delete` the profile and start it again with a native arch: the VM type is "
            "fixed at creation",
            "colima.yaml asks for vz, but its Lima VM (%s) is %s: colima fell back to QEMU, or "
            "the profile was created before the change (abiosoft/colima#988)",
            lima->path, lima->vm_type);
    }
    vm_conf_int ros = lima->rosetta.value >= 0 ? lima->rosetta : lima->rosetta_old;
    if (colima->rosetta.value == 1 && ros.value != 1) {
        add(out, colima, VM_PROBLEM, colima->rosetta.line,
            "Rosetta needs vz, the host's arch and macOS 13+ on Apple Silicon: `colima stop; "
            "colima start --vz-rosetta`",
            "colima.yaml asks for Rosetta, but its Lima VM (%s) does not enable it: amd64 runs "
            "under QEMU",
            lima->path);
    }
}

void vm_conf_live_findings(const vm_conf *c, const vm_lima_status *live, vm_findings *out)
{
    char fix[512];
    snprintf(fix, sizeof(fix),
             "`limactl delete %s` and create it again from its lima.yaml (`limactl create "
             "--name=%s FILE`, or `mar vm create`): vmType and arch are fixed at creation",
             c->name, c->name);
    if (strcmp(live->status, "Broken") == 0) {
        add(out, c, VM_PROBLEM, 0, fix, "limactl reports the instance as Broken");
    }
    if (c->vm_type[0] && live->vm_type[0] && strcmp(c->vm_type, live->vm_type) != 0) {
        add(out, c, VM_PROBLEM, c->vm_type_line, fix,
            "lima.yaml says vmType %s, but the instance runs %s (limactl list)", c->vm_type,
            live->vm_type);
    }
    if (c->arch[0] && live->arch[0] && strcmp(c->arch, live->arch) != 0) {
        add(out, c, VM_PROBLEM, c->arch_line, fix,
            "lima.yaml says arch %s, but the instance is %s (limactl list)", c->arch, live->arch);
    }
}
