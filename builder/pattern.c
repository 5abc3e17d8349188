/* The shell patterns of ${v#p}, ${v%p} and ${v/p/r}. BuildKit turns them into Go regular
 * expressions (shell/lex.go convertShellPatternToRegex): '*' becomes ".*" (".*?" for the
 * shortest forms), '?' becomes ".", everything else is literal. Patterns made of those pieces
 * need no backtracking: a set of positions in the pattern, advanced one character at a time,
 * finds the same matches in time linear in the value. Go's "." does not match a newline, and
 * neither do '*' and '?' here. */
#include "builder/dockerfile-internal.h"

#include <errno.h>
#include <string.h>

enum { T_LIT, T_ANY, T_STAR };

typedef struct ptok {
    unsigned char kind;
    unsigned char len; /* T_LIT: bytes of the character */
    char c[4];
} ptok;

struct bld__pattern {
    ptok *t;
    size_t n;
};

bld__pattern *bld__pattern_new(const char *word, size_t len, const char **ret_why)
{
    bld__pattern *p = mar_xcalloc(1, sizeof(*p));
    p->t = mar_xcalloc(len + 1, sizeof(ptok));
    for (size_t i = 0, k; i < len; i += k) {
        ptok *t = &p->t[p->n];
        k = 1;
        if (word[i] == '*') {
            t->kind = T_STAR;
        } else if (word[i] == '?') {
            t->kind = T_ANY;
        } else if (word[i] == '\\') {
            /* "\}" and "\/" only keep } and / from ending the ${...} word. */
            if (i + 1 < len && (word[i + 1] == '}' || word[i + 1] == '/')) {
                continue;
            }
            if (i + 1 >= len || !strchr("*?\\", word[i + 1])) {
                *ret_why = i + 1 >= len ? "trailing '\\'"
                                        : "invalid escape (only \\*, \\? and "
                                          "\\\\ are allowed)";
                bld__pattern_free(p);
                return NULL;
            }
            t->kind = T_LIT;
            t->len = 1;
            t->c[0] = word[i + 1];
            k = 2;
        } else {
            bld__utf8(word + i, len - i, &k);
            t->kind = T_LIT;
            t->len = (unsigned char)k;
            memcpy(t->c, word + i, k);
        }
        p->n++;
    }
    return p;
}

void bld__pattern_free(bld__pattern *p)
{
    if (p) {
        free(p->t);
        free(p);
    }
}

/* Follows '*' tokens, which may match nothing: a position before a '*' is also one after it.
 * st[i] is the earliest start of a partial match at position i, SIZE_MAX when none. */
static void closure(const bld__pattern *p, size_t *st)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->t[i].kind == T_STAR && st[i] < st[i + 1]) {
            st[i + 1] = st[i];
        }
    }
}

/* Advances every position over the character s[0..k) (code point r). */
static void step(const bld__pattern *p, const size_t *st, size_t *nx, uint32_t r, const char *s,
                 size_t k)
{
    for (size_t i = 0; i <= p->n; i++) {
        nx[i] = SIZE_MAX;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (st[i] == SIZE_MAX) {
            continue;
        }
        const ptok *t = &p->t[i];
        size_t to = SIZE_MAX;
        if (t->kind == T_STAR && r != '\n') {
            to = i;
        } else if (t->kind == T_ANY && r != '\n') {
            to = i + 1;
        } else if (t->kind == T_LIT && t->len == k && memcmp(t->c, s, k) == 0) {
            to = i + 1;
        }
        if (to != SIZE_MAX && st[i] < nx[to]) {
            nx[to] = st[i];
        }
    }
    closure(p, nx);
}

/* Finds the leftmost match starting at or after `from`, the longest of those: the match Go's
 * regexp finds for these patterns with greedy stars. Also serves anchored searches
 * (anchored: only a match starting at `from`; shortest: stop at the first end). */
static bool find(const bld__pattern *p, const char *s, size_t n, size_t from, bool anchored,
                 bool shortest, size_t *ret_start, size_t *ret_end)
{
    size_t *st = mar_xcalloc(p->n + 1, sizeof(size_t));
    size_t *nx = mar_xcalloc(p->n + 1, sizeof(size_t));
    for (size_t i = 0; i <= p->n; i++) {
        st[i] = SIZE_MAX;
    }
    size_t best_s = SIZE_MAX, best_e = 0, pos = from;
    for (;;) {
        if (best_s == SIZE_MAX && (!anchored || pos == from)) {
            if (pos < st[0]) {
                st[0] = pos;
            }
            closure(p, st);
        }
        if (st[p->n] != SIZE_MAX && st[p->n] <= best_s) {
            best_s = st[p->n];
            best_e = pos;
            if (shortest) {
                break;
            }
        }
        if (pos >= n) {
            break;
        }
        bool alive = false;
        for (size_t i = 0; i <= p->n; i++) {
            if (st[i] != SIZE_MAX && st[i] > best_s) {
                st[i] = SIZE_MAX;
            }
            alive |= st[i] != SIZE_MAX;
        }
        if (!alive && (best_s != SIZE_MAX || anchored)) {
            break;
        }
        size_t k;
        uint32_t r = bld__utf8(s + pos, n - pos, &k);
        step(p, st, nx, r, s + pos, k);
        size_t *tmp = st;
        st = nx;
        nx = tmp;
        pos += k;
    }
    free(st);
    free(nx);
    if (best_s == SIZE_MAX) {
        return false;
    }
    *ret_start = best_s;
    *ret_end = best_e;
    return true;
}

/* Reverses s character by character (as BuildKit does to find a shortest suffix). */
static char *reverse_chars(const char *s, size_t n)
{
    char *r = mar_xmalloc(n + 1);
    for (size_t i = 0, k; i < n; i += k) {
        bld__utf8(s + i, n - i, &k);
        memcpy(r + n - i - k, s + i, k);
    }
    r[n] = '\0';
    return r;
}

void bld__pattern_trim(const bld__pattern *p, const char *value, size_t n, bool suffix,
                       bool longest, size_t *ret_off, size_t *ret_len)
{
    size_t a, b;
    *ret_off = 0;
    *ret_len = n;
    if (!suffix) {
        if (find(p, value, n, 0, true, !longest, &a, &b)) {
            *ret_off = b;
            *ret_len = n - b;
        }
        return;
    }
    bld__pattern rp = {.t = mar_xcalloc(p->n + 1, sizeof(ptok)), .n = p->n};
    for (size_t i = 0; i < p->n; i++) {
        rp.t[i] = p->t[p->n - 1 - i];
    }
    _cleanup_free_ char *rv = reverse_chars(value, n);
    if (find(&rp, rv, n, 0, true, !longest, &a, &b)) {
        *ret_len = n - b;
    }
    free(rp.t);
}

int bld__pattern_replace(const bld__pattern *p, const char *value, size_t n, const char *repl,
                         size_t repl_len, bool all, mar_buf *out)
{
    size_t search = 0, last = 0, a0, a1;
    while (search <= n) {
        if (!find(p, value, n, search, false, false, &a0, &a1)) {
            break;
        }
        if (mar_buf_append(out, value + last, a0 - last) < 0) {
            return -E2BIG;
        }
        /* Go's ReplaceAll: no replacement for an empty match right after a previous match. */
        if ((a1 > last || a0 == 0) && mar_buf_append(out, repl, repl_len) < 0) {
            return -E2BIG;
        }
        last = a1;
        if (!all) {
            break;
        }
        size_t k = 0;
        if (search < n) {
            bld__utf8(value + search, n - search, &k);
        }
        if (search + k > a1) {
            search += k;
        } else if (search + 1 > a1) {
            search++;
        } else {
            search = a1;
        }
    }
    return mar_buf_append(out, value + last, n - last) < 0 ? -E2BIG : 0;
}
