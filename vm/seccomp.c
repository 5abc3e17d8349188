/* The seccomp filter and no_new_privs of a container (docs/internals/seccomp.md): the
 * --security-opt choices, and the runtime spec's `linux.seccomp` (runtime-spec config-linux.md
 * "Seccomp") for one container, from mar's default profile or a Docker profile. mar writes data;
 * runc compiles it into BPF with libseccomp. */
#include "seccomp-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* The kernel's architecture under its names: uname -m, OCI (mar's conditions), libseccomp's
 * native name (Docker's conditions, moby/profiles seccomp_linux.go goToNative) and the filter's
 * native SCMP_ARCH_*. Under QEMU user mode the kernel sees QEMU's own syscalls, so the filter is
 * always for this architecture, never the image's (docs/internals/seccomp.md §4). */
static const struct kernel_arch {
    const char *uname;
    const char *oci;
    const char *docker;
    const char *scmp;
} kernel_arches[] = {
        {"x86_64", "amd64", "amd64", "SCMP_ARCH_X86_64"},
        {"aarch64", "arm64", "arm64", "SCMP_ARCH_AARCH64"},
        {"s390x", "s390x", "s390x", "SCMP_ARCH_S390X"},
        {"ppc64le", "ppc64le", "ppc64le", "SCMP_ARCH_PPC64LE"},
        {"ppc64", "ppc64", "ppc64", "SCMP_ARCH_PPC64"},
        {"riscv64", "riscv64", "riscv64", "SCMP_ARCH_RISCV64"},
        {"loongarch64", "loong64", "loongarch64", "SCMP_ARCH_LOONGARCH64"},
        {"i686", "386", "x86", "SCMP_ARCH_X86"},
        {"armv7l", "arm", "arm", "SCMP_ARCH_ARM"},
};

static const struct kernel_arch *kernel_arch_find(const char *name)
{
    if (!name) {
        return NULL;
    }
    /* uname -m spells 32-bit x86 i386..i686 and 32-bit Arm armv5tel..armv8l. */
    if (strlen(name) == 4 && name[0] == 'i' && name[1] >= '3' && name[1] <= '6' &&
        strcmp(name + 2, "86") == 0) {
        name = "i686";
    } else if (mar_str_startswith(name, "armv")) {
        name = "armv7l";
    }
    for (size_t i = 0; i < MAR_ARRAY_SIZE(kernel_arches); i++) {
        if (strcmp(kernel_arches[i].uname, name) == 0 || strcmp(kernel_arches[i].oci, name) == 0) {
            return &kernel_arches[i];
        }
    }
    return NULL;
}

/* "6.1.0-18-amd64" -> {6, 1}, as Docker compares (moby/profiles kernel_linux.go: the rest of the
 * release is ignored). False when it does not start with MAJOR.MINOR. */
static bool kernel_version(const char *release, unsigned ret[2])
{
    if (!release) {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long a = strtoul(release, &end, 10);
    if (errno || end == release || *end != '.') {
        return false;
    }
    const char *m = end + 1;
    unsigned long b = strtoul(m, &end, 10);
    if (errno || end == m || a > 65535 || b > 65535) {
        return false;
    }
    ret[0] = (unsigned)a;
    ret[1] = (unsigned)b;
    return true;
}

void vm_security_init(vm_security *s)
{
    *s = (vm_security){.seccomp = VM_SECCOMP_DEFAULT,
                       .no_new_privileges = VM_NO_NEW_PRIVILEGES_DEFAULT};
}

void vm_security_release(vm_security *s)
{
    free(s->seccomp_file);
    vm_seccomp_free(s->profile);
    vm_security_init(s);
}

MAR_MUST_USE static int load_file(const char *path, vm_seccomp **ret, mar_err **err)
{
    /* The user's own path: symlinks are followed, as any program reading a named file would. */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return mar_err_set(err, e == ENOENT ? MAR_ENOTFOUND : MAR_EIO, e,
                           "cannot open seccomp profile '%s'", path);
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > VM_CAP_SECCOMP_PROFILE) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "seccomp profile '%s' is larger than %u bytes, refusing", path,
                           VM_CAP_SECCOMP_PROFILE);
    }
    mar_buf b = MAR_BUF_INIT(VM_CAP_SECCOMP_PROFILE);
    int rc = mar_read_fd(fd, path, VM_CAP_SECCOMP_PROFILE, &b, err);
    if (rc == 0) {
        rc = vm__seccomp_parse_docker(path, b.data, b.len, ret, err);
    }
    mar_buf_release(&b);
    return rc;
}

/* strconv.ParseBool, which Docker uses for no-new-privileges. */
static int parse_bool(const char *s, bool *ret)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *ret = strcmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

int vm_security_opt(vm_security *s, const char *opt, mar_err **err)
{
    if (strcmp(opt, "no-new-privileges") == 0) {
        s->no_new_privileges = true;
        return 0;
    }
    /* key=value; Docker still reads the old key:value too. */
    const char *sep = strchr(opt, '=');
    if (!sep) {
        sep = strchr(opt, ':');
    }
    if (!sep) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "bad --security-opt '%s' (seccomp=unconfined|builtin|FILE, "
                           "no-new-privileges[=true|false])",
                           opt);
    }
    _cleanup_free_ char *key = mar_xstrndup(opt, (size_t)(sep - opt));
    const char *value = sep + 1;
    if (strcmp(key, "no-new-privileges") == 0) {
        if (parse_bool(value, &s->no_new_privileges) < 0) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "bad --security-opt '%s' (no-new-privileges=true or false)", opt);
        }
        return 0;
    }
    if (strcmp(key, "seccomp") != 0) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "unsupported --security-opt '%s' (mar knows seccomp= and "
                           "no-new-privileges)",
                           opt);
    }
    if (!*value) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "bad --security-opt '%s' (seccomp=unconfined, builtin or a FILE)", opt);
    }
    vm_seccomp *p = NULL;
    if (strcmp(value, "unconfined") != 0 && strcmp(value, "builtin") != 0 &&
        load_file(value, &p, err) < 0) {
        return -mar_err_code(*err);
    }
    free(s->seccomp_file);
    vm_seccomp_free(s->profile);
    s->seccomp_file = p ? mar_xstrdup(value) : NULL;
    s->profile = p;
    s->seccomp = p                                  ? VM_SECCOMP_FILE
                 : strcmp(value, "unconfined") == 0 ? VM_SECCOMP_UNCONFINED
                                                    : VM_SECCOMP_DEFAULT;
    return 0;
}

const char *vm_security_seccomp_name(const vm_security *s)
{
    switch (s->seccomp) {
    case VM_SECCOMP_UNCONFINED:
        return "unconfined";
    case VM_SECCOMP_FILE:
        return s->seccomp_file;
    default:
        return "default";
    }
}

/* The profile to evaluate: the FILE's, or the built-in one parsed now (*owned frees it). */
MAR_MUST_USE static int profile_of(const vm_security *s, vm_seccomp **owned, const vm_seccomp **ret,
                                   mar_err **err)
{
    if (s->seccomp == VM_SECCOMP_FILE) {
        *ret = s->profile;
        return 0;
    }
    if (vm__seccomp_parse_text("vm/seccomp/default.txt", (const char *)vm__seccomp_default_txt,
                               vm__seccomp_default_txt_len, owned, err) < 0) {
        return mar_err_wrap(err, "mar's default seccomp profile");
    }
    *ret = *owned;
    return 0;
}

static void arches_of(const vm_seccomp *p, const struct kernel_arch *ka, mar_strv *ret)
{
    for (size_t i = 0; i < p->architectures.n; i++) {
        mar_strv_push(ret, p->architectures.v[i]);
    }
    for (size_t i = 0; ka && i < p->n_archmap; i++) {
        if (strcmp(p->archmap[i].arch, ka->scmp) == 0) {
            mar_strv_push(ret, p->archmap[i].arch);
            for (size_t k = 0; k < p->archmap[i].subs.n; k++) {
                mar_strv_push(ret, p->archmap[i].subs.v[k]);
            }
            break;
        }
    }
}

void vm_seccomp_arches(const vm_security *s, const char *kernel_arch, mar_strv *ret)
{
    vm_seccomp *owned = NULL;
    const vm_seccomp *p = NULL;
    mar_err *e = NULL;
    if (s->seccomp == VM_SECCOMP_UNCONFINED) {
        return;
    }
    if (profile_of(s, &owned, &p, &e) < 0) {
        mar_err_free(e);
        return;
    }
    arches_of(p, kernel_arch_find(kernel_arch), ret);
    vm_seccomp_free(owned);
}

typedef struct sc_ctx {
    const char *arch; /* the kernel's, in the profile's vocabulary; NULL when unknown */
    bool have_kernel;
    unsigned kernel[2];
    const char *const *caps;
    size_t n_caps;
} sc_ctx;

static bool has_cap(const sc_ctx *c, const char *cap)
{
    for (size_t i = 0; i < c->n_caps; i++) {
        if (strcmp(c->caps[i], cap) == 0) {
            return true;
        }
    }
    return false;
}

static bool kernel_at_least(const sc_ctx *c, const unsigned v[2])
{
    return c->have_kernel &&
           (c->kernel[0] > v[0] || (c->kernel[0] == v[0] && c->kernel[1] >= v[1]));
}

/* Docker's rule (moby/profiles seccomp_linux.go setupSeccomp): any exclude that holds drops the
 * rule; every include must hold. An unknown kernel satisfies no version condition. */
static bool applies(const vm__sc_rule *r, const sc_ctx *c)
{
    if (c->arch && mar_strv_contains(&r->exc.arches, c->arch)) {
        return false;
    }
    for (size_t i = 0; i < r->exc.caps.n; i++) {
        if (has_cap(c, r->exc.caps.v[i])) {
            return false;
        }
    }
    bool exc_kernel = r->exc.kernel[0] || r->exc.kernel[1];
    if (exc_kernel && (!c->have_kernel || kernel_at_least(c, r->exc.kernel))) {
        return false;
    }
    if (r->inc.arches.n && !(c->arch && mar_strv_contains(&r->inc.arches, c->arch))) {
        return false;
    }
    for (size_t i = 0; i < r->inc.caps.n; i++) {
        if (!has_cap(c, r->inc.caps.v[i])) {
            return false;
        }
    }
    if ((r->inc.kernel[0] || r->inc.kernel[1]) && !kernel_at_least(c, r->inc.kernel)) {
        return false;
    }
    return true;
}

static json_t *strv_array(const mar_strv *sv)
{
    json_t *a = json_array();
    for (size_t i = 0; i < sv->n; i++) {
        json_array_append_new(a, json_string(sv->v[i]));
    }
    return a;
}

/* The entry of `syscalls` an argument-less rule joins: the first one with its action and errno,
 * so that the default profile's groups become one list as in Docker's output. */
static json_t *merge_target(json_t *out, const vm__sc_rule *r)
{
    size_t i;
    json_t *e;
    json_array_foreach(out, i, e)
    {
        json_t *errno_ret = json_object_get(e, "errnoRet");
        if (!json_object_get(e, "args") &&
            strcmp(json_string_value(json_object_get(e, "action")), r->action) == 0 &&
            (errno_ret ? json_integer_value(errno_ret) : -1) == r->errno_ret) {
            return e;
        }
    }
    return NULL;
}

static void emit_rule(json_t *out, const vm__sc_rule *r)
{
    json_t *e = r->n_args ? NULL : merge_target(out, r);
    if (e) {
        /* A name two groups allow (ptrace: kernel 4.8 and CAP_SYS_PTRACE) is listed once. */
        json_t *names = json_object_get(e, "names");
        for (size_t i = 0; i < r->names.n; i++) {
            bool dup = false;
            size_t k;
            json_t *n;
            json_array_foreach(names, k, n)
            {
                dup = dup || strcmp(json_string_value(n), r->names.v[i]) == 0;
            }
            if (!dup) {
                json_array_append_new(names, json_string(r->names.v[i]));
            }
        }
        return;
    }
    e = json_pack("{s:o, s:s}", "names", strv_array(&r->names), "action", r->action);
    if (r->errno_ret >= 0) {
        json_object_set_new(e, "errnoRet", json_integer(r->errno_ret));
    }
    if (r->n_args) {
        json_t *args = json_array();
        for (size_t i = 0; i < r->n_args; i++) {
            const vm__sc_arg *a = &r->args[i];
            json_array_append_new(args,
                                  json_pack("{s:I, s:I, s:I, s:s}", "index", (json_int_t)a->index,
                                            "value", (json_int_t)a->value, "valueTwo",
                                            (json_int_t)a->value_two, "op", a->op));
        }
        json_object_set_new(e, "args", args);
    }
    json_array_append_new(out, e);
}

int vm_seccomp_json(const vm_security *s, const char *kernel_arch, const char *kernel_release,
                    const char *const *caps, size_t n_caps, json_t **ret, mar_err **err)
{
    if (s->seccomp == VM_SECCOMP_UNCONFINED) {
        *ret = NULL;
        return 0;
    }
    _cleanup_(vm_seccomp_freep) vm_seccomp *owned = NULL;
    const vm_seccomp *p = NULL;
    if (profile_of(s, &owned, &p, err) < 0) {
        return -mar_err_code(*err);
    }
    const struct kernel_arch *ka = kernel_arch_find(kernel_arch);
    sc_ctx c = {.arch = ka ? (p->docker_names ? ka->docker : ka->oci) : NULL,
                .caps = caps,
                .n_caps = n_caps};
    c.have_kernel = kernel_version(kernel_release, c.kernel);

    json_t *o = json_pack("{s:s}", "defaultAction", p->default_action);
    if (p->default_errno >= 0) {
        json_object_set_new(o, "defaultErrnoRet", json_integer(p->default_errno));
    }
    _cleanup_strv_ mar_strv arches = MAR_STRV_INIT;
    arches_of(p, ka, &arches);
    if (arches.n) {
        json_object_set_new(o, "architectures", strv_array(&arches));
    }
    if (p->flags.n) {
        json_object_set_new(o, "flags", strv_array(&p->flags));
    }
    json_t *sys = json_array();
    for (size_t i = 0; i < p->n_rules; i++) {
        if (applies(&p->rules[i], &c)) {
            emit_rule(sys, &p->rules[i]);
        }
    }
    json_object_set_new(o, "syscalls", sys);
    *ret = o;
    return 0;
}
