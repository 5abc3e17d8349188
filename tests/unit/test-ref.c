/* References: Docker's grammar and Hub normalization (docs/internals/registry-protocol.md §1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "oci/oci.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct {
    const char *in;
    const char *canonical; /* NULL: error */
    const char *api_host;
    int code;
} cases[] = {
        {"alpine", "docker.io/library/alpine:latest", "registry-1.docker.io", 0},
        {"alpine:3.20", "docker.io/library/alpine:3.20", "registry-1.docker.io", 0},
        {"user/app", "docker.io/user/app:latest", "registry-1.docker.io", 0},
        {"docker.io/alpine", "docker.io/library/alpine:latest", "registry-1.docker.io", 0},
        {"index.docker.io/user/app", "docker.io/user/app:latest", "registry-1.docker.io", 0},
        {"localhost/app", "localhost/app:latest", "localhost", 0},
        {"localhost:5000/app", "localhost:5000/app:latest", "localhost:5000", 0},
        {"registry.example.com:5000/team/app:1.0", "registry.example.com:5000/team/app:1.0",
         "registry.example.com:5000", 0},
        {"127.0.0.1:5000/mar/multi", "127.0.0.1:5000/mar/multi:latest", "127.0.0.1:5000", 0},
        {"[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000", 0},
        {"Foo/app", "Foo/app:latest", "Foo", 0},
        {"alpine@sha256:" HEX64, "docker.io/library/alpine@sha256:" HEX64, "registry-1.docker.io",
         0},
        {"app:1@sha256:" HEX64, "docker.io/library/app:1@sha256:" HEX64, "registry-1.docker.io", 0},
        {"ghcr.io/a/b/c-d__e.f:v1_2-3", "ghcr.io/a/b/c-d__e.f:v1_2-3", "ghcr.io", 0},
        {"a---b/c", "docker.io/a---b/c:latest", "registry-1.docker.io", 0},
        {HEX64, NULL, NULL, MAR_EUSAGE},
        {"User/App", NULL, NULL, MAR_EUSAGE},
        {"example.com/App", NULL, NULL, MAR_EUSAGE},
        {"", NULL, NULL, MAR_EUSAGE},
        {"alpine:", NULL, NULL, MAR_EUSAGE},
        {"alpine:.bad", NULL, NULL, MAR_EUSAGE},
        {"a//b", NULL, NULL, MAR_EUSAGE},
        {"a/b/", NULL, NULL, MAR_EUSAGE},
        {"a_/b", NULL, NULL, MAR_EUSAGE},
        {"a___b", NULL, NULL, MAR_EUSAGE},
        {"example.com:port/app", NULL, NULL, MAR_EUSAGE},
        {"-host.com/app", NULL, NULL, MAR_EUSAGE},
        {"alpine@sha256:abc", NULL, NULL, MAR_EUSAGE},
        {"alpine@md5:" HEX64, NULL, NULL, MAR_EUNSUPPORTED},
        {"x@", NULL, NULL, MAR_EUSAGE},
        {"x@@sha256:" HEX64, NULL, NULL, MAR_EUSAGE},
        {"x@sha256:" HEX64 "@sha256:" HEX64, NULL, NULL, MAR_EUSAGE},
        {"user:pw@example.com/x", NULL, NULL, MAR_EUSAGE},
        {"user@example.com/x:1", NULL, NULL, MAR_EUSAGE},
        {"x@not a digest", NULL, NULL, MAR_EUSAGE},
        {"example.com:99999/x", NULL, NULL, MAR_EUSAGE},
        {"example.com:0/x", NULL, NULL, MAR_EUSAGE},
        {"example.com:65536/x", NULL, NULL, MAR_EUSAGE},
        {"[::1]:0/x", NULL, NULL, MAR_EUSAGE},
        {"example.com/", NULL, NULL, MAR_EUSAGE},
};

static void test_refs(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        oci_ref r;
        mar_err *e = NULL;
        int rc = oci_ref_parse(cases[i].in, &r, &e);
        if (cases[i].canonical) {
            if (rc < 0) {
                print_error("'%s': unexpected error %s\n", cases[i].in, e->msg);
                mar_err_free(e);
                bad++;
                continue;
            }
            char *s = oci_ref_string(&r);
            if (strcmp(s, cases[i].canonical) != 0 || strcmp(r.api_host, cases[i].api_host) != 0) {
                print_error("'%s': got %s @ %s\n", cases[i].in, s, r.api_host);
                bad++;
            }
            free(s);
            oci_ref_release(&r);
        } else {
            int code = rc < 0 ? mar_err_code(e) : 0;
            if (rc == 0 || code != cases[i].code) {
                print_error("'%s': want error %d, got %d\n", cases[i].in, cases[i].code, code);
                bad++;
            }
            if (rc == 0) {
                oci_ref_release(&r);
            }
            mar_err_free(e);
        }
    }
    assert_int_equal(bad, 0);
}

static void test_target_and_repo(void **state)
{
    (void)state;
    oci_ref r;
    mar_err *e = NULL;
    assert_int_equal(oci_ref_parse("localhost:5000/a/b:t@sha256:" HEX64, &r, &e), 0);
    assert_string_equal(oci_ref_target(&r), "sha256:" HEX64);
    char *repo = oci_ref_repo(&r);
    assert_string_equal(repo, "localhost:5000/a/b");
    free(repo);
    assert_string_equal(r.tag, "t");
    oci_ref_release(&r);
    assert_int_equal(oci_ref_parse("x/y:tag", &r, &e), 0);
    assert_string_equal(oci_ref_target(&r), "tag");
    assert_string_equal(r.path, "x/y");
    oci_ref_release(&r);
}

static void test_error_message(void **state)
{
    (void)state;
    oci_ref r;
    mar_err *e = NULL;
    assert_int_equal(oci_ref_parse("User/App", &r, &e), -MAR_EUSAGE);
    assert_non_null(strstr(e->msg, "must be lowercase"));
    mar_err_free(e);
    e = NULL;
    assert_int_equal(oci_ref_parse(HEX64, &r, &e), -MAR_EUSAGE);
    assert_non_null(strstr(e->msg, "64-byte hexadecimal"));
    e = mar_err_free(e);
    /* Each names the actual problem; credentials are not echoed. */
    static const struct {
        const char *ref, *msg;
    } msgs[] = {
            {"x@", "no digest after '@'"},
            {"x@@sha256:" HEX64, "more than one '@'"},
            {"user:s3cret@example.com/x", "credentials never go in a reference"},
            {"example.com:99999/x", "port '99999' in 'example.com:99999/x' is not 1-65535"},
            {"example.com:0/x", "port '0'"},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(msgs); i++) {
        assert_int_equal(oci_ref_parse(msgs[i].ref, &r, &e), -MAR_EUSAGE);
        assert_non_null(strstr(e->msg, msgs[i].msg));
        assert_null(strstr(e->msg, "s3cret"));
        e = mar_err_free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_refs),
            cmocka_unit_test(test_target_and_repo),
            cmocka_unit_test(test_error_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
