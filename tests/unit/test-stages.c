/* ARG scoping (builder/scope.c), the stage graph and the audit view of base images
 * (builder/stages.c). Cases follow the Dockerfile reference's ARG, FROM and multi-stage
 * examples and BuildKit's rules (dockerfile2llb/convert.go, platform.go). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "builder/build-internal.h"
#include "builder/builder.h"

static bld_dockerfile *parse(const char *text)
{
    bld_dockerfile *df = NULL;
    mar_err *err = NULL;
    if (bld_dockerfile_parse(text, strlen(text), "Dockerfile", &df, &err) < 0) {
        fail_msg("%s", err->msg);
    }
    return df;
}

static bld_arg_opts opts(const char *build, const char *target, const char *const *args)
{
    bld_arg_opts o = {.build_args = args};
    while (args && args[o.n_build_args]) {
        o.n_build_args++;
    }
    oci_platform host = {.os = "linux", .arch = "amd64"};
    assert_int_equal(oci_platform_parse(build, &host, &o.build_platform, NULL), 0);
    assert_int_equal(oci_platform_parse(target, &host, &o.target_platform, NULL), 0);
    return o;
}

static const char *get(bld_scope *s, const char *name)
{
    const char *v = NULL;
    return bld_scope_lookup(name, &v, s) == BLD_VAR_SET ? v : NULL;
}

static char *expand(bld_scope *s, const char *word)
{
    char *out = NULL;
    assert_int_equal(bld_expand_word(word, '\\', 0, bld_scope_lookup, s, &out, NULL, NULL), 0);
    return out;
}

/* ---- Scopes ---------------------------------------------------------------------------------- */

/* "Automatic platform ARGs in the global scope", normalized as containerd does. */
static void test_platform_args(void **state)
{
    (void)state;
    bld_dockerfile *df = parse("FROM a AS first\nFROM b AS last\n");
    const struct {
        const char *target, *platform, *os, *arch, *variant;
    } c[] = {
            {"linux/arm64", "linux/arm64", "linux", "arm64", ""},
            {"linux/arm64/v8", "linux/arm64", "linux", "arm64", ""},
            {"linux/arm", "linux/arm/v7", "linux", "arm", "v7"},
            {"linux/arm/v6", "linux/arm/v6", "linux", "arm", "v6"},
            {"linux/amd64", "linux/amd64", "linux", "amd64", ""},
            {"linux/aarch64", "linux/arm64", "linux", "arm64", ""},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(c); i++) {
        bld_arg_opts o = opts("linux/amd64", c[i].target, NULL);
        bld_scope *g = NULL;
        assert_int_equal(bld_scope_global(df, &o, &g, NULL), 0);
        assert_string_equal(get(g, "TARGETPLATFORM"), c[i].platform);
        assert_string_equal(get(g, "TARGETOS"), c[i].os);
        assert_string_equal(get(g, "TARGETARCH"), c[i].arch);
        assert_string_equal(get(g, "TARGETVARIANT"), c[i].variant);
        assert_string_equal(get(g, "BUILDPLATFORM"), "linux/amd64");
        assert_string_equal(get(g, "BUILDOS"), "linux");
        assert_string_equal(get(g, "BUILDARCH"), "amd64");
        assert_string_equal(get(g, "BUILDVARIANT"), "");
        assert_string_equal(get(g, "TARGETSTAGE"), "last");
        assert_null(get(g, "HTTP_PROXY"));
        bld_scope_free(g);
    }
    bld_arg_opts o = opts("linux/arm64/v8", "linux/riscv64", NULL);
    o.target = "first";
    bld_scope *g = NULL;
    assert_int_equal(bld_scope_global(df, &o, &g, NULL), 0);
    assert_string_equal(get(g, "BUILDPLATFORM"), "linux/arm64");
    assert_string_equal(get(g, "TARGETSTAGE"), "first");
    bld_scope_free(g);
    bld_dockerfile_free(df);
}

/* Global ARGs: defaults expand in order with what came before; --build-arg wins. */
static void test_global_args(void **state)
{
    (void)state;
    bld_dockerfile *df = parse("ARG A=1\nARG B=${A}2 C\nARG A=3 D=$TARGETARCH\n"
                               "ARG CODE_VERSION=latest\nFROM base:${CODE_VERSION}\n");
    bld_arg_opts o = opts("linux/amd64", "linux/arm64", NULL);
    bld_scope *g = NULL;
    assert_int_equal(bld_scope_global(df, &o, &g, NULL), 0);
    assert_string_equal(get(g, "A"), "3");
    assert_string_equal(get(g, "B"), "12");
    assert_null(get(g, "C"));
    assert_string_equal(get(g, "D"), "arm64");
    char *from = expand(g, df->stages[0].instrs[0].args.v[0]);
    assert_string_equal(from, "base:latest");
    free(from);
    bld_scope_free(g);

    const char *args[] = {"A=x", "C=c", "TARGETARCH=ppc64le", "CODE_VERSION=1.0", NULL};
    o = opts("linux/amd64", "linux/arm64", args);
    assert_int_equal(bld_scope_global(df, &o, &g, NULL), 0);
    assert_string_equal(get(g, "A"), "x");
    assert_string_equal(get(g, "B"), "x2");
    assert_string_equal(get(g, "C"), "c");
    assert_string_equal(get(g, "D"), "ppc64le");
    from = expand(g, df->stages[0].instrs[0].args.v[0]);
    assert_string_equal(from, "base:1.0");
    free(from);
    bld_scope_free(g);

    const char *bad[] = {"NOVALUE", NULL};
    o = opts("linux/amd64", "linux/amd64", bad);
    mar_err *err = NULL;
    assert_int_equal(bld_scope_global(df, &o, &g, &err), -MAR_EUSAGE);
    assert_string_equal(err->msg, "build argument 'NOVALUE' is not NAME=VALUE");
    mar_err_free(err);
    bld_dockerfile_free(df);

    df = parse("ARG A=\"${B:?B is required}\"\nFROM x\n");
    o = opts("linux/amd64", "linux/amd64", NULL);
    err = NULL;
    assert_int_equal(bld_scope_global(df, &o, &g, &err), -MAR_EUSAGE);
    assert_non_null(strstr(err->msg, "Dockerfile:1: ARG A: cannot expand"));
    assert_non_null(strstr(err->msg, "B: B is required"));
    mar_err_free(err);
    bld_dockerfile_free(df);
}

/* Applies the ARG and ENV instructions of a stage to its scope, expanding ENV values the way
 * the build step will. */
static void apply(const bld_dockerfile *df, const bld_stage *st, bld_scope *s, size_t upto)
{
    for (size_t i = 1; i < st->n_instrs && i <= upto; i++) {
        const bld_instr *ins = &st->instrs[i];
        for (size_t k = 0; k < ins->n_kvs && ins->kind == BLD_ARG; k++) {
            assert_int_equal(bld_scope_arg(s, &ins->kvs[k], df->escape, NULL), 0);
        }
        /* Every value of one ENV instruction sees the variables from before it. */
        char *vals[8];
        for (size_t k = 0; k < ins->n_kvs && ins->kind == BLD_ENV; k++) {
            vals[k] = expand(s, ins->kvs[k].value);
        }
        for (size_t k = 0; k < ins->n_kvs && ins->kind == BLD_ENV; k++) {
            bld_scope_env(s, ins->kvs[k].key, vals[k]);
            free(vals[k]);
        }
    }
}

/* "Scope": a global ARG is visible in a stage only after `ARG NAME`; an ARG is unset before
 * its line; ENV of the same name wins ("Using ARG variables"). */
static void test_stage_scope(void **state)
{
    (void)state;
    bld_dockerfile *df = parse("ARG VERSION=latest\nFROM busybox:$VERSION AS one\n"
                               "USER ${username:-some_user}\nARG username\nUSER $username\n"
                               "ARG VERSION TARGETARCH\nARG CONT_IMG_VER\n"
                               "ENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n"
                               "ARG abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nARG abc=again\n"
                               "FROM one AS two\nARG more=1\n");
    const char *args[] = {"username=what_user", "HTTP_PROXY=http://proxy:3128",
                          "no_proxy=localhost", "unused=1", NULL};
    bld_arg_opts o = opts("linux/amd64", "linux/arm/v7", args);
    bld_scope *g = NULL;
    assert_int_equal(bld_scope_global(df, &o, &g, NULL), 0);
    const bld_stage *st = &df->stages[0];
    bld_scope *s = bld_scope_stage(g, NULL);
    assert_null(get(s, "VERSION"));
    char *u = expand(s, st->instrs[1].args.v[0]);
    assert_string_equal(u, "some_user");
    free(u);
    apply(df, st, s, 2);
    u = expand(s, st->instrs[3].args.v[0]);
    assert_string_equal(u, "what_user");
    free(u);
    apply(df, st, s, st->n_instrs);
    assert_string_equal(get(s, "VERSION"), "latest");
    assert_string_equal(get(s, "TARGETARCH"), "arm");
    assert_null(get(s, "TARGETVARIANT"));
    assert_string_equal(get(s, "CONT_IMG_VER"), "v1.0.0");
    assert_string_equal(get(s, "def"), "hello");
    assert_string_equal(get(s, "ghi"), "bye");
    assert_string_equal(get(s, "abc"), "bye");
    assert_null(get(s, "HTTP_PROXY"));

    mar_strv env = MAR_STRV_INIT;
    bld_scope_run_env(s, &env);
    const char *want[] = {"CONT_IMG_VER=v1.0.0", "abc=bye",
                          "def=hello",           "ghi=bye",
                          "username=what_user",  "VERSION=latest",
                          "TARGETARCH=arm",      "HTTP_PROXY=http://proxy:3128",
                          "no_proxy=localhost"};
    assert_int_equal(env.n, MAR_ARRAY_SIZE(want));
    for (size_t i = 0; i < env.n; i++) {
        assert_string_equal(env.v[i], want[i]);
    }
    mar_strv_release(&env);
    mar_strv args_out = MAR_STRV_INIT;
    bld_scope_args(s, &args_out);
    /* CONT_IMG_VER is declared without a value: not in the list. */
    assert_int_equal(args_out.n, 4);
    assert_string_equal(args_out.v[0], "username=what_user");
    assert_string_equal(args_out.v[1], "VERSION=latest");
    assert_string_equal(args_out.v[3], "abc=again");
    mar_strv_release(&args_out);

    /* A stage based on a stage inherits its ARGs and ENV. */
    bld_scope *t = bld_scope_stage(g, s);
    apply(df, &df->stages[1], t, df->stages[1].n_instrs);
    assert_string_equal(get(t, "username"), "what_user");
    assert_string_equal(get(t, "abc"), "bye");
    assert_string_equal(get(t, "more"), "1");
    bld_scope_free(t);

    /* An ARG declared with a proxy name joins the history like any other. */
    bld_kv proxy = {.key = "HTTP_PROXY"};
    assert_int_equal(bld_scope_arg(s, &proxy, '\\', NULL), 0);
    bld_scope_run_env(s, &env);
    size_t count = 0;
    for (size_t i = 0; i < env.n; i++) {
        count += strncmp(env.v[i], "HTTP_PROXY=", 11) == 0;
    }
    assert_int_equal(count, 1);
    mar_strv_release(&env);
    bld_scope_args(s, &args_out);
    assert_string_equal(args_out.v[args_out.n - 1], "HTTP_PROXY=http://proxy:3128");
    mar_strv_release(&args_out);
    assert_true(bld_arg_is_proxy("all_proxy"));
    assert_false(bld_arg_is_proxy("Http_Proxy"));
    bld_scope_free(s);
    bld_scope_free(g);
    bld_dockerfile_free(df);
}

/* ---- The stage graph ------------------------------------------------------------------------- */

typedef struct built {
    bld_dockerfile *df;
    bld_scope *g;
    bld_graph *graph;
} built;

static int build(built *b, const char *text, const char *const *args, mar_err **err)
{
    *b = (built){.df = parse(text)};
    bld_arg_opts o = opts("linux/amd64", "linux/arm64", args);
    assert_int_equal(bld_scope_global(b->df, &o, &b->g, NULL), 0);
    return bld_graph_build(b->df, b->g, &b->graph, err);
}

static void release(built *b)
{
    bld_graph_free(b->graph);
    bld_scope_free(b->g);
    bld_dockerfile_free(b->df);
}

/* The emulation-free cross-compilation pattern ("Automatic platform ARGs"): the build stage runs
 * on the build platform but reads TARGETARCH, so it is per target; a tools stage that does not
 * is shared by every target. */
static void test_cross_build(void **state)
{
    (void)state;
    built b;
    assert_int_equal(
            build(&b,
                  "ARG GO=1.22\n"
                  "FROM --platform=$BUILDPLATFORM golang:$GO AS build\n"
                  "ARG TARGETOS TARGETARCH\nRUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build\n"
                  "FROM --platform=$BUILDPLATFORM alpine AS tools\nRUN apk add protoc\n"
                  "FROM tools AS gen\nCOPY --from=tools /usr/bin/protoc /\n"
                  "FROM alpine:3.20 AS certs\n"
                  "FROM scratch\nCOPY --from=certs /etc/ssl /etc/ssl\n"
                  "COPY --from=build /out/app /app\nCOPY --from=gen /x /y\n",
                  NULL, NULL),
            0);
    const bld_node *n = b.graph->nodes;
    assert_int_equal(b.graph->n, 5);
    assert_int_equal(n[0].base_kind, BLD_BASE_IMAGE);
    assert_string_equal(n[0].base, "golang:1.22");
    assert_string_equal(n[0].platform, "linux/amd64");
    assert_true(n[0].platform_fixed);
    assert_true(n[0].build_platform);
    assert_false(n[0].target_independent);
    assert_true(n[1].build_platform);
    assert_true(n[1].target_independent);
    assert_int_equal(n[2].base_kind, BLD_BASE_STAGE);
    assert_int_equal(n[2].base_stage, 1);
    assert_true(n[2].build_platform);
    assert_true(n[2].target_independent);
    assert_int_equal(n[2].n_deps, 1);
    assert_false(n[3].platform_fixed);
    assert_false(n[3].target_independent);
    assert_int_equal(n[4].base_kind, BLD_BASE_SCRATCH);
    assert_false(n[4].target_independent);
    assert_int_equal(n[4].n_deps, 3);
    assert_int_equal(n[4].deps[0], 0);
    assert_int_equal(n[4].deps[1], 2);
    assert_int_equal(n[4].deps[2], 3);
    assert_int_equal(n[4].dep_lines[0], 12);

    bool *need = NULL;
    assert_int_equal(bld_graph_needed(b.graph, b.df, NULL, &need, NULL), 0);
    assert_true(need[0] && need[1] && need[2] && need[3] && need[4]);
    free(need);
    assert_int_equal(bld_graph_needed(b.graph, b.df, "GEN", &need, NULL), 0);
    assert_true(!need[0] && need[1] && need[2] && !need[3] && !need[4]);
    free(need);
    mar_err *err = NULL;
    assert_int_equal(bld_graph_needed(b.graph, b.df, "nope", &need, &err), -MAR_EUSAGE);
    assert_string_equal(err->msg, "Dockerfile: target stage 'nope' could not be found");
    mar_err_free(err);
    release(&b);
}

/* What makes a stage vary with the target, and constant platforms. */
static void test_target_independence(void **state)
{
    (void)state;
    built b;
    const char *text = "ARG P=linux/$TARGETARCH\nARG FIXED=linux/amd64\n"
                       "FROM --platform=$P a AS s0\n"
                       "FROM --platform=$FIXED a AS s1\n"
                       "FROM --platform=linux/riscv64 a AS s2\n"
                       "FROM --platform=$BUILDPLATFORM a:$TARGETARCH AS s3\n"
                       "FROM --platform=$BUILDPLATFORM a AS s4\nCOPY --from=busybox /bin/sh /\n"
                       "FROM --platform=$BUILDPLATFORM a AS s5\nRUN --mount=from=s2,target=/m x\n"
                       "FROM --platform=$BUILDPLATFORM a AS s6\nARG P\n"
                       "FROM --platform=$TARGETPLATFORM a AS s7\n";
    assert_int_equal(build(&b, text, NULL, NULL), 0);
    const bld_node *n = b.graph->nodes;
    assert_false(n[0].platform_fixed);
    assert_string_equal(n[0].platform, "linux/arm64");
    assert_true(n[1].platform_fixed && n[1].build_platform && n[1].target_independent);
    assert_true(n[2].platform_fixed && !n[2].build_platform && n[2].target_independent);
    assert_string_equal(n[2].pinned.arch, "riscv64");
    assert_true(n[3].build_platform && !n[3].target_independent);
    assert_false(n[4].target_independent); /* COPY --from an image: pulled for the target */
    assert_int_equal(n[4].images.n, 1);
    assert_string_equal(n[4].images.v[0], "busybox");
    assert_true(n[5].target_independent);
    assert_int_equal(n[5].deps[0], 2);
    assert_false(n[6].target_independent); /* ARG P brings a target-dependent global */
    assert_false(n[7].platform_fixed);
    release(&b);

    /* A --build-arg fixes a value for every target. */
    const char *args[] = {"P=linux/s390x", NULL};
    assert_int_equal(build(&b, text, args, NULL), 0);
    assert_true(b.graph->nodes[0].platform_fixed);
    assert_true(b.graph->nodes[6].target_independent);
    release(&b);
}

/* Which names are stages: earlier stages by exact name, also through global ARGs; later ones
 * and the stage's own name are images (BuildKit addState). */
static void test_stage_references(void **state)
{
    (void)state;
    built b;
    assert_int_equal(build(&b,
                           "ARG B=builder\nFROM golang AS builder\nFROM $B AS via_arg\n"
                           "FROM later AS early\nFROM node AS node\nFROM x AS later\n"
                           "FROM --platform=linux/arm64 builder\n",
                           NULL, NULL),
                     0);
    const bld_node *n = b.graph->nodes;
    assert_int_equal(n[1].base_kind, BLD_BASE_STAGE);
    assert_int_equal(n[1].base_stage, 0);
    assert_int_equal(n[2].base_kind, BLD_BASE_IMAGE);
    assert_string_equal(n[2].base, "later");
    assert_int_equal(n[3].base_kind, BLD_BASE_IMAGE);
    assert_int_equal(n[5].base_kind, BLD_BASE_STAGE);
    assert_null(n[5].platform);
    assert_int_equal(b.graph->warnings.n, 1);
    assert_string_equal(b.graph->warnings.v[0],
                        "Dockerfile:7: --platform has no effect on a stage base ('builder')");
    release(&b);

    mar_err *err = NULL;
    assert_int_equal(build(&b, "FROM a AS builder\nFROM Builder\n", NULL, &err), -MAR_EUSAGE);
    assert_string_equal(err->msg,
                        "Dockerfile:2: 'Builder' is not a stage (stage names are lower-case: "
                        "'builder')");
    mar_err_free(err);
    release(&b);
}

static void test_copy_from(void **state)
{
    (void)state;
    built b;
    assert_int_equal(build(&b,
                           "FROM a AS zero\nFROM b\nCOPY --from=0 /x /x\nCOPY --from=ZERO /y /y\n"
                           "COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf\n"
                           "COPY --from=scratch /z /z\n"
                           "FROM zero AS base\nONBUILD COPY --from=1 /a /a\n"
                           "FROM base\n",
                           NULL, NULL),
                     0);
    const bld_node *n = b.graph->nodes;
    assert_int_equal(n[1].n_deps, 1);
    assert_int_equal(n[1].deps[0], 0);
    assert_int_equal(n[1].dep_lines[0], 3);
    assert_int_equal(n[1].images.n, 1);
    assert_string_equal(n[1].images.v[0], "nginx:latest");
    /* the ONBUILD trigger of "base" runs in the stage built on it, not in "base" */
    assert_int_equal(n[2].n_deps, 1);
    assert_int_equal(n[3].n_deps, 2);
    assert_int_equal(n[3].deps[0], 1);
    assert_int_equal(n[3].deps[1], 2);
    release(&b);

    const struct {
        const char *text, *err;
    } bad[] = {
            {"FROM a\nCOPY --from=3 /x /x\n", "Dockerfile:2: invalid stage index 3"},
            {"FROM a\nCOPY --from=-1 /x /x\n", "Dockerfile:2: invalid stage index -1"},
            {"FROM a AS x\nCOPY --from=x /a /a\n",
             "Dockerfile:2: circular dependency detected on stage 'x'"},
            {"FROM a AS x\nCOPY --from=y /a /a\nFROM b AS y\nRUN --mount=from=x,target=/m x\n",
             "circular dependency detected on stage"},
            {"ARG E\nFROM $E\n", "Dockerfile:2: base name '$E' is empty after expansion"},
            {"ARG E\nFROM --platform=$E a\n", "Dockerfile:2: empty platform value from '$E'"},
            {"FROM --platform=linux/arm64/v8/x a\n", "Dockerfile:1: --platform: "},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(bad); i++) {
        mar_err *err = NULL;
        assert_int_equal(build(&b, bad[i].text, NULL, &err), -MAR_EUSAGE);
        if (!strstr(err->msg, bad[i].err)) {
            fail_msg("'%s': got '%s'", bad[i].err, err->msg);
        }
        mar_err_free(err);
        release(&b);
    }
}

/* What each stage waits for before it may start in a parallel build (build-par.c): what the
 * graph says it needs, and every needed stage before it when the ONBUILD triggers of its base
 * image name a --from, which the graph never sees. Each case: the Dockerfile, the needed stages,
 * the stage, whether its base image's triggers name a --from, and the stages it waits for ('1' per
 * stage). */
static void test_stage_waits(void **state)
{
    (void)state;
    const struct {
        const char *text, *needed;
        size_t stage;
        bool wide;
        const char *want;
    } c[] = {
            /* two independent stages, a third that copies from both */
            {"FROM a AS x\nRUN x\nFROM b AS y\nRUN y\nFROM c\nCOPY --from=x /a /a\n"
             "COPY --from=y /b /b\n",
             "111", 0, false, "000"},
            {"FROM a AS x\nRUN x\nFROM b AS y\nRUN y\nFROM c\nCOPY --from=x /a /a\n"
             "COPY --from=y /b /b\n",
             "111", 1, false, "000"},
            {"FROM a AS x\nRUN x\nFROM b AS y\nRUN y\nFROM c\nCOPY --from=x /a /a\n"
             "COPY --from=y /b /b\n",
             "111", 2, false, "110"},
            /* two stages on one base are independent of each other */
            {"FROM a AS base\nFROM base AS one\nFROM base AS two\nFROM two\nCOPY --from=one /a "
             "/a\n",
             "1111", 1, false, "1000"},
            {"FROM a AS base\nFROM base AS one\nFROM base AS two\nFROM two\nCOPY --from=one /a "
             "/a\n",
             "1111", 2, false, "1000"},
            {"FROM a AS base\nFROM base AS one\nFROM base AS two\nFROM two\nCOPY --from=one /a "
             "/a\n",
             "1111", 3, false, "0110"},
            /* COPY --from by index, RUN --mount from= */
            {"FROM a AS x\nFROM b AS y\nFROM c\nCOPY --from=0 /a /a\n"
             "RUN --mount=type=bind,from=y,target=/m true\n",
             "111", 2, false, "110"},
            {"FROM a AS x\nFROM b AS y\nFROM c\nRUN --mount=type=bind,from=y,target=/m true\n",
             "011", 2, false, "010"},
            /* the ONBUILD triggers of a stage base run in the stage built on it */
            {"FROM a AS x\nFROM b AS base\nONBUILD COPY --from=x /a /a\nFROM c AS y\nFROM base\n",
             "1101", 3, false, "1100"},
            {"FROM a AS x\nFROM b AS base\nONBUILD COPY --from=x /a /a\nFROM c AS y\nFROM base\n",
             "1101", 1, false, "0000"},
            /* the triggers of an image base name a --from */
            {"FROM a AS x\nFROM b AS y\nFROM onbuild-image\n", "111", 2, true, "110"},
            {"FROM a AS x\nFROM b AS y\nFROM onbuild-image\n", "011", 2, true, "010"},
            {"FROM a AS x\nFROM b AS y\nFROM onbuild-image\n", "111", 2, false, "000"},
    };
    for (size_t k = 0; k < MAR_ARRAY_SIZE(c); k++) {
        built b;
        mar_err *err = NULL;
        if (build(&b, c[k].text, NULL, &err) < 0) {
            fail_msg("case %zu: %s", k, err->msg);
        }
        size_t n = b.df->n_stages;
        assert_int_equal(strlen(c[k].needed), n);
        bool needed[8] = {0}, got[8];
        for (size_t i = 0; i < n; i++) {
            needed[i] = c[k].needed[i] == '1';
        }
        memset(got, 0xff, sizeof(got));
        bld__stage_waits(b.df, b.graph, needed, c[k].stage, c[k].wide, got);
        char text[9] = {0};
        for (size_t i = 0; i < n; i++) {
            text[i] = got[i] ? '1' : '0';
        }
        if (strcmp(text, c[k].want) != 0) {
            fail_msg("case %zu (stage %zu of '%s'): waits %s, want %s", k, c[k].stage, c[k].text,
                     text, c[k].want);
        }
        release(&b);
    }
}

/* A stage may name a later one; that is an error only when it is built (BuildKit: "needs to be
 * defined before"). */
static void test_forward_reference(void **state)
{
    (void)state;
    built b;
    assert_int_equal(
            build(&b, "FROM a AS first\nCOPY --from=second /x /x\nFROM b AS second\n", NULL, NULL),
            0);
    bool *need = NULL;
    assert_int_equal(bld_graph_needed(b.graph, b.df, "second", &need, NULL), 0);
    assert_true(!need[0] && need[1]);
    free(need);
    mar_err *err = NULL;
    assert_int_equal(bld_graph_needed(b.graph, b.df, "first", &need, &err), -MAR_EUSAGE);
    assert_string_equal(err->msg, "Dockerfile:2: stage 'second' is used by stage 'first' but "
                                  "defined after it");
    mar_err_free(err);
    release(&b);
}

/* ---- Base images for mar audit --------------------------------------------------------------- */

static void test_bases(void **state)
{
    (void)state;
    bld_dockerfile *df = parse("ARG V=3.20\nARG REG=registry.example.com/\nARG X\nARG V\n"
                               "ARG P=linux/$TARGETARCH\n"
                               "FROM ${REG}alpine:$V AS a\nFROM a\nFROM scratch\n"
                               "FROM --platform=$BUILDPLATFORM golang:${GO:-1.22}\n"
                               "FROM img:$X\nFROM --platform=linux/arm64 b:${V%.*}\n"
                               "FROM --platform=$P c\n");
    bld_base *v = NULL;
    size_t n = 0;
    assert_int_equal(bld_dockerfile_bases(df, &v, &n, NULL), 0);
    assert_int_equal(n, 7);
    assert_string_equal(v[0].image, "registry.example.com/alpine:3.20");
    assert_string_equal(v[0].stage_name, "a");
    assert_int_equal(v[0].line, 6);
    assert_false(v[0].is_stage || v[0].is_scratch || v[0].image_unresolved);
    assert_true(v[1].is_stage);
    assert_true(v[2].is_scratch);
    assert_string_equal(v[3].image, "golang:1.22");
    assert_string_equal(v[3].platform, "$BUILDPLATFORM");
    assert_true(v[3].platform_unresolved);
    assert_string_equal(v[4].image, "img:$X");
    assert_true(v[4].image_unresolved);
    assert_string_equal(v[5].image, "b:3");
    assert_string_equal(v[5].platform, "linux/arm64");
    assert_false(v[5].platform_unresolved);
    assert_string_equal(v[6].platform, "$P");
    assert_true(v[6].platform_unresolved);
    bld_bases_free(v, n);
    bld_dockerfile_free(df);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_platform_args),       cmocka_unit_test(test_global_args),
            cmocka_unit_test(test_stage_scope),         cmocka_unit_test(test_cross_build),
            cmocka_unit_test(test_target_independence), cmocka_unit_test(test_stage_references),
            cmocka_unit_test(test_copy_from),           cmocka_unit_test(test_forward_reference),
            cmocka_unit_test(test_stage_waits),         cmocka_unit_test(test_bases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
