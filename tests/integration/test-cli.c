/* The command-line skeleton: help, version, and exit status 2 for every usage error. */
#include "itest.h"

#include <fcntl.h>
#include <string.h>

static void test_help_and_version(void **state)
{
    (void)state;
    itest_run r;
    itest_mar(&r, NULL, "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "usage: mar");
    assert_contains(r.out.data, "inspect");
    itest_run_release(&r);

    itest_mar(&r, NULL, "--version", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "mar ");
    itest_run_release(&r);

    itest_mar(&r, NULL, "version", NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);

    itest_mar(&r, NULL, "help", "inspect", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "usage: mar inspect");
    assert_contains(r.out.data, "--platform");
    assert_contains(r.out.data, "--json");
    assert_contains(r.out.data, "Exit status");
    itest_run_release(&r);

    itest_mar(&r, NULL, "inspect", "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "--target");
    itest_run_release(&r);
}

static void expect_usage(const char *a, const char *b, const char *c, const char *msg)
{
    itest_run r;
    itest_mar(&r, NULL, a, b, c, NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out.data, "");
    assert_contains(r.err.data, msg);
    assert_contains(r.err.data, "usage:");
    itest_run_release(&r);
}

static void test_usage_errors(void **state)
{
    (void)state;
    expect_usage("frobnicate", NULL, NULL, "unknown verb 'frobnicate'");
    expect_usage("inspect", "--bogus", "x", "unknown option '--bogus'");
    expect_usage("inspect", NULL, NULL, "'inspect' takes");
    expect_usage("inspect", "a", "b", "'inspect' takes");
    expect_usage("inspect", "x", "--platform", "needs a value");
    expect_usage("--nonsense", "inspect", "x", "unknown global option");
    expect_usage("help", "frobnicate", NULL, "unknown verb");

    itest_run r;
    itest_mar(&r, NULL, NULL);
    assert_int_equal(r.status, 2);
    itest_run_release(&r);
    /* A verb's own usage errors print the message and the verb's usage line, as parse errors. */
    itest_mar(&r, NULL, "inspect", "--raw", "--json", "x", NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err.data, "mar: --raw and --json exclude each other\nusage: mar inspect ");
    itest_run_release(&r);
    itest_mar(&r, NULL, "pull", "--all-platforms", "--platform", "linux/arm64", "x", NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err.data, "usage: mar pull ");
    itest_run_release(&r);
    itest_mar(&r, NULL, "inspect", "--platform", "linux/*", "x", NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err.data, "wildcards");
    itest_run_release(&r);
    itest_mar(&r, NULL, "inspect", "--target", "amiga", "x", NULL);
    assert_int_equal(r.status, 2);
    itest_run_release(&r);
    itest_mar(&r, NULL, "inspect", "Not/Valid", NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err.data, "must be lowercase");
    itest_run_release(&r);
}

/* ---- global options, before and after the verb ------------------------------------------------
 * The table is read from `mar help images` (it prints the global option table), so an option
 * added to the table without a check here fails this test. */

typedef struct global_opt {
    char name[32];
    char short_name;
    bool has_value;
} global_opt;

static size_t read_global_table(global_opt *ret, size_t max)
{
    itest_run r;
    itest_mar(&r, NULL, "help", "images", NULL);
    assert_int_equal(r.status, 0);
    const char *sec = strstr(r.out.data, "\nGlobal options:\n");
    assert_non_null(sec);
    size_t n = 0;
    for (const char *line = strchr(sec + 1, '\n') + 1; *line && *line != '\n' && n < max;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        const char *dd = strstr(line, "--");
        /* "  -q, --quiet  help" or "      --store DIR  help" */
        if (dd && dd < line + len && (line[2] == '-' || line[2] == ' ') && dd <= line + 6) {
            global_opt *o = &ret[n++];
            memset(o, 0, sizeof(*o));
            o->short_name = line[2] == '-' ? line[3] : 0;
            size_t k = 0;
            for (const char *p = dd + 2; *p && *p != ' ' && *p != '\n' && k + 1 < sizeof(o->name);
                 p++) {
                o->name[k++] = *p;
            }
            const char *after = dd + 2 + k;
            o->has_value = after[0] == ' ' && after[1] != ' ';
        }
        line = eol ? eol + 1 : line + len;
    }
    itest_run_release(&r);
    return n;
}

/* Runs mar with `opt` (and its value) placed before the verb (before = true) or right after the
 * verb's words, and the rest of the arguments. */
static void run_placed(itest_run *r, bool before, const char *opt, const char *value,
                       const char *const *verb, const char *const *rest)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = getenv("MAR_BIN");
    if (before) {
        argv[n++] = opt;
        if (value) {
            argv[n++] = value;
        }
    }
    for (size_t i = 0; verb[i]; i++) {
        argv[n++] = verb[i];
    }
    if (!before) {
        argv[n++] = opt;
        if (value) {
            argv[n++] = value;
        }
    }
    for (size_t i = 0; rest && rest[i]; i++) {
        argv[n++] = rest[i];
    }
    argv[n] = NULL;
    itest_runv(r, NULL, argv);
}

static char *registry_host(const char *ref)
{
    return mar_xstrndup(ref, strcspn(ref, "/"));
}

/* Checks that one spelling of a global option has its effect on both sides of the verb. */
static void check_global(const global_opt *o, const char *spelling)
{
    const char *ref = itest_fixture_ref("multi");
    _cleanup_free_ char *host = registry_host(ref);
    static int n;
    itest_run r;
    for (int before = 0; before < 2; before++) {
        print_message("global option %s %s the verb\n", spelling, before ? "before" : "after");
        _cleanup_free_ char *store = mar_xasprintf("%s/global-store%d", itest_tmpdir(), ++n);
        if (strcmp(o->name, "help") == 0) {
            const char *verb[] = {"images", NULL};
            run_placed(&r, before, spelling, NULL, verb, NULL);
            assert_int_equal(r.status, 0);
            assert_contains(r.out.data, "usage: mar images");
        } else if (strcmp(o->name, "debug") == 0) {
            const char *verb[] = {"inspect", NULL};
            const char *rest[] = {ref, NULL};
            run_placed(&r, before, spelling, NULL, verb, rest);
            assert_int_equal(r.status, 0);
            assert_contains(r.err.data, "mar: debug: ");
        } else if (strcmp(o->name, "quiet") == 0) {
            /* A pull prints its "pulled" summary unless quiet. */
            const char *verb[] = {"pull", NULL};
            const char *rest[] = {"--store", store, ref, NULL};
            run_placed(&r, before, spelling, NULL, verb, rest);
            assert_int_equal(r.status, 0);
            assert_not_contains(r.err.data, "pulled");
        } else if (strcmp(o->name, "insecure-registry") == 0) {
            const char *verb[] = {"inspect", NULL};
            const char *rest[] = {ref, NULL};
            run_placed(&r, before, spelling, host, verb, rest);
            assert_int_equal(r.status, 0);
            assert_contains(r.err.data, "is insecure");
        } else if (strcmp(o->name, "tls-registry") == 0) {
            /* The bed's plain registry asked for verified HTTPS: a TLS failure. */
            const char *verb[] = {"inspect", NULL};
            const char *rest[] = {ref, NULL};
            run_placed(&r, before, spelling, host, verb, rest);
            assert_int_equal(r.status, 5);
            assert_contains(r.err.data, "TLS");
        } else if (strcmp(o->name, "binfmt-root") == 0) {
            _cleanup_free_ char *root = mar_xasprintf("%s/binfmt%d", itest_tmpdir(), n);
            const char *verb[] = {"binfmt", "status", NULL};
            const char *rest[] = {"--no-probe", "--json", NULL};
            run_placed(&r, before, spelling, root, verb, rest);
            assert_int_equal(r.status, 0);
            json_t *doc = itest_json(r.out.data);
            assert_string_equal(json_string_value(json_object_get(doc, "root")), root);
            json_decref(doc);
        } else if (strcmp(o->name, "store") == 0) {
            const char *verb[] = {"images", NULL};
            const char *rest[] = {"--json", NULL};
            run_placed(&r, before, spelling, store, verb, rest);
            assert_int_equal(r.status, 0);
            json_t *doc = itest_json(r.out.data);
            assert_string_equal(json_string_value(json_object_get(doc, "store")), store);
            json_decref(doc);
        } else {
            fail_msg("no check for the global option '--%s': add one", o->name);
        }
        itest_run_release(&r);
    }
}

static void test_global_options_anywhere(void **state)
{
    (void)state;
    global_opt opts[32];
    size_t n = read_global_table(opts, 32);
    assert_true(n >= 7);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *lng = mar_xasprintf("--%s", opts[i].name);
        check_global(&opts[i], lng);
        if (opts[i].short_name) {
            char shrt[3] = {'-', opts[i].short_name, '\0'};
            check_global(&opts[i], shrt);
        }
    }

    /* Without the options, the effects are absent (the checks above mean something). */
    const char *ref = itest_fixture_ref("multi");
    _cleanup_free_ char *store = mar_xasprintf("%s/global-plain", itest_tmpdir());
    itest_run r;
    itest_mar(&r, NULL, "pull", "--store", store, ref, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.err.data, "pulled");
    itest_run_release(&r);
    itest_mar(&r, NULL, "inspect", ref, NULL);
    assert_int_equal(r.status, 0);
    assert_not_contains(r.err.data, "debug:");
    assert_not_contains(r.err.data, "is insecure");
    itest_run_release(&r);

    /* The other spellings: VALUE after '=', grouped short flags, a missing value. */
    _cleanup_free_ char *eq = mar_xasprintf("--store=%s", store);
    itest_mar(&r, NULL, eq, "images", "--json", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, store);
    itest_run_release(&r);
    itest_mar(&r, NULL, "-qh", "pull", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "usage: mar pull");
    itest_run_release(&r);
    itest_mar(&r, NULL, "--store", NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err.data, "needs a value");
    itest_run_release(&r);
    itest_mar(&r, NULL, "--debug=1", "images", NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err.data, "unknown global option '--debug=1'");
    itest_run_release(&r);
}

/* Runs mar with stdout on /dev/full (every write fails with ENOSPC) and returns its status; the
 * diagnostics land in *err. */
static int run_full(mar_buf *err, const char *const *args)
{
    static int n;
    _cleanup_free_ char *errpath = mar_xasprintf("%s/full-err%d", itest_tmpdir(), ++n);
    int status = itest_wait(itest_mar_spawn(NULL, "/dev/full", errpath, args));
    mar_err *e = NULL;
    assert_int_equal(mar_read_file_at(AT_FDCWD, errpath, 1 << 20, err, &e), 0);
    return status;
}

/* A failed write to stdout is a failure with one line on stderr (docs/mar.1.md EXIT STATUS), as
 * for coreutils: output that was lost must not exit 0. */
static void test_stdout_write_error(void **state)
{
    (void)state;
    _cleanup_free_ char *root = mar_xasprintf("%s/binfmt-full", itest_tmpdir());
    const char *version[] = {"version", NULL};
    const char *help[] = {"--help", NULL};
    const char *status[] = {"--binfmt-root", root,     "binfmt", "status",
                            "--no-probe",    "--json", NULL};
    const char *const *cmds[] = {version, help, status};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        mar_buf err = MAR_BUF_INIT(1 << 20);
        int st = run_full(&err, cmds[i]);
        assert_int_equal(st, MAR_EIO);
        assert_string_equal(err.data, "mar: write error: No space left on device\n");
        mar_buf_release(&err);
    }

    /* The same commands with a working stdout still succeed (the check is about the write). */
    itest_run r;
    itest_mar(&r, NULL, "--binfmt-root", root, "binfmt", "status", "--no-probe", "--json", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err.data, "");
    itest_run_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_help_and_version),
            cmocka_unit_test(test_usage_errors),
            cmocka_unit_test(test_global_options_anywhere),
            cmocka_unit_test(test_stdout_write_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
