/* The deep scan: layers merged with whiteouts, opaque directories, hard links and directories
 * replaced by files; the entrypoint resolved through symlinks (usrmerge), PATH and script
 * interpreters; verdicts, ISA levels and missing loaders. Layers come from the tests' tar writer,
 * binaries from the probe programs (real ELF files of each architecture). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sys/mman.h>

#include "binfmt/binfmt.h"
#include "tbuf.h"
#include "tarw.h"

static mar_buf elf_of(const char *arch)
{
    mar_buf b = MAR_BUF_INIT(0);
    binfmt_probe_image(binfmt_arch_by_oci(arch), &b);
    return b;
}

/* An amd64 ELF with a loader and an x86 ISA level note. */
static mar_buf dynamic_amd64(const char *interp, int level)
{
    unsigned char b[512];
    memset(b, 0, sizeof(b));
    memcpy(b,
           "\x7f"
           "ELF\x02\x01\x01",
           7);
    b[16] = 3;
    b[18] = 0x3e;
    b[20] = 1;
    b[32] = 64;
    b[52] = 64;
    b[54] = 56;
    b[56] = 2;
    unsigned char *ph = b + 64;
    ph[0] = 3;
    ph[8] = 200;
    ph[32] = (unsigned char)(strlen(interp) + 1);
    memcpy(b + 200, interp, strlen(interp) + 1);
    ph += 56;
    ph[0] = 0x53;
    ph[1] = 0xe5;
    ph[2] = 0x74;
    ph[3] = 0x64;
    ph[8] = 0x90;
    ph[9] = 0x01;
    ph[32] = 32;
    unsigned char *n = b + 400;
    n[0] = 4;
    n[4] = 16;
    n[8] = 5;
    memcpy(n + 12, "GNU", 4);
    n[16] = 0x02;
    n[17] = 0x80;
    n[19] = 0xc0;
    n[20] = 4;
    n[24] = (unsigned char)(1u << (level - 1));
    mar_buf out = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_append(&out, b, 432));
    return out;
}

typedef struct builder {
    mar_buf tar;
} builder;

static void file(builder *b, const char *name, const mar_buf *data)
{
    tarw_add(&b->tar, &(tarw_entry){.name = name,
                                    .type = '0',
                                    .mode = 0755,
                                    .data = data->data,
                                    .size = data->len});
}

static void text(builder *b, const char *name, const char *content)
{
    tarw_add(&b->tar, &(tarw_entry){.name = name,
                                    .type = '0',
                                    .mode = 0755,
                                    .data = content,
                                    .size = strlen(content)});
}

static void link_(builder *b, const char *name, char type, const char *target)
{
    tarw_add(&b->tar, &(tarw_entry){.name = name, .type = type, .mode = 0777, .linkname = target});
}

static void dir(builder *b, const char *name)
{
    tarw_add(&b->tar, &(tarw_entry){.name = name, .type = '5', .mode = 0755});
}

static oci_scan_layer *scan(builder *b)
{
    tarw_finish(&b->tar);
    mar_buf gz = MAR_BUF_INIT(MAR_BUF_NOCAP);
    tarw_gzip(&b->tar, &gz);
    int fd = memfd_create("layer", MFD_CLOEXEC);
    assert_int_equal(write(fd, gz.data, gz.len), (ssize_t)gz.len);
    lseek(fd, 0, SEEK_SET);
    oci_scan_layer *l = NULL;
    mar_err *e = NULL;
    if (oci_scan_layer_read(fd, NULL, &l, &e) < 0) {
        print_error("scan: %s\n", e->msg);
        fail();
    }
    mar_digest want;
    mar_digest_of(MAR_DIGEST_SHA256, b->tar.data, b->tar.len, &want);
    assert_string_equal(l->diff_id.str, want.str);
    close(fd);
    mar_buf_release(&gz);
    mar_buf_release(&b->tar);
    mar_buf_init(&b->tar, MAR_BUF_NOCAP);
    return l;
}

static oci_config *config(const char *entrypoint, const char *cmd, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{%s%s%s%s%s%s%s}}",
             entrypoint ? "\"Entrypoint\":[\"" : "", entrypoint ? entrypoint : "",
             entrypoint ? "\"]" : "", entrypoint && (cmd || path) ? "," : "",
             cmd ? "\"Cmd\":[\"" : "", cmd ? cmd : "", cmd ? "\"]" : "");
    if (path) {
        size_t l = strlen(buf);
        buf[l - 2] = '\0';
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s\"Env\":[\"PATH=%s\"]}}",
                 (entrypoint || cmd) ? "," : "", path);
    }
    oci_config *c = NULL;
    mar_err *e = NULL;
    if (oci_config_parse(buf, strlen(buf), &c, &e) < 0) {
        print_error("config %s: %s\n", buf, e->msg);
        fail();
    }
    return c;
}

static void summarize(oci_scan_layer **ls, size_t n, oci_config *cfg, const char *declared,
                      oci_elf_summary *s)
{
    oci_scan_view v;
    oci_scan_view_build(ls, n, &v);
    oci_elf_summarize(&v, cfg, declared, s);
    oci_scan_view_release(&v);
}

static void test_whiteouts_opaque_hardlinks(void **state)
{
    (void)state;
    builder b = {MAR_BUF_INIT(MAR_BUF_NOCAP)};
    mar_buf amd = elf_of("amd64"), arm = elf_of("arm64");
    dir(&b, "bin/");
    file(&b, "bin/busybox", &amd);
    link_(&b, "bin/sh", '2', "busybox");
    file(&b, "usr/bin/x", &arm);
    file(&b, "usr/lib/foreign", &arm);
    file(&b, "opt/keep", &arm);
    link_(&b, "opt/alias", '1', "opt/keep");
    dir(&b, "srv/d/");
    file(&b, "srv/d/bin", &arm);
    oci_scan_layer *l1 = scan(&b);
    text(&b, "usr/bin/.wh.x", "");
    dir(&b, "usr/lib/");
    text(&b, "usr/lib/.wh..wh..opq", "");
    text(&b, "opt/.wh.keep", "");
    text(&b, "srv/d", "now a file");
    oci_scan_layer *l2 = scan(&b);
    oci_scan_layer *ls[] = {l1, l2};
    oci_config *cfg = config(NULL, "/bin/sh", NULL);
    oci_elf_summary s;
    summarize(ls, 2, cfg, "amd64", &s);
    /* busybox (amd64) and opt/alias (the hard link keeps keep's content, arm64) survive. */
    assert_int_equal(s.n_elf, 2);
    assert_int_equal(s.n_foreign, 1);
    assert_string_equal(s.examples[0].path, "/opt/alias");
    assert_string_equal(s.verdict, "mixed");
    assert_string_equal(s.ep_resolved, "/bin/busybox");
    assert_string_equal(s.ep_arch, "amd64");
    oci_config_free(cfg);
    oci_scan_layer_free(l1);
    oci_scan_layer_free(l2);
    mar_buf_release(&amd);
    mar_buf_release(&arm);
}

static void test_entrypoint_resolution(void **state)
{
    (void)state;
    builder b = {MAR_BUF_INIT(MAR_BUF_NOCAP)};
    mar_buf arm = elf_of("arm64");
    link_(&b, "bin", '2', "usr/bin");
    link_(&b, "lib", '2', "/usr/lib");
    file(&b, "usr/bin/busybox", &arm);
    link_(&b, "usr/bin/sh", '2', "/bin/busybox");
    file(&b, "opt/tool/bin/app", &arm);
    text(&b, "app/start.sh", "#!/bin/sh\nexec app\n");
    link_(&b, "loop/a", '2', "b");
    link_(&b, "loop/b", '2', "a");
    oci_scan_layer *l = scan(&b);
    oci_scan_layer *ls[] = {l};
    oci_elf_summary s;

    oci_config *cfg = config("/bin/sh", NULL, NULL);
    summarize(ls, 1, cfg, "arm64", &s);
    assert_true(s.ep_found);
    assert_string_equal(s.ep_resolved, "/usr/bin/busybox");
    assert_string_equal(s.ep_arch, "arm64");
    assert_string_equal(s.verdict, "consistent");
    oci_config_free(cfg);

    cfg = config(NULL, "app", "/nowhere:/opt/tool/bin:/bin");
    summarize(ls, 1, cfg, "arm64", &s);
    assert_string_equal(s.ep_resolved, "/opt/tool/bin/app");
    oci_config_free(cfg);

    cfg = config("/app/start.sh", NULL, NULL);
    summarize(ls, 1, cfg, "amd64", &s);
    assert_string_equal(s.ep_script, "/app/start.sh");
    assert_string_equal(s.ep_resolved, "/usr/bin/busybox");
    assert_string_equal(s.ep_arch, "arm64");
    assert_string_equal(s.verdict, "mislabeled");
    assert_string_equal(s.majority_arch, "arm64");
    oci_config_free(cfg);

    cfg = config("/loop/a", NULL, NULL);
    summarize(ls, 1, cfg, "arm64", &s);
    assert_true(s.has_entrypoint);
    assert_false(s.ep_found);
    oci_config_free(cfg);

    cfg = config("../../bin/sh", NULL, NULL);
    summarize(ls, 1, cfg, "arm64", &s);
    assert_string_equal(s.ep_resolved, "/usr/bin/busybox");
    oci_config_free(cfg);
    oci_scan_layer_free(l);
    mar_buf_release(&arm);
}

static void test_loaders_and_isa(void **state)
{
    (void)state;
    builder b = {MAR_BUF_INIT(MAR_BUF_NOCAP)};
    mar_buf app = dynamic_amd64("/lib64/ld-linux-x86-64.so.2", 3);
    mar_buf musl = dynamic_amd64("/lib/ld-musl-x86_64.so.1", 1);
    file(&b, "usr/bin/app", &app);
    file(&b, "usr/bin/other", &musl);
    oci_scan_layer *l1 = scan(&b);
    oci_scan_layer *ls[] = {l1, NULL};
    oci_config *cfg = config("/usr/bin/app", NULL, NULL);
    oci_elf_summary s;
    summarize(ls, 1, cfg, "amd64", &s);
    assert_true(s.ep_interp_missing);
    assert_string_equal(s.ep_interp, "/lib64/ld-linux-x86-64.so.2");
    assert_int_equal(s.n_missing_loader, 2);
    assert_int_equal(s.max_isa_level, 3);
    assert_int_equal(s.ep_isa_level, 3);
    assert_int_equal(s.n_isa_v3plus, 1);

    /* The loader arrives in a later layer, through Debian's symlink layout. */
    text(&b, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "not really a loader");
    link_(&b, "lib64", '2', "lib/x86_64-linux-gnu");
    oci_scan_layer *l2 = scan(&b);
    ls[1] = l2;
    summarize(ls, 2, cfg, "amd64", &s);
    assert_false(s.ep_interp_missing);
    assert_int_equal(s.n_missing_loader, 1);
    assert_string_equal(s.loader_missing, "/lib/ld-musl-x86_64.so.1");
    oci_config_free(cfg);
    oci_scan_layer_free(l1);
    oci_scan_layer_free(l2);
    mar_buf_release(&app);
    mar_buf_release(&musl);
}

static void test_no_elf_and_every_arch(void **state)
{
    (void)state;
    builder b = {MAR_BUF_INIT(MAR_BUF_NOCAP)};
    text(&b, "etc/motd", "hello");
    oci_scan_layer *l = scan(&b);
    oci_scan_layer *ls[] = {l};
    oci_elf_summary s;
    summarize(ls, 1, NULL, "amd64", &s);
    assert_string_equal(s.verdict, "no-elf");
    assert_false(s.has_entrypoint);
    oci_scan_layer_free(l);
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch *a = binfmt_arch_get((binfmt_arch_id)i);
        mar_buf e = elf_of(a->elf->arch);
        file(&b, "bin/x", &e);
        l = scan(&b);
        ls[0] = l;
        summarize(ls, 1, NULL, a->elf->arch, &s);
        assert_string_equal(s.verdict, "consistent");
        assert_string_equal(s.majority_arch, a->elf->arch);
        summarize(ls, 1, NULL, strcmp(a->elf->arch, "amd64") ? "amd64" : "arm64", &s);
        assert_string_equal(s.verdict, "mislabeled");
        oci_scan_layer_free(l);
        mar_buf_release(&e);
    }
}

/* The image's own symlinks are followed at most MAR_SYMLINK_HOPS times, as the kernel would in
 * the container; ".." and absolute targets stay inside the image. */
static void test_symlink_hops(void **state)
{
    (void)state;
    builder b = {MAR_BUF_INIT(MAR_BUF_NOCAP)};
    text(&b, "d/f", "x");
    /* l0 -> d, l1 -> ../top/l0, ...: reaching d from l<i> follows i + 1 links. */
    link_(&b, "top/l0", '2', "/../d");
    for (int i = 1; i <= MAR_SYMLINK_HOPS; i++) {
        char name[32], target[32];
        snprintf(name, sizeof(name), "top/l%d", i);
        snprintf(target, sizeof(target), i % 2 ? "../top/l%d" : "l%d", i - 1);
        link_(&b, name, '2', target);
    }
    oci_scan_layer *l = scan(&b);
    oci_scan_layer *ls[] = {l};
    oci_scan_view v;
    oci_scan_view_build(ls, 1, &v);
    char path[64], resolved[OCI_PATH_MAX + 2];
    snprintf(path, sizeof(path), "/top/l%d/f", MAR_SYMLINK_HOPS - 1);
    const oci_scan_node *n = oci_scan_resolve(&v, path, resolved, sizeof(resolved));
    assert_non_null(n);
    assert_string_equal(resolved, "/d/f");
    snprintf(path, sizeof(path), "/top/l%d/f", MAR_SYMLINK_HOPS);
    assert_null(oci_scan_resolve(&v, path, resolved, sizeof(resolved)));
    /* The path is cleaned before any link is followed: "l<n>/.." never follows l<n>. */
    snprintf(path, sizeof(path), "/top/./l%d/../l0//f", MAR_SYMLINK_HOPS);
    n = oci_scan_resolve(&v, path, resolved, sizeof(resolved));
    assert_non_null(n);
    assert_string_equal(resolved, "/d/f");
    oci_scan_view_release(&v);
    oci_scan_layer_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_whiteouts_opaque_hardlinks),
            cmocka_unit_test(test_entrypoint_resolution),
            cmocka_unit_test(test_loaders_and_isa),
            cmocka_unit_test(test_no_elf_and_every_arch),
            cmocka_unit_test(test_symlink_hops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
