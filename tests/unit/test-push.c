/* The push engine over the replay transport: every case in testdata/push (testdata/push/README.md),
 * and how upload Locations are resolved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>

#include "registry/push-internal.h"
#include "tbuf.h"
#include "replay.h"

#define CANARY "MARCANARY"

static mar_buf diag_log = MAR_BUF_INIT(16u << 20);

static void capture(mar_diag_level level, const char *msg, void *ud)
{
    (void)ud;
    T_BUF(mar_buf_printf(&diag_log, "%d %s\n", (int)level, msg));
}

static const char *meta(json_t *m, const char *key)
{
    return json_string_value(json_object_get(m, key));
}

static int64_t meta_int(json_t *m, const char *key, int64_t dflt)
{
    int64_t v;
    const char *s = meta(m, key);
    return s && mar_parse_i64(s, INT64_MIN, INT64_MAX, &v) ? v : dflt;
}

static void read_case_file(const char *dir, const char *name, mar_buf *ret)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", dir, name);
    mar_err *e = NULL;
    *ret = (mar_buf)MAR_BUF_INIT(64u << 20);
    if (mar_read_file_at(AT_FDCWD, p, 64u << 20, ret, &e) < 0) {
        print_error("%s\n", e->msg);
        fail();
    }
}

static json_t *load_case(const char *dir)
{
    mar_buf b;
    read_case_file(dir, "case", &b);
    json_t *m = json_object();
    for (char *line = b.data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        char *eq = strchr(line, '=');
        if (eq && line[0] != '#') {
            *eq = '\0';
            json_object_set_new(m, line, json_string(eq + 1));
        }
        line = nl ? nl + 1 : NULL;
    }
    mar_buf_release(&b);
    return m;
}

/* The expected digest of a case: {{digest:FILE}}. */
static void expand_digest(const char *dir, const char *v, char *out, size_t n)
{
    if (!v || !mar_str_startswith(v, "{{digest:")) {
        snprintf(out, n, "%s", v ? v : "");
        return;
    }
    _cleanup_free_ char *file = mar_xstrndup(v + 9, strlen(v) - 11);
    mar_buf f;
    read_case_file(dir, file, &f);
    mar_digest d;
    mar_digest_of(MAR_DIGEST_SHA256, f.data, f.len, &d);
    snprintf(out, n, "%s", d.str);
    mar_buf_release(&f);
}

typedef struct blobfile {
    mar_buf data;
    oci_descriptor desc;
    int fd;
} blobfile;

static size_t split(const char *s, char out[][128], size_t max)
{
    size_t n = 0;
    while (s && *s && n < max) {
        size_t l = strcspn(s, " ");
        snprintf(out[n++], 128, "%.*s", (int)l, s);
        s += l;
        s += *s == ' ';
    }
    return n;
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
    o.backoff_base_ms = 1;
    if (meta(m, "insecure")) {
        mar_strv_push(&o.insecure, meta(m, "insecure"));
    }
    reg_client *c = reg_client_new(&o, replay_ops(), rp);
    reg_options_release(&o);

    oci_ref dst, from = {0};
    mar_err *e = NULL;
    assert_int_equal(oci_ref_parse(meta(m, "ref"), &dst, &e), 0);
    if (meta(m, "from")) {
        assert_int_equal(oci_ref_parse(meta(m, "from"), &from, &e), 0);
    }
    reg_push_opts po = {
            .dst = &dst,
            .jobs = (int)meta_int(m, "jobs", 1),
            .chunk_size = (uint64_t)meta_int(m, "chunk", 0),
            .monolithic_max = (uint64_t)meta_int(m, "mono", 0),
            .mount_from = meta(m, "mount_from"),
    };
    reg_push_result res = {0};
    int rc;
    char blob_names[8][128], doc_names[8][128];
    size_t nb = split(meta(m, "blobs"), blob_names, 8);
    size_t nd = split(meta(m, "manifests"), doc_names, 8);
    blobfile blobs[8] = {0};
    const char *source = meta(m, "source") ? meta(m, "source") : "memory";
    if (strcmp(meta(m, "op"), "retag") == 0) {
        rc = reg_retag(c, &from, &po, &res, &e);
    } else {
        reg_push *p = reg_push_new(c, &po);
        for (size_t i = 0; i < nb; i++) {
            /* "FILE" or "FILE:DESCFILE": the bytes of one file sent for the descriptor of
             * another (a damaged source). */
            char *colon = strchr(blob_names[i], ':');
            const char *desc_file = colon ? colon + 1 : blob_names[i];
            if (colon) {
                *colon = '\0';
            }
            mar_buf df;
            read_case_file(dir, desc_file, &df);
            blobs[i].desc.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
            mar_digest_of(MAR_DIGEST_SHA256, df.data, df.len, &blobs[i].desc.digest);
            blobs[i].desc.size = (int64_t)df.len;
            mar_buf_release(&df);
            read_case_file(dir, blob_names[i], &blobs[i].data);
            reg_blob_src src = {.kind = REG_SRC_MEMORY, .mem = blobs[i].data.data};
            blobs[i].fd = -1;
            if (strcmp(source, "fd") == 0) {
                _cleanup_free_ char *bp = mar_xasprintf("%s/%s", dir, blob_names[i]);
                blobs[i].fd = open(bp, O_RDONLY | O_CLOEXEC);
                src = (reg_blob_src){.kind = REG_SRC_FD, .fd = blobs[i].fd};
            } else if (strcmp(source, "registry") == 0) {
                src = (reg_blob_src){.kind = REG_SRC_REGISTRY, .from = &from};
            }
            reg_push_add_blob(p, &blobs[i].desc, &src);
        }
        for (size_t i = 0; i < nd; i++) {
            mar_buf d;
            read_case_file(dir, doc_names[i], &d);
            assert_int_equal(reg_push_add_manifest(p, OCI_MT_MANIFEST, d.data, d.len, NULL, &e), 0);
            mar_buf_release(&d);
        }
        mar_buf top;
        read_case_file(dir, meta(m, "top"), &top);
        assert_int_equal(reg_push_set_top(p, meta(m, "top_type"), top.data, top.len, &e), 0);
        mar_buf_release(&top);
        rc = reg_push_run(p, &res, &e);
        reg_push_free(p);
    }
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

    int64_t want_rc = meta_int(m, "expect_rc", 0);
    CHECK(rc == want_rc, "rc %d, want %lld (%s)", rc, (long long)want_rc,
          rc < 0 && e ? e->msg : "no error");
    if (meta(m, "expect_msg")) {
        CHECK(e && strstr(e->msg, meta(m, "expect_msg")), "message '%s' lacks '%s'",
              e ? e->msg : "(none)", meta(m, "expect_msg"));
    }
    if (meta(m, "expect_digest")) {
        char want[MAR_DIGEST_STR_MAX];
        expand_digest(dir, meta(m, "expect_digest"), want, sizeof(want));
        CHECK(strcmp(res.digest.str, want) == 0, "digest %s, want %s", res.digest.str, want);
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
    static const struct {
        const char *key;
        size_t off;
    } counts[] = {
            {"expect_pushed", offsetof(reg_push_stats, blobs_pushed)},
            {"expect_mounted", offsetof(reg_push_stats, blobs_mounted)},
            {"expect_present", offsetof(reg_push_stats, blobs_present)},
            {"expect_docs_pushed", offsetof(reg_push_stats, documents_pushed)},
            {"expect_docs_present", offsetof(reg_push_stats, documents_present)},
            {"expect_resumes", offsetof(reg_push_stats, resumes)},
            {"expect_restarts", offsetof(reg_push_stats, restarts)},
    };
    for (size_t i = 0; rc == 0 && i < MAR_ARRAY_SIZE(counts); i++) {
        if ((n = meta_int(m, counts[i].key, -1)) >= 0) {
            size_t got = *(const size_t *)((const char *)&res.stats + counts[i].off);
            CHECK((int64_t)got == n, "%s: %zu, want %lld", counts[i].key, got, (long long)n);
        }
    }
    /* expect_before=A|B: every request line starting with A comes before the first with B. */
    static const char *const order_keys[] = {"expect_before", "expect_before2"};
    for (size_t k = 0; k < MAR_ARRAY_SIZE(order_keys); k++) {
        const char *v = meta(m, order_keys[k]);
        if (!v) {
            continue;
        }
        const char *bar = strchr(v, '|');
        _cleanup_free_ char *a = mar_xstrndup(v, (size_t)(bar - v));
        const char *b = bar + 1;
        long last_a = -1, first_b = -1, line = 0;
        for (const char *l = replay_transcript(rp); *l; line++) {
            if (mar_str_startswith(l, a)) {
                last_a = line;
            }
            if (first_b < 0 && mar_str_startswith(l, b)) {
                first_b = line;
            }
            const char *nl = strchr(l, '\n');
            l = nl ? nl + 1 : l + strlen(l);
        }
        CHECK(last_a >= 0 && first_b > last_a, "'%s' must all come before '%s'", a, b);
    }
    if (meta(m, "expect_log")) {
        CHECK(strstr(diag_log.data, meta(m, "expect_log")), "the log lacks '%s'",
              meta(m, "expect_log"));
    }
    CHECK(replay_violations(rp) == 0, "exchange rules broken:\n%s", replay_report(rp));
    if (want_rc == 0 || meta(m, "expect_all_used")) {
        CHECK(replay_unused(rp) == 0, "%zu scripted exchanges never requested", replay_unused(rp));
    }
    /* Secrets never reach messages or logs (docs/internals/unpack-security.md §8). */
    CHECK(!e || !strstr(e->msg, CANARY), "secret in message: %s", e->msg);
    CHECK(!strstr(diag_log.data, CANARY), "secret in diagnostics");
    if (bad) {
        print_error("%s transcript:\n%s\n", name, replay_transcript(rp));
    }
    mar_buf_truncate(&diag_log, 0);

    for (size_t i = 0; i < nb; i++) {
        mar_buf_release(&blobs[i].data);
        if (blobs[i].fd >= 0) {
            close(blobs[i].fd);
        }
    }
    reg_push_result_release(&res);
    mar_err_free(e);
    oci_ref_release(&dst);
    oci_ref_release(&from);
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
    _cleanup_free_ char *base = mar_xasprintf("%s/push", td);
    DIR *d = opendir(base);
    assert_non_null(d);
    mar_diag_set_sink(capture, NULL);
    mar_diag_set_debug(true);
    int bad = 0;
    size_t n = 0;
    struct dirent *de;
    const char *only = getenv("MAR_PUSH_CASE");
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0 ||
            (only && strcmp(only, de->d_name) != 0)) {
            continue;
        }
        _cleanup_free_ char *dir = mar_xasprintf("%s/%s", base, de->d_name);
        bad += run_case(dir, de->d_name);
        n++;
    }
    closedir(d);
    mar_diag_set_sink(NULL, NULL);
    mar_diag_set_debug(false);
    printf("push-replay %zu cases, %d failures\n", n, bad);
    assert_true(n >= 1);
    assert_int_equal(bad, 0);
}

static void test_location(void **state)
{
    (void)state;
    reg_options o;
    reg_options_init(&o);
    reg_client *c = reg_client_new(&o, replay_ops(), NULL);
    reg_options_release(&o);
    mar_err *e = NULL;
    char *u = reg__resolve_location(c, "https://r.example/v2/x/blobs/uploads/",
                                    "/v2/x/blobs/uploads/abc?_state=1", &e);
    assert_string_equal(u, "https://r.example/v2/x/blobs/uploads/abc?_state=1");
    free(u);
    u = reg__resolve_location(c, "https://r.example/v2/x/blobs/uploads/",
                              "https://storage.example/up/abc", &e);
    assert_string_equal(u, "https://storage.example/up/abc");
    free(u);
    /* Never from https to plain HTTP; plain HTTP only to loopback. */
    assert_null(reg__resolve_location(c, "https://r.example/v2/", "http://r.example/up", &e));
    assert_int_equal(mar_err_code(e), MAR_ENET);
    e = mar_err_free(e);
    assert_null(reg__resolve_location(c, "http://127.0.0.1:5000/v2/", "http://x.example/up", &e));
    e = mar_err_free(e);
    u = reg__resolve_location(c, "http://127.0.0.1:5000/v2/", "http://127.0.0.1:6000/up", &e);
    assert_string_equal(u, "http://127.0.0.1:6000/up");
    free(u);
    assert_null(reg__resolve_location(c, "http://127.0.0.1:5000/v2/", NULL, &e));
    e = mar_err_free(e);
    reg_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cases),
            cmocka_unit_test(test_location),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
