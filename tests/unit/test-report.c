/* The platform report (cli/report.c) over hand-built images: the exit status rule of
 * docs/mar.1.md (entries mar does not read never fail it; what was asked for and could not be
 * read does), containerd's choice through nested indexes and platform-less entries, the listing
 * order with nested indexes, and attestation references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli-internal.h"
#include "tbuf.h"

static mar_digest dig(unsigned id)
{
    mar_digest d;
    char s[80];
    snprintf(s, sizeof(s), "sha256:%064x", id);
    assert_int_equal(mar_digest_parse(s, &d, NULL), 0);
    return d;
}

static oci_manifest *parse(const char *json, const char *mt)
{
    oci_manifest *m = NULL;
    mar_err *e = NULL;
    if (oci_manifest_parse(json, strlen(json), mt, &m, &e) < 0) {
        fail_msg("%s", e->msg);
    }
    return m;
}

/* "{...}" of an index entry: kind m (manifest), i (index), u (unknown type), a (attestation of
 * EXTRA); platform "-" for none. */
static void entry_json(mar_buf *b, const char *spec)
{
    char kind = spec[0];
    unsigned id = (unsigned)strtoul(spec + 2, NULL, 10);
    const char *plat = strchr(spec + 2, ':') + 1;
    const char *extra = strchr(plat, ':');
    char ps[64];
    snprintf(ps, sizeof(ps), "%.*s", (int)(extra ? (size_t)(extra - plat) : strlen(plat)), plat);
    const char *mt = kind == 'i'   ? OCI_MT_INDEX
                     : kind == 'u' ? "application/vnd.oci.artifact.manifest.v1+json"
                                   : OCI_MT_MANIFEST;
    T_BUF(mar_buf_printf(b, "{\"mediaType\":\"%s\",\"size\":100,\"digest\":\"%s\"", mt,
                         dig(id).str));
    if (kind == 'a') {
        T_BUF(mar_buf_printf(
                b,
                ",\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"},"
                "\"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\","
                "\"vnd.docker.reference.digest\":\"%s\"}",
                dig((unsigned)atoi(extra + 1)).str));
    } else if (strcmp(ps, "-") != 0) {
        char os[16], arch[16];
        sscanf(ps, "%15[^/]/%15s", os, arch);
        T_BUF(mar_buf_printf(b, ",\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"}", os, arch));
    }
    T_BUF(mar_buf_puts(b, "}"));
}

static oci_manifest *index_of(const char *const *specs)
{
    mar_buf b = MAR_BUF_INIT(1 << 20);
    T_BUF(mar_buf_puts(&b,
                       "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_INDEX "\",\"manifests\":["));
    for (size_t i = 0; specs[i]; i++) {
        if (i) {
            T_BUF(mar_buf_puts(&b, ","));
        }
        entry_json(&b, specs[i]);
    }
    T_BUF(mar_buf_puts(&b, "]}"));
    oci_manifest *m = parse(b.data, OCI_MT_INDEX);
    mar_buf_release(&b);
    return m;
}

static oci_config *config_of(const char *platform)
{
    char os[16], arch[16];
    sscanf(platform, "%15[^/]/%15s", os, arch);
    char *j = mar_xasprintf("{\"architecture\":\"%s\",\"os\":\"%s\",\"rootfs\":{\"type\":"
                            "\"layers\",\"diff_ids\":[]}}",
                            arch, os);
    oci_config *c = NULL;
    mar_err *e = NULL;
    if (oci_config_parse(j, strlen(j), &c, &e) < 0) {
        fail_msg("%s", e->msg);
    }
    free(j);
    return c;
}

static const char empty_manifest[] =
        "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST
        "\",\"config\":{\"mediaType\":\"" OCI_MT_CONFIG "\",\"size\":2,\"digest\":\"sha256:"
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"},"
        "\"layers\":[]}";

/* Appends the entries of idx as reg_image_fetch does; manifests get a config of their label, or
 * of cfg[k] for the k-th platform-less one. */
static void add_entries(reg_image *img, const oci_manifest *idx, size_t parent, size_t depth,
                        const char *const *cfgs)
{
    size_t base = img->n_entries;
    img->entries = mar_xrealloc(img->entries, (base + idx->n_manifests) * sizeof(*img->entries));
    memset(img->entries + base, 0, idx->n_manifests * sizeof(*img->entries));
    img->n_entries += idx->n_manifests;
    size_t k = 0;
    for (size_t i = 0; i < idx->n_manifests; i++) {
        reg_image_entry *e = &img->entries[base + i];
        e->index = i;
        e->desc = &idx->manifests[i];
        e->parent = parent;
        e->depth = depth;
        e->role = oci_descriptor_role(e->desc);
        e->attestation = e->role == OCI_ENTRY_ATTESTATION;
        if (e->role != OCI_ENTRY_MANIFEST) {
            continue;
        }
        e->manifest = parse(empty_manifest, OCI_MT_MANIFEST);
        if (e->desc->has_platform) {
            char ps[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&e->desc->platform, ps, sizeof(ps));
            e->config = config_of(ps);
        } else if (cfgs && cfgs[k]) {
            e->config = config_of(cfgs[k++]);
        }
    }
}

static reg_image *image(const char *const *top, const char *const *cfgs)
{
    reg_image *img = mar_xcalloc(1, sizeof(*img));
    assert_int_equal(oci_ref_parse("127.0.0.1:5000/t/x:1", &img->ref, NULL), 0);
    img->raw.digest = dig(1000);
    img->raw.data = (mar_buf)MAR_BUF_INIT(0);
    img->root = index_of(top);
    add_entries(img, img->root, SIZE_MAX, 0, cfgs);
    return img;
}

static vm_target host_target(void)
{
    oci_host h = {0};
    mar_strlcpy(h.platform.os, "linux", sizeof(h.platform.os));
    mar_strlcpy(h.platform.arch, "amd64", sizeof(h.platform.arch));
    vm_target t;
    vm_target_from_host(&h, &t);
    return t;
}

static oci_platform plat(const char *spec)
{
    oci_platform host = {.os = "linux", .arch = "amd64"}, p;
    assert_int_equal(oci_platform_parse(spec, &host, &p, NULL), 0);
    return p;
}

static const char *S(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Entries of an unknown media type are listed and never change the status; the entry asked for
 * decides it. */
static void test_unknown_entries(void **state)
{
    (void)state;
    const char *const top[] = {"m:1:linux/amd64", "u:2:linux/arm64", NULL};
    reg_image *img = image(top, NULL);
    vm_target t = host_target();
    cmd_report r;
    cmd_report_build(img, &t, NULL, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.has_selected);
    mar_digest one = dig(1);
    assert_true(mar_digest_eq(&r.selected, &one));
    assert_int_equal(r.rows[1].status, CMD_ROW_UNKNOWN);
    json_t *j = cmd_report_json(&r);
    json_t *u = json_array_get(json_object_get(j, "platforms"), 1);
    assert_string_equal(S(u, "status"), "unknown");
    assert_string_equal(S(u, "mediaType"), "application/vnd.oci.artifact.manifest.v1+json");
    assert_string_equal(S(u, "run"), "unavailable");
    assert_int_equal(json_array_size(json_object_get(j, "problems")), 1); /* amd64-only */
    json_decref(j);
    cmd_report_release(&r);
    oci_platform arm = plat("linux/arm64");
    cmd_report_build(img, &t, &arm, &r);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    assert_false(r.has_selected);
    cmd_report_release(&r);
    reg_image_free(img);
}

/* An entry that could not be read fails the report with its status; one not read by rule does
 * not. */
static void test_unreadable_and_not_read(void **state)
{
    (void)state;
    const char *const top[] = {"m:1:linux/amd64", "m:2:linux/s390x", "m:3:linux/ppc64le", NULL};
    reg_image *img = image(top, NULL);
    mar_err_set(&img->entries[2].err, MAR_EUNSUPPORTED, 0, "beyond limits, not read");
    img->entries[2].not_read = true;
    vm_target t = host_target();
    cmd_report r;
    cmd_report_build(img, &t, NULL, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.rows[2].status, CMD_ROW_NOT_READ);
    json_t *j = cmd_report_json(&r);
    assert_string_equal(S(json_array_get(json_object_get(j, "problems"), 0), "kind"), "not-read");
    json_decref(j);
    cmd_report_release(&r);
    mar_err_set(&img->entries[1].err, MAR_ENET, 0, "connection reset");
    cmd_report_build(img, &t, NULL, &r);
    assert_int_equal(r.status, MAR_ENET);
    assert_int_equal(r.rows[1].status, CMD_ROW_UNREADABLE);
    cmd_report_release(&r);
    reg_image_free(img);
}

/* containerd reads the config of the first platform-less candidate and stops there. */
static void test_platformless_first_only(void **state)
{
    (void)state;
    const char *const top[] = {"m:1:-", "m:2:-", NULL};
    const char *const cfgs[] = {"linux/arm64", "linux/amd64", NULL};
    reg_image *img = image(top, cfgs);
    vm_target t = host_target();
    cmd_report r;
    oci_platform amd = plat("linux/amd64"), arm = plat("linux/arm64");
    cmd_report_build(img, &t, &amd, &r);
    assert_false(r.has_selected);
    assert_int_equal(r.status, MAR_ENOTFOUND);
    cmd_report_release(&r);
    cmd_report_build(img, &t, &arm, &r);
    assert_true(r.has_selected);
    assert_true(r.rows[0].selected);
    assert_int_equal(r.status, 0);
    cmd_report_release(&r);
    reg_image_free(img);
}

/* Nested indexes: listed in order under the index that lists them, chosen through. */
static void test_nested_listing(void **state)
{
    (void)state;
    const char *const top[] = {"i:10:-", "m:3:linux/ppc64le", "a:4:-:1", NULL};
    reg_image *img = image(top, NULL);
    const char *const nested[] = {"m:1:linux/amd64", "m:2:linux/arm64", NULL};
    img->entries[0].manifest = index_of(nested);
    add_entries(img, img->entries[0].manifest, 0, 1, NULL);
    vm_target t = host_target();
    cmd_report r;
    cmd_report_build(img, &t, NULL, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n_indexes, 1);
    assert_int_equal(r.indexes[0].n_entries, 2);
    assert_int_equal(r.n_rows, 3);
    assert_string_equal(r.rows[0].published, "linux/amd64");
    assert_int_equal(r.rows[0].depth, 1);
    assert_true(r.rows[0].selected);
    assert_string_equal(r.rows[2].published, "linux/ppc64le");
    assert_true(r.indexes[0].seq < r.rows[0].seq && r.rows[1].seq < r.rows[2].seq);
    json_t *j = cmd_report_json(&r);
    json_t *amd = json_array_get(json_object_get(j, "platforms"), 0);
    assert_string_equal(S(amd, "index"), dig(10).str);
    assert_int_equal(json_integer_value(json_object_get(amd, "depth")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(amd, "attestations"), 0)),
                        dig(4).str);
    json_t *ppc = json_array_get(json_object_get(j, "platforms"), 2);
    assert_string_equal(S(ppc, "index"), dig(1000).str);
    json_t *ix = json_array_get(json_object_get(j, "indexes"), 0);
    assert_string_equal(S(ix, "status"), "ok");
    assert_int_equal(json_integer_value(json_object_get(ix, "entries")), 2);
    json_decref(j);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cmd_report_print(&r, f);
    fclose(f);
    assert_non_null(strstr(text, "  (index)  "));
    assert_non_null(strstr(text, "*   linux/amd64 "));
    assert_non_null(strstr(text, "\n  linux/ppc64le "));
    assert_non_null(strstr(text, "+1 attestation manifest for linux/amd64"));
    free(text);
    cmd_report_release(&r);
    /* A platform only the nested index has. */
    oci_platform arm = plat("linux/arm64");
    cmd_report_build(img, &t, &arm, &r);
    assert_true(r.rows[1].selected);
    cmd_report_release(&r);
    reg_image_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_unknown_entries),
            cmocka_unit_test(test_unreadable_and_not_read),
            cmocka_unit_test(test_platformless_first_only),
            cmocka_unit_test(test_nested_listing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
