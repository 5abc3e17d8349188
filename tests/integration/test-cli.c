/* The command-line skeleton: help, version, and exit status 2 for every usage error. */
#include "itest.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_help_and_version),
            cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
