/* vm/: Lima and colima configurations read from testdata/vm (files in their real formats), and
 * every finding `mar doctor` makes about them, for an Apple Silicon Mac, an Intel Mac and this
 * kind of Linux host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vm/vm.h"
#include "tbuf.h"

static char *home(const char *which)
{
    const char *td = getenv("MAR_TESTDATA");
    return mar_xasprintf("%s/vm/%s", td ? td : "testdata", which);
}

static const vm_conf *find(const vm_confs *c, vm_conf_kind kind, const char *name)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].kind == kind && strcmp(c->v[i].name, name) == 0) {
            return &c->v[i];
        }
    }
    fail_msg("no configuration %s", name);
    return NULL;
}

static void test_parse_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        double gib;
    } ok[] = {{"4GiB", 4},     {"4G", 4},         {"4GB", 4},        {"4 GiB", 4},
              {"512MiB", 0.5}, {"2048m", 2},      {"1TiB", 1024},    {"1073741824", 1},
              {"0.5g", 0.5},   {"1048576KiB", 1}, {"8589934592b", 8}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        double g = -1;
        if (!vm_conf_size_gib(ok[i].s, &g) || g < ok[i].gib - 1e-9 || g > ok[i].gib + 1e-9) {
            fail_msg("'%s': got %g, want %g", ok[i].s, g, ok[i].gib);
        }
    }
    static const char *const bad[] = {"", "GiB", "4 XiB", "-1G", "4GiBs", "four"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double g;
        if (vm_conf_size_gib(bad[i], &g)) {
            fail_msg("'%s' parsed as %g", bad[i], g);
        }
    }
}

static void test_discover(void **state)
{
    (void)state;
    _cleanup_free_ char *lh = home("lima-home"), *ch = home("colima-home");
    vm_confs c;
    vm_findings bad = {0};
    vm_conf_discover(lh, ch, &c, &bad);
    /* 3 Lima instances (_config and the broken one not among them), 4 colima profiles and the
     * Lima VMs of three of them. */
    assert_int_equal(c.n, 10);
    assert_int_equal(bad.n, 1);
    assert_int_equal(bad.v[0].severity, VM_PROBLEM);
    assert_non_null(strstr(bad.v[0].file, "broken/lima.yaml"));
    if (!strstr(bad.v[0].message, "lima.yaml:5")) {
        fail_msg("%s", bad.v[0].message);
    }

    const vm_conf *d = find(&c, VM_CONF_LIMA, "docker-vz");
    assert_string_equal(d->vm_type, "vz");
    assert_string_equal(d->arch, "");
    assert_int_equal(d->rosetta.value, 1);
    assert_int_equal(d->rosetta.line, 10);
    assert_int_equal(d->rosetta_binfmt.value, 1);
    assert_int_equal(d->rosetta_old.value, -1);
    assert_true(d->memory_gib == 4.0);
    assert_int_equal(d->memory_line, 22);
    assert_int_equal(d->cpus, 4);

    const vm_conf *q = find(&c, VM_CONF_LIMA, "intel-qemu");
    assert_string_equal(q->vm_type, "qemu");
    assert_int_equal(q->vm_type_line, 2);
    assert_string_equal(q->arch, "x86_64");
    assert_true(q->memory_gib == 2.0);

    const vm_conf *t = find(&c, VM_CONF_LIMA, "twokeys");
    assert_string_equal(t->arch, ""); /* "default" */
    assert_int_equal(t->rosetta_old.value, 1);
    assert_int_equal(t->rosetta_old.line, 6);
    assert_int_equal(t->rosetta.value, 0);
    assert_true(t->memory_gib == 8.0);

    const vm_conf *def = find(&c, VM_CONF_COLIMA, "default");
    assert_string_equal(def->vm_type, "vz");
    assert_int_equal(def->vm_type_line, 62);
    assert_string_equal(def->arch, ""); /* host */
    assert_int_equal(def->rosetta.value, 0);
    assert_true(def->memory_gib == 2.0);
    assert_int_equal(def->memory_line, 13);
    assert_int_equal(def->cpus, 2);
    assert_string_equal(def->runtime, "docker");
    assert_true(def->underlying >= 0);
    assert_string_equal(c.v[def->underlying].name, "colima");

    const vm_conf *x = find(&c, VM_CONF_COLIMA, "x86");
    assert_string_equal(x->arch, "x86_64");
    assert_int_equal(x->rosetta.value, 1);
    assert_string_equal(c.v[x->underlying].vm_type, "qemu");
    assert_int_equal(find(&c, VM_CONF_COLIMA, "qemu")->underlying, -1);
    vm_confs_release(&c);
    vm_findings_release(&bad);
}

static const vm_host_facts apple = {.os = "darwin", .arch = "arm64", .amd64_used = true};
static const vm_host_facts apple_no_amd64 = {.os = "darwin", .arch = "arm64"};
static const vm_host_facts intel_mac = {.os = "darwin", .arch = "amd64"};
static const vm_host_facts linux_amd64 = {.os = "linux", .arch = "amd64"};

/* The findings of one configuration as "severity@line: message", one per line. */
static char *findings(const vm_confs *c, const vm_conf *x, const vm_host_facts *h)
{
    vm_findings f = {0};
    vm_conf_findings(x, h, &f);
    if (x->underlying >= 0) {
        vm_conf_cross_findings(x, &c->v[x->underlying], &f);
    }
    mar_buf b = MAR_BUF_INIT(1u << 20);
    for (size_t i = 0; i < f.n; i++) {
        assert_string_equal(f.v[i].area, "vm");
        assert_string_equal(f.v[i].file, x->path);
        if (f.v[i].severity != VM_OK) {
            assert_true(f.v[i].fix[0] != '\0');
        }
        char *line = mar_xasprintf("%s@%zu: %s\n", vm_severity_name(f.v[i].severity), f.v[i].line,
                                   f.v[i].message);
        T_BUF(mar_buf_append(&b, line, strlen(line)));
        free(line);
    }
    T_BUF(mar_buf_append(&b, "", 1));
    vm_findings_release(&f);
    return (char *)b.data;
}

static void has(const char *all, const char *want)
{
    if (!strstr(all, want)) {
        fail_msg("no finding '%s' in:\n%s", want, all);
    }
}

static void test_findings(void **state)
{
    (void)state;
    _cleanup_free_ char *lh = home("lima-home"), *ch = home("colima-home");
    vm_confs c;
    vm_findings bad = {0};
    vm_conf_discover(lh, ch, &c, &bad);
    char *s;

    /* A good instance: one ok line, wherever it is looked at from. */
    s = findings(&c, find(&c, VM_CONF_LIMA, "docker-vz"), &apple);
    has(s, "ok@0: vz, aarch64 VM, Rosetta on, 4 GiB");
    assert_null(strstr(s, "problem"));
    assert_null(strstr(s, "warning"));
    free(s);
    s = findings(&c, find(&c, VM_CONF_COLIMA, "good"), &apple);
    has(s, "ok@0: vz, aarch64 VM, Rosetta on, 8 GiB");
    free(s);

    /* x86_64 under QEMU on Apple Silicon, 2 GiB: the whole machine emulated, OOM kills. */
    s = findings(&c, find(&c, VM_CONF_LIMA, "intel-qemu"), &apple);
    has(s, "problem@3: the VM is x86_64 on an aarch64 host: QEMU emulates the whole machine");
    has(s, "problem@8: 2 GiB of memory for emulated amd64 workloads: expect OOM kills");
    assert_null(strstr(s, "vmType qemu on Apple Silicon")); /* the arch is the point */
    free(s);
    /* The same file on an Intel Mac is a native VM: nothing wrong. */
    s = findings(&c, find(&c, VM_CONF_LIMA, "intel-qemu"), &intel_mac);
    has(s, "ok@0: qemu, x86_64 VM, Rosetta off, 2 GiB");
    free(s);

    /* Both Rosetta keys, disagreeing. */
    s = findings(&c, find(&c, VM_CONF_LIMA, "twokeys"), &apple);
    has(s, "problem@6: the deprecated top-level rosetta.enabled (true) contradicts "
           "vmOpts.vz.rosetta.enabled (false, line 11)");
    has(s, "problem@11: Rosetta is off and the store holds amd64 images");
    free(s);

    /* colima's classic: vz + Rosetta asked with an x86_64 arch; its Lima VM is QEMU. */
    s = findings(&c, find(&c, VM_CONF_COLIMA, "x86"), &apple);
    has(s, "problem@6: vz with Rosetta was asked for an x86_64 VM on an aarch64 host: colima "
           "silently falls back to a QEMU VM");
    has(s, "problem@5: 2 GiB of memory for emulated amd64 workloads");
    has(s, "problem@8: colima.yaml asks for vz, but its Lima VM");
    has(s, "is qemu: colima fell back to QEMU");
    has(s, "problem@9: colima.yaml asks for Rosetta, but its Lima VM");
    free(s);

    /* The default profile: vz without Rosetta while amd64 images are used, 2 GiB. */
    s = findings(&c, find(&c, VM_CONF_COLIMA, "default"), &apple);
    has(s, "problem@66: Rosetta is off and the store holds amd64 images");
    has(s, "problem@13: 2 GiB of memory for emulated amd64 workloads");
    free(s);
    /* Without amd64 images it is only a warning, and 2 GiB is fine. */
    s = findings(&c, find(&c, VM_CONF_COLIMA, "default"), &apple_no_amd64);
    has(s, "warning@66: Rosetta is off: amd64 containers run under QEMU user mode");
    assert_null(strstr(s, "memory"));
    free(s);

    /* A QEMU VM on Apple Silicon. */
    s = findings(&c, find(&c, VM_CONF_COLIMA, "qemu"), &apple);
    has(s, "problem@6: vmType qemu on Apple Silicon: no Rosetta");
    assert_null(strstr(s, "memory")); /* 3 GiB */
    free(s);
    s = findings(&c, find(&c, VM_CONF_COLIMA, "qemu"), &apple_no_amd64);
    has(s, "warning@6: vmType qemu on Apple Silicon");
    free(s);

    /* On this kind of host (Linux amd64) an aarch64 VM is the foreign one. */
    s = findings(&c, find(&c, VM_CONF_COLIMA, "qemu"), &linux_amd64);
    has(s, "problem@4: the VM is aarch64 on an x86_64 host");
    free(s);

    vm_confs_release(&c);
    vm_findings_release(&bad);
}

static void test_parse_errors(void **state)
{
    (void)state;
    vm_conf c;
    mar_err *e = NULL;
    assert_int_equal(vm_conf_parse(VM_CONF_LIMA, "x.yaml", "- a\n- b\n", 8, &c, &e), -MAR_EUSAGE);
    assert_string_equal(e->msg, "x.yaml:1: not a Lima configuration (not a mapping)");
    mar_err_free(e);
    e = NULL;
    const char *bad = "vmType: vz\nmemory: [\n";
    assert_int_equal(vm_conf_parse(VM_CONF_COLIMA, "c.yaml", bad, strlen(bad), &c, &e),
                     -MAR_EUSAGE);
    assert_non_null(strstr(e->msg, "c.yaml:3"));
    mar_err_free(e);
    /* An empty file is an empty configuration: every setting at its default. */
    e = NULL;
    assert_int_equal(vm_conf_parse(VM_CONF_LIMA, "e.yaml", "", 0, &c, &e), 0);
    assert_string_equal(c.vm_type, "");
    assert_int_equal(c.rosetta.value, -1);
    /* Memory Lima cannot parse is left unset, not guessed. */
    const char *m = "memory: lots\n";
    assert_int_equal(vm_conf_parse(VM_CONF_LIMA, "m.yaml", m, strlen(m), &c, &e), 0);
    assert_true(c.memory_gib == 0);
}

static void test_exe_archs(void **state)
{
    (void)state;
    char out[64];
    /* Mach-O thin, as both CPUs write it (little-endian MH_MAGIC_64, then cputype). */
    static const unsigned char x86[32] = {0xcf, 0xfa, 0xed, 0xfe, 0x07, 0x00, 0x00, 0x01};
    static const unsigned char arm[32] = {0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0x00, 0x00, 0x01};
    assert_true(vm_exe_archs(x86, sizeof(x86), out, sizeof(out)));
    assert_string_equal(out, "amd64");
    assert_true(vm_exe_archs(arm, sizeof(arm), out, sizeof(out)));
    assert_string_equal(out, "arm64");
    /* Universal: big-endian fat header, two 20-byte fat_arch records. */
    static const unsigned char fat[48] = {
            0xca, 0xfe, 0xba, 0xbe, 0, 0, 0,    2, 0x01, 0, 0,    0x07, 0,    0, 0, 3,
            0,    0,    0x40, 0,    0, 0, 0x10, 0, 0,    0, 0,    14,   0x01, 0, 0, 0x0c,
            0,    0,    0,    0,    0, 0, 0x80, 0, 0,    0, 0x10, 0,    0,    0, 0, 14};
    assert_true(vm_exe_archs(fat, sizeof(fat), out, sizeof(out)));
    assert_string_equal(out, "amd64,arm64");
    /* A Java class file shares the magic; its version is no slice count. */
    static const unsigned char java[16] = {0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0x34};
    assert_false(vm_exe_archs(java, sizeof(java), out, sizeof(out)));
    /* ELF: an aarch64 executable header. */
    unsigned char elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    elf[16] = 2;    /* ET_EXEC */
    elf[18] = 0xb7; /* EM_AARCH64 */
    elf[20] = 1;    /* EV_CURRENT */
    elf[52] = 64;   /* e_ehsize */
    assert_true(vm_exe_archs(elf, sizeof(elf), out, sizeof(out)));
    assert_string_equal(out, "arm64");
    static const char script[] = "#!/bin/sh\nexec /opt/homebrew/bin/limactl \"$@\"\n";
    assert_false(vm_exe_archs((const unsigned char *)script, sizeof(script), out, sizeof(out)));
    assert_false(vm_exe_archs(x86, 4, out, sizeof(out)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_sizes), cmocka_unit_test(test_discover),
            cmocka_unit_test(test_findings),    cmocka_unit_test(test_parse_errors),
            cmocka_unit_test(test_exe_archs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
