/* The Dockerfile parser (builder/dockerfile*.c): lines, directives, continuations, the two
 * argument forms, ENV/LABEL/ARG, FROM, and whole files (testdata/dockerfile/<case>/). Many inputs
 * and results are facts from moby/buildkit's parser tests (parser/testfiles, parser_test.go,
 * instructions/parse_test.go); the expected text is bld_dockerfile_dump's. Flags and the other
 * instruction checks are in test-dockerfile-instr.c. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "builder/builder.h"
#include "dfcheck.h"

/* ---- Lines, comments, continuations ---------------------------------------------------------- */

static const pcase line_cases[] = {
        {"comment inside argument", "FROM a\nRUN echo 'we are running some # of cool things'\n",
         "1 FROM \"a\"\n2 RUN \"echo 'we are running some # of cool things'\"\n", NULL},
        {"comment line in a continuation", "FROM a\nRUN echo hello \\\n# comment\nworld\n",
         "1 FROM \"a\"\n2-4 RUN \"echo hello world\"\n", NULL},
        {"leading whitespace", "        # this is a comment-line\n    RUN echo hello\nRUN x\n",
         NULL, "RUN before the first FROM"},
        {"leading whitespace kept in arguments",
         "FROM a\nRUN echo \"\\\n     hello\\\n     world\"\n",
         "1 FROM \"a\"\n2-4 RUN \"echo \\\"     hello     world\\\"\"\n", NULL},
        {"case-insensitive names", "from a AS B\nrUn x\nCoPy --FROM=b a b\n", NULL,
         "unknown flag '--FROM' for COPY"},
        {"case-insensitive names 2", "from a as B\nrUn x\nCoPy --from=b a b\n",
         "1 FROM \"a\" AS b\n2 RUN \"x\"\n3 COPY --from=\"b\" \"a\" ->\"b\"\n", NULL},
        {"CRLF", "FROM a\r\nRUN a \\\r\n b\r\n", "1 FROM \"a\"\n2-3 RUN \"a  b\"\n", NULL},
        {"continuation at end of file", "FROM alpine:3.5\n\nRUN something \\",
         "1 FROM \"alpine:3.5\"\n3 RUN \"something\"\n", NULL},
        {"escaped escape ends no line", "FROM a\nRUN echo \\\\\nRUN b\n",
         "1 FROM \"a\"\n2 RUN \"echo \\\\\\\\\"\n3 RUN \"b\"\n", NULL},
        {"blank after continuation", "FROM a\nRUN a \\   \t\n  b\n",
         "1 FROM \"a\"\n2-3 RUN \"a   b\"\n", NULL},
        {"lone continuation line", "FROM a\nRUN echo hi \\\n \\\n world\n",
         "1 FROM \"a\"\n2-4 RUN \"echo hi   world\"\n", NULL},
        {"byte-order mark", "\xef\xbb\xbf# escape=`\nFROM a\nRUN b `\n c\n",
         "# escape=`\n2 FROM \"a\"\n3-4 RUN \"b  c\"\n", NULL},
        {"no instructions", "# only a comment\n\n", NULL, "Dockerfile: no instructions"},
        {"empty", "", NULL, "no instructions"},
        {"only ARG", "ARG a=1\n", NULL, "no FROM instruction"},
        {"instruction before FROM", "ARG a\nRUN x\nFROM b\n", NULL,
         "Dockerfile:2: RUN before the first FROM"},
        {"unknown instruction", "FROM a\n\nRUNN x\n", NULL,
         "Dockerfile:3: unknown instruction 'RUNN'"},
        {"invalid UTF-8", "FROM a\nRUN \xff\n", NULL, "Dockerfile:2: invalid UTF-8"},
};

static void test_lines(void **state)
{
    (void)state;
    assert_int_equal(run_cases(line_cases, MAR_ARRAY_SIZE(line_cases)), 0);
}

/* parser_test.go TestParseWarnsOnEmptyContinutationLine: two warnings, none for comments. */
static void test_empty_continuation_warnings(void **state)
{
    (void)state;
    const char *in = "\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\n"
                     "RUN something \\\n\n    following \\\n\n    more\n\n"
                     "RUN another \\\n\n    thing\n\n"
                     "RUN non-indented \\\n# this is a comment\n   after-comment\n\n"
                     "RUN indented \\\n    # this is an indented comment\n    comment\n\t";
    bld_dockerfile *df = NULL;
    assert_int_equal(bld_dockerfile_parse(in, strlen(in), "Dockerfile", &df, NULL), 0);
    assert_int_equal(df->warnings.n, 2);
    assert_string_equal(df->warnings.v[0], "Dockerfile:7: empty continuation line");
    assert_string_equal(df->warnings.v[1], "Dockerfile:13: empty continuation line");
    assert_string_equal(df->stages[0].instrs[2].args.v[0], "something     following     more");
    assert_string_equal(df->stages[0].instrs[3].args.v[0], "another     thing");
    assert_string_equal(df->stages[0].instrs[4].args.v[0], "non-indented    after-comment");
    bld_dockerfile_free(df);
}

/* parser_test.go TestParseIncludesLineNumbers over testfile-line/Dockerfile (same shape). */
static void test_line_numbers(void **state)
{
    (void)state;
    const char *in = "# ESCAPE=\\\n\n\n\nFROM brimstone/ubuntu:14.04\n\n\n"
                     "# TORUN -v /var/run/docker.sock:/var/run/docker.sock\n\n\n"
                     "ENV GOPATH \\\n/go\n\n\n\n"
                     "# Install the packages we need, clean up after them and us\n"
                     "RUN apt-get update \\\n\t&& dpkg -l > /tmp/dpkg.clean \\\n\n\n"
                     "    && apt-get --no-install-recommends install -y git \\\n"
                     "    && apt-get clean \\\n    && rm -rf /var/lib/apt/lists \\\n\n"
                     "\t&& go get -v github.com/brimstone/consuldock \\\n"
                     "    && mv $GOPATH/bin/consuldock /usr/local/bin/consuldock \\\n\n"
                     "\t&& dpkg -l > /tmp/dpkg.dirty \\\n\t&& apt-get remove --purge -y x \\\n"
                     "\t&& rm /tmp/dpkg.* \\\n\t&& rm -rf $GOPATH\n\n\n\n\n";
    bld_dockerfile *df = NULL;
    assert_int_equal(bld_dockerfile_parse(in, strlen(in), "Dockerfile", &df, NULL), 0);
    const bld_stage *st = &df->stages[0];
    assert_int_equal(st->n_instrs, 3);
    unsigned want[3][2] = {{5, 5}, {11, 12}, {17, 31}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(st->instrs[i].line, want[i][0]);
        assert_int_equal(st->instrs[i].end_line, want[i][1]);
    }
    bld_dockerfile_free(df);
}

/* ---- Directives ------------------------------------------------------------------------------ */

static const pcase directive_cases[] = {
        {"escape", "# escape=`\nFROM a\nCOPY c:\\x `\n c:\\\n",
         "# escape=`\n2 FROM \"a\"\n3-4 COPY \"c:\\\\x\" ->\"c:\\\\\"\n", NULL},
        {"unknown directive ends them", "#\t  dIrEcTiVe=value\n# EScape = `\nFROM a\n",
         "3 FROM \"a\"\n", NULL},
        {"spacing and case 2", "# EScape = `\n#SYNTAX =docker/dockerfile:1 \nFROM a\n",
         "# syntax=\"docker/dockerfile:1\"\n# escape=`\n3 FROM \"a\"\n", NULL},
        {"check", "# check=skip=JSONArgsRecommended;error=true\nFROM a\n",
         "# check=\"skip=JSONArgsRecommended;error=true\"\n2 FROM \"a\"\n", NULL},
        {"after a comment", "# About my dockerfile\n# escape=`\nFROM a\nRUN a \\\n b\n",
         "3 FROM \"a\"\n4-5 RUN \"a  b\"\n", NULL},
        {"after an unknown directive", "# unknowndirective=value\n# syntax=value\nFROM a\n",
         "3 FROM \"a\"\n", NULL},
        {"after a blank line", "\n# escape=`\nFROM a\n", "3 FROM \"a\"\n", NULL},
        {"after an instruction", "FROM a\n# escape=`\nRUN a \\\n b\n",
         "1 FROM \"a\"\n3-4 RUN \"a  b\"\n", NULL},
        {"twice", "# escape=`\n# escape=\\\nFROM a\n", NULL,
         "Dockerfile:2: only one escape parser directive can be used"},
        {"bad escape", "# escape=x\nFROM a\n", NULL, "Dockerfile:1: invalid escape token 'x'"},
        {"empty value is a comment", "# escape=\nFROM a\n", "2 FROM \"a\"\n", NULL},
        {"blank value", "# syntax=  \nFROM a\n", "# syntax=\" \"\n2 FROM \"a\"\n", NULL},
};

static void test_directives(void **state)
{
    (void)state;
    assert_int_equal(run_cases(directive_cases, MAR_ARRAY_SIZE(directive_cases)), 0);
}

/* ---- Argument forms -------------------------------------------------------------------------- */

static const pcase form_cases[] = {
        /* parser/testfiles/json */
        {"json",
         "FROM a\nCMD []\nCMD [\"\"]\nCMD [\"a\"]\nCMD [\"a\",\"b\"]\nCMD [ \"a\", \"b\" ]\n"
         "CMD [\t\"a\",\t\"b\"\t]\nCMD\t[\t\"a\",\t\"b\"\t]\t\n"
         "CMD [\"abc 123\", \"♥\", \"☃\", \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"]\n",
         "1 FROM \"a\"\n2 CMD []\n3 CMD [\"\"]\n4 CMD [\"a\"]\n5 CMD [\"a\", \"b\"]\n"
         "6 CMD [\"a\", \"b\"]\n7 CMD [\"a\", \"b\"]\n8 CMD [\"a\", \"b\"]\n"
         "9 CMD [\"abc 123\", \"♥\", \"☃\", \"\\\" \\\\ / \\x08 \\x0c \\n \\r \\t\"]\n",
         NULL},
        {"json NUL", "FROM a\nCMD [\"\\u0000\"]\n", NULL, "NUL character"},
        {"json surrogates", "FROM a\nCMD [\"\\ud83d\\ude00\", \"\\ud800x\"]\n",
         "1 FROM \"a\"\n2 CMD [\"😀\", \"\xef\xbf\xbdx\"]\n", NULL},
        {"json with a number", "FROM a\nCMD [\"a\", 1]\n", NULL,
         "arrays must be comprised of strings only"},
        {"json with an object", "FROM a\nRUN [\"a\", {\"b\": [null, true, -1.5e3]}]\n", NULL,
         "arrays must be comprised of strings only"},
        /* jeztah-invalid-json-*: not JSON, so the shell form */
        {"single quotes", "FROM a\nCMD ['echo','single quotes are invalid JSON']\n",
         "1 FROM \"a\"\n2 CMD \"['echo','single quotes are invalid JSON']\"\n", NULL},
        {"unterminated bracket", "FROM a\nCMD [\"echo\", \"look ma, no brackets!\"\n",
         "1 FROM \"a\"\n2 CMD \"[\\\"echo\\\", \\\"look ma, no brackets!\\\"\"\n", NULL},
        {"json inside a string", "FROM a\nCMD \"[\\\"echo\\\", \\\"Phew\\\"]\"\n",
         "1 FROM \"a\"\n2 CMD \"\\\"[\\\\\\\"echo\\\\\\\", \\\\\\\"Phew\\\\\\\"]\\\"\"\n", NULL},
        {"trailing text", "FROM a\nRUN [\"echo\"] && ls\n",
         "1 FROM \"a\"\n2 RUN \"[\\\"echo\\\"] && ls\"\n", NULL},
        {"unescaped backslash", "FROM a\nRUN [\"c:\\windows\\system32\\tasklist.exe\"]\n",
         "1 FROM \"a\"\n2 RUN \"[\\\"c:\\\\windows\\\\system32\\\\tasklist.exe\\\"]\"\n", NULL},
        {"ADD-COPY-with-JSON",
         "FROM\tubuntu:14.04\nCOPY\t.\t/go/src\nADD\t\t[ \"vimrc\", \"/tmp\" ]\n"
         "COPY\t[ \"test file\", \"/tmp\" ]\nADD\t\t[ \"test file\", \"/tmp/test file\" ]\n",
         "1 FROM \"ubuntu:14.04\"\n2 COPY \".\" ->\"/go/src\"\n3 ADD [\"vimrc\"] ->\"/tmp\"\n"
         "4 COPY [\"test file\"] ->\"/tmp\"\n5 ADD [\"test file\"] ->\"/tmp/test file\"\n",
         NULL},
        /* parser/testfiles/escapes */
        {"escapes",
         "FROM ubuntu:14.04\nLABEL maintainer Erik \\\\Hollensbe <erik@hollensbe.org>\\\"\n\n"
         "RUN apt-get \\update && \\\n  apt-get \\\"install znc -y\nADD \\conf\\\\\" /.znc\n",
         "1 FROM \"ubuntu:14.04\"\n2 LABEL \"maintainer\"=\"Erik \\\\\\\\Hollensbe "
         "<erik@hollensbe.org>\\\\\\\"\"\n4-5 RUN \"apt-get \\\\update &&   apt-get "
         "\\\\\\\"install "
         "znc -y\"\n6 ADD \"\\\\conf\\\\\\\\\\\"\" ->\"/.znc\"\n",
         NULL},
        {"SHELL", "FROM a\nSHELL [\"/bin/bash\", \"-c\"]\n",
         "1 FROM \"a\"\n2 SHELL [\"/bin/bash\", \"-c\"]\n", NULL},
        {"SHELL shell form", "FROM a\nSHELL /bin/bash -c\n", NULL,
         "SHELL requires the arguments to be in JSON form"},
        {"SHELL empty", "FROM a\nSHELL []\n", NULL, "SHELL requires at least one argument"},
        {"ENTRYPOINT []", "FROM a\nENTRYPOINT []\n", "1 FROM \"a\"\n2 ENTRYPOINT []\n", NULL},
        {"bare CMD", "FROM a\nCMD\n", NULL, "CMD requires at least one argument"},
        {"bare ENTRYPOINT", "FROM a\nENTRYPOINT\n", NULL,
         "ENTRYPOINT requires at least one argument"},
        {"bare RUN", "FROM a\nRUN\n", NULL, "RUN requires at least one argument"},
        {"VOLUME", "FROM a\nVOLUME /var/log /var/db\nVOLUME [\"/data\", \" /x \"]\n",
         "1 FROM \"a\"\n2 VOLUME \"/var/log\" \"/var/db\"\n3 VOLUME [\"/data\", \"/x\"]\n", NULL},
        {"VOLUME empty string", "FROM a\nVOLUME [\"/a\", \" \"]\n", NULL,
         "VOLUME specified can not be an empty string"},
        {"EXPOSE", "FROM a\nEXPOSE 80/tcp  80/udp\n",
         "1 FROM \"a\"\n2 EXPOSE \"80/tcp\" \"80/udp\"\n", NULL},
        {"USER WORKDIR STOPSIGNAL MAINTAINER take the line",
         "FROM a\nUSER a b\nWORKDIR /a b\nSTOPSIGNAL SIGKILL\nMAINTAINER J <j@x>\n",
         "1 FROM \"a\"\n2 USER \"a b\"\n3 WORKDIR \"/a b\"\n4 STOPSIGNAL \"SIGKILL\"\n"
         "5 MAINTAINER \"J <j@x>\"\n",
         NULL},
};

static void test_forms(void **state)
{
    (void)state;
    assert_int_equal(run_cases(form_cases, MAR_ARRAY_SIZE(form_cases)), 0);
}

/* instructions/parse_test.go: argument counts. */
static void test_argument_counts(void **state)
{
    (void)state;
    const char *one[] = {"MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"};
    const char *least[] = {"ENV", "LABEL", "ONBUILD", "HEALTHCHECK", "EXPOSE", "VOLUME", "ARG"};
    int bad = 0;
    char in[128], want[128];
    for (size_t i = 0; i < MAR_ARRAY_SIZE(one); i++) {
        snprintf(in, sizeof(in), "FROM a\n%s\n", one[i]);
        snprintf(want, sizeof(want), "Dockerfile:2: %s requires exactly one argument", one[i]);
        bad += check(one[i], in, NULL, want);
    }
    for (size_t i = 0; i < MAR_ARRAY_SIZE(least); i++) {
        snprintf(in, sizeof(in), "FROM a\n%s\n", least[i]);
        snprintf(want, sizeof(want), "Dockerfile:2: %s requires at least one argument", least[i]);
        bad += check(least[i], in, NULL, want);
    }
    bad += check("ADD", "FROM a\nADD arg1\n", NULL, "ADD requires at least two arguments");
    bad += check("COPY", "FROM a\nCOPY arg1\n", NULL, "COPY requires at least two arguments");
    bad += check("copyEmptyWhitespace", "FROM a\nCOPY\t\n\t\tquux \\\n      bar", NULL,
                 "Dockerfile:2: COPY requires at least two arguments");
    assert_int_equal(bad, 0);
}

/* ---- ENV LABEL ARG --------------------------------------------------------------------------- */

static const pcase kv_cases[] = {
        /* parser/testfiles/env */
        {"env forms",
         "FROM u\nENV name value\nENV name=value name2=value2\nENV name=\"value value1\"\n"
         "ENV name=value\\ value2\nENV name='value\"double quote\"value2'\n"
         "ENV name='a\\'b''\nENV name=value \\\n    name1=value1 \\\n"
         "    name2=\"value2a \\\n           value2b\" \\\n",
         "1 FROM \"u\"\n2 ENV \"name\"=\"value\"\n3 ENV \"name\"=\"value\" \"name2\"=\"value2\"\n"
         "4 ENV \"name\"=\"\\\"value value1\\\"\"\n5 ENV \"name\"=\"value\\\\ value2\"\n"
         "6 ENV \"name\"=\"'value\\\"double quote\\\"value2'\"\n7 ENV \"name\"=\"'a\\\\'b''\"\n"
         "8-11 ENV \"name\"=\"value\" \"name1\"=\"value1\" \"name2\"=\"\\\"value2a            "
         "value2b\\\"\"\n",
         NULL},
        {"old form keeps the rest", "FROM a\nENV ONE TWO= THREE=world\n",
         "1 FROM \"a\"\n2 ENV \"ONE\"=\"TWO= THREE=world\"\n", NULL},
        {"old form needs a value", "FROM a\nENV name\n", NULL, "ENV must have two arguments"},
        {"new form needs =", "FROM a\nENV a=b c\n", NULL, "cannot find '=' in 'c'"},
        {"blank name", "FROM a\nLABEL =x\n", NULL, "LABEL names can not be blank"},
        {"labels", "FROM a\nLABEL \"com.example.vendor\"=\"ACME Incorporated\" version=\"1.0\"\n",
         "1 FROM \"a\"\n2 LABEL \"\\\"com.example.vendor\\\"\"=\"\\\"ACME Incorporated\\\"\" "
         "\"version\"=\"\\\"1.0\\\"\"\n",
         NULL},
        /* parser/testfiles/args */
        {"args", "ARG foo bar=baz\nFROM ubuntu\nARG abc=\"123 456\" def\n",
         "1 ARG \"foo\" \"bar\"=\"baz\"\n2 FROM \"ubuntu\"\n3 ARG \"abc\"=\"\\\"123 456\\\"\" "
         "\"def\"\n",
         NULL},
        {"ARG blank name", "ARG =x\nFROM a\n", NULL, "Dockerfile:1: ARG names can not be blank"},
        {"ARG flag", "FROM a\nARG --x a\n", NULL, "unknown flag '--x' for ARG"},
};

static void test_kvs(void **state)
{
    (void)state;
    assert_int_equal(run_cases(kv_cases, MAR_ARRAY_SIZE(kv_cases)), 0);
}

/* ---- FROM ------------------------------------------------------------------------------------ */

static const pcase from_cases[] = {
        {"stages", "FROM --platform=$BUILDPLATFORM golang AS Build\nFROM scratch\n",
         "1 FROM --platform=\"$BUILDPLATFORM\" \"golang\" AS build\n2 FROM \"scratch\"\n", NULL},
        {"two arguments", "FROM a b\n", NULL, "FROM requires either one or three arguments"},
        {"not AS", "FROM a IS b\n", NULL, "FROM requires either one or three arguments"},
        {"bad name", "FROM a AS 1st\n", NULL, "invalid name for build stage '1st'"},
        {"bad name 2", "FROM a AS b$c\n", NULL, "invalid name for build stage 'b$c'"},
        {"name characters", "FROM a AS b-1_2.3\n", "1 FROM \"a\" AS b-1_2.3\n", NULL},
        {"duplicate name", "FROM a AS x\nFROM b AS X\n", NULL,
         "Dockerfile:2: stage name 'x' is already used on line 1"},
        {"reserved name", "FROM a AS scratch\n", NULL, "'scratch' is a reserved stage name"},
        {"empty platform", "FROM --platform= a\n", NULL, "flag '--platform' needs a value"},
        {"platform twice", "FROM --platform=a --platform=b c\n", NULL,
         "duplicate flag '--platform'"},
        {"unknown flag", "FROM --plaform=linux/arm64 a\n", NULL,
         "unknown flag '--plaform' for FROM"},
};

static void test_from(void **state)
{
    (void)state;
    assert_int_equal(run_cases(from_cases, MAR_ARRAY_SIZE(from_cases)), 0);
}

/* ---- Fixtures: testdata/dockerfile/<case>/{Dockerfile,expected} ------------------------------ */

static char *slurp(const char *path)
{
    mar_buf b = MAR_BUF_INIT(1u << 24);
    mar_err *err = NULL;
    if (mar_read_file_at(AT_FDCWD, path, 1u << 24, &b, &err) < 0) {
        mar_err_free(err);
        return NULL;
    }
    return mar_buf_detach(&b, NULL);
}

static void test_fixtures(void **state)
{
    (void)state;
    const char *root = getenv("MAR_TESTDATA");
    assert_non_null(root);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/dockerfile", root);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0, bad = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char p[2048], q[2048];
        snprintf(p, sizeof(p), "%s/%s/Dockerfile", dir, de->d_name);
        snprintf(q, sizeof(q), "%s/%s/expected", dir, de->d_name);
        char *in = slurp(p), *want = slurp(q);
        if (!in || !want) {
            free(in), free(want);
            continue;
        }
        /* "error: TEXT" expects an error containing TEXT; anything else is the dump. */
        if (strncmp(want, "error: ", 7) == 0) {
            want[strcspn(want, "\n")] = '\0';
            bad += check(de->d_name, in, NULL, want + 7);
        } else {
            bad += check(de->d_name, in, want, NULL);
        }
        n++;
        free(in), free(want);
    }
    closedir(d);
    assert_true(n >= 5);
    assert_int_equal(bad, 0);
}

/* Inputs at and over the cap. */
/* NUL characters, which strlen-based cases cannot carry. */
static void test_nul(void **state)
{
    (void)state;
    static const char in[] = "FROM a\nRUN \0x\n";
    bld_dockerfile *df = NULL;
    mar_err *err = NULL;
    assert_int_equal(bld_dockerfile_parse(in, sizeof(in) - 1, "Dockerfile", &df, &err),
                     -MAR_EUSAGE);
    assert_string_equal(err->msg, "Dockerfile:2: NUL character");
    mar_err_free(err);
}

static void test_cap(void **state)
{
    (void)state;
    size_t n = BLD_CAP_DOCKERFILE + 1;
    char *big = mar_xmalloc(n + 1);
    memset(big, '#', n);
    memcpy(big, "FROM a\n", 7);
    big[n] = '\0';
    bld_dockerfile *df = NULL;
    mar_err *err = NULL;
    assert_int_equal(bld_dockerfile_parse(big, n, "big", &df, &err), -MAR_EUSAGE);
    assert_string_equal(err->msg, "big: larger than 4194304 bytes");
    mar_err_free(err);
    assert_int_equal(bld_dockerfile_parse(big, n - 1, "big", &df, NULL), 0);
    bld_dockerfile_free(df);
    free(big);
}

/* The file name in messages is the caller's. */
static void test_filename(void **state)
{
    (void)state;
    const char *in = "FROM a\n\n\n\n\n\n\n\n\n\n\nRUNN x\n";
    mar_err *err = NULL;
    bld_dockerfile *df = NULL;
    assert_int_equal(bld_dockerfile_parse(in, strlen(in), "Containerfile", &df, &err), -MAR_EUSAGE);
    assert_string_equal(err->msg, "Containerfile:12: unknown instruction 'RUNN'");
    mar_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_lines),        cmocka_unit_test(test_empty_continuation_warnings),
            cmocka_unit_test(test_line_numbers), cmocka_unit_test(test_directives),
            cmocka_unit_test(test_forms),        cmocka_unit_test(test_argument_counts),
            cmocka_unit_test(test_kvs),          cmocka_unit_test(test_from),
            cmocka_unit_test(test_fixtures),     cmocka_unit_test(test_nul),
            cmocka_unit_test(test_cap),          cmocka_unit_test(test_filename),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
