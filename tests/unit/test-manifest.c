/* The manifest parser over the data-driven cases in testdata/manifests (valid and invalid),
 * plus config parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>

#include "oci/oci.h"

static const char *exp_field(const char *exp, const char *key, char *buf, size_t n)
{
    size_t kl = strlen(key);
    for (const char *l = exp; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) : strlen(l);
        if (ll > kl && strncmp(l, key, kl) == 0 && l[kl] == '=') {
            snprintf(buf, n, "%.*s", (int)(ll - kl - 1), l + kl + 1);
            return buf;
        }
        l = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static int run_case(const char *dir)
{
    _cleanup_free_ char *in = mar_xasprintf("%s/input.json", dir);
    _cleanup_free_ char *ex = mar_xasprintf("%s/expected", dir);
    mar_buf body = MAR_BUF_INIT(1 << 20), exp = MAR_BUF_INIT(1 << 16);
    mar_err *e = NULL;
    assert_int_equal(mar_read_file_at(AT_FDCWD, in, 1 << 20, &body, &e), 0);
    assert_int_equal(mar_read_file_at(AT_FDCWD, ex, 1 << 16, &exp, &e), 0);
    char ct[256], v[256];
    exp_field(exp.data, "content-type", ct, sizeof(ct));
    oci_manifest *m = NULL;
    int rc = oci_manifest_parse(body.data, body.len, ct, &m, &e);
    int bad = 0;
    if (exp_field(exp.data, "error", v, sizeof(v))) {
        int64_t code;
        mar_parse_i64(v, 0, 99, &code);
        if (rc == 0 || mar_err_code(e) != code) {
            print_error("%s: want error %lld, got rc %d (%s)\n", dir, (long long)code, rc,
                        e ? e->msg : "ok");
            bad++;
        } else if (exp_field(exp.data, "message", v, sizeof(v)) && !strstr(e->msg, v)) {
            print_error("%s: message '%s' lacks '%s'\n", dir, e->msg, v);
            bad++;
        }
    } else if (rc < 0) {
        print_error("%s: unexpected error: %s\n", dir, e->msg);
        bad++;
    } else {
        if (exp_field(exp.data, "kind", v, sizeof(v)) &&
            (strcmp(v, "index") == 0) != (m->kind == OCI_KIND_INDEX)) {
            print_error("%s: wrong kind\n", dir);
            bad++;
        }
        int64_t n;
        if (exp_field(exp.data, "manifests", v, sizeof(v)) && mar_parse_i64(v, 0, 99, &n) &&
            (size_t)n != m->n_manifests) {
            print_error("%s: %zu manifests, want %lld\n", dir, m->n_manifests, (long long)n);
            bad++;
        }
        if (exp_field(exp.data, "layers", v, sizeof(v)) && mar_parse_i64(v, 0, 99, &n) &&
            (size_t)n != m->n_layers) {
            print_error("%s: %zu layers, want %lld\n", dir, m->n_layers, (long long)n);
            bad++;
        }
        if (exp_field(exp.data, "image", v, sizeof(v)) &&
            oci_manifest_is_image(m) != (strcmp(v, "1") == 0)) {
            print_error("%s: is_image wrong\n", dir);
            bad++;
        }
        if (exp_field(exp.data, "subject", v, sizeof(v)) && !m->has_subject) {
            print_error("%s: no subject\n", dir);
            bad++;
        }
        if (exp_field(exp.data, "attestations", v, sizeof(v))) {
            size_t att = 0;
            for (size_t i = 0; i < m->n_manifests; i++) {
                att += oci_descriptor_is_attestation(&m->manifests[i]);
            }
            mar_parse_i64(v, 0, 99, &n);
            if (att != (size_t)n) {
                print_error("%s: %zu attestations\n", dir, att);
                bad++;
            }
        }
    }
    oci_manifest_free(m);
    mar_err_free(e);
    mar_buf_release(&body);
    mar_buf_release(&exp);
    return bad;
}

static int run_dir(const char *sub, size_t *count)
{
    const char *td = getenv("MAR_TESTDATA");
    assert_non_null(td);
    _cleanup_free_ char *base = mar_xasprintf("%s/manifests/%s", td, sub);
    DIR *d = opendir(base);
    assert_non_null(d);
    int bad = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') {
            continue;
        }
        _cleanup_free_ char *dir = mar_xasprintf("%s/%s", base, de->d_name);
        bad += run_case(dir);
        (*count)++;
    }
    closedir(d);
    return bad;
}

static void test_valid(void **state)
{
    (void)state;
    size_t n = 0;
    assert_int_equal(run_dir("valid", &n), 0);
    assert_true(n >= 10);
}

static void test_invalid(void **state)
{
    (void)state;
    size_t n = 0;
    assert_int_equal(run_dir("invalid", &n), 0);
    assert_true(n >= 15);
}

static void test_oversize(void **state)
{
    (void)state;
    size_t n = MAR_CAP_MANIFEST + 1;
    char *big = mar_xmalloc(n);
    memset(big, ' ', n);
    oci_manifest *m = NULL;
    mar_err *e = NULL;
    assert_int_equal(oci_manifest_parse(big, n, OCI_MT_INDEX, &m, &e), -MAR_EINTEGRITY);
    assert_non_null(strstr(e->msg, "exceeds"));
    mar_err_free(e);
    free(big);
}

static void test_config(void **state)
{
    (void)state;
    const char *cfg = "{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\","
                      "\"config\":{\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":null,"
                      "\"Env\":[\"A=1\",\"PATH=/bin\"],\"User\":\"1000:1000\",\"WorkingDir\":"
                      "\"/srv\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
                      "0000000000000000000000000000000000000000000000000000000000000001\"]}}";
    oci_config *c = NULL;
    mar_err *e = NULL;
    assert_int_equal(oci_config_parse(cfg, strlen(cfg), &c, &e), 0);
    assert_true(c->has_platform);
    assert_string_equal(c->platform.arch, "arm");
    assert_string_equal(c->platform.variant, "v7");
    assert_int_equal(c->entrypoint.n, 2);
    assert_int_equal(c->cmd.n, 0);
    assert_int_equal(c->env.n, 2);
    assert_string_equal(c->user, "1000:1000");
    assert_string_equal(c->working_dir, "/srv");
    assert_int_equal(c->n_diff_ids, 1);
    oci_config_free(c);

    const char *bad = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"diff_ids\":"
                      "[\"md5:00\"]}}";
    assert_int_equal(oci_config_parse(bad, strlen(bad), &c, &e), -MAR_EUNSUPPORTED);
    mar_err_free(e);
    e = NULL;
    const char *nolabel = "{\"config\":{}}";
    assert_int_equal(oci_config_parse(nolabel, strlen(nolabel), &c, &e), 0);
    assert_false(c->has_platform);
    oci_config_free(c);
}

static void test_media_kind(void **state)
{
    (void)state;
    assert_int_equal(oci_media_kind(OCI_MT_INDEX), OCI_KIND_INDEX);
    assert_int_equal(oci_media_kind(" " OCI_MT_DOCKER_LIST " ; q=1"), OCI_KIND_INDEX);
    assert_int_equal(oci_media_kind("Application/VND.OCI.Image.Manifest.v1+JSON"),
                     OCI_KIND_MANIFEST);
    assert_int_equal(oci_media_kind(OCI_MT_DOCKER_SCHEMA1_SIGNED), OCI_KIND_SCHEMA1);
    assert_int_equal(oci_media_kind("text/html"), OCI_KIND_UNKNOWN);
    assert_int_equal(oci_media_kind(NULL), OCI_KIND_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_valid),      cmocka_unit_test(test_invalid),
            cmocka_unit_test(test_oversize),   cmocka_unit_test(test_config),
            cmocka_unit_test(test_media_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
