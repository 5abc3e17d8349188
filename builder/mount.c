/* RUN --mount values (Dockerfile reference, "RUN --mount"; BuildKit
 * frontend/dockerfile/instructions/commands_runmount.go): one CSV record of key=value fields,
 * each value expanded like a word, checked in the order written (so `required` before
 * `type=secret` is an error, as in BuildKit). */
#include "builder/dockerfile-internal.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* One CSV record with Go's encoding/csv rules (tonistiigi/go-csvvalue): fields separated by
 * ',', a field starting with '"' is quoted and "" inside it is a quote, a quote anywhere else is
 * an error. */
static bool csv_fields(const char *s, mar_strv *ret, const char **ret_why)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '\n') {
        n -= n > 1 && s[n - 2] == '\r' ? 2 : 1;
    }
    if (!n) {
        *ret_why = "empty mount specification";
        return false;
    }
    size_t i = 0;
    for (;;) {
        mar_buf f = MAR_BUF_INIT(MAR_BUF_NOCAP);
        if (i < n && s[i] == '"') {
            i++;
            for (;;) {
                const char *q = memchr(s + i, '"', n - i);
                if (!q) {
                    mar_buf_release(&f);
                    *ret_why = "a quoted field does not end";
                    return false;
                }
                mar_buf_xappend(&f, s + i, (size_t)(q - (s + i)));
                i = (size_t)(q - s) + 1;
                if (i < n && s[i] == '"') {
                    mar_buf_xappend(&f, "\"", 1);
                    i++;
                    continue;
                }
                if (i < n && s[i] != ',') {
                    mar_buf_release(&f);
                    *ret_why = "extraneous character after a quoted field";
                    return false;
                }
                break;
            }
        } else {
            const char *c = memchr(s + i, ',', n - i);
            size_t e = c ? (size_t)(c - s) : n;
            if (memchr(s + i, '"', e - i)) {
                mar_buf_release(&f);
                *ret_why = "a quote inside an unquoted field";
                return false;
            }
            mar_buf_xappend(&f, s + i, e - i);
            i = e;
        }
        mar_strv_push_take(ret, mar_buf_detach(&f, NULL));
        if (i >= n) {
            return true;
        }
        i++; /* the comma */
        if (i >= n) {
            mar_strv_push(ret, "");
            return true;
        }
    }
}

/* Go's strconv.ParseBool. */
static bool parse_bool(const char *s, bool *ret)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, t[i]) == 0 || strcmp(s, f[i]) == 0) {
            *ret = strcmp(s, t[i]) == 0;
            return true;
        }
    }
    return false;
}

/* Go's strconv.ParseUint(s, base, 32) for base 8 or 10. */
static bool parse_u32(const char *s, int base, int64_t *ret)
{
    uint64_t v = 0;
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        if (*s < '0' || *s >= '0' + base) {
            return false;
        }
        v = v * (uint64_t)base + (uint64_t)(*s - '0');
        if (v > UINT32_MAX) {
            return false;
        }
    }
    *ret = (int64_t)v;
    return true;
}

/* docker/go-units RAMInBytes: a decimal number, an optional space, an optional binary unit
 * (k, m, g, t, p, optionally followed by "b" or "ib"; or just "b"), case-insensitive. Numbers
 * in other notations Go would accept (exponents, hexadecimal) are refused. */
static bool parse_ram(const char *s, int64_t *ret)
{
    const char *p = s;
    long double v = 0, scale = 1;
    bool digit = false;
    for (; isdigit((unsigned char)*p); p++, digit = true) {
        v = v * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++, digit = true) {
            scale /= 10;
            v += (*p - '0') * scale;
        }
    }
    if (!digit) {
        return false;
    }
    if (*p == ' ') {
        p++;
    }
    char u[4] = {0};
    size_t ul = strlen(p);
    if (ul > 3) {
        return false;
    }
    for (size_t i = 0; i < ul; i++) {
        u[i] = (char)tolower((unsigned char)p[i]);
    }
    long double mul = 1;
    if (ul && u[0] != 'b') {
        const char *units = "kmgtp", *at = strchr(units, u[0]);
        if (!u[0] || !at) {
            return false;
        }
        for (long i = 0; i <= at - units; i++) {
            mul *= 1024;
        }
        if ((ul == 2 && u[1] != 'b') || (ul == 3 && strcmp(u + 1, "ib") != 0)) {
            return false;
        }
    } else if (ul > 1) {
        return false;
    }
    v *= mul;
    if (v >= 9.2e18L) {
        return false;
    }
    *ret = (int64_t)v;
    return true;
}

static bld_var_state unknown(const char *name, const char **ret_value, void *ud)
{
    (void)name, (void)ret_value, (void)ud;
    return BLD_VAR_UNKNOWN;
}

static const char *const type_names[] = {"bind", "cache", "tmpfs", "secret"};

static int fail(mar_err **err, const char *fmt, ...) MAR_PRINTF(2, 3);
static int fail(mar_err **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mar_xvasprintf(fmt, ap);
    va_end(ap);
    return mar_err_set(err, MAR_EUSAGE, 0, "--mount: %s", msg);
}

static void set(char **dst, const char *v)
{
    free(*dst);
    *dst = mar_xstrdup(v);
}

/* A key with a value; `typed` is false once an earlier value is deferred, since the type may
 * then differ from the one seen so far. */
MAR_MUST_USE static int field(bld_mount *m, const char *key, const char *value, bool deferred,
                              bool typed, bool *ro_auto, mar_err **err)
{
    const char *t = type_names[m->type];
    bool b;
    if (strcmp(key, "type") == 0) {
        if (deferred) {
            return 0;
        }
        for (size_t i = 0; i < MAR_ARRAY_SIZE(type_names); i++) {
            if (strcasecmp(value, type_names[i]) == 0) {
                m->type = (bld_mount_type)i;
                return 0;
            }
        }
        if (strcasecmp(value, "ssh") == 0) {
            return fail(err, "mount type 'ssh' is not supported");
        }
        return fail(err, "unsupported mount type '%s' (bind, cache, tmpfs or secret)", value);
    }
    if (strcmp(key, "from") == 0) {
        set(&m->from, value);
    } else if (strcmp(key, "source") == 0 || strcmp(key, "src") == 0) {
        set(&m->source, value);
    } else if (strcmp(key, "target") == 0 || strcmp(key, "dst") == 0 ||
               strcmp(key, "destination") == 0) {
        set(&m->target, value);
    } else if (strcmp(key, "id") == 0) {
        set(&m->id, value);
    } else if (strcmp(key, "env") == 0) {
        set(&m->env, value);
    } else if (strcmp(key, "readonly") == 0 || strcmp(key, "ro") == 0 ||
               strcmp(key, "readwrite") == 0 || strcmp(key, "rw") == 0) {
        *ro_auto = false;
        if (deferred) {
            return 0;
        }
        if (!parse_bool(value, &b)) {
            return fail(err, "invalid value for %s: '%s'", key, value);
        }
        m->readonly = strcmp(key, "ro") == 0 || strcmp(key, "readonly") == 0 ? b : !b;
    } else if (strcmp(key, "required") == 0) {
        if (typed && m->type != BLD_MOUNT_SECRET) {
            return fail(err, "unexpected key 'required' for mount type '%s'", t);
        }
        if (!deferred && !parse_bool(value, &m->required)) {
            return fail(err, "invalid value for required: '%s'", value);
        }
    } else if (strcmp(key, "size") == 0) {
        if (typed && m->type != BLD_MOUNT_TMPFS) {
            return fail(err, "unexpected key 'size' for mount type '%s'", t);
        }
        if (!deferred && !parse_ram(value, &m->size)) {
            return fail(err, "invalid value for size: '%s'", value);
        }
    } else if (strcmp(key, "sharing") == 0) {
        static const char *const modes[] = {"shared", "private", "locked"};
        if (deferred) {
            m->sharing = BLD_SHARING_SHARED;
            return 0;
        }
        size_t i = 0;
        while (i < 3 && strcasecmp(value, modes[i]) != 0) {
            i++;
        }
        if (i == 3) {
            return fail(err, "unsupported sharing value '%s' (shared, private or locked)", value);
        }
        m->sharing = (bld_sharing)(i + 1);
    } else if (strcmp(key, "mode") == 0 || strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
        int64_t *dst = key[0] == 'm' ? &m->mode : key[0] == 'u' ? &m->uid : &m->gid;
        if (deferred) {
            *dst = 0;
        } else if (!parse_u32(value, key[0] == 'm' ? 8 : 10, dst)) {
            return fail(err, "invalid value %s for %s", value, key);
        }
    } else {
        return fail(err, "unexpected key '%s' in '%s=%s'", key, key, value);
    }
    return 0;
}

/* The rules BuildKit applies once every field is read. */
MAR_MUST_USE static int finish(bld_mount *m, bool ro_auto, mar_err **err)
{
    const char *t = type_names[m->type];
    if (m->type != BLD_MOUNT_SECRET && m->type != BLD_MOUNT_CACHE) {
        const char *names[] = {"mode", "uid", "gid"};
        int64_t vals[] = {m->mode, m->uid, m->gid};
        for (size_t i = 0; i < 3; i++) {
            if (vals[i] >= 0) {
                return fail(err, "%s not allowed for '%s' mounts", names[i], t);
            }
        }
    }
    if (ro_auto) {
        m->readonly = m->type != BLD_MOUNT_CACHE && m->type != BLD_MOUNT_TMPFS;
    }
    if (m->type == BLD_MOUNT_SECRET) {
        if (m->from) {
            return fail(err, "a secret mount cannot have a from");
        }
        if (m->sharing) {
            return fail(err, "a secret mount cannot define sharing");
        }
        if (!m->source && !m->target && !m->id) {
            return fail(err, "a secret mount needs one of id, source or target");
        }
        if (m->source && m->id) {
            return fail(err, "a secret mount cannot have both source and id");
        }
    }
    if (m->sharing && m->type != BLD_MOUNT_CACHE) {
        return fail(err, "sharing is only for cache mounts, not '%s'", t);
    }
    return 0;
}

int bld_mount_parse(const char *spec, char escape, bld_lookup_fn lookup, void *userdata,
                    bld_mount *ret, mar_err **err)
{
    bld_mount m = {.spec = mar_xstrdup(spec), .size = -1, .mode = -1, .uid = -1, .gid = -1};
    _cleanup_strv_ mar_strv fields = MAR_STRV_INIT;
    const char *why = NULL;
    bool ro_auto = true;
    int r = 0;
    if (!csv_fields(spec, &fields, &why)) {
        r = fail(err, "'%s': %s", spec, why);
        goto out;
    }
    for (size_t i = 0; i < fields.n && r == 0; i++) {
        char *f = fields.v[i], *eq = strchr(f, '=');
        if (eq) {
            *eq = '\0';
        }
        for (char *c = f; *c; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        if (!eq) {
            if (strcmp(f, "readonly") == 0 || strcmp(f, "ro") == 0) {
                m.readonly = true, ro_auto = false;
            } else if (strcmp(f, "readwrite") == 0 || strcmp(f, "rw") == 0) {
                m.readonly = false, ro_auto = false;
            } else if (strcmp(f, "required") == 0 && (m.deferred || m.type == BLD_MOUNT_SECRET)) {
                m.required = true;
            } else if (strcmp(f, "required") == 0) {
                r = fail(err, "unexpected key 'required' for mount type '%s'", type_names[m.type]);
            } else {
                r = fail(err, "invalid field '%s' (must be key=value)", f);
            }
            continue;
        }
        const char *raw = eq + 1;
        if (strcmp(f, "from") == 0 && !lookup) {
            /* Stages are resolved before anything runs: no variables (BuildKit refuses too). */
            const char *d = strchr(raw, '$');
            if (d && d[1]) {
                r = fail(err, "'from' does not expand variables; define a stage instead");
                break;
            }
        }
        _cleanup_free_ char *value = NULL;
        bool unresolved = false;
        if (bld_expand_word(raw, escape, 0, lookup ? lookup : unknown, userdata, &value,
                            &unresolved, err) < 0) {
            r = -MAR_EUSAGE;
            break;
        }
        bool typed = !m.deferred;
        m.deferred |= unresolved;
        r = field(&m, f, unresolved ? raw : value, unresolved, typed, &ro_auto, err);
    }
    if (r == 0 && !m.deferred) {
        r = finish(&m, ro_auto, err);
    }
out:
    if (r < 0) {
        bld_mount_release(&m);
        return r;
    }
    *ret = m;
    return 0;
}

void bld_mount_release(bld_mount *m)
{
    free(m->spec);
    free(m->from);
    free(m->source);
    free(m->target);
    free(m->id);
    free(m->env);
    *m = (bld_mount){0};
}
