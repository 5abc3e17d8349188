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
        assert_ptr_equal(binfmt_arch_by_oci(a->elf->arch), a);
        assert_ptr_equal(binfmt_arch_by_elf(a->elf->elf_class, a->elf->elf_data, a->elf->e_machine),
                         a);
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
                    print_error("%s registration %s the %s header (type %u)\n", a->elf->arch,
                                m ? "matches" : "misses", b->elf->arch, type);
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
    assert_int_equal(mar_proc_run(argv, NULL, 0, 1024, 1024, 10000, &r, &e), 0);
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

static char *fake_read(fake *f, const char *name)
{
    mar_buf b = MAR_BUF_INIT(1 << 16);
    mar_err *e = NULL;
    assert_int_equal(mar_read_file_at(f->dfd, name, 1 << 16, &b, &e), 0);
    return mar_buf_detach(&b, NULL);
}

/* A stand-in interpreter: root-owned and static, like Debian's qemu-*-static. */
static char *fake_interpreter(fake *f, const char *name, const binfmt_arch *a, unsigned mode,
                              uid_t uid)
{
    mar_buf img = MAR_BUF_INIT(0);
    binfmt_probe_image(a, &img);
    int fd = openat(f->dfd, name, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_int_equal(write(fd, img.data, img.len), (ssize_t)img.len);
    fchmod(fd, mode);
    if (fchown(fd, uid, 0) < 0) {
        /* rootless runs cannot chown; the owner test is skipped below */
    }
    close(fd);
    mar_buf_release(&img);
    return mar_xasprintf("%s/%s", f->root, name);
}

static void test_install_line_and_idempotence(void **state)
{
    fake *f = *state;
    if (geteuid() != 0) {
        skip();
    }
    mkdirat(f->dfd, "bin", 0755);
    const binfmt_arch *arm64 = binfmt_arch_by_oci("arm64");
    _cleanup_free_ char *interp = fake_interpreter(f, "bin/qemu-aarch64-static", arm64, 0755, 0);
    _cleanup_free_ char *bin = mar_xasprintf("%s/bin", f->root);
    binfmt_install_opts o = {.root = f->root, .emulator = BINFMT_KIND_QEMU, .qemu_path = bin};
    binfmt_change ch;
    mar_err *e = NULL;
    assert_int_equal(binfmt_install(&o, arm64, &ch, &e), 0);
    assert_int_equal(ch.action, BINFMT_INSTALLED);
    assert_string_equal(ch.name, "mar-qemu-aarch64");
    _cleanup_free_ char *line = fake_read(f, "register");
    _cleanup_free_ char *want =
            mar_xasprintf(":mar-qemu-aarch64:M:0:%s:%s:%s:F", arm64->magic, arm64->mask, interp);
    assert_string_equal(line, want);
    assert_true(mar_digest_valid(ch.interp_digest.str));

    /* As the kernel would: the entry now exists. Installing again changes nothing. */
    fake_register(f, "mar-qemu-aarch64", "arm64", interp, "F", true);
    fake_write(f, "register", "");
    assert_int_equal(binfmt_install(&o, arm64, &ch, &e), 0);
    assert_int_equal(ch.action, BINFMT_ALREADY);
    _cleanup_free_ char *untouched = fake_read(f, "register");
    assert_string_equal(untouched, "");

    /* Other flags: mar replaces its own entry (removes, then registers). */
    o.allow_setuid = true;
    assert_int_equal(binfmt_install(&o, arm64, &ch, &e), 0);
    assert_true(ch.replaced);
    /* A plain file stands for the kernel's entry: the write lands at its start. */
    _cleanup_free_ char *removed = fake_read(f, "mar-qemu-aarch64");
    assert_true(mar_str_startswith(removed, "-1"));
    _cleanup_free_ char *line2 = fake_read(f, "register");
    assert_true(mar_str_endswith(line2, ":CF"));

    /* Uninstall writes -1 to mar's entries only. */
    fake_register(f, "mar-qemu-aarch64", "arm64", interp, "F", true);
    fake_register(f, "qemu-aarch64", "arm64", "/usr/bin/qemu-aarch64", "F", true);
    assert_int_equal(binfmt_uninstall(f->root, arm64, &ch, &e), 0);
    assert_int_equal(ch.action, BINFMT_REMOVED);
    assert_string_equal(ch.other, "qemu-aarch64");
    _cleanup_free_ char *m = fake_read(f, "mar-qemu-aarch64");
    assert_true(mar_str_startswith(m, "-1"));
    _cleanup_free_ char *q = fake_read(f, "qemu-aarch64");
    assert_true(mar_str_startswith(q, "enabled"));
}

static void test_never_clobber(void **state)
{
    fake *f = *state;
    if (geteuid() != 0) {
        skip();
    }
    mkdirat(f->dfd, "bin", 0755);
    const binfmt_arch *s390x = binfmt_arch_by_oci("s390x");
    free(fake_interpreter(f, "bin/qemu-s390x-static", s390x, 0755, 0));
    _cleanup_free_ char *bin = mar_xasprintf("%s/bin", f->root);
    fake_register(f, "qemu-s390x", "s390x", "/usr/bin/qemu-s390x-static", "POF", true);
    binfmt_install_opts o = {.root = f->root, .emulator = BINFMT_KIND_QEMU, .qemu_path = bin};
    binfmt_change ch;
    mar_err *e = NULL;
    assert_int_equal(binfmt_install(&o, s390x, &ch, &e), 0);
    assert_int_equal(ch.action, BINFMT_HANDLED_BY_OTHER);
    assert_string_equal(ch.other, "qemu-s390x");
    _cleanup_free_ char *reg = fake_read(f, "register");
    assert_string_equal(reg, "");
    /* Named by the user: mar's entry goes in front; the other stays. */
    o.replace_handler = "qemu-s390x";
    assert_int_equal(binfmt_install(&o, s390x, &ch, &e), 0);
    assert_int_equal(ch.action, BINFMT_INSTALLED);
    assert_true(ch.shadows);
    _cleanup_free_ char *other = fake_read(f, "qemu-s390x");
    assert_true(mar_str_startswith(other, "enabled"));
    /* A disabled entry does not count as a handler. */
    fake_register(f, "qemu-s390x", "s390x", "/usr/bin/qemu-s390x-static", "POF", false);
    o.replace_handler = NULL;
    assert_int_equal(binfmt_install(&o, s390x, &ch, &e), 0);
    assert_int_equal(ch.action, BINFMT_INSTALLED);
}

static void test_interpreter_checks(void **state)
{
    fake *f = *state;
    if (geteuid() != 0) {
        skip();
    }
    const binfmt_arch *a = binfmt_arch_by_oci("riscv64");
    mar_err *e = NULL;
    mar_digest d;
    _cleanup_free_ char *good = fake_interpreter(f, "good", a, 0755, 0);
    assert_int_equal(binfmt_check_interpreter(good, false, &d, &e), 0);
    _cleanup_free_ char *gw = fake_interpreter(f, "groupwritable", a, 0775, 0);
    assert_int_equal(binfmt_check_interpreter(gw, false, &d, &e), -MAR_EUNSUPPORTED);
    assert_non_null(strstr(e->msg, "writable"));
    e = mar_err_free(e);
    _cleanup_free_ char *nr = fake_interpreter(f, "notroot", a, 0755, 1);
    assert_int_equal(binfmt_check_interpreter(nr, false, &d, &e), -MAR_EUNSUPPORTED);
    assert_non_null(strstr(e->msg, "not owned by root"));
    e = mar_err_free(e);
    assert_int_equal(binfmt_check_interpreter("/bin/ls", false, &d, &e), -MAR_EUNSUPPORTED);
    assert_non_null(strstr(e->msg, "dynamically linked"));
    e = mar_err_free(e);
    assert_int_equal(symlinkat("good", f->dfd, "link"), 0);
    _cleanup_free_ char *link = mar_xasprintf("%s/link", f->root);
    assert_int_equal(binfmt_check_interpreter(link, false, &d, &e), -MAR_EUNSUPPORTED);
    e = mar_err_free(e);
    assert_int_equal(binfmt_check_interpreter(link, true, &d, &e), 0);
    assert_int_equal(binfmt_check_interpreter("relative/qemu", false, &d, &e), -MAR_EUSAGE);
    e = mar_err_free(e);
    assert_int_equal(binfmt_check_interpreter("/nonexistent/qemu", false, &d, &e), -MAR_ENOTFOUND);
    e = mar_err_free(e);
    fake_write(f, "script", "#!/bin/sh\n");
    _cleanup_free_ char *script = mar_xasprintf("%s/script", f->root);
    assert_int_equal(binfmt_check_interpreter(script, false, &d, &e), -MAR_EUNSUPPORTED);
    mar_err_free(e);
}

static void test_rosetta_line(void **state)
{
    (void)state;
    char line[2048];
    mar_err *e = NULL;
    assert_int_equal(binfmt_register_line("mar-rosetta", binfmt_arch_by_oci("amd64"),
                                          "/mnt/lima-rosetta/rosetta", "F", line, sizeof(line), &e),
                     0);
    /* The magic and mask Lima and colima register for Rosetta (docs/internals/binfmt-and-rosetta.md
     * §5). */
    assert_string_equal(line, ":mar-rosetta:M:0:"
                              "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00"
                              "\\x00\\x00\\x00\\x00\\x02\\x00\\x3e\\x00:"
                              "\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff"
                              "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff"
                              "\\xff\\xff:/mnt/lima-rosetta/rosetta:F");
    assert_int_equal(binfmt_register_line("bad:name", binfmt_arch_by_oci("amd64"), "/x", "F", line,
                                          sizeof(line), &e),
                     -MAR_EUSAGE);
    e = mar_err_free(e);
    binfmt_install_opts o = {.root = "/nonexistent", .emulator = BINFMT_KIND_ROSETTA};
    binfmt_change ch;
    assert_int_equal(binfmt_install(&o, binfmt_arch_by_oci("arm64"), &ch, &e), -MAR_EUNSUPPORTED);
    assert_non_null(strstr(e->msg, "x86-64"));
    mar_err_free(e);
}

static void test_status_on_fake_root(void **state)
{
    fake *f = *state;
    fake_register(f, "rosetta", "amd64", "/mnt/lima-rosetta/rosetta", "OCF", true);
    fake_register(f, "qemu-x86_64", "amd64", "/usr/bin/qemu-x86_64", "P", true);
    binfmt_status st;
    mar_err *e = NULL;
    assert_int_equal(binfmt_status_read(f->root, "arm64", true, &st, &e), 0);
    /* Not the kernel's mount: nothing is probed. */
    assert_false(st.probed);
    const binfmt_arch_status *amd = &st.arch[BINFMT_ARCH_AMD64];
    assert_true(amd->has_handler);
    assert_string_equal(amd->handler.name, "qemu-x86_64");
    assert_int_equal(amd->n_shadowed, 1);
    bool shadow_hint = false, f_hint = false;
    for (size_t i = 0; i < amd->n_hints; i++) {
        shadow_hint = shadow_hint || strstr(amd->hints[i], "Rosetta ('rosetta') is shadowed");
        f_hint = f_hint || strstr(amd->hints[i], "lacks F");
    }
    assert_true(shadow_hint);
    assert_true(f_hint);
    assert_true(st.arch[BINFMT_ARCH_ARM64].native);
    binfmt_status_release(&st);
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
            cmocka_unit_test_setup_teardown(test_install_line_and_idempotence, fake_setup,
                                            fake_teardown),
            cmocka_unit_test_setup_teardown(test_never_clobber, fake_setup, fake_teardown),
            cmocka_unit_test_setup_teardown(test_interpreter_checks, fake_setup, fake_teardown),
            cmocka_unit_test(test_rosetta_line),
            cmocka_unit_test_setup_teardown(test_status_on_fake_root, fake_setup, fake_teardown),
            cmocka_unit_test(test_root_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
