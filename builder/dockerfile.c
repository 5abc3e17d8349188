/* The Dockerfile reader: lines, parser directives, comments, line continuations and heredoc
 * bodies (Dockerfile reference, "Format", "Parser directives", "Here-Documents"; BuildKit
 * frontend/dockerfile/parser/parser.go and directives.go), then the stages. */
#include "builder/dockerfile-internal.h"

#include <string.h>
#include <strings.h>

typedef struct reader {
    const char *p, *end;
    unsigned line;
} reader;

/* The next line with its newline, if any. */
static bool next_line(reader *r, const char **ret, size_t *ret_n)
{
    if (r->p >= r->end) {
        return false;
    }
    const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    size_t n = nl ? (size_t)(nl - r->p) + 1 : (size_t)(r->end - r->p);
    *ret = r->p;
    *ret_n = n;
    r->p += n;
    r->line++;
    return true;
}

static size_t trim_newline(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    return n;
}

static size_t left_space(const char *s, size_t n)
{
    return bld__ltrim(s, n);
}

static bool is_comment(const char *s, size_t n)
{
    size_t i = left_space(s, n);
    return i < n && s[i] == '#';
}

/* ---- Parser directives ----------------------------------------------------------------------- */

typedef struct directives {
    bool done;
    bool seen[3];
} directives;

static bool re_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* `#` then `name = value` (BuildKit's ^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$, \s being ASCII
 * blanks without \v). Directives are recognized only while every earlier line was one: the
 * first other line ends them (Dockerfile reference, "Parser directives"). */
MAR_MUST_USE static int directive(const bld__pctx *P, directives *d, unsigned line, const char *s,
                                  size_t n, bld_dockerfile *df, mar_err **err)
{
    static const char *const names[] = {"syntax", "escape", "check"};
    if (d->done) {
        return 0;
    }
    if (!n || s[0] != '#') {
        d->done = true;
        return 0;
    }
    size_t i = 1;
    i += left_space(s + i, n - i);
    size_t k0 = i;
    if (i >= n || !((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')) {
        d->done = true;
        return 0;
    }
    while (i < n &&
           (((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') || (s[i] >= '0' && s[i] <= '9'))) {
        i++;
    }
    size_t kn = i - k0;
    while (i < n && re_space(s[i])) {
        i++;
    }
    if (i >= n || s[i] != '=') {
        d->done = true;
        return 0;
    }
    i++;
    size_t v0 = i;
    while (i < n && re_space(s[i])) {
        i++;
    }
    size_t v1 = n;
    while (v1 > i && re_space(s[v1 - 1])) {
        v1--;
    }
    if (v1 == i) {
        /* All blanks: the lazy (.+?) takes the last one. */
        if (i == v0) {
            d->done = true;
            return 0;
        }
        i--;
        v1 = i + 1;
    }
    size_t which = 0;
    while (which < 3 &&
           (strlen(names[which]) != kn || strncasecmp(s + k0, names[which], kn) != 0)) {
        which++;
    }
    if (which == 3) {
        d->done = true;
        return 0;
    }
    if (d->seen[which]) {
        return bld__fail(P, line, err, "only one %s parser directive can be used", names[which]);
    }
    d->seen[which] = true;
    char *value = mar_xstrndup(s + i, v1 - i);
    if (which == 0) {
        df->syntax = value;
    } else if (which == 2) {
        df->check = value;
    } else {
        if (strcmp(value, "\\") != 0 && strcmp(value, "`") != 0) {
            int r = bld__fail(P, line, err, "invalid escape token '%s' (must be ` or \\)", value);
            free(value);
            return r;
        }
        df->escape = value[0];
        free(value);
    }
    return 1;
}

/* ---- Continuations --------------------------------------------------------------------------- */

/* A line continues when it ends in the escape character, blanks after it allowed, unless the
 * escape character is itself escaped. Returns the length without the continuation. */
static bool continues(const char *s, size_t *n, char esc)
{
    size_t e = *n;
    while (e && (s[e - 1] == ' ' || s[e - 1] == '\t')) {
        e--;
    }
    if (!e || s[e - 1] != esc || (e >= 2 && s[e - 2] == esc)) {
        return false;
    }
    *n = e - 1;
    return true;
}

/* ---- Heredocs -------------------------------------------------------------------------------- */

static bld_var_state unknown(const char *name, const char **ret_value, void *ud)
{
    (void)name, (void)ret_value, (void)ud;
    return BLD_VAR_UNKNOWN;
}

static size_t count_quotes(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += *s == '\'' || *s == '"';
    }
    return n;
}

int bld__heredoc_word(const char *word, bld_heredoc *ret, const char **ret_why)
{
    const char *p = word;
    unsigned long fd = 0;
    while (*p >= '0' && *p <= '9') {
        fd = fd < 100000000ul ? fd * 10 + (unsigned long)(*p - '0') : fd;
        p++;
    }
    if (p[0] != '<' || p[1] != '<') {
        return 0;
    }
    p += 2;
    bool chomp = *p == '-';
    p += chomp;
    while (re_space(*p)) {
        p++;
    }
    if (!*p || strchr(p, '<')) {
        return 0;
    }
    /* The delimiter read with and without quote removal: a quoted part (counts differ) turns
     * expansion of the body off. */
    _cleanup_strv_ mar_strv plain = MAR_STRV_INIT, raw = MAR_STRV_INIT;
    mar_err *e = NULL;
    if (bld_expand_words(p, '\\', BLD__X_LAX_NAMES, unknown, NULL, &plain, NULL, &e) < 0 ||
        bld_expand_words(p, '\\', BLD__X_LAX_NAMES | BLD_X_RAW_QUOTES, unknown, NULL, &raw, NULL,
                         &e) < 0) {
        mar_err_free(e);
        *ret_why = "a quote of the heredoc delimiter does not close";
        return -1;
    }
    if (plain.n != 1 || raw.n != 1) {
        return 0;
    }
    *ret = (bld_heredoc){
            .name = mar_xstrdup(plain.v[0]),
            .expand = count_quotes(plain.v[0]) == count_quotes(raw.v[0]),
            .chomp = chomp,
            .fd = (unsigned)fd,
    };
    return 1;
}

/* The heredoc words of a line, read the way BuildKit does: the whole line lexed with quotes and
 * escapes kept, every word of the form [N]<<[-]NAME a heredoc. A line that does not lex has
 * none. */
MAR_MUST_USE static int heredoc_words(const bld__pctx *P, unsigned line, const char *text,
                                      bld_heredoc **ret, size_t *ret_n, mar_err **err)
{
    *ret = NULL;
    *ret_n = 0;
    if (!strstr(text, "<<")) {
        return 0;
    }
    _cleanup_strv_ mar_strv words = MAR_STRV_INIT;
    mar_err *e = NULL;
    if (bld_expand_words(text, '\\', BLD_X_RAW_QUOTES | BLD_X_RAW_ESCAPES | BLD__X_LAX_NAMES,
                         unknown, NULL, &words, NULL, &e) < 0) {
        mar_err_free(e);
        return 0;
    }
    bld_heredoc *v = mar_xcalloc(words.n + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < words.n; i++) {
        const char *why = NULL;
        int r = bld__heredoc_word(words.v[i], &v[n], &why);
        if (r < 0) {
            for (size_t j = 0; j < n; j++) {
                bld__heredoc_release(&v[j]);
            }
            free(v);
            return bld__fail(P, line, err, "%s", why);
        }
        n += r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

static size_t strip_tabs(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == '\t') {
        i++;
    }
    return i;
}

/* Reads the body of each heredoc: the lines up to one that is exactly the delimiter (after
 * leading tabs, for <<-). */
MAR_MUST_USE static int heredoc_bodies(const bld__pctx *P, reader *r, unsigned start,
                                       bld_heredoc *docs, size_t n, mar_err **err)
{
    for (size_t i = 0; i < n; i++) {
        mar_buf raw = MAR_BUF_INIT(MAR_BUF_NOCAP), content = MAR_BUF_INIT(MAR_BUF_NOCAP);
        bool done = false;
        const char *s;
        size_t len;
        while (!done && next_line(r, &s, &len)) {
            size_t t = docs[i].chomp ? strip_tabs(s, len) : 0;
            size_t l = trim_newline(s, len);
            if (l - (t < l ? t : l) == strlen(docs[i].name) &&
                memcmp(s + t, docs[i].name, l - t) == 0) {
                done = true;
                break;
            }
            mar_buf_xappend(&raw, s, len);
            mar_buf_xappend(&content, s + t, len - t);
        }
        if (!done) {
            mar_buf_release(&raw);
            mar_buf_release(&content);
            return bld__fail(P, start, err, "unterminated heredoc '%s'", docs[i].name);
        }
        docs[i].raw = mar_buf_detach(&raw, NULL);
        docs[i].content = mar_buf_detach(&content, NULL);
    }
    return 0;
}

/* ---- The document ---------------------------------------------------------------------------- */

/* Input checks before any parsing: size, UTF-8, no NUL (a C string could not carry it, and
 * BuildKit's own readers mangle both). */
MAR_MUST_USE static int check_text(const bld__pctx *P, const char *text, size_t len, mar_err **err)
{
    if (len > BLD_CAP_DOCKERFILE) {
        return bld__fail(P, 0, err, "larger than %u bytes", BLD_CAP_DOCKERFILE);
    }
    unsigned line = 1;
    for (size_t i = 0, k; i < len; i += k) {
        uint32_t r = bld__utf8(text + i, len - i, &k);
        if (r == 0) {
            return bld__fail(P, line, err, "NUL character");
        }
        if (r == 0xfffd && k == 1) {
            return bld__fail(P, line, err, "invalid UTF-8");
        }
        line += r == '\n';
    }
    return 0;
}

typedef struct instrs {
    bld_instr *v;
    size_t n, alloc;
} instrs;

static bld_instr *instrs_add(instrs *l)
{
    if (l->n == l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 16;
        l->v = mar_xrealloc(l->v, l->alloc * sizeof(*l->v));
    }
    l->v[l->n] = (bld_instr){0};
    return &l->v[l->n++];
}

/* One logical line: its node, heredoc bodies and instruction. */
MAR_MUST_USE static int instruction(const bld__pctx *P, reader *r, unsigned start, const char *text,
                                    instrs *out, mar_err **err)
{
    bld__node n;
    bld_heredoc *docs = NULL;
    size_t n_docs = 0;
    _cleanup_free_ char *original = NULL;
    int rc = bld__node_parse(P, start, text, &n, err);
    if (rc == 0 && bld__node_heredocs(&n)) {
        rc = heredoc_words(P, start, text, &docs, &n_docs, err);
        if (rc == 0) {
            rc = heredoc_bodies(P, r, start, docs, n_docs, err);
        }
    }
    if (rc == 0) {
        size_t l = strlen(text), a = bld__ltrim(text, l);
        original = mar_xstrndup(text + a, bld__rtrim(text + a, l - a));
        bld_instr *ins = instrs_add(out);
        rc = bld__instr_build(P, &n, start, original, docs, n_docs, ins, err);
        ins->end_line = r->line;
    }
    for (size_t i = 0; i < n_docs; i++) {
        bld__heredoc_release(&docs[i]);
    }
    free(docs);
    bld__node_release(&n);
    return rc;
}

/* The line loop of BuildKit's Parse: directives at the top, comments and blank lines skipped,
 * continuation lines joined (comment lines and whitespace-only lines inside a continuation
 * skipped, the latter with a warning as BuildKit gives). */
MAR_MUST_USE static int read_lines(const bld__pctx *P0, const char *text, size_t len,
                                   bld_dockerfile *df, instrs *out, mar_err **err)
{
    bld__pctx P = *P0;
    reader r = {.p = text, .end = text + len};
    directives d = {0};
    const char *s;
    size_t n;
    _cleanup_buf_ mar_buf logical = MAR_BUF_INIT(MAR_BUF_NOCAP);
    while (next_line(&r, &s, &n)) {
        n = trim_newline(s, n);
        size_t a = left_space(s, n);
        s += a, n -= a;
        int dr = directive(&P, &d, r.line, s, n, df, err);
        if (dr < 0) {
            return dr;
        }
        P.esc = df->escape;
        if (dr > 0 || is_comment(s, n)) {
            continue;
        }
        unsigned start = r.line;
        bool more = continues(s, &n, P.esc);
        if (!more && !n) {
            continue;
        }
        mar_buf_truncate(&logical, 0);
        mar_buf_xappend(&logical, s, n);
        bool empty_continuation = false;
        while (more && next_line(&r, &s, &n)) {
            if (is_comment(s, n)) {
                continue;
            }
            n = trim_newline(s, n);
            if (left_space(s, n) == n) {
                empty_continuation = true;
                continue;
            }
            more = continues(s, &n, P.esc);
            mar_buf_xappend(&logical, s, n);
        }
        if (empty_continuation) {
            mar_strv_push_take(&df->warnings,
                               mar_xasprintf("%s:%u: empty continuation line", P.file, start));
        }
        if (instruction(&P, &r, start, logical.data, out, err) < 0) {
            return -MAR_EUSAGE;
        }
    }
    return 0;
}

/* Global ARGs, then stages from each FROM (Dockerfile reference, "FROM": only ARG may precede
 * the first FROM). Takes the instructions. */
MAR_MUST_USE static int assemble(const bld__pctx *P, instrs *in, bld_dockerfile *df, mar_err **err)
{
    size_t i = 0;
    if (!in->n) {
        return bld__fail(P, 0, err, "no instructions");
    }
    df->args = mar_xcalloc(in->n, sizeof(bld_instr));
    for (; i < in->n && in->v[i].kind != BLD_FROM; i++) {
        if (in->v[i].kind != BLD_ARG) {
            return bld__fail(P, in->v[i].line, err,
                             "%s before the first FROM (only ARG may come before FROM)",
                             bld_kind_name(in->v[i].kind));
        }
        df->args[df->n_args++] = in->v[i];
        in->v[i] = (bld_instr){0};
    }
    if (i == in->n) {
        return bld__fail(P, 0, err, "no FROM instruction");
    }
    df->stages = mar_xcalloc(in->n, sizeof(bld_stage));
    mar_map names = MAR_MAP_INIT; /* name -> index + 1 */
    int r = 0;
    for (; i < in->n && r == 0; i++) {
        bld_instr *ins = &in->v[i];
        if (ins->kind == BLD_FROM) {
            const char *name = ins->stage_name;
            size_t seen = name ? (size_t)(uintptr_t)mar_map_get(&names, name) : 0;
            if (name && (strcmp(name, "scratch") == 0 || strcmp(name, "context") == 0)) {
                r = bld__fail(P, ins->line, err, "'%s' is a reserved stage name", name);
                break;
            }
            if (seen) {
                r = bld__fail(P, ins->line, err, "stage name '%s' is already used on line %u", name,
                              df->stages[seen - 1].instrs[0].line);
                break;
            }
            size_t n = 1;
            while (i + n < in->n && in->v[i + n].kind != BLD_FROM) {
                n++;
            }
            bld_stage *st = &df->stages[df->n_stages];
            st->index = df->n_stages++;
            st->name = name ? mar_xstrdup(name) : NULL;
            st->instrs = mar_xcalloc(n, sizeof(bld_instr));
            if (name) {
                mar_map_set(&names, name, (void *)(uintptr_t)df->n_stages);
            }
        }
        bld_stage *st = &df->stages[df->n_stages - 1];
        st->instrs[st->n_instrs++] = *ins;
        *ins = (bld_instr){0};
    }
    mar_map_release(&names);
    return r;
}

int bld_dockerfile_parse(const char *text, size_t len, const char *filename, bld_dockerfile **ret,
                         mar_err **err)
{
    bld__pctx P = {.file = filename ? filename : "Dockerfile", .esc = '\\'};
    if (check_text(&P, text, len, err) < 0) {
        return -MAR_EUSAGE;
    }
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3;
        len -= 3;
    }
    _cleanup_dockerfile_ bld_dockerfile *df = mar_xcalloc(1, sizeof(*df));
    df->filename = mar_xstrdup(P.file);
    df->escape = '\\';
    instrs in = {0};
    int r = read_lines(&P, text, len, df, &in, err);
    if (r == 0) {
        P.esc = df->escape;
        r = assemble(&P, &in, df, err);
    }
    for (size_t i = 0; i < in.n; i++) {
        bld__instr_release(&in.v[i]);
    }
    free(in.v);
    if (r < 0) {
        return -MAR_EUSAGE;
    }
    *ret = TAKE_PTR(df);
    return 0;
}

bld_dockerfile *bld_dockerfile_free(bld_dockerfile *df)
{
    if (!df) {
        return NULL;
    }
    free(df->filename);
    free(df->syntax);
    free(df->check);
    for (size_t i = 0; i < df->n_args; i++) {
        bld__instr_release(&df->args[i]);
    }
    free(df->args);
    for (size_t i = 0; i < df->n_stages; i++) {
        bld_stage *st = &df->stages[i];
        for (size_t j = 0; j < st->n_instrs; j++) {
            bld__instr_release(&st->instrs[j]);
        }
        free(st->instrs);
        free(st->name);
    }
    free(df->stages);
    mar_strv_release(&df->warnings);
    free(df);
    return NULL;
}

/* ---- Dump ------------------------------------------------------------------------------------ */

static void quote(mar_buf *b, const char *s)
{
    mar_buf_xputs(b, "\"");
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            mar_buf_xprintf(b, "\\%c", c);
        } else if (c == '\n') {
            mar_buf_xputs(b, "\\n");
        } else if (c == '\t') {
            mar_buf_xputs(b, "\\t");
        } else if (c == '\r') {
            mar_buf_xputs(b, "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            mar_buf_xprintf(b, "\\x%02x", c);
        } else {
            mar_buf_xappend(b, s, 1);
        }
    }
    mar_buf_xputs(b, "\"");
}

static void dump_mount(mar_buf *b, const bld_mount *m)
{
    static const char *const types[] = {"bind", "cache", "tmpfs", "secret"};
    static const char *const sharing[] = {"", "shared", "private", "locked"};
    mar_buf_xprintf(b, " mount(%s", types[m->type]);
    const char *names[] = {"from", "source", "target", "id", "env"};
    const char *vals[] = {m->from, m->source, m->target, m->id, m->env};
    for (size_t i = 0; i < 5; i++) {
        if (vals[i]) {
            mar_buf_xprintf(b, " %s=", names[i]);
            quote(b, vals[i]);
        }
    }
    mar_buf_xputs(b, m->readonly ? " ro" : " rw");
    if (m->required) {
        mar_buf_xputs(b, " required");
    }
    if (m->sharing) {
        mar_buf_xprintf(b, " sharing=%s", sharing[m->sharing]);
    }
    const char *inames[] = {"size", "mode", "uid", "gid"};
    int64_t ivals[] = {m->size, m->mode, m->uid, m->gid};
    for (size_t i = 0; i < 4; i++) {
        if (ivals[i] >= 0) {
            mar_buf_xprintf(b, i == 1 ? " %s=0%llo" : " %s=%lld", inames[i], (long long)ivals[i]);
        }
    }
    if (m->deferred) {
        mar_buf_xputs(b, " deferred");
    }
    mar_buf_xputs(b, ")");
}

static void dump_instr(mar_buf *b, const bld_instr *ins)
{
    mar_buf_xprintf(b, "%s", bld_kind_name(ins->kind));
    for (size_t i = 0; i < ins->n_flags; i++) {
        mar_buf_xprintf(b, " --%s", ins->flags[i].name);
        if (ins->flags[i].value) {
            mar_buf_xputs(b, "=");
            quote(b, ins->flags[i].value);
        }
    }
    if (ins->json) {
        mar_buf_xputs(b, " [");
        for (size_t i = 0; i < ins->args.n; i++) {
            mar_buf_xputs(b, i ? ", " : "");
            quote(b, ins->args.v[i]);
        }
        mar_buf_xputs(b, "]");
    } else {
        for (size_t i = 0; i < ins->args.n; i++) {
            mar_buf_xputs(b, " ");
            quote(b, ins->args.v[i]);
        }
    }
    for (size_t i = 0; i < ins->n_kvs; i++) {
        mar_buf_xputs(b, " ");
        quote(b, ins->kvs[i].key);
        if (ins->kvs[i].value) {
            mar_buf_xputs(b, "=");
            quote(b, ins->kvs[i].value);
        }
    }
    if (ins->stage_name) {
        mar_buf_xprintf(b, " AS %s", ins->stage_name);
    }
    if (ins->dest) {
        mar_buf_xputs(b, " ->");
        quote(b, ins->dest);
    }
    for (size_t i = 0; i < ins->n_heredocs; i++) {
        const bld_heredoc *h = &ins->heredocs[i];
        mar_buf_xputs(b, " <<");
        if (h->fd) {
            mar_buf_xprintf(b, "%u:", h->fd);
        }
        mar_buf_xprintf(b, "%s%s", h->chomp ? "-" : "", h->expand ? "" : "'");
        quote(b, h->name);
        mar_buf_xputs(b, "=");
        quote(b, h->content);
    }
    for (size_t i = 0; i < ins->n_mounts; i++) {
        dump_mount(b, &ins->mounts[i]);
    }
    if (ins->network) {
        mar_buf_xprintf(b, " network=%s", ins->network == BLD_NET_NONE ? "none" : "host");
    }
    const bld_health *h = &ins->health;
    if (ins->kind == BLD_HEALTHCHECK) {
        if (h->none) {
            mar_buf_xputs(b, " none");
        } else {
            mar_buf_xprintf(b,
                            " interval=%lld timeout=%lld start-period=%lld start-interval=%lld "
                            "retries=%d",
                            (long long)h->interval_ns, (long long)h->timeout_ns,
                            (long long)h->start_period_ns, (long long)h->start_interval_ns,
                            h->retries);
        }
    }
    if (ins->kind == BLD_ADD && ins->unpack >= 0) {
        mar_buf_xprintf(b, " unpack=%s", ins->unpack ? "true" : "false");
    }
    if (ins->trigger) {
        mar_buf_xputs(b, " {");
        dump_instr(b, ins->trigger);
        mar_buf_xputs(b, "}");
    }
}

char *bld_dockerfile_dump(const bld_dockerfile *df)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    if (df->syntax) {
        mar_buf_xputs(&b, "# syntax=");
        quote(&b, df->syntax);
        mar_buf_xputs(&b, "\n");
    }
    if (df->check) {
        mar_buf_xputs(&b, "# check=");
        quote(&b, df->check);
        mar_buf_xputs(&b, "\n");
    }
    if (df->escape != '\\') {
        mar_buf_xprintf(&b, "# escape=%c\n", df->escape);
    }
    for (size_t i = 0; i < df->n_args; i++) {
        mar_buf_xprintf(&b, "%u ", df->args[i].line);
        dump_instr(&b, &df->args[i]);
        mar_buf_xputs(&b, "\n");
    }
    for (size_t s = 0; s < df->n_stages; s++) {
        const bld_stage *st = &df->stages[s];
        for (size_t i = 0; i < st->n_instrs; i++) {
            const bld_instr *ins = &st->instrs[i];
            if (ins->end_line != ins->line) {
                mar_buf_xprintf(&b, "%u-%u ", ins->line, ins->end_line);
            } else {
                mar_buf_xprintf(&b, "%u ", ins->line);
            }
            dump_instr(&b, ins);
            mar_buf_xputs(&b, "\n");
        }
    }
    return mar_buf_detach(&b, NULL);
}
