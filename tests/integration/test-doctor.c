/* mar doctor through the binary: the Lima and colima configurations of testdata/vm (real
 * formats) judged for an Apple Silicon Mac, each finding with its file, line, verdict and fix;
 * binfmt findings over fake binfmt_misc trees holding the kernel's real entry texts (Rosetta
 * shadowed by a newer qemu-x86_64, a handler without F, no mount); the bed's containerd (version
 * and snapshotters) and an unreachable socket; a store holding an amd64 image turning Rosetta-off
 * into a problem; and this machine with the bed, where nothing is a problem. */
#include "itest.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The entries as the kernel prints them: Rosetta's registration line
 * (docs/internals/binfmt-and-rosetta.md §5) and Debian's qemu-user-static ones. */
#define X86_64_MAGIC "magic 7f454c4602010100000000000000000002003e00\n"
static const char rosetta[] =
        "enabled\ninterpreter /mnt/lima-rosetta/rosetta\nflags: OCF\n"
        "offset 0\n" X86_64_MAGIC "mask fffffffffffefe00fffffffffffffffffeffffff\n";
static const char qemu_x86_64[] =
        "enabled\ninterpreter /usr/bin/qemu-x86_64-static\nflags: F\n"
        "offset 0\n" X86_64_MAGIC "mask fffffffffffefefcfffffffffffffffffeffffff\n";
static const char qemu_arm_nof[] = "enabled\ninterpreter /usr/bin/qemu-arm-static\nflags: \n"
                                   "offset 0\nmagic 7f454c4601010100000000000000000002002800\n"
                                   "mask ffffffffffffff00fffffffffffffffffeffffff\n";

static char *td(const char *sub)
{
    return mar_xasprintf("%s/testdata/vm/%s", getenv("MAR_SRC"), sub);
}

static json_t *doctor(int want, const char *const *env, const char *const *args)
{
    const char *argv[32] = {getenv("MAR_BIN"), "doctor", "--json"};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 31; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    itest_run r;
    itest_runv(&r, env, argv);
    if (r.status != want) {
        fail_msg("mar doctor: %d, want %d\n%s%s", r.status, want, r.out.data, r.err.data);
    }
    json_t *j = itest_json(r.out.data);
    itest_run_release(&r);
    return j;
}

/* The finding of an area and subject whose message contains `text`, or fail. */
static json_t *finding(json_t *doc, const char *area, const char *subject, const char *text)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(doc, "findings"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "area")), area) == 0 &&
            strcmp(json_string_value(json_object_get(f, "subject")), subject) == 0 &&
            strstr(json_string_value(json_object_get(f, "message")), text)) {
            return f;
        }
    }
    char *all = json_dumps(json_object_get(doc, "findings"), JSON_INDENT(1));
    fail_msg("no %s finding for '%s' with '%s' in %s", area, subject, text, all);
    return NULL;
}

static void expect(json_t *doc, const char *subject, const char *sev, const char *file_end,
                   int line, const char *text)
{
    json_t *f = finding(doc, "vm", subject, text);
    assert_string_equal(json_string_value(json_object_get(f, "severity")), sev);
    const char *file = json_string_value(json_object_get(f, "file"));
    assert_non_null(file);
    assert_true(strlen(file) > strlen(file_end));
    assert_string_equal(file + strlen(file) - strlen(file_end), file_end);
    assert_int_equal(json_integer_value(json_object_get(f, "line")), line);
    if (strcmp(sev, "ok") != 0) {
        assert_true(strlen(json_string_value(json_object_get(f, "fix"))) > 10);
    }
}

static char *fake_root(const char *name, const char *const *entries)
{
    _cleanup_free_ char *st = mar_xasprintf("%s/status", name);
    free(itest_write(st, "enabled\n", 0644));
    for (size_t i = 0; entries && entries[i]; i += 2) {
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", name, entries[i]);
        free(itest_write(p, entries[i + 1], 0644));
        /* The kernel's order is registration order, read back from ctime. */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return mar_xasprintf("%s/%s", itest_tmpdir(), name);
}

static void test_vm_configurations(void **state)
{
    (void)state;
    _cleanup_free_ char *lh = td("lima-home"), *ch = td("colima-home");
    _cleanup_free_ char *le = mar_xasprintf("LIMA_HOME=%s", lh);
    _cleanup_free_ char *ce = mar_xasprintf("COLIMA_HOME=%s", ch);
    _cleanup_free_ char *root = fake_root("binfmt-empty", NULL);
    _cleanup_free_ char *store = mar_xasprintf("%s/nostore", itest_tmpdir());
    const char *env[] = {le, ce, NULL};
    const char *args[] = {"--target", "apple-silicon", "--no-probe", "--binfmt-root",     root,
                          "--store",  store,           "--address",  "/nonexistent.sock", NULL};
    json_t *j = doctor(1, env, args);
    expect(j, "lima instance docker-vz", "ok", "docker-vz/lima.yaml", 0,
           "vz, aarch64 VM, Rosetta on");
    expect(j, "lima instance intel-qemu", "problem", "intel-qemu/lima.yaml", 3,
           "the VM is x86_64 on an aarch64 host");
    expect(j, "lima instance intel-qemu", "problem", "intel-qemu/lima.yaml", 8,
           "2 GiB of memory for emulated amd64 workloads");
    expect(j, "lima instance twokeys", "problem", "twokeys/lima.yaml", 6,
           "the deprecated top-level rosetta.enabled (true) contradicts");
    expect(j, "lima instance twokeys", "warning", "twokeys/lima.yaml", 11, "Rosetta is off");
    expect(j, "colima profile x86", "problem", "x86/colima.yaml", 6,
           "colima silently falls back to a QEMU VM");
    expect(j, "colima profile x86", "problem", "x86/colima.yaml", 8, "but its Lima VM (");
    expect(j, "colima profile qemu", "warning", "qemu/colima.yaml", 6,
           "vmType qemu on Apple Silicon");
    expect(j, "colima profile good", "ok", "good/colima.yaml", 0, "Rosetta on, 8 GiB");
    /* The broken file is one problem naming its line, not a failure of the whole run. */
    json_t *b = finding(j, "vm", "lima instance broken", "lima.yaml:5:");
    assert_string_equal(json_string_value(json_object_get(b, "severity")), "problem");
    /* Lima's own directories and colima's generated VMs are not instances of their own. */
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(j, "findings"), i, f)
    {
        const char *s = json_string_value(json_object_get(f, "subject"));
        assert_null(strstr(s, "_config"));
        assert_null(strstr(s, "lima instance colima"));
    }
    assert_true(json_integer_value(json_object_get(json_object_get(j, "summary"), "problem")) >= 8);
    json_decref(j);

    /* The same files judged on this host (Linux amd64): a colima VM of aarch64 is the foreign
     * one, Apple-only advice is gone. */
    const char *here[] = {"--no-probe", "--binfmt-root",     root, "--store", store,
                          "--address",  "/nonexistent.sock", NULL};
    j = doctor(1, env, here);
    expect(j, "colima profile qemu", "problem", "qemu/colima.yaml", 4,
           "the VM is aarch64 on an x86_64 host");
    expect(j, "lima instance intel-qemu", "ok", "intel-qemu/lima.yaml", 0, "qemu, x86_64 VM");
    json_decref(j);

    /* The text form: verdict, subject, file:line and the fix. */
    itest_run r;
    itest_mar(&r, env, "doctor", "--target", "apple-silicon", "--no-probe", "--binfmt-root", root,
              "--store", store, "--address", "/nonexistent.sock", NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.out.data, "  problem  lima instance intel-qemu: the VM is x86_64");
    assert_contains(r.out.data, "intel-qemu/lima.yaml:3\n");
    assert_contains(r.out.data, "fix: recreate it as a native aarch64 VM");
    itest_run_release(&r);
}

static void test_binfmt(void **state)
{
    (void)state;
    _cleanup_free_ char *empty = mar_xasprintf("LIMA_HOME=%s/none", itest_tmpdir());
    _cleanup_free_ char *cempty = mar_xasprintf("COLIMA_HOME=%s/none", itest_tmpdir());
    const char *env[] = {empty, cempty, NULL};
    _cleanup_free_ char *store = mar_xasprintf("%s/nostore", itest_tmpdir());
    const char *entries[] = {"rosetta",  rosetta,      "qemu-x86_64", qemu_x86_64,
                             "qemu-arm", qemu_arm_nof, NULL};
    _cleanup_free_ char *root = fake_root("binfmt-shadow", entries);
    /* Judged as on an arm64 machine (a VM's tree): amd64 is foreign there. */
    const char *args[] = {"--target", "linux/arm64", "--binfmt-root",     root, "--store",
                          store,      "--address",   "/nonexistent.sock", NULL};
    json_t *j = doctor(1, env, args);
    json_t *f = finding(j, "emulation", "amd64",
                        "Rosetta ('rosetta') is shadowed by 'qemu-x86_64', registered later");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "problem");
    assert_contains(json_string_value(json_object_get(f, "fix")), "/qemu-x86_64`");
    f = finding(j, "emulation", "arm", "handler 'qemu-arm' lacks F");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "warning");
    /* Unreachable containerd is a warning: only mar run needs it. */
    f = finding(j, "containerd", "/nonexistent.sock", "not reachable");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "warning");
    f = finding(j, "store", store, "no store yet");
    json_decref(j);

    /* Rosetta in front: amd64 is fine. */
    const char *entries2[] = {"qemu-x86_64", qemu_x86_64, "rosetta", rosetta, NULL};
    _cleanup_free_ char *root2 = fake_root("binfmt-rosetta", entries2);
    const char *args2[] = {"--target", "linux/arm64", "--binfmt-root",     root2, "--store",
                           store,      "--address",   "/nonexistent.sock", NULL};
    j = doctor(0, env, args2);
    f = finding(j, "emulation", "amd64", "rosetta ('rosetta', flags OCF)");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "ok");
    json_decref(j);

    /* No binfmt_misc at all. */
    _cleanup_free_ char *none = mar_xasprintf("%s/not-mounted", itest_tmpdir());
    const char *args3[] = {"--binfmt-root",     none, "--store", store, "--address",
                           "/nonexistent.sock", NULL};
    j = doctor(1, env, args3);
    f = finding(j, "emulation", none, "binfmt_misc is not mounted");
    assert_contains(json_string_value(json_object_get(f, "fix")), "mount -t binfmt_misc");
    json_decref(j);
}

static void write_bytes(const char *path, const unsigned char *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
}

/* limactl and colima as an Intel Homebrew would install them on an M-series Mac: x86-64 Mach-O
 * (the first bytes of a real one), and a universal build. */
static void test_tools(void **state)
{
    (void)state;
    _cleanup_free_ char *bin = mar_xasprintf("%s/machobin", itest_tmpdir());
    mkdir(bin, 0755);
    static const unsigned char x86[64] = {0xcf, 0xfa, 0xed, 0xfe, 0x07, 0x00, 0x00, 0x01,
                                          0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00};
    static const unsigned char fat[64] = {
            0xca, 0xfe, 0xba, 0xbe, 0, 0, 0,    2, 0x01, 0, 0,    0x07, 0,    0, 0, 3,
            0,    0,    0x40, 0,    0, 0, 0x10, 0, 0,    0, 0,    14,   0x01, 0, 0, 0x0c,
            0,    0,    0,    0,    0, 0, 0x80, 0, 0,    0, 0x10, 0,    0,    0, 0, 14};
    _cleanup_free_ char *lima = mar_xasprintf("%s/limactl", bin);
    _cleanup_free_ char *colima = mar_xasprintf("%s/colima", bin);
    write_bytes(lima, x86, sizeof(x86));
    write_bytes(colima, fat, sizeof(fat));
    _cleanup_free_ char *path = mar_xasprintf("PATH=%s:%s", bin, getenv("PATH"));
    _cleanup_free_ char *le = mar_xasprintf("LIMA_HOME=%s/none", itest_tmpdir());
    _cleanup_free_ char *ce = mar_xasprintf("COLIMA_HOME=%s/none", itest_tmpdir());
    const char *env[] = {path, le, ce, NULL};
    _cleanup_free_ char *root = fake_root("binfmt-tools", NULL);
    _cleanup_free_ char *store = mar_xasprintf("%s/nostore", itest_tmpdir());
    const char *args[] = {"--target", "apple-silicon", "--binfmt-root",     root, "--store",
                          store,      "--address",     "/nonexistent.sock", NULL};
    json_t *j = doctor(1, env, args);
    json_t *f = finding(j, "host", "limactl", "is built for amd64 only on this arm64 machine");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "problem");
    assert_contains(json_string_value(json_object_get(f, "fix")), "/opt/homebrew");
    f = finding(j, "host", "colima", "amd64,arm64 build");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "ok");
    json_decref(j);
}

/* A limactl that knows two instances of testdata/vm/lima-home: intel-qemu as its file says, and
 * docker-vz, whose file says vz, running under QEMU (created before the file was edited). */
static void test_live_instances(void **state)
{
    (void)state;
    static const char script[] =
            "#!/bin/sh\n"
            "[ \"$1 $2\" = \"list --json\" ] || exit 1\n"
            "printf '{\"name\":\"intel-qemu\",\"status\":\"Stopped\",\"dir\":\"%s/intel-qemu\","
            "\"vmType\":\"qemu\",\"arch\":\"x86_64\",\"cpus\":2,\"memory\":2147483648}\\n' "
            "\"$LIMA_HOME\"\n"
            "printf '{\"name\":\"docker-vz\",\"status\":\"Running\",\"dir\":\"%s/docker-vz\","
            "\"vmType\":\"qemu\",\"arch\":\"aarch64\",\"cpus\":4,\"memory\":4294967296}\\n' "
            "\"$LIMA_HOME\"\n";
    free(itest_write("livebin/limactl", script, 0755));
    _cleanup_free_ char *path = mar_xasprintf("PATH=%s/livebin:%s", itest_tmpdir(), getenv("PATH"));
    _cleanup_free_ char *lh = td("lima-home");
    _cleanup_free_ char *le = mar_xasprintf("LIMA_HOME=%s", lh);
    _cleanup_free_ char *ce = mar_xasprintf("COLIMA_HOME=%s/none", itest_tmpdir());
    const char *env[] = {path, le, ce, NULL};
    _cleanup_free_ char *root = fake_root("binfmt-live", NULL);
    _cleanup_free_ char *store = mar_xasprintf("%s/nostore", itest_tmpdir());
    const char *args[] = {"--target", "apple-silicon", "--binfmt-root",     root, "--store",
                          store,      "--address",     "/nonexistent.sock", NULL};
    json_t *j = doctor(1, env, args);
    expect(j, "lima instance docker-vz", "problem", "docker-vz/lima.yaml", 5,
           "lima.yaml says vmType vz, but the instance runs qemu (limactl list)");
    /* The instance that is what its file says has no such finding. */
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(j, "findings"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "subject")), "lima instance intel-qemu") ==
            0) {
            assert_null(strstr(json_string_value(json_object_get(f, "message")), "limactl list"));
        }
    }
    json_decref(j);
}

static void test_containerd_store_and_this_machine(void **state)
{
    (void)state;
    const char *need[] = {"MAR_TEST_CONTAINERD", "MAR_TEST_REGISTRY", NULL};
    itest_require(need);
    _cleanup_free_ char *store = mar_xasprintf("%s/store", itest_tmpdir());
    itest_run r;
    itest_mar(&r, NULL, "-q", "pull", "--store", store, "-p", "linux/amd64",
              itest_fixture_ref("multi"), NULL);
    assert_int_equal(r.status, 0);
    itest_run_release(&r);

    _cleanup_free_ char *le = mar_xasprintf("LIMA_HOME=%s/none", itest_tmpdir());
    _cleanup_free_ char *ch = td("colima-home");
    _cleanup_free_ char *ce = mar_xasprintf("COLIMA_HOME=%s", ch);
    const char *env[] = {le, ce, NULL};
    const char *args[] = {"--target", "apple-silicon", "--store",
                          store,      "--address",     itest_bed("MAR_TEST_CONTAINERD"),
                          NULL};
    json_t *j = doctor(1, env, args);
    json_t *f = finding(j, "containerd", itest_bed("MAR_TEST_CONTAINERD"), "containerd 1.");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "ok");
    f = finding(j, "containerd", "snapshotters", "overlayfs");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "ok");
    finding(j, "store", store, "1 image, ");
    /* The store holds an amd64 image: Rosetta off is now a problem, not a warning. */
    expect(j, "colima profile default", "problem", "default/colima.yaml", 66,
           "Rosetta is off and the store holds amd64 images");
    expect(j, "colima profile default", "problem", "default/colima.yaml", 13,
           "2 GiB of memory for emulated");
    json_decref(j);

    /* This machine with the bed: the real binfmt_misc (exec probes included), containerd, the
     * store, no VM: nothing is a problem. */
    _cleanup_free_ char *ce2 = mar_xasprintf("COLIMA_HOME=%s/none", itest_tmpdir());
    const char *env2[] = {le, ce2, NULL};
    const char *args2[] = {"--store", store, "--address", itest_bed("MAR_TEST_CONTAINERD"), NULL};
    j = doctor(0, env2, args2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "summary"), "problem")),
                     0);
    f = finding(j, "host", "this machine", "linux");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "ok");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_vm_configurations),
            cmocka_unit_test(test_binfmt),
            cmocka_unit_test(test_tools),
            cmocka_unit_test(test_live_instances),
            cmocka_unit_test(test_containerd_store_and_this_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
