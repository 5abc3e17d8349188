/* The seccomp part of the runtime spec (docs/internals/seccomp.md): the default profile as an
 * x86_64, aarch64 and s390x kernel gets it, with and without CAP_SYS_ADMIN; every
 * --security-opt form and what it does to the spec; Docker-format profiles from files (their
 * conditions, and the refusals with their messages); mar's own format's error lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "vm/seccomp-internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* The container's default bounding set (vm/spec.c). */
static const char *const default_caps[] = {
        "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
        "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_KILL",    "CAP_AUDIT_WRITE",
};

static char tmpdir[256];

static char *write_tmp(const char *name, const char *text)
{
    char *p = mar_xasprintf("%s/%s", tmpdir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return p;
}

static char *testdata(const char *name)
{
    return mar_xasprintf("%s/seccomp/%s", getenv("MAR_TESTDATA"), name);
}

static json_t *profile_json(const vm_security *s, const char *arch, const char *kernel,
                            const char *const *caps, size_t n_caps)
{
    json_t *j = NULL;
    mar_err *err = NULL;
    if (vm_seccomp_json(s, arch, kernel, caps, n_caps, &j, &err) < 0) {
        fail_msg("vm_seccomp_json: %s", err->msg);
    }
    return j;
}

static json_t *default_json(const char *arch, const char *kernel)
{
    vm_security s;
    vm_security_init(&s);
    return profile_json(&s, arch, kernel, default_caps, MAR_ARRAY_SIZE(default_caps));
}

/* The entries of `syscalls` that name sys, and the first of them. */
static size_t entries(json_t *seccomp, const char *sys, json_t **first)
{
    size_t n = 0, i, k;
    json_t *e, *name;
    if (first) {
        *first = NULL;
    }
    json_array_foreach(json_object_get(seccomp, "syscalls"), i, e)
    {
        json_array_foreach(json_object_get(e, "names"), k, name)
        {
            if (strcmp(json_string_value(name), sys) == 0) {
                if (first && !*first) {
                    *first = e;
                }
                n++;
            }
        }
    }
    return n;
}

static const char *action_of(json_t *e)
{
    return json_string_value(json_object_get(e, "action"));
}

/* Allowed with no argument filter. */
static bool allowed(json_t *seccomp, const char *sys)
{
    json_t *e;
    return entries(seccomp, sys, &e) == 1 && strcmp(action_of(e), "SCMP_ACT_ALLOW") == 0 &&
           !json_object_get(e, "args");
}

static void assert_arches(json_t *seccomp, const char *const *want, size_t n)
{
    json_t *a = json_object_get(seccomp, "architectures");
    assert_int_equal(json_array_size(a), n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(json_string_value(json_array_get(a, i)), want[i]);
    }
}

/* The clone rule's single argument filter: which argument carries the flags, and the namespace
 * mask it must leave clear. */
static void assert_clone_filtered(json_t *seccomp, unsigned index)
{
    json_t *e;
    assert_int_equal(entries(seccomp, "clone", &e), 1);
    assert_string_equal(action_of(e), "SCMP_ACT_ALLOW");
    json_t *args = json_object_get(e, "args");
    assert_int_equal(json_array_size(args), 1);
    json_t *a = json_array_get(args, 0);
    assert_int_equal(json_integer_value(json_object_get(a, "index")), index);
    /* CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET */
    assert_int_equal(json_integer_value(json_object_get(a, "value")),
                     0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 |
                             0x40000000);
    assert_int_equal(json_integer_value(json_object_get(a, "valueTwo")), 0);
    assert_string_equal(json_string_value(json_object_get(a, "op")), "SCMP_CMP_MASKED_EQ");
}

static void test_default_x86_64(void **state)
{
    (void)state;
    json_t *j = default_json("x86_64", "6.1.0-18-amd64");
    assert_string_equal(json_string_value(json_object_get(j, "defaultAction")), "SCMP_ACT_ERRNO");
    assert_int_equal(json_integer_value(json_object_get(j, "defaultErrnoRet")), 1);
    static const char *const arches[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
    assert_arches(j, arches, MAR_ARRAY_SIZE(arches));
    static const char *const ok[] = {"read",       "write",     "openat",     "execve",
                                     "mmap",       "futex",     "wait4",      "rt_sigaction",
                                     "socketcall", "getrandom", "arch_prctl", "modify_ldt",
                                     "chroot",     "ptrace",    "prctl"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(ok); i++) {
        if (!allowed(j, ok[i])) {
            fail_msg("'%s' is not allowed", ok[i]);
        }
    }
    /* Needs a capability the container lacks, or is another architecture's. */
    static const char *const no[] = {"unshare",        "mount",
                                     "setns",          "bpf",
                                     "init_module",    "reboot",
                                     "kexec_load",     "keyctl",
                                     "add_key",        "open_by_handle_at",
                                     "set_tls",        "s390_runtime_instr",
                                     "acct",           "swapon",
                                     "perf_event_open"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(no); i++) {
        if (entries(j, no[i], NULL) != 0) {
            fail_msg("'%s' is listed", no[i]);
        }
    }
    assert_clone_filtered(j, 0);
    json_t *e;
    assert_int_equal(entries(j, "clone3", &e), 1);
    assert_string_equal(action_of(e), "SCMP_ACT_ERRNO");
    assert_int_equal(json_integer_value(json_object_get(e, "errnoRet")), 38);
    /* socket(2) in three ranges around AF_ALG (38) and AF_VSOCK (40); personality(2) for five
     * execution domains only. */
    assert_int_equal(entries(j, "socket", NULL), 3);
    assert_int_equal(entries(j, "personality", NULL), 5);
    /* The argument-less groups arrive as one list. */
    size_t plain = 0, i;
    json_array_foreach(json_object_get(j, "syscalls"), i, e)
    {
        plain += !json_object_get(e, "args") && strcmp(action_of(e), "SCMP_ACT_ALLOW") == 0;
    }
    assert_int_equal(plain, 1);
    json_decref(j);

    /* Before 4.8 ptrace could bypass the filter. */
    j = default_json("x86_64", "4.4.0");
    assert_int_equal(entries(j, "ptrace", NULL), 0);
    assert_int_equal(entries(j, "process_vm_readv", NULL), 0);
    json_decref(j);
    j = default_json("amd64", NULL);
    assert_int_equal(entries(j, "ptrace", NULL), 0);
    assert_arches(j, arches, MAR_ARRAY_SIZE(arches));
    json_decref(j);
}

static void test_default_aarch64(void **state)
{
    (void)state;
    json_t *j = default_json("aarch64", "6.8.0");
    static const char *const arches[] = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
    assert_arches(j, arches, MAR_ARRAY_SIZE(arches));
    static const char *const ok[] = {
            "arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush",
            "set_tls",          "sync_file_range2",    "read"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(ok); i++) {
        if (!allowed(j, ok[i])) {
            fail_msg("'%s' is not allowed", ok[i]);
        }
    }
    assert_int_equal(entries(j, "arch_prctl", NULL), 0);
    assert_int_equal(entries(j, "modify_ldt", NULL), 0);
    assert_clone_filtered(j, 0);
    json_decref(j);
    /* The same kernel named as OCI names it. */
    j = default_json("arm64", "6.8.0");
    assert_arches(j, arches, MAR_ARRAY_SIZE(arches));
    json_decref(j);
}

static void test_default_other_kernels(void **state)
{
    (void)state;
    /* s390 passes clone's flags second. */
    json_t *j = default_json("s390x", "6.1");
    static const char *const s390[] = {"SCMP_ARCH_S390X", "SCMP_ARCH_S390"};
    assert_arches(j, s390, MAR_ARRAY_SIZE(s390));
    assert_clone_filtered(j, 1);
    assert_true(allowed(j, "s390_runtime_instr"));
    json_decref(j);
    j = default_json("ppc64le", "6.1");
    static const char *const ppc[] = {"SCMP_ARCH_PPC64LE"};
    assert_arches(j, ppc, MAR_ARRAY_SIZE(ppc));
    assert_true(allowed(j, "swapcontext"));
    json_decref(j);
    /* A kernel mar has no name for: runc filters its native ABI only. */
    j = default_json("mips64", "6.1");
    assert_null(json_object_get(j, "architectures"));
    assert_true(allowed(j, "read"));
    json_decref(j);
}

static void test_default_capabilities(void **state)
{
    (void)state;
    vm_security s;
    vm_security_init(&s);
    const char *caps[MAR_ARRAY_SIZE(default_caps) + 2];
    memcpy(caps, default_caps, sizeof(default_caps));
    caps[MAR_ARRAY_SIZE(default_caps)] = "CAP_SYS_ADMIN";
    caps[MAR_ARRAY_SIZE(default_caps) + 1] = "CAP_SYS_PTRACE";
    json_t *j = profile_json(&s, "x86_64", "6.1", caps, MAR_ARRAY_SIZE(caps));
    static const char *const ok[] = {"unshare", "mount", "setns", "clone",
                                     "clone3",  "kcmp",  "ptrace"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(ok); i++) {
        if (!allowed(j, ok[i])) {
            fail_msg("'%s' is not allowed with CAP_SYS_ADMIN", ok[i]);
        }
    }
    json_decref(j);
    /* Without CAP_SYS_CHROOT, no chroot(2). */
    j = profile_json(&s, "x86_64", "6.1", default_caps, MAR_ARRAY_SIZE(default_caps) - 3);
    assert_int_equal(entries(j, "chroot", NULL), 0);
    json_decref(j);
}

/* vm_spec_json with a --security-opt list: its process.noNewPrivileges and linux.seccomp. */
static json_t *spec_with(const char *const *opts, bool *ret_nnp)
{
    vm_security s;
    vm_security_init(&s);
    mar_err *err = NULL;
    for (size_t i = 0; opts[i]; i++) {
        if (vm_security_opt(&s, opts[i], &err) < 0) {
            fail_msg("'%s': %s", opts[i], err->msg);
        }
    }
    mar_strv args = MAR_STRV_INIT;
    mar_strv_push(&args, "/bin/sh");
    vm_spec_opts o = {
            .args = &args, .security = &s, .kernel_arch = "x86_64", .kernel_release = "6.1.0"};
    char *text = NULL;
    assert_int_equal(vm_spec_json(&o, &text, &err), 0);
    json_t *spec = json_loads(text, 0, NULL);
    assert_non_null(spec);
    free(text);
    mar_strv_release(&args);
    vm_security_release(&s);
    *ret_nnp = json_is_true(json_object_get(json_object_get(spec, "process"), "noNewPrivileges"));
    json_t *sc = json_incref(json_object_get(json_object_get(spec, "linux"), "seccomp"));
    json_decref(spec);
    return sc;
}

static void test_security_opts(void **state)
{
    (void)state;
    bool nnp;
    /* Nothing given: the default profile, no_new_privs on. */
    const char *none[] = {NULL};
    json_t *sc = spec_with(none, &nnp);
    assert_non_null(sc);
    assert_true(nnp == VM_NO_NEW_PRIVILEGES_DEFAULT);
    assert_int_equal(entries(sc, "clone3", NULL), 1);
    json_decref(sc);
    /* The spec without --security-opt at all is the same. */
    mar_strv args = MAR_STRV_INIT;
    mar_strv_push(&args, "true");
    vm_spec_opts o = {.args = &args, .kernel_arch = "aarch64"};
    char *text = NULL;
    mar_err *err = NULL;
    assert_int_equal(vm_spec_json(&o, &text, &err), 0);
    assert_non_null(strstr(text, "\"SCMP_ARCH_AARCH64\""));
    free(text);
    mar_strv_release(&args);

    const char *unconfined[] = {"seccomp=unconfined", NULL};
    sc = spec_with(unconfined, &nnp);
    assert_null(sc);
    const char *colon[] = {"seccomp:unconfined", NULL};
    sc = spec_with(colon, &nnp);
    assert_null(sc);
    const char *back[] = {"seccomp=unconfined", "seccomp=builtin", NULL};
    sc = spec_with(back, &nnp);
    assert_non_null(sc);
    assert_true(allowed(sc, "arch_prctl"));
    json_decref(sc);

    const char *nnp_off[] = {"no-new-privileges=false", NULL};
    sc = spec_with(nnp_off, &nnp);
    assert_false(nnp);
    json_decref(sc);
    const char *nnp_on[] = {"no-new-privileges=false", "no-new-privileges", NULL};
    sc = spec_with(nnp_on, &nnp);
    assert_true(nnp);
    json_decref(sc);
    static const char *const forms[][2] = {{"no-new-privileges=true", "1"},
                                           {"no-new-privileges:false", "0"},
                                           {"no-new-privileges=1", "1"},
                                           {"no-new-privileges=F", "0"},
                                           {"no-new-privileges=True", "1"}};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(forms); i++) {
        const char *one[] = {forms[i][0], NULL};
        sc = spec_with(one, &nnp);
        assert_int_equal(nnp, forms[i][1][0] == '1');
        json_decref(sc);
    }

    /* A FILE: its rules, not the default's. */
    _cleanup_free_ char *path = testdata("block-mkdir.json");
    _cleanup_free_ char *opt = mar_xasprintf("seccomp=%s", path);
    const char *file[] = {opt, NULL};
    sc = spec_with(file, &nnp);
    assert_string_equal(json_string_value(json_object_get(sc, "defaultAction")), "SCMP_ACT_ALLOW");
    assert_null(json_object_get(sc, "defaultErrnoRet"));
    json_t *e;
    assert_int_equal(entries(sc, "mkdirat", &e), 1);
    assert_int_equal(json_integer_value(json_object_get(e, "errnoRet")), 13);
    assert_int_equal(entries(sc, "clone3", NULL), 0);
    static const char *const x86[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
    assert_arches(sc, x86, MAR_ARRAY_SIZE(x86));
    json_decref(sc);

    vm_security s;
    vm_security_init(&s);
    assert_string_equal(vm_security_seccomp_name(&s), "default");
    assert_int_equal(vm_security_opt(&s, opt, &err), 0);
    assert_int_equal(s.seccomp, VM_SECCOMP_FILE);
    assert_string_equal(vm_security_seccomp_name(&s), path);
    mar_strv arches = MAR_STRV_INIT;
    vm_seccomp_arches(&s, "aarch64", &arches);
    assert_int_equal(arches.n, 2);
    mar_strv_release(&arches);
    /* A later choice replaces the file. */
    assert_int_equal(vm_security_opt(&s, "seccomp=unconfined", &err), 0);
    assert_string_equal(vm_security_seccomp_name(&s), "unconfined");
    assert_null(s.profile);
    vm_seccomp_arches(&s, "x86_64", &arches);
    assert_int_equal(arches.n, 0);
    vm_security_release(&s);
}

static void expect_opt_error(const char *opt, int code, const char *needle)
{
    vm_security s;
    vm_security_init(&s);
    mar_err *err = NULL;
    int rc = vm_security_opt(&s, opt, &err);
    if (rc != -code || !err || !strstr(err->msg, needle)) {
        fail_msg("'%s': rc %d, want %d, message '%s', want '%s'", opt, rc, -code,
                 err ? err->msg : "(none)", needle);
    }
    /* Nothing of a refused option sticks. */
    assert_int_equal(s.seccomp, VM_SECCOMP_DEFAULT);
    assert_null(s.profile);
    mar_err_free(err);
    vm_security_release(&s);
}

static void expect_profile_error(const char *json, int code, const char *needle)
{
    _cleanup_free_ char *p = write_tmp("profile.json", json);
    _cleanup_free_ char *opt = mar_xasprintf("seccomp=%s", p);
    expect_opt_error(opt, code, needle);
}

static void test_security_opt_errors(void **state)
{
    (void)state;
    expect_opt_error("seccomp=", MAR_EUSAGE, "seccomp=unconfined, builtin or a FILE");
    expect_opt_error("apparmor=unconfined", MAR_EUSAGE, "unsupported --security-opt");
    expect_opt_error("label=disable", MAR_EUSAGE, "unsupported --security-opt");
    expect_opt_error("no-new-privileges=maybe", MAR_EUSAGE, "true or false");
    expect_opt_error("seccomp", MAR_EUSAGE, "bad --security-opt 'seccomp'");
    expect_opt_error("seccomp=/nonexistent/profile.json", MAR_ENOTFOUND,
                     "cannot open seccomp profile '/nonexistent/profile.json'");
    _cleanup_free_ char *dir = mar_xasprintf("seccomp=%s", tmpdir);
    expect_opt_error(dir, MAR_EIO, "not a regular file");

    /* Over the cap: refused before it is read. */
    _cleanup_free_ char *big = mar_xasprintf("%s/big.json", tmpdir);
    int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, VM_CAP_SECCOMP_PROFILE + 1), 0);
    close(fd);
    _cleanup_free_ char *bigopt = mar_xasprintf("seccomp=%s", big);
    expect_opt_error(bigopt, MAR_EUSAGE, "is larger than 1048576 bytes, refusing");

    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [,]}", MAR_EUSAGE,
                         "is not JSON");
    expect_profile_error("[]", MAR_EUSAGE, "is not a JSON object");
    expect_profile_error("{\"syscalls\": []}", MAR_EUSAGE, "has no defaultAction");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_DENY\"}", MAR_EUSAGE,
                         "defaultAction: not a seccomp action");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultAction\": "
                         "\"SCMP_ACT_ALLOW\"}",
                         MAR_EUSAGE, "duplicate");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultErrnoRet\": 1}",
                         MAR_EUSAGE, "an errno is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}", MAR_EUNSUPPORTED,
                         "needs a listener");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"listenerPath\": \"/run/x\"}",
                         MAR_EUNSUPPORTED, "notify listener");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\": "
                         "[\"SCMP_ARCH_X86_64\"], \"archMap\": [{\"architecture\": "
                         "\"SCMP_ARCH_X86_64\"}]}",
                         MAR_EUSAGE, "both 'architectures' and 'archMap'");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\": "
                         "[\"SCMP_ARCH_VAX\"]}",
                         MAR_EUSAGE, "architectures: item 0 is not a valid name");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"flags\": [\"FAST\"]}",
                         MAR_EUSAGE, "flags: item 0");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": {}}", MAR_EUSAGE,
                         "syscalls: not an array");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"name\": "
                         "\"read\", \"names\": [\"write\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
                         MAR_EUSAGE, "syscalls[0]: both 'name' and 'names'");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [], "
                         "\"action\": \"SCMP_ACT_ALLOW\"}]}",
                         MAR_EUSAGE, "syscalls[0]: names no syscall");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
                         "[\"Read\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
                         MAR_EUSAGE, "syscalls[0]: item 0 is not a valid name");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
                         "[\"read\"]}]}",
                         MAR_EUSAGE, "syscalls[0]: not a seccomp action");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
                         "[\"read\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": -1}]}",
                         MAR_EUSAGE, "not an integer from 0 to 4095");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
                         "[\"kill\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 6, "
                         "\"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
                         MAR_EUSAGE, "syscalls[0].args[0]: not an integer from 0 to 5");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
                         "[\"kill\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, "
                         "\"value\": 1, \"op\": \"SCMP_CMP_ALMOST\"}]}]}",
                         MAR_EUSAGE, "syscalls[0].args[0]: op is not a comparison");
    expect_profile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
                         "[\"ptrace\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": "
                         "{\"minKernel\": \"4\"}}]}",
                         MAR_EUSAGE, "syscalls[0].includes: minKernel is \"MAJOR.MINOR\"");
}

static int warnings;
static void count_warnings(mar_diag_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level == MAR_DIAG_WARN && strstr(msg, "unknown key 'sycalls'")) {
        warnings++;
    }
}

static void test_docker_conditions(void **state)
{
    (void)state;
    vm_security s;
    vm_security_init(&s);
    mar_err *err = NULL;
    _cleanup_free_ char *path = testdata("conditions.json");
    _cleanup_free_ char *opt = mar_xasprintf("seccomp:%s", path);
    assert_int_equal(vm_security_opt(&s, opt, &err), 0);

    json_t *j = profile_json(&s, "x86_64", "4.19.0", default_caps, MAR_ARRAY_SIZE(default_caps));
    assert_int_equal(json_integer_value(json_object_get(j, "defaultErrnoRet")), 38);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "flags"), 0)),
                        "SECCOMP_FILTER_FLAG_LOG");
    /* A fixed architecture list is kept as written, whatever the kernel. */
    static const char *const fixed[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"};
    assert_arches(j, fixed, MAR_ARRAY_SIZE(fixed));
    assert_true(allowed(j, "read"));
    assert_true(allowed(j, "arch_prctl"));
    assert_true(allowed(j, "modify_ldt"));
    assert_int_equal(entries(j, "set_tls", NULL), 0);
    assert_int_equal(entries(j, "mount", NULL), 0);
    assert_true(allowed(j, "ptrace"));
    json_t *e;
    assert_int_equal(entries(j, "unshare", &e), 1);
    assert_int_equal(json_integer_value(json_object_get(e, "errnoRet")), 1);
    assert_int_equal(entries(j, "uselib", NULL), 1);
    assert_int_equal(entries(j, "kill", &e), 1);
    assert_int_equal(json_integer_value(json_object_get(
                             json_array_get(json_object_get(e, "args"), 0), "index")),
                     1);
    json_decref(j);

    /* Another kernel: Docker's architecture names (arm64), a newer release. */
    const char *admin[] = {"CAP_SYS_ADMIN"};
    j = profile_json(&s, "aarch64", "6.1", admin, 1);
    assert_true(allowed(j, "set_tls"));
    assert_int_equal(entries(j, "arch_prctl", NULL), 0);
    assert_int_equal(entries(j, "modify_ldt", NULL), 0);
    assert_true(allowed(j, "mount"));
    assert_int_equal(entries(j, "unshare", NULL), 0);
    assert_int_equal(entries(j, "uselib", NULL), 0);
    json_decref(j);
    vm_security_release(&s);

    /* A misspelt key is ignored, as Docker ignores it, with a warning. */
    _cleanup_free_ char *p = write_tmp("typo.json", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", "
                                                    "\"sycalls\": [{\"names\": [\"read\"]}]}");
    _cleanup_free_ char *typo = mar_xasprintf("seccomp=%s", p);
    mar_diag_set_sink(count_warnings, NULL);
    assert_int_equal(vm_security_opt(&s, typo, &err), 0);
    mar_diag_set_sink(NULL, NULL);
    assert_int_equal(warnings, 1);
    vm_security_release(&s);
}

static void expect_text_error(const char *text, const char *needle)
{
    vm_seccomp *p = NULL;
    mar_err *err = NULL;
    int rc = vm__seccomp_parse_text("t.txt", text, strlen(text), &p, &err);
    if (rc != -MAR_EUSAGE || !strstr(err->msg, needle)) {
        fail_msg("rc %d, message '%s', want '%s'", rc, err ? err->msg : "(none)", needle);
    }
    assert_null(p);
    mar_err_free(err);
}

static void test_text_format(void **state)
{
    (void)state;
    const char *good = "default errno EPERM  # comment\n"
                       "arch SCMP_ARCH_X86_64 SCMP_ARCH_X86\n"
                       "allow:\n    read write\n\twritev\n"
                       "allow with arg0 & 0xff == 1 and arg2 <= 7 if cap CAP_A and not host arm64 "
                       "and kernel >= 5.4 and kernel < 6.0:\n    kill\n"
                       "errno 13 if not cap CAP_B CAP_C:\n    openat\n";
    vm_seccomp *p = NULL;
    mar_err *err = NULL;
    assert_int_equal(vm__seccomp_parse_text("t.txt", good, strlen(good), &p, &err), 0);
    assert_string_equal(p->default_action, "SCMP_ACT_ERRNO");
    assert_int_equal(p->n_rules, 3);
    assert_int_equal(p->rules[0].names.n, 3);
    const vm__sc_rule *r = &p->rules[1];
    assert_int_equal(r->n_args, 2);
    assert_string_equal(r->args[0].op, "SCMP_CMP_MASKED_EQ");
    assert_int_equal(r->args[0].value, 0xff);
    assert_int_equal(r->args[0].value_two, 1);
    assert_string_equal(r->args[1].op, "SCMP_CMP_LE");
    assert_int_equal(r->args[1].index, 2);
    assert_string_equal(r->inc.caps.v[0], "CAP_A");
    assert_string_equal(r->exc.arches.v[0], "arm64");
    assert_int_equal(r->inc.kernel[0], 5);
    assert_int_equal(r->exc.kernel[1], 0);
    assert_int_equal(p->rules[2].errno_ret, 13);
    assert_int_equal(p->rules[2].exc.caps.n, 2);
    vm_seccomp_free(p);

    expect_text_error("allow:\n    read\n", "t.txt: no 'default ACTION' line");
    expect_text_error("default errno EPERM\n    read\n", "t.txt:2: syscall names before any group");
    expect_text_error("default errno EPERM\nalow:\n    read\n", "t.txt:2: a group starts with");
    expect_text_error("default errno EPERM\nallow\n    read\n", "t.txt:2: a group header ends");
    expect_text_error("default errno EPERM\nallow:\n    read Write\n",
                      "t.txt:3: 'Write' is not a syscall name");
    expect_text_error("default errno EPERM\nallow:\n", "t.txt: group 1 lists no syscall");
    expect_text_error("default errno EBOGUS\n", "t.txt:1: one 'default ACTION' line");
    expect_text_error("default allow\ndefault allow\n", "t.txt:2: one 'default ACTION' line");
    expect_text_error("default allow\narch SCMP_ARCH_PDP11\n",
                      "t.txt:2: unknown architecture 'SCMP_ARCH_PDP11'");
    expect_text_error("default allow\nallow with arg6 == 1:\n    kill\n",
                      "t.txt:2: an argument filter is");
    expect_text_error("default allow\nallow with arg0 = 1:\n    kill\n",
                      "t.txt:2: an argument filter is");
    expect_text_error("default allow\nallow with arg0 == -1:\n    kill\n",
                      "t.txt:2: an argument filter is");
    expect_text_error("default allow\nallow if cap sys_admin:\n    kill\n",
                      "t.txt:2: a capability is CAP_");
    expect_text_error("default allow\nallow if host amd64 and host arm64:\n    kill\n",
                      "can never hold");
    expect_text_error("default allow\nallow if kernel > 4.8:\n    kill\n",
                      "expected 'kernel >= X.Y'");
    expect_text_error("default allow\nallow if cap:\n    kill\n", "names nothing");
    expect_text_error("default allow\nallow if color red:\n    kill\n",
                      "a condition is 'cap', 'host' or 'kernel'");
    expect_text_error("default allow\nallow if cap CAP_X then:\n    kill\n", "a capability");
    expect_text_error("default allow\nallow now:\n    kill\n", "t.txt:2: unexpected 'now'");
}

/* The embedded default profile is the file in the tree, byte for byte. */
static void test_embedded(void **state)
{
    (void)state;
    _cleanup_free_ char *path = mar_xasprintf("%s/vm/seccomp/default.txt", getenv("MAR_SRC"));
    mar_buf b = MAR_BUF_INIT(1 << 20);
    mar_err *err = NULL;
    assert_int_equal(mar_read_file_at(AT_FDCWD, path, 1 << 20, &b, &err), 0);
    assert_int_equal(b.len, vm__seccomp_default_txt_len);
    assert_memory_equal(b.data, vm__seccomp_default_txt, b.len);
    mar_buf_release(&b);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/mar-seccomp-XXXXXX", getenv("TMPDIR") ?: "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const files[] = {"profile.json", "typo.json", "big.json"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_default_x86_64),
            cmocka_unit_test(test_default_aarch64),
            cmocka_unit_test(test_default_other_kernels),
            cmocka_unit_test(test_default_capabilities),
            cmocka_unit_test(test_security_opts),
            cmocka_unit_test(test_security_opt_errors),
            cmocka_unit_test(test_docker_conditions),
            cmocka_unit_test(test_text_format),
            cmocka_unit_test(test_embedded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
