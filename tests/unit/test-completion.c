/* cli/completion.c: the bash, zsh and fish completions written from the command and option
 * tables. Every first-level word, every verb of a noun and every option of `run` must be in each
 * script; bash's and fish's completion functions are then run for real (fish when it is
 * installed) and must offer exactly the table's verbs, a noun's verbs, run's options and an
 * option's word list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli-internal.h"

static char *script(const char *shell)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    mar_err *e = NULL;
    assert_int_equal(cmd_completion_write(shell, f, &e), 0);
    fclose(f);
    return text;
}

static const cmd_def *find(const char *name)
{
    size_t n;
    const cmd_def *cmds = cmd_commands(&n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cmds[i].name, name) == 0) {
            return &cmds[i];
        }
    }
    fail_msg("no verb '%s' in the table", name);
    return NULL;
}

/* The first-level words (verbs and nouns, once each) and the verbs of noun, space-separated and
 * sorted, straight from the table. */
static void words_from_table(const char *noun, mar_strv *ret)
{
    size_t n;
    const cmd_def *cmds = cmd_commands(&n);
    for (size_t i = 0; i < n; i++) {
        const char *name = cmds[i].name;
        const char *sp = strchr(name, ' ');
        _cleanup_free_ char *w = NULL;
        if (noun) {
            if (!sp || strncmp(name, noun, (size_t)(sp - name)) != 0 ||
                strlen(noun) != (size_t)(sp - name)) {
                continue;
            }
            w = mar_xstrdup(sp + 1);
        } else {
            w = sp ? mar_xstrndup(name, (size_t)(sp - name)) : mar_xstrdup(name);
        }
        if (!mar_strv_contains(ret, w)) {
            mar_strv_push(ret, w);
        }
    }
    mar_strv_sort(ret);
}

/* run's long options and the global ones, sorted. */
static void run_options(mar_strv *ret)
{
    const cmd_def *run = find("run");
    size_t ng;
    const cmd_opt *g = cmd_global_opts(&ng);
    for (size_t i = 0; i < run->n_opts + ng; i++) {
        const cmd_opt *o = i < run->n_opts ? &run->opts[i] : &g[i - run->n_opts];
        _cleanup_free_ char *w = mar_xasprintf("--%s", o->name);
        mar_strv_push(ret, w);
    }
    mar_strv_sort(ret);
}

static void assert_same(const mar_strv *want, mar_strv *got, const char *what)
{
    mar_strv_sort(got);
    bool same = want->n == got->n;
    for (size_t i = 0; same && i < want->n; i++) {
        same = strcmp(want->v[i], got->v[i]) == 0;
    }
    if (!same) {
        for (size_t i = 0; i < want->n; i++) {
            print_error("want %s\n", want->v[i]);
        }
        for (size_t i = 0; i < got->n; i++) {
            print_error("got  %s\n", got->v[i]);
        }
        fail_msg("%s: the completion differs from the table", what);
    }
}

/* True when one line of text contains both a and b. */
static bool line_with(const char *text, const char *a, const char *b)
{
    for (const char *p = strstr(text, a); p; p = strstr(p + 1, a)) {
        const char *start = p;
        while (start > text && start[-1] != '\n') {
            start--;
        }
        size_t len = strcspn(start, "\n");
        _cleanup_free_ char *line = mar_xstrndup(start, len);
        if (strstr(line, b)) {
            return true;
        }
    }
    return false;
}

static void test_scripts_list_the_table(void **state)
{
    (void)state;
    const cmd_def *run = find("run");
    mar_strv top = MAR_STRV_INIT;
    words_from_table(NULL, &top);
    _cleanup_free_ char *bash = script("bash");
    _cleanup_free_ char *zsh = script("zsh");
    _cleanup_free_ char *fish = script("fish");
    /* bash: _mar_verbs='a b c', read as " a b c " */
    const char *bv = strstr(bash, "_mar_verbs='");
    assert_non_null(bv);
    bv += strlen("_mar_verbs='");
    _cleanup_free_ char *verbs = mar_xasprintf(" %.*s ", (int)strcspn(bv, "'"), bv);
    for (size_t i = 0; i < top.n; i++) {
        _cleanup_free_ char *b = mar_xasprintf(" %s ", top.v[i]);
        _cleanup_free_ char *z = mar_xasprintf("    '%s:", top.v[i]);
        _cleanup_free_ char *f = mar_xasprintf(" -a %s ", top.v[i]);
        assert_non_null(strstr(verbs, b));
        assert_non_null(strstr(zsh, z));
        assert_true(line_with(fish, "-n __fish_use_subcommand", f));
    }
    mar_strv_release(&top);
    for (size_t i = 0; i < run->n_opts; i++) {
        const cmd_opt *o = &run->opts[i];
        _cleanup_free_ char *b = mar_xasprintf(" --%s", o->name);
        /* zsh: '--name or, repeatable, '*--name */
        _cleanup_free_ char *z =
                mar_xasprintf("%s--%s", o->kind == CMD_OPT_LIST ? "'*" : "'", o->name);
        _cleanup_free_ char *f = mar_xasprintf(" -l %s ", o->name);
        if (!line_with(bash, "['run']=", b) || !strstr(zsh, z) ||
            !line_with(fish, "'__fish_seen_subcommand_from run'", f)) {
            fail_msg("no option '--%s' for run in every script", o->name);
        }
    }
    mar_err *e = NULL;
    assert_int_equal(cmd_completion_write("tcsh", stdout, &e), -MAR_EUSAGE);
    assert_non_null(strstr(e->msg, "tcsh"));
    mar_err_free(e);
}

/* Runs a shell command over the bash script, one completion per output line. */
static void run_shell(char *const argv[], mar_strv *ret)
{
    mar_proc_result r;
    mar_err *e = NULL;
    if (mar_proc_run(argv, NULL, 0, 1u << 20, 1u << 20, 30000, &r, &e) < 0) {
        fail_msg("%s", e->msg);
    }
    if (r.status != 0) {
        fail_msg("%s exited %d: %s", argv[0], r.status, r.errout.data);
    }
    _cleanup_free_ char *copy = mar_xstrdup(r.out.data);
    for (char *line = copy, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        /* fish prints "word<TAB>description". */
        line[strcspn(line, "\t")] = '\0';
        mar_strv_push(ret, line);
    }
    mar_proc_result_release(&r);
}

static char *write_script(const char *shell)
{
    _cleanup_free_ char *text = script(shell);
    char *path = mar_xstrdup("/tmp/mar-completion-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void bash_complete(const char *path, const char *words, mar_strv *ret)
{
    _cleanup_free_ char *cmd =
            mar_xasprintf("source '%s'; COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                          "_mar 2>/dev/null; printf '%%s\\n' \"${COMPREPLY[@]}\"",
                          path, words);
    char *argv[] = {"bash", "-c", cmd, NULL};
    run_shell(argv, ret);
}

static void test_bash_completes_from_the_table(void **state)
{
    (void)state;
    _cleanup_free_ char *path = write_script("bash");
    mar_strv want = MAR_STRV_INIT, got = MAR_STRV_INIT;

    words_from_table(NULL, &want);
    bash_complete(path, "mar ''", &got);
    assert_same(&want, &got, "mar <TAB>");
    mar_strv_release(&want);
    mar_strv_release(&got);

    words_from_table("vm", &want);
    bash_complete(path, "mar --debug vm ''", &got);
    assert_same(&want, &got, "mar vm <TAB>");
    mar_strv_release(&want);
    mar_strv_release(&got);

    run_options(&want);
    bash_complete(path, "mar run -p linux/arm64 --", &got);
    assert_same(&want, &got, "mar run --<TAB>");
    mar_strv_release(&want);
    mar_strv_release(&got);

    /* A metavariable a|b is the value's word list, after a space or an '='. */
    mar_strv_push(&want, "qemu");
    mar_strv_push(&want, "rosetta");
    bash_complete(path, "mar binfmt install --emulator ''", &got);
    assert_same(&want, &got, "--emulator <TAB>");
    mar_strv_release(&got);
    bash_complete(path, "mar binfmt install --emulator = ''", &got);
    assert_same(&want, &got, "--emulator=<TAB>");
    mar_strv_release(&want);
    mar_strv_release(&got);
    unlink(path);
}

static void test_fish_completes_from_the_table(void **state)
{
    (void)state;
    if (access("/usr/bin/fish", X_OK) != 0) {
        skip();
    }
    _cleanup_free_ char *path = write_script("fish");
    mar_strv want = MAR_STRV_INIT, got = MAR_STRV_INIT;
    _cleanup_free_ char *top = mar_xasprintf("source '%s'; complete -C 'mar '", path);
    char *argv[] = {"fish", "--no-config", "-c", top, NULL};
    words_from_table(NULL, &want);
    run_shell(argv, &got);
    assert_same(&want, &got, "fish: mar <TAB>");
    mar_strv_release(&want);
    mar_strv_release(&got);

    _cleanup_free_ char *vm = mar_xasprintf("source '%s'; complete -C 'mar vm '", path);
    argv[3] = vm;
    words_from_table("vm", &want);
    run_shell(argv, &got);
    assert_same(&want, &got, "fish: mar vm <TAB>");
    mar_strv_release(&want);
    mar_strv_release(&got);

    _cleanup_free_ char *run = mar_xasprintf("source '%s'; complete -C 'mar run --'", path);
    argv[3] = run;
    run_options(&want);
    run_shell(argv, &got);
    assert_same(&want, &got, "fish: mar run --<TAB>");
    mar_strv_release(&want);
    mar_strv_release(&got);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_scripts_list_the_table),
            cmocka_unit_test(test_bash_completes_from_the_table),
            cmocka_unit_test(test_fish_completes_from_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
