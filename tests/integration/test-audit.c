/* mar audit against the bed's registry: compose, Kubernetes (several documents, a List, a
 * CronJob), Dockerfile (ARGs, stages, scratch, a --platform pin) and plain-list inputs written
 * here, referencing the fixture images; verdicts, file:line findings and recommendations checked
 * in the JSON; --deep; another target; Markdown; the HTML page rendered by headless Chromium. */
#include "itest.h"

#include <string.h>

static char *R; /* registry address */
static char *compose, *k8s, *dockerfile, *list;

static json_t *audit(int want, const char *const *args)
{
    const char *argv[24] = {getenv("MAR_BIN"), "audit", "--format", "json"};
    size_t n = 4;
    for (size_t i = 0; args[i] && n < 23; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_run r;
    itest_runv(&r, NULL, argv);
    if (r.status != want) {
        fail_msg("mar audit: %d, want %d\n%s", r.status, want, r.err.data);
    }
    json_t *doc = want == 0 ? itest_json(r.out.data) : NULL;
    itest_run_release(&r);
    return doc;
}

/* The entry of an image (and pin, or NULL). */
static json_t *entry(json_t *doc, const char *repo_tag, const char *pin)
{
    _cleanup_free_ char *name = mar_xasprintf("%s/%s", R, repo_tag);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "images"), i, e)
    {
        const char *p = json_string_value(json_object_get(e, "pin"));
        if (strcmp(json_string_value(json_object_get(e, "image")), name) == 0 &&
            ((!pin && !p) || (pin && p && strcmp(pin, p) == 0))) {
            return e;
        }
    }
    fail_msg("no audit entry for %s %s", name, pin ? pin : "");
    return NULL;
}

static const char *S(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool has_rec(json_t *e, const char *needle)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(e, "recommendations"), i, r)
    {
        if (strstr(json_string_value(r), needle)) {
            return true;
        }
    }
    return false;
}

static bool used_at(json_t *e, const char *file, json_int_t line)
{
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(e, "uses"), i, u)
    {
        if (strcmp(S(u, "file"), file) == 0 &&
            json_integer_value(json_object_get(u, "line")) == line) {
            return true;
        }
    }
    return false;
}

static void test_inputs_and_verdicts(void **state)
{
    (void)state;
    const char *args[] = {compose, k8s, dockerfile, list, NULL};
    json_t *doc = audit(0, args);
    assert_string_equal(S(doc, "target"), "apple-silicon");

    json_t *e = entry(doc, "mar/multi:latest", NULL);
    assert_string_equal(S(e, "verdict"), "native");
    assert_string_equal(S(e, "platform"), "linux/arm64/v8");
    assert_true(used_at(e, compose, 3));

    e = entry(doc, "mar/app:1.0", NULL);
    assert_string_equal(S(e, "verdict"), "rosetta");
    assert_true(used_at(e, compose, 5));
    assert_true(used_at(e, dockerfile, 3)); /* ${BASE}:${VERSION} from the ARG defaults */
    assert_true(has_rec(e, "tag 1.0 has no linux/arm64 variant; tag 1.1 in the same release line "
                           "has"));

    e = entry(doc, "mar/multi:latest", "linux/amd64");
    assert_string_equal(S(e, "verdict"), "rosetta");
    _cleanup_free_ char *drop = mar_xasprintf("%s:7: drop `platform: linux/amd64` from service "
                                              "pinned: linux/arm64/v8 is now published",
                                              compose);
    assert_true(has_rec(e, drop));
    _cleanup_free_ char *drop2 = mar_xasprintf("%s:6: drop `--platform=linux/amd64`", dockerfile);
    assert_true(has_rec(e, drop2));

    e = entry(doc, "mar/armonly:1", NULL);
    assert_string_equal(S(e, "verdict"), "qemu");
    assert_true(used_at(e, k8s, 10));
    assert_true(has_rec(e, "for linux/arm64 too"));

    e = entry(doc, "mar/confmismatch:latest", NULL);
    assert_string_equal(S(e, "verdict"), "mislabeled");
    assert_true(has_rec(e, "rebuild"));

    e = entry(doc, "mar/single:latest", NULL);
    assert_string_equal(S(e, "verdict"), "rosetta");
    assert_true(used_at(e, list, 3));
    /* The Pod inside a List, the CronJob's container. */
    e = entry(doc, "mar/zstd:latest", NULL);
    assert_true(used_at(e, k8s, 34));
    e = entry(doc, "mar/mislabeled:arm64", NULL);
    assert_string_equal(S(e, "verdict"), "native"); /* on paper; --deep knows better */

    e = entry(doc, "mar/nope:1", NULL);
    assert_string_equal(S(e, "verdict"), "error");
    assert_non_null(strstr(S(e, "reason"), "404"));

    /* Stage names, scratch and the build-platform FROM are not images. */
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(doc, "images"), i, x)
    {
        assert_null(strstr(S(x, "image"), "scratch"));
        assert_null(strstr(S(x, "image"), "/build"));
    }
    assert_true(json_integer_value(json_object_get(doc, "requests")) > 0);
    json_decref(doc);
}

static void test_deep_and_target(void **state)
{
    (void)state;
    const char *a[] = {"--deep", k8s, NULL};
    json_t *doc = audit(0, a);
    json_t *e = entry(doc, "mar/mislabeled:arm64", NULL);
    assert_string_equal(S(e, "verdict"), "mislabeled");
    assert_non_null(strstr(S(e, "reason"), "binaries are amd64"));
    json_decref(doc);

    const char *b[] = {"--target", "linux/amd64", compose, NULL};
    doc = audit(0, b);
    assert_string_equal(S(entry(doc, "mar/app:1.0", NULL), "verdict"), "native");
    json_decref(doc);

    /* Malformed YAML: one line with file and line, exit 2. */
    char *bad = itest_write("bad.yaml", "services:\n  web:\n    image: [unclosed\n", 0644);
    itest_run r;
    itest_mar(&r, NULL, "audit", bad, NULL);
    assert_int_equal(r.status, MAR_EUSAGE);
    assert_contains(r.err.data, "bad.yaml:");
    itest_run_release(&r);
    free(bad);
}

static void test_formats(void **state)
{
    (void)state;
    itest_run r;
    itest_mar(&r, NULL, "audit", "--format", "markdown", compose, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "| Image | Verdict | Runs as | Used in |");
    assert_contains(r.out.data, "### Recommendations");
    itest_run_release(&r);
    itest_mar(&r, NULL, "audit", compose, NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "Target: apple-silicon (linux/arm64)");
    assert_contains(r.out.data, "registry requests)");
    itest_run_release(&r);

    /* The page, rendered: its script must fill in the counts of the JSON. */
    _cleanup_free_ char *html = mar_xasprintf("%s/audit.html", itest_tmpdir());
    const char *a[] = {"--html", html, compose, k8s, dockerfile, list, NULL};
    json_t *doc = audit(0, a);
    _cleanup_free_ char *url = mar_xasprintf("file://%s", html);
    const char *chrome[] = {"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                            url,        NULL};
    itest_runv(&r, NULL, chrome);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "data-rendered=\"yes\"");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(doc, "summary"), k, v)
    {
        _cleanup_free_ char *want =
                mar_xasprintf("id=\"count-%s\">%lld<", k, (long long)json_integer_value(v));
        assert_contains(r.out.data, want);
        _cleanup_free_ char *bar = mar_xasprintf("data-verdict=\"%s\" data-count=\"%lld\"", k,
                                                 (long long)json_integer_value(v));
        assert_contains(r.out.data, bar);
    }
    _cleanup_free_ char *row = mar_xasprintf("<td>%s/mar/armonly:1</td>", R);
    assert_contains(r.out.data, row);
    itest_run_release(&r);
    json_decref(doc);
}

static void test_stdin(void **state)
{
    (void)state;
    _cleanup_free_ char *cmd = mar_xasprintf("printf '%s/mar/multi:latest\\n' | %s audit --json -",
                                             R, getenv("MAR_BIN"));
    itest_run r;
    const char *argv[] = {"sh", "-c", cmd, NULL};
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    json_t *doc = itest_json(r.out.data);
    assert_string_equal(S(entry(doc, "mar/multi:latest", NULL), "verdict"), "native");
    json_decref(doc);
    itest_run_release(&r);
}

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_REGISTRY", "MAR_TEST_FIXTURES", NULL};
    itest_require(need);
    R = mar_xstrdup(itest_bed("MAR_TEST_REGISTRY"));
    _cleanup_free_ char *c = mar_xasprintf("services:\n"
                                           "  web:\n"
                                           "    image: %s/mar/multi:latest\n"
                                           "  legacy:\n"
                                           "    image: %s/mar/app:1.0\n"
                                           "  pinned:\n"
                                           "    platform: linux/amd64\n"
                                           "    image: %s/mar/multi:latest\n"
                                           "  built:\n"
                                           "    build:\n"
                                           "      context: .\n"
                                           "      platforms: [linux/amd64, linux/arm64]\n",
                                           R, R, R);
    compose = itest_write("compose.yaml", c, 0644);
    _cleanup_free_ char *k =
            mar_xasprintf("apiVersion: apps/v1\n"
                          "kind: Deployment\n"
                          "metadata:\n"
                          "  name: api\n"
                          "spec:\n"
                          "  template:\n"
                          "    spec:\n"
                          "      initContainers:\n"
                          "        - name: init\n"
                          "          image: %s/mar/armonly:1\n"
                          "      containers:\n"
                          "        - name: app\n"
                          "          image: %s/mar/confmismatch:latest\n"
                          "---\n"
                          "apiVersion: batch/v1\n"
                          "kind: CronJob\n"
                          "metadata:\n"
                          "  name: nightly\n"
                          "spec:\n"
                          "  jobTemplate:\n"
                          "    spec:\n"
                          "      template:\n"
                          "        spec:\n"
                          "          containers:\n"
                          "            - name: job\n"
                          "              image: %s/mar/mislabeled:arm64\n"
                          "---\n"
                          "apiVersion: v1\n"
                          "kind: List\n"
                          "items:\n"
                          "  - apiVersion: v1\n"
                          "    kind: Pod\n"
                          "    spec:\n"
                          "      containers: [{name: z, image: %s/mar/zstd:latest}]\n",
                          R, R, R, R);
    k8s = itest_write("k8s.yaml", k, 0644);
    _cleanup_free_ char *d =
            mar_xasprintf("# syntax=docker/dockerfile:1\n"
                          "ARG BASE=%s/mar/app\n"
                          "FROM --platform=$BUILDPLATFORM ${BASE}:${VERSION:-1.0} AS build\n"
                          "FROM build AS test\n"
                          "FROM scratch\n"
                          "FROM --platform=linux/amd64 \\\n"
                          "     %s/mar/multi:latest\n"
                          "FROM %s/mar/nope:1\n",
                          R, R, R);
    dockerfile = itest_write("Dockerfile", d, 0644);
    _cleanup_free_ char *l = mar_xasprintf("# images we run\n\n%s/mar/single:latest   # a "
                                           "comment\n",
                                           R);
    list = itest_write("images.txt", l, 0644);
    return 0;
}

/* Every image of one plain-HTTP registry named --insecure-registry, audited at once: no row is
 * an error, and no request met a TLS failure. */
static void test_insecure_registry(void **state)
{
    (void)state;
    _cleanup_free_ char *host = mar_xstrndup(R, strcspn(R, "/"));
    _cleanup_free_ char *l = mar_xasprintf("%s/mar/multi:latest\n%s/mar/single:latest\n"
                                           "%s/mar/zstd:latest\n%s/mar/confmismatch:latest\n",
                                           R, R, R, R);
    char *in = itest_write("insecure-images.txt", l, 0644);
    const char *argv[] = {
            getenv("MAR_BIN"), "audit", "--insecure-registry", host, "--format", "json", in, NULL};
    itest_run r;
    itest_runv(&r, NULL, argv);
    assert_int_equal(r.status, 0);
    assert_not_contains(r.err.data, "TLS failure");
    json_t *doc = itest_json(r.out.data);
    assert_int_equal(json_array_size(json_object_get(doc, "images")), 4);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "images"), i, e)
    {
        assert_string_not_equal(S(e, "verdict"), "error");
    }
    json_decref(doc);
    itest_run_release(&r);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_inputs_and_verdicts),
            cmocka_unit_test(test_deep_and_target),
            cmocka_unit_test(test_formats),
            cmocka_unit_test(test_stdin),
            cmocka_unit_test(test_insecure_registry),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
