/* bld_explain (builder/build-explain.c) for machines other than this host, as `mar build
 * --explain --build-machine` plans: the verdicts of vm_plan_platform for each stage's platform on
 * that machine (Apple Silicon with Rosetta or QEMU, by macOS release; an Intel Mac), and
 * $BUILDPLATFORM taken from the machine, not from the host the test runs on
 * (docs/internals/build.md §10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "builder/builder.h"

/* A tool stage pinned to the build platform (its base names the build architecture), a stage
 * for the target with two RUN steps that uses the tool, and a final stage that runs nothing. */
static const char dockerfile[] = "ARG BASE=busybox\n"
                                 "FROM --platform=$BUILDPLATFORM tools:${BUILDARCH} AS tools\n"
                                 "RUN make tools\n"
                                 "FROM ${BASE} AS build\n"
                                 "COPY --from=tools /out/tool /usr/bin/tool\n"
                                 "RUN make\n"
                                 "RUN make install\n"
                                 "FROM ${BASE}\n"
                                 "COPY --from=build /out /out\n";

static char ctx[] = "/tmp/mar-test-explain-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(ctx) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(ctx);
}

/* Plans dockerfile for the given target platforms on machine (a vm_target_parse spec), from a
 * host that is linux/amd64 whatever the test runs on. */
static void plan(const char *machine, const char *const *platforms, bld_plan *ret)
{
    oci_host host = {.platform = {.os = "linux", .arch = "amd64"}};
    vm_target t;
    mar_err *err = NULL;
    if (vm_target_parse(machine, &host.platform, &t, &err) < 0) {
        fail_msg("%s", err->msg);
    }
    oci_platform ps[4];
    size_t n = 0;
    for (; platforms[n]; n++) {
        assert_int_equal(oci_platform_parse(platforms[n], &host.platform, &ps[n], NULL), 0);
    }
    bld_opts o = {.context = ctx,
                  .dockerfile_name = "Dockerfile",
                  .dockerfile_text = dockerfile,
                  .dockerfile_len = strlen(dockerfile),
                  .platforms = ps,
                  .n_platforms = n,
                  .vm = &t,
                  .host = &host};
    if (bld_explain(&o, ret, &err) < 0) {
        fail_msg("%s", err->msg);
    }
}

static const bld_plan_stage *stage(const bld_plan *pl, const char *target, const char *name)
{
    for (size_t i = 0; i < pl->n; i++) {
        if (strcmp(pl->v[i].target, target) == 0 && strcmp(pl->v[i].stage, name) == 0) {
            return &pl->v[i];
        }
    }
    fail_msg("no stage %s for %s in the plan", name, target);
    return NULL;
}

/* apple-silicon: arm64 native, amd64 under Rosetta; the tool stage runs as linux/arm64 for both
 * targets, and the rewrite advice names it as the build machine's platform. */
static void test_apple_silicon(void **state)
{
    (void)state;
    bld_plan pl;
    const char *const p[] = {"linux/amd64", "linux/arm64", NULL};
    plan("apple-silicon", p, &pl);
    assert_string_equal(pl.machine, "apple-silicon");
    assert_string_equal(pl.build_platform, "linux/arm64");
    assert_int_equal(pl.n, 6);

    const bld_plan_stage *tools = stage(&pl, "linux/amd64", "tools");
    assert_true(tools->build_platform);
    assert_string_equal(tools->platform, "linux/arm64");
    assert_string_equal(tools->base, "tools:arm64");
    assert_int_equal(tools->verdict.mode, VM_RUN_NATIVE);
    assert_null(tools->advice);

    const bld_plan_stage *b = stage(&pl, "linux/amd64", "build");
    assert_string_equal(b->platform, "linux/amd64");
    assert_int_equal(b->n_run, 2);
    assert_int_equal(b->first_run_line, 6);
    assert_int_equal(b->verdict.mode, VM_RUN_EMULATED);
    assert_int_equal(b->verdict.emu, VM_EMU_ROSETTA);
    assert_non_null(b->advice);
    assert_non_null(strstr(b->advice, "runs 2 RUN steps under rosetta for linux/amd64"));
    assert_non_null(strstr(b->advice, "build machine's own platform (linux/arm64)"));
    assert_non_null(strstr(b->advice, "`FROM --platform=$BUILDPLATFORM ${BASE} AS build` "
                                      "(Dockerfile:4)"));

    const bld_plan_stage *ba = stage(&pl, "linux/arm64", "build");
    assert_int_equal(ba->verdict.mode, VM_RUN_NATIVE);
    assert_null(ba->advice);
    assert_int_equal(stage(&pl, "linux/arm64", "stage-2")->n_run, 0);
    assert_int_equal(pl.n_emulated, 2);
    assert_int_equal(pl.n_unavailable, 0);
    bld_plan_release(&pl);
}

/* apple-silicon-qemu: amd64 under QEMU; 32-bit Arm under QEMU too, since M-series cores have no
 * AArch32. */
static void test_apple_silicon_qemu(void **state)
{
    (void)state;
    bld_plan pl;
    const char *const p[] = {"linux/amd64", "linux/arm/v7", NULL};
    plan("apple-silicon-qemu", p, &pl);
    assert_string_equal(pl.build_platform, "linux/arm64");
    const bld_plan_stage *b = stage(&pl, "linux/amd64", "build");
    assert_int_equal(b->verdict.mode, VM_RUN_EMULATED);
    assert_int_equal(b->verdict.emu, VM_EMU_QEMU);
    assert_non_null(strstr(b->advice, "under qemu for linux/amd64"));
    const bld_plan_stage *arm = stage(&pl, "linux/arm/v7", "build");
    assert_int_equal(arm->verdict.mode, VM_RUN_EMULATED);
    assert_int_equal(arm->verdict.emu, VM_EMU_QEMU);
    assert_non_null(strstr(arm->verdict.reason, "no AArch32"));
    assert_int_equal(stage(&pl, "linux/arm/v7", "tools")->verdict.mode, VM_RUN_NATIVE);
    assert_int_equal(pl.n_emulated, 4);
    assert_int_equal(pl.n_unavailable, 0);
    bld_plan_release(&pl);
}

/* x86-64-v3 under Rosetta by the Mac's release: impossible before macOS 15 (a stage that cannot
 * run, with the fix), "may fail" on the current one; the arm64 tool stage is unaffected. */
static void test_rosetta_by_macos(void **state)
{
    (void)state;
    bld_plan pl;
    const char *const p[] = {"linux/amd64/v3", NULL};
    plan("apple-silicon:macos14", p, &pl);
    const bld_plan_stage *b = stage(&pl, "linux/amd64/v3", "build");
    assert_int_equal(b->verdict.mode, VM_RUN_UNAVAILABLE);
    assert_non_null(strstr(b->verdict.reason, "macOS 15"));
    assert_string_equal(b->verdict.fix, "update the Mac to macOS 15 or later");
    assert_null(b->advice);
    assert_int_equal(stage(&pl, "linux/amd64/v3", "tools")->verdict.mode, VM_RUN_NATIVE);
    assert_int_equal(pl.n_unavailable, 1);
    assert_int_equal(pl.n_emulated, 0);
    bld_plan_release(&pl);

    plan("apple-silicon", p, &pl);
    b = stage(&pl, "linux/amd64/v3", "build");
    assert_int_equal(b->verdict.mode, VM_RUN_EMULATED);
    assert_true(b->verdict.uncertain);
    assert_int_equal(pl.n_unavailable, 0);
    assert_int_equal(pl.n_emulated, 2);
    bld_plan_release(&pl);
}

/* intel-mac: amd64 native and $BUILDPLATFORM linux/amd64; arm64 under QEMU. A bare platform
 * without +qemu knows no emulators: the arm64 stage cannot be planned to run. */
static void test_intel_mac_and_platform(void **state)
{
    (void)state;
    bld_plan pl;
    const char *const p[] = {"linux/arm64", NULL};
    plan("intel-mac", p, &pl);
    assert_string_equal(pl.build_platform, "linux/amd64");
    const bld_plan_stage *tools = stage(&pl, "linux/arm64", "tools");
    assert_string_equal(tools->platform, "linux/amd64");
    assert_string_equal(tools->base, "tools:amd64");
    assert_int_equal(tools->verdict.mode, VM_RUN_NATIVE);
    assert_int_equal(stage(&pl, "linux/arm64", "build")->verdict.emu, VM_EMU_QEMU);
    bld_plan_release(&pl);

    const char *const q[] = {"linux/amd64", NULL};
    plan("linux/arm64", q, &pl);
    assert_string_equal(pl.machine, "linux/arm64");
    assert_string_equal(pl.build_platform, "linux/arm64");
    assert_int_equal(stage(&pl, "linux/amd64", "build")->verdict.mode, VM_RUN_UNAVAILABLE);
    assert_int_equal(pl.n_unavailable, 1);
    bld_plan_release(&pl);
    plan("linux/arm64+qemu", q, &pl);
    assert_int_equal(stage(&pl, "linux/amd64", "build")->verdict.emu, VM_EMU_QEMU);
    assert_int_equal(pl.n_unavailable, 0);
    bld_plan_release(&pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_apple_silicon),
            cmocka_unit_test(test_apple_silicon_qemu),
            cmocka_unit_test(test_rosetta_by_macos),
            cmocka_unit_test(test_intel_mac_and_platform),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
