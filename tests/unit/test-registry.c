/* The registry client over the replay transport: every case in testdata/registry, the
 * WWW-Authenticate parser, and host policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>

#include "registry/registry-internal.h"
#include "tbuf.h"
#include "replay.h"

#define CANARY "MARCANARY"

static mar_buf diag_log = MAR_BUF_INIT(16u << 20);

static void capture(mar_diag_level level, const char *msg, void *ud)
{
    (void)ud;
    T_BUF(mar_buf_printf(&diag_log, "%d %s\n", (int)level, msg));
}

typedef struct outcome {
    bool done;
    int rc;
    mar_err *err;
    mar_digest digest;
    reg_image *img;
} outcome;

static void on_blob(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    outcome *o = ud;
    o->done = true;
    o->rc = rc;
    o->err = err;
    if (blob) {
        o->digest = blob->digest;
    }
}

static void on_image(reg_client *c, reg_image *img, void *ud)
{
    (void)c;
    outcome *o = ud;
    o->done = true;
    o->img = img;
    o->rc = img->rc;
    if (img->err) {
        o->err = TAKE_PTR(img->err);
    }
    o->digest = img->raw.digest;
}

static int collect(void *ud, const void *p, size_t n, mar_err **err)
{
    (void)err;
    return mar_buf_append(ud, p, n) < 0 ? -1 : 0;
}

static int collect_reset(void *ud, mar_err **err)
{
    (void)err;
    mar_buf_truncate(ud, 0);
    return 0;
}

typedef struct kv {
    char *key;
    char *value;
} kv;

static const char *meta(json_t *m, const char *key)
{
    return json_string_value(json_object_get(m, key));
}

static char *expand_file_refs(const char *dir, const char *s)
{
    /* {{digest:FILE}} in case values, as in the exchanges. */
    mar_buf out = MAR_BUF_INIT(1 << 16);
    while (*s) {
        const char *o = strstr(s, "{{digest:");
        if (!o) {
            T_BUF(mar_buf_puts(&out, s));
            break;
        }
        T_BUF(mar_buf_append(&out, s, (size_t)(o - s)));
        const char *c = strstr(o, "}}");
        _cleanup_free_ char *path = mar_xasprintf("%s/%.*s", dir, (int)(c - o - 9), o + 9);
        mar_buf f = MAR_BUF_INIT(1 << 20);
        mar_err *e = NULL;
        assert_int_equal(mar_read_file_at(AT_FDCWD, path, 1 << 20, &f, &e), 0);
        mar_digest d;
        mar_digest_of(MAR_DIGEST_SHA256, f.data, f.len, &d);
        T_BUF(mar_buf_puts(&out, d.str));
        mar_buf_release(&f);
        s = c + 2;
    }
    return mar_buf_detach(&out, NULL);
}

static json_t *load_case(const char *dir)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/case", dir);
    mar_buf b = MAR_BUF_INIT(1 << 16);
    mar_err *e = NULL;
    assert_int_equal(mar_read_file_at(AT_FDCWD, p, 1 << 16, &b, &e), 0);
    json_t *m = json_object();
    for (char *line = b.data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            char *v = expand_file_refs(dir, eq + 1);
            json_object_set_new(m, line, json_string(v));
            free(v);
        }
        line = nl ? nl + 1 : NULL;
    }
    mar_buf_release(&b);
    return m;
}

static int64_t meta_int(json_t *m, const char *key, int64_t dflt)
{
    int64_t v;
    const char *s = meta(m, key);
    return s && mar_parse_i64(s, INT64_MIN, INT64_MAX, &v) ? v : dflt;
}

static int run_case(const char *dir, const char *name)
{
    int bad = 0;
    json_t *m = load_case(dir);
    replay *rp = replay_load(dir);
    assert_non_null(rp);

    reg_options o;
    reg_options_init(&o);
    _cleanup_free_ char *cfg = meta(m, "config") ? mar_xasprintf("%s/%s", dir, meta(m, "config"))
                                                 : mar_xstrdup("/nonexistent/config.json");
    o.docker_config = cfg;
    o.certs_dirs[0] = "/nonexistent";
    if (meta(m, "insecure")) {
        mar_strv_push(&o.insecure, meta(m, "insecure"));
    }
    _cleanup_free_ char *old_path = mar_xstrdup(getenv("PATH") ? getenv("PATH") : "");
    if (meta(m, "path")) {
        _cleanup_free_ char *np = mar_xasprintf("%s:%s", dir, old_path);
        setenv("PATH", np, 1);
    }
    reg_client *c = reg_client_new(&o, replay_ops(), rp);
    reg_options_release(&o);

    oci_ref ref;
    mar_err *e = NULL;
    assert_int_equal(oci_ref_parse(meta(m, "ref"), &ref, &e), 0);
    outcome out = {0};
    mar_buf blob_data = MAR_BUF_INIT(1 << 20), streamed = MAR_BUF_INIT(1 << 20);
    const char *op = meta(m, "op");
    if (strcmp(op, "manifest") == 0) {
        reg_manifest_fetch(c, &ref, on_blob, &out);
    } else if (strcmp(op, "image") == 0) {
        reg_image_fetch(c, &ref, REG_IMAGE_CHILDREN | REG_IMAGE_CONFIGS, on_image, &out);
    } else if (strcmp(op, "stream") == 0) {
        _cleanup_free_ char *bp = mar_xasprintf("%s/%s", dir, meta(m, "blob"));
        assert_int_equal(mar_read_file_at(AT_FDCWD, bp, 1 << 20, &blob_data, &e), 0);
        oci_descriptor d = {0};
        mar_digest_of(MAR_DIGEST_SHA256, blob_data.data, blob_data.len, &d.digest);
        d.size = (int64_t)blob_data.len;
        reg_sink sink = {.write = collect, .reset = collect_reset, .ud = &streamed};
        reg_blob_stream(c, &ref, &d, 0, NULL, &sink, on_blob, &out);
    } else {
        _cleanup_free_ char *bp = mar_xasprintf("%s/%s", dir, meta(m, "blob"));
        mar_buf f = MAR_BUF_INIT(1 << 20);
        assert_int_equal(mar_read_file_at(AT_FDCWD, bp, 1 << 20, &f, &e), 0);
        oci_descriptor d = {0};
        mar_digest_of(MAR_DIGEST_SHA256, f.data, f.len, &d.digest);
        d.size = (int64_t)f.len;
        mar_buf_release(&f);
        reg_blob_fetch(c, &ref, &d, MAR_CAP_CONFIG, on_blob, &out);
    }
    assert_int_equal(reg_client_run(c, &e), 0);
    int64_t later = meta_int(m, "then_digest_after_ms", -1);
    if (later >= 0 && out.rc == 0) {
        /* A second operation on the same client, after a pause (token lifetimes). */
        usleep((useconds_t)later * 1000);
        outcome again = {0};
        oci_ref byd = ref;
        byd.has_digest = true;
        byd.digest = out.digest;
        reg_manifest_fetch(c, &byd, on_blob, &again);
        assert_int_equal(reg_client_run(c, &e), 0);
        if (again.rc != 0) {
            print_error("%s: second operation failed: %s\n", name,
                        again.err ? again.err->msg : "?");
            bad++;
        }
        mar_err_free(again.err);
    }
    setenv("PATH", old_path, 1);
    reg_stats st;
    reg_client_stats(c, &st);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("%s: ", name);                                                             \
            print_error(__VA_ARGS__);                                                              \
            print_error("\n");                                                                     \
            bad++;                                                                                 \
        }                                                                                          \
    } while (0)

    CHECK(out.done, "operation never completed");
    int64_t want_rc = meta_int(m, "expect_rc", 0);
    CHECK(out.rc == want_rc, "rc %d, want %lld (%s)", out.rc, (long long)want_rc,
          out.err ? out.err->msg : "no error");
    if (meta(m, "expect_msg")) {
        CHECK(out.err && strstr(out.err->msg, meta(m, "expect_msg")), "message '%s' lacks '%s'",
              out.err ? out.err->msg : "(none)", meta(m, "expect_msg"));
    }
    if (meta(m, "expect_digest")) {
        CHECK(strcmp(out.digest.str, meta(m, "expect_digest")) == 0, "digest %s", out.digest.str);
    }
    int64_t n;
    if ((n = meta_int(m, "expect_requests", -1)) >= 0) {
        CHECK((int64_t)replay_requests(rp) == n, "%zu requests, want %lld", replay_requests(rp),
              (long long)n);
    }
    if ((n = meta_int(m, "expect_token_fetches", -1)) >= 0) {
        CHECK((int64_t)st.token_fetches == n, "%llu token fetches, want %lld",
              (unsigned long long)st.token_fetches, (long long)n);
    }
    if ((n = meta_int(m, "expect_retries", -1)) >= 0) {
        CHECK((int64_t)st.retries == n, "%llu retries, want %lld", (unsigned long long)st.retries,
              (long long)n);
    }
    if ((n = meta_int(m, "expect_min_delay_ms", -1)) >= 0) {
        CHECK((int64_t)replay_max_delay_ms(rp) >= n - 50, "max delay %llu ms, want >= %lld",
              (unsigned long long)replay_max_delay_ms(rp), (long long)n);
    }
    if (out.img) {
        size_t children = 0, configs = 0, errors = 0;
        for (size_t i = 0; i < out.img->n_entries; i++) {
            children += out.img->entries[i].manifest != NULL;
            configs += out.img->entries[i].config != NULL;
            errors += out.img->entries[i].err != NULL;
        }
        if ((n = meta_int(m, "expect_children", -1)) >= 0) {
            CHECK((int64_t)children == n, "%zu children", children);
        }
        if ((n = meta_int(m, "expect_configs", -1)) >= 0) {
            CHECK((int64_t)configs == n, "%zu configs", configs);
        }
        if ((n = meta_int(m, "expect_child_errors", -1)) >= 0) {
            CHECK((int64_t)errors == n, "%zu child errors", errors);
        }
    }
    if (strcmp(op, "stream") == 0 && out.rc == 0) {
        CHECK(streamed.len == blob_data.len &&
                      memcmp(streamed.data, blob_data.data, blob_data.len) == 0,
              "the sink got %zu bytes that differ from the blob", streamed.len);
    }
    mar_buf_release(&blob_data);
    mar_buf_release(&streamed);
    CHECK(replay_violations(rp) == 0, "exchange rules broken:\n%s", replay_report(rp));
    if (want_rc == 0) {
        CHECK(replay_unused(rp) == 0, "%zu scripted exchanges never requested", replay_unused(rp));
    }
    /* Secrets never reach messages or logs (docs/internals/unpack-security.md §8). */
    CHECK(!out.err || !strstr(out.err->msg, CANARY), "secret in message: %s", out.err->msg);
    CHECK(!strstr(diag_log.data, CANARY), "secret in diagnostics");
    if (strstr(diag_log.data, "X-Amz-Signature=secret")) {
        CHECK(false, "presigned query string logged");
    }
    mar_buf_truncate(&diag_log, 0);

    mar_err_free(out.err);
    reg_image_free(out.img);
    oci_ref_release(&ref);
    reg_client_free(c);
    replay_free(rp);
    json_decref(m);
    return bad;
}

static void test_cases(void **state)
{
    (void)state;
    const char *td = getenv("MAR_TESTDATA");
    assert_non_null(td);
    _cleanup_free_ char *base = mar_xasprintf("%s/registry", td);
    DIR *d = opendir(base);
    assert_non_null(d);
    mar_diag_set_sink(capture, NULL);
    mar_diag_set_debug(true);
    int bad = 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0) {
            continue;
        }
        _cleanup_free_ char *dir = mar_xasprintf("%s/%s", base, de->d_name);
        bad += run_case(dir, de->d_name);
        n++;
    }
    closedir(d);
    mar_diag_set_sink(NULL, NULL);
    mar_diag_set_debug(false);
    printf("registry-replay %zu cases, %d failures\n", n, bad);
    assert_true(n >= 30);
    assert_int_equal(bad, 0);
}

static void test_challenges(void **state)
{
    (void)state;
    reg_challenge ch[4];
    int n = reg__challenge_parse(
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
            "scope=\"repository:library/alpine:pull\"",
            ch, 4);
    assert_int_equal(n, 1);
    assert_string_equal(ch[0].scheme, "bearer");
    assert_string_equal(ch[0].realm, "https://auth.docker.io/token");
    assert_string_equal(ch[0].service, "registry.docker.io");
    assert_string_equal(ch[0].scope, "repository:library/alpine:pull");
    reg__challenge_release(&ch[0]);

    /* Two challenges in one header, case-insensitive scheme, quoted commas and escapes, unknown
     * parameters, spaces around '='. */
    n = reg__challenge_parse("Basic realm=\"a, \\\"b\\\"\", BEARER realm = \"https://x/t\" , "
                             "service=s,extra=\"1\", error=insufficient_scope",
                             ch, 4);
    assert_int_equal(n, 2);
    assert_string_equal(ch[0].scheme, "basic");
    assert_string_equal(ch[0].realm, "a, \"b\"");
    assert_string_equal(ch[1].scheme, "bearer");
    assert_string_equal(ch[1].realm, "https://x/t");
    assert_string_equal(ch[1].service, "s");
    assert_string_equal(ch[1].error, "insufficient_scope");
    reg__challenge_release(&ch[0]);
    reg__challenge_release(&ch[1]);

    /* A token68 credential ("abc==") is skipped, not taken for a scheme. */
    n = reg__challenge_parse("Negotiate abc==, Basic realm=r", ch, 4);
    assert_int_equal(n, 2);
    assert_string_equal(ch[0].scheme, "negotiate");
    assert_string_equal(ch[1].scheme, "basic");
    assert_string_equal(ch[1].realm, "r");
    for (int i = 0; i < n; i++) {
        reg__challenge_release(&ch[i]);
    }

    static const char *const bad[] = {"Bearer realm=\"unterminated", "Bearer realm=\"x\\",
                                      "Bearer =x", "\"quoted\""};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(bad); i++) {
        assert_int_equal(reg__challenge_parse(bad[i], ch, 4), -1);
    }
    assert_int_equal(reg__challenge_parse("", ch, 4), 0);
    assert_int_equal(reg__challenge_parse(NULL, ch, 4), 0);

    /* Values are capped. */
    mar_buf big = MAR_BUF_INIT(1 << 20);
    T_BUF(mar_buf_puts(&big, "Bearer realm=\""));
    for (int i = 0; i < 5000; i++) {
        T_BUF(mar_buf_puts(&big, "a"));
    }
    T_BUF(mar_buf_puts(&big, "\""));
    assert_int_equal(reg__challenge_parse(big.data, ch, 4), -1);
    mar_buf_release(&big);
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(reg_host_is_loopback("127.0.0.1:5000"));
    assert_true(reg_host_is_loopback("127.1.2.3"));
    assert_true(reg_host_is_loopback("localhost:5000"));
    assert_true(reg_host_is_loopback("[::1]:5000"));
    assert_true(reg_host_is_loopback("::1"));
    assert_false(reg_host_is_loopback("128.0.0.1"));
    assert_false(reg_host_is_loopback("localhost.example.com"));
    assert_false(reg_host_is_loopback("0x7f.0.0.1"));
    assert_false(reg_host_is_loopback("2130706433"));
    assert_false(reg_host_is_loopback("[::2]:5000"));
}

static void test_url_helpers(void **state)
{
    (void)state;
    char *s = reg__url_origin("https://Registry.Example:443/v2/x?y=1");
    assert_string_equal(s, "https://registry.example:443");
    free(s);
    s = reg__url_hostport("http://127.0.0.1:5000/v2/");
    assert_string_equal(s, "127.0.0.1:5000");
    free(s);
    s = reg__url_for_log("https://cdn.example/b?X-Amz-Signature=secret");
    assert_null(strstr(s, "secret"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cases),
            cmocka_unit_test(test_challenges),
            cmocka_unit_test(test_loopback),
            cmocka_unit_test(test_url_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
