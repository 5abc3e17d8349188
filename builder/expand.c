/* Word expansion: the variable references, quotes and escapes of the instructions that expand
 * (Dockerfile reference, "Environment replacement"), following BuildKit's shell lexer
 * (frontend/dockerfile/shell/lex.go) so that a word means the same in mar and in BuildKit. The
 * deliberate differences are in docs/internals/dockerfile.md §4. */
#include "builder/dockerfile-internal.h"

#include <string.h>

/* Nesting of ${v:-${w:-...}}: BuildKit has no limit (Go stacks grow); a C stack does not. */
#define MAX_DEPTH 64

typedef struct lex {
    const char *s;
    size_t n, pos;
    uint32_t esc;
    unsigned flags;
    bool raw_esc; /* the escape mode of the innermost word being read */
    unsigned depth;
    bld_lookup_fn lookup;
    void *ud;
    bool unresolved;
    mar_err **err;
} lex;

/* BuildKit's word splitter: unquoted whitespace ends a word, quoted text never does. */
typedef struct words {
    mar_strv *out;
    mar_buf cur;
    bool in_word;
} words;

static int fail(lex *L, const char *fmt, ...) MAR_PRINTF(2, 3);
static int fail(lex *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mar_xvasprintf(fmt, ap);
    va_end(ap);
    return mar_err_set(L->err, MAR_EUSAGE, 0, "%s", msg);
}

static int put(lex *L, mar_buf *b, const void *p, size_t n)
{
    if (mar_buf_append(b, p, n) < 0) {
        return fail(L, "the result is longer than %u bytes", BLD_CAP_WORD);
    }
    return 0;
}

static int w_raw(lex *L, words *w, const char *p, size_t n)
{
    if (!w) {
        return 0;
    }
    w->in_word = true;
    return put(L, &w->cur, p, n);
}

static void w_push(words *w)
{
    mar_strv_push_take(w->out, mar_buf_detach(&w->cur, NULL));
    w->in_word = false;
}

/* One character of unquoted text: whitespace separates, anything else joins the word. */
static int w_char(lex *L, words *w, uint32_t r, const char *p, size_t n)
{
    if (!w) {
        return 0;
    }
    if (bld__is_space(r)) {
        if (w->in_word && w->cur.len) {
            w_push(w);
        }
        return 0;
    }
    return w_raw(L, w, p, n);
}

static int w_string(lex *L, words *w, const char *p, size_t n)
{
    for (size_t i = 0, k; w && i < n; i += k) {
        uint32_t r = bld__utf8(p + i, n - i, &k);
        if (w_char(L, w, r, p + i, k) < 0) {
            return -MAR_EUSAGE;
        }
    }
    return 0;
}

static uint32_t next(lex *L, size_t *ret_len)
{
    uint32_t r = bld__utf8(L->s + L->pos, L->n - L->pos, ret_len);
    L->pos += *ret_len;
    return r;
}

static bool special_param(char c)
{
    return strchr("@*#?-$!0", c) != NULL && c != '\0';
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A name after '$' or "${": a run of digits, one special parameter, or letters, digits and '_'.
 * Go's lexer lets Unicode letters continue a name and ends it at other characters; telling them
 * apart needs Unicode tables, so a non-ASCII character where a name could continue is refused
 * (docs/internals/dockerfile.md §4). */
static int scan_name(lex *L, size_t *ret_len)
{
    size_t start = L->pos;
    if (L->pos < L->n && L->s[L->pos] >= '0' && L->s[L->pos] <= '9') {
        while (L->pos < L->n && L->s[L->pos] >= '0' && L->s[L->pos] <= '9') {
            L->pos++;
        }
    } else if (L->pos < L->n && special_param(L->s[L->pos])) {
        L->pos++;
    } else {
        while (L->pos < L->n && name_char(L->s[L->pos])) {
            L->pos++;
        }
        if (L->pos < L->n && (unsigned char)L->s[L->pos] >= 0x80 &&
            !(L->flags & BLD__X_LAX_NAMES)) {
            if (L->pos == start) {
                return fail(L, "'$' followed by a non-ASCII character is ambiguous; write '\\$' "
                               "or '${NAME}'");
            }
            return fail(L,
                        "'$%.*s' followed by a non-ASCII character is ambiguous; write '${%.*s}'",
                        (int)(L->pos - start), L->s + start, (int)(L->pos - start), L->s + start);
        }
    }
    *ret_len = L->pos - start;
    return 0;
}

static bld_var_state get(lex *L, const char *name, size_t n, const char **ret_value)
{
    *ret_value = "";
    if (!L->lookup) {
        return BLD_VAR_UNSET;
    }
    _cleanup_free_ char *key = mar_xstrndup(name, n);
    const char *v = NULL;
    bld_var_state st = L->lookup(key, &v, L->ud);
    if (st == BLD_VAR_SET) {
        *ret_value = v ? v : "";
    } else if (st == BLD_VAR_UNKNOWN) {
        L->unresolved = true;
    }
    return st;
}

static int stop_on(lex *L, int stop, bool raw_esc, mar_buf *out, words *w);

static int single_quote(lex *L, mar_buf *out)
{
    size_t k;
    L->pos++;
    if ((L->flags & BLD_X_RAW_QUOTES) && put(L, out, "'", 1) < 0) {
        return -MAR_EUSAGE;
    }
    for (;;) {
        if (L->pos >= L->n) {
            return fail(L, "unexpected end of statement while looking for matching single-quote");
        }
        size_t at = L->pos;
        uint32_t r = next(L, &k);
        if (r == '\'' && !(L->flags & BLD_X_RAW_QUOTES)) {
            return 0;
        }
        if (put(L, out, L->s + at, k) < 0) {
            return -MAR_EUSAGE;
        }
        if (r == '\'') {
            return 0;
        }
    }
}

static int dollar(lex *L, mar_buf *out);

/* Inside double quotes only $, the closing quote and the escape character are special; the
 * escape character escapes only '"', '$' and itself and stays literal before anything else. */
static int double_quote(lex *L, mar_buf *out)
{
    size_t k;
    L->pos++;
    if ((L->flags & BLD_X_RAW_QUOTES) && put(L, out, "\"", 1) < 0) {
        return -MAR_EUSAGE;
    }
    for (;;) {
        if (L->pos >= L->n) {
            return fail(L, "unexpected end of statement while looking for matching double-quote");
        }
        char c = L->s[L->pos];
        if (c == '"') {
            L->pos++;
            return (L->flags & BLD_X_RAW_QUOTES) ? put(L, out, "\"", 1) : 0;
        }
        if (c == '$') {
            if (dollar(L, out) < 0) {
                return -MAR_EUSAGE;
            }
            continue;
        }
        size_t at = L->pos;
        uint32_t r = next(L, &k);
        if (r == L->esc) {
            if (L->raw_esc && put(L, out, L->s + at, k) < 0) {
                return -MAR_EUSAGE;
            }
            if (L->pos >= L->n) {
                continue;
            }
            char d = L->s[L->pos];
            if (d == '"' || d == '$' || (uint32_t)(unsigned char)d == L->esc) {
                at = L->pos;
                next(L, &k);
            }
        }
        if (put(L, out, L->s + at, k) < 0) {
            return -MAR_EUSAGE;
        }
    }
}

/* "<<" and the blanks after it stay one piece of text, so that "<< EOF" reads as one word (how
 * BuildKit finds heredoc words). */
static int angle(lex *L, mar_buf *out)
{
    size_t start = L->pos++;
    if (L->pos < L->n && L->s[L->pos] == '<') {
        L->pos++;
        while (L->pos < L->n && strchr("\t\r ", L->s[L->pos]) && L->s[L->pos]) {
            L->pos++;
        }
    }
    return put(L, out, L->s + start, L->pos - start);
}

static int modifier(lex *L, size_t start, const char *name, size_t nl, uint32_t ch, bool colon,
                    mar_buf *out)
{
    bool pattern = ch == '#' || ch == '%';
    if (colon && pattern) {
        return fail(L, "unsupported modifier (:%c) in substitution", (char)ch);
    }
    _cleanup_buf_ mar_buf word = MAR_BUF_INIT(BLD_CAP_WORD);
    if (stop_on(L, '}', pattern, &word, NULL) < 0) {
        return -MAR_EUSAGE;
    }
    const char *v;
    bld_var_state st = get(L, name, nl, &v);
    if (st == BLD_VAR_UNKNOWN) {
        return put(L, out, L->s + start, L->pos - start);
    }
    bool set = st == BLD_VAR_SET;
    bool empty = !set || (colon && !*v);
    switch (ch) {
    case '-':
        return empty ? put(L, out, word.data, word.len) : put(L, out, v, strlen(v));
    case '+':
        return empty ? 0 : put(L, out, word.data, word.len);
    case '?':
        if (!set) {
            return fail(L, "%.*s: %s", (int)nl, name,
                        word.len ? word.data : "is not allowed to be unset");
        }
        if (colon && !*v) {
            return fail(L, "%.*s: %s", (int)nl, name,
                        word.len ? word.data : "is not allowed to be empty");
        }
        return put(L, out, v, strlen(v));
    case '#':
    case '%': {
        bool longest = word.len && word.data[0] == (char)ch;
        const char *why = NULL;
        size_t off = longest ? 1 : 0;
        bld__pattern *p = bld__pattern_new(word.data + off, word.len - off, &why);
        if (!p) {
            return fail(L, "invalid pattern (%s) in substitution: %s", word.data + off, why);
        }
        size_t o, n;
        bld__pattern_trim(p, v, strlen(v), ch == '%', longest, &o, &n);
        bld__pattern_free(p);
        return put(L, out, v + o, n);
    }
    default:
        if (ch < 0x80) {
            return fail(L, "unsupported modifier (%s%c) in substitution", colon ? ":" : "",
                        (char)ch);
        }
        return fail(L, "unsupported modifier in substitution");
    }
}

static int replace(lex *L, size_t start, const char *name, size_t nl, mar_buf *out)
{
    bool all = L->pos < L->n && L->s[L->pos] == '/';
    if (all) {
        L->pos++;
    }
    _cleanup_buf_ mar_buf pat = MAR_BUF_INIT(BLD_CAP_WORD);
    _cleanup_buf_ mar_buf repl = MAR_BUF_INIT(BLD_CAP_WORD);
    if (stop_on(L, '/', true, &pat, NULL) < 0 || stop_on(L, '}', true, &repl, NULL) < 0) {
        return -MAR_EUSAGE;
    }
    const char *v;
    bld_var_state st = get(L, name, nl, &v);
    if (st == BLD_VAR_UNKNOWN) {
        return put(L, out, L->s + start, L->pos - start);
    }
    const char *why = NULL;
    bld__pattern *p = bld__pattern_new(pat.data, pat.len, &why);
    if (!p) {
        return fail(L, "invalid pattern (%s) in substitution: %s", pat.data, why);
    }
    int r = bld__pattern_replace(p, v, strlen(v), repl.data, repl.len, all, out);
    bld__pattern_free(p);
    return r < 0 ? fail(L, "the result is longer than %u bytes", BLD_CAP_WORD) : 0;
}

static int dollar(lex *L, mar_buf *out)
{
    size_t start = L->pos++, nl;
    const char *v;
    if (L->pos >= L->n || L->s[L->pos] != '{') {
        if (scan_name(L, &nl) < 0) {
            return -MAR_EUSAGE;
        }
        if (!nl) {
            return put(L, out, "$", 1);
        }
        bld_var_state st = get(L, L->s + L->pos - nl, nl, &v);
        if (st == BLD_VAR_UNKNOWN) {
            return put(L, out, L->s + start, L->pos - start);
        }
        return put(L, out, v, strlen(v));
    }
    L->pos++;
    if (L->pos >= L->n) {
        return fail(L, "syntax error: missing '}'");
    }
    if (strchr("{}:", L->s[L->pos])) {
        return fail(L, "syntax error: bad substitution");
    }
    if (scan_name(L, &nl) < 0) {
        return -MAR_EUSAGE;
    }
    const char *name = L->s + L->pos - nl;
    if (L->pos >= L->n) {
        return fail(L, "syntax error: missing '}'");
    }
    size_t k;
    uint32_t ch = next(L, &k);
    switch (ch) {
    case '}': {
        bld_var_state st = get(L, name, nl, &v);
        if (st == BLD_VAR_UNKNOWN) {
            return put(L, out, L->s + start, L->pos - start);
        }
        return put(L, out, v, strlen(v));
    }
    case ':':
        if (L->pos >= L->n) {
            return fail(L, "syntax error: missing '}'");
        }
        ch = next(L, &k);
        return modifier(L, start, name, nl, ch, true, out);
    case '+':
    case '-':
    case '?':
    case '#':
    case '%':
        return modifier(L, start, name, nl, ch, false, out);
    case '/':
        return replace(L, start, name, nl, out);
    default:
        if (ch < 0x80) {
            return fail(L, "unsupported modifier (%c) in substitution", (char)ch);
        }
        return fail(L, "unsupported modifier in substitution");
    }
}

/* Reads up to `stop` (or the end when stop < 0), expanding as it goes; `w` collects words at the
 * top level. */
static int stop_on(lex *L, int stop, bool raw_esc, mar_buf *out, words *w)
{
    if (L->depth >= MAX_DEPTH) {
        return fail(L, "variable substitutions nested deeper than %d levels", MAX_DEPTH);
    }
    L->depth++;
    bool saved = L->raw_esc;
    L->raw_esc = raw_esc;
    int r = 0;
    size_t k;
    while (L->pos < L->n) {
        char c = L->s[L->pos];
        if (stop >= 0 && c == stop) {
            L->pos++;
            goto out;
        }
        bool quote = (c == '\'' || c == '"') && !(L->flags & BLD_X_NO_QUOTES);
        if (c == '$' || c == '<' || quote) {
            _cleanup_buf_ mar_buf tmp = MAR_BUF_INIT(BLD_CAP_WORD);
            r = c == '$'    ? dollar(L, &tmp)
                : c == '<'  ? angle(L, &tmp)
                : c == '\'' ? single_quote(L, &tmp)
                            : double_quote(L, &tmp);
            if (r < 0 || (r = put(L, out, tmp.data, tmp.len)) < 0) {
                goto out;
            }
            r = c == '$' ? w_string(L, w, tmp.data, tmp.len) : w_raw(L, w, tmp.data, tmp.len);
            if (r < 0) {
                goto out;
            }
            continue;
        }
        size_t at = L->pos;
        uint32_t ch = next(L, &k);
        if (ch == L->esc) {
            if (L->raw_esc &&
                ((r = w_raw(L, w, L->s + at, k)) < 0 || (r = put(L, out, L->s + at, k)) < 0)) {
                goto out;
            }
            if (L->pos >= L->n) {
                break;
            }
            at = L->pos;
            next(L, &k);
            r = w_raw(L, w, L->s + at, k);
        } else {
            r = w_char(L, w, ch, L->s + at, k);
        }
        if (r < 0 || (r = put(L, out, L->s + at, k)) < 0) {
            goto out;
        }
    }
    if (stop == '}') {
        r = fail(L, "syntax error: missing '}'");
    } else if (stop == '/') {
        r = fail(L, "syntax error: missing '/' in ${}");
    }
out:
    L->raw_esc = saved;
    L->depth--;
    return r;
}

MAR_MUST_USE static int expand(const char *word, char escape, unsigned flags, bld_lookup_fn lookup,
                               void *userdata, mar_buf *out, mar_strv *ret_words,
                               bool *ret_unresolved, mar_err **err)
{
    lex L = {
            .s = word,
            .n = strlen(word),
            .esc = (unsigned char)escape,
            .flags = flags,
            .raw_esc = (flags & BLD_X_RAW_ESCAPES) != 0,
            .lookup = lookup,
            .ud = userdata,
            .err = err,
    };
    words w = {.out = ret_words, .cur = MAR_BUF_INIT(BLD_CAP_WORD)};
    int r = stop_on(&L, -1, L.raw_esc, out, ret_words ? &w : NULL);
    if (r == 0 && ret_words && w.cur.len) {
        w_push(&w);
    }
    mar_buf_release(&w.cur);
    if (r < 0) {
        mar_err_wrap(err, "cannot expand '%.*s%s'", L.n > 120 ? 120 : (int)L.n, word,
                     L.n > 120 ? "..." : "");
        return -MAR_EUSAGE;
    }
    if (ret_unresolved) {
        *ret_unresolved = L.unresolved;
    }
    return 0;
}

int bld_expand_word(const char *word, char escape, unsigned flags, bld_lookup_fn lookup,
                    void *userdata, char **ret, bool *ret_unresolved, mar_err **err)
{
    _cleanup_buf_ mar_buf out = MAR_BUF_INIT(BLD_CAP_WORD);
    int r = expand(word, escape, flags, lookup, userdata, &out, NULL, ret_unresolved, err);
    if (r < 0) {
        return r;
    }
    *ret = mar_buf_detach(&out, NULL);
    return 0;
}

int bld_expand_words(const char *word, char escape, unsigned flags, bld_lookup_fn lookup,
                     void *userdata, mar_strv *ret, bool *ret_unresolved, mar_err **err)
{
    _cleanup_buf_ mar_buf out = MAR_BUF_INIT(BLD_CAP_WORD);
    _cleanup_strv_ mar_strv v = MAR_STRV_INIT;
    int r = expand(word, escape, flags, lookup, userdata, &out, &v, ret_unresolved, err);
    if (r < 0) {
        return r;
    }
    for (size_t i = 0; i < v.n; i++) {
        mar_strv_push_take(ret, TAKE_PTR(v.v[i]));
    }
    return 0;
}
