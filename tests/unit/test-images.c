/* mar images over a large index.json: 5,000 tags of one image, each with its per-platform entry
 * (10,000 entries). The listing is linear in the entries; the CTest timeout of this test
 * (tests/CMakeLists.txt) is far above what the linear listing takes and far below what a
 * quadratic one would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "registry/registry.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TAGS 5000

static void put_json(reg_store *s, const char *text, mar_digest *ret)
{
    mar_digest_of(MAR_DIGEST_SHA256, text, strlen(text), ret);
    mar_err *e = NULL;
    if (reg_store_put(s, ret, text, strlen(text), &e) < 0) {
        fail_msg("%s", e->msg);
    }
}

/* An index with a linux/amd64 manifest of one layer (whose blob is absent). */
static void make_store(const char *path, mar_digest *ret_index)
{
    mar_err *e = NULL;
    _cleanup_store_ reg_store *s = NULL;
    assert_int_equal(reg_store_open(path, &s, &e), 0);
    static const char layer[] =
            "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    _cleanup_free_ char *config = mar_xasprintf(
            "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
            "\"diff_ids\":[\"%s\"]}}",
            layer);
    mar_digest cd, md;
    put_json(s, config, &cd);
    _cleanup_free_ char *manifest = mar_xasprintf(
            "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
            "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
            "\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"application/"
            "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":100}]}",
            cd.str, strlen(config), layer);
    put_json(s, manifest, &md);
    _cleanup_free_ char *index = mar_xasprintf(
            "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
            "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
            "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"amd64\",\"os\":"
            "\"linux\"}}]}",
            md.str, strlen(manifest));
    put_json(s, index, ret_index);

    json_t *arr = json_array();
    for (int i = 0; i < TAGS; i++) {
        _cleanup_free_ char *name = mar_xasprintf("example.test/app:t%d", i);
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType",
                                        "application/vnd.oci.image.index.v1+json", "digest",
                                        ret_index->str, "size", (json_int_t)strlen(index),
                                        "annotations", "org.opencontainers.image.ref.name", name));
        _cleanup_free_ char *pname = mar_xasprintf("%s@linux/amd64", name);
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:I, s:{s:s}, s:{s:s, s:s}}", "mediaType",
                                        "application/vnd.oci.image.manifest.v1+json", "digest",
                                        md.str, "size", (json_int_t)strlen(manifest), "annotations",
                                        "org.opencontainers.image.ref.name", pname, "platform",
                                        "architecture", "amd64", "os", "linux"));
    }
    json_t *doc = json_pack("{s:i, s:o}", "schemaVersion", 2, "manifests", arr);
    _cleanup_free_ char *ipath = mar_xasprintf("%s/index.json", path);
    assert_int_equal(json_dump_file(doc, ipath, JSON_COMPACT), 0);
    json_decref(doc);
}

static void test_images_many_tags(void **state)
{
    (void)state;
    char T[] = "/tmp/mar-images-XXXXXX";
    assert_non_null(mkdtemp(T));
    _cleanup_free_ char *store = mar_xasprintf("%s/store", T);
    mar_digest idx;
    make_store(store, &idx);

    /* mar --store STORE images --json, stdout into a file. */
    _cleanup_free_ char *out = mar_xasprintf("%s/out.json", T);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    close(fd);
    char *argv[] = {"mar", "--store", store, "images", "--json", NULL};
    int rc = cmd_main(5, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(rc, 0);

    json_error_t jerr;
    json_t *doc = json_load_file(out, 0, &jerr);
    assert_non_null(doc);
    json_t *images = json_object_get(doc, "images");
    assert_int_equal(json_array_size(images), TAGS);
    size_t i;
    json_t *im;
    json_array_foreach(images, i, im)
    {
        _cleanup_free_ char *name = mar_xasprintf("example.test/app:t%zu", i);
        assert_string_equal(json_string_value(json_object_get(im, "name")), name);
        assert_string_equal(json_string_value(json_object_get(im, "digest")), idx.str);
        json_t *ps = json_object_get(im, "platforms");
        assert_int_equal(json_array_size(ps), 1);
        json_t *p = json_array_get(ps, 0);
        assert_string_equal(json_string_value(json_object_get(p, "platform")), "linux/amd64");
        assert_false(json_is_true(json_object_get(p, "complete"))); /* the layer is absent */
    }
    json_decref(doc);

    char *rm[] = {"rm", "-rf", T, NULL};
    mar_proc_result r;
    mar_err *e = NULL;
    assert_int_equal(mar_proc_run(rm, NULL, 0, 1024, 1024, 60000, &r, &e), 0);
    assert_int_equal(r.status, 0);
    mar_proc_result_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_images_many_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
