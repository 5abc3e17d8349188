/* Transport security against a TLS registry of the test bed: certificates are verified, a CA
 * from a certs.d directory is trusted for its registry only, --insecure-registry skips
 * verification with a warning, and HTTP/2 is used where the server offers it. */
#include "itest.h"

#include <string.h>
#include <sys/stat.h>

static char *ref;
static const char *host;

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_TLS_REGISTRY", "MAR_TEST_TLS_CA", NULL};
    itest_require(need);
    host = itest_bed("MAR_TEST_TLS_REGISTRY");
    ref = mar_xasprintf("%s/mar/multi:latest", host);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(ref);
    return 0;
}

static void test_untrusted_certificate_fails(void **state)
{
    (void)state;
    _cleanup_free_ char *xdg = mar_xasprintf("XDG_CONFIG_HOME=%s/no-certs", itest_tmpdir());
    const char *env[] = {xdg, NULL};
    itest_run r;
    itest_mar(&r, env, "--tls-registry", host, "inspect", ref, NULL);
    assert_int_equal(r.status, 5);
    assert_contains(r.err.data, "TLS failure");
    assert_contains(r.err.data, host);
    assert_string_equal(r.out.data, "");
    itest_run_release(&r);
}

static void test_certs_d_ca(void **state)
{
    (void)state;
    mar_buf ca = MAR_BUF_INIT(1 << 20);
    mar_err *e = NULL;
    assert_int_equal(mar_read_file_at(-100, itest_bed("MAR_TEST_TLS_CA"), 1 << 20, &ca, &e), 0);
    _cleanup_free_ char *name = mar_xasprintf("xdg/mar/certs.d/%s/ca.crt", host);
    _cleanup_free_ char *d1 = mar_xasprintf("%s/xdg", itest_tmpdir());
    _cleanup_free_ char *d2 = mar_xasprintf("%s/xdg/mar", itest_tmpdir());
    _cleanup_free_ char *d3 = mar_xasprintf("%s/xdg/mar/certs.d", itest_tmpdir());
    _cleanup_free_ char *d4 = mar_xasprintf("%s/xdg/mar/certs.d/%s", itest_tmpdir(), host);
    mkdir(d1, 0700);
    mkdir(d2, 0700);
    mkdir(d3, 0700);
    mkdir(d4, 0700);
    free(itest_write(name, ca.data, 0644));
    mar_buf_release(&ca);
    _cleanup_free_ char *xdg = mar_xasprintf("XDG_CONFIG_HOME=%s/xdg", itest_tmpdir());
    _cleanup_free_ char *tls = mar_xasprintf("MAR_TLS_REGISTRIES=%s", host);
    const char *env[] = {xdg, tls, NULL};
    itest_run r;
    itest_mar(&r, env, "--debug", "inspect", ref, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "linux/s390x");
    /* Go's server offers h2 over TLS: one multiplexed connection. */
    assert_contains(r.err.data, "HTTP/2");
    assert_not_contains(r.err.data, "insecure");
    itest_run_release(&r);
}

static void test_insecure_registry(void **state)
{
    (void)state;
    _cleanup_free_ char *xdg = mar_xasprintf("XDG_CONFIG_HOME=%s/no-certs", itest_tmpdir());
    const char *env[] = {xdg, NULL};
    itest_run r;
    itest_mar(&r, env, "--insecure-registry", host, "inspect", "--json", ref, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "\"attestations\":2");
    _cleanup_free_ char *warn = mar_xasprintf("mar: warning: registry '%s' is insecure", host);
    assert_contains(r.err.data, warn);
    itest_run_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_untrusted_certificate_fails),
            cmocka_unit_test(test_certs_d_ca),
            cmocka_unit_test(test_insecure_registry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
