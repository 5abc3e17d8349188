/* vm/: the machine that runs containers and how it would execute each platform. A target is
 * this host (with the emulators cli/ found in binfmt_misc), a named profile such as
 * `apple-silicon` (a Lima/colima VM with vz + Rosetta on an M-series Mac), or a bare platform.
 * The planner decides native / emulated (qemu, rosetta) / unavailable per image platform; the
 * same decision feeds `mar inspect` and `mar run`. */
#ifndef MAR_VM_H
#define MAR_VM_H

#include "oci/oci.h"

typedef enum {
    VM_EMU_NONE = 0,
    VM_EMU_QEMU,
    VM_EMU_ROSETTA,
    VM_EMU_OTHER,
} vm_emulator;

const char *vm_emulator_name(vm_emulator e); /* "qemu", "rosetta", "other", NULL for none */

/* The effective binfmt handler for one architecture (filled by cli/ from binfmt/). */
typedef struct vm_handler {
    char arch[16]; /* normalized OCI architecture */
    vm_emulator emu;
    bool fix_binary; /* F flag: works inside containers and other mount namespaces */
    char entry[128];
    char interpreter[256];
} vm_handler;

#define VM_MAX_HANDLERS 16

typedef struct vm_target {
    char name[64];         /* "this host", "apple-silicon", "linux/arm64" */
    bool is_host;          /* evaluated on this machine */
    oci_platform platform; /* native platform of the machine that runs the containers */
    bool aarch32;          /* an arm64 CPU that also executes 32-bit Arm */
    bool ia32;             /* an amd64 kernel that also executes 32-bit x86 */
    int amd64_level;       /* 0 when unknown */
    bool binfmt_known;     /* handlers were read (host) or are part of the profile */
    int macos_major;       /* the Mac under an apple-silicon VM: 13, 14, 15, 26; 0 unknown */
    vm_handler handlers[VM_MAX_HANDLERS];
    size_t n_handlers;
} vm_target;

/* A target for this host; handlers are added with vm_target_add_handler. */
void vm_target_from_host(const oci_host *host, vm_target *ret);
void vm_target_add_handler(vm_target *t, const vm_handler *h);

/* The macOS `--target apple-silicon` models unless told (`apple-silicon:macos14`): the current
 * release. Rosetta translates AVX and AVX2 from VM_MACOS_ROSETTA_AVX on, and Rosetta for Linux
 * exists from VM_MACOS_ROSETTA_LINUX on (docs/internals/binfmt-and-rosetta.md §11). */
#define VM_MACOS_CURRENT       26
#define VM_MACOS_ROSETTA_AVX   15
#define VM_MACOS_ROSETTA_LINUX 13

/* A named profile (`apple-silicon`, `apple-silicon-qemu`, `intel-mac`; the Apple Silicon ones
 * with `:macosN` naming the Mac's macOS major version, N from 13) or a platform, optionally with
 * "+qemu" (QEMU user-mode registered for every other architecture). Errors: MAR_EUSAGE. */
MAR_MUST_USE int vm_target_parse(const char *spec, const oci_platform *host, vm_target *ret,
                                 mar_err **err);

/* Names of the profiles, for help texts. */
extern const char *const vm_profile_names[];

typedef enum {
    VM_RUN_NATIVE = 0,
    VM_RUN_EMULATED,
    VM_RUN_UNAVAILABLE,
} vm_run_mode;

const char *vm_run_mode_name(vm_run_mode m); /* "native", "emulated", "unavailable" */

typedef struct vm_verdict {
    vm_run_mode mode;
    vm_emulator emu;
    bool foreign;     /* not executable by the CPU itself: needs an emulator */
    bool uncertain;   /* emulated, but it may fail for the reason given */
    char reason[256]; /* why, for unavailable or caveats; empty otherwise */
    char fix[256];    /* a command or setting that would make it run; may be empty */
} vm_verdict;

/* How the target would execute a binary of platform p. */
void vm_plan_platform(const vm_target *t, const oci_platform *p, vm_verdict *ret);

/* The ON THIS HOST text: "native", "emulated (qemu)", "emulated (rosetta)", "emulated (rosetta),
 * may fail", "no emulator". */
void vm_verdict_label(const vm_verdict *v, char *buf, size_t n);

/* The matcher containerd would use by default on the target (Only(platform)). */
void vm_target_matcher(const vm_target *t, oci_matcher *ret);

/* ---------------------------------------------------------------------------------------------
 * containerd's gRPC API (containerd.c over grpc.c). */

/* One unary gRPC call: path "/package.Service/Method", the request message's bytes; the answer
 * message's bytes in resp (capped at 16 MiB) and the gRPC status in *ret_status (-1 when the
 * call did not get that far). timeout_ms 0: none. Errors: MAR_ENET (socket, transport,
 * UNAVAILABLE), MAR_ENOTFOUND (NOT_FOUND), MAR_EAUTH, MAR_EUNSUPPORTED, MAR_EFAIL (others). */
typedef struct vm_grpc_ops {
    int (*call)(void *ctx, const char *path, const void *req, size_t req_len, int timeout_ms,
                mar_buf *resp, int *ret_status, mar_err **err);
    void (*destroy)(void *ctx);
} vm_grpc_ops;

/* The production transport: HTTP/2 (prior knowledge) over the unix socket, the namespace as
 * `containerd-namespace` metadata. Errors: MAR_ENET (no socket), MAR_EAUTH (no access). */
MAR_MUST_USE int vm_grpc_unix_new(const char *socket, const char *ns, const vm_grpc_ops **ret_ops,
                                  void **ret_ctx, mar_err **err);

typedef struct vm_ctd vm_ctd;

/* Takes the transport (destroyed with the client). */
vm_ctd *vm_ctd_new(const vm_grpc_ops *ops, void *ctx, const char *address);
vm_ctd *vm_ctd_free(vm_ctd *c);
MAR_DEFINE_CLEANUP(vm_ctd, vm_ctd_free)
/* vm_grpc_unix_new + vm_ctd_new. */
MAR_MUST_USE int vm_ctd_connect(const char *address, const char *ns, vm_ctd **ret, mar_err **err);
/* Version.Version. Returns: new string. */
MAR_MUST_USE int vm_ctd_version(vm_ctd *c, char **ret_version, mar_err **err);

/* A plugin as containerd's introspection service lists it. */
typedef struct vm_ctd_plugin {
    char type[64];      /* "io.containerd.snapshotter.v1" */
    char id[64];        /* "overlayfs" */
    char init_err[256]; /* why it failed to initialize; "" when it works */
} vm_ctd_plugin;

/* The plugins of one type (every plugin when type is NULL). Errors: as every call. */
MAR_MUST_USE int vm_ctd_plugins(vm_ctd *c, const char *type, vm_ctd_plugin **ret, size_t *ret_n,
                                mar_err **err);

/* Containers.Create with the runc v2 runtime and the OCI runtime spec as JSON; labels are
 * NULL-terminated key, value pairs. */
MAR_MUST_USE int vm_ctd_container_create(vm_ctd *c, const char *id, const char *image,
                                         const char *spec_json, const char *const *labels,
                                         mar_err **err);
MAR_MUST_USE int vm_ctd_container_delete(vm_ctd *c, const char *id, mar_err **err);

typedef struct vm_mount {
    const char *type;
    const char *source;
    mar_strv options;
} vm_mount;

typedef struct vm_stdio {
    const char *stdin_path; /* FIFOs the shim opens; NULL or "" for none */
    const char *stdout_path;
    const char *stderr_path;
    bool terminal;
} vm_stdio;

/* Tasks.Create with the root filesystem as mounts (the shim mounts them at the bundle's
 * rootfs), Start, Wait (blocks, no deadline; may run on another thread than the other calls),
 * Kill, Delete, ResizePty, CloseIO(stdin). */
MAR_MUST_USE int vm_ctd_task_create(vm_ctd *c, const char *id, const vm_mount *rootfs,
                                    size_t n_rootfs, const vm_stdio *io, uint32_t *ret_pid,
                                    mar_err **err);
MAR_MUST_USE int vm_ctd_task_start(vm_ctd *c, const char *id, uint32_t *ret_pid, mar_err **err);
MAR_MUST_USE int vm_ctd_task_wait(vm_ctd *c, const char *id, uint32_t *ret_status, mar_err **err);
MAR_MUST_USE int vm_ctd_task_kill(vm_ctd *c, const char *id, int sig, bool all, mar_err **err);
MAR_MUST_USE int vm_ctd_task_delete(vm_ctd *c, const char *id, uint32_t *ret_status, mar_err **err);
MAR_MUST_USE int vm_ctd_task_resize(vm_ctd *c, const char *id, unsigned width, unsigned height,
                                    mar_err **err);
MAR_MUST_USE int vm_ctd_task_close_stdin(vm_ctd *c, const char *id, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * A task's I/O while it runs (ctd-io.c): the FIFOs the shim opens, and the loop that copies them
 * to the caller's descriptors and forwards signals. */

typedef struct vm_io {
    char *in_path, *out_path, *err_path; /* NULL when that stream has no FIFO */
    int in_fd, out_fd, err_fd;           /* the caller's ends; -1 when closed */
    bool terminal;
} vm_io;

#define VM_IO_INIT                                                                                 \
    {                                                                                              \
        .in_fd = -1, .out_fd = -1, .err_fd = -1                                                    \
    }

/* Creates the stdio FIFOs in dir (stdin only with in; no stderr with a terminal, which carries
 * both) and opens the caller's ends. On failure *ret holds what was made; vm_io_release frees
 * it. Errors: MAR_EIO. */
MAR_MUST_USE int vm_io_fifos(const char *dir, bool in, bool terminal, vm_io *ret, mar_err **err);
/* Closes the descriptors and frees the paths (the FIFOs stay in their directory). */
void vm_io_release(vm_io *io);

typedef struct vm_attach {
    int sigfd;        /* a signalfd: SIGWINCH resizes, every other signal goes to the task */
    bool stdin_open;  /* copy in to the task's stdin, then close it at in's end */
    int in, out, err; /* the caller's descriptors (usually 0, 1, 2); in is also the terminal */
    /* A build step is not interactive: the first signal kills the task (SIGKILL), since its
     * PID 1 would ignore a SIGINT it has no handler for and the step would run on. */
    bool kill_on_signal;
    int *ret_signal; /* when not NULL: the last signal read from sigfd (not SIGWINCH), or 0 */
} vm_attach;

/* Copies the task's I/O until it exits and its FIFOs drain, forwarding the signals read from
 * a->sigfd (the third SIGINT becomes SIGKILL, with a notice). With io->terminal and a terminal
 * on a->in, that terminal is raw meanwhile and the task's follows its size. *ret_status is the
 * exit status containerd reports. Errors: as vm_ctd_task_wait; MAR_EFAIL (no thread or
 * eventfd). */
MAR_MUST_USE int vm_ctd_attach(vm_ctd *c, const char *id, vm_io *io, const vm_attach *a,
                               uint32_t *ret_status, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * The OCI runtime spec of a container (spec.c) and the image's users (user.c). */

typedef struct vm_bind {
    char *source;
    char *dest;
    bool readonly;
} vm_bind;

/* ---------------------------------------------------------------------------------------------
 * Seccomp and no_new_privs (seccomp.c, docs/internals/seccomp.md). */

/* A --security-opt seccomp=FILE profile is read up to this size (Docker's own default profile is
 * about 20 KiB). */
#define VM_CAP_SECCOMP_PROFILE (1u << 20)

/* mar's default for no_new_privs: on (docs/internals/seccomp.md §6). */
#define VM_NO_NEW_PRIVILEGES_DEFAULT true

typedef struct vm_seccomp vm_seccomp; /* a parsed profile, conditions not yet evaluated */
vm_seccomp *vm_seccomp_free(vm_seccomp *p);
MAR_DEFINE_CLEANUP(vm_seccomp, vm_seccomp_free)

typedef enum {
    VM_SECCOMP_DEFAULT = 0, /* mar's built-in profile (vm/seccomp/default.txt) */
    VM_SECCOMP_UNCONFINED,  /* no filter */
    VM_SECCOMP_FILE,        /* a Docker-format profile read from a file */
} vm_seccomp_mode;

/* What confines a container's syscalls and privileges; shared by mar run and mar build's steps. */
typedef struct vm_security {
    vm_seccomp_mode seccomp;
    char *seccomp_file;  /* FILE as given (VM_SECCOMP_FILE) */
    vm_seccomp *profile; /* its profile (VM_SECCOMP_FILE) */
    bool no_new_privileges;
} vm_security;

/* The defaults: the built-in profile, VM_NO_NEW_PRIVILEGES_DEFAULT. */
void vm_security_init(vm_security *s);
void vm_security_release(vm_security *s);

/* Applies one --security-opt as Docker spells it: `seccomp=unconfined`, `seccomp=builtin` (the
 * default profile), `seccomp=FILE` (a Docker JSON profile, read up to VM_CAP_SECCOMP_PROFILE and
 * validated now), `no-new-privileges`, `no-new-privileges=true|false`; `:` for `=` as Docker
 * still reads it. A later option overrides an earlier one. Errors: MAR_EUSAGE (an unknown
 * option, a bad value, an invalid profile), MAR_ENOTFOUND or MAR_EIO (FILE unreadable),
 * MAR_EUNSUPPORTED (a profile that needs a notify listener). */
MAR_MUST_USE int vm_security_opt(vm_security *s, const char *opt, mar_err **err);

/* "default", "unconfined" or the FILE. Borrowed. */
const char *vm_security_seccomp_name(const vm_security *s);

/* The runtime spec's linux.seccomp (runtime-spec config-linux.md "Seccomp") for a container whose
 * bounding set is caps, on a kernel of architecture kernel_arch (uname -m or OCI: "x86_64",
 * "aarch64", "amd64") and release kernel_release (uname -r; NULL: no version condition holds). The
 * filter covers that kernel's architectures, also for images run under QEMU user mode. *ret is NULL
 * for unconfined. Returns: new reference. Errors: MAR_EUSAGE (the built-in profile does not parse,
 * a build defect the unit tests catch). */
MAR_MUST_USE int vm_seccomp_json(const vm_security *s, const char *kernel_arch,
                                 const char *kernel_release, const char *const *caps, size_t n_caps,
                                 json_t **ret, mar_err **err);

/* The SCMP_ARCH_* names the filter covers on that kernel (none for unconfined; none when the
 * profile names none for it: then runc filters the native ABI only). */
void vm_seccomp_arches(const vm_security *s, const char *kernel_arch, mar_strv *ret);

typedef struct vm_spec_opts {
    const mar_strv *args;
    const mar_strv *env;
    const char *cwd;
    uint32_t uid, gid;
    const uint32_t *gids;
    size_t n_gids;
    bool terminal;
    const char *hostname;
    bool host_network; /* else a network namespace of its own (loopback only) */
    const vm_bind *binds;
    size_t n_binds;
    const char *cgroups_path;
    const vm_security *security; /* NULL: vm_security_init's defaults */
    const char *kernel_arch;     /* the kernel's architecture (uname -m), for the filter */
    const char *kernel_release;  /* uname -r, for the profile's kernel conditions */
} vm_spec_opts;

/* The runtime spec (runtime-spec config.md) with the defaults Docker and containerd give a
 * container: the usual /proc, /dev, /sys mounts, namespaces, the default capability set,
 * masked and read-only paths, RLIMIT_NOFILE 1024; and the seccomp profile and no_new_privs of
 * o->security. Returns: new JSON text. Errors: MAR_EUSAGE (a relative cwd or bind destination). */
MAR_MUST_USE int vm_spec_json(const vm_spec_opts *o, char **ret, mar_err **err);

typedef struct vm_user {
    uint32_t uid, gid;
    uint32_t gids[64]; /* supplementary groups from /etc/group */
    size_t n_gids;
    char home[256];
} vm_user;

/* Resolves `user[:group]` (names or numbers; NULL or "" is root) against the image's
 * /etc/passwd and /etc/group texts (either may be NULL when the image lacks it), as runc's
 * user.GetExecUser does. Errors: MAR_EUSAGE (an unknown name). */
MAR_MUST_USE int vm_user_resolve(const char *spec, const char *passwd, const char *group,
                                 vm_user *ret, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Lima and colima VM configurations on disk (docs/internals/binfmt-and-rosetta.md §9), and what is
 * wrong with them for running containers of other architectures. */

typedef enum { VM_CONF_LIMA, VM_CONF_COLIMA } vm_conf_kind;

/* A setting and the line it was read from (0: not set). */
typedef struct vm_conf_int {
    int value; /* -1 when not set */
    size_t line;
} vm_conf_int;

typedef struct vm_conf {
    vm_conf_kind kind;
    char name[128];  /* the Lima instance or colima profile */
    char path[1024]; /* the file */
    char vm_type[16];
    size_t vm_type_line;
    char arch[16]; /* "aarch64", "x86_64", other as written; "" for default/host */
    size_t arch_line;
    vm_conf_int rosetta;        /* Lima: vmOpts.vz.rosetta.enabled; colima: rosetta */
    vm_conf_int rosetta_binfmt; /* Lima: vmOpts.vz.rosetta.binfmt */
    vm_conf_int rosetta_old;    /* Lima: deprecated top-level rosetta.enabled */
    vm_conf_int rosetta_old_binfmt;
    double memory_gib; /* 0 when not set */
    size_t memory_line;
    int cpus;         /* 0 when not set */
    char runtime[16]; /* colima */
    long underlying;  /* colima: index of its Lima VM's configuration in vm_confs, or -1 */
} vm_conf;

typedef struct vm_confs {
    vm_conf *v;
    size_t n;
} vm_confs;

/* Parses a lima.yaml or colima.yaml. Errors: MAR_EUSAGE (not YAML, or not a mapping, with the
 * file and line). */
MAR_MUST_USE int vm_conf_parse(vm_conf_kind kind, const char *path, const char *text, size_t len,
                               vm_conf *ret, mar_err **err);
/* Lima's memory and disk sizes ("4GiB", "4G", "512MiB", a byte count) in GiB; go-units
 * RAMInBytes semantics: every unit is binary. False when unparsable. */
bool vm_conf_size_gib(const char *s, double *ret);

typedef enum { VM_OK = 0, VM_WARNING, VM_PROBLEM } vm_severity;
const char *vm_severity_name(vm_severity s); /* "ok", "warning", "problem" */

typedef struct vm_finding {
    vm_severity severity;
    char area[16];     /* "host", "emulation", "containerd", "store", "vm" */
    char subject[160]; /* what it is about: an instance, an architecture, a path */
    char message[512];
    char fix[512]; /* "" when nothing to do */
    char file[1024];
    size_t line;
} vm_finding;

struct vm_findings {
    vm_finding *v;
    size_t n;
};
typedef struct vm_findings vm_findings;

vm_finding *vm_findings_add(vm_findings *f, vm_severity sev, const char *area, const char *subject);
void vm_findings_release(vm_findings *f);

/* The machine the VM runs on, as the findings need it. */
/* Every Lima instance (`<lima_home>/<name>/lima.yaml`) and colima profile
 * (`<colima_home>/<profile>/colima.yaml`, with its Lima VM under `_lima/colima[-<profile>]`), in
 * name order. Either home may be NULL or absent. A file that cannot be read or parsed becomes a
 * problem finding, not an error. */
void vm_conf_discover(const char *lima_home, const char *colima_home, vm_confs *ret,
                      struct vm_findings *problems);
void vm_confs_release(vm_confs *c);

typedef struct vm_host_facts {
    char os[16];     /* "darwin", "linux" */
    char arch[16];   /* OCI: "arm64", "amd64" */
    bool amd64_used; /* amd64 images are in use (the store holds some) */
} vm_host_facts;

/* The findings of one configuration: vmType qemu on Apple Silicon, a VM of another
 * architecture than the host, Rosetta off (or not registered) while amd64 images are used,
 * colima's silent QEMU fallback, too little memory for emulated amd64, the deprecated and the
 * current Rosetta keys disagreeing. */
void vm_conf_findings(const vm_conf *c, const vm_host_facts *h, vm_findings *out);
/* A colima profile against the Lima VM colima generated from it: vz or Rosetta asked for but
 * not what the VM has (colima's silent fallback, or a profile created before the change). */
void vm_conf_cross_findings(const vm_conf *colima, const vm_conf *lima, vm_findings *out);

/* The CPUs a program is built for, from its first bytes (Mach-O thin or universal, ELF), as
 * OCI architectures joined by commas ("amd64,arm64"). False when it is neither or names no CPU
 * mar knows. */
bool vm_exe_archs(const unsigned char *buf, size_t len, char *out, size_t n);

/* ---------------------------------------------------------------------------------------------
 * VM drivers. `host` is this machine itself (containers run through its containerd; cli/
 * reports it). `lima` drives `limactl` (macOS, or wherever Lima is installed) through a runner
 * that tests replace. */

typedef struct vm_runner {
    /* Runs argv (argv[0] looked up in PATH). With out, stdout is collected (capped) and stderr
     * too into errout; without, the program shares mar's terminal. *ret_status is its exit
     * status. Errors: MAR_ENOTFOUND (no such program), MAR_EFAIL. */
    int (*run)(void *ctx, const char *const *argv, mar_buf *out, mar_buf *errout, int *ret_status,
               mar_err **err);
    /* Replaces mar with argv; returns only on failure. */
    int (*exec)(void *ctx, const char *const *argv, mar_err **err);
    void *ctx;
} vm_runner;

/* The real runner: fork and exec, or execvp. */
extern const vm_runner vm_runner_system;

/* The macOS release of this Mac from `sw_vers -productVersion` ("15.1", "26.0.1") through the
 * runner. Errors: MAR_ENOTFOUND (no sw_vers: not macOS), MAR_EFAIL (it failed), MAR_EINTEGRITY
 * (an answer that is not a version). */
MAR_MUST_USE int vm_macos_version(const vm_runner *r, int *ret_major, int *ret_minor,
                                  mar_err **err);

typedef struct vm_lima_spec {
    char name[64];
    int cpus;              /* 0: 4 */
    double memory_gib;     /* 0: 4; at least 2 */
    int disk_gib;          /* 0: 100 */
    char arch[16];         /* "default" (the host's), "x86_64", "aarch64" */
    char vm_type[8];       /* "vz", "qemu"; "": vz on macOS, qemu elsewhere */
    int rosetta;           /* -1: on where it can be (vz on Apple Silicon), 0, 1 */
    char mar_source[1024]; /* mar's source tree, mounted read-only so the guest builds mar */
} vm_lima_spec;

/* A spec with every default ("mar", 4 CPUs, 4 GiB, 100 GiB, the host's arch). */
void vm_lima_spec_init(vm_lima_spec *s);
/* The lima.yaml for a spec on a host: vz with Rosetta (vmOpts.vz.rosetta, Lima 2) registered
 * with binfmt_misc, system containerd, Debian 12, and a provisioning script that installs QEMU
 * user mode for the other architectures (its x86_64 entry disabled when Rosetta is on, so it
 * never shadows Rosetta) and builds mar from the mounted source. Errors: MAR_EUSAGE for a
 * contradiction (vz with a foreign arch, Rosetta without vz or off Apple Silicon, a bad name,
 * less than 2 GiB). */
MAR_MUST_USE int vm_lima_yaml(const vm_lima_spec *s, const vm_host_facts *h,
                              const char *mar_version, char **ret, mar_err **err);

/* `limactl create --name=NAME --tty=false FILE` with the spec's lima.yaml written to a
 * temporary file in tmpdir. Errors: as vm_lima_yaml; MAR_ENOTFOUND (no limactl), MAR_EFAIL. */
MAR_MUST_USE int vm_lima_create(const vm_runner *r, const vm_lima_spec *s, const vm_host_facts *h,
                                const char *mar_version, const char *tmpdir, mar_err **err);
/* start (--tty=false), stop, delete (--force). Errors: MAR_ENOTFOUND, MAR_EFAIL. */
MAR_MUST_USE int vm_lima_verb(const vm_runner *r, const char *verb, const char *name,
                              mar_err **err);

typedef struct vm_lima_status {
    bool exists;
    char name[64];
    char status[32]; /* "Running", "Stopped", "Broken" */
    char dir[1024];
    char vm_type[16];
    char arch[16];
    int cpus;
    double memory_gib;
    double disk_gib;
} vm_lima_status;

/* From `limactl list --json NAME` (one JSON object per line). exists is false when Lima has no
 * such instance. Errors: MAR_ENOTFOUND (no limactl), MAR_EINTEGRITY (unreadable answer). */
MAR_MUST_USE int vm_lima_status_get(const vm_runner *r, const char *name, vm_lima_status *ret,
                                    mar_err **err);
/* Every instance `limactl list --json` knows. Errors: as vm_lima_status_get. */
MAR_MUST_USE int vm_lima_list(const vm_runner *r, vm_lima_status **ret, size_t *ret_n,
                              mar_err **err);
/* What a running or stopped instance really is against its lima.yaml: vmType and arch are fixed
 * at creation, so a file edited afterwards (or colima's fallback) shows as a difference; a Broken
 * instance is a problem too. */
void vm_conf_live_findings(const vm_conf *c, const vm_lima_status *live, vm_findings *out);
/* `limactl shell NAME CMD...` replacing mar (interactive; CMD may be empty: a login shell). */
MAR_MUST_USE int vm_lima_shell(const vm_runner *r, const char *name, const char *const *cmd,
                               mar_err **err);

#endif
