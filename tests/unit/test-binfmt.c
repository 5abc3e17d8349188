/* binfmt/: entry parsing, the kernel's newest-first lookup over a fake binfmt_misc tree, and the
 * architecture table's consistency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "binfmt/binfmt.h"

/* Converts a registration magic/mask ("\x7fELF\x02...") to the hex the kernel prints. */
static void escaped_to_hex(const char *s, char *out, size_t n)
{
    size_t o = 0;
    while (*s && o + 3 < n) {
        unsigned v;
        if (s[0] == '\\' && s[1] == 'x') {
            sscanf(s + 2, "%2x", &v);
            s += 4;
        } else {
            v = (unsigned char)*s++;
        }
        o += (size_t)snprintf(out + o, n - o, "%02x", v);
    }
    out[o] = '\0';
}

static char *entry_text(const binfmt_arch *a, const char *interp, const char *flags, bool enabled)
{
    char magic[512], mask[512];
    escaped_to_hex(a->magic, magic, sizeof(magic));
    escaped_to_hex(a->mask, mask, sizeof(mask));
    return mar_xasprintf("%s\ninterpreter %s\nflags: %s\noffset 0\nmagic %s\nmask %s\n",
                         enabled ? "enabled" : "disabled", interp, flags, magic, mask);
}

static void test_parse_entry(void **state)
{
    (void)state;
    binfmt_entry e;
    mar_err *err = NULL;
    const char *debian = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                         "flags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n"
                         "mask ffffffffffffff00fffffffffffffffffeffffff\n";
    assert_int_equal(binfmt_entry_parse("qemu-aarch64", debian, &e, &err), 0);
    assert_true(e.enabled);
    assert_string_equal(e.interpreter, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
    assert_true(binfmt_entry_has_flag(&e, 'F'));
    assert_false(binfmt_entry_has_flag(&e, 'C'));
    assert_int_equal(e.magic_len, 20);
    assert_int_equal(binfmt_entry_kind(&e), BINFMT_KIND_QEMU);
    unsigned char hdr[BINFMT_HEADER_SIZE];
    binfmt_synthetic_header(binfmt_arch_by_oci("arm64"), 2, hdr);
    assert_true(binfmt_entry_matches(&e, hdr, sizeof(hdr)));
    binfmt_synthetic_header(binfmt_arch_by_oci("arm64"), 3, hdr);
    assert_true(binfmt_entry_matches(&e, hdr, sizeof(hdr)));
    binfmt_synthetic_header(binfmt_arch_by_oci("amd64"), 2, hdr);
    assert_false(binfmt_entry_matches(&e, hdr, sizeof(hdr)));

    const char *ext = "disabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n";
    assert_int_equal(binfmt_entry_parse("wine", ext, &e, &err), 0);
    assert_false(e.enabled);
    assert_true(e.is_extension);
    assert_false(binfmt_entry_matches(&e, hdr, sizeof(hdr)));

    const char *nomask = "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f454c46\n";
    assert_int_equal(binfmt_entry_parse("plain", nomask, &e, &err), 0);
    assert_true(binfmt_entry_matches(&e, hdr, sizeof(hdr)));
    assert_int_equal(binfmt_entry_kind(&e), BINFMT_KIND_OTHER);

    /* Newer kernels may print lines mar does not know: ignored. */
    const char *future = "enabled\ninterpreter /mnt/lima-rosetta/rosetta\nflags: OCF\n"
                         "offset 0\nmagic 7f454c46\nmask ffffffff\nsomething new 1\n";
    assert_int_equal(binfmt_entry_parse("rosetta", future, &e, &err), 0);
    assert_int_equal(binfmt_entry_kind(&e), BINFMT_KIND_ROSETTA);

    static const char *const bad[] = {
            "interpreter /x\nmagic 00\n",                               /* no state */
            "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7g\n",  /* bad hex */
            "enabled\ninterpreter /x\noffset 0\nmagic 7f45\nmask ff\n", /* length mismatch */
            "enabled\ninterpreter /x\nflags: F\n",                      /* no magic */
            "enabled\noffset 99999\nmagic 00\n",                        /* offset */
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(bad); i++) {
        assert_int_equal(binfmt_entry_parse("bad", bad[i], &e, &err), -MAR_EINTEGRITY);
        err = mar_err_free(err);
    }
}

static void test_kinds(void **state)
{
    (void)state;
    binfmt_entry e = {0};
    static const struct {
        const char *name, *interp;
        binfmt_kind kind;
    } k[] = {
            {"rosetta", "/mnt/lima-rosetta/rosetta", BINFMT_KIND_ROSETTA},
            {"r", "/media/rosetta", BINFMT_KIND_ROSETTA},
            {"r", "/var/run/rosetta", BINFMT_KIND_ROSETTA},
            {"qemu-x86_64", "/usr/bin/qemu-x86_64-static", BINFMT_KIND_QEMU},
            {"buildkit-qemu-aarch64", "/usr/bin/buildkit-qemu-aarch64", BINFMT_KIND_BUILDKIT_QEMU},
            {"fex", "/usr/bin/FEXInterpreter", BINFMT_KIND_OTHER},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(k); i++) {
        mar_strlcpy(e.name, k[i].name, sizeof(e.name));
        mar_strlcpy(e.interpreter, k[i].interp, sizeof(e.interpreter));
        assert_int_equal(binfmt_entry_kind(&e), k[i].kind);
    }
    assert_string_equal(binfmt_kind_name(BINFMT_KIND_BUILDKIT_QEMU), "buildkit-qemu");
}

/* Every architecture's registration matches its own synthetic headers and no other's. */
static void test_table_consistency(void **state)
{
    (void)state;
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch *a = binfmt_arch_get((binfmt_arch_id)i);
        assert_ptr_equal(binfmt_arch_by_oci(a->oci_arch), a);
        assert_ptr_equal(binfmt_arch_by_elf(a->elf_class, a->elf_data, a->e_machine), a);
        char *text = entry_text(a, "/x", "F", true);
        binfmt_entry e;
        mar_err *err = NULL;
        assert_int_equal(binfmt_entry_parse(a->qemu_name, text, &e, &err), 0);
        free(text);
        for (size_t j = 0; j < BINFMT_ARCH_COUNT; j++) {
            const binfmt_arch *b = binfmt_arch_get((binfmt_arch_id)j);
            for (unsigned type = 2; type <= 3; type++) {
                unsigned char hdr[BINFMT_HEADER_SIZE];
                binfmt_synthetic_header(b, type, hdr);
                bool m = binfmt_entry_matches(&e, hdr, sizeof(hdr));
                if (m != (i == j)) {
                    print_error("%s registration %s the %s header (type %u)\n", a->oci_arch,
                                m ? "matches" : "misses", b->oci_arch, type);
                    fail();
                }
            }
        }
    }
    assert_null(binfmt_arch_by_oci("sparc"));
}

typedef struct fake {
    char root[64];
    int dfd;
} fake;

static void fake_write(fake *f, const char *name, const char *text)
{
    int fd = openat(f->dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    /* Registration order is read from ctime: keep stamps distinct. */
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void fake_register(fake *f, const char *name, const char *arch, const char *interp,
                          const char *flags, bool enabled)
{
    char *t = entry_text(binfmt_arch_by_oci(arch), interp, flags, enabled);
    fake_write(f, name, t);
    free(t);
}

static int fake_setup(void **state)
{
    fake *f = mar_xcalloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/mar-binfmt-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    f->dfd = open(f->root, O_RDONLY | O_DIRECTORY);
    fake_write(f, "status", "enabled\n");
    fake_write(f, "register", "");
    *state = f;
    return 0;
}

static int fake_teardown(void **state)
{
    fake *f = *state;
    _cleanup_free_ char *cmd = mar_xasprintf("rm -rf '%s'", f->root);
    char *argv[] = {"sh", "-c", cmd, NULL};
    mar_proc_result r;
    mar_err *e = NULL;
    mar_proc_run(argv, NULL, 0, 1024, 1024, 10000, &r, &e);
    mar_proc_result_release(&r);
    close(f->dfd);
    free(f);
    return 0;
}

static void test_rosetta_shadowed_by_newer_qemu(void **state)
{
    fake *f = *state;
    fake_register(f, "rosetta", "amd64", "/mnt/lima-rosetta/rosetta", "OCF", true);
    fake_register(f, "qemu-x86_64", "amd64", "/usr/bin/qemu-x86_64", "F", true);
    binfmt_table t;
    mar_err *e = NULL;
    assert_int_equal(binfmt_table_read(f->root, &t, &e), 0);
    assert_true(t.mounted);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.v[0].name, "qemu-x86_64");
    size_t shadowed = 0;
    const binfmt_entry *w = binfmt_effective(&t, binfmt_arch_by_oci("amd64"), &shadowed);
    assert_non_null(w);
    assert_string_equal(w->name, "qemu-x86_64");
    assert_int_equal(shadowed, 1);
    assert_null(binfmt_effective(&t, binfmt_arch_by_oci("arm64"), NULL));
    binfmt_table_release(&t);
}

static void test_colima_disables_qemu(void **state)
{
    fake *f = *state;
    fake_register(f, "qemu-x86_64", "amd64", "/usr/bin/qemu-x86_64", "F", true);
    fake_register(f, "rosetta", "amd64", "/mnt/lima-rosetta/rosetta", "OCF", true);
    fake_register(f, "qemu-x86_64", "amd64", "/usr/bin/qemu-x86_64", "F", false);
    binfmt_table t;
    mar_err *e = NULL;
    assert_int_equal(binfmt_table_read(f->root, &t, &e), 0);
    const binfmt_entry *w = binfmt_effective(&t, binfmt_arch_by_oci("amd64"), NULL);
    assert_non_null(w);
    assert_int_equal(binfmt_entry_kind(w), BINFMT_KIND_ROSETTA);
    binfmt_table_release(&t);
}

static void test_global_disabled_and_unmounted(void **state)
{
    fake *f = *state;
    fake_register(f, "qemu-aarch64", "arm64", "/usr/bin/qemu-aarch64", "F", true);
    fake_write(f, "status", "disabled\n");
    binfmt_table t;
    mar_err *e = NULL;
    assert_int_equal(binfmt_table_read(f->root, &t, &e), 0);
    assert_false(t.global_enabled);
    assert_null(binfmt_effective(&t, binfmt_arch_by_oci("arm64"), NULL));
    binfmt_table_release(&t);
    assert_int_equal(binfmt_table_read("/nonexistent/binfmt", &t, &e), 0);
    assert_false(t.mounted);
    assert_int_equal(t.n, 0);
    /* A malformed entry is skipped with a warning, the rest still read. */
    fake_write(f, "status", "enabled\n");
    fake_write(f, "junk", "garbage\n");
    assert_int_equal(binfmt_table_read(f->root, &t, &e), 0);
    assert_int_equal(t.n, 1);
    binfmt_table_release(&t);
}

static void test_root_param(void **state)
{
    (void)state;
    assert_string_equal(binfmt_root("/x"), "/x");
    setenv("MAR_BINFMT_ROOT", "/from/env", 1);
    assert_string_equal(binfmt_root(NULL), "/from/env");
    unsetenv("MAR_BINFMT_ROOT");
    assert_string_equal(binfmt_root(NULL), BINFMT_DEFAULT_ROOT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_entry),
            cmocka_unit_test(test_kinds),
            cmocka_unit_test(test_table_consistency),
            cmocka_unit_test_setup_teardown(test_rosetta_shadowed_by_newer_qemu, fake_setup,
                                            fake_teardown),
            cmocka_unit_test_setup_teardown(test_colima_disables_qemu, fake_setup, fake_teardown),
            cmocka_unit_test_setup_teardown(test_global_disabled_and_unmounted, fake_setup,
                                            fake_teardown),
            cmocka_unit_test(test_root_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
