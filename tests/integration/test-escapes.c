/* Terminal escapes from the network or a store file never reach the terminal raw: an index whose
 * platform carries ESC and BEL (pushed to the bed's registry here), a token realm with ESC (from
 * the fault proxy), and a tampered index.json with newline and ESC in a reference name. mar's
 * output shows them as visible escapes, in errors, tables and annotations; JSON keeps them exact.
 */
#include "itest.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static char *R;        /* registry host:port */
static char *evil_ref; /* the crafted index */

/* No control character but newline anywhere in the text. */
static void assert_no_controls(const char *what, const mar_buf *b)
{
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if ((c < 0x20 && c != '\n') || c == 0x7f ||
            (c == 0xc2 && i + 1 < b->len && (unsigned char)b->data[i + 1] >= 0x80 &&
             (unsigned char)b->data[i + 1] < 0xa0)) {
            fail_msg("%s has control byte 0x%02x at %zu:\n%s", what, c, i, b->data);
        }
    }
}

static void run_clean(itest_run *r, int want, const char *const *env, const char *const *args)
{
    const char *argv[32] = {getenv("MAR_BIN")};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 31; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_runv(r, env, argv);
    if (r->status != want) {
        fail_msg("mar %s: exit %d, want %d\n%s%s", args[0], r->status, want, r->out.data,
                 r->err.data);
    }
    assert_no_controls("stdout", &r->out);
    assert_no_controls("stderr", &r->err);
}

static void curl(itest_run *r, const char *const *extra)
{
    const char *argv[24] = {"curl", "-sf"};
    size_t n = 2;
    for (size_t i = 0; extra[i] && n < 23; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    itest_runv(r, NULL, argv);
    if (r->status != 0) {
        fail_msg("curl %s: %d\n%s", extra[0], r->status, r->err.data);
    }
}

/* Pushes mar/esc:1, an index whose only entry is the single fixture's manifest labelled with a
 * platform architecture carrying an OSC title sequence, BEL and a CSI. */
static int setup(void **state)
{
    (void)state;
    const char *single = itest_fixture_ref("single");
    R = mar_xstrndup(single, strcspn(single, "/"));
    const char *digest = json_string_value(
            json_object_get(json_object_get(itest_fixtures(), "single"), "digest"));
    const char *mt = json_string_value(
            json_object_get(json_object_get(itest_fixtures(), "single"), "mediaType"));
    _cleanup_free_ char *murl = mar_xasprintf("http://%s/v2/mar/single/manifests/%s", R, digest);
    _cleanup_free_ char *accept = mar_xasprintf("Accept: %s", mt);
    itest_run r;
    const char *get[] = {"-H", accept, murl, NULL};
    curl(&r, get);
    size_t size = r.out.len;
    /* An index names manifests of its own repository: mount the blobs into mar/esc and put the
     * manifest there too. */
    json_t *m = itest_json(r.out.data);
    char *mfile = itest_write("esc-manifest.json", r.out.data, 0644);
    itest_run_release(&r);
    json_t *blobs = json_array();
    json_array_append(blobs, json_object_get(json_object_get(m, "config"), "digest"));
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(m, "layers"), i, l)
    {
        json_array_append(blobs, json_object_get(l, "digest"));
    }
    json_t *b;
    json_array_foreach(blobs, i, b)
    {
        _cleanup_free_ char *mount =
                mar_xasprintf("http://%s/v2/mar/esc/blobs/uploads/?mount=%s&from=mar/single", R,
                              json_string_value(b));
        const char *post[] = {"-X", "POST", mount, NULL};
        curl(&r, post);
        itest_run_release(&r);
    }
    json_decref(blobs);
    json_decref(m);
    _cleanup_free_ char *mat = mar_xasprintf("@%s", mfile);
    _cleanup_free_ char *ctype = mar_xasprintf("Content-Type: %s", mt);
    _cleanup_free_ char *mput = mar_xasprintf("http://%s/v2/mar/esc/manifests/%s", R, digest);
    const char *putm[] = {"-X", "PUT", "-H", ctype, "--data-binary", mat, mput, NULL};
    curl(&r, putm);
    itest_run_release(&r);
    free(mfile);
    _cleanup_free_ char *index = mar_xasprintf(
            "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
            "\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":"
            "{\"architecture\":\"amd64\\u001b]0;pwned\\u0007\\u001b[2J\",\"os\":\"linux\"}}]}",
            mt, digest, size);
    char *file = itest_write("esc-index.json", index, 0644);
    _cleanup_free_ char *at = mar_xasprintf("@%s", file);
    _cleanup_free_ char *iurl = mar_xasprintf("http://%s/v2/mar/esc/manifests/1", R);
    const char *put[] = {"-X",
                         "PUT",
                         "-H",
                         "Content-Type: application/vnd.oci.image.index.v1+json",
                         "--data-binary",
                         at,
                         iurl,
                         NULL};
    curl(&r, put);
    itest_run_release(&r);
    free(file);
    evil_ref = mar_xasprintf("%s/mar/esc:1", R);
    return 0;
}

static void test_index_platform(void **state)
{
    (void)state;
    itest_run r;
    const char *inspect[] = {"inspect", evil_ref, NULL};
    run_clean(&r, 6, NULL, inspect);
    assert_contains(r.err.data, "amd64\\x1b]0;pwned\\x07\\x1b[2J");
    itest_run_release(&r);

    const char *explain[] = {"run", "--explain", evil_ref, NULL};
    run_clean(&r, 6, NULL, explain);
    assert_contains(r.err.data, "\\x1b]0;pwned\\x07");
    itest_run_release(&r);

    /* check: the ERROR line of the table, and the GitHub annotation. */
    const char *check[] = {"check", "--platforms", "linux/amd64", evil_ref, NULL};
    run_clean(&r, 6, NULL, check);
    assert_contains(r.out.data, "ERROR");
    assert_contains(r.out.data, "\\x1b]0;pwned\\x07");
    itest_run_release(&r);
    const char *const gh[] = {"GITHUB_ACTIONS=true", NULL};
    run_clean(&r, 6, gh, check);
    assert_contains(r.out.data, "::error title=mar check::");
    assert_contains(r.out.data, "\\x1b]0;pwned\\x07");
    itest_run_release(&r);
    /* JSON stays exact: the control characters are there, escaped by JSON itself. */
    const char *check_json[] = {"check", "--json", "--platforms", "linux/amd64", evil_ref, NULL};
    run_clean(&r, 6, NULL, check_json);
    json_t *doc = itest_json(r.out.data);
    const char *reason = json_string_value(json_object_get(
            json_array_get(
                    json_object_get(json_array_get(json_object_get(doc, "images"), 0), "results"),
                    0),
            "reason"));
    assert_non_null(reason);
    assert_non_null(strstr(reason, "amd64\x1b]0;pwned\x07\x1b[2J"));
    json_decref(doc);
    itest_run_release(&r);

    /* audit: the row's reason, as a table and as Markdown. */
    _cleanup_free_ char *list = mar_xasprintf("%s\n%s/mar/single:latest\n", evil_ref, R);
    char *in = itest_write("esc-images.txt", list, 0644);
    static const char *const formats[] = {"table", "markdown"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(formats); i++) {
        const char *audit[] = {"audit", "--format", formats[i], in, NULL};
        run_clean(&r, 0, NULL, audit);
        assert_contains(r.out.data, "\\x1b]0;pwned\\x07");
        itest_run_release(&r);
    }
    free(in);
}

/* A bearer challenge whose realm carries ESC: the refusal names it, escaped. */
static void test_token_realm(void **state)
{
    (void)state;
    int port = itest_free_port(), rport = itest_free_port();
    pid_t pid = itest_faultproxy_start(port, rport, R, NULL);
    if (pid < 0) {
        fail_msg("the fault proxy did not start");
    }
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d/_faults", port);
    const char *ctl[] = {"-X",
                         "POST",
                         "--data-binary",
                         "[{\"match\":\"/manifests/\",\"fault\":\"status\",\"status\":401,"
                         "\"www_authenticate\":\"Bearer realm=\\\"ftp://evil\\u001b[31m\\u0007/"
                         "token\\\",service=\\\"s\\\"\",\"count\":99}]",
                         url,
                         NULL};
    itest_run r;
    curl(&r, ctl);
    itest_run_release(&r);
    _cleanup_free_ char *via = mar_xasprintf("127.0.0.1:%d/mar/single:latest", port);
    const char *inspect[] = {"inspect", via, NULL};
    const char *const env[] = {"MAR_RETRY_BASE_MS=1", NULL};
    run_clean(&r, 4, env, inspect);
    assert_contains(r.err.data, "ftp://evil\\x1b[31m\\x07/token");
    itest_run_release(&r);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* index.json edited by hand (or by an attacker with access to the store): mar images shows the
 * names escaped, one line per row. */
static void test_tampered_store_index(void **state)
{
    (void)state;
    _cleanup_free_ char *store = mar_xasprintf("%s/store", itest_tmpdir());
    itest_run r;
    _cleanup_free_ char *single = mar_xasprintf("%s/mar/single:latest", R);
    const char *pull[] = {"pull", "--no-unpack", "--store", store, single, NULL};
    run_clean(&r, 0, NULL, pull);
    itest_run_release(&r);
    _cleanup_free_ char *ipath = mar_xasprintf("%s/index.json", store);
    json_error_t jerr;
    json_t *doc = json_load_file(ipath, 0, &jerr);
    assert_non_null(doc);
    json_t *e = json_array_get(json_object_get(doc, "manifests"), 0);
    json_object_set_new(json_object_get(e, "annotations"), "org.opencontainers.image.ref.name",
                        json_string("evil\nforged-row\x1b[31m:latest\x07"));
    assert_int_equal(json_dump_file(doc, ipath, JSON_COMPACT), 0);
    json_decref(doc);

    const char *images[] = {"images", "--store", store, NULL};
    run_clean(&r, 0, NULL, images);
    assert_contains(r.out.data, "evil\\nforged-row\\x1b[31m:latest\\x07");
    size_t lines = 0;
    for (const char *p = r.out.data; *p; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, 2); /* the header and the one image */
    itest_run_release(&r);
    const char *quiet[] = {"images", "-q", "--store", store, NULL};
    run_clean(&r, 0, NULL, quiet);
    assert_string_equal(r.out.data, "evil\\nforged-row\\x1b[31m:latest\\x07\n");
    itest_run_release(&r);
    /* JSON keeps the name exactly. */
    const char *json[] = {"images", "--json", "--store", store, NULL};
    run_clean(&r, 0, NULL, json);
    json_t *j = itest_json(r.out.data);
    assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(j, "images"), 0), "name")),
                        "evil\nforged-row\x1b[31m:latest\x07");
    json_decref(j);
    itest_run_release(&r);
}

int main(void)
{
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_index_platform),
            cmocka_unit_test(test_token_realm),
            cmocka_unit_test(test_tampered_store_index),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
