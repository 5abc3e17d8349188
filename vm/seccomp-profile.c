/* Reading seccomp profiles into vm_seccomp: mar's own text format (vm/seccomp/default.txt, whose
 * header describes it) and Docker's JSON profiles (docs/internals/seccomp.md §5). Both are
 * validated here, so that runc never sees a value libseccomp would refuse halfway through
 * starting a container. */
#include "seccomp-internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* runtime-spec config-linux.md "Seccomp": the actions and comparison operators. */
static const char *const actions[] = {
        "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",  "SCMP_ACT_ERRNO",        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",          "SCMP_ACT_NOTIFY",
};
static const char *const ops[] = {
        "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",        "SCMP_CMP_EQ",
        "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
};
static const char *const arches[] = {
        "SCMP_ARCH_X86",     "SCMP_ARCH_X86_64",   "SCMP_ARCH_X32",         "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",      "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",     "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",    "SCMP_ARCH_SH",       "SCMP_ARCH_SHEB",
};
static const char *const filter_flags[] = {
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
};

static const char *lookup(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++) {
        if (strcmp(v[i], s) == 0) {
            return v[i];
        }
    }
    return NULL;
}

const char *vm__sc_action(const char *s)
{
    return lookup(actions, MAR_ARRAY_SIZE(actions), s);
}

const char *vm__sc_op(const char *s)
{
    return lookup(ops, MAR_ARRAY_SIZE(ops), s);
}

bool vm__sc_arch_valid(const char *s)
{
    return lookup(arches, MAR_ARRAY_SIZE(arches), s) != NULL;
}

/* libseccomp's names: lower-case letters, digits and underscores ("_llseek", "mmap2"). */
bool vm__sc_syscall_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')) {
            return false;
        }
    }
    return true;
}

/* capabilities(7) names as the runtime spec writes them: "CAP_" and upper-case letters. */
bool vm__sc_cap_valid(const char *s)
{
    if (!mar_str_startswith(s, "CAP_") || strlen(s) > 64 || !s[4]) {
        return false;
    }
    for (const char *p = s + 4; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return false;
        }
    }
    return true;
}

static void filter_release(vm__sc_filter *f)
{
    mar_strv_release(&f->caps);
    mar_strv_release(&f->arches);
}

vm_seccomp *vm_seccomp_free(vm_seccomp *p)
{
    if (!p) {
        return NULL;
    }
    mar_strv_release(&p->architectures);
    for (size_t i = 0; i < p->n_archmap; i++) {
        free(p->archmap[i].arch);
        mar_strv_release(&p->archmap[i].subs);
    }
    free(p->archmap);
    mar_strv_release(&p->flags);
    for (size_t i = 0; i < p->n_rules; i++) {
        mar_strv_release(&p->rules[i].names);
        filter_release(&p->rules[i].inc);
        filter_release(&p->rules[i].exc);
    }
    free(p->rules);
    free(p);
    return NULL;
}

static vm_seccomp *profile_new(void)
{
    vm_seccomp *p = mar_xcalloc(1, sizeof(*p));
    p->default_errno = -1;
    return p;
}

static vm__sc_rule *rule_add(vm_seccomp *p)
{
    p->rules = mar_xrealloc(p->rules, (p->n_rules + 1) * sizeof(*p->rules));
    vm__sc_rule *r = &p->rules[p->n_rules++];
    memset(r, 0, sizeof(*r));
    r->errno_ret = -1;
    return r;
}

static vm__sc_archmap *archmap_add(vm_seccomp *p)
{
    p->archmap = mar_xrealloc(p->archmap, (p->n_archmap + 1) * sizeof(*p->archmap));
    vm__sc_archmap *a = &p->archmap[p->n_archmap++];
    memset(a, 0, sizeof(*a));
    return a;
}

/* A whole unsigned number, decimal or 0x hex, at most INT64_MAX (what JSON integers carry). */
static bool parse_u64(const char *s, uint64_t *ret)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') {
        return false;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || v > (unsigned long long)INT64_MAX) {
        return false;
    }
    *ret = v;
    return true;
}

/* "4.8" -> {4, 8}; Docker's minKernel form (kernel.major, both needed, not 0.0). */
static bool parse_kernel(const char *s, unsigned ret[2])
{
    char *dot = strchr(s, '.');
    if (!dot || strchr(dot + 1, '.')) {
        return false;
    }
    _cleanup_free_ char *major = mar_xstrndup(s, (size_t)(dot - s));
    int64_t a, b;
    if (!mar_parse_i64(major, 0, 255, &a) || !mar_parse_i64(dot + 1, 0, 255, &b) ||
        (a == 0 && b == 0)) {
        return false;
    }
    ret[0] = (unsigned)a;
    ret[1] = (unsigned)b;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * mar's format. */

static const struct {
    const char *name;
    int value;
} errnos[] = {
        {"EPERM", EPERM},   {"ENOENT", ENOENT}, {"EACCES", EACCES},
        {"EINVAL", EINVAL}, {"ENOSYS", ENOSYS}, {"EOPNOTSUPP", EOPNOTSUPP},
};

static const struct {
    const char *word;
    const char *action;
} text_actions[] = {
        {"allow", "SCMP_ACT_ALLOW"},      {"errno", "SCMP_ACT_ERRNO"},
        {"kill-thread", "SCMP_ACT_KILL"}, {"kill-process", "SCMP_ACT_KILL_PROCESS"},
        {"trap", "SCMP_ACT_TRAP"},        {"log", "SCMP_ACT_LOG"},
};

static const struct {
    const char *word;
    const char *op;
} text_ops[] = {
        {"==", "SCMP_CMP_EQ"}, {"!=", "SCMP_CMP_NE"}, {"<", "SCMP_CMP_LT"},
        {"<=", "SCMP_CMP_LE"}, {">", "SCMP_CMP_GT"},  {">=", "SCMP_CMP_GE"},
};

typedef struct tokens {
    char *v[64];
    size_t n;
} tokens;

/* Splits a line in place at blanks. False when it has more words than a header can use. */
static bool split(char *line, tokens *t)
{
    t->n = 0;
    for (char *s = line; *s;) {
        while (*s == ' ' || *s == '\t') {
            *s++ = '\0';
        }
        if (!*s) {
            break;
        }
        if (t->n == MAR_ARRAY_SIZE(t->v)) {
            return false;
        }
        t->v[t->n++] = s;
        while (*s && *s != ' ' && *s != '\t') {
            s++;
        }
    }
    return true;
}

/* ACTION at t->v[*i]: its OCI name and errno (-1 when it takes none). */
static bool text_action(const tokens *t, size_t *i, const char **ret, long *ret_errno)
{
    if (*i >= t->n) {
        return false;
    }
    for (size_t k = 0; k < MAR_ARRAY_SIZE(text_actions); k++) {
        if (strcmp(t->v[*i], text_actions[k].word) != 0) {
            continue;
        }
        *ret = text_actions[k].action;
        *ret_errno = -1;
        (*i)++;
        if (strcmp(*ret, "SCMP_ACT_ERRNO") != 0) {
            return true;
        }
        if (*i >= t->n) {
            return false;
        }
        for (size_t e = 0; e < MAR_ARRAY_SIZE(errnos); e++) {
            if (strcmp(t->v[*i], errnos[e].name) == 0) {
                *ret_errno = errnos[e].value;
                (*i)++;
                return true;
            }
        }
        int64_t n;
        if (mar_parse_i64(t->v[*i], 1, 4095, &n)) {
            *ret_errno = (long)n;
            (*i)++;
            return true;
        }
        return false;
    }
    return false;
}

/* argN OP VALUE | argN & MASK == VALUE */
static bool text_arg(const tokens *t, size_t *i, vm__sc_arg *ret)
{
    if (*i + 3 > t->n || !mar_str_startswith(t->v[*i], "arg") || strlen(t->v[*i]) != 4 ||
        t->v[*i][3] < '0' || t->v[*i][3] > '5') {
        return false;
    }
    ret->index = (unsigned)(t->v[*i][3] - '0');
    ret->value_two = 0;
    if (strcmp(t->v[*i + 1], "&") == 0) {
        if (*i + 5 > t->n || strcmp(t->v[*i + 3], "==") != 0 ||
            !parse_u64(t->v[*i + 2], &ret->value) || !parse_u64(t->v[*i + 4], &ret->value_two)) {
            return false;
        }
        ret->op = "SCMP_CMP_MASKED_EQ";
        *i += 5;
        return true;
    }
    for (size_t k = 0; k < MAR_ARRAY_SIZE(text_ops); k++) {
        if (strcmp(t->v[*i + 1], text_ops[k].word) == 0) {
            ret->op = text_ops[k].op;
            if (!parse_u64(t->v[*i + 2], &ret->value)) {
                return false;
            }
            *i += 3;
            return true;
        }
    }
    return false;
}

/* [not] cap C... | [not] host A... | kernel >= X.Y | kernel < X.Y; returns an error text or
 * NULL. */
static const char *text_cond(const tokens *t, size_t *i, vm__sc_rule *r)
{
    bool neg = *i < t->n && strcmp(t->v[*i], "not") == 0;
    if (neg) {
        (*i)++;
    }
    if (*i >= t->n) {
        return "a condition is missing";
    }
    const char *kind = t->v[(*i)++];
    vm__sc_filter *f = neg ? &r->exc : &r->inc;
    if (strcmp(kind, "kernel") == 0) {
        if (neg || *i + 2 > t->n) {
            return "expected 'kernel >= X.Y' or 'kernel < X.Y'";
        }
        bool ge = strcmp(t->v[*i], ">=") == 0;
        if ((!ge && strcmp(t->v[*i], "<") != 0)) {
            return "expected 'kernel >= X.Y' or 'kernel < X.Y'";
        }
        vm__sc_filter *kf = ge ? &r->inc : &r->exc;
        if (kf->kernel[0] || kf->kernel[1]) {
            return "a second kernel condition of the same direction";
        }
        if (!parse_kernel(t->v[*i + 1], kf->kernel)) {
            return "a kernel version is MAJOR.MINOR";
        }
        *i += 2;
        return NULL;
    }
    bool cap = strcmp(kind, "cap") == 0;
    if (!cap && strcmp(kind, "host") != 0) {
        return "a condition is 'cap', 'host' or 'kernel'";
    }
    if (!cap && !neg && f->arches.n) {
        return "a second 'host' condition can never hold with the first";
    }
    size_t start = *i;
    for (; *i < t->n && strcmp(t->v[*i], "and") != 0; (*i)++) {
        if (cap && !vm__sc_cap_valid(t->v[*i])) {
            return "a capability is CAP_ and upper-case letters";
        }
        mar_strv_push(cap ? &f->caps : &f->arches, t->v[*i]);
    }
    return *i == start ? "a 'cap' or 'host' condition names nothing" : NULL;
}

MAR_MUST_USE static int text_header(const char *what, size_t line, tokens *t, vm_seccomp *p,
                                    mar_err **err)
{
    vm__sc_rule *r = rule_add(p);
    size_t i = 0;
    if (!text_action(t, &i, &r->action, &r->errno_ret)) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "%s:%zu: a group starts with allow, errno NAME, kill-thread, "
                           "kill-process, trap or log",
                           what, line);
    }
    if (i < t->n && strcmp(t->v[i], "with") == 0) {
        do {
            i++;
            if (r->n_args == VM__SC_MAX_ARGS || !text_arg(t, &i, &r->args[r->n_args++])) {
                return mar_err_set(err, MAR_EUSAGE, 0,
                                   "%s:%zu: an argument filter is 'argN OP VALUE' or "
                                   "'argN & MASK == VALUE' (N 0..5, at most %d)",
                                   what, line, VM__SC_MAX_ARGS);
            }
        } while (i < t->n && strcmp(t->v[i], "and") == 0);
    }
    if (i < t->n && strcmp(t->v[i], "if") == 0) {
        do {
            i++;
            const char *bad = text_cond(t, &i, r);
            if (bad) {
                return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: %s", what, line, bad);
            }
        } while (i < t->n && strcmp(t->v[i], "and") == 0);
    }
    if (i < t->n) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: unexpected '%s'", what, line, t->v[i]);
    }
    return 0;
}

MAR_MUST_USE static int text_line(const char *what, size_t line, char *s, vm_seccomp *p,
                                  mar_err **err)
{
    bool indented = *s == ' ' || *s == '\t';
    tokens t;
    if (!split(s, &t)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: too many words on one line", what, line);
    }
    if (t.n == 0) {
        return 0;
    }
    if (indented) {
        if (p->n_rules == 0) {
            return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: syscall names before any group", what,
                               line);
        }
        for (size_t i = 0; i < t.n; i++) {
            if (!vm__sc_syscall_name_valid(t.v[i])) {
                return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: '%s' is not a syscall name", what,
                                   line, t.v[i]);
            }
            mar_strv_push(&p->rules[p->n_rules - 1].names, t.v[i]);
        }
        return 0;
    }
    if (strcmp(t.v[0], "default") == 0) {
        size_t i = 1;
        if (p->default_action || !text_action(&t, &i, &p->default_action, &p->default_errno) ||
            i != t.n) {
            return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: one 'default ACTION' line", what, line);
        }
        return 0;
    }
    if (strcmp(t.v[0], "arch") == 0) {
        if (t.n < 2) {
            return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: 'arch NATIVE [SUB...]'", what, line);
        }
        vm__sc_archmap *a = archmap_add(p);
        for (size_t i = 1; i < t.n; i++) {
            if (!vm__sc_arch_valid(t.v[i])) {
                return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: unknown architecture '%s'", what,
                                   line, t.v[i]);
            }
            if (i == 1) {
                a->arch = mar_xstrdup(t.v[i]);
            } else {
                mar_strv_push(&a->subs, t.v[i]);
            }
        }
        return 0;
    }
    char *last = t.v[t.n - 1];
    size_t ll = strlen(last);
    if (last[ll - 1] != ':') {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: a group header ends with ':'", what, line);
    }
    last[ll - 1] = '\0';
    if (!*last) {
        t.n--;
    }
    return text_header(what, line, &t, p, err);
}

int vm__seccomp_parse_text(const char *what, const char *text, size_t len, vm_seccomp **ret,
                           mar_err **err)
{
    _cleanup_(vm_seccomp_freep) vm_seccomp *p = profile_new();
    size_t line = 0;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
        _cleanup_free_ char *s = mar_xstrndup(text + off, n);
        off += n + 1;
        line++;
        if (strlen(s) != n) {
            return mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: a NUL byte", what, line);
        }
        char *hash = strchr(s, '#');
        if (hash) {
            *hash = '\0';
        }
        if (text_line(what, line, s, p, err) < 0) {
            return -MAR_EUSAGE;
        }
    }
    if (!p->default_action) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s: no 'default ACTION' line", what);
    }
    for (size_t i = 0; i < p->n_rules; i++) {
        if (p->rules[i].names.n == 0) {
            return mar_err_set(err, MAR_EUSAGE, 0, "%s: group %zu lists no syscall", what, i + 1);
        }
    }
    *ret = TAKE_PTR(p);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Docker's format: the runtime spec's LinuxSeccomp plus `archMap`, `name` and the
 * `includes`/`excludes` conditions (moby/profiles seccomp/seccomp.go). A JSON null counts as
 * absent, as in Go. */

static int dk_fail(mar_err **err, const char *what, const char *field, const char *fmt, ...)
        MAR_PRINTF(4, 5);
static int dk_fail(mar_err **err, const char *what, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mar_xvasprintf(fmt, ap);
    va_end(ap);
    return mar_err_set(err, MAR_EUSAGE, 0, "seccomp profile '%s': %s: %s", what, field, msg);
}

/* Warns about keys Docker would ignore too: most likely a misspelt field. */
static void dk_unknown_keys(json_t *obj, const char *const *known, size_t n, const char *what,
                            const char *field)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!lookup(known, n, key)) {
            mar_diag_warn("seccomp profile '%s': unknown key '%s' in %s, ignoring", what, key,
                          field);
        }
    }
}

static json_t *dk_get(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

MAR_MUST_USE static int dk_uint(json_t *v, int64_t max, const char *what, const char *field,
                                uint64_t *ret, mar_err **err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        return dk_fail(err, what, field, "not an integer from 0 to %lld", (long long)max);
    }
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

MAR_MUST_USE static int dk_strings(json_t *a, bool (*valid)(const char *), const char *what,
                                   const char *field, mar_strv *ret, mar_err **err)
{
    if (!a) {
        return 0;
    }
    if (!json_is_array(a)) {
        return dk_fail(err, what, field, "not an array of strings");
    }
    size_t i;
    json_t *s;
    json_array_foreach(a, i, s)
    {
        if (!json_is_string(s) || (valid && !valid(json_string_value(s)))) {
            return dk_fail(err, what, field, "item %zu is not a valid name", i);
        }
        mar_strv_push(ret, json_string_value(s));
    }
    return 0;
}

MAR_MUST_USE static int dk_action(json_t *v, json_t *errno_v, const char *what, const char *field,
                                  const char **ret, long *ret_errno, mar_err **err)
{
    const char *a = vm__sc_action(json_string_value(v));
    if (!a) {
        return dk_fail(err, what, field,
                       "not a seccomp action (SCMP_ACT_ALLOW, SCMP_ACT_ERRNO...)");
    }
    if (strcmp(a, "SCMP_ACT_NOTIFY") == 0) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "seccomp profile '%s': %s: SCMP_ACT_NOTIFY needs a listener, which mar "
                           "does not run",
                           what, field);
    }
    *ret = a;
    *ret_errno = -1;
    if (errno_v) {
        /* runc refuses an errno for actions that return none. */
        if (strcmp(a, "SCMP_ACT_ERRNO") != 0 && strcmp(a, "SCMP_ACT_TRACE") != 0) {
            return dk_fail(err, what, field,
                           "an errno is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE");
        }
        uint64_t e;
        if (dk_uint(errno_v, 4095, what, field, &e, err) < 0) {
            return -MAR_EUSAGE;
        }
        *ret_errno = (long)e;
    }
    return 0;
}

MAR_MUST_USE static int dk_filter(json_t *f, const char *what, const char *field,
                                  vm__sc_filter *ret, mar_err **err)
{
    if (!f) {
        return 0;
    }
    static const char *const known[] = {"caps", "arches", "minKernel"};
    if (!json_is_object(f)) {
        return dk_fail(err, what, field, "not an object");
    }
    dk_unknown_keys(f, known, MAR_ARRAY_SIZE(known), what, field);
    _cleanup_free_ char *caps = mar_xasprintf("%s.caps", field);
    _cleanup_free_ char *arch = mar_xasprintf("%s.arches", field);
    if (dk_strings(dk_get(f, "caps"), NULL, what, caps, &ret->caps, err) < 0 ||
        dk_strings(dk_get(f, "arches"), NULL, what, arch, &ret->arches, err) < 0) {
        return -MAR_EUSAGE;
    }
    json_t *k = dk_get(f, "minKernel");
    if (k && !(json_is_string(k) &&
               (!*json_string_value(k) || parse_kernel(json_string_value(k), ret->kernel)))) {
        return dk_fail(err, what, field, "minKernel is \"MAJOR.MINOR\"");
    }
    return 0;
}

MAR_MUST_USE static int dk_args(json_t *a, const char *what, const char *field, vm__sc_rule *r,
                                mar_err **err)
{
    if (!a) {
        return 0;
    }
    if (!json_is_array(a) || json_array_size(a) > VM__SC_MAX_ARGS) {
        return dk_fail(err, what, field, "not an array of at most %d conditions", VM__SC_MAX_ARGS);
    }
    static const char *const known[] = {"index", "value", "valueTwo", "op"};
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o)
    {
        _cleanup_free_ char *f = mar_xasprintf("%s[%zu]", field, i);
        if (!json_is_object(o)) {
            return dk_fail(err, what, f, "not an object");
        }
        dk_unknown_keys(o, known, MAR_ARRAY_SIZE(known), what, f);
        vm__sc_arg *arg = &r->args[r->n_args++];
        uint64_t index;
        json_t *two = dk_get(o, "valueTwo");
        if (dk_uint(dk_get(o, "index"), 5, what, f, &index, err) < 0 ||
            dk_uint(dk_get(o, "value"), INT64_MAX, what, f, &arg->value, err) < 0 ||
            (two && dk_uint(two, INT64_MAX, what, f, &arg->value_two, err) < 0)) {
            return -MAR_EUSAGE;
        }
        arg->index = (unsigned)index;
        arg->op = vm__sc_op(json_string_value(dk_get(o, "op")));
        if (!arg->op) {
            return dk_fail(err, what, f, "op is not a comparison (SCMP_CMP_EQ...)");
        }
    }
    return 0;
}

MAR_MUST_USE static int dk_syscall(json_t *o, const char *what, const char *field, vm_seccomp *p,
                                   mar_err **err)
{
    static const char *const known[] = {"names", "name",    "action",   "errnoRet",
                                        "args",  "comment", "includes", "excludes"};
    if (!json_is_object(o)) {
        return dk_fail(err, what, field, "not an object");
    }
    dk_unknown_keys(o, known, MAR_ARRAY_SIZE(known), what, field);
    vm__sc_rule *r = rule_add(p);
    json_t *name = dk_get(o, "name"), *names = dk_get(o, "names");
    if (name && names) {
        return dk_fail(err, what, field, "both 'name' and 'names'; use 'names'");
    }
    if (name) {
        if (!json_is_string(name) || !vm__sc_syscall_name_valid(json_string_value(name))) {
            return dk_fail(err, what, field, "name is not a syscall name");
        }
        mar_strv_push(&r->names, json_string_value(name));
    } else if (dk_strings(names, vm__sc_syscall_name_valid, what, field, &r->names, err) < 0) {
        return -MAR_EUSAGE;
    }
    if (r->names.n == 0) {
        return dk_fail(err, what, field, "names no syscall");
    }
    _cleanup_free_ char *inc = mar_xasprintf("%s.includes", field);
    _cleanup_free_ char *exc = mar_xasprintf("%s.excludes", field);
    _cleanup_free_ char *args = mar_xasprintf("%s.args", field);
    if (dk_action(dk_get(o, "action"), dk_get(o, "errnoRet"), what, field, &r->action,
                  &r->errno_ret, err) < 0 ||
        dk_args(dk_get(o, "args"), what, args, r, err) < 0 ||
        dk_filter(dk_get(o, "includes"), what, inc, &r->inc, err) < 0 ||
        dk_filter(dk_get(o, "excludes"), what, exc, &r->exc, err) < 0) {
        return -mar_err_code(*err);
    }
    return 0;
}

MAR_MUST_USE static int dk_archmap(json_t *a, const char *what, vm_seccomp *p, mar_err **err)
{
    if (!json_is_array(a)) {
        return dk_fail(err, what, "archMap", "not an array");
    }
    static const char *const known[] = {"architecture", "subArchitectures"};
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o)
    {
        _cleanup_free_ char *f = mar_xasprintf("archMap[%zu]", i);
        if (!json_is_object(o)) {
            return dk_fail(err, what, f, "not an object");
        }
        dk_unknown_keys(o, known, MAR_ARRAY_SIZE(known), what, f);
        const char *arch = json_string_value(dk_get(o, "architecture"));
        if (!arch || !vm__sc_arch_valid(arch)) {
            return dk_fail(err, what, f, "architecture is not an SCMP_ARCH_* name");
        }
        vm__sc_archmap *m = archmap_add(p);
        m->arch = mar_xstrdup(arch);
        if (dk_strings(dk_get(o, "subArchitectures"), vm__sc_arch_valid, what, f, &m->subs, err) <
            0) {
            return -MAR_EUSAGE;
        }
    }
    return 0;
}

static bool flag_valid(const char *s)
{
    return lookup(filter_flags, MAR_ARRAY_SIZE(filter_flags), s) != NULL;
}

int vm__seccomp_parse_docker(const char *what, const char *text, size_t len, vm_seccomp **ret,
                             mar_err **err)
{
    json_error_t je;
    _cleanup_json_ json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        return mar_err_set(err, MAR_EUSAGE, 0, "seccomp profile '%s' is not JSON: %s at %d:%d",
                           what, je.text, je.line, je.column);
    }
    if (!json_is_object(doc)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "seccomp profile '%s' is not a JSON object", what);
    }
    static const char *const known[] = {"defaultAction",    "defaultErrnoRet", "architectures",
                                        "archMap",          "flags",           "listenerPath",
                                        "listenerMetadata", "syscalls"};
    dk_unknown_keys(doc, known, MAR_ARRAY_SIZE(known), what, "the profile");
    _cleanup_(vm_seccomp_freep) vm_seccomp *p = profile_new();
    p->docker_names = true;
    /* Docker runs without a filter when defaultAction is missing and nothing is listed; a
     * profile file that says nothing is more likely a mistake than a wish for no filter. */
    if (!dk_get(doc, "defaultAction")) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "seccomp profile '%s' has no defaultAction (seccomp=unconfined runs "
                           "without a filter)",
                           what);
    }
    if (dk_action(dk_get(doc, "defaultAction"), dk_get(doc, "defaultErrnoRet"), what,
                  "defaultAction", &p->default_action, &p->default_errno, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *listener = dk_get(doc, "listenerPath");
    if (listener && !(json_is_string(listener) && !*json_string_value(listener))) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "seccomp profile '%s': listenerPath: mar does not run a seccomp "
                           "notify listener",
                           what);
    }
    json_t *archmap = dk_get(doc, "archMap");
    if (dk_strings(dk_get(doc, "architectures"), vm__sc_arch_valid, what, "architectures",
                   &p->architectures, err) < 0 ||
        dk_strings(dk_get(doc, "flags"), flag_valid, what, "flags", &p->flags, err) < 0 ||
        (archmap && dk_archmap(archmap, what, p, err) < 0)) {
        return -MAR_EUSAGE;
    }
    if (p->architectures.n && p->n_archmap) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "seccomp profile '%s' has both 'architectures' and 'archMap'; use one",
                           what);
    }
    json_t *sys = dk_get(doc, "syscalls");
    if (sys && !json_is_array(sys)) {
        return dk_fail(err, what, "syscalls", "not an array");
    }
    size_t i;
    json_t *o;
    json_array_foreach(sys, i, o)
    {
        _cleanup_free_ char *f = mar_xasprintf("syscalls[%zu]", i);
        if (dk_syscall(o, what, f, p, err) < 0) {
            return -mar_err_code(*err);
        }
    }
    *ret = TAKE_PTR(p);
    return 0;
}
