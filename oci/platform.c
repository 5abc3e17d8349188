/* Platform parse, normalize, format and match with containerd's semantics
 * (docs/internals/platforms.md §2-§4; containerd/platforms database.go, platforms.go). */
#include "oci.h"

#include <string.h>

/* Known values for one-word specifiers (docs/internals/platforms.md §2; containerd database.go). */
static const char *const known_os[] = {
        "aix",   "android", "darwin", "dragonfly", "freebsd", "hurd",    "illumos", "ios", "js",
        "linux", "nacl",    "netbsd", "openbsd",   "plan9",   "solaris", "windows", "zos",
};
static const char *const known_arch[] = {
        "386",     "amd64",    "amd64p32",  "arm",         "armbe",   "arm64",
        "arm64be", "ppc64",    "ppc64le",   "loong64",     "mips",    "mipsle",
        "mips64",  "mips64le", "mips64p32", "mips64p32le", "ppc",     "riscv",
        "riscv64", "s390",     "s390x",     "sparc",       "sparc64", "wasm",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void lower(char *s)
{
    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z') {
            *s = (char)(*s - 'A' + 'a');
        }
    }
}

/* `^[A-Za-z0-9_.-]+$` (containerd specifierRe), and not dots alone: "." and ".." name no
 * operating system, architecture or variant ("../../etc" is a path, not a platform). */
static bool component_ok(const char *s)
{
    if (!*s || strspn(s, ".") == strlen(s)) {
        return false;
    }
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

static const char *host_os(void)
{
#if defined(__APPLE__)
    return "darwin";
#else
    return "linux";
#endif
}

static void normalize_os(char *os, size_t n)
{
    lower(os);
    if (!*os) {
        mar_strlcpy(os, host_os(), n);
    } else if (strcmp(os, "macos") == 0) {
        mar_strlcpy(os, "darwin", n);
    }
}

/* containerd normalizeArch. */
static void normalize_arch(char *arch, size_t an, char *variant, size_t vn)
{
    lower(arch);
    lower(variant);
    if (strcmp(arch, "i386") == 0) {
        mar_strlcpy(arch, "386", an);
        variant[0] = '\0';
    } else if (strcmp(arch, "x86_64") == 0 || strcmp(arch, "x86-64") == 0 ||
               strcmp(arch, "amd64") == 0) {
        mar_strlcpy(arch, "amd64", an);
        if (strcmp(variant, "v1") == 0) {
            variant[0] = '\0';
        }
    } else if (strcmp(arch, "aarch64") == 0 || strcmp(arch, "arm64") == 0) {
        mar_strlcpy(arch, "arm64", an);
        if (strcmp(variant, "8") == 0 || strcmp(variant, "v8") == 0 ||
            strcmp(variant, "v8.0") == 0) {
            variant[0] = '\0';
        } else if (strcmp(variant, "9") == 0 || strcmp(variant, "9.0") == 0 ||
                   strcmp(variant, "v9.0") == 0) {
            mar_strlcpy(variant, "v9", vn);
        }
    } else if (strcmp(arch, "armhf") == 0) {
        mar_strlcpy(arch, "arm", an);
        mar_strlcpy(variant, "v7", vn);
    } else if (strcmp(arch, "armel") == 0) {
        mar_strlcpy(arch, "arm", an);
        mar_strlcpy(variant, "v6", vn);
    } else if (strcmp(arch, "arm") == 0) {
        if (variant[0] == '\0' || strcmp(variant, "7") == 0) {
            mar_strlcpy(variant, "v7", vn);
        } else if (strcmp(variant, "5") == 0 || strcmp(variant, "6") == 0 ||
                   strcmp(variant, "8") == 0) {
            char v[4] = {'v', variant[0], '\0', '\0'};
            mar_strlcpy(variant, v, vn);
        }
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and de-duplicates a '+'-joined feature list in place. */
static void normalize_features(char *features, size_t n)
{
    if (!*features) {
        return;
    }
    char tmp[sizeof(((oci_platform *)0)->features)];
    mar_strlcpy(tmp, features, sizeof(tmp));
    char *parts[64];
    size_t np = 0;
    char *save = tmp;
    for (char *p = tmp; np < MAR_ARRAY_SIZE(parts); p++) {
        if (*p == '+' || *p == '\0') {
            bool end = *p == '\0';
            *p = '\0';
            if (*save) {
                parts[np++] = save;
            }
            save = p + 1;
            if (end) {
                break;
            }
        }
    }
    if (np > 1) {
        qsort(parts, np, sizeof(parts[0]), cmp_str);
    }
    mar_buf b = MAR_BUF_INIT(n - 1);
    for (size_t i = 0; i < np; i++) {
        if (i > 0 && strcmp(parts[i], parts[i - 1]) == 0) {
            continue;
        }
        if (b.len) {
            mar_buf_puts(&b, "+");
        }
        mar_buf_puts(&b, parts[i]);
    }
    mar_strlcpy(features, b.data, n);
    mar_buf_release(&b);
}

void oci_platform_normalize(const oci_platform *in, oci_platform *out)
{
    if (in != out) {
        *out = *in;
    }
    normalize_os(out->os, sizeof(out->os));
    normalize_arch(out->arch, sizeof(out->arch), out->variant, sizeof(out->variant));
    normalize_features(out->features, sizeof(out->features));
}

static int set_field(char *dst, size_t n, const char *v, const char *what, mar_err **err)
{
    if (!mar_strlcpy(dst, v ? v : "", n)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "platform %s '%.40s...' is too long", what, v);
    }
    if (*dst && !component_ok(dst)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "invalid platform %s '%.40s'", what, dst);
    }
    lower(dst);
    return 0;
}

int oci_platform_from_fields(const char *os, const char *arch, const char *variant,
                             const char *os_version, json_t *features, oci_platform *ret,
                             mar_err **err)
{
    oci_platform p = {0};
    if (set_field(p.os, sizeof(p.os), os, "os", err) < 0 ||
        set_field(p.arch, sizeof(p.arch), arch, "architecture", err) < 0 ||
        set_field(p.variant, sizeof(p.variant), variant, "variant", err) < 0) {
        return -MAR_EINTEGRITY;
    }
    if (os_version && !mar_strlcpy(p.os_version, os_version, sizeof(p.os_version))) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "platform os.version is too long");
    }
    if (features) {
        if (!json_is_array(features)) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "platform os.features is not an array");
        }
        mar_buf b = MAR_BUF_INIT(sizeof(p.features) - 1);
        size_t i;
        json_t *f;
        json_array_foreach(features, i, f)
        {
            const char *s = json_string_value(f);
            if (!s || !component_ok(s)) {
                mar_buf_release(&b);
                return mar_err_set(err, MAR_EINTEGRITY, 0, "invalid platform os.features entry");
            }
            if ((b.len && mar_buf_puts(&b, "+") < 0) || mar_buf_puts(&b, s) < 0) {
                return mar_err_set(err, MAR_EINTEGRITY, 0, "platform os.features is too long");
            }
        }
        mar_strlcpy(p.features, b.data, sizeof(p.features));
        mar_buf_release(&b);
    }
    *ret = p;
    return 0;
}

/* Decodes the `(<os.version>+<feature>+...)` suffix with %-escapes of `%+()/`. */
static int parse_os_options(const char *opts, size_t len, oci_platform *p, mar_err **err)
{
    char field[256];
    size_t fl = 0;
    int idx = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? opts[i] : '+';
        if (c == '%' && i + 2 < len) {
            unsigned v = 0;
            for (int k = 1; k <= 2; k++) {
                char h = opts[i + (size_t)k];
                v <<= 4;
                if (h >= '0' && h <= '9') {
                    v |= (unsigned)(h - '0');
                } else if (h >= 'a' && h <= 'f') {
                    v |= (unsigned)(h - 'a' + 10);
                } else if (h >= 'A' && h <= 'F') {
                    v |= (unsigned)(h - 'A' + 10);
                } else {
                    return mar_err_set(err, MAR_EUSAGE, 0, "invalid escape in platform options");
                }
            }
            c = (char)v;
            i += 2;
            if (fl + 1 >= sizeof(field)) {
                return mar_err_set(err, MAR_EUSAGE, 0, "platform options are too long");
            }
            field[fl++] = c;
            continue;
        }
        if (c == '+') {
            field[fl] = '\0';
            if (idx == 0) {
                mar_strlcpy(p->os_version, field, sizeof(p->os_version));
            } else if (fl) {
                size_t cur = strlen(p->features);
                if (cur + fl + 2 > sizeof(p->features)) {
                    return mar_err_set(err, MAR_EUSAGE, 0, "platform features are too long");
                }
                if (cur) {
                    p->features[cur++] = '+';
                }
                memcpy(p->features + cur, field, fl + 1);
            }
            idx++;
            fl = 0;
            continue;
        }
        if (fl + 1 >= sizeof(field)) {
            return mar_err_set(err, MAR_EUSAGE, 0, "platform options are too long");
        }
        field[fl++] = c;
    }
    return 0;
}

int oci_platform_parse(const char *spec, const oci_platform *host, oci_platform *ret, mar_err **err)
{
    if (strchr(spec, '*')) {
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s': wildcards not yet supported", spec);
    }
    oci_platform p = {0};
    char os_part[160];
    const char *rest = spec;

    /* The first component may carry "(<os.version>+<feature>...)"; a '/' inside it must be
     * %-escaped, so splitting on '/' first is safe. */
    const char *slash = strchr(spec, '/');
    const char *paren = strchr(spec, '(');
    if (paren && (!slash || paren < slash)) {
        size_t first = slash ? (size_t)(slash - spec) : strlen(spec);
        size_t oslen = (size_t)(paren - spec);
        if (spec[first - 1] != ')' || oslen == 0 || oslen >= sizeof(p.os)) {
            return mar_err_set(err, MAR_EUSAGE, 0, "'%s': cannot parse platform specifier", spec);
        }
        if (parse_os_options(paren + 1, first - oslen - 2, &p, err) < 0) {
            return mar_err_wrap(err, "'%s'", spec);
        }
        snprintf(os_part, sizeof(os_part), "%.*s%s", (int)oslen, spec, slash ? slash : "");
        rest = os_part;
    }

    char parts[3][40];
    size_t np = 0;
    const char *s = rest;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (np == 3) {
            return mar_err_set(err, MAR_EUSAGE, 0, "'%s': cannot parse platform specifier", spec);
        }
        if (l == 0 || l >= sizeof(parts[0])) {
            return mar_err_set(err, MAR_EUSAGE, 0, "'%s': cannot parse platform specifier", spec);
        }
        memcpy(parts[np], s, l);
        parts[np][l] = '\0';
        if (!component_ok(parts[np])) {
            return mar_err_set(err, MAR_EUSAGE, 0, "'%s': invalid platform component '%s'", spec,
                               parts[np]);
        }
        np++;
        if (!e) {
            break;
        }
        s = e + 1;
    }

    switch (np) {
    case 1:
        mar_strlcpy(p.os, parts[0], sizeof(p.os));
        normalize_os(p.os, sizeof(p.os));
        if (in_list(p.os, known_os, MAR_ARRAY_SIZE(known_os))) {
            /* A known OS picks the host's architecture (and a non-v7 arm variant). */
            mar_strlcpy(p.arch, host->arch, sizeof(p.arch));
            if (strcmp(p.arch, "arm") == 0 && strcmp(host->variant, "v7") != 0) {
                mar_strlcpy(p.variant, host->variant, sizeof(p.variant));
            }
            break;
        }
        p.os[0] = '\0';
        mar_strlcpy(p.arch, parts[0], sizeof(p.arch));
        normalize_arch(p.arch, sizeof(p.arch), p.variant, sizeof(p.variant));
        if (strcmp(p.arch, "arm") == 0 && strcmp(p.variant, "v7") == 0) {
            p.variant[0] = '\0';
        }
        if (!in_list(p.arch, known_arch, MAR_ARRAY_SIZE(known_arch))) {
            return mar_err_set(err, MAR_EUSAGE, 0, "'%s': unknown operating system or architecture",
                               spec);
        }
        mar_strlcpy(p.os, host->os[0] ? host->os : host_os(), sizeof(p.os));
        break;
    case 2:
        mar_strlcpy(p.os, parts[0], sizeof(p.os));
        normalize_os(p.os, sizeof(p.os));
        mar_strlcpy(p.arch, parts[1], sizeof(p.arch));
        normalize_arch(p.arch, sizeof(p.arch), p.variant, sizeof(p.variant));
        if (strcmp(p.arch, "arm") == 0 && strcmp(p.variant, "v7") == 0) {
            p.variant[0] = '\0';
        }
        break;
    case 3:
        mar_strlcpy(p.os, parts[0], sizeof(p.os));
        normalize_os(p.os, sizeof(p.os));
        mar_strlcpy(p.arch, parts[1], sizeof(p.arch));
        mar_strlcpy(p.variant, parts[2], sizeof(p.variant));
        normalize_arch(p.arch, sizeof(p.arch), p.variant, sizeof(p.variant));
        /* The 3-part form re-adds v8 after normalizing (docs/internals/platforms.md §3). */
        if (strcmp(p.arch, "arm64") == 0 && p.variant[0] == '\0') {
            mar_strlcpy(p.variant, "v8", sizeof(p.variant));
        }
        break;
    }
    normalize_features(p.features, sizeof(p.features));
    *ret = p;
    return 0;
}

void oci_platform_format(const oci_platform *p, char *buf, size_t n)
{
    const char *os = p->os[0] ? p->os : "unknown";
    if (p->variant[0]) {
        snprintf(buf, n, "%s/%s/%s", os, p->arch, p->variant);
    } else if (p->arch[0]) {
        snprintf(buf, n, "%s/%s", os, p->arch);
    } else {
        snprintf(buf, n, "%s", os);
    }
}

static void append_escaped(mar_buf *b, const char *s)
{
    for (; *s; s++) {
        if (strchr("%+()/", *s)) {
            mar_buf_printf(b, "%%%02X", (unsigned char)*s);
        } else {
            mar_buf_append(b, s, 1);
        }
    }
}

void oci_platform_format_all(const oci_platform *p, char *buf, size_t n)
{
    if (!p->os_version[0] && !p->features[0]) {
        oci_platform_format(p, buf, n);
        return;
    }
    mar_buf b = MAR_BUF_INIT(4096);
    mar_buf_puts(&b, p->os[0] ? p->os : "unknown");
    mar_buf_puts(&b, "(");
    append_escaped(&b, p->os_version);
    if (p->features[0]) {
        /* Features are validated component strings: no escaping needed beyond '+'. */
        mar_buf_puts(&b, "+");
        mar_buf_puts(&b, p->features);
    }
    mar_buf_puts(&b, ")");
    if (p->arch[0]) {
        mar_buf_printf(&b, "/%s", p->arch);
    }
    if (p->variant[0]) {
        mar_buf_printf(&b, "/%s", p->variant);
    }
    mar_strlcpy(buf, b.data, n);
    mar_buf_release(&b);
}

/* Every '+'-separated token of `sub` appears in `super`. */
static bool features_subset(const char *sub, const char *super)
{
    const char *s = sub;
    while (*s) {
        const char *e = strchr(s, '+');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        bool found = false;
        const char *t = super;
        while (*t && !found) {
            const char *te = strchr(t, '+');
            size_t tl = te ? (size_t)(te - t) : strlen(t);
            found = tl == l && memcmp(s, t, l) == 0;
            t = te ? te + 1 : t + tl;
        }
        if (!found) {
            return false;
        }
        s = e ? e + 1 : s + l;
    }
    return true;
}

bool oci_platform_matches(const oci_platform *want, const oci_platform *have)
{
    oci_platform w, h;
    oci_platform_normalize(want, &w);
    oci_platform_normalize(have, &h);
    if (strcmp(w.os, h.os) != 0 || strcmp(w.arch, h.arch) != 0 ||
        strcmp(w.variant, h.variant) != 0) {
        return false;
    }
    /* Windows images also pin the OS build (containerd matcher for windows). */
    if (strcmp(w.os, "windows") == 0 && w.os_version[0] && h.os_version[0] &&
        strcmp(w.os_version, h.os_version) != 0) {
        return false;
    }
    return features_subset(h.features, w.features);
}

bool oci_platform_same(const oci_platform *a, const oci_platform *b)
{
    oci_platform x, y;
    oci_platform_normalize(a, &x);
    oci_platform_normalize(b, &y);
    return strcmp(x.os, y.os) == 0 && strcmp(x.arch, y.arch) == 0 &&
           strcmp(x.variant, y.variant) == 0;
}

bool oci_platform_is_unknown(const oci_platform *p)
{
    return strcmp(p->os, "unknown") == 0 || strcmp(p->arch, "unknown") == 0;
}
