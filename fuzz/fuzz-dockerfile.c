/* fuzz_dockerfile: the Dockerfile frontend on hostile text. The input is parsed as a Dockerfile
 * and, when that succeeds, dumped, scoped, graphed and pruned for every stage, with every
 * argument expanded the way the build step will; the same bytes are also read as a
 * .dockerignore and as one word to expand. */
#include "builder/builder.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static bld_var_state lookup(const char *name, const char **ret_value, void *ud)
{
    (void)ud;
    if (strcmp(name, "UNKNOWN") == 0) {
        return BLD_VAR_UNKNOWN;
    }
    if (name[0] >= 'A' && name[0] <= 'M') {
        *ret_value = name[1] ? "value with spaces" : "";
        return BLD_VAR_SET;
    }
    return BLD_VAR_UNSET;
}

static void expand(const char *s, char escape, bld_lookup_fn fn, void *ud)
{
    char *out = NULL;
    mar_err *err = NULL;
    if (bld_expand_word(s, escape, 0, fn, ud, &out, NULL, &err) == 0) {
        free(out);
    }
    err = mar_err_free(err);
    mar_strv words = MAR_STRV_INIT;
    /* Rejecting the input is as good an outcome as accepting it: the harness looks for crashes
     * and leaks. */
    mar_ignore(bld_expand_words(s, escape, BLD_X_RAW_QUOTES, fn, ud, &words, NULL, &err));
    mar_strv_release(&words);
    mar_err_free(err);
}

static void instr(const bld_instr *ins, char escape, bld_scope *s)
{
    for (size_t i = 0; i < ins->args.n; i++) {
        expand(ins->args.v[i], escape, bld_scope_lookup, s);
    }
    for (size_t i = 0; i < ins->n_kvs; i++) {
        expand(ins->kvs[i].key, escape, bld_scope_lookup, s);
        if (ins->kvs[i].value) {
            expand(ins->kvs[i].value, escape, bld_scope_lookup, s);
        }
        if (ins->kind == BLD_ARG) {
            mar_err *err = NULL;
            /* As above: a rejected ARG is a valid outcome. */
            mar_ignore(bld_scope_arg(s, &ins->kvs[i], escape, &err));
            mar_err_free(err);
        } else if (ins->kind == BLD_ENV) {
            bld_scope_env(s, ins->kvs[i].key, ins->kvs[i].value);
        }
    }
    for (size_t i = 0; i < ins->n_heredocs; i++) {
        char *out = NULL;
        mar_err *err = NULL;
        if (bld_expand_word(ins->heredocs[i].content, '\\', BLD_X_NO_QUOTES, bld_scope_lookup, s,
                            &out, NULL, &err) == 0) {
            free(out);
        }
        mar_err_free(err);
    }
    for (size_t i = 0; i < ins->n_mounts; i++) {
        bld_mount m;
        mar_err *err = NULL;
        if (bld_mount_parse(ins->mounts[i].spec, escape, bld_scope_lookup, s, &m, &err) == 0) {
            bld_mount_release(&m);
        }
        mar_err_free(err);
    }
    if (ins->excludes.n) {
        bld_ignore *m = NULL;
        mar_err *err = NULL;
        if (bld_ignore_from_patterns((const char *const *)ins->excludes.v, ins->excludes.n, &m,
                                     &err) == 0) {
            bld_ignore_match(m, "a/b", true);
            bld_ignore_free(m);
        }
        mar_err_free(err);
    }
    if (ins->trigger) {
        instr(ins->trigger, escape, s);
    }
}

static void dockerfile(const char *text, size_t size)
{
    bld_dockerfile *df = NULL;
    mar_err *err = NULL;
    if (bld_dockerfile_parse(text, size, "Dockerfile", &df, &err) < 0) {
        mar_err_free(err);
        return;
    }
    free(bld_dockerfile_dump(df));
    bld_base *bases = NULL;
    size_t nb = 0;
    if (bld_dockerfile_bases(df, &bases, &nb, &err) == 0) {
        bld_bases_free(bases, nb);
    }
    err = mar_err_free(err);

    static const char *const args[] = {"A=1", "HTTP_PROXY=http://p:3128", "TARGETARCH=arm"};
    bld_arg_opts o = {.build_args = args, .n_build_args = 3};
    oci_platform host = {.os = "linux", .arch = "amd64"};
    if (oci_platform_parse("linux/amd64", &host, &o.build_platform, NULL) < 0 ||
        oci_platform_parse("linux/arm/v7", &host, &o.target_platform, NULL) < 0) {
        abort(); /* constant platforms: the harness itself is broken */
    }
    bld_scope *g = NULL;
    bld_graph *graph = NULL;
    if (bld_scope_global(df, &o, &g, &err) == 0 && bld_graph_build(df, g, &graph, &err) == 0) {
        for (size_t i = 0; i <= df->n_stages; i++) {
            bool *need = NULL;
            const char *t = i < df->n_stages ? df->stages[i].name : NULL;
            if (bld_graph_needed(graph, df, t, &need, &err) == 0) {
                free(need);
            }
            err = mar_err_free(err);
        }
    }
    err = mar_err_free(err);
    bld_scope **scopes = calloc(df->n_stages + 1, sizeof(*scopes));
    for (size_t i = 0; g && i < df->n_stages; i++) {
        const bld_node *nd = graph ? &graph->nodes[i] : NULL;
        const bld_scope *base =
                nd && nd->base_kind == BLD_BASE_STAGE ? scopes[nd->base_stage] : NULL;
        scopes[i] = bld_scope_stage(g, base);
        for (size_t k = 1; k < df->stages[i].n_instrs; k++) {
            instr(&df->stages[i].instrs[k], df->escape, scopes[i]);
        }
        mar_strv env = MAR_STRV_INIT;
        bld_scope_run_env(scopes[i], &env);
        bld_scope_args(scopes[i], &env);
        mar_strv_release(&env);
    }
    for (size_t i = 0; i < df->n_stages; i++) {
        bld_scope_free(scopes[i]);
    }
    free(scopes);
    bld_graph_free(graph);
    bld_scope_free(g);
    bld_dockerfile_free(df);
}

static void dockerignore(const char *text, size_t size)
{
    bld_ignore *m = NULL;
    mar_err *err = NULL;
    if (bld_ignore_parse(text, size, ".dockerignore", &m, &err) < 0) {
        mar_err_free(err);
        return;
    }
    static const char *const paths[] = {"a",
                                        "a/b",
                                        "docs/README.md",
                                        "x.go",
                                        "dir/file.txt",
                                        ".git/config",
                                        "node_modules/x/y"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        bld_ignore_match(m, paths[i], true);
        bld_ignore_match(m, paths[i], false);
    }
    bld_ignore_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    dockerfile(s, size);
    dockerignore(s, size);
    if (size < 4096 && !memchr(s, '\0', size)) {
        expand(s, '\\', lookup, NULL);
        expand(s, '`', lookup, NULL);
    }
    free(s);
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const char *const seeds[] = {
            ("# syntax=docker/dockerfile:1\nARG GO=1.22 P=linux/$TARGETARCH\n"
             "FROM --platform=$BUILDPLATFORM golang:${GO} AS build\nARG TARGETOS TARGETARCH\n"
             "WORKDIR /src\nRUN --mount=type=cache,target=/go/pkg/mod,sharing=locked \\\n"
             "    --mount=type=secret,id=tok,env=TOK GOARCH=$TARGETARCH go build -o /app\n"
             "FROM --platform=$P alpine AS certs\nONBUILD COPY --from=build /app /x\n"
             "FROM certs\nCOPY --from=build --chmod=0755 --exclude=*.md /app /app\n"
             "ENV A=\"${GO:-x}\" B=${A/1/2} C=${B%%.*}\nLABEL x=\"y z\" \\\n  w=$C\n"
             "HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://l/\n"
             "ENTRYPOINT [\"/app\", \"\\u00e9\"]\n"),
            ("# escape=`\nFROM mcr.microsoft.com/windows/nanoserver\nSHELL [\"powershell\"]\n"
             "COPY a.txt c:\\\nRUN New-Item C:\\x ; `\n  Write-Host done\nENV P `\n c:\\go\n"),
            ("FROM alpine\nRUN <<EOT bash\n  set -ex\nEOT\nCOPY <<-\"A\" <<B /dst/\n\tx $X\n\tA\n"
             "y\nB\nRUN 3<<'e'o\\'f cat\nbody\neo'f\nONBUILD RUN <<X\nx\nX\n"),
            ("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nRUN --mount=from=one,target=/m "
             "x\nFROM 1\nCOPY --from=0 / /\nVOLUME [\"/v\"]\nEXPOSE 80/tcp\nUSER 1:1\n"
             "STOPSIGNAL SIGKILL\nMAINTAINER m\nADD --checksum=sha256:00 --unpack=true u /d\n"),
            "# comment\n*/temp*\n*/*/temp*\ntemp?\n**/*.go\n!README*.md\ndocs/\n!docs/keep/**\n",
            "he${XXX:-${PWD:-yyy}}xx $A \"${AB}\" '${X#a*b}' ${AB//a?/\\*} ${AB%%*e} ${UNKNOWN:+x}",
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        emit(seeds[i], strlen(seeds[i]));
    }
}
