/* mar copy's endpoint names (docs/mar-copy.1.md): oci:DIR[:TAG], oci-archive:FILE[:TAG],
 * docker://REF and plain references; a path may hold colons, a tag never holds '/'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "registry/registry.h"

static const struct {
    const char *in;
    int kind; /* 0: error */
    const char *path;
    const char *tag; /* layouts: the tag; registries: the canonical reference */
} cases[] = {
        {"oci:/tmp/layout", REG_END_LAYOUT, "/tmp/layout", NULL},
        {"oci:/tmp/layout:v1", REG_END_LAYOUT, "/tmp/layout", "v1"},
        {"oci:rel/dir:1.0-rc", REG_END_LAYOUT, "rel/dir", "1.0-rc"},
        {"oci:/tmp/a:b/c", REG_END_LAYOUT, "/tmp/a:b/c", NULL},
        {"oci:/tmp/x:", REG_END_LAYOUT, "/tmp/x:", NULL},
        {"oci:", 0, NULL, NULL},
        {"oci::v1", REG_END_LAYOUT, ":v1", NULL},
        {"oci-archive:/tmp/img.tar", REG_END_ARCHIVE, "/tmp/img.tar", NULL},
        {"oci-archive:/tmp/img.tar:latest", REG_END_ARCHIVE, "/tmp/img.tar", "latest"},
        {"oci-archive:", 0, NULL, NULL},
        {"docker://127.0.0.1:5000/team/app:1.4", REG_END_REGISTRY, NULL,
         "127.0.0.1:5000/team/app:1.4"},
        {"127.0.0.1:5000/team/app", REG_END_REGISTRY, NULL, "127.0.0.1:5000/team/app:latest"},
        {"docker://UPPER/Bad:tag", 0, NULL, NULL},
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reg_endpoint e;
        mar_err *err = NULL;
        int rc = reg_endpoint_parse(cases[i].in, &e, &err);
        if (!cases[i].kind) {
            if (rc == 0) {
                fail_msg("'%s' parsed", cases[i].in);
            }
            assert_int_equal(mar_err_code(err), MAR_EUSAGE);
            mar_err_free(err);
            continue;
        }
        if (rc < 0) {
            fail_msg("'%s': %s", cases[i].in, err->msg);
        }
        assert_int_equal(e.kind, cases[i].kind);
        if (e.kind == REG_END_REGISTRY) {
            char *s = oci_ref_string(&e.ref);
            assert_string_equal(s, cases[i].tag);
            free(s);
        } else {
            assert_string_equal(e.path, cases[i].path);
            if (cases[i].tag) {
                assert_non_null(e.tag);
                assert_string_equal(e.tag, cases[i].tag);
            } else {
                assert_null(e.tag);
            }
        }
        reg_endpoint_release(&e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
