/* vm/: the Lima driver without Lima. The generated lima.yaml against golden files (reviewed by
 * hand) for an Apple Silicon Mac, an Intel Mac and Linux; every key in them one Lima's
 * templates/default.yaml documents; the contradictions refused; and the limactl invocations
 * (create with the file as it is at that moment, start, stop, delete, list --json with a
 * recorded answer, shell, a failing limactl) through an injected runner. */
#include <setjmp.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <yaml.h>

#include "vm/vm.h"
#include "tbuf.h"

static const vm_host_facts apple = {.os = "darwin", .arch = "arm64"};
static const vm_host_facts intel_mac = {.os = "darwin", .arch = "amd64"};
static const vm_host_facts linux_amd64 = {.os = "linux", .arch = "amd64"};

static char *golden_path(const char *name)
{
    const char *td = getenv("MAR_TESTDATA");
    return mar_xasprintf("%s/vm/golden/%s", td ? td : "testdata", name);
}

static char *slurp(const char *path)
{
    mar_buf b = MAR_BUF_INIT(1u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, path, 1u << 20, &b, &e) < 0) {
        fail_msg("%s", e->msg);
    }
    T_BUF(mar_buf_append(&b, "", 1));
    return (char *)b.data;
}

/* Lima's documented keys (templates/default.yaml), as dotted paths; list items as "[]". */
static const char *const documented[] = {
        "minimumLimaVersion",
        "vmType",
        "arch",
        "cpus",
        "memory",
        "disk",
        "images",
        "images[]",
        "images[].location",
        "images[].arch",
        "images[].digest",
        "mountType",
        "mounts",
        "mounts[]",
        "mounts[].location",
        "mounts[].mountPoint",
        "mounts[].writable",
        "containerd",
        "containerd.system",
        "containerd.user",
        "vmOpts",
        "vmOpts.vz",
        "vmOpts.vz.rosetta",
        "vmOpts.vz.rosetta.enabled",
        "vmOpts.vz.rosetta.binfmt",
        "provision",
        "provision[]",
        "provision[].mode",
        "provision[].script",
};

static void check_keys(yaml_document_t *d, yaml_node_t *n, const char *path)
{
    if (path[0]) {
        bool ok = false;
        for (size_t i = 0; i < sizeof(documented) / sizeof(documented[0]) && !ok; i++) {
            ok = strcmp(documented[i], path) == 0;
        }
        if (!ok) {
            fail_msg("key '%s' is not one Lima documents", path);
        }
    }
    if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(d, p->key);
            char *sub = mar_xasprintf("%s%s%s", path, path[0] ? "." : "",
                                      (const char *)k->data.scalar.value);
            check_keys(d, yaml_document_get_node(d, p->value), sub);
            free(sub);
        }
    } else if (n->type == YAML_SEQUENCE_NODE) {
        char *sub = mar_xasprintf("%s[]", path);
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            check_keys(d, yaml_document_get_node(d, *it), sub);
        }
        free(sub);
    }
}

static char *generate(const vm_lima_spec *s, const vm_host_facts *h)
{
    char *y = NULL;
    mar_err *e = NULL;
    if (vm_lima_yaml(s, h, "TEST", &y, &e) < 0) {
        fail_msg("%s", e->msg);
    }
    /* It is YAML, every key documented, and mar's own reader sees what was asked. */
    yaml_parser_t p;
    yaml_document_t d;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)y, strlen(y));
    assert_true(yaml_parser_load(&p, &d));
    check_keys(&d, yaml_document_get_root_node(&d), "");
    yaml_document_delete(&d);
    yaml_parser_delete(&p);
    return y;
}

static void golden(const char *name, const vm_lima_spec *s, const vm_host_facts *h)
{
    _cleanup_free_ char *y = generate(s, h);
    _cleanup_free_ char *path = golden_path(name);
    if (getenv("MAR_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(y, f);
        fclose(f);
    }
    _cleanup_free_ char *want = slurp(path);
    if (strcmp(y, want) != 0) {
        fail_msg("%s differs from the generated file:\n%s", name, y);
    }
}

static void test_golden(void **state)
{
    (void)state;
    vm_lima_spec s;
    vm_lima_spec_init(&s);
    mar_strlcpy(s.mar_source, "/Users/dev/src/mar", sizeof(s.mar_source));
    golden("apple-silicon.yaml", &s, &apple);

    vm_lima_spec big = s;
    mar_strlcpy(big.name, "big", sizeof(big.name));
    big.cpus = 8;
    big.memory_gib = 12.5;
    big.disk_gib = 200;
    big.rosetta = 0;
    golden("apple-silicon-no-rosetta.yaml", &big, &apple);

    vm_lima_spec x86 = s;
    mar_strlcpy(x86.arch, "x86_64", sizeof(x86.arch));
    mar_strlcpy(x86.vm_type, "qemu", sizeof(x86.vm_type));
    golden("apple-silicon-x86_64-qemu.yaml", &x86, &apple);

    vm_lima_spec plain;
    vm_lima_spec_init(&plain);
    golden("intel-mac.yaml", &plain, &intel_mac);
    /* A source path that needs quoting stays one YAML string. */
    vm_lima_spec q = plain;
    mar_strlcpy(q.mar_source, "/src/a \"b\"\\c: d", sizeof(q.mar_source));
    golden("linux-amd64.yaml", &q, &linux_amd64);

    /* What doctor would say about them: nothing wrong. */
    _cleanup_free_ char *y = generate(&s, &apple);
    vm_conf c;
    mar_err *e = NULL;
    assert_int_equal(vm_conf_parse(VM_CONF_LIMA, "g.yaml", y, strlen(y), &c, &e), 0);
    mar_strlcpy(c.name, "mar", sizeof(c.name));
    c.underlying = -1;
    vm_host_facts used = apple;
    used.amd64_used = true;
    vm_findings f = {0};
    vm_conf_findings(&c, &used, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.v[0].severity, VM_OK);
    assert_string_equal(f.v[0].message, "vz, aarch64 VM, Rosetta on, 4 GiB");
    vm_findings_release(&f);
}

static void refused(const vm_lima_spec *s, const vm_host_facts *h, const char *want)
{
    char *y = NULL;
    mar_err *e = NULL;
    assert_int_equal(vm_lima_yaml(s, h, "TEST", &y, &e), -MAR_EUSAGE);
    if (!strstr(e->msg, want)) {
        fail_msg("'%s' does not say '%s'", e->msg, want);
    }
    mar_err_free(e);
}

static void test_contradictions(void **state)
{
    (void)state;
    vm_lima_spec s;
    vm_lima_spec_init(&s);
    vm_lima_spec t = s;
    mar_strlcpy(t.arch, "x86_64", sizeof(t.arch));
    mar_strlcpy(t.vm_type, "vz", sizeof(t.vm_type));
    refused(&t, &apple, "vz runs only VMs of the host's architecture (aarch64), not x86_64");
    t = s;
    t.rosetta = 1;
    refused(&t, &intel_mac, "Rosetta needs vmType vz on an Apple Silicon Mac");
    mar_strlcpy(t.vm_type, "qemu", sizeof(t.vm_type));
    refused(&t, &apple, "Rosetta needs vmType vz");
    t = s;
    t.memory_gib = 1.5;
    refused(&t, &apple, "1.5 GiB is too little");
    t = s;
    mar_strlcpy(t.name, "-x", sizeof(t.name));
    refused(&t, &apple, "not a Lima instance name");
    mar_strlcpy(t.name, "a/b", sizeof(t.name));
    refused(&t, &apple, "not a Lima instance name");
    t = s;
    mar_strlcpy(t.arch, "riscv64", sizeof(t.arch));
    refused(&t, &apple, "'riscv64' is not host, x86_64 or aarch64");
    t = s;
    mar_strlcpy(t.vm_type, "krunkit", sizeof(t.vm_type));
    refused(&t, &apple, "'krunkit' is not vz or qemu");
}

/* A runner that records each argv, answers from a script, and keeps the lima.yaml that
 * `create` was given as it was when limactl ran. */
typedef struct fake {
    char calls[16][512];
    size_t n;
    int status;
    const char *out, *errout;
    char *created;
    bool execd;
} fake;

static void record(fake *f, const char *const *argv)
{
    char *c = f->calls[f->n++];
    c[0] = '\0';
    for (size_t i = 0; argv[i]; i++) {
        const char *a = argv[i];
        /* The temporary file's name is random: keep its shape. */
        if (strstr(a, "/mar-lima-") && f->n) {
            free(f->created);
            f->created = slurp(a);
            a = "TMPFILE";
        }
        strncat(c, i ? " " : "", 511 - strlen(c));
        strncat(c, a, 511 - strlen(c));
    }
}

static int fake_run(void *ctx, const char *const *argv, mar_buf *out, mar_buf *errout,
                    int *ret_status, mar_err **err)
{
    (void)err;
    fake *f = ctx;
    record(f, argv);
    if (out && f->out) {
        T_BUF(mar_buf_append(out, f->out, strlen(f->out)));
    }
    if (errout && f->errout) {
        T_BUF(mar_buf_append(errout, f->errout, strlen(f->errout)));
    }
    *ret_status = f->status;
    return 0;
}

static int fake_exec(void *ctx, const char *const *argv, mar_err **err)
{
    fake *f = ctx;
    record(f, argv);
    f->execd = true;
    return mar_err_set(err, MAR_EFAIL, 0, "fake exec");
}

/* `limactl list --json` of Lima 1.0: one object per line (pkg/store.Instance), abridged. */
static const char list_json[] =
        "{\"name\":\"other\",\"status\":\"Stopped\",\"dir\":\"/Users/dev/.lima/other\","
        "\"vmType\":\"qemu\",\"arch\":\"x86_64\",\"cpus\":2,\"memory\":2147483648,"
        "\"disk\":107374182400}\n"
        "{\"name\":\"mar\",\"hostname\":\"lima-mar\",\"status\":\"Running\","
        "\"dir\":\"/Users/dev/.lima/mar\",\"vmType\":\"vz\",\"arch\":\"aarch64\",\"cpuType\":\"\","
        "\"cpus\":4,\"memory\":4294967296,\"disk\":107374182400,\"message\":\"\","
        "\"sshLocalPort\":60022,\"hostAgentPID\":4242,\"driverPID\":4242,"
        "\"sshAddress\":\"127.0.0.1\",\"protected\":false,\"limaVersion\":\"1.0.2\","
        "\"param\":null}\n";

static void test_limactl(void **state)
{
    (void)state;
    fake f = {0};
    vm_runner r = {.run = fake_run, .exec = fake_exec, .ctx = &f};
    mar_err *e = NULL;
    vm_lima_spec s;
    vm_lima_spec_init(&s);
    mar_strlcpy(s.name, "dev", sizeof(s.name));
    mar_strlcpy(s.mar_source, "/Users/dev/src/mar", sizeof(s.mar_source));
    char tmp[] = "/tmp/mar-lima-test-XXXXXX";
    assert_non_null(mkdtemp(tmp));
    assert_int_equal(vm_lima_create(&r, &s, &apple, "TEST", tmp, &e), 0);
    assert_string_equal(f.calls[0], "limactl create --name=dev --tty=false TMPFILE");
    _cleanup_free_ char *want = generate(&s, &apple);
    assert_string_equal(f.created, want);
    /* The temporary file is gone afterwards: the directory is empty again. */
    assert_int_equal(rmdir(tmp), 0);

    assert_int_equal(vm_lima_verb(&r, "start", "dev", &e), 0);
    assert_int_equal(vm_lima_verb(&r, "stop", "dev", &e), 0);
    assert_int_equal(vm_lima_verb(&r, "delete", "dev", &e), 0);
    assert_string_equal(f.calls[1], "limactl start --tty=false dev");
    assert_string_equal(f.calls[2], "limactl stop dev");
    assert_string_equal(f.calls[3], "limactl delete --force dev");

    f.out = list_json;
    vm_lima_status st;
    assert_int_equal(vm_lima_status_get(&r, "mar", &st, &e), 0);
    assert_string_equal(f.calls[4], "limactl list --json mar");
    assert_true(st.exists);
    assert_string_equal(st.status, "Running");
    assert_string_equal(st.vm_type, "vz");
    assert_string_equal(st.arch, "aarch64");
    assert_string_equal(st.dir, "/Users/dev/.lima/mar");
    assert_int_equal(st.cpus, 4);
    assert_true(st.memory_gib == 4.0);
    assert_true(st.disk_gib == 100.0);
    assert_int_equal(vm_lima_status_get(&r, "nope", &st, &e), 0);
    assert_false(st.exists);
    /* Every instance, and one judged against its lima.yaml. */
    vm_lima_status *all = NULL;
    size_t n_all = 0;
    assert_int_equal(vm_lima_list(&r, &all, &n_all, &e), 0);
    assert_string_equal(f.calls[f.n - 1], "limactl list --json");
    assert_int_equal(n_all, 2);
    assert_string_equal(all[0].name, "other");
    assert_string_equal(all[1].vm_type, "vz");
    _cleanup_free_ char *y = generate(&s, &apple);
    vm_conf c;
    assert_int_equal(
            vm_conf_parse(VM_CONF_LIMA, "/Users/dev/.lima/mar/lima.yaml", y, strlen(y), &c, &e), 0);
    mar_strlcpy(c.name, "mar", sizeof(c.name));
    mar_strlcpy(c.vm_type, "vz", sizeof(c.vm_type));
    mar_strlcpy(c.arch, "aarch64", sizeof(c.arch));
    vm_findings lf = {0};
    vm_conf_live_findings(&c, &all[1], &lf);
    assert_int_equal(lf.n, 0);
    mar_strlcpy(all[1].vm_type, "qemu", sizeof(all[1].vm_type));
    mar_strlcpy(all[1].status, "Broken", sizeof(all[1].status));
    mar_strlcpy(all[1].arch, "x86_64", sizeof(all[1].arch));
    vm_conf_live_findings(&c, &all[1], &lf);
    assert_int_equal(lf.n, 3);
    assert_string_equal(lf.v[0].message, "limactl reports the instance as Broken");
    assert_string_equal(lf.v[1].message,
                        "lima.yaml says vmType vz, but the instance runs qemu (limactl list)");
    assert_string_equal(lf.v[2].message,
                        "lima.yaml says arch aarch64, but the instance is x86_64 (limactl list)");
    assert_non_null(strstr(lf.v[1].fix, "`limactl delete mar`"));
    vm_findings_release(&lf);
    free(all);
    f.out = "{\"name\": \"mar\", \"status\": \n";
    assert_int_equal(vm_lima_status_get(&r, "mar", &st, &e), -MAR_EINTEGRITY);
    mar_err_free(e);
    e = NULL;

    /* limactl failing: its last line is the reason. */
    f.out = NULL;
    f.status = 1;
    f.errout = "time=\"2026-11-29T07:00:00Z\" level=info msg=\"Using the existing instance\"\n"
               "time=\"2026-11-29T07:00:01Z\" level=fatal msg=\"instance \\\"dev\\\" already "
               "exists\"\n";
    assert_int_equal(vm_lima_status_get(&r, "dev", &st, &e), -MAR_EFAIL);
    assert_non_null(strstr(e->msg, "limactl list failed (exit 1): time="));
    assert_non_null(strstr(e->msg, "already exists"));
    mar_err_free(e);
    e = NULL;
    f.status = 0;

    const char *cmd[] = {"sudo", "mar", "run", "-p", "linux/amd64", "alpine", "uname", "-m", NULL};
    assert_int_equal(vm_lima_shell(&r, "dev", cmd, &e), -MAR_EFAIL);
    mar_err_free(e);
    e = NULL;
    assert_true(f.execd);
    assert_string_equal(f.calls[f.n - 1],
                        "limactl shell dev sudo mar run -p linux/amd64 alpine uname -m");
    /* Names are checked before anything runs. */
    size_t before = f.n;
    assert_int_equal(vm_lima_verb(&r, "start", "--help", &e), -MAR_EUSAGE);
    mar_err_free(e);
    assert_int_equal(f.n, before);
    free(f.created);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_golden),
            cmocka_unit_test(test_contradictions),
            cmocka_unit_test(test_limactl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
