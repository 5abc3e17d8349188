/* Match comparers and the ordered fallback ladder (docs/internals/platforms.md §5;
 * containerd/platforms compare.go). A request accepts a vector of platforms, best first; sorting an
 * index walks that vector. */
#include "oci.h"

#include <string.h>

static void push(oci_matcher *m, const oci_platform *base, const char *arch, const char *variant)
{
    if (m->n >= OCI_MATCHER_MAX) {
        return;
    }
    oci_platform *p = &m->v[m->n++];
    *p = *base;
    mar_strlcpy(p->arch, arch, sizeof(p->arch));
    mar_strlcpy(p->variant, variant, sizeof(p->variant));
    oci_platform_normalize(p, p);
}

/* The arm64 variants containerd knows, with the v8/v9 minors each accepts (compare.go
 * arm64variantToVersion): v8.x accepts v8.x..v8.0; v9.x accepts v9.x..v9.0 then v8.min(x+5,9)..
 * v8.0. A variant outside the table accepts nothing. */
static bool arm64_versions(const char *variant, int *major, int *minor)
{
    const char *v = variant[0] ? variant : "v8";
    if (v[0] != 'v' || (v[1] != '8' && v[1] != '9')) {
        return false;
    }
    *major = v[1] - '0';
    if (v[2] == '\0') {
        *minor = 0;
        return true;
    }
    if (v[2] != '.' || v[3] < '0' || v[3] > '9' || v[4] != '\0') {
        return false;
    }
    *minor = v[3] - '0';
    return *major == 8 || *minor <= 7;
}

static void arm_ladder(oci_matcher *m, const oci_platform *base, int from)
{
    for (int v = from; v >= 5; v--) {
        char var[16];
        snprintf(var, sizeof(var), "v%d", v);
        push(m, base, "arm", var);
    }
}

static void vector(oci_matcher *m, const oci_platform *p)
{
    char var[16];
    if (strcmp(p->arch, "amd64") == 0) {
        push(m, p, p->arch, p->variant);
        int64_t level = 0;
        if (p->variant[0] == 'v' && mar_parse_i64(p->variant + 1, 0, 64, &level) && level > 1) {
            for (int64_t l = level - 1; l >= 1; l--) {
                snprintf(var, sizeof(var), "v%d", (int)l);
                push(m, p, "amd64", var);
            }
        }
        push(m, p, "386", "");
    } else if (strcmp(p->arch, "arm") == 0) {
        push(m, p, p->arch, p->variant);
        int64_t level = 0;
        if (p->variant[0] == 'v' && mar_parse_i64(p->variant + 1, 0, 64, &level) && level > 5) {
            arm_ladder(m, p, (int)level - 1);
        }
    } else if (strcmp(p->arch, "arm64") == 0) {
        int major, minor;
        if (!arm64_versions(p->variant, &major, &minor)) {
            return;
        }
        if (major == 9) {
            for (int k = minor; k >= 0; k--) {
                snprintf(var, sizeof(var), k ? "v9.%d" : "v9", k);
                push(m, p, "arm64", var);
            }
            minor = minor + 5 > 9 ? 9 : minor + 5;
        }
        for (int k = minor; k >= 0; k--) {
            snprintf(var, sizeof(var), k ? "v8.%d" : "v8", k);
            push(m, p, "arm64", var);
        }
        /* Every arm64 level can run 32-bit arm/v8 and below, where the CPU has AArch32. */
        arm_ladder(m, p, 8);
    } else {
        push(m, p, p->arch, p->variant);
    }
}

void oci_matcher_only(oci_matcher *m, const oci_platform *p)
{
    oci_platform n;
    oci_platform_normalize(p, &n);
    m->kind = OCI_MATCH_ORDERED;
    m->n = 0;
    vector(m, &n);
}

void oci_matcher_only_strict(oci_matcher *m, const oci_platform *p)
{
    m->kind = OCI_MATCH_ORDERED;
    m->n = 1;
    oci_platform_normalize(p, &m->v[0]);
}

static void fill(oci_matcher *m, oci_match_kind kind, const oci_platform *ps, size_t n)
{
    m->kind = kind;
    m->n = 0;
    for (size_t i = 0; i < n && m->n < OCI_MATCHER_MAX; i++) {
        oci_platform_normalize(&ps[i], &m->v[m->n++]);
    }
}

void oci_matcher_ordered(oci_matcher *m, const oci_platform *ps, size_t n)
{
    fill(m, OCI_MATCH_ORDERED, ps, n);
}

void oci_matcher_any(oci_matcher *m, const oci_platform *ps, size_t n)
{
    fill(m, OCI_MATCH_ANY, ps, n);
}

void oci_matcher_all(oci_matcher *m)
{
    m->kind = OCI_MATCH_ALL;
    m->n = 0;
}

bool oci_matcher_match(const oci_matcher *m, const oci_platform *p)
{
    if (m->kind == OCI_MATCH_ALL) {
        return true;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (oci_platform_matches(&m->v[i], p)) {
            return true;
        }
    }
    return false;
}

static size_t n_features(const oci_platform *p)
{
    if (!p->features[0]) {
        return 0;
    }
    size_t n = 1;
    for (const char *s = p->features; *s; s++) {
        n += *s == '+';
    }
    return n;
}

/* Both match the same request: for Windows the higher os.version first (containerd's Windows
 * default comparer, docs/internals/platforms.md §4), then more OS features first (containerd
 * compare.go). */
static bool both_match_less(const oci_platform *want, const oci_platform *p1,
                            const oci_platform *p2)
{
    if (strcmp(want->os, "windows") == 0) {
        int c = oci_windows_version_cmp(p1->os_version, p2->os_version);
        if (c != 0) {
            return c > 0;
        }
    }
    return n_features(p1) > n_features(p2);
}

static bool less_ordered(const oci_matcher *m, const oci_platform *p1, const oci_platform *p2)
{
    for (size_t i = 0; i < m->n; i++) {
        bool a = oci_platform_matches(&m->v[i], p1);
        bool b = oci_platform_matches(&m->v[i], p2);
        if (a && !b) {
            return true;
        }
        if (a || b) {
            return a && b && both_match_less(&m->v[i], p1, p2);
        }
    }
    if (p1->features[0] || p2->features[0]) {
        oci_platform x = *p1, y = *p2;
        x.features[0] = y.features[0] = '\0';
        return less_ordered(m, &x, &y);
    }
    return false;
}

static bool less_any(const oci_matcher *m, const oci_platform *p1, const oci_platform *p2)
{
    bool a = false, b = false;
    for (size_t i = 0; i < m->n; i++) {
        a = a || oci_platform_matches(&m->v[i], p1);
        b = b || oci_platform_matches(&m->v[i], p2);
        if (a && b) {
            return n_features(p1) > n_features(p2);
        }
    }
    if (!a && !b && (p1->features[0] || p2->features[0])) {
        oci_platform x = *p1, y = *p2;
        x.features[0] = y.features[0] = '\0';
        return less_any(m, &x, &y);
    }
    return a && !b;
}

bool oci_matcher_less(const oci_matcher *m, const oci_platform *p1, const oci_platform *p2)
{
    switch (m->kind) {
    case OCI_MATCH_ORDERED:
        return less_ordered(m, p1, p2);
    case OCI_MATCH_ANY:
        return less_any(m, p1, p2);
    case OCI_MATCH_ALL:
        return false;
    }
    return false;
}
