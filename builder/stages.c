/* The stage graph (Dockerfile reference, "FROM", "COPY --from", "RUN --mount", "ONBUILD"; BuildKit
 * frontend/dockerfile/dockerfile2llb/convert.go: buildDispatchStates, toCommand,
 * resolveReachableStages, validateCircularDependency), target pruning, and the base images
 * `mar audit` reads. */
#include "builder/dockerfile-internal.h"

#include <string.h>

static const char *stage_label(const bld_dockerfile *df, size_t i, char *buf, size_t n)
{
    if (df->stages[i].name) {
        return df->stages[i].name;
    }
    snprintf(buf, n, "stage-%zu", i);
    return buf;
}

static void add_dep(bld_node *nd, size_t dep, unsigned line)
{
    nd->deps = mar_xrealloc(nd->deps, (nd->n_deps + 1) * sizeof(size_t));
    nd->dep_lines = mar_xrealloc(nd->dep_lines, (nd->n_deps + 1) * sizeof(unsigned));
    nd->deps[nd->n_deps] = dep;
    nd->dep_lines[nd->n_deps++] = line;
}

typedef struct dep_edge {
    size_t dep;
    unsigned line;
} dep_edge;

static int edge_cmp(const void *a, const void *b)
{
    const dep_edge *x = a, *y = b;
    if (x->dep != y->dep) {
        return x->dep < y->dep ? -1 : 1;
    }
    return x->line < y->line ? -1 : x->line > y->line;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the dependencies (keeping each one's first line) and the images, without duplicates. */
static void finish_node(bld_node *nd)
{
    dep_edge *e = mar_xcalloc(nd->n_deps + 1, sizeof(dep_edge));
    for (size_t i = 0; i < nd->n_deps; i++) {
        e[i] = (dep_edge){nd->deps[i], nd->dep_lines[i]};
    }
    if (nd->n_deps > 1) {
        qsort(e, nd->n_deps, sizeof(dep_edge), edge_cmp);
    }
    size_t n = 0;
    for (size_t i = 0; i < nd->n_deps; i++) {
        if (!n || e[i].dep != nd->deps[n - 1]) {
            nd->deps[n] = e[i].dep;
            nd->dep_lines[n++] = e[i].line;
        }
    }
    nd->n_deps = n;
    free(e);
    if (nd->images.n > 1) {
        qsort(nd->images.v, nd->images.n, sizeof(char *), str_cmp);
    }
    n = 0;
    for (size_t i = 0; i < nd->images.n; i++) {
        if (n && strcmp(nd->images.v[i], nd->images.v[n - 1]) == 0) {
            free(nd->images.v[i]);
        } else {
            nd->images.v[n++] = nd->images.v[i];
        }
    }
    nd->images.n = n;
    if (nd->images.v) {
        nd->images.v[n] = NULL;
    }
}

/* Stage names (lower-case) to index + 1. */
static void name_map(const bld_dockerfile *df, mar_map *m)
{
    for (size_t i = 0; i < df->n_stages; i++) {
        if (df->stages[i].name) {
            mar_map_set(m, df->stages[i].name, (void *)(uintptr_t)(i + 1));
        }
    }
}

static bool find_stage(const mar_map *names, const char *name, size_t *ret)
{
    _cleanup_free_ char *low = mar_xstrdup(name);
    for (char *c = low; *c; c++) {
        *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
    }
    size_t i = (size_t)(uintptr_t)mar_map_get(names, low);
    if (!i) {
        return false;
    }
    *ret = i - 1;
    return true;
}

/* strconv.Atoi: an optional sign and decimal digits. */
static bool stage_index(const char *s, long long *ret)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 18) {
        return false;
    }
    *ret = strtoll(s, NULL, 10);
    return true;
}

/* COPY --from and RUN --mount from=: a stage (by name, or by index for COPY) or an image. */
MAR_MUST_USE static int source(const bld_dockerfile *df, const mar_map *names, bld_node *nd,
                               const char *from, bool by_index, unsigned line, bool *ret_image,
                               mar_err **err)
{
    size_t j;
    long long idx;
    if (by_index && stage_index(from, &idx)) {
        if (idx < 0 || (size_t)idx >= df->n_stages) {
            return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: invalid stage index %lld", df->filename,
                               line, idx);
        }
        add_dep(nd, (size_t)idx, line);
    } else if (find_stage(names, from, &j)) {
        add_dep(nd, j, line);
    } else if (strcmp(from, "scratch") != 0) {
        mar_strv_push(&nd->images, from);
        *ret_image = true;
    }
    return 0;
}

MAR_MUST_USE static int instr_sources(const bld_dockerfile *df, const mar_map *names, bld_node *nd,
                                      const bld_instr *ins, bool *ret_image, mar_err **err)
{
    if (ins->kind == BLD_ONBUILD) {
        return 0; /* runs in the stages built on this one */
    }
    if (ins->kind == BLD_COPY && ins->from &&
        source(df, names, nd, ins->from, true, ins->line, ret_image, err) < 0) {
        return -MAR_EUSAGE;
    }
    for (size_t m = 0; m < ins->n_mounts; m++) {
        const char *f = ins->mounts[m].from;
        if (f && source(df, names, nd, f, false, ins->line, ret_image, err) < 0) {
            return -MAR_EUSAGE;
        }
    }
    return 0;
}

typedef struct tracer {
    const bld_scope *g;
    bool target_dep;
} tracer;

static bld_var_state trace(const char *name, const char **ret_value, void *ud)
{
    tracer *t = ud;
    t->target_dep |= bld__scope_target_dep(t->g, name);
    return bld_scope_lookup(name, ret_value, (void *)t->g);
}

MAR_MUST_USE static int from_line(const bld_dockerfile *df, const mar_map *names,
                                  const bld_scope *global, size_t i, bld_graph *g, bool *ret_dep,
                                  mar_err **err)
{
    const bld_instr *from = &df->stages[i].instrs[0];
    bld_node *nd = &g->nodes[i];
    const char *file = df->filename;
    tracer t = {.g = global};
    if (bld_expand_word(from->args.v[0], df->escape, 0, trace, &t, &nd->base, NULL, err) < 0) {
        return mar_err_wrap(err, "%s:%u", file, from->line);
    }
    *ret_dep = t.target_dep;
    if (!*nd->base) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: base name '%s' is empty after expansion",
                           file, from->line, from->args.v[0]);
    }
    size_t j;
    if (find_stage(names, nd->base, &j) && j < i) {
        const char *name = df->stages[j].name;
        if (strcmp(name, nd->base) != 0) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "%s:%u: '%s' is not a stage (stage names are lower-case: '%s')",
                               file, from->line, nd->base, name);
        }
        nd->base_kind = BLD_BASE_STAGE;
        nd->base_stage = j;
    }
    if (nd->base_kind != BLD_BASE_STAGE && strcmp(nd->base, "scratch") == 0) {
        nd->base_kind = BLD_BASE_SCRATCH;
    }
    if (!from->platform) {
        return 0;
    }
    if (nd->base_kind == BLD_BASE_STAGE) {
        /* BuildKit takes a stage base's platform and ignores the flag. */
        mar_strv_push_take(&g->warnings,
                           mar_xasprintf("%s:%u: --platform has no effect on a stage base ('%s')",
                                         file, from->line, nd->base));
        return 0;
    }
    t.target_dep = false;
    if (bld_expand_word(from->platform, df->escape, 0, trace, &t, &nd->platform, NULL, err) < 0) {
        return mar_err_wrap(err, "%s:%u: --platform", file, from->line);
    }
    if (!*nd->platform) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: empty platform value from '%s'", file,
                           from->line, from->platform);
    }
    const char *bp;
    oci_platform host = {0}, build = {0};
    if (bld_scope_lookup("BUILDPLATFORM", &bp, (void *)global) == BLD_VAR_SET &&
        oci_platform_parse(bp, &host, &build, NULL) == 0) {
        oci_platform_normalize(&build, &build);
    }
    if (oci_platform_parse(nd->platform, &build, &nd->pinned, err) < 0) {
        return mar_err_wrap(err, "%s:%u: --platform", file, from->line);
    }
    oci_platform_normalize(&nd->pinned, &nd->pinned);
    nd->platform_fixed = !t.target_dep;
    nd->build_platform = nd->platform_fixed && oci_platform_same(&nd->pinned, &build);
    return 0;
}

/* Whether a stage declares an ARG whose value comes from a target-dependent global. */
static bool args_target_dep(const bld_dockerfile *df, const bld_scope *global, size_t i)
{
    const bld_stage *st = &df->stages[i];
    for (size_t k = 1; k < st->n_instrs; k++) {
        const bld_instr *ins = &st->instrs[k];
        for (size_t a = 0; ins->kind == BLD_ARG && a < ins->n_kvs; a++) {
            if (!ins->kvs[a].value && bld__scope_target_dep(global, ins->kvs[a].key)) {
                return true;
            }
        }
    }
    return false;
}

/* validateCircularDependency: a stage may not need itself through COPY --from or mounts. */
MAR_MUST_USE static int cycles(const bld_dockerfile *df, const bld_graph *g, mar_err **err)
{
    unsigned char *color = mar_xcalloc(g->n + 1, 1);
    size_t *stack = mar_xcalloc(g->n + 1, sizeof(size_t)),
           *edge = mar_xcalloc(g->n + 1, sizeof(size_t));
    int r = 0;
    for (size_t root = 0; root < g->n && r == 0; root++) {
        if (color[root]) {
            continue;
        }
        size_t sp = 0;
        stack[sp] = root, edge[sp] = 0, color[root] = 1;
        while (r == 0) {
            size_t v = stack[sp];
            if (edge[sp] < g->nodes[v].n_deps) {
                const bld_node *nd = &g->nodes[v];
                size_t w = nd->deps[edge[sp]];
                unsigned line = nd->dep_lines[edge[sp]++];
                /* The FROM base is always earlier; BuildKit leaves it out of this check. */
                if (nd->base_kind == BLD_BASE_STAGE && w == nd->base_stage &&
                    line == df->stages[v].instrs[0].line) {
                    continue;
                }
                if (color[w] == 1) {
                    char buf[32];
                    r = mar_err_set(err, MAR_EUSAGE, 0,
                                    "%s:%u: circular dependency detected on stage '%s'",
                                    df->filename, line, stage_label(df, w, buf, sizeof(buf)));
                } else if (!color[w]) {
                    color[w] = 1;
                    stack[++sp] = w, edge[sp] = 0;
                }
                continue;
            }
            color[v] = 2;
            if (!sp) {
                break;
            }
            sp--;
        }
    }
    free(color), free(stack), free(edge);
    return r;
}

int bld_graph_build(const bld_dockerfile *df, const bld_scope *global, bld_graph **ret,
                    mar_err **err)
{
    _cleanup_graph_ bld_graph *g = mar_xcalloc(1, sizeof(*g));
    g->nodes = mar_xcalloc(df->n_stages + 1, sizeof(bld_node));
    g->n = df->n_stages;
    bool *dep = mar_xcalloc(df->n_stages + 1, sizeof(bool));
    mar_map names = MAR_MAP_INIT;
    name_map(df, &names);
    int r = 0;
    for (size_t i = 0; i < df->n_stages && r == 0; i++) {
        bld_node *nd = &g->nodes[i];
        bool image = false;
        r = from_line(df, &names, global, i, g, &dep[i], err);
        if (r == 0 && nd->base_kind == BLD_BASE_STAGE) {
            const bld_node *b = &g->nodes[nd->base_stage];
            add_dep(nd, nd->base_stage, df->stages[i].instrs[0].line);
            nd->pinned = b->pinned;
            nd->platform_fixed = b->platform_fixed;
            nd->build_platform = b->build_platform;
            /* ONBUILD triggers of the base stage run in this one. */
            const bld_stage *bs = &df->stages[nd->base_stage];
            for (size_t k = 1; k < bs->n_instrs && r == 0; k++) {
                if (bs->instrs[k].kind == BLD_ONBUILD) {
                    r = instr_sources(df, &names, nd, bs->instrs[k].trigger, &image, err);
                }
            }
        }
        const bld_stage *st = &df->stages[i];
        for (size_t k = 1; k < st->n_instrs && r == 0; k++) {
            r = instr_sources(df, &names, nd, &st->instrs[k], &image, err);
        }
        finish_node(nd);
        /* An image in COPY --from or a mount is pulled for the target platform. */
        dep[i] = dep[i] || image || args_target_dep(df, global, i);
    }
    if (r == 0) {
        r = cycles(df, g, err);
    }
    /* Dependencies of a stage may come later in the file (an error only when needed), so the
     * target independence settles by repeating until nothing changes. */
    for (size_t i = 0; i < g->n && r == 0; i++) {
        g->nodes[i].target_independent = g->nodes[i].platform_fixed && !dep[i];
    }
    for (bool changed = true; changed && r == 0;) {
        changed = false;
        for (size_t i = 0; i < g->n; i++) {
            bld_node *nd = &g->nodes[i];
            for (size_t d = 0; d < nd->n_deps && nd->target_independent; d++) {
                if (!g->nodes[nd->deps[d]].target_independent) {
                    nd->target_independent = false;
                    changed = true;
                }
            }
        }
    }
    free(dep);
    mar_map_release(&names);
    if (r < 0) {
        return r;
    }
    *ret = TAKE_PTR(g);
    return 0;
}

int bld_graph_needed(const bld_graph *g, const bld_dockerfile *df, const char *target,
                     bool **ret_needed, mar_err **err)
{
    size_t t = g->n - 1;
    mar_map names = MAR_MAP_INIT;
    name_map(df, &names);
    bool found = !target || find_stage(&names, target, &t);
    mar_map_release(&names);
    if (!found) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s: target stage '%s' could not be found",
                           df->filename, target);
    }
    bool *need = mar_xcalloc(g->n + 1, sizeof(bool));
    size_t *todo = mar_xcalloc(g->n + 1, sizeof(size_t)), n = 0;
    need[t] = true;
    todo[n++] = t;
    while (n) {
        size_t v = todo[--n];
        const bld_node *nd = &g->nodes[v];
        for (size_t d = 0; d < nd->n_deps; d++) {
            size_t w = nd->deps[d];
            if (w > v) {
                char a[32], b[32];
                free(need), free(todo);
                return mar_err_set(err, MAR_EUSAGE, 0,
                                   "%s:%u: stage '%s' is used by stage '%s' but defined after it",
                                   df->filename, nd->dep_lines[d], stage_label(df, w, a, sizeof(a)),
                                   stage_label(df, v, b, sizeof(b)));
            }
            if (!need[w]) {
                need[w] = true;
                todo[n++] = w;
            }
        }
    }
    free(todo);
    *ret_needed = need;
    return 0;
}

bld_graph *bld_graph_free(bld_graph *g)
{
    if (!g) {
        return NULL;
    }
    for (size_t i = 0; i < g->n; i++) {
        free(g->nodes[i].base);
        free(g->nodes[i].platform);
        free(g->nodes[i].deps);
        free(g->nodes[i].dep_lines);
        mar_strv_release(&g->nodes[i].images);
    }
    free(g->nodes);
    mar_strv_release(&g->warnings);
    free(g);
    return NULL;
}

/* ---- Base images for mar audit --------------------------------------------------------------- */

typedef struct defaults {
    const bld_dockerfile *df;
    mar_strv keys, values; /* values[i] NULL: unknown */
} defaults;

static bld_var_state default_of(const char *name, const char **ret_value, void *ud)
{
    defaults *d = ud;
    for (size_t i = d->keys.n; i-- > 0;) {
        if (strcmp(d->keys.v[i], name) == 0) {
            if (!d->values.v[i]) {
                return BLD_VAR_UNKNOWN;
            }
            *ret_value = d->values.v[i];
            return BLD_VAR_SET;
        }
    }
    static const char *const autos[] = {"BUILDPLATFORM", "BUILDOS",         "BUILDOSVERSION",
                                        "BUILDARCH",     "BUILDVARIANT",    "TARGETPLATFORM",
                                        "TARGETOS",      "TARGETOSVERSION", "TARGETARCH",
                                        "TARGETVARIANT", "TARGETSTAGE"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(autos); i++) {
        if (strcmp(autos[i], name) == 0) {
            return BLD_VAR_UNKNOWN;
        }
    }
    return BLD_VAR_UNSET;
}

int bld_dockerfile_bases(const bld_dockerfile *df, bld_base **ret, size_t *ret_n, mar_err **err)
{
    defaults d = {.df = df};
    int r = 0;
    for (size_t i = 0; i < df->n_args && r == 0; i++) {
        const bld_instr *ins = &df->args[i];
        for (size_t j = 0; j < ins->n_kvs && r == 0; j++) {
            const bld_kv *kv = &ins->kvs[j];
            char *v = NULL;
            bool unresolved = false;
            if (kv->value) {
                r = bld_expand_word(kv->value, df->escape, 0, default_of, &d, &v, &unresolved, err);
                if (r < 0) {
                    mar_err_wrap(err, "%s:%u", df->filename, ins->line);
                    break;
                }
            }
            if (unresolved || !v) {
                free(v);
                v = NULL;
            }
            /* Declared without a default: an earlier default stays (BuildKit), else only a
             * --build-arg could set it, so it is unknown. */
            const char *earlier = NULL;
            if (!kv->value && default_of(kv->key, &earlier, &d) != BLD_VAR_UNSET) {
                continue;
            }
            mar_strv_push(&d.keys, kv->key);
            mar_strv_push_take(&d.values, v);
        }
    }
    bld_base *v = mar_xcalloc(df->n_stages + 1, sizeof(*v));
    mar_map names = MAR_MAP_INIT;
    name_map(df, &names);
    for (size_t i = 0; i < df->n_stages && r == 0; i++) {
        const bld_instr *from = &df->stages[i].instrs[0];
        bld_base *b = &v[i];
        b->line = from->line;
        b->stage_name = from->stage_name ? mar_xstrdup(from->stage_name) : NULL;
        r = bld_expand_word(from->args.v[0], df->escape, 0, default_of, &d, &b->image,
                            &b->image_unresolved, err);
        if (r == 0 && from->platform) {
            r = bld_expand_word(from->platform, df->escape, 0, default_of, &d, &b->platform,
                                &b->platform_unresolved, err);
        }
        if (r < 0) {
            mar_err_wrap(err, "%s:%u", df->filename, from->line);
            break;
        }
        size_t j = (size_t)(uintptr_t)mar_map_get(&names, b->image);
        b->is_stage = j && j - 1 < i;
        b->is_scratch = !b->is_stage && strcmp(b->image, "scratch") == 0;
    }
    mar_map_release(&names);
    mar_strv_release(&d.keys);
    for (size_t i = 0; i < d.values.n; i++) {
        free(d.values.v[i]);
    }
    free(d.values.v);
    if (r < 0) {
        bld_bases_free(v, df->n_stages);
        return -MAR_EUSAGE;
    }
    *ret = v;
    *ret_n = df->n_stages;
    return 0;
}

void bld_bases_free(bld_base *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].image);
        free(v[i].platform);
        free(v[i].stage_name);
    }
    free(v);
}
