/* .dockerignore and COPY --exclude patterns with moby's semantics: moby/patternmatcher (which
 * turns each pattern into a regular expression and checks its syntax with Go's filepath.Match),
 * moby/patternmatcher/ignorefile (how the file is read) and tonistiigi/fsutil (when an excluded
 * directory must still be walked). Where the regular-expression translation gives a pattern a
 * meaning filepath.Match does not (`\d`, `*` inside brackets), the pattern is refused instead
 * (docs/internals/dockerfile.md §8). */
#include "builder/dockerfile-internal.h"

#include <string.h>

/* Longer patterns cannot match a path (PATH_MAX) and would make matching slow. */
#define MAX_PATTERN 4096

enum { G_LIT, G_ANY, G_STAR, G_DSTAR_DIRS, G_DSTAR_END, G_CLASS };

typedef struct gtok {
    unsigned char kind;
    unsigned char len; /* G_LIT */
    char c[4];
    bool neg;      /* G_CLASS */
    size_t r0, nr; /* G_CLASS: ranges[r0 .. r0+nr) */
} gtok;

typedef enum { M_EXACT, M_PREFIX, M_SUFFIX, M_GLOB } mtype;

typedef struct ipat {
    bool exclusion;
    char *clean;      /* without the '!' */
    char *dir_prefix; /* without a trailing slash-star-star or slash-star, then '/' (the
                         descent rule) */
    mtype type;
    gtok *t;
    size_t nt;
    uint32_t (*ranges)[2];
} ipat;

struct bld_ignore {
    ipat *v;
    size_t n;
    bool exclusions;             /* some pattern starts with '!' */
    bool prefix_only_exceptions; /* no '!' pattern has pattern characters */
};

/* Go's path.Clean. Returns a new string. */
static char *clean(const char *s)
{
    size_t n = strlen(s), r = 0, w = 0, dotdot = 0;
    if (!n) {
        return mar_xstrdup(".");
    }
    bool rooted = s[0] == '/';
    char *out = mar_xmalloc(n + 2);
    if (rooted) {
        out[w++] = '/';
        r = dotdot = 1;
    }
    while (r < n) {
        if (s[r] == '/') {
            r++;
        } else if (s[r] == '.' && (r + 1 == n || s[r + 1] == '/')) {
            r++;
        } else if (s[r] == '.' && s[r + 1] == '.' && (r + 2 == n || s[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/') {
                    w--;
                }
            } else if (!rooted) {
                if (w > 0) {
                    out[w++] = '/';
                }
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0)) {
                out[w++] = '/';
            }
            while (r < n && s[r] != '/') {
                out[w++] = s[r++];
            }
        }
    }
    if (!w) {
        out[w++] = '.';
    }
    out[w] = '\0';
    return out;
}

static bool punct(unsigned char c)
{
    return c < 0x80 && c >= 0x20 && c != 0x7f && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
           !(c >= '0' && c <= '9');
}

/* A class member of filepath.Match (getEsc): not '-' or ']' unescaped, '\' escapes, and the
 * class must go on after it. */
static bool class_char(const char *p, size_t n, size_t *i, uint32_t *ret, const char **why)
{
    if (*i >= n || p[*i] == '-' || p[*i] == ']') {
        *why = "malformed character class";
        return false;
    }
    if (p[*i] == '\\') {
        (*i)++;
        if (*i >= n || !punct((unsigned char)p[*i])) {
            *why = *i >= n ? "malformed character class"
                           : "'\\' may only escape punctuation (moby reads '\\d' and the like "
                             "as regular expressions)";
            return false;
        }
    }
    size_t k;
    *ret = bld__utf8(p + *i, n - *i, &k);
    *i += k;
    if (*i >= n) {
        *why = "character class does not end";
        return false;
    }
    return true;
}

/* Compiles a cleaned pattern like moby's Pattern.compile, after checking the syntax the way
 * filepath.Match does. */
static bool compile(ipat *pt, const char **why)
{
    const char *p = pt->clean;
    size_t n = strlen(p), i = 0, iter = 0, nr = 0;
    pt->t = mar_xcalloc(n + 1, sizeof(gtok));
    pt->ranges = mar_xcalloc(n + 1, sizeof(*pt->ranges));
    pt->type = M_EXACT;
    for (; i < n; iter++) {
        gtok *t = &pt->t[pt->nt];
        char c = p[i];
        if (c == '*' && p[i + 1] == '*') {
            i += 2;
            if (p[i] == '/') {
                i++;
            }
            if (i == n) {
                if (pt->type == M_EXACT) {
                    pt->type = M_PREFIX;
                } else {
                    t->kind = G_DSTAR_END, pt->nt++, pt->type = M_GLOB;
                }
            } else {
                t->kind = G_DSTAR_DIRS, pt->nt++, pt->type = M_GLOB;
            }
            if (iter == 0) {
                pt->type = M_SUFFIX;
            }
            continue;
        }
        if (c == '*' || c == '?') {
            t->kind = c == '*' ? G_STAR : G_ANY, pt->nt++, pt->type = M_GLOB;
            i++;
            continue;
        }
        if (c == '\\') {
            if (i + 1 >= n) {
                *why = "trailing '\\'";
                return false;
            }
            if (!punct((unsigned char)p[i + 1])) {
                *why = "'\\' may only escape punctuation (moby reads '\\d' and the like as "
                       "regular expressions)";
                return false;
            }
            t->kind = G_LIT, t->len = 1, t->c[0] = p[i + 1], pt->nt++, pt->type = M_GLOB;
            i += 2;
            continue;
        }
        if (c == '[') {
            t->kind = G_CLASS, t->r0 = nr, pt->type = M_GLOB;
            i++;
            if (p[i] == '^') {
                t->neg = true;
                i++;
            }
            for (;;) {
                if (i < n && p[i] == ']' && t->nr > 0) {
                    i++;
                    break;
                }
                if (i < n && (p[i] == '*' || p[i] == '?')) {
                    *why = "'*' and '?' inside brackets are not supported";
                    return false;
                }
                uint32_t lo, hi;
                if (!class_char(p, n, &i, &lo, why)) {
                    return false;
                }
                hi = lo;
                if (p[i] == '-') {
                    i++;
                    if (!class_char(p, n, &i, &hi, why)) {
                        return false;
                    }
                    if (hi < lo) {
                        *why = "reversed range in a character class";
                        return false;
                    }
                }
                pt->ranges[nr][0] = lo, pt->ranges[nr][1] = hi, nr++, t->nr++;
            }
            pt->nt++;
            continue;
        }
        size_t k;
        bld__utf8(p + i, n - i, &k);
        t->kind = G_LIT, t->len = (unsigned char)k, memcpy(t->c, p + i, k), pt->nt++;
        if (c == ']') {
            pt->type = M_GLOB;
        }
        i += k;
    }
    return true;
}

/* The tokens matched against a whole path, one set of positions advanced per character: no
 * backtracking. States 0..nt are "before token i"; nt+1+i is "inside the (.*\/)? of token i". */
static bool glob_match(const ipat *pt, const char *s)
{
    size_t nt = pt->nt, ns = 2 * nt + 2, n = strlen(s);
    bool *cur = mar_xcalloc(ns, 1), *nx = mar_xcalloc(ns, 1);
    cur[0] = true;
    for (size_t pos = 0;;) {
        for (size_t i = 0; i < nt; i++) { /* the tokens that may match nothing */
            unsigned char k = pt->t[i].kind;
            if (cur[i] && (k == G_STAR || k == G_DSTAR_END || k == G_DSTAR_DIRS)) {
                cur[i + 1] = true;
                if (k == G_DSTAR_DIRS) {
                    cur[nt + 1 + i] = true;
                }
            }
        }
        if (pos >= n) {
            break;
        }
        size_t k;
        uint32_t r = bld__utf8(s + pos, n - pos, &k);
        memset(nx, 0, ns);
        bool any = false;
        for (size_t i = 0; i < nt; i++) {
            const gtok *t = &pt->t[i];
            if (cur[nt + 1 + i] && r != '\n') { /* Go's '.' */
                nx[nt + 1 + i] = true;
                nx[i + 1] |= r == '/';
            }
            if (!cur[i]) {
                continue;
            }
            bool m = false;
            switch (t->kind) {
            case G_LIT:
                m = t->len == k && memcmp(t->c, s + pos, k) == 0;
                break;
            case G_ANY:
                m = r != '/';
                break;
            case G_STAR:
                nx[i] |= r != '/';
                break;
            case G_DSTAR_END:
                nx[i] |= r != '\n';
                break;
            case G_CLASS:
                for (size_t j = 0; j < t->nr; j++) {
                    m |= r >= pt->ranges[t->r0 + j][0] && r <= pt->ranges[t->r0 + j][1];
                }
                m = m != t->neg;
                break;
            }
            nx[i + 1] |= m;
        }
        for (size_t i = 0; i < ns; i++) {
            any |= nx[i];
        }
        bool *tmp = cur;
        cur = nx;
        nx = tmp;
        pos += k;
        if (!any) {
            break;
        }
    }
    bool ok = cur[nt];
    free(cur);
    free(nx);
    return ok;
}

static bool match_one(const ipat *pt, const char *path)
{
    size_t pl = strlen(path), cl = strlen(pt->clean);
    switch (pt->type) {
    case M_EXACT:
        return strcmp(path, pt->clean) == 0;
    case M_PREFIX:
        return strncmp(path, pt->clean, cl - 2) == 0;
    case M_SUFFIX: {
        const char *suffix = pt->clean + 2;
        size_t sl = cl - 2;
        if (pl >= sl && memcmp(path + pl - sl, suffix, sl) == 0) {
            return true;
        }
        /* "**\/foo" matches "foo" */
        return sl && suffix[0] == '/' && strcmp(path, suffix + 1) == 0;
    }
    case M_GLOB:
        return glob_match(pt, path);
    }
    return false;
}

/* moby's MatchesOrParentMatches: the last pattern that matches the path or one of its parent
 * directories decides. */
static bool excluded(const bld_ignore *m, const char *path)
{
    bool matched = false;
    _cleanup_free_ char *buf = mar_xstrdup(path);
    for (size_t i = 0; i < m->n; i++) {
        const ipat *pt = &m->v[i];
        if (pt->exclusion != matched) {
            continue;
        }
        bool hit = match_one(pt, path);
        for (char *sl = strchr(buf, '/'); !hit && sl; sl = strchr(sl + 1, '/')) {
            *sl = '\0';
            hit = match_one(pt, buf);
            *sl = '/';
        }
        if (hit) {
            matched = !pt->exclusion;
        }
    }
    return matched;
}

bld_ignore_result bld_ignore_match(const bld_ignore *m, const char *path, bool is_dir)
{
    _cleanup_free_ char *p = clean(path);
    if (strcmp(p, ".") == 0 || !excluded(m, p)) {
        return BLD_IGNORE_KEEP;
    }
    if (!is_dir || !m->exclusions) {
        return BLD_IGNORE_EXCLUDE;
    }
    /* fsutil: when every '!' pattern is a plain path, walk only directories on the way to one;
     * otherwise any excluded directory may hold something re-included. */
    if (!m->prefix_only_exceptions) {
        return BLD_IGNORE_DESCEND;
    }
    _cleanup_free_ char *dir = mar_xasprintf("%s/", p);
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].exclusion && mar_str_startswith(m->v[i].dir_prefix, dir)) {
            return BLD_IGNORE_DESCEND;
        }
    }
    return BLD_IGNORE_EXCLUDE;
}

/* Adds one pattern as patternmatcher.New takes it. Returns false with *why on error. */
static bool add(bld_ignore *m, const char *raw, const char **why)
{
    size_t n = strlen(raw), a = bld__ltrim(raw, n);
    n = a + bld__rtrim(raw + a, n - a);
    if (n == a) {
        return true;
    }
    if (n - a > MAX_PATTERN) {
        *why = "pattern longer than 4096 bytes";
        return false;
    }
    _cleanup_free_ char *trimmed = mar_xstrndup(raw + a, n - a);
    char *c = clean(trimmed);
    ipat pt = {0};
    if (c[0] == '!') {
        if (!c[1]) {
            free(c);
            *why = "illegal exclusion pattern '!'";
            return false;
        }
        pt.exclusion = true;
        pt.clean = mar_xstrdup(c + 1);
        free(c);
    } else {
        pt.clean = c;
    }
    if (!compile(&pt, why)) {
        free(pt.clean), free(pt.t), free(pt.ranges);
        return false;
    }
    size_t l = strlen(pt.clean);
    if (l >= 3 && strcmp(pt.clean + l - 3, "/**") == 0) {
        l -= 3;
    }
    if (l >= 2 && strncmp(pt.clean + l - 2, "/*", 2) == 0) {
        l -= 2;
    }
    pt.dir_prefix = mar_xasprintf("%.*s/", (int)l, pt.clean);
    if (pt.exclusion) {
        m->exclusions = true;
        if (strpbrk(pt.dir_prefix, "*[]?^\\")) {
            m->prefix_only_exceptions = false;
        }
    }
    m->v = mar_xrealloc(m->v, (m->n + 1) * sizeof(*m->v));
    m->v[m->n++] = pt;
    return true;
}

bool bld__ignore_pattern_ok(const char *pattern, const char **ret_why)
{
    bld_ignore m = {.prefix_only_exceptions = true};
    bool ok = add(&m, pattern, ret_why);
    for (size_t i = 0; i < m.n; i++) {
        free(m.v[i].clean), free(m.v[i].dir_prefix), free(m.v[i].t), free(m.v[i].ranges);
    }
    free(m.v);
    return ok;
}

int bld_ignore_from_patterns(const char *const *patterns, size_t n, bld_ignore **ret, mar_err **err)
{
    bld_ignore *m = mar_xcalloc(1, sizeof(*m));
    m->prefix_only_exceptions = true;
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (!add(m, patterns[i], &why)) {
            bld_ignore_free(m);
            return mar_err_set(err, MAR_EUSAGE, 0, "exclude pattern '%s': %s", patterns[i], why);
        }
    }
    *ret = m;
    return 0;
}

/* moby/patternmatcher/ignorefile ReadAll: '#' in column 1 starts a comment; a pattern is
 * trimmed, cleaned and loses a leading '/'; "!" keeps its place in front. */
int bld_ignore_parse(const char *text, size_t len, const char *filename, bld_ignore **ret,
                     mar_err **err)
{
    const char *file = filename ? filename : ".dockerignore";
    if (len > BLD_CAP_DOCKERIGNORE) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s: larger than %u bytes", file,
                           BLD_CAP_DOCKERIGNORE);
    }
    if (memchr(text, '\0', len)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s: NUL character", file);
    }
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3, len -= 3;
    }
    bld_ignore *m = mar_xcalloc(1, sizeof(*m));
    m->prefix_only_exceptions = true;
    unsigned line = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        _cleanup_free_ char *s = mar_xstrndup(p, n);
        p += n + (nl != NULL);
        line++;
        if (s[0] == '#') {
            continue;
        }
        _cleanup_free_ char *pat = NULL;
        char *t = s + bld__ltrim(s, strlen(s));
        t[bld__rtrim(t, strlen(t))] = '\0';
        bool invert = t[0] == '!';
        if (invert) {
            t++;
            t += bld__ltrim(t, strlen(t));
        }
        size_t tl = strlen(t);
        if (!tl && !invert) {
            continue;
        }
        if (tl) {
            char *c = clean(t);
            pat = mar_xasprintf("%s%s", invert ? "!" : "", c[0] == '/' && c[1] ? c + 1 : c);
            free(c);
        } else {
            pat = mar_xstrdup("!");
        }
        const char *why = NULL;
        if (!add(m, pat, &why)) {
            bld_ignore_free(m);
            return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: '%s': %s", file, line, pat, why);
        }
    }
    *ret = m;
    return 0;
}

size_t bld_ignore_count(const bld_ignore *m)
{
    return m->n;
}

bld_ignore *bld_ignore_free(bld_ignore *m)
{
    if (!m) {
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].clean);
        free(m->v[i].dir_prefix);
        free(m->v[i].t);
        free(m->v[i].ranges);
    }
    free(m->v);
    free(m);
    return NULL;
}
