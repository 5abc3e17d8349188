/* mar inspect against registries that need authentication: distribution's token auth (with a
 * token server of the test bed) and htpasswd basic auth; credentials from config.json, a
 * credential helper, and an identity token. The password is a canary that must never show up in
 * mar's output. */
#include "itest.h"

#include <string.h>

static const char *user, *pass, *refresh;

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_TOKEN_REGISTRY", "MAR_TEST_BASIC_REGISTRY",
                                "MAR_TEST_USER",           "MAR_TEST_PASSWORD",
                                "MAR_TEST_TOKEN_LOG",      NULL};
    itest_require(need);
    user = itest_bed("MAR_TEST_USER");
    pass = itest_bed("MAR_TEST_PASSWORD");
    refresh = itest_bed("MAR_TEST_REFRESH_TOKEN");
    return 0;
}

static char *b64(const char *s)
{
    itest_run r;
    _cleanup_free_ char *cmd = mar_xasprintf("printf %%s '%s' | base64 -w0", s);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, argv);
    char *out = mar_xstrdup(r.out.data);
    itest_run_release(&r);
    return out;
}

static char *ref_on(const char *reg_var)
{
    return mar_xasprintf("%s/mar/multi:latest", itest_bed(reg_var));
}

static void check_no_canary(const itest_run *r)
{
    assert_not_contains(r->out.data, pass);
    assert_not_contains(r->err.data, pass);
    if (refresh) {
        assert_not_contains(r->err.data, refresh);
    }
}

static size_t token_log_lines(void)
{
    itest_run r;
    const char *argv[] = {"wc", "-l", itest_bed("MAR_TEST_TOKEN_LOG"), NULL};
    itest_runv(&r, NULL, argv);
    int64_t n = 0;
    char *sp = strchr(r.out.data, ' ');
    if (sp) {
        *sp = '\0';
    }
    mar_parse_i64(r.out.data, 0, INT64_MAX, &n);
    itest_run_release(&r);
    return (size_t)n;
}

static void test_anonymous_is_refused(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = mar_xasprintf("DOCKER_CONFIG=%s/empty", itest_tmpdir());
    const char *env[] = {dir, NULL};
    itest_run r;
    _cleanup_free_ char *tref = ref_on("MAR_TEST_TOKEN_REGISTRY");
    itest_mar(&r, env, "inspect", tref, NULL);
    assert_int_equal(r.status, 4);
    assert_contains(r.err.data, "cannot inspect");
    assert_contains(r.err.data, itest_bed("MAR_TEST_TOKEN_REGISTRY"));
    itest_run_release(&r);
    _cleanup_free_ char *bref = ref_on("MAR_TEST_BASIC_REGISTRY");
    itest_mar(&r, env, "inspect", bref, NULL);
    assert_int_equal(r.status, 4);
    assert_contains(r.err.data, "requires authentication");
    itest_run_release(&r);
}

static void test_config_json(void **state)
{
    (void)state;
    _cleanup_free_ char *pair = mar_xasprintf("%s:%s", user, pass);
    _cleanup_free_ char *auth = b64(pair);
    _cleanup_free_ char *cfg = mar_xasprintf(
            "{\"auths\":{\"%s\":{\"auth\":\"%s\"},\"http://%s/v2/\":{\"username\":\"%s\","
            "\"password\":\"%s\"}}}",
            itest_bed("MAR_TEST_TOKEN_REGISTRY"), auth, itest_bed("MAR_TEST_BASIC_REGISTRY"), user,
            pass);
    free(itest_write("cfg1/config.json", cfg, 0600));
    _cleanup_free_ char *env0 = mar_xasprintf("DOCKER_CONFIG=%s/cfg1", itest_tmpdir());
    const char *env[] = {env0, NULL};
    size_t before = token_log_lines();
    itest_run r;
    _cleanup_free_ char *tref = ref_on("MAR_TEST_TOKEN_REGISTRY");
    itest_mar(&r, env, "--debug", "inspect", tref, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "linux/s390x");
    check_no_canary(&r);
    /* One token for the whole inspect: 8 manifests and 8 configs reuse it. */
    assert_int_equal(token_log_lines() - before, 1);
    assert_contains(r.err.data, "1 token fetches");
    itest_run_release(&r);

    _cleanup_free_ char *bref = ref_on("MAR_TEST_BASIC_REGISTRY");
    itest_mar(&r, env, "--debug", "inspect", bref, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "linux/mips64le");
    check_no_canary(&r);
    itest_run_release(&r);
}

static void test_wrong_password(void **state)
{
    (void)state;
    _cleanup_free_ char *cfg = mar_xasprintf(
            "{\"auths\":{\"%s\":{\"username\":\"%s\",\"password\":\"wrong\"},"
            "\"%s\":{\"username\":\"%s\",\"password\":\"wrong\"}}}",
            itest_bed("MAR_TEST_TOKEN_REGISTRY"), user, itest_bed("MAR_TEST_BASIC_REGISTRY"), user);
    free(itest_write("cfg2/config.json", cfg, 0600));
    _cleanup_free_ char *env0 = mar_xasprintf("DOCKER_CONFIG=%s/cfg2", itest_tmpdir());
    const char *env[] = {env0, NULL};
    itest_run r;
    _cleanup_free_ char *tref = ref_on("MAR_TEST_TOKEN_REGISTRY");
    itest_mar(&r, env, "inspect", tref, NULL);
    assert_int_equal(r.status, 4);
    assert_contains(r.err.data, "token request");
    assert_not_contains(r.err.data, "wrong");
    itest_run_release(&r);
    _cleanup_free_ char *bref = ref_on("MAR_TEST_BASIC_REGISTRY");
    itest_mar(&r, env, "inspect", bref, NULL);
    assert_int_equal(r.status, 4);
    assert_contains(r.err.data, "rejected");
    itest_run_release(&r);
}

static void test_credential_helper(void **state)
{
    (void)state;
    _cleanup_free_ char *script = mar_xasprintf(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread server\n"
            "echo \"$server\" >> %s/helper-calls\n"
            "printf '{\"ServerURL\":\"%%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}' \"$server\"\n",
            itest_tmpdir(), user, pass);
    free(itest_write("bin/docker-credential-martest", script, 0755));
    _cleanup_free_ char *cfg = mar_xasprintf("{\"credHelpers\":{\"%s\":\"martest\"},"
                                             "\"credsStore\":\"martest\"}",
                                             itest_bed("MAR_TEST_TOKEN_REGISTRY"));
    free(itest_write("cfg3/config.json", cfg, 0600));
    _cleanup_free_ char *env0 = mar_xasprintf("DOCKER_CONFIG=%s/cfg3", itest_tmpdir());
    _cleanup_free_ char *env1 = mar_xasprintf("PATH=%s/bin:%s", itest_tmpdir(), getenv("PATH"));
    const char *env[] = {env0, env1, NULL};
    itest_run r;
    _cleanup_free_ char *tref = ref_on("MAR_TEST_TOKEN_REGISTRY");
    itest_mar(&r, env, "--debug", "inspect", tref, NULL);
    assert_int_equal(r.status, 0);
    check_no_canary(&r);
    itest_run_release(&r);
    /* The helper was asked once, for the registry host, on stdin (never argv). */
    _cleanup_free_ char *calls = mar_xasprintf("%s/helper-calls", itest_tmpdir());
    mar_buf b = MAR_BUF_INIT(4096);
    mar_err *e = NULL;
    assert_int_equal(mar_read_file_at(-100, calls, 4096, &b, &e), 0);
    _cleanup_free_ char *want = mar_xasprintf("%s\n", itest_bed("MAR_TEST_TOKEN_REGISTRY"));
    assert_string_equal(b.data, want);
    mar_buf_release(&b);
}

static void test_identity_token(void **state)
{
    (void)state;
    _cleanup_free_ char *cfg = mar_xasprintf("{\"auths\":{\"%s\":{\"identitytoken\":\"%s\"}}}",
                                             itest_bed("MAR_TEST_TOKEN_REGISTRY"), refresh);
    free(itest_write("cfg4/config.json", cfg, 0600));
    _cleanup_free_ char *env0 = mar_xasprintf("DOCKER_CONFIG=%s/cfg4", itest_tmpdir());
    const char *env[] = {env0, NULL};
    itest_run r;
    _cleanup_free_ char *tref = ref_on("MAR_TEST_TOKEN_REGISTRY");
    itest_mar(&r, env, "--debug", "inspect", "--json", tref, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "\"attestations\":2");
    check_no_canary(&r);
    itest_run_release(&r);
}

/* A failing helper: mar says that it failed and its exit status, and repeats nothing it wrote
 * (docs/mar.1.md REGISTRIES: helper output is never echoed). */
static void test_failing_helper_not_echoed(void **state)
{
    (void)state;
    _cleanup_free_ char *script = mar_xasprintf("#!/bin/sh\nread server\n"
                                                "echo 'stderr says %s' >&2\n"
                                                "echo 'stdout says %s'\nexit 3\n",
                                                pass, pass);
    free(itest_write("bin5/docker-credential-marfail", script, 0755));
    _cleanup_free_ char *cfg = mar_xasprintf("{\"credHelpers\":{\"%s\":\"marfail\"}}",
                                             itest_bed("MAR_TEST_TOKEN_REGISTRY"));
    free(itest_write("cfg5/config.json", cfg, 0600));
    _cleanup_free_ char *env0 = mar_xasprintf("DOCKER_CONFIG=%s/cfg5", itest_tmpdir());
    _cleanup_free_ char *env1 = mar_xasprintf("PATH=%s/bin5:%s", itest_tmpdir(), getenv("PATH"));
    const char *env[] = {env0, env1, NULL};
    itest_run r;
    _cleanup_free_ char *tref = ref_on("MAR_TEST_TOKEN_REGISTRY");
    itest_mar(&r, env, "--debug", "inspect", tref, NULL);
    /* Without credentials the token registry refuses: authentication (4). */
    assert_int_equal(r.status, 4);
    assert_contains(r.err.data,
                    "credential helper 'docker-credential-marfail' failed with status 3, ignoring");
    assert_not_contains(r.err.data, "says");
    check_no_canary(&r);
    itest_run_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_anonymous_is_refused),
            cmocka_unit_test(test_config_json),
            cmocka_unit_test(test_wrong_password),
            cmocka_unit_test(test_credential_helper),
            cmocka_unit_test(test_identity_token),
            cmocka_unit_test(test_failing_helper_not_echoed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
