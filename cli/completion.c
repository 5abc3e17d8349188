/* Shell completions for bash, zsh and fish, written from the command and option tables of cmd.c
 * so that they list exactly what mar parses: `mar completion bash|zsh|fish` (a hidden verb; the
 * build runs it and installs the result). An option's metavariable says how its value completes:
 * FILE and SOCKET complete files, DIR directories, a|b|c those words; anything else is free text.
 * Before the verb only --help and --version are offered (cmd_main accepts a few global options
 * there, and all of them after the verb, where they are offered). */
#include "cli-internal.h"

#include <string.h>

typedef enum { VAL_NONE, VAL_FREE, VAL_WORDS, VAL_FILE, VAL_DIR } val_kind;

static val_kind value_kind(const cmd_opt *o)
{
    if (o->kind == CMD_OPT_FLAG) {
        return VAL_NONE;
    }
    const char *a = o->arg ? o->arg : "";
    if (strcmp(a, "FILE") == 0 || strcmp(a, "SOCKET") == 0) {
        return VAL_FILE;
    }
    if (strcmp(a, "DIR") == 0) {
        return VAL_DIR;
    }
    if (strchr(a, '|') && strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_-|") == strlen(a)) {
        return VAL_WORDS;
    }
    return VAL_FREE;
}

/* The words of a metavariable "a|b|c", space-separated. Returns: new string. */
static char *value_words(const cmd_opt *o)
{
    char *w = mar_xstrdup(o->arg);
    for (char *p = w; *p; p++) {
        if (*p == '|') {
            *p = ' ';
        }
    }
    return w;
}

/* "vm create" -> length of "vm" (its noun); 0 for a verb of one word. */
static size_t noun_len(const char *name)
{
    const char *sp = strchr(name, ' ');
    return sp ? (size_t)(sp - name) : 0;
}

/* The first-level words in table order: verbs, and each noun once. Returns their count. */
static size_t top_words(const cmd_def *cmds, size_t n, const char **ret_name, size_t *ret_len)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = noun_len(cmds[i].name);
        if (!l) {
            l = strlen(cmds[i].name);
        }
        bool seen = false;
        for (size_t j = 0; j < k; j++) {
            seen = seen || (ret_len[j] == l && strncmp(ret_name[j], cmds[i].name, l) == 0);
        }
        if (!seen) {
            ret_name[k] = cmds[i].name;
            ret_len[k++] = l;
        }
    }
    return k;
}

/* The verbs of a noun, space-separated ("create start stop"). Returns: new string. */
static char *noun_verbs(const cmd_def *cmds, size_t n, const char *noun, size_t l)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < n; i++) {
        if (noun_len(cmds[i].name) == l && strncmp(cmds[i].name, noun, l) == 0) {
            mar_buf_xprintf(&b, "%s%s", b.len ? " " : "", cmds[i].name + l + 1);
        }
    }
    return mar_buf_detach(&b, NULL);
}

/* A first-level word's description: a verb's summary, or a noun's verbs ("vm: create start").
 * Returns: new string. */
static char *top_summary(const cmd_def *cmds, size_t n, const char *word, size_t l)
{
    if (word[l] == ' ') {
        _cleanup_free_ char *verbs = noun_verbs(cmds, n, word, l);
        return mar_xasprintf("%.*s: %s", (int)l, word, verbs);
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cmds[i].name, word) == 0) {
            return mar_xstrdup(cmds[i].summary);
        }
    }
    return mar_xstrdup("");
}

/* Writes s with every character of `special` preceded by esc, and ' as quote_as. */
static void put_escaped(FILE *out, const char *s, const char *special, const char *quote_as)
{
    for (; *s; s++) {
        if (*s == '\'') {
            fputs(quote_as, out);
        } else {
            if (strchr(special, *s)) {
                fputc('\\', out);
            }
            fputc(*s, out);
        }
    }
}

/* ---- bash ----------------------------------------------------------------------------------- */

static void bash_opts(FILE *out, const cmd_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *eq = opts[i].kind == CMD_OPT_FLAG ? "" : "=";
        fprintf(out, " --%s%s", opts[i].name, eq);
        if (opts[i].short_name) {
            fprintf(out, " -%c%s", opts[i].short_name, eq);
        }
    }
}

static void bash_vals(FILE *out, const char *verb, const cmd_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *words = NULL;
        const char *v = NULL;
        switch (value_kind(&opts[i])) {
        case VAL_WORDS:
            v = words = value_words(&opts[i]);
            break;
        case VAL_FILE:
            v = "<";
            break;
        case VAL_DIR:
            v = "/";
            break;
        default:
            continue;
        }
        fprintf(out, "    ['%s%s--%s']='%s%s'\n", verb, *verb ? " " : "", opts[i].name,
                value_kind(&opts[i]) == VAL_WORDS ? "@" : "", v);
        if (opts[i].short_name) {
            fprintf(out, "    ['%s%s-%c']='%s%s'\n", verb, *verb ? " " : "", opts[i].short_name,
                    value_kind(&opts[i]) == VAL_WORDS ? "@" : "", v);
        }
    }
}

static const char bash_body[] =
        "_mar()\n"
        "{\n"
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
        "    local verb= noun= w i opts=\" $_mar_globals \"\n"
        "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
        "        w=${COMP_WORDS[i]}\n"
        "        if [[ $w == = ]]; then\n"
        "            ((i++))\n"
        "            continue\n"
        "        fi\n"
        "        if [[ $w == -* ]]; then\n"
        "            # An option that takes a value takes the next word too (or '=' and the\n"
        "            # word after it, as readline splits --opt=value).\n"
        "            if [[ $w != *=* && $opts == *\" $w= \"* && ${COMP_WORDS[i+1]} != = ]]; then\n"
        "                ((i++))\n"
        "            fi\n"
        "            continue\n"
        "        fi\n"
        "        if [[ -z $verb && -z $noun && -n ${_mar_sub[$w]+x} ]]; then\n"
        "            noun=$w\n"
        "        elif [[ -z $verb && -n $noun ]]; then\n"
        "            verb=\"$noun $w\"\n"
        "            noun=\n"
        "        elif [[ -z $verb ]]; then\n"
        "            verb=$w\n"
        "        fi\n"
        "        [[ -n $verb && -n ${_mar_opts[$verb]+x} ]] && opts=\" ${_mar_opts[$verb]} \"\n"
        "    done\n"
        "    # The value of an option: --opt VALUE, --opt=VALUE.\n"
        "    local opt=\n"
        "    if [[ $cur == = ]]; then\n"
        "        opt=$prev\n"
        "        cur=\n"
        "    elif [[ $prev == = ]]; then\n"
        "        opt=${COMP_WORDS[COMP_CWORD-2]}\n"
        "    elif [[ $prev == -* && $opts == *\" $prev= \"* ]]; then\n"
        "        opt=$prev\n"
        "    fi\n"
        "    if [[ -n $opt ]]; then\n"
        "        local v=${_mar_vals[\"$verb $opt\"]-${_mar_vals[$opt]-}}\n"
        "        case $v in\n"
        "        @*) COMPREPLY=($(compgen -W \"${v#@}\" -- \"$cur\")) ;;\n"
        "        \\<) compopt -o filenames; COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
        "        /) compopt -o filenames; COMPREPLY=($(compgen -d -- \"$cur\")) ;;\n"
        "        *) compopt +o default; COMPREPLY=() ;;\n"
        "        esac\n"
        "        return 0\n"
        "    fi\n"
        "    if [[ -n $noun ]]; then\n"
        "        COMPREPLY=($(compgen -W \"${_mar_sub[$noun]}\" -- \"$cur\"))\n"
        "    elif [[ -z $verb && $cur == -* ]]; then\n"
        "        COMPREPLY=($(compgen -W '--help --version' -- \"$cur\"))\n"
        "    elif [[ -z $verb ]]; then\n"
        "        COMPREPLY=($(compgen -W \"$_mar_verbs\" -- \"$cur\"))\n"
        "    elif [[ $cur == -* ]]; then\n"
        "        COMPREPLY=($(compgen -W \"${opts//=/}\" -- \"$cur\"))\n"
        "    elif [[ $verb == help ]]; then\n"
        "        COMPREPLY=($(compgen -W \"$_mar_verbs\" -- \"$cur\"))\n"
        "    fi\n"
        "    # Anything else (an image, a path) falls back to file names (-o default).\n"
        "    return 0\n"
        "}\n"
        "complete -o default -F _mar mar\n";

static void write_bash(FILE *out, const cmd_def *cmds, size_t n, const cmd_opt *g, size_t ng)
{
    _cleanup_free_ const char **names = mar_xcalloc(n + 1, sizeof(*names));
    _cleanup_free_ size_t *lens = mar_xcalloc(n + 1, sizeof(*lens));
    size_t nt = top_words(cmds, n, names, lens);
    fputs("# bash completion for mar, written by `mar completion bash` from mar's command and\n"
          "# option tables.\n",
          out);
    fputs("_mar_verbs='", out);
    for (size_t i = 0; i < nt; i++) {
        fprintf(out, "%s%.*s", i ? " " : "", (int)lens[i], names[i]);
    }
    fputs("'\n", out);
    /* declare -g: bash-completion sources this file inside a function. */
    fputs("declare -gA _mar_sub=(\n", out);
    for (size_t i = 0; i < nt; i++) {
        if (names[i][lens[i]] != ' ') {
            continue;
        }
        fprintf(out, "    [%.*s]='", (int)lens[i], names[i]);
        bool first = true;
        for (size_t j = 0; j < n; j++) {
            if (noun_len(cmds[j].name) == lens[i] &&
                strncmp(cmds[j].name, names[i], lens[i]) == 0) {
                fprintf(out, "%s%s", first ? "" : " ", cmds[j].name + lens[i] + 1);
                first = false;
            }
        }
        fputs("'\n", out);
    }
    fputs(")\n", out);
    fputs("# Options of each verb with the global ones; a trailing = marks those taking a value.\n",
          out);
    fputs("_mar_globals='", out);
    bash_opts(out, g, ng);
    fputs(" '\n", out);
    fputs("declare -gA _mar_opts=(\n", out);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "    ['%s']='", cmds[i].name);
        bash_opts(out, cmds[i].opts, cmds[i].n_opts);
        bash_opts(out, g, ng);
        fputs(" '\n", out);
    }
    fputs(")\n", out);
    fputs("# How a value completes: @ a word list, < files, / directories; free text otherwise.\n",
          out);
    fputs("declare -gA _mar_vals=(\n", out);
    bash_vals(out, "", g, ng);
    for (size_t i = 0; i < n; i++) {
        bash_vals(out, cmds[i].name, cmds[i].opts, cmds[i].n_opts);
    }
    fputs(")\n", out);
    fputs(bash_body, out);
}

/* ---- zsh ------------------------------------------------------------------------------------ */

static void zsh_opt(FILE *out, const cmd_opt *o, bool is_short)
{
    val_kind k = value_kind(o);
    fputs("      '", out);
    if (o->kind == CMD_OPT_LIST) {
        fputc('*', out);
    }
    if (is_short) {
        fprintf(out, "-%c%s", o->short_name, k == VAL_NONE ? "" : "+");
    } else {
        fprintf(out, "--%s%s", o->name, k == VAL_NONE ? "" : "=");
    }
    fputc('[', out);
    put_escaped(out, o->help, "[]\\", "'\\''");
    fputc(']', out);
    if (k != VAL_NONE) {
        fputc(':', out);
        put_escaped(out, o->arg, ":\\", "'\\''");
        fputc(':', out);
        _cleanup_free_ char *words = k == VAL_WORDS ? value_words(o) : NULL;
        switch (k) {
        case VAL_WORDS:
            fprintf(out, "(%s)", words);
            break;
        case VAL_FILE:
            fputs("_files", out);
            break;
        case VAL_DIR:
            fputs("_files -/", out);
            break;
        default:
            fputc(' ', out);
            break;
        }
    }
    fputs("' \\\n", out);
}

static void zsh_opts(FILE *out, const cmd_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        zsh_opt(out, &opts[i], false);
        if (opts[i].short_name) {
            zsh_opt(out, &opts[i], true);
        }
    }
}

static void zsh_describe(FILE *out, const char *word, size_t l, const char *summary)
{
    fprintf(out, "    '%.*s:", (int)l, word);
    put_escaped(out, summary, "", "'\\''");
    fputs("'\n", out);
}

static void write_zsh(FILE *out, const cmd_def *cmds, size_t n, const cmd_opt *g, size_t ng)
{
    _cleanup_free_ const char **names = mar_xcalloc(n + 1, sizeof(*names));
    _cleanup_free_ size_t *lens = mar_xcalloc(n + 1, sizeof(*lens));
    size_t nt = top_words(cmds, n, names, lens);
    fputs("#compdef mar\n"
          "# zsh completion for mar, written by `mar completion zsh` from mar's command and "
          "option\n"
          "# tables.\n\n",
          out);
    fputs("_mar_verb() {\n  case $1 in\n", out);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "  ('%s')\n    _arguments -s -S \\\n", cmds[i].name);
        zsh_opts(out, cmds[i].opts, cmds[i].n_opts);
        zsh_opts(out, g, ng);
        if (strcmp(cmds[i].name, "help") == 0) {
            fputs("      '*:verb:_mar_verbs'\n    ;;\n", out);
        } else {
            fputs("      '*:argument:_files'\n    ;;\n", out);
        }
    }
    fputs("  esac\n}\n\n", out);
    fputs("_mar_verbs() {\n  local -a verbs\n  verbs=(\n", out);
    for (size_t i = 0; i < nt; i++) {
        _cleanup_free_ char *summary = top_summary(cmds, n, names[i], lens[i]);
        zsh_describe(out, names[i], lens[i], summary);
    }
    fputs("  )\n  _describe -t verbs 'mar verb' verbs\n}\n\n", out);
    for (size_t i = 0; i < nt; i++) {
        if (names[i][lens[i]] != ' ') {
            continue;
        }
        fprintf(out, "_mar_%.*s() {\n  local -a verbs\n  verbs=(\n", (int)lens[i], names[i]);
        for (size_t j = 0; j < n; j++) {
            if (noun_len(cmds[j].name) == lens[i] &&
                strncmp(cmds[j].name, names[i], lens[i]) == 0) {
                const char *sub = cmds[j].name + lens[i] + 1;
                zsh_describe(out, sub, strlen(sub), cmds[j].summary);
            }
        }
        fprintf(out, "  )\n  _describe -t verbs 'mar %.*s verb' verbs\n}\n\n", (int)lens[i],
                names[i]);
    }
    fputs("_mar() {\n"
          "  local curcontext=$curcontext state line\n"
          "  _arguments -C \\\n"
          "    '(- *)'{-h,--help}'[show this help]' \\\n"
          "    '(- *)--version[show the version]' \\\n"
          "    '1:verb:_mar_verbs' \\\n"
          "    '*::argument:->args'\n"
          "  [[ $state == args ]] || return\n"
          "  case $words[1] in\n",
          out);
    for (size_t i = 0; i < nt; i++) {
        if (names[i][lens[i]] != ' ') {
            continue;
        }
        fprintf(out,
                "  (%.*s)\n"
                "    if (( CURRENT == 2 )); then\n"
                "      _mar_%.*s\n"
                "    else\n"
                "      local verb=\"$words[1] $words[2]\"\n"
                "      shift words\n"
                "      (( CURRENT-- ))\n"
                "      _mar_verb $verb\n"
                "    fi\n"
                "    ;;\n",
                (int)lens[i], names[i], (int)lens[i], names[i]);
    }
    fputs("  (*)\n    _mar_verb $words[1]\n    ;;\n  esac\n}\n\n_mar \"$@\"\n", out);
}

/* ---- fish ----------------------------------------------------------------------------------- */

static void fish_str(FILE *out, const char *s)
{
    fputc('\'', out);
    put_escaped(out, s, "\\", "\\'");
    fputc('\'', out);
}

static void fish_opt(FILE *out, const char *cond, const cmd_opt *o)
{
    fputs("complete -c mar", out);
    if (cond) {
        fputs(" -n ", out);
        fish_str(out, cond);
    }
    if (o->short_name) {
        fprintf(out, " -s %c", o->short_name);
    }
    fprintf(out, " -l %s", o->name);
    _cleanup_free_ char *words = value_kind(o) == VAL_WORDS ? value_words(o) : NULL;
    switch (value_kind(o)) {
    case VAL_NONE:
        break;
    case VAL_FREE:
        fputs(" -x", out);
        break;
    case VAL_WORDS:
        fprintf(out, " -x -a '%s'", words);
        break;
    case VAL_FILE:
        fputs(" -r -F", out);
        break;
    case VAL_DIR:
        fputs(" -x -a '(__fish_complete_directories (commandline -ct))'", out);
        break;
    }
    fputs(" -d ", out);
    fish_str(out, o->help);
    fputc('\n', out);
}

static void write_fish(FILE *out, const cmd_def *cmds, size_t n, const cmd_opt *g, size_t ng)
{
    _cleanup_free_ const char **names = mar_xcalloc(n + 1, sizeof(*names));
    _cleanup_free_ size_t *lens = mar_xcalloc(n + 1, sizeof(*lens));
    size_t nt = top_words(cmds, n, names, lens);
    fputs("# fish completion for mar, written by `mar completion fish` from mar's command and\n"
          "# option tables.\n",
          out);
    mar_buf all = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < nt; i++) {
        mar_buf_xprintf(&all, "%s%.*s", i ? " " : "", (int)lens[i], names[i]);
    }
    fputs("complete -c mar -n __fish_use_subcommand -f -l help -s h -d 'show this help'\n", out);
    fputs("complete -c mar -n __fish_use_subcommand -f -l version -d 'show the version'\n", out);
    for (size_t i = 0; i < nt; i++) {
        _cleanup_free_ char *summary = top_summary(cmds, n, names[i], lens[i]);
        fprintf(out, "complete -c mar -n __fish_use_subcommand -f -a %.*s -d ", (int)lens[i],
                names[i]);
        fish_str(out, summary);
        fputc('\n', out);
    }
    /* Global options apply after every verb. */
    for (size_t i = 0; i < ng; i++) {
        fish_opt(out, "not __fish_use_subcommand", &g[i]);
    }
    for (size_t i = 0; i < n; i++) {
        const cmd_def *d = &cmds[i];
        _cleanup_free_ char *cond = NULL;
        size_t l = noun_len(d->name);
        if (l) {
            /* The noun's verbs, then each verb's options once it is given. */
            _cleanup_free_ char *subs = noun_verbs(cmds, n, d->name, l);
            _cleanup_free_ char *offer = mar_xasprintf(
                    "__fish_seen_subcommand_from %.*s; and not __fish_seen_subcommand_from %s",
                    (int)l, d->name, subs);
            fputs("complete -c mar -n ", out);
            fish_str(out, offer);
            fprintf(out, " -f -a %s -d ", d->name + l + 1);
            fish_str(out, d->summary);
            fputc('\n', out);
            cond = mar_xasprintf(
                    "__fish_seen_subcommand_from %.*s; and __fish_seen_subcommand_from %s", (int)l,
                    d->name, d->name + l + 1);
        } else {
            cond = mar_xasprintf("__fish_seen_subcommand_from %s", d->name);
        }
        for (size_t k = 0; k < d->n_opts; k++) {
            fish_opt(out, cond, &d->opts[k]);
        }
        if (strcmp(d->name, "help") == 0) {
            fputs("complete -c mar -n ", out);
            fish_str(out, cond);
            fprintf(out, " -f -a '%s'\n", all.data);
        }
    }
    mar_buf_release(&all);
}

/* ---- the verb ------------------------------------------------------------------------------- */

int cmd_completion_write(const char *shell, FILE *out, mar_err **err)
{
    size_t n, ng;
    const cmd_def *cmds = cmd_commands(&n);
    const cmd_opt *g = cmd_global_opts(&ng);
    if (strcmp(shell, "bash") == 0) {
        write_bash(out, cmds, n, g, ng);
    } else if (strcmp(shell, "zsh") == 0) {
        write_zsh(out, cmds, n, g, ng);
    } else if (strcmp(shell, "fish") == 0) {
        write_fish(out, cmds, n, g, ng);
    } else {
        return mar_err_set(err, MAR_EUSAGE, 0, "no completion for the shell '%s' (bash, zsh, fish)",
                           shell);
    }
    return 0;
}

int cmd_completion(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mar completion bash|zsh|fish\n");
        return MAR_EUSAGE;
    }
    mar_err *err = NULL;
    if (cmd_completion_write(argv[1], stdout, &err) < 0) {
        return cmd_fail(err);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mar: cannot write the completion script\n");
        return MAR_EIO;
    }
    return 0;
}
