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
    vm_handler handlers[VM_MAX_HANDLERS];
    size_t n_handlers;
} vm_target;

/* A target for this host; handlers are added with vm_target_add_handler. */
void vm_target_from_host(const oci_host *host, vm_target *ret);
void vm_target_add_handler(vm_target *t, const vm_handler *h);

/* A named profile (`apple-silicon`, `apple-silicon-qemu`, `intel-mac`) or a platform, optionally
 * with "+qemu" (QEMU user-mode registered for every other architecture). Errors: MAR_EUSAGE. */
int vm_target_parse(const char *spec, const oci_platform *host, vm_target *ret, mar_err **err);

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
    char reason[256]; /* why, for unavailable or caveats; empty otherwise */
    char fix[256];    /* a command or setting that would make it run; may be empty */
} vm_verdict;

/* How the target would execute a binary of platform p. */
void vm_plan_platform(const vm_target *t, const oci_platform *p, vm_verdict *ret);

/* The ON THIS HOST text: "native", "emulated (qemu)", "emulated (rosetta)", "no emulator". */
void vm_verdict_label(const vm_verdict *v, char *buf, size_t n);

/* The matcher containerd would use by default on the target (Only(platform)). */
void vm_target_matcher(const vm_target *t, oci_matcher *ret);

#endif
