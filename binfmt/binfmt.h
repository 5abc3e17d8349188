/* binfmt/: which binfmt_misc entry handles each architecture's ELF files
 * (docs/internals/binfmt-and-rosetta.md). The mount point is always a parameter (--binfmt-root,
 * MAR_BINFMT_ROOT), so tests run against a fake tree. */
#ifndef MAR_BINFMT_H
#define MAR_BINFMT_H

#include "oci/oci.h"

#define BINFMT_DEFAULT_ROOT "/proc/sys/fs/binfmt_misc"
#define BINFMT_HEADER_SIZE  128 /* BINPRM_BUF_SIZE as documented; magic must lie inside */

/* ---------------------------------------------------------------------------------------------
 * Architecture table: OCI arch <-> QEMU name <-> registration magic/mask <-> ELF identity, the
 * last two from oci/'s ELF table (docs/internals/binfmt-and-rosetta.md §6;
 * docs/internals/platforms.md §10). */

typedef enum {
    BINFMT_ARCH_AMD64,
    BINFMT_ARCH_386,
    BINFMT_ARCH_ARM64,
    BINFMT_ARCH_ARM,
    BINFMT_ARCH_PPC64LE,
    BINFMT_ARCH_PPC64,
    BINFMT_ARCH_S390X,
    BINFMT_ARCH_RISCV64,
    BINFMT_ARCH_MIPS64LE,
    BINFMT_ARCH_MIPS64,
    BINFMT_ARCH_LOONG64,
    BINFMT_ARCH_COUNT
} binfmt_arch_id;

typedef struct binfmt_arch {
    binfmt_arch_id id;
    const oci_elf_arch *elf; /* OCI name ("arm64"), ELF machine, class and byte order (oci/) */
    const char *qemu_name;   /* "aarch64": qemu-aarch64, qemu-aarch64-static */
    const char *magic;       /* registration string, \xHH escapes */
    const char *mask;
} binfmt_arch;

/* Entry for an OCI architecture name (normalized, e.g. "arm64"), or NULL. */
const binfmt_arch *binfmt_arch_by_oci(const char *oci_arch);
const binfmt_arch *binfmt_arch_get(binfmt_arch_id id);
/* Entry for an ELF (class, data, machine), or NULL. */
const binfmt_arch *binfmt_arch_by_elf(unsigned elf_class, unsigned elf_data, unsigned e_machine);

/* A synthetic ELF header of BINFMT_HEADER_SIZE bytes for the architecture, of type ET_EXEC (2)
 * or ET_DYN (3), as the kernel would see a static or PIE binary. */
void binfmt_synthetic_header(const binfmt_arch *a, unsigned e_type,
                             unsigned char out[BINFMT_HEADER_SIZE]);

/* ---------------------------------------------------------------------------------------------
 * Entries. */

typedef enum {
    BINFMT_KIND_NONE = 0,
    BINFMT_KIND_QEMU,
    BINFMT_KIND_ROSETTA,
    BINFMT_KIND_BUILDKIT_QEMU,
    BINFMT_KIND_OTHER,
} binfmt_kind;

const char *binfmt_kind_name(binfmt_kind k);

typedef struct binfmt_entry {
    char name[128];
    bool enabled;
    char interpreter[256];
    char flags[16]; /* letters as the kernel prints them */
    bool is_extension;
    char extension[64];
    unsigned offset;
    unsigned char magic[BINFMT_HEADER_SIZE];
    unsigned char mask[BINFMT_HEADER_SIZE];
    size_t magic_len;
    bool has_mask;
    int64_t ctime_ns;    /* registration time hint */
    int64_t readdir_pos; /* position in the listing (newest first on Linux) */
} binfmt_entry;

/* Parses the text of <root>/<name> (docs/internals/binfmt-and-rosetta.md §4). Unknown lines are
 * ignored. Errors: MAR_EINTEGRITY for a malformed file. */
MAR_MUST_USE int binfmt_entry_parse(const char *name, const char *text, binfmt_entry *ret,
                                    mar_err **err);
bool binfmt_entry_has_flag(const binfmt_entry *e, char flag);
/* The kernel's magic test for a header of `len` bytes. */
bool binfmt_entry_matches(const binfmt_entry *e, const unsigned char *hdr, size_t len);
binfmt_kind binfmt_entry_kind(const binfmt_entry *e);

typedef struct binfmt_table {
    char root[256];
    bool mounted;        /* <root>/status exists */
    bool global_enabled; /* <root>/status reads "enabled" */
    binfmt_entry *v;     /* newest registration first */
    size_t n;
} binfmt_table;

/* Reads every entry under root, newest registration first (inode ctime, then inode number).
 * A missing mount is not an error: mounted is false. Errors: MAR_EIO. */
MAR_MUST_USE int binfmt_table_read(const char *root, binfmt_table *ret, mar_err **err);
void binfmt_table_release(binfmt_table *t);

/* The root to use: the argument when not NULL, else $MAR_BINFMT_ROOT, else the default. */
const char *binfmt_root(const char *arg);

/* What would handle the architecture's ELF files now: the first enabled entry, newest first,
 * matching its synthetic ET_EXEC or ET_DYN header (the kernel's algorithm); NULL when none or
 * when the global status is disabled. Shadowed matching entries are counted in *ret_shadowed. */
const binfmt_entry *binfmt_effective(const binfmt_table *t, const binfmt_arch *a,
                                     size_t *ret_shadowed);

/* ---------------------------------------------------------------------------------------------
 * Exec probe. */

typedef enum {
    BINFMT_PROBE_NATIVE,   /* the CPU runs it */
    BINFMT_PROBE_EMULATED, /* it ran through a binfmt_misc interpreter */
    BINFMT_PROBE_ENOEXEC,  /* exec format error: no handler */
    BINFMT_PROBE_ENOENT,   /* the interpreter is not reachable here (no F flag) */
    BINFMT_PROBE_FAILED,   /* it started but did not exit 0, or exec failed otherwise */
} binfmt_probe_result;

const char *binfmt_probe_result_name(binfmt_probe_result r);

typedef struct binfmt_probe {
    binfmt_probe_result result;
    char interpreter[256]; /* what /proc/<pid>/exe named when emulated */
    int status;
    int sys_errno;
} binfmt_probe;

/* The probe program for an architecture: a static ELF that reads one byte from stdin and exits
 * 0. */
void binfmt_probe_image(const binfmt_arch *a, mar_buf *ret);
/* Runs the probe in a child. Errors: MAR_EFAIL when it cannot even be attempted. */
MAR_MUST_USE int binfmt_probe_run(const binfmt_arch *a, binfmt_probe *ret, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Status. */

typedef struct binfmt_arch_status {
    const binfmt_arch *arch;
    bool native; /* the host's own architecture */
    bool has_handler;
    binfmt_entry handler; /* the entry the kernel picks now */
    binfmt_kind kind;
    char shadowed[8][144]; /* other matching entries ("name", "name (disabled)") */
    size_t n_shadowed;
    bool has_probe;
    binfmt_probe probe;
    char hints[6][256];
    size_t n_hints;
} binfmt_arch_status;

typedef struct binfmt_status {
    binfmt_table table;
    bool probed; /* probes ran (only against the kernel's own mount) */
    binfmt_arch_status arch[BINFMT_ARCH_COUNT];
} binfmt_status;

/* True when root is a real binfmt_misc mount (statfs magic), so probes describe it. */
bool binfmt_root_is_kernel(const char *root);
/* Reads the entries and evaluates every architecture; runs exec probes when asked and root is
 * the kernel's mount. Errors: MAR_EIO. */
MAR_MUST_USE int binfmt_status_read(const char *root, const char *host_arch, bool probe,
                                    binfmt_status *ret, mar_err **err);
void binfmt_status_release(binfmt_status *s);

/* ---------------------------------------------------------------------------------------------
 * Install and uninstall (docs/internals/binfmt-and-rosetta.md §8). */

typedef struct binfmt_install_opts {
    const char *root;
    binfmt_kind emulator;        /* BINFMT_KIND_QEMU or BINFMT_KIND_ROSETTA */
    const char *qemu_path;       /* directory of qemu-<cpu>-static; default /usr/bin */
    const char *rosetta_path;    /* default /mnt/lima-rosetta/rosetta */
    bool allow_setuid;           /* the C flag */
    bool preserve_argv0;         /* the P flag, through Debian's <cpu>-binfmt-P links */
    const char *replace_handler; /* an existing entry the user accepts to shadow */
} binfmt_install_opts;

typedef enum {
    BINFMT_NOTHING,
    BINFMT_INSTALLED,
    BINFMT_ALREADY,          /* the same mar- entry exists: nothing to do */
    BINFMT_HANDLED_BY_OTHER, /* another entry handles the architecture: left alone */
    BINFMT_REMOVED,
} binfmt_action;

typedef struct binfmt_change {
    const binfmt_arch *arch;
    binfmt_action action;
    char name[64];   /* mar's entry */
    char other[128]; /* the entry that handles it, or that uninstall left alone */
    char interpreter[256];
    char flags[8];
    mar_digest interp_digest;
    bool shadows;  /* installed in front of `other` (--replace-handler) */
    bool replaced; /* an older mar- entry with other settings was replaced */
} binfmt_change;

/* Mounts binfmt_misc at root when it is the default mount point and nothing is mounted.
 * Errors: MAR_EUNSUPPORTED (not root, another root), MAR_EIO. */
MAR_MUST_USE int binfmt_mount(const char *root, mar_err **err);
/* "mar-qemu-aarch64", "mar-rosetta". */
const char *binfmt_entry_name(const binfmt_arch *a, binfmt_kind emu, char *buf, size_t n);
/* Root-owned, not group/other-writable, static ELF; symlinks only when allowed (and then
 * root-owned). Errors: MAR_ENOTFOUND, MAR_EUNSUPPORTED, MAR_EIO, MAR_EUSAGE. */
MAR_MUST_USE int binfmt_check_interpreter(const char *path, bool allow_symlink,
                                          mar_digest *ret_digest, mar_err **err);
/* ":name:M:0:magic:mask:interpreter:flags", validated against the kernel's limits. */
MAR_MUST_USE int binfmt_register_line(const char *name, const binfmt_arch *a,
                                      const char *interpreter, const char *flags, char *buf,
                                      size_t n, mar_err **err);
MAR_MUST_USE int binfmt_install(const binfmt_install_opts *o, const binfmt_arch *a,
                                binfmt_change *ret, mar_err **err);
/* Removes the mar- entries handling the architecture; others are reported in ret->other. */
MAR_MUST_USE int binfmt_uninstall(const char *root, const binfmt_arch *a, binfmt_change *ret,
                                  mar_err **err);

#endif
