/* Targets and the execution planner (docs/internals/platforms.md §5-§6, §11-§12;
 * docs/internals/binfmt-and-rosetta.md §7). */
#include "vm.h"

#include <string.h>

const char *const vm_profile_names[] = {"apple-silicon", "apple-silicon-qemu", "intel-mac", NULL};

const char *vm_emulator_name(vm_emulator e)
{
    switch (e) {
    case VM_EMU_QEMU:
        return "qemu";
    case VM_EMU_ROSETTA:
        return "rosetta";
    case VM_EMU_OTHER:
        return "other";
    case VM_EMU_NONE:
        break;
    }
    return NULL;
}

const char *vm_run_mode_name(vm_run_mode m)
{
    switch (m) {
    case VM_RUN_NATIVE:
        return "native";
    case VM_RUN_EMULATED:
        return "emulated";
    case VM_RUN_UNAVAILABLE:
        break;
    }
    return "unavailable";
}

void vm_target_from_host(const oci_host *host, vm_target *ret)
{
    memset(ret, 0, sizeof(*ret));
    mar_strlcpy(ret->name, "this host", sizeof(ret->name));
    ret->is_host = true;
    ret->platform = host->platform;
    /* Most arm64 Linux CPUs still execute AArch32; the exec probe of `mar binfmt status` is the
     * authority where it matters. */
    ret->aarch32 = true;
    ret->ia32 = true;
    ret->amd64_level = host->amd64_level;
}

void vm_target_add_handler(vm_target *t, const vm_handler *h)
{
    if (t->n_handlers < VM_MAX_HANDLERS) {
        t->handlers[t->n_handlers++] = *h;
    }
}

static void add_all_qemu(vm_target *t, const char *except)
{
    static const char *const arches[] = {"amd64", "386",     "arm64",    "arm",     "ppc64le",
                                         "s390x", "riscv64", "mips64le", "loong64", NULL};
    for (size_t i = 0; arches[i]; i++) {
        if (strcmp(arches[i], except) == 0) {
            continue;
        }
        bool present = false;
        for (size_t k = 0; k < t->n_handlers; k++) {
            present = present || strcmp(t->handlers[k].arch, arches[i]) == 0;
        }
        if (present) {
            continue;
        }
        vm_handler h = {.emu = VM_EMU_QEMU, .fix_binary = true};
        mar_strlcpy(h.arch, arches[i], sizeof(h.arch));
        snprintf(h.entry, sizeof(h.entry), "qemu-%s", arches[i]);
        vm_target_add_handler(t, &h);
    }
}

int vm_target_parse(const char *spec, const oci_platform *host, vm_target *ret, mar_err **err)
{
    vm_target t = {0};
    mar_strlcpy(t.name, spec, sizeof(t.name));
    t.binfmt_known = true;
    t.ia32 = true;
    char prof[64];
    mar_strlcpy(prof, spec, sizeof(prof));
    char *mac = strncmp(prof, "apple-silicon", 13) == 0 ? strchr(prof, ':') : NULL;
    int64_t macos = VM_MACOS_CURRENT;
    if (mac) {
        *mac++ = '\0';
        if (strncmp(mac, "macos", 5) != 0 ||
            !mar_parse_i64(mac + 5, VM_MACOS_ROSETTA_LINUX, 99, &macos)) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "bad target '%s': the Mac's release is written macosN, N from %d "
                               "(Rosetta for Linux needs macOS %d), e.g. apple-silicon:macos14",
                               spec, VM_MACOS_ROSETTA_LINUX, VM_MACOS_ROSETTA_LINUX);
        }
    }
    if (strcmp(prof, "apple-silicon") == 0 || strcmp(prof, "apple-silicon-qemu") == 0) {
        /* A Lima/colima VM on an M-series Mac: linux/arm64 guest. M-series cores have no AArch32,
         * so 32-bit Arm needs qemu-arm there (docs/internals/platforms.md §11). */
        mar_strlcpy(t.platform.os, "linux", sizeof(t.platform.os));
        mar_strlcpy(t.platform.arch, "arm64", sizeof(t.platform.arch));
        t.aarch32 = false;
        t.macos_major = (int)macos;
        if (strcmp(prof, "apple-silicon") == 0) {
            vm_handler r = {.emu = VM_EMU_ROSETTA, .fix_binary = true};
            mar_strlcpy(r.arch, "amd64", sizeof(r.arch));
            mar_strlcpy(r.entry, "rosetta", sizeof(r.entry));
            mar_strlcpy(r.interpreter, "/mnt/lima-rosetta/rosetta", sizeof(r.interpreter));
            vm_target_add_handler(&t, &r);
        }
        add_all_qemu(&t, "arm64");
        *ret = t;
        return 0;
    }
    if (strcmp(spec, "intel-mac") == 0) {
        /* A Lima/colima VM on an Intel Mac: linux/amd64 guest with QEMU user mode for others. */
        mar_strlcpy(t.platform.os, "linux", sizeof(t.platform.os));
        mar_strlcpy(t.platform.arch, "amd64", sizeof(t.platform.arch));
        add_all_qemu(&t, "amd64");
        *ret = t;
        return 0;
    }
    char plat[128];
    bool with_qemu = false;
    mar_strlcpy(plat, spec, sizeof(plat));
    char *plus = strstr(plat, "+qemu");
    if (plus && plus[5] == '\0') {
        *plus = '\0';
        with_qemu = true;
    }
    if (oci_platform_parse(plat, host, &t.platform, err) < 0) {
        return mar_err_wrap(err,
                            "unknown target '%s' (a platform, or one of apple-silicon[:macosN], "
                            "apple-silicon-qemu[:macosN], intel-mac)",
                            spec);
    }
    oci_platform_normalize(&t.platform, &t.platform);
    t.aarch32 = true;
    t.binfmt_known = with_qemu;
    if (with_qemu) {
        add_all_qemu(&t, t.platform.arch);
    }
    *ret = t;
    return 0;
}

void vm_target_matcher(const vm_target *t, oci_matcher *ret)
{
    oci_matcher_only(ret, &t->platform);
}

static const vm_handler *handler_for(const vm_target *t, const char *arch)
{
    for (size_t i = 0; i < t->n_handlers; i++) {
        if (strcmp(t->handlers[i].arch, arch) == 0) {
            return &t->handlers[i];
        }
    }
    return NULL;
}

static int amd64_level_of(const char *variant)
{
    int64_t v = 1;
    if (variant[0] == 'v' && mar_parse_i64(variant + 1, 1, 9, &v)) {
        return (int)v;
    }
    return 1;
}

/* x86-64-v3 and v4 under Rosetta (docs/internals/binfmt-and-rosetta.md §11): AVX-512 (v4) is
 * never translated; AVX and AVX2 (v3) are from macOS 15 on, but Rosetta does not report them in
 * CPUID, so a program that checks CPUID before it starts (glibc's x86-64-v3 check does) refuses
 * to run while one that just executes them works: "may fail", not "will fail". */
static void rosetta_avx(const vm_target *t, int level, vm_verdict *ret)
{
    if (level >= 4) {
        ret->mode = VM_RUN_UNAVAILABLE;
        snprintf(ret->reason, sizeof(ret->reason),
                 "x86-64-v%d binaries need AVX-512, which Rosetta does not translate", level);
        return;
    }
    if (t->macos_major && t->macos_major < VM_MACOS_ROSETTA_AVX) {
        ret->mode = VM_RUN_UNAVAILABLE;
        snprintf(ret->reason, sizeof(ret->reason),
                 "x86-64-v%d binaries need AVX2, which Rosetta translates only from macOS %d on "
                 "(this Mac: macOS %d)",
                 level, VM_MACOS_ROSETTA_AVX, t->macos_major);
        snprintf(ret->fix, sizeof(ret->fix), "update the Mac to macOS %d or later",
                 VM_MACOS_ROSETTA_AVX);
        return;
    }
    ret->uncertain = true;
    if (t->macos_major) {
        snprintf(ret->reason, sizeof(ret->reason),
                 "may fail: Rosetta translates AVX2 since macOS %d but does not report it in "
                 "CPUID, so a program that checks CPUID first (glibc's x86-64-v%d check) refuses "
                 "to start",
                 VM_MACOS_ROSETTA_AVX, level);
    } else {
        snprintf(ret->reason, sizeof(ret->reason),
                 "may fail: Rosetta translates AVX2 only from macOS %d on (the Mac's release is "
                 "unknown here) and never reports it in CPUID, which glibc's x86-64-v%d check "
                 "reads",
                 VM_MACOS_ROSETTA_AVX, level);
    }
}

void vm_plan_platform(const vm_target *t, const oci_platform *p, vm_verdict *ret)
{
    oci_platform n;
    oci_platform_normalize(p, &n);
    memset(ret, 0, sizeof(*ret));

    if (strcmp(n.os, t->platform.os) != 0) {
        ret->mode = VM_RUN_UNAVAILABLE;
        snprintf(ret->reason, sizeof(ret->reason), "%s images need a %s machine", n.os, n.os);
        return;
    }
    bool same_arch = strcmp(n.arch, t->platform.arch) == 0;
    bool arm_on_arm64 = strcmp(t->platform.arch, "arm64") == 0 && strcmp(n.arch, "arm") == 0;
    bool x86_on_amd64 = strcmp(t->platform.arch, "amd64") == 0 && strcmp(n.arch, "386") == 0;

    if (same_arch && strcmp(n.arch, "amd64") == 0) {
        int need = amd64_level_of(n.variant);
        if (t->amd64_level && need > t->amd64_level) {
            ret->mode = VM_RUN_UNAVAILABLE;
            snprintf(ret->reason, sizeof(ret->reason), "needs x86-64-v%d, this CPU is x86-64-v%d",
                     need, t->amd64_level);
            return;
        }
        ret->mode = VM_RUN_NATIVE;
        return;
    }
    if ((x86_on_amd64 && t->ia32) || (same_arch && strcmp(n.arch, "arm") != 0)) {
        ret->mode = VM_RUN_NATIVE;
        return;
    }
    if ((same_arch || (arm_on_arm64 && t->aarch32))) {
        /* 32-bit Arm: native up to the CPU's own variant (containerd's ladder). */
        oci_matcher m;
        vm_target_matcher(t, &m);
        if (oci_matcher_match(&m, &n)) {
            ret->mode = VM_RUN_NATIVE;
            return;
        }
    }

    ret->foreign = true;
    const vm_handler *h = handler_for(t, n.arch);
    if (h && h->emu != VM_EMU_NONE) {
        ret->mode = VM_RUN_EMULATED;
        ret->emu = h->emu;
        if (h->emu == VM_EMU_ROSETTA && strcmp(n.arch, "amd64") == 0 &&
            amd64_level_of(n.variant) >= 3) {
            rosetta_avx(t, amd64_level_of(n.variant), ret);
            return;
        }
        if (t->is_host && !h->fix_binary) {
            snprintf(ret->reason, sizeof(ret->reason),
                     "handler '%s' lacks the F flag: it fails inside containers", h->entry);
        }
        if (arm_on_arm64 && !t->aarch32) {
            snprintf(ret->reason, sizeof(ret->reason),
                     "32-bit Arm: this CPU has no AArch32, so it runs under %s",
                     vm_emulator_name(h->emu));
        }
        return;
    }
    ret->mode = VM_RUN_UNAVAILABLE;
    if (arm_on_arm64 && !t->aarch32) {
        snprintf(ret->reason, sizeof(ret->reason),
                 "32-bit Arm needs qemu-arm: this CPU does not execute AArch32");
    } else if (x86_on_amd64 && !t->ia32) {
        snprintf(ret->reason, sizeof(ret->reason),
                 "this kernel does not execute 32-bit x86 (no IA32 emulation) and no qemu-i386 "
                 "handler is registered");
    } else if (t->is_host || t->binfmt_known) {
        snprintf(ret->reason, sizeof(ret->reason), "no binfmt_misc handler for %s", n.arch);
    } else {
        snprintf(ret->reason, sizeof(ret->reason), "not native to %s (emulators unknown)", t->name);
    }
    if (t->is_host) {
        snprintf(ret->fix, sizeof(ret->fix), "mar binfmt install %s", n.arch);
    }
}

void vm_verdict_label(const vm_verdict *v, char *buf, size_t n)
{
    switch (v->mode) {
    case VM_RUN_NATIVE:
        snprintf(buf, n, "native");
        return;
    case VM_RUN_EMULATED:
        snprintf(buf, n, "emulated (%s)%s", vm_emulator_name(v->emu),
                 v->uncertain ? ", may fail" : "");
        return;
    case VM_RUN_UNAVAILABLE:
        break;
    }
    snprintf(buf, n, v->foreign && v->emu == VM_EMU_NONE ? "no emulator" : "unavailable");
}
