/* mar binfmt against the real kernel (root, binfmt_misc): status agrees with what really runs;
 * install registers a working mar- entry with F and without C; it never clobbers an entry it
 * does not own; uninstall removes only its own and the probe fails again; the machine's previous
 * state is restored exactly. Also: installing qemu-i386 turns inspect's 386 verdict around. */
#include "itest.h"
#include "tbuf.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>

#define ROOT "/proc/sys/fs/binfmt_misc"

static char *read_entry(const char *name)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", ROOT, name);
    mar_buf b = MAR_BUF_INIT(1 << 16);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, p, 1 << 16, &b, &e) < 0) {
        mar_err_free(e);
        return NULL;
    }
    return mar_buf_detach(&b, NULL);
}

/* "name\ncontent" of every entry, sorted: the state to restore. */
static char *snapshot(void)
{
    DIR *d = opendir(ROOT);
    assert_non_null(d);
    mar_strv names = MAR_STRV_INIT;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.' && strcmp(de->d_name, "register") != 0) {
            mar_strv_push(&names, de->d_name);
        }
    }
    closedir(d);
    mar_strv_sort(&names);
    mar_buf out = MAR_BUF_INIT(1 << 20);
    for (size_t i = 0; i < names.n; i++) {
        char *c = read_entry(names.v[i]);
        T_BUF(mar_buf_printf(&out, "== %s\n%s", names.v[i], c ? c : "(gone)\n"));
        free(c);
    }
    mar_strv_release(&names);
    return mar_buf_detach(&out, NULL);
}

/* Rebuilds the registration line of an entry from what the kernel prints. */
static char *registration_of(const char *name, const char *text)
{
    binfmt_entry e;
    mar_err *err = NULL;
    assert_int_equal(binfmt_entry_parse(name, text, &e, &err), 0);
    mar_buf l = MAR_BUF_INIT(4096);
    T_BUF(mar_buf_printf(&l, ":%s:M:%u:", name, e.offset));
    for (size_t i = 0; i < e.magic_len; i++) {
        T_BUF(mar_buf_printf(&l, "\\x%02x", e.magic[i]));
    }
    T_BUF(mar_buf_puts(&l, ":"));
    for (size_t i = 0; e.has_mask && i < e.magic_len; i++) {
        T_BUF(mar_buf_printf(&l, "\\x%02x", e.mask[i]));
    }
    T_BUF(mar_buf_printf(&l, ":%s:", e.interpreter));
    for (const char *f = e.flags; *f; f++) {
        /* C implies O: the kernel prints both, registration takes C alone. */
        if (*f == 'O' && strchr(e.flags, 'C')) {
            continue;
        }
        T_BUF(mar_buf_append(&l, f, 1));
    }
    return mar_buf_detach(&l, NULL);
}

static void kernel_write(const char *file, const char *data)
{
    _cleanup_free_ char *p = mar_xasprintf("%s/%s", ROOT, file);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
}

static char *initial;

static int setup(void **state)
{
    (void)state;
    const char *const need[] = {"MAR_TEST_BINFMT", "MAR_TEST_REGISTRY", NULL};
    itest_require(need);
    if (geteuid() != 0) {
        fprintf(stderr, "needs root to register binfmt_misc entries\n");
        exit(getenv("MAR_CI") ? 1 : 77);
    }
    initial = snapshot();
    return 0;
}

/* Puts back anything a failed test left: removes mar- entries, re-registers removed ones. */
static int restore(void **state)
{
    (void)state;
    DIR *d = opendir(ROOT);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (mar_str_startswith(de->d_name, "mar-")) {
            kernel_write(de->d_name, "-1");
        }
    }
    if (d) {
        closedir(d);
    }
    for (char *p = strstr(initial, "== "); p; p = strstr(p + 3, "== ")) {
        char name[128];
        sscanf(p + 3, "%127s", name);
        if (strcmp(name, "status") == 0) {
            continue;
        }
        _cleanup_free_ char *now = read_entry(name);
        if (!now) {
            const char *body = strchr(p, '\n') + 1;
            const char *end = strstr(body, "== ");
            _cleanup_free_ char *text =
                    mar_xstrndup(body, end ? (size_t)(end - body) : strlen(body));
            _cleanup_free_ char *line = registration_of(name, text);
            kernel_write("register", line);
        }
    }
    _cleanup_free_ char *after = snapshot();
    assert_string_equal(after, initial);
    return 0;
}

static int run_uname(const char *debarch, char *out, size_t n)
{
    itest_run r;
    const char *argv[] = {itest_busybox(debarch), "uname", "-m", NULL};
    itest_runv(&r, NULL, argv);
    snprintf(out, n, "%s", r.out.data);
    int st = r.status;
    itest_run_release(&r);
    return st;
}

static json_t *status_json(void)
{
    itest_run r;
    itest_mar(&r, NULL, "binfmt", "status", "--json", NULL);
    assert_int_equal(r.status, 0);
    json_t *j = json_loads(r.out.data, 0, NULL);
    assert_non_null(j);
    itest_run_release(&r);
    return j;
}

static json_t *arch_status(json_t *j, const char *arch)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(j, "architectures"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "arch")), arch) == 0) {
            return a;
        }
    }
    fail();
    return NULL;
}

static const char *probe_of(json_t *a)
{
    return json_string_value(json_object_get(json_object_get(a, "probe"), "result"));
}

static void test_status_is_the_truth(void **state)
{
    (void)state;
    json_t *j = status_json();
    assert_true(json_is_true(json_object_get(j, "probed")));
    static const struct {
        const char *arch, *debarch;
    } cases[] = {{"amd64", "amd64"},      {"386", "i386"},        {"arm64", "arm64"},
                 {"arm", "armhf"},        {"ppc64le", "ppc64el"}, {"s390x", "s390x"},
                 {"mips64le", "mips64el"}};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cases); i++) {
        json_t *a = arch_status(j, cases[i].arch);
        char out[64];
        bool runs = run_uname(cases[i].debarch, out, sizeof(out)) == 0;
        const char *p = probe_of(a);
        bool says = strcmp(p, "works") == 0 || strcmp(p, "native") == 0;
        if (runs != says) {
            print_error("%s: status says '%s', busybox %s\n", cases[i].arch, p,
                        runs ? "runs" : "does not run");
            fail();
        }
    }
    json_t *arm64 = arch_status(j, "arm64");
    assert_string_equal(
            json_string_value(json_object_get(json_object_get(arm64, "handler"), "kind")), "qemu");
    json_decref(j);
}

static void test_never_clobbers(void **state)
{
    (void)state;
    itest_run r;
    itest_mar(&r, NULL, "binfmt", "install", "arm64", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "already handled by 'qemu-aarch64'");
    itest_run_release(&r);
    itest_mar(&r, NULL, "binfmt", "uninstall", "arm64", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "'qemu-aarch64' is not mar's: left alone");
    itest_run_release(&r);
    _cleanup_free_ char *now = snapshot();
    assert_string_equal(now, initial);
}

static void test_install_run_uninstall(void **state)
{
    (void)state;
    /* Take the bed's handler away for the duration of the test. */
    _cleanup_free_ char *theirs = read_entry("qemu-aarch64");
    assert_non_null(theirs);
    kernel_write("qemu-aarch64", "-1");
    char out[64];
    assert_true(run_uname("arm64", out, sizeof(out)) != 0);
    json_t *j = status_json();
    assert_string_equal(probe_of(arch_status(j, "arm64")), "exec format error");
    json_decref(j);

    itest_run r;
    itest_mar(&r, NULL, "binfmt", "install", "aarch64", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "installed mar-qemu-aarch64");
    assert_contains(r.out.data, "probe: works");
    itest_run_release(&r);
    _cleanup_free_ char *mine = read_entry("mar-qemu-aarch64");
    assert_non_null(mine);
    assert_contains(mine, "enabled\n");
    assert_contains(mine, "interpreter /usr/bin/qemu-aarch64-static\n");
    assert_contains(mine, "flags: F\n");
    assert_int_equal(run_uname("arm64", out, sizeof(out)), 0);
    assert_string_equal(out, "aarch64\n");

    itest_mar(&r, NULL, "binfmt", "install", "arm64", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "already installed");
    itest_run_release(&r);

    itest_mar(&r, NULL, "binfmt", "uninstall", "arm64", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "removed mar-qemu-aarch64");
    assert_contains(r.out.data, "probe: exec format error");
    itest_run_release(&r);
    assert_true(run_uname("arm64", out, sizeof(out)) != 0);

    _cleanup_free_ char *line = registration_of("qemu-aarch64", theirs);
    kernel_write("register", line);
    _cleanup_free_ char *now = snapshot();
    assert_string_equal(now, initial);
}

static void test_replace_handler(void **state)
{
    (void)state;
    itest_run r;
    itest_mar(&r, NULL, "binfmt", "install", "--replace-handler", "qemu-s390x", "s390x", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "now wins over 'qemu-s390x'");
    itest_run_release(&r);
    json_t *j = status_json();
    json_t *a = arch_status(j, "s390x");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "handler"), "name")),
                        "mar-qemu-s390x");
    assert_string_equal(json_string_value(json_array_get(json_object_get(a, "shadowed"), 0)),
                        "qemu-s390x");
    json_decref(j);
    char out[64];
    assert_int_equal(run_uname("s390x", out, sizeof(out)), 0);
    itest_mar(&r, NULL, "binfmt", "uninstall", "s390x", NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out.data, "probe: works");
    itest_run_release(&r);
    _cleanup_free_ char *now = snapshot();
    assert_string_equal(now, initial);
}

static const char *run_of_386(void)
{
    itest_run r;
    itest_mar(&r, NULL, "-q", "inspect", "--json", itest_fixture_ref("multi"), NULL);
    json_t *j = json_loads(r.out.data, 0, NULL);
    itest_run_release(&r);
    static char run[32];
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "platforms"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "platform")), "linux/386") == 0) {
            mar_strlcpy(run, json_string_value(json_object_get(p, "run")), sizeof(run));
        }
    }
    json_decref(j);
    return run;
}

/* Where the kernel refuses 32-bit x86, qemu-i386 makes 386 images runnable: inspect follows. */
static void test_386_through_qemu(void **state)
{
    (void)state;
    char out[64];
    if (run_uname("i386", out, sizeof(out)) == 0) {
        /* This kernel runs 386 itself: inspect must say native. */
        assert_string_equal(run_of_386(), "native");
        return;
    }
    assert_string_equal(run_of_386(), "unavailable");
    itest_run r;
    itest_mar(&r, NULL, "binfmt", "install", "386", NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    assert_int_equal(run_uname("i386", out, sizeof(out)), 0);
    assert_string_equal(run_of_386(), "emulated");
    itest_mar(&r, NULL, "binfmt", "uninstall", "386", NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);
    assert_string_equal(run_of_386(), "unavailable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(test_status_is_the_truth, restore),
            cmocka_unit_test_teardown(test_never_clobbers, restore),
            cmocka_unit_test_teardown(test_install_run_uninstall, restore),
            cmocka_unit_test_teardown(test_replace_handler, restore),
            cmocka_unit_test_teardown(test_386_through_qemu, restore),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    free(initial);
    return rc;
}
