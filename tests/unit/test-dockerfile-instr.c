/* The Dockerfile parser's flags and instruction checks (builder/dockerfile-instr.c, mount.c):
 * flags, COPY/ADD, RUN and its mounts, HEALTHCHECK, ONBUILD, heredocs. Inputs and results from
 * moby/buildkit's tests (instructions/bflag_test.go, parse_test.go, parse_heredoc_test.go,
 * parser/parser_heredoc_test.go, parser/testfiles/health and flags) are facts; the expected
 * text is bld_dockerfile_dump's. */
#include "dfcheck.h"

/* ---- Flags ----------------------------------------------------------------------------------- */

static const pcase flag_cases[] = {
        /* parser/testfiles/flags: where flags end */
        {"double dash", "FROM a\nCOPY --link=true -- foo /tmp/\nCOPY -- --foo /tmp/\n",
         "1 FROM \"a\"\n2 COPY --link=\"true\" \"foo\" ->\"/tmp/\"\n3 COPY \"--foo\" ->\"/tmp/\"\n",
         NULL},
        {"unknown flag", "FROM a\nCOPY --user=me foo /tmp/\n", NULL,
         "Dockerfile:2: unknown flag '--user' for COPY"},
        {"flags of CMD", "FROM a\nCMD --doit [ \"a\", \"b\" ]\n", NULL,
         "unknown flag '--doit' for CMD"},
        {"MAINTAINER unknown flag", "FROM a\nMAINTAINER --boo joe@example.com\n", NULL,
         "unknown flag '--boo' for MAINTAINER"},
        {"STOPSIGNAL flag", "FROM a\nSTOPSIGNAL --x 9\n", NULL,
         "unknown flag '--x' for STOPSIGNAL"},
        /* bflag_test.go */
        {"string without value", "FROM a\nCOPY --chown b c\n", NULL,
         "flag '--chown' needs a value"},
        {"bool forms", "FROM a\nCOPY --link a b\nCOPY --link=TRUE a b\nCOPY --link=false a b\n",
         "1 FROM \"a\"\n2 COPY --link \"a\" ->\"b\"\n3 COPY --link=\"TRUE\" \"a\" ->\"b\"\n"
         "4 COPY --link=\"false\" \"a\" ->\"b\"\n",
         NULL},
        {"bool bad", "FROM a\nCOPY --link=false1 a b\n", NULL,
         "flag '--link' takes true or false, not 'false1'"},
        {"bool empty", "FROM a\nCOPY --link= a b\n", NULL, "flag '--link' needs a value after '='"},
        {"duplicate", "FROM a\nCOPY --chown=1 --chown=2 a b\n", NULL, "duplicate flag '--chown'"},
        {"quoted flag", "FROM a\nCOPY --chown=\"a b\" --chmod='7'\"55\" x y\n",
         "1 FROM \"a\"\n2 COPY --chown=\"a b\" --chmod=\"755\" \"x\" ->\"y\"\n", NULL},
        {"escaped flag", "FROM a\nCOPY --chown=a\\ b x y\n",
         "1 FROM \"a\"\n2 COPY --chown=\"a b\" \"x\" ->\"y\"\n", NULL},
};

static void test_flags(void **state)
{
    (void)state;
    assert_int_equal(run_cases(flag_cases, MAR_ARRAY_SIZE(flag_cases)), 0);
}

/* ---- COPY ADD -------------------------------------------------------------------------------- */

static const pcase copy_cases[] = {
        {"COPY flags",
         "FROM a\nCOPY --from=build --chown=55:mygroup --chmod=644 --link "
         "--exclude=*.txt --exclude=*.md hom* /mydir/\n",
         "1 FROM \"a\"\n2 COPY --from=\"build\" --chown=\"55:mygroup\" --chmod=\"644\" --link "
         "--exclude=\"*.txt\" --exclude=\"*.md\" \"hom*\" ->\"/mydir/\"\n",
         NULL},
        {"ADD flags", "FROM a\nADD --checksum=sha256:24454f --unpack=false --link x /d/\n",
         "1 FROM \"a\"\n2 ADD --checksum=\"sha256:24454f\" --unpack=\"false\" --link \"x\" "
         "->\"/d/\" unpack=false\n",
         NULL},
        {"chmod forms",
         "FROM a\nCOPY --chmod=+x a b\nCOPY --chmod=u=rwX,go=rX a b\n"
         "ADD --chmod=g=u a b\nCOPY --chmod=$MODE a b\nCOPY --chmod=0755 a b\n",
         "1 FROM \"a\"\n2 COPY --chmod=\"+x\" \"a\" ->\"b\"\n3 COPY --chmod=\"u=rwX,go=rX\" \"a\" "
         "->\"b\"\n4 ADD --chmod=\"g=u\" \"a\" ->\"b\"\n5 COPY --chmod=\"$MODE\" \"a\" ->\"b\"\n"
         "6 COPY --chmod=\"0755\" \"a\" ->\"b\"\n",
         NULL},
        {"chmod not octal", "FROM a\nCOPY --chmod=0789 a b\n", NULL, "invalid COPY --chmod '0789'"},
        {"chmod too big", "FROM a\nCOPY --chmod=17777 a b\n", NULL, "invalid COPY --chmod"},
        {"chmod symbolic", "FROM a\nCOPY --chmod=u+q a b\n", NULL, "invalid COPY --chmod 'u+q'"},
        {"chmod trailing comma", "FROM a\nCOPY --chmod=u+x, a b\n", NULL, "invalid COPY --chmod"},
        {"checksum sources", "FROM a\nADD --checksum=sha256:00 https://a/x https://a/y /d/\n", NULL,
         "ADD --checksum needs exactly one source"},
        {"ADD --keep-git-dir", "FROM a\nADD --keep-git-dir=true https://x/y.git /b\n", NULL,
         "ADD --keep-git-dir is not supported"},
        {"COPY --parents", "FROM a\nCOPY --parents ./x/a.txt /p/\n", NULL,
         "COPY --parents is not supported"},
        {"COPY --checksum", "FROM a\nCOPY --checksum=sha256:x a b\n", NULL,
         "unknown flag '--checksum' for COPY"},
        {"ADD --from", "FROM a\nADD --from=x a b\n", NULL, "unknown flag '--from' for ADD"},
        {"COPY --from variable", "FROM a\nCOPY --from=$X a b\n", NULL,
         "COPY --from does not expand variables"},
        {"COPY --from quotes", "FROM a\nCOPY --from=\"'x'\" a b\n", NULL,
         "COPY --from does not expand variables"},
        {"bad exclude", "FROM a\nCOPY --exclude=[ a b\n", NULL, "COPY --exclude '['"},
        {"heredoc destination", "FROM a\nCOPY /foo <<EOF\nEOF", NULL,
         "COPY cannot accept a heredoc as a destination"},
};

static void test_copy(void **state)
{
    (void)state;
    assert_int_equal(run_cases(copy_cases, MAR_ARRAY_SIZE(copy_cases)), 0);
}

/* ---- RUN ------------------------------------------------------------------------------------- */

static const pcase run_cases_[] = {
        {"mount cache",
         "FROM a\nRUN --mount=type=cache,target=/var/cache/apt,sharing=locked "
         "apt-get update\n",
         "1 FROM \"a\"\n2 RUN --mount=\"type=cache,target=/var/cache/apt,sharing=locked\" "
         "\"apt-get update\" mount(cache target=\"/var/cache/apt\" rw sharing=locked)\n",
         NULL},
        {"mount defaults",
         "FROM a\nRUN --mount=target=. --mount=type=tmpfs,target=/t,size=64m "
         "--mount=type=secret,id=aws,target=/root/.aws/credentials,required "
         "make\n",
         "1 FROM \"a\"\n2 RUN --mount=\"target=.\" --mount=\"type=tmpfs,target=/t,size=64m\" "
         "--mount=\"type=secret,id=aws,target=/root/.aws/credentials,required\" \"make\" "
         "mount(bind target=\".\" ro) mount(tmpfs target=\"/t\" rw size=67108864) mount(secret "
         "target=\"/root/.aws/credentials\" id=\"aws\" ro required)\n",
         NULL},
        {"mount options",
         "FROM a\nRUN --mount=type=cache,id=go,target=/c,mode=0700,uid=1000,"
         "gid=1000,ro,from=base,source=/s x\n",
         "1 FROM \"a\"\n2 RUN --mount=\"type=cache,id=go,target=/c,mode=0700,uid=1000,gid=1000,"
         "ro,from=base,source=/s\" \"x\" mount(cache from=\"base\" source=\"/s\" target=\"/c\" "
         "id=\"go\" ro mode=0700 uid=1000 gid=1000)\n",
         NULL},
        {"mount secret env", "FROM a\nRUN --mount=type=secret,id=API_KEY,env=API_KEY x\n",
         "1 FROM \"a\"\n2 RUN --mount=\"type=secret,id=API_KEY,env=API_KEY\" \"x\" mount(secret "
         "id=\"API_KEY\" env=\"API_KEY\" ro)\n",
         NULL},
        {"mount deferred", "FROM a\nRUN --mount=type=cache,target=$DIR,mode=$M x\n",
         "1 FROM \"a\"\n2 RUN --mount=\"type=cache,target=$DIR,mode=$M\" \"x\" mount(cache "
         "target=\"$DIR\" rw mode=00 deferred)\n",
         NULL},
        {"mount ssh", "FROM a\nRUN --mount=type=ssh x\n", NULL,
         "mount type 'ssh' is not supported"},
        {"mount unknown type", "FROM a\nRUN --mount=type=nfs x\n", NULL,
         "unsupported mount type 'nfs'"},
        {"mount unknown key", "FROM a\nRUN --mount=type=bind,foo=bar x\n", NULL,
         "unexpected key 'foo'"},
        {"mount required order", "FROM a\nRUN --mount=required,type=secret,id=x x\n", NULL,
         "unexpected key 'required' for mount type 'bind'"},
        {"mount size on bind", "FROM a\nRUN --mount=size=1,type=tmpfs x\n", NULL,
         "unexpected key 'size' for mount type 'bind'"},
        {"mount mode on bind", "FROM a\nRUN --mount=mode=0755,target=/x x\n", NULL,
         "mode not allowed for 'bind' mounts"},
        {"mount bad mode", "FROM a\nRUN --mount=type=cache,target=/x,mode=9 x\n", NULL,
         "invalid value 9 for mode"},
        {"mount bad uid", "FROM a\nRUN --mount=type=cache,target=/x,uid=-1 x\n", NULL,
         "invalid value -1 for uid"},
        {"mount sharing on bind", "FROM a\nRUN --mount=target=/x,sharing=shared x\n", NULL,
         "sharing is only for cache mounts"},
        {"mount secret from", "FROM a\nRUN --mount=type=secret,id=x,from=y x\n", NULL,
         "a secret mount cannot have a from"},
        {"mount secret nothing", "FROM a\nRUN --mount=type=secret x\n", NULL,
         "a secret mount needs one of id, source or target"},
        {"mount secret both", "FROM a\nRUN --mount=type=secret,id=a,source=b x\n", NULL,
         "cannot have both source and id"},
        {"mount from variable", "FROM a\nRUN --mount=from=$X,target=/x x\n", NULL,
         "'from' does not expand variables"},
        {"mount bad field", "FROM a\nRUN --mount=type=cache,target x\n", NULL,
         "invalid field 'target' (must be key=value)"},
        {"mount empty", "FROM a\nRUN --mount= x\n", NULL, "flag '--mount' needs a value"},
        {"mount bad bool", "FROM a\nRUN --mount=target=/x,ro=maybe x\n", NULL,
         "invalid value for ro: 'maybe'"},
        {"network", "FROM a\nRUN --network=none pip install x\n",
         "1 FROM \"a\"\n2 RUN --network=\"none\" \"pip install x\" network=none\n", NULL},
        {"network bad", "FROM a\nRUN --network=bridge x\n", NULL, "invalid network mode 'bridge'"},
        {"security sandbox", "FROM a\nRUN --security=sandbox x\n",
         "1 FROM \"a\"\n2 RUN --security=\"sandbox\" \"x\"\n", NULL},
        {"security insecure", "FROM a\nRUN --security=insecure x\n", NULL,
         "RUN --security=insecure is not supported"},
        {"device", "FROM a\nRUN --device=nvidia.com/gpu=all x\n", NULL,
         "unknown flag '--device' for RUN"},
        {"exec form with flags", "FROM a\nRUN --network=host [\"a\", \"b\"]\n",
         "1 FROM \"a\"\n2 RUN --network=\"host\" [\"a\", \"b\"] network=host\n", NULL},
};

static void test_run(void **state)
{
    (void)state;
    assert_int_equal(run_cases(run_cases_, MAR_ARRAY_SIZE(run_cases_)), 0);
}

/* A deferred mount parsed again with the stage's variables. */
static bld_var_state vars(const char *name, const char **ret, void *ud)
{
    (void)ud;
    if (strcmp(name, "DIR") == 0) {
        *ret = "/cache";
        return BLD_VAR_SET;
    }
    if (strcmp(name, "M") == 0) {
        *ret = "0750";
        return BLD_VAR_SET;
    }
    return BLD_VAR_UNSET;
}

static void test_mount_reparse(void **state)
{
    (void)state;
    bld_mount m;
    mar_err *err = NULL;
    assert_int_equal(bld_mount_parse("type=cache,target=$DIR,mode=$M", '\\', vars, NULL, &m, &err),
                     0);
    assert_false(m.deferred);
    assert_int_equal(m.type, BLD_MOUNT_CACHE);
    assert_string_equal(m.target, "/cache");
    assert_int_equal(m.mode, 0750);
    assert_false(m.readonly);
    bld_mount_release(&m);
    assert_int_equal(bld_mount_parse("type=cache,target=/x,mode=$DIR", '\\', vars, NULL, &m, &err),
                     -MAR_EUSAGE);
    assert_non_null(strstr(err->msg, "invalid value /cache for mode"));
    mar_err_free(err);
    err = NULL;
    assert_int_equal(bld_mount_parse("type=cache,target='/a b'", '\\', NULL, NULL, &m, &err), 0);
    assert_string_equal(m.target, "/a b");
    bld_mount_release(&m);
    /* CSV (Go encoding/csv): a quoted field, "" inside it, a quote elsewhere is an error. */
    assert_int_equal(bld_mount_parse("\"target=/a,\"\"b\"\"\",ro", '\\', NULL, NULL, &m, &err), 0);
    assert_string_equal(m.target, "/a,b");
    assert_true(m.readonly);
    bld_mount_release(&m);
    const char *bad[] = {"target=/a\"b", "\"target=/a\"x", "\"target=/a", ""};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(bad); i++) {
        assert_int_equal(bld_mount_parse(bad[i], '\\', NULL, NULL, &m, &err), -MAR_EUSAGE);
        assert_non_null(strstr(err->msg, "--mount: "));
        mar_err_free(err);
        err = NULL;
    }
}

/* ---- HEALTHCHECK ----------------------------------------------------------------------------- */

static const pcase health_cases[] = {
        /* parser/testfiles/health, with mar's checks */
        {"options",
         "FROM d\nHEALTHCHECK --interval=5s --timeout=3s --retries=3 \\\n  CMD "
         "/app/check.sh --quiet\n",
         "1 FROM \"d\"\n2-3 HEALTHCHECK --interval=\"5s\" --timeout=\"3s\" --retries=\"3\" "
         "\"/app/check.sh --quiet\" interval=5000000000 timeout=3000000000 start-period=0 "
         "start-interval=0 retries=3\n",
         NULL},
        {"spaces", "FROM d\nHEALTHCHECK   CMD   a b\n",
         "1 FROM \"d\"\n2 HEALTHCHECK \"a b\" interval=0 timeout=0 start-period=0 start-interval=0 "
         "retries=0\n",
         NULL},
        {"exec",
         "FROM d\nHEALTHCHECK --start-period=0s --start-interval=1m30.5s --interval=1h "
         "--timeout=0s --retries=0 CMD [\"foo\"]\n",
         "1 FROM \"d\"\n2 HEALTHCHECK --start-period=\"0s\" --start-interval=\"1m30.5s\" "
         "--interval=\"1h\" --timeout=\"0s\" --retries=\"0\" [\"foo\"] interval=3600000000000 "
         "timeout=0 start-period=0 start-interval=90500000000 retries=0\n",
         NULL},
        {"none", "FROM d\nhealthcheck none\n", "1 FROM \"d\"\n2 HEALTHCHECK none\n", NULL},
        {"none with args", "FROM d\nHEALTHCHECK NONE x\n", NULL,
         "HEALTHCHECK NONE takes no arguments"},
        {"none with flags", "FROM d\nHEALTHCHECK --interval=5s NONE\n", NULL,
         "HEALTHCHECK NONE takes no flags"},
        {"missing", "FROM d\nHEALTHCHECK\n", NULL, "HEALTHCHECK requires at least one argument"},
        {"no command", "FROM d\nHEALTHCHECK CMD\n", NULL, "missing command after HEALTHCHECK CMD"},
        {"empty exec", "FROM d\nHEALTHCHECK CMD []\n", NULL,
         "missing command after HEALTHCHECK CMD"},
        {"type", "FROM d\nHEALTHCHECK CONNECT TCP 7000\n", NULL,
         "unknown type 'CONNECT' in HEALTHCHECK (try CMD)"},
        {"below 1ms", "FROM d\nHEALTHCHECK --interval=50ns CMD x\n", NULL,
         "HEALTHCHECK --interval '50ns' is less than 1ms"},
        {"exactly 1ms", "FROM d\nHEALTHCHECK --timeout=1ms CMD x\n",
         "1 FROM \"d\"\n2 HEALTHCHECK --timeout=\"1ms\" \"x\" interval=0 timeout=1000000 "
         "start-period=0 start-interval=0 retries=0\n",
         NULL},
        {"negative", "FROM d\nHEALTHCHECK --timeout=-1s CMD x\n", NULL, "is less than 1ms"},
        {"bad duration", "FROM d\nHEALTHCHECK --timeout=5 CMD x\n", NULL, "invalid duration '5'"},
        {"bad duration 2", "FROM d\nHEALTHCHECK --timeout=1..5s CMD x\n", NULL, "invalid duration"},
        {"negative retries", "FROM d\nHEALTHCHECK --retries=-1 CMD x\n", NULL,
         "--retries cannot be negative"},
        {"big retries", "FROM d\nHEALTHCHECK --retries=2147483648 CMD x\n", NULL, "invalid number"},
        {"unknown option", "FROM d\nHEALTHCHECK --every=5s CMD x\n", NULL,
         "unknown flag '--every' for HEALTHCHECK"},
};

static void test_healthcheck(void **state)
{
    (void)state;
    assert_int_equal(run_cases(health_cases, MAR_ARRAY_SIZE(health_cases)), 0);
}

/* ---- ONBUILD --------------------------------------------------------------------------------- */

static const pcase onbuild_cases[] = {
        {"triggers", "FROM a\nONBUILD ADD . /app/src\nonbuild RUN --mount=from=cfg,target=/c x\n",
         "1 FROM \"a\"\n2 ONBUILD {ADD \".\" ->\"/app/src\"}\n3 ONBUILD {RUN "
         "--mount=\"from=cfg,target=/c\" \"x\" mount(bind from=\"cfg\" target=\"/c\" ro)}\n",
         NULL},
        {"chained", "FROM a\nONBUILD ONBUILD RUN touch foobar\n", NULL,
         "chaining ONBUILD via 'ONBUILD ONBUILD' is not allowed"},
        {"bare chained", "FROM a\nONBUILD ONBUILD\n", NULL,
         "chaining ONBUILD via 'ONBUILD ONBUILD' is not allowed"},
        {"FROM", "FROM a\nONBUILD FROM scratch\n", NULL,
         "FROM is not allowed as an ONBUILD trigger"},
        {"MAINTAINER", "FROM a\nONBUILD maintainer x\n", NULL,
         "MAINTAINER is not allowed as an ONBUILD trigger"},
        {"unknown trigger", "FROM a\nONBUILD RUNN x\n", NULL, "unknown instruction 'RUNN'"},
        {"invalid trigger", "FROM a\nONBUILD COPY x\n", NULL,
         "COPY requires at least two arguments"},
        {"flag of ONBUILD", "FROM a\nONBUILD --x RUN y\n", NULL, "unknown flag '--x' for ONBUILD"},
};

static void test_onbuild(void **state)
{
    (void)state;
    assert_int_equal(run_cases(onbuild_cases, MAR_ARRAY_SIZE(onbuild_cases)), 0);
    const char *in = "FROM a\nONBUILD RUN <<EOF\necho $X\nEOF\nonbuild  copy --link a b\n";
    bld_dockerfile *df = NULL;
    assert_int_equal(bld_dockerfile_parse(in, strlen(in), "Dockerfile", &df, NULL), 0);
    const bld_instr *ob = &df->stages[0].instrs[1];
    assert_string_equal(ob->trigger_text, "RUN <<EOF\necho $X\nEOF");
    assert_int_equal(ob->trigger->kind, BLD_RUN);
    assert_int_equal(ob->trigger->n_heredocs, 1);
    assert_string_equal(ob->trigger->original, "RUN <<EOF");
    assert_string_equal(df->stages[0].instrs[2].trigger_text, "copy --link a b");
    bld_dockerfile_free(df);
}

/* ---- Heredocs -------------------------------------------------------------------------------- */

/* parser_heredoc_test.go TestParseExtractsHeredoc (without its USER <<INVALID line, which mar
 * refuses as an unknown INVALID instruction on the next line). */
static void test_heredocs(void **state)
{
    (void)state;
    const char *in = "\nFROM alpine:3.6\n\nENV NAME=me\n\nRUN ls\n\n"
                     "RUN <<EMPTY\nEMPTY\n\nRUN 3<<EMPTY2\nEMPTY2\n\nRUN \"<<NOHEREDOC\"\n\n"
                     "RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\n"
                     "RUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n\n"
                     "RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n\n"
                     "RUN <<-EXPAND\n\texpand $NAME\nEXPAND\n\n"
                     "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\n"
                     "RUN <<COPY\necho hello world\necho foo bar\nCOPY\n\n"
                     "RUN <<COMMENT\n# internal comment\necho hello world\n"
                     "echo foo bar # trailing comment\nCOMMENT\n\n"
                     "RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\n"
                     "COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\n"
                     "COPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\n\n"
                     "COPY <<X <<Y /dest\nY\nX\nX\nY\n\n"
                     "RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n\n"
                     "COPY <<file.txt /dest\nhello world\nfile.txt\n\n"
                     "RUN <<eo'f'\necho foo\neof\n\nRUN <<eo\\'f\necho foo\neo'f\n\n"
                     "RUN <<'e'o\\'f\necho foo\neo'f\n\nRUN <<'one two'\necho bar\none two\n\n"
                     "RUN <<$EOF\n$EOF\n\nRUN <<  EOF\nEOF\n\nRUN <<  EOF  > foo\nEOF\n\t";
    static const struct {
        size_t instr;
        const char *name, *raw, *content;
        bool expand, chomp;
        unsigned fd;
    } want[] = {
            {3, "EMPTY", "", "", true, false, 0},
            {4, "EMPTY2", "", "", true, false, 3},
            {6, "INDENT", "\tfoo\n\tbar\n", "\tfoo\n\tbar\n", true, false, 0},
            {7, "UNINDENT", "\tbaz\n\tquux\n", "baz\nquux\n", true, true, 0},
            {8, "UNINDENT2", "\tbaz\n\tquux\n", "baz\nquux\n", true, true, 0},
            {9, "EXPAND", "\texpand $NAME\n", "expand $NAME\n", true, true, 0},
            {10, "NOEXPAND", "\tdon't expand $NAME\n", "don't expand $NAME\n", false, true, 0},
            {11, "COPY", "echo hello world\necho foo bar\n", NULL, true, false, 0},
            {12, "COMMENT",
             "# internal comment\necho hello world\necho foo bar # trailing comment\n", NULL, true,
             false, 0},
            {13, "MOUNT", "echo hello\n", NULL, true, false, 0},
            {14, "FILE1", "content 1\n", NULL, true, false, 0},
            {14, "FILE2", "content 2\n", NULL, true, false, 0},
            {15, "EOF", "\"foo\"\n'bar'\n", NULL, true, false, 0},
            {16, "X", "Y\n", NULL, true, false, 0},
            {16, "Y", "X\n", NULL, true, false, 0},
            {17, "COMPLEX", "print('hello world')\n", NULL, true, false, 0},
            {18, "file.txt", "hello world\n", NULL, true, false, 0},
            {19, "eof", "echo foo\n", NULL, false, false, 0},
            {20, "eo'f", "echo foo\n", NULL, true, false, 0},
            {21, "eo'f", "echo foo\n", NULL, false, false, 0},
            {22, "one two", "echo bar\n", NULL, false, false, 0},
            {23, "$EOF", "", NULL, true, false, 0},
            {24, "EOF", "", NULL, true, false, 0},
            {25, "EOF", "", NULL, true, false, 0},
    };
    bld_dockerfile *df = NULL;
    mar_err *err = NULL;
    int rc = bld_dockerfile_parse(in, strlen(in), "Dockerfile", &df, &err);
    if (rc < 0) {
        fail_msg("%s", err->msg);
    }
    const bld_stage *st = &df->stages[0];
    assert_int_equal(st->n_instrs, 26);
    size_t seen[32] = {0};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(want); i++) {
        const bld_instr *ins = &st->instrs[want[i].instr];
        size_t k = seen[want[i].instr]++;
        assert_true(k < ins->n_heredocs);
        const bld_heredoc *h = &ins->heredocs[k];
        assert_string_equal(h->name, want[i].name);
        assert_string_equal(h->raw, want[i].raw);
        assert_string_equal(h->content, want[i].content ? want[i].content : want[i].raw);
        assert_int_equal(h->expand, want[i].expand);
        assert_int_equal(h->chomp, want[i].chomp);
        assert_int_equal(h->fd, want[i].fd);
    }
    for (size_t i = 0; i < st->n_instrs; i++) {
        assert_int_equal(st->instrs[i].n_heredocs, seen[i]);
    }
    assert_string_equal(st->instrs[5].args.v[0], "\"<<NOHEREDOC\"");
    assert_string_equal(st->instrs[17].args.v[0], "<<COMPLEX python3");
    assert_string_equal(st->instrs[14].dest, "/dest");
    assert_int_equal(st->instrs[14].args.n, 0);
    assert_int_equal(st->instrs[8].line, 26);
    assert_int_equal(st->instrs[8].end_line, 29);
    bld_dockerfile_free(df);
}

static const pcase heredoc_cases[] = {
        {"exec form reads none", "FROM a\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\n",
         "1 FROM \"a\"\n2 RUN [\"<<EOF\"]\n3 RUN [\"<<'EOF'\"]\n", NULL},
        {"quoted markers", "FROM a\nRUN '<<EOF'\nRUN \"<<EOF\"\n",
         "1 FROM \"a\"\n2 RUN \"'<<EOF'\"\n3 RUN \"\\\"<<EOF\\\"\"\n", NULL},
        {"other instructions read none", "FROM a\nLABEL x=<<EOF\n",
         "1 FROM \"a\"\n2 LABEL \"x\"=\"<<EOF\"\n", NULL},
        {"several",
         "FROM a\nRUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\n"
         "I am\nsecond\nFILE2\n",
         "1 FROM \"a\"\n2-8 RUN \"<<FILE1 cat > file1 && <<FILE2 cat > file2\" <<\"FILE1\"=\"I "
         "am\\nfirst\\n\" <<\"FILE2\"=\"I am\\nsecond\\n\"\n",
         NULL},
        {"COPY with a file", "FROM a\nCOPY <<EOF foo.txt /bar\nthis is inline\nEOF\n",
         "1 FROM \"a\"\n2-4 COPY \"foo.txt\" ->\"/bar\" <<\"EOF\"=\"this is inline\\n\"\n", NULL},
        {"COPY chomp and quote", "FROM a\nCOPY <<-'EOF' /s.sh\n\techo \"hello ${FOO}\"\nEOF\n",
         "1 FROM \"a\"\n2-4 COPY ->\"/s.sh\" <<-'\"EOF\"=\"echo \\\"hello ${FOO}\\\"\\n\"\n", NULL},
        {"ADD heredoc", "FROM a\nADD <<EOF /x\nx\nEOF\n",
         "1 FROM \"a\"\n2-4 ADD ->\"/x\" <<\"EOF\"=\"x\\n\"\n", NULL},
        {"ONBUILD COPY heredoc", "FROM a\nONBUILD COPY <<EOF /x\nx\nEOF\n",
         "1 FROM \"a\"\n2-4 ONBUILD {COPY ->\"/x\" <<\"EOF\"=\"x\\n\"}\n", NULL},
        {"unterminated", "FROM a\nRUN <<EOF\necho\n", NULL,
         "Dockerfile:2: unterminated heredoc 'EOF'"},
        {"unterminated chomp", "FROM a\nRUN <<EOF\n\tEOF\n", NULL, "unterminated heredoc"},
        {"heredoc not a source", "FROM a\nCOPY a /b <<EOF\nx\nEOF\n", NULL,
         "COPY cannot accept a heredoc as a destination"},
        {"unused heredoc", "FROM a\nCOPY << EOF /b\nx\nEOF\n", NULL,
         "heredoc 'EOF' is not a source of COPY"},
        {"line that does not lex", "FROM a\nRUN echo \"it's <<EOF\nEOF\n", NULL,
         "Dockerfile:3: unknown instruction 'EOF'"},
};

static void test_heredoc_cases(void **state)
{
    (void)state;
    assert_int_equal(run_cases(heredoc_cases, MAR_ARRAY_SIZE(heredoc_cases)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_flags),       cmocka_unit_test(test_copy),
            cmocka_unit_test(test_run),         cmocka_unit_test(test_mount_reparse),
            cmocka_unit_test(test_healthcheck), cmocka_unit_test(test_onbuild),
            cmocka_unit_test(test_heredocs),    cmocka_unit_test(test_heredoc_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
