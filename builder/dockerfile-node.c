/* From a logical line to a node: the instruction word, its flags and its arguments split the way
 * that instruction splits them (BuildKit frontend/dockerfile/parser/parser.go newNodeFromLine,
 * split_command.go and line_parsers.go). */
#include "builder/dockerfile-internal.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    bld_kind kind;
} kinds[] = {
        {"from", BLD_FROM},
        {"run", BLD_RUN},
        {"cmd", BLD_CMD},
        {"entrypoint", BLD_ENTRYPOINT},
        {"env", BLD_ENV},
        {"arg", BLD_ARG},
        {"label", BLD_LABEL},
        {"expose", BLD_EXPOSE},
        {"volume", BLD_VOLUME},
        {"user", BLD_USER},
        {"workdir", BLD_WORKDIR},
        {"stopsignal", BLD_STOPSIGNAL},
        {"healthcheck", BLD_HEALTHCHECK},
        {"shell", BLD_SHELL},
        {"onbuild", BLD_ONBUILD},
        {"maintainer", BLD_MAINTAINER},
        {"copy", BLD_COPY},
        {"add", BLD_ADD},
};

const char *bld_kind_name(bld_kind kind)
{
    static const char *const names[] = {
            [BLD_FROM] = "FROM",
            [BLD_RUN] = "RUN",
            [BLD_CMD] = "CMD",
            [BLD_ENTRYPOINT] = "ENTRYPOINT",
            [BLD_ENV] = "ENV",
            [BLD_ARG] = "ARG",
            [BLD_LABEL] = "LABEL",
            [BLD_EXPOSE] = "EXPOSE",
            [BLD_VOLUME] = "VOLUME",
            [BLD_USER] = "USER",
            [BLD_WORKDIR] = "WORKDIR",
            [BLD_STOPSIGNAL] = "STOPSIGNAL",
            [BLD_HEALTHCHECK] = "HEALTHCHECK",
            [BLD_SHELL] = "SHELL",
            [BLD_ONBUILD] = "ONBUILD",
            [BLD_MAINTAINER] = "MAINTAINER",
            [BLD_COPY] = "COPY",
            [BLD_ADD] = "ADD",
    };
    if ((size_t)kind >= MAR_ARRAY_SIZE(names) || !names[kind]) {
        return "?";
    }
    return names[kind];
}

int bld__fail(const bld__pctx *P, unsigned line, mar_err **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mar_xvasprintf(fmt, ap);
    va_end(ap);
    if (line) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: %s", P->file, line, msg);
    }
    return mar_err_set(err, MAR_EUSAGE, 0, "%s: %s", P->file, msg);
}

/* strings.TrimSpace: Go whitespace at both ends. Returns a new string. */
static char *trim_space(const char *s, size_t n)
{
    size_t a = bld__ltrim(s, n);
    return mar_xstrndup(s + a, bld__rtrim(s + a, n - a));
}

/* BuildKit's extractBuilderFlags: leading words that start with "--" are flags (quotes and
 * escapes inside them are resolved); a lone "--" ends the flags. Returns where the arguments
 * start. */
static const char *extract_flags(const char *s, char escape, mar_strv *flags)
{
    enum { SPACES, WORD, QUOTE } phase = SPACES;
    size_t n = strlen(s), k = 1;
    char quote = 0;
    bool blank_ok = false;
    _cleanup_buf_ mar_buf w = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t pos = 0; pos <= n; pos += k) {
        uint32_t r = pos < n ? bld__utf8(s + pos, n - pos, &k) : 0;
        if (phase == SPACES) {
            if (pos == n) {
                break;
            }
            if (bld__is_space(r)) {
                continue;
            }
            if (s[pos] != '-' || s[pos + 1] != '-') {
                return s + pos;
            }
            phase = WORD;
        }
        if (pos == n) {
            if (!(w.len == 2 && memcmp(w.data, "--", 2) == 0) && (blank_ok || w.len)) {
                mar_strv_push_take(flags, mar_buf_detach(&w, NULL));
            }
            break;
        }
        if (phase == WORD) {
            if (bld__is_space(r)) {
                phase = SPACES;
                if (w.len == 2 && memcmp(w.data, "--", 2) == 0) {
                    return s + pos;
                }
                if (blank_ok || w.len) {
                    mar_strv_push_take(flags, mar_buf_detach(&w, NULL));
                }
                blank_ok = false;
                continue;
            }
            if (r == '\'' || r == '"') {
                quote = (char)r;
                blank_ok = true;
                phase = QUOTE;
                continue;
            }
            if (r == (unsigned char)escape) {
                if (pos + 1 == n) {
                    continue;
                }
                pos++;
                bld__utf8(s + pos, n - pos, &k);
            }
            mar_buf_xappend(&w, s + pos, k);
            continue;
        }
        if (r == (unsigned char)quote) {
            phase = WORD;
            continue;
        }
        if (r == (unsigned char)escape) {
            if (pos + 1 == n) {
                phase = WORD;
                continue;
            }
            pos++;
            bld__utf8(s + pos, n - pos, &k);
        }
        mar_buf_xappend(&w, s + pos, k);
    }
    return s + n;
}

static bool ascii_space(char c)
{
    return c && (unsigned char)c < 0x80 && bld__is_space((unsigned char)c);
}

/* JSON or the shell form (RUN CMD ENTRYPOINT SHELL: one string). */
MAR_MUST_USE static int maybe_json(const bld__pctx *P, unsigned line, bld__node *n, bool to_list,
                                   mar_err **err)
{
    const char *why = NULL;
    int r = bld__json_strings(n->rest, &n->args, &why);
    if (r < 0) {
        return bld__fail(P, line, err, "%s: %s", bld_kind_name(n->kind), why);
    }
    if (r > 0) {
        n->json = true;
    } else if (to_list) {
        bld__split_blank(n->rest, &n->args);
    } else if (*n->rest) {
        mar_strv_push(&n->args, n->rest);
    }
    return 0;
}

/* ENV and LABEL: `KEY value` (one pair, the value is the rest of the line) or `KEY=value ...`,
 * told apart by whether the first word holds '='. */
MAR_MUST_USE static int name_val(const bld__pctx *P, unsigned line, bld__node *n, mar_err **err)
{
    _cleanup_strv_ mar_strv words = MAR_STRV_INIT;
    bld__split_words(n->rest, P->esc, &words);
    if (!words.n) {
        return 0;
    }
    if (!strchr(words.v[0], '=')) {
        size_t k = 0;
        while (n->rest[k] && !bld__is_blank(n->rest[k])) {
            k++;
        }
        const char *v = n->rest + k;
        while (bld__is_blank(*v)) {
            v++;
        }
        if (!n->rest[k]) {
            return bld__fail(P, line, err, "%s must have two arguments", bld_kind_name(n->kind));
        }
        mar_strv_push_take(&n->args, mar_xstrndup(n->rest, k));
        mar_strv_push(&n->args, v);
        return 0;
    }
    for (size_t i = 0; i < words.n; i++) {
        char *eq = strchr(words.v[i], '=');
        if (!eq) {
            return bld__fail(P, line, err,
                             "syntax error: cannot find '=' in '%s' (must be name=value)",
                             words.v[i]);
        }
        mar_strv_push_take(&n->args, mar_xstrndup(words.v[i], (size_t)(eq - words.v[i])));
        mar_strv_push(&n->args, eq + 1);
    }
    return 0;
}

MAR_MUST_USE static int node_parse(const bld__pctx *P, unsigned line, const char *text,
                                   bld__node *n, bool nested, mar_err **err);

int bld__node_parse(const bld__pctx *P, unsigned line, const char *text, bld__node *ret,
                    mar_err **err)
{
    return node_parse(P, line, text, ret, false, err);
}

MAR_MUST_USE static int node_parse(const bld__pctx *P, unsigned line, const char *text,
                                   bld__node *n, bool nested, mar_err **err)
{
    *n = (bld__node){.flags = MAR_STRV_INIT, .args = MAR_STRV_INIT};
    _cleanup_free_ char *t = trim_space(text, strlen(text));
    size_t k = 0;
    while (t[k] && !bld__is_blank(t[k])) {
        k++;
    }
    n->cmd = mar_xstrndup(t, k);
    const char *args = t + k;
    while (bld__is_blank(*args)) {
        args++;
    }
    args = extract_flags(args, P->esc, &n->flags);
    n->rest = trim_space(args, strlen(args));
    for (size_t i = 0; i < MAR_ARRAY_SIZE(kinds); i++) {
        if (strcasecmp(n->cmd, kinds[i].name) == 0) {
            n->kind = kinds[i].kind;
        }
    }
    if (!n->kind) {
        return bld__fail(P, line, err, "unknown instruction '%s'", n->cmd);
    }
    switch (n->kind) {
    case BLD_ADD:
    case BLD_COPY:
    case BLD_VOLUME:
        return maybe_json(P, line, n, true, err);
    case BLD_CMD:
    case BLD_ENTRYPOINT:
    case BLD_RUN:
    case BLD_SHELL:
        return *n->rest ? maybe_json(P, line, n, false, err) : 0;
    case BLD_ARG:
        bld__split_words(n->rest, P->esc, &n->args);
        return 0;
    case BLD_ENV:
    case BLD_LABEL:
        return name_val(P, line, n, err);
    case BLD_EXPOSE:
    case BLD_FROM:
        bld__split_blank(n->rest, &n->args);
        return 0;
    case BLD_HEALTHCHECK: {
        /* The type word, then a command in either form. */
        size_t sep = 0;
        while (n->rest[sep] && !ascii_space(n->rest[sep])) {
            sep++;
        }
        if (!sep) {
            return 0;
        }
        mar_strv_push_take(&n->args, mar_xstrndup(n->rest, sep));
        const char *cmd = n->rest + sep;
        while (ascii_space(*cmd)) {
            cmd++;
        }
        if (!*cmd) {
            return 0;
        }
        const char *why = NULL;
        int r = bld__json_strings(cmd, &n->args, &why);
        if (r < 0) {
            return bld__fail(P, line, err, "HEALTHCHECK: %s", why);
        }
        n->json = r > 0;
        if (!r) {
            mar_strv_push(&n->args, cmd);
        }
        return 0;
    }
    case BLD_MAINTAINER:
    case BLD_STOPSIGNAL:
    case BLD_USER:
    case BLD_WORKDIR:
        if (*n->rest) {
            mar_strv_push(&n->args, n->rest);
        }
        return 0;
    case BLD_ONBUILD:
        if (!*n->rest) {
            return 0;
        }
        if (nested) {
            return bld__fail(P, line, err, "chaining ONBUILD via 'ONBUILD ONBUILD' is not allowed");
        }
        n->sub = mar_xcalloc(1, sizeof(*n->sub));
        return node_parse(P, line, n->rest, n->sub, true, err);
    }
    return 0;
}

void bld__node_release(bld__node *n)
{
    free(n->cmd);
    free(n->rest);
    mar_strv_release(&n->flags);
    mar_strv_release(&n->args);
    if (n->sub) {
        bld__node_release(n->sub);
        free(n->sub);
    }
    *n = (bld__node){0};
}

bool bld__node_heredocs(const bld__node *n)
{
    if (n->kind == BLD_ONBUILD && n->sub) {
        n = n->sub;
    }
    return (n->kind == BLD_RUN || n->kind == BLD_COPY || n->kind == BLD_ADD) && !n->json;
}
