/* mar vm: the machine containers run on (docs/mar-vm.1.md). Two drivers: `host`, this machine
 * itself through its containerd (what runs here), and `lima`, a Lima VM made for the job and
 * driven through limactl (macOS; wherever limactl exists). Under the lima driver `mar run`
 * executes inside the guest. limactl is looked up in PATH, so the integration tests put a
 * recording one first in PATH; the unit tests inject a runner into vm/. */
#include "cli-internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_ADDRESS  "/run/containerd/containerd.sock"
#define DEFAULT_INSTANCE "mar"

int cmd_vm_driver(const cmd_args *args, const char *name_arg, const char **ret_driver,
                  const char **ret_instance, mar_err **err)
{
    const char *d = cmd_value(args, "driver");
    if (!d || !*d) {
        d = getenv("MAR_VM_DRIVER");
    }
    if (!d || !*d) {
#ifdef __APPLE__
        d = "lima";
#else
        d = "host";
#endif
    }
    if (strcmp(d, "host") != 0 && strcmp(d, "lima") != 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "unknown VM driver '%s' (host or lima)", d);
    }
    const char *inst = name_arg;
    if (!inst || !*inst) {
        inst = getenv("MAR_VM");
    }
    *ret_driver = d;
    *ret_instance = inst && *inst ? inst : DEFAULT_INSTANCE;
    return 0;
}

static int host_has_no_vm(const char *verb)
{
    fprintf(stderr,
            "mar: vm %s: the host driver has no VM: containers run on this machine through its "
            "containerd (use --driver lima for a Lima VM)\n",
            verb);
    return MAR_EUNSUPPORTED;
}

static const char *pos(const cmd_args *args, size_t i)
{
    return args->pos.n > i ? args->pos.v[i] : NULL;
}

/* The Lima instance for a verb only the lima driver has; else the exit status to return. */
static int lima_instance(const cmd_args *args, const char *verb, const char **ret_instance)
{
    const char *driver;
    mar_err *err = NULL;
    if (cmd_vm_driver(args, pos(args, 0), &driver, ret_instance, &err) < 0) {
        return cmd_fail(err);
    }
    return strcmp(driver, "host") == 0 ? host_has_no_vm(verb) : 0;
}

static void host_facts(vm_host_facts *f)
{
    oci_host h;
    oci_host_detect(&h);
    memset(f, 0, sizeof(*f));
    mar_strlcpy(f->os, h.platform.os, sizeof(f->os));
    mar_strlcpy(f->arch, h.platform.arch, sizeof(f->arch));
#ifdef __APPLE__
    mar_strlcpy(f->os, "darwin", sizeof(f->os));
#endif
}

MAR_MUST_USE static int spec_from_args(const cmd_args *args, const char *instance, vm_lima_spec *s,
                                       mar_err **err)
{
    vm_lima_spec_init(s);
    if (!mar_strlcpy(s->name, instance, sizeof(s->name))) {
        return mar_err_set(err, MAR_EUSAGE, 0, "instance name too long");
    }
    int64_t v;
    const char *x;
    if ((x = cmd_value(args, "cpus"))) {
        if (!mar_parse_i64(x, 1, 256, &v)) {
            return mar_err_set(err, MAR_EUSAGE, 0, "--cpus wants 1 to 256, not '%s'", x);
        }
        s->cpus = (int)v;
    }
    if ((x = cmd_value(args, "memory"))) {
        char *end;
        double g = strtod(x, &end);
        if (end == x || *end || g <= 0 || g > 1024) {
            return mar_err_set(err, MAR_EUSAGE, 0, "--memory wants GiB (e.g. 8), not '%s'", x);
        }
        s->memory_gib = g;
    }
    if ((x = cmd_value(args, "disk"))) {
        if (!mar_parse_i64(x, 10, 65536, &v)) {
            return mar_err_set(err, MAR_EUSAGE, 0, "--disk wants GiB from 10, not '%s'", x);
        }
        s->disk_gib = (int)v;
    }
    if ((x = cmd_value(args, "arch"))) {
        const char *a = strcmp(x, "host") == 0                                 ? "default"
                        : strcmp(x, "amd64") == 0 || strcmp(x, "x86_64") == 0  ? "x86_64"
                        : strcmp(x, "arm64") == 0 || strcmp(x, "aarch64") == 0 ? "aarch64"
                                                                               : NULL;
        if (!a) {
            return mar_err_set(err, MAR_EUSAGE, 0, "--arch wants host, x86_64 or aarch64, not '%s'",
                               x);
        }
        mar_strlcpy(s->arch, a, sizeof(s->arch));
    }
    if ((x = cmd_value(args, "vm-type"))) {
        mar_strlcpy(s->vm_type, x, sizeof(s->vm_type));
    }
    if (cmd_flag(args, "rosetta") && cmd_flag(args, "no-rosetta")) {
        return mar_err_set(err, MAR_EUSAGE, 0, "--rosetta and --no-rosetta contradict");
    }
    s->rosetta = cmd_flag(args, "rosetta") ? 1 : cmd_flag(args, "no-rosetta") ? 0 : -1;
    /* The binary knows no source tree of its own: no build-machine path is compiled in. */
    x = cmd_value(args, "mar-source");
    if (!x && getenv("MAR_SOURCE") && *getenv("MAR_SOURCE")) {
        x = getenv("MAR_SOURCE");
    }
    if (x && !mar_strlcpy(s->mar_source, x, sizeof(s->mar_source))) {
        return mar_err_set(err, MAR_EUSAGE, 0, "--mar-source: path too long");
    }
    return 0;
}

int cmd_vm_create(const cmd_def *def, cmd_args *args)
{
    (void)def;
    const char *instance;
    int st = lima_instance(args, "create", &instance);
    if (st) {
        return st;
    }
    mar_err *err = NULL;
    vm_lima_spec spec;
    if (spec_from_args(args, instance, &spec, &err) < 0) {
        return cmd_fail(err);
    }
    if (!spec.mar_source[0]) {
        mar_diag_warn("no mar source tree (--mar-source DIR or $MAR_SOURCE): the VM gets no mar "
                      "of its own, so `mar run` under the lima driver needs one installed in it");
    }
    vm_host_facts facts;
    host_facts(&facts);
    if (cmd_flag(args, "print")) {
        _cleanup_free_ char *yaml = NULL;
        if (vm_lima_yaml(&spec, &facts, MAR_VERSION, &yaml, &err) < 0) {
            return cmd_fail(err);
        }
        fputs(yaml, stdout);
        return 0;
    }
    if (strcmp(spec.arch, "default") != 0 &&
        strcmp(spec.arch, strcmp(facts.arch, "arm64") == 0 ? "aarch64" : "x86_64") != 0) {
        mar_diag_warn("an %s VM on this %s host is emulated whole by QEMU: every container is "
                      "slow (a native VM runs %s containers through %s)",
                      spec.arch, facts.arch, strcmp(spec.arch, "x86_64") == 0 ? "amd64" : "arm64",
                      strcmp(facts.arch, "arm64") == 0 ? "Rosetta" : "QEMU user mode");
    }
    const char *tmp = getenv("TMPDIR");
    if (vm_lima_create(&vm_runner_system, &spec, &facts, MAR_VERSION, tmp && *tmp ? tmp : "/tmp",
                       &err) < 0) {
        return cmd_fail(err);
    }
    mar_diag_notice("created Lima instance '%s': start it with `mar vm start %s`", spec.name,
                    spec.name);
    return 0;
}

int cmd_vm_simple(const cmd_def *def, cmd_args *args)
{
    const char *verb = def->name + 3; /* "vm start" */
    const char *instance;
    int st = lima_instance(args, verb, &instance);
    if (st) {
        return st;
    }
    mar_err *err = NULL;
    if (vm_lima_verb(&vm_runner_system, verb, instance, &err) < 0) {
        return cmd_fail(err);
    }
    return 0;
}

static int lima_status(const cmd_args *args, const char *instance)
{
    vm_lima_status st;
    mar_err *err = NULL;
    if (vm_lima_status_get(&vm_runner_system, instance, &st, &err) < 0) {
        return cmd_fail(err);
    }
    if (cmd_flag(args, "json")) {
        json_t *j = json_pack("{s:s, s:s, s:b}", "driver", "lima", "instance", instance, "exists",
                              st.exists);
        if (st.exists) {
            json_object_update_new(j, json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:f}", "status",
                                                st.status, "dir", st.dir, "vmType", st.vm_type,
                                                "arch", st.arch, "cpus", st.cpus, "memoryGiB",
                                                st.memory_gib, "diskGiB", st.disk_gib));
        }
        cmd_json_print(j, cmd_stdout_is_tty());
        json_decref(j);
    } else if (st.exists) {
        printf("lima instance %s: %s\n  %s, %s, %d CPUs, %.3g GiB memory, %.3g GiB disk\n  %s\n",
               st.name, st.status, st.vm_type, st.arch, st.cpus, st.memory_gib, st.disk_gib,
               st.dir);
    } else {
        printf("lima instance %s: does not exist (`mar vm create %s`)\n", instance, instance);
    }
    return st.exists ? 0 : MAR_ENOTFOUND;
}

int cmd_vm_status(const cmd_def *def, cmd_args *args)
{
    (void)def;
    const char *driver, *instance;
    mar_err *err = NULL;
    if (cmd_vm_driver(args, pos(args, 0), &driver, &instance, &err) < 0) {
        return cmd_fail(err);
    }
    if (strcmp(driver, "lima") == 0) {
        return lima_status(args, instance);
    }
    /* The host: containerd and the emulators are the whole "VM". */
    oci_host host;
    oci_host_detect(&host);
    const char *address = cmd_value(args, "address");
    if (!address || !*address) {
        address = getenv("CONTAINERD_ADDRESS");
    }
    vm_findings f = {0};
    cmd_doctor_containerd(address && *address ? address : DEFAULT_ADDRESS, &f);
    cmd_doctor_emulation(binfmt_root(cmd_value(args, "binfmt-root")), host.platform.arch, true, &f);
    bool up = f.n && strcmp(f.v[0].area, "containerd") == 0 && f.v[0].severity == VM_OK;
    char plat[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&host.platform, plat, sizeof(plat));
    if (cmd_flag(args, "json")) {
        json_t *arr = json_array();
        for (size_t i = 0; i < f.n; i++) {
            json_array_append_new(arr,
                                  json_pack("{s:s, s:s, s:s, s:s}", "area", f.v[i].area, "severity",
                                            vm_severity_name(f.v[i].severity), "subject",
                                            f.v[i].subject, "message", f.v[i].message));
        }
        json_t *j = json_pack("{s:s, s:s, s:b, s:o}", "driver", "host", "platform", plat, "running",
                              up, "findings", arr);
        cmd_json_print(j, cmd_stdout_is_tty());
        json_decref(j);
    } else {
        printf("host driver: this machine (%s) runs the containers; containerd %s\n\n", plat,
               up ? "is running" : "is not reachable");
        static const char *const sections[] = {"containerd", "emulation"};
        cmd_doctor_print(&f, sections, MAR_ARRAY_SIZE(sections));
    }
    vm_findings_release(&f);
    return up ? 0 : MAR_EFAIL;
}

int cmd_vm_shell(const cmd_def *def, cmd_args *args)
{
    (void)def;
    const char *instance;
    int st = lima_instance(args, "shell", &instance);
    if (st) {
        return st;
    }
    mar_err *err = NULL;
    const char **cmd = mar_xcalloc(args->pos.n + 1, sizeof(*cmd));
    for (size_t i = 1; i < args->pos.n; i++) {
        cmd[i - 1] = args->pos.v[i];
    }
    int rc = vm_lima_shell(&vm_runner_system, instance, cmd, &err);
    free(cmd);
    return rc < 0 ? cmd_fail(err) : 0;
}

int cmd_vm_forward_run(const cmd_args *args, const char *instance)
{
    const char **cmd = mar_xcalloc(args->n_raw + 4, sizeof(*cmd));
    size_t n = 0;
    cmd[n++] = "sudo";
    cmd[n++] = "mar";
    cmd[n++] = "run";
    for (size_t i = 0; i < args->n_raw; i++) {
        cmd[n++] = args->raw[i];
    }
    mar_debug("mar run inside Lima instance '%s'", instance);
    mar_err *err = NULL;
    int rc = vm_lima_shell(&vm_runner_system, instance, cmd, &err);
    free(cmd);
    /* limactl replaces mar when it starts: only a failure returns here. */
    return rc < 0 ? cmd_fail(err) : 0;
}
