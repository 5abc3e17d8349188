/* Shared between the files of the Dockerfile frontend (builder/dockerfile*.c, expand.c,
 * pattern.c, mount.c, ignore.c, scope.c, stages.c). */
#ifndef MAR_BUILDER_DOCKERFILE_INTERNAL_H
#define MAR_BUILDER_DOCKERFILE_INTERNAL_H

#include "builder/builder.h"

/* Decodes the UTF-8 character at s (n > 0 bytes available). An invalid or truncated sequence
 * decodes as U+FFFD of length 1, as Go's decoder does. */
uint32_t bld__utf8(const char *s, size_t n, size_t *ret_len);
/* Go's unicode.IsSpace. */
bool bld__is_space(uint32_t r);
/* The length of the Go whitespace at the start of s[0..n), and the length of s[0..n) without
 * the Go whitespace at its end (strings.TrimSpace in two halves). */
size_t bld__ltrim(const char *s, size_t n);
size_t bld__rtrim(const char *s, size_t n);
/* Go's regexp `[\t\v\f\r ]`: the separators of Dockerfile argument lists. */
static inline bool bld__is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* A lexer flag beyond BLD_X_*: names end at any non-ASCII character instead of being refused
 * (used where the parser only looks for heredoc words and a name's end cannot matter). */
#define BLD__X_LAX_NAMES (1u << 8)

/* ---- Shell patterns of ${v#p}, ${v%p}, ${v/p/r} (pattern.c) ---------------------------------- */

typedef struct bld__pattern bld__pattern;
/* Compiles a pattern word: '*' any run, '?' any one character (neither matches a newline),
 * '\' before '*', '?' or '\' makes it literal, before '}' or '/' it is dropped, before anything
 * else it is an error. Returns NULL with *ret_why set on error. */
bld__pattern *bld__pattern_new(const char *word, size_t len, const char **ret_why);
void bld__pattern_free(bld__pattern *p);
/* ${v#p} ${v##p} ${v%p} ${v%%p}: the value with the shortest (longest) matching prefix or
 * suffix removed. Returns a pointer and length into value. */
void bld__pattern_trim(const bld__pattern *p, const char *value, size_t n, bool suffix,
                       bool longest, size_t *ret_off, size_t *ret_len);
/* ${v/p/r} ${v//p/r} with Go's ReplaceAllString loop (leftmost-longest matches, an empty match
 * right after a match is not replaced). Appends to out; returns -E2BIG over the cap. */
int bld__pattern_replace(const bld__pattern *p, const char *value, size_t n, const char *repl,
                         size_t repl_len, bool all, mar_buf *out);

/* ---- Dockerfile argument lists (dockerfile-words.c) ------------------------------------------ */

/* Splits like BuildKit's parseWords (ENV, LABEL, ARG): whitespace-separated words, quotes and
 * escapes kept but respected. Appends to *ret. */
void bld__split_words(const char *s, char escape, mar_strv *ret);
/* Splits on runs of bld__is_blank (FROM, EXPOSE, COPY/ADD/VOLUME shell form). */
void bld__split_blank(const char *s, mar_strv *ret);
/* Parses `s` as a JSON array of strings, as Go's encoding/json would. Returns 1 (ret filled),
 * 0 when s is not a JSON array (the caller falls back to the shell form), -1 when it is a JSON
 * array with a non-string element or a NUL character (*ret_why says which). */
int bld__json_strings(const char *s, mar_strv *ret, const char **ret_why);

/* ---- Parsing (dockerfile.c, dockerfile-node.c, dockerfile-instr.c) --------------------------- */

typedef struct bld__pctx {
    const char *file;
    char esc;
} bld__pctx;

/* Sets *err to "FILE:LINE: message" (MAR_EUSAGE) and returns -MAR_EUSAGE. */
int bld__fail(const bld__pctx *P, unsigned line, mar_err **err, const char *fmt, ...)
        MAR_PRINTF(4, 5);

/* One instruction as BuildKit's line parsers see it (its parser.Node): the instruction word,
 * the flags, and the arguments split the way this instruction splits them. */
typedef struct bld__node {
    bld_kind kind;
    char *cmd;             /* as written */
    mar_strv flags;        /* "--name[=value]", quotes and escapes removed */
    char *rest;            /* the arguments as written, trimmed */
    bool json;             /* the arguments are a JSON array */
    mar_strv args;         /* split per instruction; ENV and LABEL: key, value pairs */
    struct bld__node *sub; /* ONBUILD */
} bld__node;

/* BuildKit's newNodeFromLine. Errors: an unknown instruction, ONBUILD ONBUILD, a malformed
 * JSON array or ENV/LABEL pair. */
MAR_MUST_USE int bld__node_parse(const bld__pctx *P, unsigned line, const char *text,
                                 bld__node *ret, mar_err **err);
void bld__node_release(bld__node *n);
/* RUN, COPY and ADD in shell form (also wrapped in ONBUILD) read heredocs. */
bool bld__node_heredocs(const bld__node *n);

/* The instruction-level checks (BuildKit instructions/parse.go) and mar's own refusals. Takes
 * the heredocs (read after the line). ret is released with bld__instr_release. */
MAR_MUST_USE int bld__instr_build(const bld__pctx *P, const bld__node *n, unsigned line,
                                  const char *original, bld_heredoc *docs, size_t n_docs,
                                  bld_instr *ret, mar_err **err);
void bld__instr_release(bld_instr *ins);
void bld__heredoc_release(bld_heredoc *h);
/* BuildKit's ParseHeredoc: is `word` a heredoc word ([N]<<[-]NAME, NAME possibly quoted)?
 * Returns 1 and fills name, expand, chomp and fd of *ret; 0 when it is not; -1 when its quotes
 * do not close (*ret_why). */
int bld__heredoc_word(const char *word, bld_heredoc *ret, const char **ret_why);

/* ---- Scopes (scope.c) ------------------------------------------------------------------------ */

/* True when a global-scope variable's value varies with the target platform (the TARGET* ARGs
 * and global ARGs whose default uses them, unless a --build-arg fixed the value). */
bool bld__scope_target_dep(const bld_scope *global, const char *name);

/* ---- .dockerignore patterns (ignore.c) ------------------------------------------------------- */

/* Checks one pattern as bld_ignore_from_patterns would; *ret_why on failure. */
bool bld__ignore_pattern_ok(const char *pattern, const char **ret_why);

#endif
