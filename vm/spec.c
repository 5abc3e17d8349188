/* The OCI runtime spec for `mar run` (opencontainers/runtime-spec config.md, config-linux.md),
 * with the defaults a container gets from Docker and containerd (containerd oci/spec.go
 * populateDefaultUnixSpec): the same mounts, namespaces, capabilities, masked and read-only
 * paths and file-descriptor limit, and a default seccomp profile (seccomp.c), so an image behaves
 * as it would under `docker run`. */
#include "vm.h"

#include <string.h>

/* Docker's and containerd's default capability set. The inheritable set stays empty
 * (CVE-2022-24769: a non-empty one let execve'd programs keep capabilities). */
static const char *const default_caps[] = {
        "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
        "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_KILL",    "CAP_AUDIT_WRITE",
};

static const char *const masked_paths[] = {
        "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
        "/proc/scsi",          "/sys/firmware",
};

static const char *const readonly_paths[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static json_t *strings(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    return a;
}

static json_t *strv_json(const mar_strv *sv)
{
    json_t *a = json_array();
    for (size_t i = 0; sv && i < sv->n; i++) {
        json_array_append_new(a, json_string(sv->v[i]));
    }
    return a;
}

static json_t *mount(const char *dest, const char *type, const char *src, const char *opts)
{
    json_t *o = json_array();
    _cleanup_free_ char *copy = mar_xstrdup(opts);
    for (char *s = copy, *next; s && *s; s = next) {
        next = strchr(s, ',');
        if (next) {
            *next++ = '\0';
        }
        json_array_append_new(o, json_string(s));
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dest, "type", type, "source", src,
                     "options", o);
}

int vm_spec_json(const vm_spec_opts *o, char **ret, mar_err **err)
{
    const char *cwd = o->cwd && *o->cwd ? o->cwd : "/";
    if (cwd[0] != '/') {
        return mar_err_set(err, MAR_EUSAGE, 0, "working directory '%s' is not absolute", cwd);
    }
    if (!o->args || o->args->n == 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "no command to run (the image has none: give one)");
    }
    vm_security defaults;
    vm_security_init(&defaults);
    const vm_security *sec = o->security ? o->security : &defaults;
    json_t *seccomp = NULL;
    if (vm_seccomp_json(sec, o->kernel_arch, o->kernel_release, default_caps,
                        MAR_ARRAY_SIZE(default_caps), &seccomp, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *caps = strings(default_caps, MAR_ARRAY_SIZE(default_caps));
    json_t *gids = json_array();
    for (size_t i = 0; i < o->n_gids; i++) {
        json_array_append_new(gids, json_integer(o->gids[i]));
    }
    json_t *user = json_pack("{s:I, s:I}", "uid", (json_int_t)o->uid, "gid", (json_int_t)o->gid);
    if (o->n_gids) {
        json_object_set_new(user, "additionalGids", gids);
    } else {
        json_decref(gids);
    }
    json_t *process = json_pack(
            "{s:b, s:o, s:o, s:o, s:s, s:{s:O, s:O, s:O}, s:[{s:s, s:I, s:I}], s:b}", "terminal",
            o->terminal, "user", user, "args", strv_json(o->args), "env", strv_json(o->env), "cwd",
            cwd, "capabilities", "bounding", caps, "effective", caps, "permitted", caps, "rlimits",
            "type", "RLIMIT_NOFILE", "hard", (json_int_t)1024, "soft", (json_int_t)1024,
            "noNewPrivileges", sec->no_new_privileges);
    json_decref(caps);

    json_t *mounts = json_array();
    json_array_append_new(mounts, mount("/proc", "proc", "proc", "nosuid,noexec,nodev"));
    json_array_append_new(
            mounts, mount("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(mounts, mount("/dev/pts", "devpts", "devpts",
                                        "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
    json_array_append_new(
            mounts, mount("/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"));
    json_array_append_new(mounts, mount("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
    json_array_append_new(mounts, mount("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
    json_array_append_new(
            mounts, mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid,noexec,nodev,relatime,ro"));
    for (size_t i = 0; i < o->n_binds; i++) {
        const vm_bind *b = &o->binds[i];
        if (b->dest[0] != '/') {
            json_decref(mounts);
            json_decref(process);
            json_decref(seccomp);
            return mar_err_set(err, MAR_EUSAGE, 0, "volume destination '%s' is not absolute",
                               b->dest);
        }
        json_array_append_new(mounts, mount(b->dest, "bind", b->source,
                                            b->readonly ? "rbind,rprivate,ro" : "rbind,rprivate"));
    }

    json_t *ns = json_array();
    static const char *const nss[] = {"pid", "ipc", "uts", "mount"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(nss); i++) {
        json_array_append_new(ns, json_pack("{s:s}", "type", nss[i]));
    }
    if (!o->host_network) {
        json_array_append_new(ns, json_pack("{s:s}", "type", "network"));
    }
    json_t *linux_ = json_pack("{s:{s:[{s:b, s:s}]}, s:o, s:o, s:o}", "resources", "devices",
                               "allow", 0, "access", "rwm", "namespaces", ns, "maskedPaths",
                               strings(masked_paths, MAR_ARRAY_SIZE(masked_paths)), "readonlyPaths",
                               strings(readonly_paths, MAR_ARRAY_SIZE(readonly_paths)));
    if (seccomp) {
        json_object_set_new(linux_, "seccomp", seccomp);
    }
    if (o->cgroups_path) {
        json_object_set_new(linux_, "cgroupsPath", json_string(o->cgroups_path));
    }
    json_t *spec =
            json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2", "process",
                      process, "root", "path", "rootfs", "readonly", 0, "hostname",
                      o->hostname ? o->hostname : "mar", "mounts", mounts, "linux", linux_);
    char *text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    if (!text) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot serialize the runtime spec");
    }
    *ret = text;
    return 0;
}
