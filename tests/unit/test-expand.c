/* Word expansion (builder/expand.c, pattern.c): BuildKit's shell lexer cases (shell/envVarTest,
 * wordsTest and lex_test.go of moby/buildkit, taken as facts: inputs and expected results) and
 * mar's own refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "builder/builder.h"
#include "tbuf.h"

typedef struct env {
    const char *const *kv; /* "K=V", NULL-terminated */
    const char *unknown;   /* a name that reads as BLD_VAR_UNKNOWN, or NULL */
    char seen[256];        /* names looked up, ' '-separated */
} env;

static bld_var_state lookup(const char *name, const char **ret, void *ud)
{
    env *e = ud;
    if (strlen(e->seen) + strlen(name) + 2 < sizeof(e->seen)) {
        strcat(e->seen, name);
        strcat(e->seen, " ");
    }
    if (e->unknown && strcmp(name, e->unknown) == 0) {
        return BLD_VAR_UNKNOWN;
    }
    const char *hit = NULL;
    for (size_t i = 0; e->kv && e->kv[i]; i++) {
        size_t n = strlen(name);
        if (strncmp(e->kv[i], name, n) == 0 && e->kv[i][n] == '=') {
            hit = e->kv[i] + n + 1; /* the last one wins */
        }
    }
    if (!hit) {
        return BLD_VAR_UNSET;
    }
    *ret = hit;
    return BLD_VAR_SET;
}

/* Expands `in`; want NULL means an error is expected. Returns 1 on a mismatch. */
static int check(const char *in, const char *want, env *e, char esc, unsigned flags)
{
    char *out = NULL;
    mar_err *err = NULL;
    int rc = bld_expand_word(in, esc, flags, lookup, e, &out, NULL, &err);
    int bad = 0;
    if (want && (rc < 0 || strcmp(out, want) != 0)) {
        print_error("'%s': want '%s', got %s\n", in, want, rc < 0 ? err->msg : out);
        bad = 1;
    } else if (!want && rc == 0) {
        print_error("'%s': want an error, got '%s'\n", in, out);
        bad = 1;
    } else if (!want && (err->code != MAR_EUSAGE || !strstr(err->msg, "cannot expand"))) {
        print_error("'%s': unexpected error %d %s\n", in, err->code, err->msg);
        bad = 1;
    }
    free(out);
    mar_err_free(err);
    return bad;
}

/* shell/envVarTest with PWD=/home, SHELL=bash, KOREAN=한국어, NULL= (the Unix lines). */
static const struct {
    const char *in, *want;
} env_cases[] = {
        {"hello", "hello"},
        {"he'll'o", "hello"},
        {"he'llo", NULL},
        {"he\\'llo", "he'llo"},
        {"he\\\\'llo", NULL},
        {"abc\\tdef", "abctdef"},
        {"\"abc\\tdef\"", "abc\\tdef"},
        {"\"abc\\\\tdef\"", "abc\\tdef"},
        {"'abc\\tdef'", "abc\\tdef"},
        {"hello\\", "hello"},
        {"hello\\\\", "hello\\"},
        {"\"hello", NULL},
        {"\"hello\\\"", NULL},
        {"\"hel'lo\"", "hel'lo"},
        {"'hello", NULL},
        {"'hello\\'", "hello\\"},
        {"'hello\\there'", "hello\\there"},
        {"'hello\\\\there'", "hello\\\\there"},
        {"\"''\"", "''"},
        {"$.", "$."},
        {"he$1x", "hex"},
        {"he$.x", "he$.x"},
        {"he$pwd.", "he."},
        {"he$PWD", "he/home"},
        {"he\\$PWD", "he$PWD"},
        {"he\\\\$PWD", "he\\/home"},
        {"\"he\\$PWD\"", "he$PWD"},
        {"\"he\\\\$PWD\"", "he\\/home"},
        {"\\${}", "${}"},
        {"\\${}aaa", "${}aaa"},
        {"he\\${}", "he${}"},
        {"he\\${}xx", "he${}xx"},
        {"${}", NULL},
        {"${}aaa", NULL},
        {"he${}", NULL},
        {"he${}xx", NULL},
        {"he${hi}", "he"},
        {"he${hi}xx", "hexx"},
        {"he${PWD}", "he/home"},
        {"he${.}", NULL},
        {"he${XXX:-000}xx", "he000xx"},
        {"he${PWD:-000}xx", "he/homexx"},
        {"he${XXX:-$PWD}xx", "he/homexx"},
        {"he${XXX:-${PWD:-yyy}}xx", "he/homexx"},
        {"he${XXX:-${YYY:-yyy}}xx", "heyyyxx"},
        {"he${XXX:YYY}", NULL},
        {"he${XXX?}", NULL},
        {"he${XXX:?}", NULL},
        {"he${PWD?}", "he/home"},
        {"he${PWD:?}", "he/home"},
        {"he${NULL?}", "he"},
        {"he${NULL:?}", NULL},
        {"he${XXX:+${PWD}}xx", "hexx"},
        {"he${PWD:+${XXX}}xx", "hexx"},
        {"he${PWD:+${SHELL}}xx", "hebashxx"},
        {"he${XXX:+000}xx", "hexx"},
        {"he${PWD:+000}xx", "he000xx"},
        {"'he${XX}'", "he${XX}"},
        {"\"he${PWD}\"", "he/home"},
        {"\"he'$PWD'\"", "he'/home'"},
        {"\"$PWD\"", "/home"},
        {"'$PWD'", "$PWD"},
        {"'\\$PWD'", "\\$PWD"},
        {"'\"hello\"'", "\"hello\""},
        {"he\\$PWD", "he$PWD"},
        {"\"he\\$PWD\"", "he$PWD"},
        {"'he\\$PWD'", "he\\$PWD"},
        {"he${PWD", NULL},
        {"he${PWD:=000}xx", NULL},
        {"he${PWD:+${PWD}:}xx", "he/home:xx"},
        {"he${XXX:-\\$PWD:}xx", "he$PWD:xx"},
        {"he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"},
        {"안녕하세요", "안녕하세요"},
        {"안'녕'하세요", "안녕하세요"},
        {"안'녕하세요", NULL},
        {"안녕\\'하세요", "안녕'하세요"},
        {"안\\\\'녕하세요", NULL},
        {"안녕\\t하세요", "안녕t하세요"},
        {"\"안녕\\t하세요\"", "안녕\\t하세요"},
        {"'안녕\\t하세요", NULL},
        {"안녕하세요\\", "안녕하세요"},
        {"안녕하세요\\\\", "안녕하세요\\"},
        {"\"안녕하세요", NULL},
        {"\"안녕하세요\\\"", NULL},
        {"\"안녕'하세요\"", "안녕'하세요"},
        {"'안녕하세요", NULL},
        {"'안녕하세요\\'", "안녕하세요\\"},
        {"안녕$1x", "안녕x"},
        {"안녕$.x", "안녕$.x"},
        {"안녕$pwd.", "안녕."},
        {"안녕$PWD", "안녕/home"},
        {"안녕\\$PWD", "안녕$PWD"},
        {"안녕\\\\$PWD", "안녕\\/home"},
        {"안녕\\${}", "안녕${}"},
        {"안녕\\${}xx", "안녕${}xx"},
        {"안녕${}", NULL},
        {"안녕${}xx", NULL},
        {"안녕${hi}", "안녕"},
        {"안녕${hi}xx", "안녕xx"},
        {"안녕${PWD}", "안녕/home"},
        {"안녕${.}", NULL},
        {"안녕${XXX:-000}xx", "안녕000xx"},
        {"안녕${PWD:-000}xx", "안녕/homexx"},
        {"안녕${XXX:-$PWD}xx", "안녕/homexx"},
        {"안녕${XXX:-${PWD:-yyy}}xx", "안녕/homexx"},
        {"안녕${XXX:-${YYY:-yyy}}xx", "안녕yyyxx"},
        {"안녕${XXX:YYY}", NULL},
        {"안녕${XXX:+${PWD}}xx", "안녕xx"},
        {"안녕${PWD:+${XXX}}xx", "안녕xx"},
        {"안녕${PWD:+${SHELL}}xx", "안녕bashxx"},
        {"안녕${XXX:+000}xx", "안녕xx"},
        {"안녕${PWD:+000}xx", "안녕000xx"},
        {"'안녕${XX}'", "안녕${XX}"},
        {"\"안녕${PWD}\"", "안녕/home"},
        {"\"안녕'$PWD'\"", "안녕'/home'"},
        {"'\"안녕\"'", "\"안녕\""},
        {"안녕\\$PWD", "안녕$PWD"},
        {"\"안녕\\$PWD\"", "안녕$PWD"},
        {"'안녕\\$PWD'", "안녕\\$PWD"},
        {"안녕${PWD", NULL},
        {"안녕${PWD:=000}xx", NULL},
        {"안녕${PWD:+${PWD}:}xx", "안녕/home:xx"},
        {"안녕${XXX:-\\$PWD:}xx", "안녕$PWD:xx"},
        {"안녕${XXX:-\\${PWD}z}xx", "안녕${PWDz}xx"},
        {"$KOREAN", "한국어"},
        {"안녕$KOREAN", "안녕한국어"},
        {"${{aaa}", NULL},
        {"${aaa}}", "}"},
        {"${aaa", NULL},
        {"${{aaa:-bbb}", NULL},
        {"${aaa:-bbb}}", "bbb}"},
        {"${aaa:-bbb", NULL},
        {"${aaa:-bbb}", "bbb"},
        {"${aaa:-${bbb:-ccc}}", "ccc"},
        {"${aaa:-bbb ${foo}", NULL},
        {"${aaa:-bbb {foo}", "bbb {foo"},
        {"${:}", NULL},
        {"${:-bbb}", NULL},
        {"${:+bbb}", NULL},
        {"$1", ""},
        {"${1}", ""},
        {"${1:+bbb}", ""},
        {"${1:-bbb}", "bbb"},
        {"$2", ""},
        {"${2}", ""},
        {"${2:+bbb}", ""},
        {"${2:-bbb}", "bbb"},
        {"$3", ""},
        {"${3}", ""},
        {"${3:+bbb}", ""},
        {"${3:-bbb}", "bbb"},
        {"$4", ""},
        {"${4}", ""},
        {"${4:+bbb}", ""},
        {"${4:-bbb}", "bbb"},
        {"$5", ""},
        {"${5}", ""},
        {"${5:+bbb}", ""},
        {"${5:-bbb}", "bbb"},
        {"$6", ""},
        {"${6}", ""},
        {"${6:+bbb}", ""},
        {"${6:-bbb}", "bbb"},
        {"$7", ""},
        {"${7}", ""},
        {"${7:+bbb}", ""},
        {"${7:-bbb}", "bbb"},
        {"$8", ""},
        {"${8}", ""},
        {"${8:+bbb}", ""},
        {"${8:-bbb}", "bbb"},
        {"$9", ""},
        {"${9}", ""},
        {"${9:+bbb}", ""},
        {"${9:-bbb}", "bbb"},
        {"$999", ""},
        {"${999}", ""},
        {"${999:+bbb}", ""},
        {"${999:-bbb}", "bbb"},
        {"$999aaa", "aaa"},
        {"${999}aaa", "aaa"},
        {"${999:+bbb}aaa", "aaa"},
        {"${999:-bbb}aaa", "bbbaaa"},
        {"$001", ""},
        {"${001}", ""},
        {"${001:+bbb}", ""},
        {"${001:-bbb}", "bbb"},
        {"$001aaa", "aaa"},
        {"${001}aaa", "aaa"},
        {"${001:+bbb}aaa", "aaa"},
        {"${001:-bbb}aaa", "bbbaaa"},
        {"$@", ""},
        {"${@}", ""},
        {"${@:+bbb}", ""},
        {"${@:-bbb}", "bbb"},
        {"$@@@", "@@"},
        {"$@aaa", "aaa"},
        {"${@}aaa", "aaa"},
        {"${@:+bbb}aaa", "aaa"},
        {"${@:-bbb}aaa", "bbbaaa"},
        {"$*", ""},
        {"${*}", ""},
        {"${*:+bbb}", ""},
        {"${*:-bbb}", "bbb"},
        {"$#", ""},
        {"${#}", ""},
        {"${#:+bbb}", ""},
        {"${#:-bbb}", "bbb"},
        {"$?", ""},
        {"${?}", ""},
        {"${?:+bbb}", ""},
        {"${?:-bbb}", "bbb"},
        {"$-", ""},
        {"${-}", ""},
        {"${-:+bbb}", ""},
        {"${-:-bbb}", "bbb"},
        {"$$", ""},
        {"${$}", ""},
        {"${$:+bbb}", ""},
        {"${$:-bbb}", "bbb"},
        {"$!", ""},
        {"${!}", ""},
        {"${!:+bbb}", ""},
        {"${!:-bbb}", "bbb"},
        {"$0", ""},
        {"${0}", ""},
        {"${0:+bbb}", ""},
        {"${0:-bbb}", "bbb"},
};

static void test_buildkit_env_cases(void **state)
{
    (void)state;
    static const char *const kv[] = {"PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL=", NULL};
    env e = {.kv = kv};
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(env_cases); i++) {
        bad += check(env_cases[i].in, env_cases[i].want, &e, '\\', 0);
    }
    assert_int_equal(bad, 0);
}

/* shell/wordsTest: ProcessWords, with variables set as the file goes. */
enum { ENV, WORDS };
static const struct {
    int op;
    const char *a, *b; /* ENV: key, value; WORDS: input, ','-joined words or "error" */
} words_cases[] = {
        {WORDS, "hello", "hello"},
        {WORDS, "hello${hi}bye", "hellobye"},
        {ENV, "hi", "hi"},
        {WORDS, "hello${hi}bye", "hellohibye"},
        {ENV, "space", "abc  def"},
        {WORDS, "hello${space}bye", "helloabc,defbye"},
        {WORDS, "hello\"${space}\"bye", "helloabc  defbye"},
        {WORDS, "hello \"${space}\"bye", "hello,abc  defbye"},
        {ENV, "leading", "  ab c"},
        {WORDS, "hello${leading}def", "hello,ab,cdef"},
        {WORDS, "hello\"${leading}\" def", "hello  ab c,def"},
        {WORDS, "hello\"${leading}\"", "hello  ab c"},
        {WORDS, "hello${leading}", "hello,ab,c"},
        {ENV, "trailing", "ab c   "},
        {WORDS, "hello${trailing}", "helloab,c"},
        {WORDS, "hello${trailing}d", "helloab,c,d"},
        {WORDS, "hello\"${trailing}\"d", "helloab c   d"},
        {WORDS, "hel\"lo${trailing}\"", "helloab c   "},
        {WORDS, "hello\" there  \"", "hello there  "},
        {WORDS, "hello there", "hello,there"},
        {WORDS, "hello\\ there", "hello there"},
        {WORDS, "hello\" there", "error"},
        {WORDS, "hello\\\" there", "hello\",there"},
        {WORDS, "hello\"\\\\there\"", "hello\\there"},
        {WORDS, "hello\"\\there\"", "hello\\there"},
        {WORDS, "hello'\\\\there'", "hello\\\\there"},
        {WORDS, "hello'\\there'", "hello\\there"},
        {WORDS, "hello'$there'", "hello$there"},
};

static void test_buildkit_words_cases(void **state)
{
    (void)state;
    const char *kv[16] = {NULL};
    size_t nkv = 0;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(words_cases); i++) {
        if (words_cases[i].op == ENV) {
            kv[nkv++] = mar_xasprintf("%s=%s", words_cases[i].a, words_cases[i].b);
            continue;
        }
        env e = {.kv = kv};
        mar_strv w = MAR_STRV_INIT;
        mar_err *err = NULL;
        char got[256] = "";
        if (bld_expand_words(words_cases[i].a, '\\', 0, lookup, &e, &w, NULL, &err) < 0) {
            strcpy(got, "error");
            mar_err_free(err);
        }
        for (size_t j = 0; j < w.n; j++) {
            strcat(got, j ? "," : "");
            strcat(got, w.v[j]);
        }
        if (strcmp(got, words_cases[i].b) != 0) {
            print_error("'%s': want '%s', got '%s'\n", words_cases[i].a, words_cases[i].b, got);
            bad++;
        }
        mar_strv_release(&w);
    }
    for (size_t i = 0; i < nkv; i++) {
        free((char *)kv[i]);
    }
    assert_int_equal(bad, 0);
}

/* lex_test.go TestProcessWithMatches: modifiers, patterns and replacements. The looked-up names
 * are checked too (BuildKit's matched plus unmatched sets). */
static const struct {
    const char *in;
    const char *kv[4];
    const char *want; /* NULL: error */
    const char *seen; /* names looked up, sorted, ' '-separated; NULL: not checked */
} match_cases[] = {
        {"x", {"DUMMY=dummy"}, "x", ""},
        {"x ${UNUSED}", {"DUMMY=dummy"}, "x ", "UNUSED"},
        {"x ${FOO}", {"FOO=y"}, "x y", "FOO"},
        {"${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO=xxx", "BAR="}, "xxx  ccc", "BAR BAZ FOO"},
        {"${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO=xxx", "BAR="}, "xxx bbb ccc", "BAR BAZ FOO"},
        {"${FOO:-}", {"FOO=xxx", "BAR="}, "xxx", "FOO"},
        {"${FOO:-}", {NULL}, "", "FOO"},
        {"${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO=xxx", "BAR="}, "aaa bbb ", "BAR BAZ FOO"},
        {"${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO=xxx", "BAR="}, "aaa  ", "BAR BAZ FOO"},
        {"${FOO?aaa}", {"FOO=xxx", "BAR="}, "xxx", "FOO"},
        {"${BAR?bbb}", {"FOO=xxx", "BAR="}, "", "BAR"},
        {"${BAZ?ccc}", {"FOO=xxx", "BAR="}, NULL, NULL},
        {"${FOO:?aaa}", {"FOO=xxx", "BAR="}, "xxx", "FOO"},
        {"${BAR:?bbb}", {"FOO=xxx", "BAR="}, NULL, NULL},
        {"${BAZ:?ccc}", {"FOO=xxx", "BAR="}, NULL, NULL},
        {"${BAZ:?}", {"FOO=xxx", "BAR="}, NULL, NULL},
        {"${FOO=aaa}", {"FOO=xxx", "BAR="}, NULL, NULL},
        {"${FOO=:aaa}", {"FOO=xxx", "BAR="}, NULL, NULL},
        {"${FOO=}", {NULL}, NULL, NULL},
        {"${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO=()[]{}^$.*?|\\x"}, "x", "FOO"},
        {"${FOO%%\\**}", {"FOO=xx**"}, "xx", "FOO"},
        {"${FOO#*x*y}", {"FOO=xxyy"}, "y", "FOO"},
        {"${FOO#*}", {"FOO=xxyy"}, "xxyy", "FOO"},
        {"${FOO#$BAR}", {"FOO=xxyy", "BAR=x"}, "xyy", "BAR FOO"},
        {"${FOO#$BAR}", {"FOO=xxyy", "BAR="}, "xxyy", "BAR FOO"},
        {"${FOO#}", {"FOO=xxyy"}, "xxyy", "FOO"},
        {"${FOO##*x}", {"FOO=xxyy"}, "yy", "FOO"},
        {"${FOO##}", {"FOO=xxyy"}, "xxyy", "FOO"},
        {"${FOO#?\\?}", {"FOO=???y"}, "?y", "FOO"},
        {"${ABC:-.}${FOO%x}${ABC:-.}", {"FOO=xxyy"}, ".xxyy.", "ABC FOO"},
        {"${FOO%%\\**\\*}", {"FOO=a***yy*"}, "a", "FOO"},
        {"${FOO%}", {"FOO=xxyy"}, "xxyy", "FOO"},
        {"${FOO%%$BAR}", {"FOO=xxyy", "BAR="}, "xxyy", "BAR FOO"},
        {"${FOO:#}", {NULL}, NULL, NULL},
        {"${FOO:##}", {NULL}, NULL, NULL},
        {"${FOO:%}", {NULL}, NULL, NULL},
        {"${FOO:%%}", {NULL}, NULL, NULL},
        {"${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
         {"FOO=/foo*/*/*.txt", "NEEDLE=\\*/"},
         "/foo.*/*.txt - /foo..*.txt",
         "FOO NEEDLE"},
        {"${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
         {"FOO=/tmp/tmp/bar.txt", "NEEDLE=/tmp"},
         "/tmp/bar.txt - /bar.txt",
         "FOO NEEDLE"},
        {"${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
         {"FOO=/a/foo/b/c.txt", "NEEDLE=/?/", "REPLACEMENT=/"},
         "/foo/b/c.txt - /foo/c.txt",
         "FOO NEEDLE REPLACEMENT"},
        {"${FOO/$NEEDLE/$REPLACEMENT}",
         {"FOO=http://google.de", "NEEDLE=http://", "REPLACEMENT=https://"},
         "https://google.de",
         "FOO NEEDLE REPLACEMENT"},
        {"${FOO//\\//\\/}", {"FOO=/tmp/foo.txt"}, "\\/tmp\\/foo.txt", "FOO"},
        {"${FOO/$BAR/ww}", {"FOO=xxyy", "BAR="}, "wwxxyy", "BAR FOO"},
        {"${FOO//ww}", {"FOO=xxyy"}, NULL, NULL},
        {"${FOO//}", {"FOO=xxyy"}, NULL, NULL},
        {"${FOO///}", {"FOO=xxyy"}, "xxyy", "FOO"},
        {"${FOO///}", {NULL}, "", "FOO"},
        /* The reference's own examples ("Environment replacement"). */
        {"${str#f*b}", {"str=foobarbaz"}, "arbaz", NULL},
        {"${str##f*b}", {"str=foobarbaz"}, "az", NULL},
        {"${string%b*}", {"string=foobarbaz"}, "foobar", NULL},
        {"${string%%b*}", {"string=foobarbaz"}, "foo", NULL},
        {"${string/ba/fo}", {"string=foobarbaz"}, "fooforbaz", NULL},
        {"${string//ba/fo}", {"string=foobarbaz"}, "fooforfoz", NULL},
        /* Go's ReplaceAll: an empty match right after a match is not replaced. */
        {"${v//x*/-}", {"v=axxbx"}, "a-", NULL},
        {"${v//x?/-}", {"v=axxbxy"}, "a-b-", NULL},
        {"${v//*/-}", {"v=ab"}, "-", NULL},
        {"${v//$E/-}", {"v=ab", "E="}, "-a-b-", NULL},
        /* '*' and '?' do not cross a newline (Go's "."). */
        {"${v#*}", {"v=a\nb"}, "a\nb", NULL},
        {"${v##*}", {"v=a\nb"}, "\nb", NULL},
        {"${v%%?}", {"v=aé"}, "a", NULL},
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sorted_names(const char *seen, char *buf, size_t n)
{
    char tmp[256], *v[32];
    size_t k = 0;
    mar_strlcpy(tmp, seen, sizeof(tmp));
    for (char *p = tmp; *p && k < 32;) {
        v[k++] = p;
        p = strchr(p, ' ');
        *p++ = '\0';
    }
    qsort(v, k, sizeof(char *), cmp_str);
    buf[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        if (i && strcmp(v[i], v[i - 1]) == 0) {
            continue;
        }
        strncat(buf, buf[0] ? " " : "", n - strlen(buf) - 1);
        strncat(buf, v[i], n - strlen(buf) - 1);
    }
}

static void test_buildkit_match_cases(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(match_cases); i++) {
        const char *kv[5] = {match_cases[i].kv[0], match_cases[i].kv[1], match_cases[i].kv[2],
                             match_cases[i].kv[3], NULL};
        env e = {.kv = kv};
        bad += check(match_cases[i].in, match_cases[i].want, &e, '\\', 0);
        char names[256];
        sorted_names(e.seen, names, sizeof(names));
        if (match_cases[i].seen && strcmp(names, match_cases[i].seen) != 0) {
            print_error("'%s': looked up '%s', want '%s'\n", match_cases[i].in, names,
                        match_cases[i].seen);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* lex_test.go TestShellParserMandatoryEnvVars: the message of ${v?msg} and ${v:?msg}. */
static void test_mandatory(void **state)
{
    (void)state;
    static const char *const set[] = {"VAR=plain", "ARG=x", NULL};
    static const char *const empty[] = {"VAR=", "ARG=x", NULL};
    static const char *const unset[] = {"ARG=x", NULL};
    env es = {.kv = set}, ee = {.kv = empty}, eu = {.kv = unset};
    assert_int_equal(check("${VAR:?message here$ARG}", "plain", &es, '\\', 0), 0);
    assert_int_equal(check("${VAR?message here$ARG}", "plain", &es, '\\', 0), 0);
    assert_int_equal(check("${VAR?message here$ARG}", "", &ee, '\\', 0), 0);
    const char *in[] = {"${VAR:?message here$ARG}", "${VAR:?message here$ARG}",
                        "${VAR?message here$ARG}"};
    env *envs[] = {&ee, &eu, &eu};
    for (size_t i = 0; i < 3; i++) {
        char *out = NULL;
        mar_err *err = NULL;
        assert_int_equal(bld_expand_word(in[i], '\\', 0, lookup, envs[i], &out, NULL, &err),
                         -MAR_EUSAGE);
        assert_non_null(strstr(err->msg, "VAR: message herex"));
        mar_err_free(err);
    }
}

/* lex_test.go TestProcessWithMatchesPlatform: the buildkit release file name idiom. */
static void test_platform_idiom(void **state)
{
    (void)state;
    const char *word = "something-${VERSION}.${TARGETOS}-${TARGETARCH}"
                       "${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    static const char *const arm[] = {"VERSION=v1.2.3", "TARGETOS=linux", "TARGETARCH=arm",
                                      "TARGETVARIANT=v7", NULL};
    static const char *const arm64[] = {"VERSION=v1.2.3", "TARGETOS=linux", "TARGETARCH=arm64",
                                        "TARGETVARIANT=", NULL};
    static const char *const unset[] = {"VERSION=v1.2.3", "TARGETOS=linux", "TARGETARCH=arm64",
                                        NULL};
    env a = {.kv = arm}, b = {.kv = arm64}, c = {.kv = unset};
    assert_int_equal(check(word, "something-v1.2.3.linux-arm-v7.tar.gz", &a, '\\', 0), 0);
    assert_int_equal(check(word, "something-v1.2.3.linux-arm64.tar.gz", &b, '\\', 0), 0);
    assert_int_equal(check(word, "something-v1.2.3.linux-arm64.tar.gz", &c, '\\', 0), 0);
}

/* The escape directive's backtick, and the flags of the other BuildKit lexer modes. */
static void test_escape_and_modes(void **state)
{
    (void)state;
    static const char *const kv[] = {"X=1", NULL};
    env e = {.kv = kv};
    int bad = 0;
    bad += check("c:\\dir`$X", "c:\\dir$X", &e, '`', 0);
    bad += check("a` b", "a b", &e, '`', 0);
    bad += check("\"q`\"x\"", "q\"x", &e, '`', 0);
    bad += check("'a b'\"$X\"", "'a b'\"1\"", &e, '\\', BLD_X_RAW_QUOTES);
    bad += check("a\\$X", "a\\$X", &e, '\\', BLD_X_RAW_ESCAPES);
    /* Heredoc bodies: quotes are text, variables still expand. */
    bad += check("echo \"$X\" '$X'\n", "echo \"1\" '1'\n", &e, '\\', BLD_X_NO_QUOTES);
    bad += check("it's $X", "it's 1", &e, '\\', BLD_X_NO_QUOTES);
    assert_int_equal(bad, 0);
}

/* BLD_VAR_UNKNOWN keeps the reference as written and reports it. */
static void test_unknown(void **state)
{
    (void)state;
    static const char *const kv[] = {"TAG=3.20", NULL};
    const struct {
        const char *in, *want;
        bool unresolved;
    } c[] = {
            {"alpine:$TAG", "alpine:3.20", false},
            {"alpine:${VER}", "alpine:${VER}", true},
            {"alpine:$VER-x", "alpine:$VER-x", true},
            {"alpine:${VER:-3}", "alpine:${VER:-3}", true},
            {"a/${VER//./-}", "a/${VER//./-}", true},
            {"${NOPE:-$TAG}", "3.20", false},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(c); i++) {
        env e = {.kv = kv, .unknown = "VER"};
        char *out = NULL;
        bool unresolved = !c[i].unresolved;
        assert_int_equal(bld_expand_word(c[i].in, '\\', 0, lookup, &e, &out, &unresolved, NULL), 0);
        assert_string_equal(out, c[i].want);
        assert_int_equal(unresolved, c[i].unresolved);
        free(out);
    }
}

/* mar's refusals: a name that runs into a non-ASCII character (Go would read Unicode letters
 * as part of the name), nesting beyond the limit, results beyond BLD_CAP_WORD. */
static void test_refusals(void **state)
{
    (void)state;
    static const char *const kv[] = {"SIZE=5", NULL};
    env e = {.kv = kv};
    assert_int_equal(check("Größe $SIZE€", NULL, &e, '\\', 0), 0);
    assert_int_equal(check("${SIZE}€", "5€", &e, '\\', 0), 0);
    assert_int_equal(check("$é", NULL, &e, '\\', 0), 0);
    assert_int_equal(check("\\$é", "$é", &e, '\\', 0), 0);
    assert_int_equal(check("é$SIZE", "é5", &e, '\\', 0), 0);

    mar_buf deep = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (int i = 0; i < 200; i++) {
        T_BUF(mar_buf_puts(&deep, "${A:-"));
    }
    T_BUF(mar_buf_puts(&deep, "x"));
    for (int i = 0; i < 200; i++) {
        T_BUF(mar_buf_puts(&deep, "}"));
    }
    assert_int_equal(check(deep.data, NULL, &e, '\\', 0), 0);
    mar_buf_release(&deep);

    /* 64 KiB referenced 300 times: over 16 MiB. */
    char *big = mar_xmalloc(65537 + 4);
    memcpy(big, "B=", 2);
    memset(big + 2, 'b', 65536);
    big[65538] = '\0';
    const char *bkv[] = {big, NULL};
    env be = {.kv = bkv};
    mar_buf many = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (int i = 0; i < 300; i++) {
        T_BUF(mar_buf_puts(&many, "$B"));
    }
    char *out = NULL;
    mar_err *err = NULL;
    assert_int_equal(bld_expand_word(many.data, '\\', 0, lookup, &be, &out, NULL, &err),
                     -MAR_EUSAGE);
    assert_non_null(strstr(err->msg, "longer than"));
    mar_err_free(err);
    mar_buf_release(&many);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_buildkit_env_cases),
            cmocka_unit_test(test_buildkit_words_cases),
            cmocka_unit_test(test_buildkit_match_cases),
            cmocka_unit_test(test_mandatory),
            cmocka_unit_test(test_platform_idiom),
            cmocka_unit_test(test_escape_and_modes),
            cmocka_unit_test(test_unknown),
            cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
