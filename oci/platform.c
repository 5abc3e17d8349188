/* Platform parse, normalize, format and match with containerd's semantics
 * (docs/internals/platforms.md §2-§4; containerd/platforms database.go, platforms.go). */
#include "oci.h"

#include <errno.h>
#include <limits.h>
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

/* One byte of the specifier component grammar `[A-Za-z0-9_.-]` (containerd specifierRe). */
static bool component_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* `^[A-Za-z0-9_.-]+$` (containerd specifierRe), and not dots alone: "." and ".." name no
 * operating system, architecture or variant ("../../etc" is a path, not a platform). */
static bool component_ok(const char *s)
{
    if (!*s || strspn(s, ".") == strlen(s)) {
        return false;
    }
    for (; *s; s++) {
        if (!component_char(*s)) {
            return false;
        }
    }
    return true;
}

/* Appends s with every byte outside the component grammar written as %XX (upper-case hex), the
 * canonical form of an os.version or OS feature inside a specifier
 * (docs/internals/platforms.md §1, §3). */
static int append_escaped(mar_buf *b, const char *s)
{
    for (; *s; s++) {
        int rc = component_char(*s) ? mar_buf_append(b, s, 1)
                                    : mar_buf_printf(b, "%%%02X", (unsigned char)*s);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int hex_digit(char h)
{
    if (h >= '0' && h <= '9') {
        return h - '0';
    }
    if (h >= 'a' && h <= 'f') {
        return h - 'a' + 10;
    }
    if (h >= 'A' && h <= 'F') {
        return h - 'A' + 10;
    }
    return -1;
}

/* Decodes the %XX escapes of s[0..len) into out (NUL-terminated). Returns the decoded length, -1
 * for a malformed escape or an escaped NUL, -2 when out is too small. */
static ssize_t unescape(const char *s, size_t len, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len) {
                return -1;
            }
            int hi = hex_digit(s[i + 1]);
            int lo = hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return -1;
            }
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= n) {
            return -2;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (ssize_t)o;
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

/* Features are kept in their canonical escaped form; they sort by their decoded bytes, as
 * containerd sorts OSFeatures (platforms.go Normalize). */
static int cmp_feature(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    char dx[sizeof(((oci_platform *)0)->features)], dy[sizeof(dx)];
    if (unescape(x, strlen(x), dx, sizeof(dx)) < 0 || unescape(y, strlen(y), dy, sizeof(dy)) < 0) {
        return strcmp(x, y);
    }
    return strcmp(dx, dy);
}

/* Sorts and de-duplicates a '+'-joined feature list in place. */
static void normalize_features(char *features, size_t n)
{
    if (!*features) {
        return;
    }
    char tmp[sizeof(((oci_platform *)0)->features)];
    mar_strlcpy(tmp, features, sizeof(tmp));
    char *parts[128];
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
        qsort(parts, np, sizeof(parts[0]), cmp_feature);
    }
    /* The parts come from features, so the join fits n; the copy below is bounded anyway. */
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < np; i++) {
        if (i > 0 && strcmp(parts[i], parts[i - 1]) == 0) {
            continue;
        }
        if (b.len) {
            mar_buf_xputs(&b, "+");
        }
        mar_buf_xputs(&b, parts[i]);
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

MAR_MUST_USE static int set_field(char *dst, size_t n, const char *v, const char *what,
                                  mar_err **err)
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
    if (features && !json_is_array(features)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "platform os.features is not an array");
    }
    size_t i;
    json_t *f;
    json_array_foreach(features, i, f)
    {
        if (!json_is_string(f)) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "platform os.features[%zu] is not a string",
                               i);
        }
    }
    /* What is left is valid but may not fit: the caller still has the OS and architecture. */
    *ret = p;
    if (os_version && !mar_strlcpy(ret->os_version, os_version, sizeof(ret->os_version))) {
        ret->os_version[0] = '\0';
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "platform os.version of %zu bytes is longer than mar keeps (%zu)",
                           strlen(os_version), sizeof(ret->os_version) - 1);
    }
    /* The image-spec sets no grammar for a feature (config.md os.features): any string is kept,
     * escaped like a specifier's (docs/internals/platforms.md §1). */
    mar_buf b = MAR_BUF_INIT(sizeof(p.features) - 1);
    json_array_foreach(features, i, f)
    {
        const char *s = json_string_value(f);
        if (!*s) {
            continue;
        }
        if ((b.len && mar_buf_puts(&b, "+") < 0) || append_escaped(&b, s) < 0) {
            return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                               "platform os.features are longer than mar keeps (%zu bytes "
                               "escaped)",
                               sizeof(ret->features) - 1);
        }
    }
    mar_strlcpy(ret->features, b.data, sizeof(ret->features));
    mar_buf_release(&b);
    return 0;
}

/* Decodes the `(<os.version>+<feature>+...)` suffix. `%XX` stands for any byte (containerd
 * decodeOSOption, url.PathUnescape); a decoded feature is stored in the canonical escaped form, so
 * that it compares equal to the same feature read from a descriptor. */
MAR_MUST_USE static int parse_os_options(const char *opts, size_t len, oci_platform *p,
                                         mar_err **err)
{
    mar_buf feats = MAR_BUF_INIT(sizeof(p->features) - 1);
    size_t start = 0;
    int idx = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && opts[i] != '+') {
            continue;
        }
        char raw[256];
        ssize_t n = unescape(opts + start, i - start, raw, sizeof(raw));
        if (n == -1) {
            mar_buf_release(&feats);
            return mar_err_set(err, MAR_EUSAGE, 0, "invalid escape in platform options");
        }
        if (n == -2 || (idx == 0 && !mar_strlcpy(p->os_version, raw, sizeof(p->os_version)))) {
            mar_buf_release(&feats);
            return mar_err_set(err, MAR_EUSAGE, 0, "platform options are too long");
        }
        if (idx > 0 && n > 0 &&
            ((feats.len && mar_buf_puts(&feats, "+") < 0) || append_escaped(&feats, raw) < 0)) {
            return mar_err_set(err, MAR_EUSAGE, 0, "platform features are too long");
        }
        idx++;
        start = i + 1;
    }
    mar_strlcpy(p->features, feats.data, sizeof(p->features));
    mar_buf_release(&feats);
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

/* containerd Format and FormatAll (platforms.go): an empty OS is "unknown" alone. */
void oci_platform_format(const oci_platform *p, char *buf, size_t n)
{
    if (!p->os[0]) {
        snprintf(buf, n, "unknown");
    } else if (p->variant[0]) {
        snprintf(buf, n, "%s/%s/%s", p->os, p->arch, p->variant);
    } else if (p->arch[0]) {
        snprintf(buf, n, "%s/%s", p->os, p->arch);
    } else {
        snprintf(buf, n, "%s", p->os);
    }
}

void oci_platform_format_all(const oci_platform *p, char *buf, size_t n)
{
    if (!p->os[0] || (!p->os_version[0] && !p->features[0])) {
        oci_platform_format(p, buf, n);
        return;
    }
    /* OCI_PLATFORM_ALL_STR_MAX holds every result; the copy below is bounded anyway. */
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xprintf(&b, "%s(", p->os);
    /* A MAR_BUF_NOCAP buffer: the append cannot fail. */
    mar_ignore(append_escaped(&b, p->os_version));
    if (p->features[0]) {
        /* Already escaped (oci_platform_from_fields, parse_os_options). */
        mar_buf_xprintf(&b, "+%s", p->features);
    }
    mar_buf_xputs(&b, ")");
    if (p->arch[0]) {
        mar_buf_xprintf(&b, "/%s", p->arch);
    }
    if (p->variant[0]) {
        mar_buf_xprintf(&b, "/%s", p->variant);
    }
    mar_strlcpy(buf, b.data, n);
    mar_buf_release(&b);
}

/* Removes one token from a '+'-joined feature list. */
static void strip_feature(char *features, const char *name)
{
    size_t nl = strlen(name);
    char *s = features;
    while (*s) {
        char *e = strchr(s, '+');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == nl && memcmp(s, name, l) == 0) {
            if (e) {
                memmove(s, e + 1, strlen(e + 1) + 1);
                continue;
            }
            *(s > features ? s - 1 : s) = '\0';
            return;
        }
        s = e ? e + 1 : s + l;
    }
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
    if (strcmp(w.os, "windows") == 0) {
        if (!oci_windows_version_matches(w.os_version, h.os_version)) {
            return false;
        }
        /* containerd windowsStripFeaturesMatcher: win32k is not compared. */
        strip_feature(h.features, "win32k");
    }
    return features_subset(h.features, w.features);
}

/* containerd getWindowsOSVersion (platform_windows_compat.go): "major.minor.build[.revision]"
 * with 8-, 8- and 16-bit numbers; anything else reads as 0.0.0. */
static void windows_version(const char *s, unsigned v[4])
{
    static const unsigned long max[4] = {255, 255, 65535, UINT_MAX};
    unsigned got[4] = {0};
    size_t k = 0;
    for (const char *p = s; k < 4; k++) {
        char *end;
        errno = 0;
        unsigned long n = *p >= '0' && *p <= '9' ? strtoul(p, &end, 10) : ULONG_MAX;
        if (n == ULONG_MAX || errno || n > max[k] || (*end != '.' && *end != '\0')) {
            break;
        }
        got[k] = (unsigned)n;
        if (*end == '\0') {
            k++;
            break;
        }
        p = end + 1;
    }
    memset(v, 0, 4 * sizeof(*v));
    if (k >= 3) {
        memcpy(v, got, sizeof(got));
    }
}

/* containerd checkWindowsHostAndContainerCompat (platforms v1.0.0-rc.2, as in containerd 2.2):
 * the same major and minor; a host before Windows Server 2022 (build 20348) runs only its own
 * build; a newer host runs every build from the last LTSC release before it (20348 or 26100) up
 * to its own. */
static bool windows_compat(const unsigned host[4], const unsigned ctr[4])
{
    static const unsigned ltsc[] = {20348, 26100};
    if (host[0] != ctr[0] || host[1] != ctr[1]) {
        return false;
    }
    if (host[2] < ltsc[0]) {
        return host[2] == ctr[2];
    }
    unsigned oldest = ltsc[0];
    for (size_t i = MAR_ARRAY_SIZE(ltsc); i-- > 0;) {
        if (host[2] > ltsc[i]) {
            oldest = ltsc[i];
            break;
        }
    }
    return oldest <= ctr[2] && ctr[2] <= host[2];
}

bool oci_windows_version_matches(const char *want, const char *have)
{
    unsigned w[4], h[4];
    windows_version(want, w);
    if ((w[0] == 0 && w[1] == 0 && w[2] == 0) || !have[0]) {
        return true;
    }
    windows_version(have, h);
    return windows_compat(w, h);
}

int oci_windows_version_cmp(const char *a, const char *b)
{
    unsigned x[4], y[4];
    windows_version(a, x);
    windows_version(b, y);
    for (size_t i = 0; i < 4; i++) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
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
