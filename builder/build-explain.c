/* mar build --explain (docs/internals/build.md §10): the plan of a build without pulling or
 * running anything, for this host or another machine (`--build-machine apple-silicon`). The RUN
 * steps of a stage run as the stage's platform, so a stage for another architecture than the
 * build machine's runs every RUN under an emulator, typically 5 to 20 times slower for
 * compilers. The usual remedy is the cross-build pattern of the Dockerfile reference
 * ("Automatic platform ARGs in the global scope"): run the heavy stage as the build platform
 * and let it produce the target's binaries. */
#include "build-internal.h"

#include <string.h>

static char *advice(const bld__ctx *c, size_t i, const char *stage, size_t n_run, const char *emu,
                    const char *build_platform)
{
    const bld_instr *from = &c->df->stages[i].instrs[0];
    return mar_xasprintf(
            "stage %s runs %zu RUN step%s under %s for %s: if %s or install%s much, run "
            "the stage as the build machine's own platform (%s) with `FROM "
            "--platform=$BUILDPLATFORM %s AS %s` (%s:%u), declare `ARG TARGETOS TARGETARCH` in "
            "it and build for $TARGETOS/$TARGETARCH (GOOS/GOARCH, --target, a cross toolchain), "
            "then COPY the result into a stage FROM the target",
            stage, n_run, n_run == 1 ? "" : "s", emu, c->target_str,
            n_run == 1 ? "it compiles" : "they compile", n_run == 1 ? "s" : "", build_platform,
            from->args.n ? from->args.v[0] : "IMAGE", stage, c->df->filename, from->line);
}

int bld_explain(const bld_opts *o, bld_plan *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_dockerfile_ bld_dockerfile *df = NULL;
    if (bld_dockerfile_parse(o->dockerfile_text, o->dockerfile_len, o->dockerfile_name, &df, err) <
        0) {
        return -mar_err_code(*err);
    }
    if (df->n_stages == 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s: no FROM instruction", o->dockerfile_name);
    }
    _cleanup_close_ int ctxfd = mar_root_open(o->context, err);
    if (ctxfd < 0) {
        return -mar_err_code(*err);
    }
    /* The plan is for the machine o->vm: BuildKit sets $BUILDPLATFORM to the platform of the
     * node performing the build (Dockerfile reference, "Automatic platform ARGs in the global
     * scope"), so a machine other than this host brings its own. */
    oci_host machine = *o->host;
    oci_platform_normalize(&o->vm->platform, &machine.platform);
    bld_opts mo = *o;
    mo.host = &machine;
    mar_strlcpy(ret->machine, o->vm->name, sizeof(ret->machine));
    oci_platform_format(&machine.platform, ret->build_platform, sizeof(ret->build_platform));
    int rc = 0;
    for (size_t p = 0; p < o->n_platforms && rc == 0; p++) {
        bld__ctx c;
        memset(&c, 0, sizeof(c));
        rc = bld__ctx_init(&c, &mo, df, p, err);
        bool *needed = mar_xcalloc(df->n_stages + 1, sizeof(*needed));
        for (size_t i = 0; rc == 0 && i < df->n_stages; i++) {
            needed[i] = c.stages[i].needed;
        }
        if (rc == 0) {
            rc = bld__check_dockerfile(df, ctxfd, needed, err);
        }
        for (size_t i = 0; rc == 0 && i < df->n_stages; i++) {
            if (!needed[i]) {
                continue;
            }
            const bld_node *n = &c.graph->nodes[i];
            const bld_stage *s = &df->stages[i];
            bld_plan_stage ps = {.stage = mar_xstrdup(c.stages[i].name),
                                 .base = mar_xstrdup(n->base ? n->base : "scratch"),
                                 .base_kind = n->base_kind,
                                 .build_platform = n->build_platform};
            mar_strlcpy(ps.target, c.target_str, sizeof(ps.target));
            oci_platform sp;
            bld__stage_platform(&c, i, &sp);
            oci_platform_format(&sp, ps.platform, sizeof(ps.platform));
            for (size_t k = 1; k < s->n_instrs; k++) {
                if (s->instrs[k].kind == BLD_RUN) {
                    ps.first_run_line = ps.first_run_line ? ps.first_run_line : s->instrs[k].line;
                    ps.n_run++;
                }
            }
            vm_plan_platform(o->vm, &sp, &ps.verdict);
            if (ps.verdict.mode == VM_RUN_EMULATED && ps.verdict.reason[0] &&
                strstr(ps.verdict.reason, "lacks the F flag")) {
                ps.verdict.mode = VM_RUN_UNAVAILABLE;
            }
            if (ps.n_run && ps.verdict.mode == VM_RUN_EMULATED) {
                ret->n_emulated += ps.n_run;
                const char *emu = vm_emulator_name(ps.verdict.emu);
                ps.advice = advice(&c, i, ps.stage, ps.n_run, emu ? emu : "an emulator",
                                   ret->build_platform);
            } else if (ps.n_run && ps.verdict.mode == VM_RUN_UNAVAILABLE) {
                ret->n_unavailable++;
            }
            ret->v = mar_xrealloc(ret->v, (ret->n + 1) * sizeof(*ret->v));
            ret->v[ret->n++] = ps;
        }
        free(needed);
        bld__ctx_release(&c);
    }
    if (rc < 0) {
        bld_plan_release(ret);
        return -mar_err_code(*err);
    }
    return 0;
}

void bld_plan_release(bld_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].stage);
        free(p->v[i].base);
        free(p->v[i].advice);
    }
    free(p->v);
    memset(p, 0, sizeof(*p));
}
