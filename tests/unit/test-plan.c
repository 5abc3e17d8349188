/* vm/: the execution planner for this host and for named targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "vm/vm.h"

static oci_platform P(const char *spec)
{
    oci_platform host = {.os = "linux", .arch = "amd64"};
    oci_platform p;
    mar_err *e = NULL;
    assert_int_equal(oci_platform_parse(spec, &host, &p, &e), 0);
    return p;
}

static void label(const vm_target *t, const char *spec, char *buf, size_t n)
{
    oci_platform p = P(spec);
    vm_verdict v;
    vm_plan_platform(t, &p, &v);
    vm_verdict_label(&v, buf, n);
}

static void expect(const vm_target *t, const char *spec, const char *want)
{
    char got[64];
    label(t, spec, got, sizeof(got));
    if (strcmp(got, want) != 0) {
        print_error("%s on %s: got '%s', want '%s'\n", spec, t->name, got, want);
        fail();
    }
}

static vm_target amd64_host(int level)
{
    oci_host h = {0};
    h.platform = P("linux/amd64");
    h.amd64_level = level;
    vm_target t;
    vm_target_from_host(&h, &t);
    vm_handler arm64 = {
            .arch = "arm64", .emu = VM_EMU_QEMU, .fix_binary = true, .entry = "qemu-aarch64"};
    vm_handler arm = {.arch = "arm", .emu = VM_EMU_QEMU, .fix_binary = false, .entry = "qemu-arm"};
    vm_target_add_handler(&t, &arm64);
    vm_target_add_handler(&t, &arm);
    t.binfmt_known = true;
    return t;
}

static void test_host(void **state)
{
    (void)state;
    vm_target t = amd64_host(2);
    expect(&t, "linux/amd64", "native");
    expect(&t, "linux/386", "native");
    expect(&t, "linux/amd64/v2", "native");
    expect(&t, "linux/amd64/v3", "unavailable");
    expect(&t, "linux/arm64", "emulated (qemu)");
    expect(&t, "linux/arm/v7", "emulated (qemu)");
    expect(&t, "linux/s390x", "no emulator");
    expect(&t, "windows/amd64", "unavailable");

    oci_platform p = P("linux/s390x");
    vm_verdict v;
    vm_plan_platform(&t, &p, &v);
    assert_int_equal(v.mode, VM_RUN_UNAVAILABLE);
    assert_non_null(strstr(v.reason, "no binfmt_misc handler for s390x"));
    assert_true(v.fix[0] != '\0');
    p = P("linux/arm/v7");
    vm_plan_platform(&t, &p, &v);
    assert_non_null(strstr(v.reason, "lacks the F flag"));
    p = P("linux/amd64/v3");
    vm_plan_platform(&t, &p, &v);
    assert_non_null(strstr(v.reason, "x86-64-v3"));
    t = amd64_host(3);
    expect(&t, "linux/amd64/v3", "native");
}

static void test_apple_silicon(void **state)
{
    (void)state;
    vm_target t;
    mar_err *e = NULL;
    oci_platform host = P("linux/amd64");
    assert_int_equal(vm_target_parse("apple-silicon", &host, &t, &e), 0);
    expect(&t, "linux/arm64", "native");
    expect(&t, "linux/arm64/v8", "native");
    expect(&t, "linux/amd64", "emulated (rosetta)");
    expect(&t, "linux/386", "emulated (qemu)");
    expect(&t, "linux/arm/v7", "emulated (qemu)");
    expect(&t, "linux/arm/v6", "emulated (qemu)");
    expect(&t, "linux/s390x", "emulated (qemu)");
    /* The current macOS: Rosetta translates AVX2 but hides it from CPUID (may fail); never
     * AVX-512. */
    assert_int_equal(t.macos_major, VM_MACOS_CURRENT);
    expect(&t, "linux/amd64/v3", "emulated (rosetta), may fail");
    expect(&t, "linux/amd64/v4", "unavailable");
    oci_platform p = P("linux/arm/v7");
    vm_verdict v;
    vm_plan_platform(&t, &p, &v);
    assert_non_null(strstr(v.reason, "AArch32"));
    p = P("linux/amd64/v3");
    vm_plan_platform(&t, &p, &v);
    assert_true(v.uncertain);
    assert_non_null(strstr(v.reason, "CPUID"));
    p = P("linux/amd64/v4");
    vm_plan_platform(&t, &p, &v);
    assert_non_null(strstr(v.reason, "AVX-512"));
    p = P("linux/amd64/v2");
    vm_plan_platform(&t, &p, &v);
    assert_false(v.uncertain);

    /* An older Mac: no AVX2 at all before macOS 15, a certain refusal with the fix. */
    assert_int_equal(vm_target_parse("apple-silicon:macos14", &host, &t, &e), 0);
    assert_int_equal(t.macos_major, 14);
    expect(&t, "linux/amd64/v3", "unavailable");
    expect(&t, "linux/amd64/v2", "emulated (rosetta)");
    p = P("linux/amd64/v3");
    vm_plan_platform(&t, &p, &v);
    assert_non_null(strstr(v.reason, "macOS 14"));
    assert_non_null(strstr(v.fix, "macOS 15"));
    assert_int_equal(vm_target_parse("apple-silicon:macos15", &host, &t, &e), 0);
    expect(&t, "linux/amd64/v3", "emulated (rosetta), may fail");
    assert_int_equal(vm_target_parse("apple-silicon-qemu:macos13", &host, &t, &e), 0);
    expect(&t, "linux/amd64/v3", "emulated (qemu)");
    static const char *const bad[] = {"apple-silicon:macos12", "apple-silicon:14",
                                      "apple-silicon:macos", "apple-silicon:macosX", NULL};
    for (size_t i = 0; bad[i]; i++) {
        assert_int_equal(vm_target_parse(bad[i], &host, &t, &e), -MAR_EUSAGE);
        assert_non_null(strstr(e->msg, "macosN"));
        mar_err_free(TAKE_PTR(e));
    }

    /* A Linux machine with a Rosetta handler (inside the VM): the Mac's release is unknown. */
    oci_host lh = {0};
    lh.platform = P("linux/arm64");
    vm_target_from_host(&lh, &t);
    vm_handler ros = {
            .arch = "amd64", .emu = VM_EMU_ROSETTA, .fix_binary = true, .entry = "rosetta"};
    vm_target_add_handler(&t, &ros);
    p = P("linux/amd64/v3");
    vm_plan_platform(&t, &p, &v);
    assert_int_equal(v.mode, VM_RUN_EMULATED);
    assert_true(v.uncertain);
    assert_non_null(strstr(v.reason, "unknown"));

    assert_int_equal(vm_target_parse("apple-silicon-qemu", &host, &t, &e), 0);
    expect(&t, "linux/amd64", "emulated (qemu)");
    assert_int_equal(vm_target_parse("intel-mac", &host, &t, &e), 0);
    expect(&t, "linux/amd64", "native");
    expect(&t, "linux/arm64", "emulated (qemu)");
}

static void test_platform_targets(void **state)
{
    (void)state;
    vm_target t;
    mar_err *e = NULL;
    oci_platform host = P("linux/amd64");
    assert_int_equal(vm_target_parse("linux/arm64", &host, &t, &e), 0);
    expect(&t, "linux/arm64", "native");
    expect(&t, "linux/arm/v7", "native");
    expect(&t, "linux/amd64", "no emulator");
    assert_int_equal(vm_target_parse("linux/arm64+qemu", &host, &t, &e), 0);
    expect(&t, "linux/amd64", "emulated (qemu)");
    assert_int_equal(vm_target_parse("linux/arm/v6", &host, &t, &e), 0);
    expect(&t, "linux/arm/v5", "native");
    expect(&t, "linux/arm/v7", "no emulator");
    assert_int_equal(vm_target_parse("commodore-64", &host, &t, &e), -MAR_EUSAGE);
    assert_non_null(strstr(e->msg, "apple-silicon"));
    mar_err_free(e);
}

static void test_matcher_and_names(void **state)
{
    (void)state;
    vm_target t = amd64_host(1);
    oci_matcher m;
    vm_target_matcher(&t, &m);
    oci_platform p = P("linux/386");
    assert_true(oci_matcher_match(&m, &p));
    assert_string_equal(vm_run_mode_name(VM_RUN_EMULATED), "emulated");
    assert_string_equal(vm_emulator_name(VM_EMU_ROSETTA), "rosetta");
    assert_null(vm_emulator_name(VM_EMU_NONE));
}

/* sw_vers answers, recorded. */
typedef struct fake_sw {
    const char *out;
    int status;
    bool missing;
} fake_sw;

static int sw_run(void *ctx, const char *const *argv, mar_buf *out, mar_buf *errout,
                  int *ret_status, mar_err **err)
{
    (void)errout;
    const fake_sw *f = ctx;
    assert_string_equal(argv[0], "sw_vers");
    assert_string_equal(argv[1], "-productVersion");
    if (f->missing) {
        return mar_err_set(err, MAR_ENOTFOUND, 0, "no program 'sw_vers'");
    }
    assert_int_equal(mar_buf_append(out, f->out, strlen(f->out)), 0);
    *ret_status = f->status;
    return 0;
}

static void test_macos_version(void **state)
{
    (void)state;
    static const struct {
        fake_sw f;
        int rc, major, minor;
    } cases[] = {
            {{"15.1\n", 0, false}, 0, 15, 1},
            {{"14.6.1\n", 0, false}, 0, 14, 6},
            {{"26.0", 0, false}, 0, 26, 0},
            {{"10.15.7\n", 0, false}, 0, 10, 15},
            {{"Sequoia\n", 0, false}, -MAR_EINTEGRITY, 0, 0},
            {{"15\n", 0, false}, -MAR_EINTEGRITY, 0, 0},
            {{"", 1, false}, -MAR_EFAIL, 0, 0},
            {{NULL, 0, true}, -MAR_ENOTFOUND, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vm_runner r = {.run = sw_run, .ctx = (void *)&cases[i].f};
        int major = -1, minor = -1;
        mar_err *e = NULL;
        assert_int_equal(vm_macos_version(&r, &major, &minor, &e), cases[i].rc);
        if (cases[i].rc == 0) {
            assert_int_equal(major, cases[i].major);
            assert_int_equal(minor, cases[i].minor);
        } else {
            assert_non_null(e);
            mar_err_free(e);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_host),
            cmocka_unit_test(test_apple_silicon),
            cmocka_unit_test(test_platform_targets),
            cmocka_unit_test(test_matcher_and_names),
            cmocka_unit_test(test_macos_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
