/* ARG and ENV scoping (Dockerfile reference, "ARG": "Default values", "Scope", "Using ARG
 * variables", "Predefined ARGs", "Automatic platform ARGs in the global scope"), with BuildKit's
 * rules where the reference is silent (frontend/dockerfile/dockerfile2llb/convert.go
 * buildMetaArgs and dispatchArg, platform.go defaultArgs). */
#include "builder/dockerfile-internal.h"

#include <string.h>

/* Variables with their values in declaration order. */
typedef struct vars {
    mar_map map; /* key -> index + 1 into keys/values */
    mar_strv keys;
    mar_strv values; /* NULL: declared without a value */
} vars;

struct bld_scope {
    const bld_scope *global; /* NULL for the global scope */
    vars env;
    vars args;
    vars build_args;    /* global scope: --build-arg */
    mar_map target_dep; /* global scope: names whose value varies with the target platform */
};

static const char *const proxies[] = {
        "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
        "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy",
};

bool bld_arg_is_proxy(const char *name)
{
    for (size_t i = 0; i < MAR_ARRAY_SIZE(proxies); i++) {
        if (strcmp(name, proxies[i]) == 0) {
            return true;
        }
    }
    return false;
}

static size_t vars_find(const vars *v, const char *key)
{
    return (size_t)(uintptr_t)mar_map_get(&v->map, key);
}

/* Sets key; a NULL value only declares it (an existing value stays). */
static void vars_set(vars *v, const char *key, const char *value)
{
    size_t i = vars_find(v, key);
    if (!i) {
        mar_strv_push(&v->keys, key);
        mar_strv_push_take(&v->values, NULL);
        i = v->keys.n;
        mar_map_set(&v->map, key, (void *)(uintptr_t)i);
    }
    if (value) {
        free(v->values.v[i - 1]);
        v->values.v[i - 1] = mar_xstrdup(value);
    }
}

static const char *vars_get(const vars *v, const char *key)
{
    size_t i = vars_find(v, key);
    return i ? v->values.v[i - 1] : NULL;
}

static void vars_copy(vars *dst, const vars *src)
{
    for (size_t i = 0; i < src->keys.n; i++) {
        vars_set(dst, src->keys.v[i], src->values.v[i]);
    }
}

static void vars_release(vars *v)
{
    mar_map_release(&v->map);
    mar_strv_release(&v->keys);
    for (size_t i = 0; i < v->values.n; i++) {
        free(v->values.v[i]);
    }
    free(v->values.v);
    *v = (vars){0};
}

bld_var_state bld_scope_lookup(const char *name, const char **ret_value, void *scope)
{
    const bld_scope *s = scope;
    const char *v = vars_get(&s->env, name);
    if (!v) {
        v = vars_get(&s->args, name);
    }
    if (!v) {
        return BLD_VAR_UNSET;
    }
    *ret_value = v;
    return BLD_VAR_SET;
}

/* Records the names an expansion looks up (to tell whether a value depends on the target). */
typedef struct tracer {
    const bld_scope *s;
    bool target_dep;
} tracer;

static bld_var_state trace(const char *name, const char **ret_value, void *ud)
{
    tracer *t = ud;
    const bld_scope *g = t->s->global ? t->s->global : t->s;
    if (mar_map_get(&g->target_dep, name) && !vars_get(&t->s->env, name)) {
        t->target_dep = true;
    }
    return bld_scope_lookup(name, ret_value, (void *)t->s);
}

int bld_scope_arg(bld_scope *s, const bld_kv *arg, char escape, mar_err **err)
{
    const bld_scope *g = s->global ? s->global : s;
    const char *given = vars_get(&g->build_args, arg->key);
    _cleanup_free_ char *value = NULL;
    bool dep = false;
    if (given) {
        value = mar_xstrdup(given);
    } else if (arg->value) {
        tracer t = {.s = s};
        if (bld_expand_word(arg->value, escape, 0, trace, &t, &value, NULL, err) < 0) {
            return mar_err_wrap(err, "ARG %s", arg->key);
        }
        dep = t.target_dep;
    } else if (s->global) {
        const char *gv = vars_get(&g->args, arg->key);
        value = gv ? mar_xstrdup(gv) : NULL;
        dep = mar_map_get(&g->target_dep, arg->key) != NULL;
    }
    vars_set(&s->args, arg->key, value);
    if (!s->global && value) {
        if (dep) {
            mar_map_set(&s->target_dep, arg->key, (void *)1);
        } else {
            mar_map_del(&s->target_dep, arg->key);
        }
    }
    return 0;
}

void bld_scope_env(bld_scope *s, const char *key, const char *value)
{
    vars_set(&s->env, key, value ? value : "");
}

static void set_auto(bld_scope *g, const char *key, const char *value, bool target)
{
    const char *given = vars_get(&g->build_args, key);
    vars_set(&g->args, key, given ? given : value);
    if (target && !given) {
        mar_map_set(&g->target_dep, key, (void *)1);
    }
}

int bld_scope_global(const bld_dockerfile *df, const bld_arg_opts *opts, bld_scope **ret,
                     mar_err **err)
{
    _cleanup_scope_ bld_scope *g = mar_xcalloc(1, sizeof(*g));
    for (size_t i = 0; i < opts->n_build_args; i++) {
        const char *a = opts->build_args[i], *eq = strchr(a, '=');
        if (!eq || eq == a) {
            return mar_err_set(err, MAR_EUSAGE, 0, "build argument '%s' is not NAME=VALUE", a);
        }
        _cleanup_free_ char *key = mar_xstrndup(a, (size_t)(eq - a));
        vars_set(&g->build_args, key, eq + 1);
    }
    /* Values as containerd normalizes them: linux/arm64 has no variant, linux/arm has v7. */
    oci_platform bp, tp;
    oci_platform_normalize(&opts->build_platform, &bp);
    oci_platform_normalize(&opts->target_platform, &tp);
    char bs[OCI_PLATFORM_STR_MAX], ts[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&bp, bs, sizeof(bs));
    oci_platform_format_all(&tp, ts, sizeof(ts));
    const char *target = opts->target;
    if (!target && df->n_stages) {
        target = df->stages[df->n_stages - 1].name;
    }
    set_auto(g, "BUILDPLATFORM", bs, false);
    set_auto(g, "BUILDOS", bp.os, false);
    set_auto(g, "BUILDOSVERSION", bp.os_version, false);
    set_auto(g, "BUILDARCH", bp.arch, false);
    set_auto(g, "BUILDVARIANT", bp.variant, false);
    set_auto(g, "TARGETPLATFORM", ts, true);
    set_auto(g, "TARGETOS", tp.os, true);
    set_auto(g, "TARGETOSVERSION", tp.os_version, true);
    set_auto(g, "TARGETARCH", tp.arch, true);
    set_auto(g, "TARGETVARIANT", tp.variant, true);
    set_auto(g, "TARGETSTAGE", target ? target : "default", false);
    for (size_t i = 0; i < df->n_args; i++) {
        const bld_instr *ins = &df->args[i];
        for (size_t j = 0; j < ins->n_kvs; j++) {
            if (bld_scope_arg(g, &ins->kvs[j], df->escape, err) < 0) {
                return mar_err_wrap(err, "%s:%u", df->filename, ins->line);
            }
        }
    }
    *ret = TAKE_PTR(g);
    return 0;
}

bld_scope *bld_scope_stage(const bld_scope *global, const bld_scope *base)
{
    bld_scope *s = mar_xcalloc(1, sizeof(*s));
    s->global = global;
    if (base) {
        vars_copy(&s->env, &base->env);
        vars_copy(&s->args, &base->args);
    }
    return s;
}

void bld_scope_run_env(const bld_scope *s, mar_strv *ret)
{
    for (size_t i = 0; i < s->env.keys.n; i++) {
        mar_strv_push_take(ret, mar_xasprintf("%s=%s", s->env.keys.v[i], s->env.values.v[i]));
    }
    for (size_t i = 0; i < s->args.keys.n; i++) {
        const char *k = s->args.keys.v[i], *v = s->args.values.v[i];
        if (v && !vars_find(&s->env, k)) {
            mar_strv_push_take(ret, mar_xasprintf("%s=%s", k, v));
        }
    }
    const bld_scope *g = s->global ? s->global : s;
    for (size_t i = 0; i < g->build_args.keys.n; i++) {
        const char *k = g->build_args.keys.v[i];
        if (bld_arg_is_proxy(k) && !vars_find(&s->args, k) && !vars_find(&s->env, k)) {
            mar_strv_push_take(ret, mar_xasprintf("%s=%s", k, g->build_args.values.v[i]));
        }
    }
}

void bld_scope_args(const bld_scope *s, mar_strv *ret)
{
    for (size_t i = 0; i < s->args.keys.n; i++) {
        if (s->args.values.v[i]) {
            mar_strv_push_take(ret, mar_xasprintf("%s=%s", s->args.keys.v[i], s->args.values.v[i]));
        }
    }
}

bool bld__scope_target_dep(const bld_scope *global, const char *name)
{
    return mar_map_get(&global->target_dep, name) != NULL;
}

bld_scope *bld_scope_free(bld_scope *s)
{
    if (!s) {
        return NULL;
    }
    vars_release(&s->env);
    vars_release(&s->args);
    vars_release(&s->build_args);
    mar_map_release(&s->target_dep);
    free(s);
    return NULL;
}
