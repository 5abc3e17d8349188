/* Instruction-level checks: the flags each instruction takes, argument counts and forms, stage
 * names, HEALTHCHECK options, COPY/ADD heredoc sources, ONBUILD triggers (Dockerfile reference;
 * BuildKit frontend/dockerfile/instructions/parse.go and bflag.go). Where BuildKit silently
 * ignores something (flags of ARG, STOPSIGNAL and HEALTHCHECK NONE, an unknown ONBUILD trigger)
 * mar refuses it (docs/internals/dockerfile.md §3). */
#include "builder/dockerfile-internal.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

typedef enum { F_BOOL, F_STRING, F_STRINGS } ftype;

typedef struct fspec {
    const char *name;
    ftype type;
    const char *refused; /* known but not supported: why */
} fspec;

typedef struct fval {
    bool used;
    bool b;
    const char *s;
    mar_strv v;
} fval;

static const fspec from_flags[] = {{"platform", F_STRING, NULL}};
static const fspec run_flags[] = {
        {"mount", F_STRINGS, NULL},
        {"network", F_STRING, NULL},
        {"security", F_STRING, NULL},
};
static const fspec copy_flags[] = {
        {"chown", F_STRING, NULL},    {"from", F_STRING, NULL},
        {"chmod", F_STRING, NULL},    {"link", F_BOOL, NULL},
        {"exclude", F_STRINGS, NULL}, {"parents", F_BOOL, "COPY --parents is not supported"},
};
static const fspec add_flags[] = {
        {"chown", F_STRING, NULL},
        {"chmod", F_STRING, NULL},
        {"link", F_BOOL, NULL},
        {"checksum", F_STRING, NULL},
        {"unpack", F_BOOL, NULL},
        {"exclude", F_STRINGS, NULL},
        {"keep-git-dir", F_BOOL, "ADD --keep-git-dir is not supported (mar keeps no .git)"},
};
static const fspec health_flags[] = {
        {"interval", F_STRING, NULL},     {"timeout", F_STRING, NULL},
        {"start-period", F_STRING, NULL}, {"start-interval", F_STRING, NULL},
        {"retries", F_STRING, NULL},
};

/* BuildKit's BFlags.Parse with mar's stricter values: a string flag needs a non-empty value. */
MAR_MUST_USE static int parse_flags(const bld__pctx *P, unsigned line, const bld__node *n,
                                    bld_instr *ins, const fspec *spec, size_t nspec, fval *vals,
                                    mar_err **err)
{
    const char *kw = bld_kind_name(n->kind);
    ins->flags = mar_xcalloc(n->flags.n + 1, sizeof(bld_flag));
    for (size_t i = 0; i < n->flags.n; i++) {
        const char *a = n->flags.v[i] + 2, *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        bld_flag *f = &ins->flags[ins->n_flags++];
        f->name = mar_xstrndup(a, nl);
        f->value = eq ? mar_xstrdup(eq + 1) : NULL;
        size_t j = 0;
        while (j < nspec && strcmp(spec[j].name, f->name) != 0) {
            j++;
        }
        if (j == nspec) {
            return bld__fail(P, line, err, "unknown flag '--%s' for %s", f->name, kw);
        }
        if (spec[j].refused) {
            return bld__fail(P, line, err, "%s", spec[j].refused);
        }
        if (vals[j].used && spec[j].type != F_STRINGS) {
            return bld__fail(P, line, err, "duplicate flag '--%s'", f->name);
        }
        vals[j].used = true;
        if (spec[j].type == F_BOOL) {
            if (eq && !eq[1]) {
                return bld__fail(P, line, err, "flag '--%s' needs a value after '='", f->name);
            }
            if (!eq || strcasecmp(eq + 1, "true") == 0) {
                vals[j].b = true;
            } else if (strcasecmp(eq + 1, "false") == 0) {
                vals[j].b = false;
            } else {
                return bld__fail(P, line, err, "flag '--%s' takes true or false, not '%s'", f->name,
                                 eq + 1);
            }
            continue;
        }
        if (!eq || !eq[1]) {
            return bld__fail(P, line, err, "flag '--%s' needs a value", f->name);
        }
        vals[j].s = f->value;
        if (spec[j].type == F_STRINGS) {
            mar_strv_push(&vals[j].v, f->value);
        }
    }
    return 0;
}

static void release_vals(fval *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mar_strv_release(&vals[i].v);
    }
}

static char *dup_or_null(const char *s)
{
    return s ? mar_xstrdup(s) : NULL;
}

/* Go's time.ParseDuration, into nanoseconds: [-+]? ("0" | (decimal unit)+) with the units ns,
 * us (µs, μs), ms, s, m, h. */
static bool parse_duration(const char *s, int64_t *ret)
{
    static const struct {
        const char *unit;
        uint64_t ns;
    } units[] = {
            {"ns", 1ull},           {"us", 1000ull},         {"\xc2\xb5s", 1000ull},
            {"\xce\xbcs", 1000ull}, {"ms", 1000000ull},      {"s", 1000000000ull},
            {"m", 60000000000ull},  {"h", 3600000000000ull},
    };
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s++ == '-';
    }
    if (strcmp(s, "0") == 0) {
        *ret = 0;
        return true;
    }
    if (!*s) {
        return false;
    }
    unsigned __int128 total = 0;
    while (*s) {
        uint64_t whole = 0, frac = 0, scale = 1;
        bool pre = false, post = false;
        for (; *s >= '0' && *s <= '9'; s++, pre = true) {
            if (whole > (UINT64_MAX - 9) / 10) {
                return false;
            }
            whole = whole * 10 + (uint64_t)(*s - '0');
        }
        if (*s == '.') {
            for (s++; *s >= '0' && *s <= '9'; s++, post = true) {
                if (scale < 1000000000000000000ull) {
                    frac = frac * 10 + (uint64_t)(*s - '0');
                    scale *= 10;
                }
            }
        }
        if (!pre && !post) {
            return false;
        }
        size_t u = 0, ul = 0;
        for (size_t i = 0; i < MAR_ARRAY_SIZE(units); i++) {
            size_t l = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, l) == 0 && l > ul) {
                u = i, ul = l;
            }
        }
        if (!ul) {
            return false;
        }
        s += ul;
        total += (unsigned __int128)whole * units[u].ns +
                 (unsigned __int128)frac * units[u].ns / scale;
        if (total > (unsigned __int128)INT64_MAX + (neg ? 1 : 0)) {
            return false;
        }
    }
    *ret = neg ? (int64_t)(-(__int128)total) : (int64_t)total;
    return true;
}

MAR_MUST_USE static int health(const bld__pctx *P, unsigned line, const bld__node *n,
                               bld_instr *ins, mar_err **err)
{
    if (!n->args.n) {
        return bld__fail(P, line, err, "HEALTHCHECK requires at least one argument");
    }
    const char *typ = n->args.v[0];
    if (strcasecmp(typ, "NONE") == 0) {
        if (n->args.n > 1) {
            return bld__fail(P, line, err, "HEALTHCHECK NONE takes no arguments");
        }
        if (n->flags.n) {
            return bld__fail(P, line, err, "HEALTHCHECK NONE takes no flags");
        }
        ins->health.none = true;
        return 0;
    }
    fval v[MAR_ARRAY_SIZE(health_flags)] = {0};
    int r = parse_flags(P, line, n, ins, health_flags, MAR_ARRAY_SIZE(health_flags), v, err);
    release_vals(v, MAR_ARRAY_SIZE(v));
    if (r < 0) {
        return r;
    }
    if (strcasecmp(typ, "CMD") != 0) {
        return bld__fail(P, line, err, "unknown type '%s' in HEALTHCHECK (try CMD)", typ);
    }
    if (n->args.n < 2) {
        return bld__fail(P, line, err, "missing command after HEALTHCHECK CMD");
    }
    for (size_t i = 1; i < n->args.n; i++) {
        mar_strv_push(&ins->args, n->args.v[i]);
    }
    ins->json = n->json;
    int64_t *dst[] = {&ins->health.interval_ns, &ins->health.timeout_ns,
                      &ins->health.start_period_ns, &ins->health.start_interval_ns};
    for (size_t i = 0; i < 4; i++) {
        if (!v[i].s) {
            continue;
        }
        if (!parse_duration(v[i].s, dst[i])) {
            return bld__fail(P, line, err, "HEALTHCHECK --%s: invalid duration '%s'",
                             health_flags[i].name, v[i].s);
        }
        if (*dst[i] != 0 && *dst[i] < 1000000) {
            return bld__fail(P, line, err, "HEALTHCHECK --%s '%s' is less than 1ms",
                             health_flags[i].name, v[i].s);
        }
    }
    if (v[4].s) {
        int64_t retries;
        const char *num = v[4].s[0] == '+' && v[4].s[1] != '-' ? v[4].s + 1 : v[4].s;
        if (!mar_parse_i64(num, INT32_MIN, INT32_MAX, &retries)) {
            return bld__fail(P, line, err, "HEALTHCHECK --retries: invalid number '%s'", v[4].s);
        }
        if (retries < 0) {
            return bld__fail(P, line, err, "HEALTHCHECK --retries cannot be negative (%s)", v[4].s);
        }
        ins->health.retries = (int)retries;
    }
    return 0;
}

/* FROM image [AS name]; names: ^[a-z][a-z0-9-_.]*$ after lower-casing. */
MAR_MUST_USE static int from(const bld__pctx *P, unsigned line, const bld__node *n, bld_instr *ins,
                             mar_err **err)
{
    fval v[1] = {0};
    if (parse_flags(P, line, n, ins, from_flags, 1, v, err) < 0) {
        return -MAR_EUSAGE;
    }
    ins->platform = dup_or_null(v[0].s);
    if (n->args.n == 3 && strcasecmp(n->args.v[1], "as") == 0) {
        const char *name = n->args.v[2];
        bool ok = isalpha((unsigned char)name[0]);
        for (const char *c = name; *c && ok; c++) {
            ok = isalnum((unsigned char)*c) || strchr("-_.", *c);
        }
        if (!ok) {
            return bld__fail(P, line, err,
                             "invalid name for build stage '%s': it must start with a letter "
                             "and hold only letters, digits, '-', '_' and '.'",
                             name);
        }
        ins->stage_name = mar_xstrdup(name);
        for (char *c = ins->stage_name; *c; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
    } else if (n->args.n != 1) {
        return bld__fail(P, line, err, "FROM requires either one or three arguments");
    }
    mar_strv_push(&ins->args, n->args.v[0]);
    return 0;
}

MAR_MUST_USE static int run(const bld__pctx *P, unsigned line, const bld__node *n, bld_instr *ins,
                            mar_err **err)
{
    fval v[MAR_ARRAY_SIZE(run_flags)] = {0};
    int r = parse_flags(P, line, n, ins, run_flags, MAR_ARRAY_SIZE(run_flags), v, err);
    if (r < 0) {
        goto out;
    }
    if (v[1].s) {
        static const char *const nets[] = {"default", "none", "host"};
        size_t i = 0;
        while (i < 3 && strcmp(v[1].s, nets[i]) != 0) {
            i++;
        }
        if (i == 3) {
            r = bld__fail(P, line, err, "invalid network mode '%s' (default, none or host)",
                          v[1].s);
            goto out;
        }
        ins->network = (bld_network)i;
    }
    if (v[2].s && strcmp(v[2].s, "sandbox") != 0) {
        r = strcmp(v[2].s, "insecure") == 0
                    ? bld__fail(P, line, err, "RUN --security=insecure is not supported")
                    : bld__fail(P, line, err, "invalid security mode '%s'", v[2].s);
        goto out;
    }
    ins->mounts = mar_xcalloc(v[0].v.n + 1, sizeof(bld_mount));
    for (size_t i = 0; i < v[0].v.n; i++) {
        mar_err *e = NULL;
        if (bld_mount_parse(v[0].v.v[i], P->esc, NULL, NULL, &ins->mounts[i], &e) < 0) {
            r = bld__fail(P, line, err, "%s", e->msg);
            mar_err_free(e);
            goto out;
        }
        ins->n_mounts++;
    }
    if (!n->args.n) {
        r = bld__fail(P, line, err, "RUN requires at least one argument");
    }
out:
    release_vals(v, MAR_ARRAY_SIZE(v));
    return r;
}

bool bld_chmod_valid(const char *s)
{
    if (*s >= '0' && *s <= '9') {
        /* strconv.ParseUint(s, 8, 32), then at most 07777 */
        uint64_t v = 0;
        for (; *s; s++) {
            if (*s < '0' || *s > '7' || (v = v * 8 + (uint64_t)(*s - '0')) > 07777) {
                return false;
            }
        }
        return true;
    }
    /* chmod(1) symbolic modes as tonistiigi/dchapes-mode reads them: clauses separated by ',',
     * each [ugoa]* then one or more of an operator [-+=] and permissions [rwxXst] or [ugo]. */
    for (;;) {
        s += strspn(s, "ugoa");
        if (!*s || !strchr("+-=", *s)) {
            return false;
        }
        while (*s && strchr("+-=", *s)) {
            s++;
            s += strspn(s, "rwxXstugo");
        }
        if (!*s) {
            return true;
        }
        if (*s++ != ',') {
            return false;
        }
    }
}

MAR_MUST_USE static int copy(const bld__pctx *P, unsigned line, const bld__node *n, bld_instr *ins,
                             bld_heredoc *docs, size_t n_docs, mar_err **err)
{
    bool add = n->kind == BLD_ADD;
    const char *kw = bld_kind_name(n->kind);
    const fspec *spec = add ? add_flags : copy_flags;
    size_t nspec = add ? MAR_ARRAY_SIZE(add_flags) : MAR_ARRAY_SIZE(copy_flags);
    fval v[8] = {0};
    int r = parse_flags(P, line, n, ins, spec, nspec, v, err);
    if (r < 0) {
        goto out;
    }
    for (size_t i = 0; i < nspec; i++) {
        const char *name = spec[i].name;
        if (strcmp(name, "chown") == 0) {
            ins->chown = dup_or_null(v[i].s);
        } else if (strcmp(name, "chmod") == 0) {
            ins->chmod = dup_or_null(v[i].s);
        } else if (strcmp(name, "from") == 0) {
            ins->from = dup_or_null(v[i].s);
        } else if (strcmp(name, "checksum") == 0) {
            ins->checksum = dup_or_null(v[i].s);
        } else if (strcmp(name, "link") == 0) {
            ins->link = v[i].b;
        } else if (strcmp(name, "unpack") == 0) {
            ins->unpack = v[i].used ? v[i].b : -1;
        } else if (strcmp(name, "exclude") == 0) {
            for (size_t j = 0; j < v[i].v.n; j++) {
                const char *why = NULL;
                if (!bld__ignore_pattern_ok(v[i].v.v[j], &why)) {
                    r = bld__fail(P, line, err, "%s --exclude '%s': %s", kw, v[i].v.v[j], why);
                    goto out;
                }
                mar_strv_push(&ins->excludes, v[i].v.v[j]);
            }
        }
    }
    if (ins->chmod && !strchr(ins->chmod, '$') && !bld_chmod_valid(ins->chmod)) {
        r = bld__fail(P, line, err,
                      "invalid %s --chmod '%s' (octal up to 07777, or symbolic like u=rwX,go=rX)",
                      kw, ins->chmod);
        goto out;
    }
    if (ins->from) {
        /* BuildKit resolves --from before any stage runs, so it takes no variables. */
        _cleanup_free_ char *x = NULL;
        mar_err *e = NULL;
        if (bld_expand_word(ins->from, P->esc, BLD__X_LAX_NAMES, NULL, NULL, &x, NULL, &e) < 0 ||
            strcmp(x, ins->from) != 0) {
            mar_err_free(e);
            r = bld__fail(P, line, err,
                          "%s --from does not expand variables; define a stage with "
                          "FROM and a global ARG instead",
                          kw);
            goto out;
        }
    }
    if (n->args.n < 2) {
        r = bld__fail(P, line, err,
                      "%s requires at least two arguments (sources and a "
                      "destination)",
                      kw);
        goto out;
    }
    const char *why;
    bld_heredoc h = {0};
    const char *dest = n->args.v[n->args.n - 1];
    if (bld__heredoc_word(dest, &h, &why) > 0) {
        free(h.name);
        r = bld__fail(P, line, err, "%s cannot accept a heredoc as a destination", kw);
        goto out;
    }
    ins->dest = mar_xstrdup(dest);
    ins->json = n->json;
    bool *used = mar_xcalloc(n_docs + 1, sizeof(bool));
    ins->heredocs = mar_xcalloc(n_docs + 1, sizeof(bld_heredoc));
    for (size_t i = 0; i + 1 < n->args.n && r == 0; i++) {
        const char *src = n->args.v[i];
        h = (bld_heredoc){0};
        if (bld__heredoc_word(src, &h, &why) <= 0) {
            mar_strv_push(&ins->args, src);
            continue;
        }
        size_t j = 0;
        while (j < n_docs && (used[j] || strcmp(docs[j].name, h.name) != 0)) {
            j++;
        }
        if (j == n_docs) {
            r = bld__fail(P, line, err, "%s source '%s' has no heredoc body", kw, src);
        } else {
            used[j] = true;
            ins->heredocs[ins->n_heredocs++] = docs[j];
            docs[j] = (bld_heredoc){0};
        }
        free(h.name);
    }
    for (size_t j = 0; j < n_docs && r == 0; j++) {
        if (!used[j]) {
            r = bld__fail(P, line, err, "heredoc '%s' is not a source of %s", docs[j].name, kw);
        }
    }
    if (r == 0 && ins->checksum && (ins->args.n != 1 || ins->n_heredocs)) {
        r = bld__fail(P, line, err, "ADD --checksum needs exactly one source");
    }
    free(used);
out:
    release_vals(v, MAR_ARRAY_SIZE(v));
    return r;
}

MAR_MUST_USE static int no_flags(const bld__pctx *P, unsigned line, const bld__node *n,
                                 mar_err **err)
{
    if (n->flags.n) {
        return bld__fail(P, line, err, "unknown flag '%s' for %s", n->flags.v[0],
                         bld_kind_name(n->kind));
    }
    return 0;
}

MAR_MUST_USE static int kvs(const bld__pctx *P, unsigned line, const bld__node *n, bld_instr *ins,
                            mar_err **err)
{
    const char *kw = bld_kind_name(n->kind);
    if (n->kind == BLD_ARG) {
        ins->kvs = mar_xcalloc(n->args.n + 1, sizeof(bld_kv));
        for (size_t i = 0; i < n->args.n; i++) {
            const char *a = n->args.v[i], *eq = strchr(a, '=');
            bld_kv *kv = &ins->kvs[ins->n_kvs++];
            kv->key = eq ? mar_xstrndup(a, (size_t)(eq - a)) : mar_xstrdup(a);
            kv->value = eq ? mar_xstrdup(eq + 1) : NULL;
            if (!*kv->key) {
                return bld__fail(P, line, err, "ARG names can not be blank");
            }
        }
    } else {
        ins->kvs = mar_xcalloc(n->args.n / 2 + 1, sizeof(bld_kv));
        for (size_t i = 0; i + 1 < n->args.n; i += 2) {
            bld_kv *kv = &ins->kvs[ins->n_kvs++];
            kv->key = mar_xstrdup(n->args.v[i]);
            kv->value = mar_xstrdup(n->args.v[i + 1]);
            if (!*kv->key) {
                return bld__fail(P, line, err, "%s names can not be blank", kw);
            }
        }
    }
    if (!ins->n_kvs) {
        return bld__fail(P, line, err, "%s requires at least one argument", kw);
    }
    return 0;
}

MAR_MUST_USE static int build(const bld__pctx *P, const bld__node *n, unsigned line,
                              const char *original, bld_heredoc *docs, size_t n_docs,
                              bld_instr *ins, mar_err **err);

MAR_MUST_USE static int onbuild(const bld__pctx *P, const bld__node *n, unsigned line,
                                bld_heredoc *docs, size_t n_docs, bld_instr *ins, mar_err **err)
{
    if (no_flags(P, line, n, err) < 0) {
        return -MAR_EUSAGE;
    }
    if (!n->sub) {
        return bld__fail(P, line, err, "ONBUILD requires at least one argument");
    }
    bld_kind k = n->sub->kind;
    if (k == BLD_ONBUILD) {
        return bld__fail(P, line, err, "chaining ONBUILD via 'ONBUILD ONBUILD' is not allowed");
    }
    if (k == BLD_FROM || k == BLD_MAINTAINER) {
        return bld__fail(P, line, err, "%s is not allowed as an ONBUILD trigger", bld_kind_name(k));
    }
    /* The trigger text: the line without "ONBUILD", then each heredoc body and delimiter. */
    const char *t = ins->original;
    t += strspn(t, "\t\n\f\r ");
    t += strlen("ONBUILD");
    t += strspn(t, "\t\n\f\r ");
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xputs(&b, t);
    for (size_t i = 0; i < n_docs; i++) {
        mar_buf_xprintf(&b, "\n%s%s", docs[i].raw, docs[i].name);
    }
    ins->trigger_text = mar_buf_detach(&b, NULL);
    ins->trigger = mar_xcalloc(1, sizeof(*ins->trigger));
    return build(P, n->sub, line, n->rest, docs, n_docs, ins->trigger, err);
}

MAR_MUST_USE static int build(const bld__pctx *P, const bld__node *n, unsigned line,
                              const char *original, bld_heredoc *docs, size_t n_docs,
                              bld_instr *ins, mar_err **err)
{
    *ins = (bld_instr){.kind = n->kind, .line = line, .end_line = line, .unpack = -1};
    ins->original = mar_xstrdup(original);
    const char *kw = bld_kind_name(n->kind);
    if (n->kind != BLD_COPY && n->kind != BLD_ADD && n->kind != BLD_ONBUILD && n_docs) {
        ins->heredocs = mar_xcalloc(n_docs, sizeof(bld_heredoc));
        for (size_t i = 0; i < n_docs; i++) {
            ins->heredocs[ins->n_heredocs++] = docs[i];
            docs[i] = (bld_heredoc){0};
        }
    }
    switch (n->kind) {
    case BLD_FROM:
        return from(P, line, n, ins, err);
    case BLD_RUN:
        ins->json = n->json;
        for (size_t i = 0; i < n->args.n; i++) {
            mar_strv_push(&ins->args, n->args.v[i]);
        }
        return run(P, line, n, ins, err);
    case BLD_CMD:
    case BLD_ENTRYPOINT:
    case BLD_SHELL:
        if (no_flags(P, line, n, err) < 0) {
            return -MAR_EUSAGE;
        }
        ins->json = n->json;
        for (size_t i = 0; i < n->args.n; i++) {
            mar_strv_push(&ins->args, n->args.v[i]);
        }
        if (n->kind == BLD_SHELL && !n->json && n->args.n) {
            return bld__fail(P, line, err, "SHELL requires the arguments to be in JSON form");
        }
        /* BuildKit turns a bare CMD or ENTRYPOINT into ["/bin/sh", "-c"]; mar refuses it. */
        if (!n->args.n && (!n->json || n->kind == BLD_SHELL)) {
            return bld__fail(P, line, err, "%s requires at least one argument", kw);
        }
        return 0;
    case BLD_ENV:
    case BLD_LABEL:
    case BLD_ARG:
        if (no_flags(P, line, n, err) < 0) {
            return -MAR_EUSAGE;
        }
        return kvs(P, line, n, ins, err);
    case BLD_EXPOSE:
    case BLD_VOLUME:
        if (no_flags(P, line, n, err) < 0) {
            return -MAR_EUSAGE;
        }
        ins->json = n->json;
        if (!n->args.n) {
            return bld__fail(P, line, err, "%s requires at least one argument", kw);
        }
        for (size_t i = 0; i < n->args.n; i++) {
            const char *a = n->args.v[i];
            if (n->kind == BLD_VOLUME) {
                a += bld__ltrim(a, strlen(a));
                size_t l = bld__rtrim(a, strlen(a));
                if (!l) {
                    return bld__fail(P, line, err, "VOLUME specified can not be an empty string");
                }
                mar_strv_push_take(&ins->args, mar_xstrndup(a, l));
            } else {
                mar_strv_push(&ins->args, a);
            }
        }
        return 0;
    case BLD_USER:
    case BLD_WORKDIR:
    case BLD_STOPSIGNAL:
    case BLD_MAINTAINER:
        if (no_flags(P, line, n, err) < 0) {
            return -MAR_EUSAGE;
        }
        if (n->args.n != 1) {
            return bld__fail(P, line, err, "%s requires exactly one argument", kw);
        }
        mar_strv_push(&ins->args, n->args.v[0]);
        return 0;
    case BLD_HEALTHCHECK:
        return health(P, line, n, ins, err);
    case BLD_ONBUILD:
        return onbuild(P, n, line, docs, n_docs, ins, err);
    case BLD_COPY:
    case BLD_ADD:
        return copy(P, line, n, ins, docs, n_docs, err);
    }
    return bld__fail(P, line, err, "unknown instruction '%s'", n->cmd);
}

int bld__instr_build(const bld__pctx *P, const bld__node *n, unsigned line, const char *original,
                     bld_heredoc *docs, size_t n_docs, bld_instr *ret, mar_err **err)
{
    return build(P, n, line, original, docs, n_docs, ret, err);
}

void bld__heredoc_release(bld_heredoc *h)
{
    free(h->name);
    free(h->raw);
    free(h->content);
    *h = (bld_heredoc){0};
}

void bld__instr_release(bld_instr *ins)
{
    free(ins->original);
    for (size_t i = 0; i < ins->n_flags; i++) {
        free(ins->flags[i].name);
        free(ins->flags[i].value);
    }
    free(ins->flags);
    mar_strv_release(&ins->args);
    for (size_t i = 0; i < ins->n_kvs; i++) {
        free(ins->kvs[i].key);
        free(ins->kvs[i].value);
    }
    free(ins->kvs);
    for (size_t i = 0; i < ins->n_heredocs; i++) {
        bld__heredoc_release(&ins->heredocs[i]);
    }
    free(ins->heredocs);
    free(ins->platform);
    free(ins->stage_name);
    free(ins->from);
    free(ins->chown);
    free(ins->chmod);
    free(ins->checksum);
    mar_strv_release(&ins->excludes);
    free(ins->dest);
    for (size_t i = 0; i < ins->n_mounts; i++) {
        bld_mount_release(&ins->mounts[i]);
    }
    free(ins->mounts);
    if (ins->trigger) {
        bld__instr_release(ins->trigger);
        free(ins->trigger);
    }
    free(ins->trigger_text);
    *ins = (bld_instr){0};
}
