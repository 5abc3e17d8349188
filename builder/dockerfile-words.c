/* The small lexical pieces of the Dockerfile parser: UTF-8 and Go's notion of whitespace, the
 * word splitters of BuildKit's line parsers (frontend/dockerfile/parser/line_parsers.go), and
 * the JSON arrays of the exec form, which BuildKit decodes with Go's encoding/json: valid JSON
 * or the line is the shell form. */
#include "builder/dockerfile-internal.h"

#include <string.h>

uint32_t bld__utf8(const char *s, size_t n, size_t *ret_len)
{
    const unsigned char *u = (const unsigned char *)s;
    *ret_len = 1;
    if (u[0] < 0x80) {
        return u[0];
    }
    size_t len;
    uint32_t r, min;
    if ((u[0] & 0xe0) == 0xc0) {
        len = 2, r = u[0] & 0x1f, min = 0x80;
    } else if ((u[0] & 0xf0) == 0xe0) {
        len = 3, r = u[0] & 0x0f, min = 0x800;
    } else if ((u[0] & 0xf8) == 0xf0) {
        len = 4, r = u[0] & 0x07, min = 0x10000;
    } else {
        return 0xfffd;
    }
    if (n < len) {
        return 0xfffd;
    }
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80) {
            return 0xfffd;
        }
        r = (r << 6) | (u[i] & 0x3f);
    }
    if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) {
        return 0xfffd;
    }
    *ret_len = len;
    return r;
}

bool bld__is_space(uint32_t r)
{
    switch (r) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
        return true;
    default:
        return r >= 0x2000 && r <= 0x200a;
    }
}

size_t bld__ltrim(const char *s, size_t n)
{
    size_t i = 0, k;
    while (i < n && bld__is_space(bld__utf8(s + i, n - i, &k))) {
        i += k;
    }
    return i;
}

size_t bld__rtrim(const char *s, size_t n)
{
    while (n) {
        size_t j = n - 1, k;
        while (j && ((unsigned char)s[j] & 0xc0) == 0x80 && n - j < 4) {
            j--;
        }
        if (!bld__is_space(bld__utf8(s + j, n - j, &k)) || j + k != n) {
            break;
        }
        n = j;
    }
    return n;
}

void bld__split_blank(const char *s, mar_strv *ret)
{
    while (*s) {
        while (bld__is_blank(*s)) {
            s++;
        }
        size_t n = 0;
        while (s[n] && !bld__is_blank(s[n])) {
            n++;
        }
        if (n) {
            mar_strv_push_take(ret, mar_xstrndup(s, n));
        }
        s += n;
    }
}

/* BuildKit's parseWords: quotes and escapes stay in the words (they are removed when the words
 * are expanded) but quoted whitespace does not split, and the escape character protects the
 * next character. */
void bld__split_words(const char *s, char escape, mar_strv *ret)
{
    enum { SPACES, WORD, QUOTE } phase = SPACES;
    uint32_t esc = (unsigned char)escape, quote = 0, r = 0;
    size_t n = strlen(s), k = 0;
    bool blank_ok = false;
    mar_buf w = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t pos = 0; pos <= n; pos += k) {
        if (pos != n) {
            r = bld__utf8(s + pos, n - pos, &k);
        }
        if (phase == SPACES) {
            if (pos == n) {
                break;
            }
            if (bld__is_space(r)) {
                continue;
            }
            phase = WORD;
        }
        if (pos == n) {
            if (blank_ok || w.len) {
                mar_strv_push_take(ret, mar_buf_detach(&w, NULL));
            }
            break;
        }
        if (phase == WORD) {
            if (bld__is_space(r)) {
                phase = SPACES;
                if (blank_ok || w.len) {
                    mar_strv_push_take(ret, mar_buf_detach(&w, NULL));
                }
                blank_ok = false;
                continue;
            }
            if (r == '\'' || r == '"') {
                quote = r;
                blank_ok = true;
                phase = QUOTE;
            }
            if (r == esc) {
                if (pos + k == n) {
                    continue;
                }
                mar_buf_xappend(&w, s + pos, k);
                pos += k;
                bld__utf8(s + pos, n - pos, &k);
            }
            mar_buf_xappend(&w, s + pos, k);
            continue;
        }
        if (r == quote) {
            phase = WORD;
        }
        if (r == esc && quote != '\'') {
            if (pos + k == n) {
                phase = WORD;
                continue;
            }
            mar_buf_xappend(&w, s + pos, k);
            pos += k;
            bld__utf8(s + pos, n - pos, &k);
        }
        mar_buf_xappend(&w, s + pos, k);
    }
    mar_buf_release(&w);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

/* Go's encoding/json refuses documents nested deeper than this. */
#define JSON_MAX_DEPTH 10000

static size_t ws(const char *s, size_t i)
{
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
        i++;
    }
    return i;
}

static bool hex4(const char *s, uint32_t *ret)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            return false;
        }
        v = v * 16 + (uint32_t)d;
    }
    *ret = v;
    return true;
}

/* Skips a string starting at s[*i] == '"' (RFC 8259 §7). */
static bool scan_string(const char *s, size_t *i)
{
    size_t p = *i + 1;
    for (;;) {
        unsigned char c = (unsigned char)s[p];
        if (c == '"') {
            *i = p + 1;
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c == '\\') {
            uint32_t u;
            if (s[p + 1] == 'u') {
                if (!hex4(s + p + 2, &u)) {
                    return false;
                }
                p += 6;
                continue;
            }
            if (!s[p + 1] || !strchr("\"\\/bfnrt", s[p + 1])) {
                return false;
            }
            p += 2;
            continue;
        }
        p++;
    }
}

static bool digits(const char *s, size_t *i)
{
    size_t p = *i;
    while (s[p] >= '0' && s[p] <= '9') {
        p++;
    }
    if (p == *i) {
        return false;
    }
    *i = p;
    return true;
}

/* RFC 8259 §6. */
static bool scan_number(const char *s, size_t *i)
{
    size_t p = *i;
    if (s[p] == '-') {
        p++;
    }
    if (s[p] == '0') {
        p++;
    } else if (!digits(s, &p)) {
        return false;
    }
    if (s[p] == '.') {
        p++;
        if (!digits(s, &p)) {
            return false;
        }
    }
    if (s[p] == 'e' || s[p] == 'E') {
        p++;
        if (s[p] == '+' || s[p] == '-') {
            p++;
        }
        if (!digits(s, &p)) {
            return false;
        }
    }
    *i = p;
    return true;
}

/* The whole of s is one JSON value and whitespace (Go's checkValid). Iterative: the nesting is
 * bounded by JSON_MAX_DEPTH, not by the C stack. */
static bool json_valid(const char *s)
{
    _cleanup_free_ char *stack = mar_xmalloc(JSON_MAX_DEPTH);
    size_t depth = 0, i = ws(s, 0);
value:
    switch (s[i]) {
    case '{':
    case '[':
        if (depth == JSON_MAX_DEPTH) {
            return false;
        }
        stack[depth++] = s[i++];
        i = ws(s, i);
        if (s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
            i++;
            depth--;
            goto after;
        }
        if (stack[depth - 1] == '[') {
            goto value;
        }
        goto key;
    case '"':
        if (!scan_string(s, &i)) {
            return false;
        }
        goto after;
    case 't':
    case 'f':
    case 'n': {
        const char *lit = s[i] == 't' ? "true" : s[i] == 'f' ? "false" : "null";
        if (strncmp(s + i, lit, strlen(lit)) != 0) {
            return false;
        }
        i += strlen(lit);
        goto after;
    }
    default:
        if (s[i] != '-' && (s[i] < '0' || s[i] > '9')) {
            return false;
        }
        if (!scan_number(s, &i)) {
            return false;
        }
        goto after;
    }
key:
    if (s[i] != '"' || !scan_string(s, &i)) {
        return false;
    }
    i = ws(s, i);
    if (s[i] != ':') {
        return false;
    }
    i = ws(s, i + 1);
    goto value;
after:
    i = ws(s, i);
    if (depth == 0) {
        return s[i] == '\0';
    }
    if (s[i] == ',') {
        i = ws(s, i + 1);
        if (stack[depth - 1] == '{') {
            goto key;
        }
        goto value;
    }
    if (s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
        i++;
        depth--;
        goto after;
    }
    return false;
}

static void put_rune(mar_buf *b, uint32_t r)
{
    char u[4];
    size_t n;
    if (r < 0x80) {
        u[0] = (char)r, n = 1;
    } else if (r < 0x800) {
        u[0] = (char)(0xc0 | (r >> 6)), u[1] = (char)(0x80 | (r & 0x3f)), n = 2;
    } else if (r < 0x10000) {
        u[0] = (char)(0xe0 | (r >> 12)), u[1] = (char)(0x80 | ((r >> 6) & 0x3f));
        u[2] = (char)(0x80 | (r & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | (r >> 18)), u[1] = (char)(0x80 | ((r >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((r >> 6) & 0x3f)), u[3] = (char)(0x80 | (r & 0x3f)), n = 4;
    }
    mar_buf_xappend(b, u, n);
}

/* Decodes a string already checked by scan_string. A lone UTF-16 surrogate becomes U+FFFD, as in
 * Go. Returns false for a NUL character, which a C string cannot carry. */
static bool decode_string(const char *s, size_t *i, mar_buf *out)
{
    size_t p = *i + 1;
    while (s[p] != '"') {
        if (s[p] != '\\') {
            mar_buf_xappend(out, s + p, 1);
            p++;
            continue;
        }
        char e = s[p + 1];
        p += 2;
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            mar_buf_xappend(out, &to[strchr(from, e) - from], 1);
            continue;
        }
        uint32_t r, lo;
        hex4(s + p, &r);
        p += 4;
        if (r >= 0xd800 && r < 0xdc00 && s[p] == '\\' && s[p + 1] == 'u' && hex4(s + p + 2, &lo) &&
            lo >= 0xdc00 && lo < 0xe000) {
            r = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        } else if (r >= 0xd800 && r < 0xe000) {
            r = 0xfffd;
        }
        if (r == 0) {
            return false;
        }
        put_rune(out, r);
    }
    *i = p + 1;
    return true;
}

int bld__json_strings(const char *s, mar_strv *ret, const char **ret_why)
{
    size_t i = 0, k;
    while (s[i] && bld__is_space(bld__utf8(s + i, strlen(s + i), &k))) {
        i += k;
    }
    if (s[i] != '[' || !json_valid(s + i)) {
        return 0;
    }
    _cleanup_strv_ mar_strv v = MAR_STRV_INIT;
    i = ws(s, i + 1);
    while (s[i] != ']') {
        if (s[i] != '"') {
            *ret_why = "when using JSON array syntax, arrays must be comprised of strings only";
            return -1;
        }
        mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
        if (!decode_string(s, &i, &b)) {
            mar_buf_release(&b);
            *ret_why = "a JSON string contains a NUL character";
            return -1;
        }
        mar_strv_push_take(&v, mar_buf_detach(&b, NULL));
        i = ws(s, i);
        if (s[i] == ',') {
            i = ws(s, i + 1);
        }
    }
    for (size_t j = 0; j < v.n; j++) {
        mar_strv_push_take(ret, TAKE_PTR(v.v[j]));
    }
    return 1;
}
