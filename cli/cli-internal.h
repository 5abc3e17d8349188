/* Shared between the files of cli/ only. */
#ifndef MAR_CLI_INTERNAL_H
#define MAR_CLI_INTERNAL_H

#include "cli.h"

/* ---------------------------------------------------------------------------------------------
 * Options as data (docs/internals/style.md §7): one table per command drives getopt_long and
 * --help. */

typedef enum {
    CMD_OPT_FLAG,  /* --json */
    CMD_OPT_VALUE, /* --platform P (last one wins) */
    CMD_OPT_LIST,  /* --insecure-registry H (repeatable) */
} cmd_opt_kind;

typedef struct cmd_opt {
    const char *name;
    char short_name;
    cmd_opt_kind kind;
    const char *arg; /* metavariable for --help */
    const char *help;
} cmd_opt;

typedef struct cmd_args {
    const cmd_opt *opts[64];
    size_t n_opts;
    const char *value[64];
    int count[64];
    mar_strv list[64];
    mar_strv pos;
    char *const *raw; /* the verb's arguments as given (borrowed), for forwarding */
    size_t n_raw;
} cmd_args;

typedef struct cmd_def cmd_def;
typedef int (*cmd_fn)(const cmd_def *def, cmd_args *args);

struct cmd_def {
    const char *name;
    cmd_fn fn;
    int min_args;
    int max_args;      /* -1: unbounded */
    const char *usage; /* after "mar <name> " */
    const char *summary;
    const char *description;
    const cmd_opt *opts;
    size_t n_opts;
    bool stop_at_positional; /* options end at the first positional (run IMAGE CMD...) */
};

/* Parses argv (argv[0] is the verb) against the command's and the global options. Errors:
 * MAR_EUSAGE. */
MAR_MUST_USE int cmd_parse(const cmd_def *def, int argc, char **argv, cmd_args *ret, mar_err **err);
void cmd_args_release(cmd_args *a);
const char *cmd_value(const cmd_args *a, const char *name);
bool cmd_flag(const cmd_args *a, const char *name);
const mar_strv *cmd_list(const cmd_args *a, const char *name);

void cmd_print_help(const cmd_def *def, FILE *out);
void cmd_print_usage(const cmd_def *def, FILE *out);
/* A bad command line: prints "mar: <message>" and the verb's usage line on stderr. Returns
 * MAR_EUSAGE, the exit status. */
int cmd_usage_error(const cmd_def *def, const char *fmt, ...) MAR_PRINTF(2, 3);

/* The command table and the global options (borrowed, static). */
const cmd_def *cmd_commands(size_t *ret_n);
const cmd_opt *cmd_global_opts(size_t *ret_n);
/* Writes the completion script of shell ("bash", "zsh", "fish") from those tables
 * (completion.c). Errors: MAR_EUSAGE (another shell). */
MAR_MUST_USE int cmd_completion_write(const char *shell, FILE *out, mar_err **err);
/* `mar completion SHELL` (hidden: not in the table, which it describes). Returns the exit
 * status. */
int cmd_completion(int argc, char **argv);

/* ---------------------------------------------------------------------------------------------
 * Output. */

/* s escaped for the terminal (mar_str_escape): s itself when it needs nothing, else a copy that
 * stays valid for the next 15 calls in this thread. For every string from a registry, a store
 * file or an image in printf arguments; may be NULL. Errors and warnings are escaped by
 * cmd_fail and the diagnostics sink. */
const char *cmd_esc(const char *s);
/* Frees the copies cmd_esc handed out in this thread. */
void cmd_esc_release(void);
/* Installs the stderr diagnostics sink; warnings, notices and debug lines are escaped. */
void cmd_diag_init(bool debug, bool quiet);
/* Prints "mar: <msg>" for an error, escaped, and returns its exit status. */
int cmd_fail(mar_err *err);
/* Writes a JSON document to stdout: indented on a terminal, compact otherwise. */
int cmd_json_print(json_t *doc, bool pretty);
bool cmd_stdout_is_tty(void);

/* ---------------------------------------------------------------------------------------------
 * Shared plumbing. */

/* A report file (--junit, --html) is written to a temporary next to PATH and renamed over it
 * when complete, so a failed write never leaves half a report where CI would read it. Errors:
 * MAR_EIO. */
FILE *cmd_report_open(const char *path, char **ret_tmp, mar_err **err);
/* Closes f and renames it to path; on failure removes it. Frees tmp. Errors: MAR_EIO. */
MAR_MUST_USE int cmd_report_commit(FILE *f, const char *path, char *tmp, mar_err **err);
/* A registry client over libcurl, configured from the global options and the environment, with
 * at most `connections` HTTP/1.1 connections to one registry (0: the transport's default, 8). */
MAR_MUST_USE int cmd_registry_client(const cmd_args *args, int connections, reg_client **ret,
                                     mar_err **err);
/* Default connections per registry for the commands that inspect many images at once. */
#define CMD_MANY_IMAGES_CONNECTIONS 32
/* Reads binfmt_misc and builds this host's target, or parses --target. */
MAR_MUST_USE int cmd_target(const cmd_args *args, const oci_host *host, vm_target *ret,
                            mar_err **err);

/* The platform report: one struct feeds the table and the JSON (docs/internals/style.md §7 "one
 * data path"). */

/* What a row is (docs/mar-inspect.1.md, JSON "status"). Only ok rows are platforms an image
 * offers; the others are listed so that nothing in the index goes unmentioned. */
typedef enum {
    CMD_ROW_OK,         /* a manifest mar read */
    CMD_ROW_UNKNOWN,    /* an entry of a media type mar does not read */
    CMD_ROW_NOT_READ,   /* not read by rule (a platform beyond mar's limits): err says why */
    CMD_ROW_UNREADABLE, /* reading it failed: err says why, and the report fails with it */
} cmd_row_status;

typedef struct cmd_row {
    size_t entry;               /* index into img->entries */
    size_t seq;                 /* position in the listing (with index rows) */
    size_t depth;               /* nested indexes above it */
    const mar_digest *in_index; /* the index listing it; NULL for a manifest */
    const char *media_type;     /* borrowed */
    cmd_row_status status;
    char published[OCI_PLATFORM_ALL_STR_MAX]; /* as published (index) or the config's */
    char normalized[OCI_PLATFORM_STR_MAX];
    bool has_platform;
    oci_platform platform;
    mar_digest digest;
    int64_t size;
    bool has_config;
    oci_platform config;
    bool config_matches;
    vm_verdict verdict;
    bool selected;
    const mar_err *err; /* borrowed from the entry */
    bool deep;          /* to be scanned by --deep */
    oci_elf_summary *elf;
    mar_err *elf_err;
} cmd_row;

/* A nested index in the listing (docs/internals/platforms.md §7). */
typedef struct cmd_index_row {
    size_t entry; /* index into img->entries */
    size_t seq;
    size_t depth;
    const mar_digest *digest;
    const mar_digest *in_index;
    const char *media_type;
    char published[OCI_PLATFORM_ALL_STR_MAX]; /* its label, or empty */
    int64_t size;
    size_t n_entries;   /* 0 when not read */
    const mar_err *err; /* why it was not read (borrowed), or NULL */
    bool not_read;      /* err is a rule (too deep, a loop), not a failure */
} cmd_index_row;

/* A row that is a platform the image offers and mar read. */
static inline bool cmd_row_ok(const cmd_row *row)
{
    return row->status == CMD_ROW_OK && !row->err;
}

typedef struct cmd_problem {
    char *kind; /* "config-mismatch", "no-native", "amd64-only", "unreadable", ... */
    char *platform;
    char *message;
} cmd_problem;

typedef struct cmd_report {
    const reg_image *img;
    char *reference;
    mar_digest digest;
    char *media_type;
    bool is_index;
    char host[OCI_PLATFORM_STR_MAX + 64];
    bool on_host;         /* evaluated for this machine, not a --target */
    char host_detail[96]; /* "this host, x86-64-v3" for the human header */
    bool has_selected;
    mar_digest selected;
    size_t attestations;
    size_t ignored; /* entries BuildKit says to ignore (docs/internals/platforms.md §9) */
    cmd_row *rows;
    size_t n_rows;
    cmd_index_row *indexes;
    size_t n_indexes;
    cmd_problem *problems;
    size_t n_problems;
    int status; /* 0, or the exit status the report implies */
    bool explicit_platform;
    char requested[OCI_PLATFORM_ALL_STR_MAX];
    char none_reason[512]; /* why containerd's pick selected nothing, when the index says why */
} cmd_report;

/* Builds the report of an image for a target; `requested` (may be NULL) is an explicit
 * --platform. */
void cmd_report_build(const reg_image *img, const vm_target *target, const oci_platform *requested,
                      cmd_report *ret);
void cmd_report_release(cmd_report *r);
void cmd_report_problem(cmd_report *r, const char *kind, const char *platform, const char *fmt, ...)
        MAR_PRINTF(4, 5);
json_t *cmd_report_json(const cmd_report *r);
void cmd_report_print(const cmd_report *r, FILE *out);

/* --deep: scans the layers of every row marked deep with reg_deep_scan (from the store s when it
 * holds them, may be NULL; otherwise streamed from the registry) and fills row->elf
 * (report-deep.c). Errors: only transport failures; per-row failures land in row->elf_err. */
MAR_MUST_USE int cmd_deep_scan(reg_client *c, reg_store *s, const reg_image *img, cmd_report *r,
                               int jobs, mar_err **err);
/* The store when one exists at the configured place (never creates one), else NULL. */
reg_store *cmd_existing_store(const cmd_args *args);
/* Adds the ELF evidence to a report: verdict changes, elf-* problems (report-deep.c). */
void cmd_report_add_deep(cmd_report *r, const vm_target *t);
json_t *cmd_elf_json(const cmd_row *row);
/* The ELF column text and the evidence lines printed under the table. */
void cmd_elf_column(const cmd_row *row, char *buf, size_t n);
void cmd_elf_evidence(const cmd_report *r, FILE *out);

/* Commands. */
int cmd_inspect(const cmd_def *def, cmd_args *args);
int cmd_binfmt_status(const cmd_def *def, cmd_args *args);
int cmd_binfmt_install(const cmd_def *def, cmd_args *args);
int cmd_binfmt_uninstall(const cmd_def *def, cmd_args *args);
int cmd_pull(const cmd_def *def, cmd_args *args);
int cmd_push(const cmd_def *def, cmd_args *args);
int cmd_tag(const cmd_def *def, cmd_args *args);
int cmd_copy(const cmd_def *def, cmd_args *args);
int cmd_index_create(const cmd_def *def, cmd_args *args);
int cmd_unpack(const cmd_def *def, cmd_args *args);
int cmd_images(const cmd_def *def, cmd_args *args);
int cmd_rmi(const cmd_def *def, cmd_args *args);
int cmd_gc(const cmd_def *def, cmd_args *args);
int cmd_run(const cmd_def *def, cmd_args *args);
int cmd_build(const cmd_def *def, cmd_args *args);
int cmd_check(const cmd_def *def, cmd_args *args);
int cmd_audit(const cmd_def *def, cmd_args *args);
int cmd_doctor(const cmd_def *def, cmd_args *args);
int cmd_vm_create(const cmd_def *def, cmd_args *args);
int cmd_vm_simple(const cmd_def *def, cmd_args *args); /* start, stop, delete */
int cmd_vm_status(const cmd_def *def, cmd_args *args);
int cmd_vm_shell(const cmd_def *def, cmd_args *args);
/* The VM driver in use: --driver, else $MAR_VM_DRIVER, else lima on macOS and host elsewhere;
 * *ret_instance is the Lima instance (the NAME argument, else $MAR_VM, else "mar"). Errors:
 * MAR_EUSAGE. */
MAR_MUST_USE int cmd_vm_driver(const cmd_args *args, const char *name_arg, const char **ret_driver,
                               const char **ret_instance, mar_err **err);
/* mar run under the lima driver: `limactl shell INSTANCE sudo mar run ARGS...`, replacing mar.
 * Returns only on failure. */
int cmd_vm_forward_run(const cmd_args *args, const char *instance);
/* The emulation and containerd findings of this machine (mar doctor's, for mar vm status). */
void cmd_doctor_emulation(const char *root, const char *native_arch, bool probe, vm_findings *out);
void cmd_doctor_containerd(const char *address, vm_findings *out);
void cmd_doctor_print(const vm_findings *f, const char *const *areas, size_t n_areas);

/* ---------------------------------------------------------------------------------------------
 * mar audit (cmd-audit.c, audit-report.c; the inputs are read by builder/). */

/* One distinct image (and platform pin) and what it does on the target. */
typedef struct cmd_audit_image {
    char *name; /* canonical reference */
    char *pin;
    oci_ref ref;
    reg_image *img;
    struct cmd_audit_image *shares; /* the same reference fetched for another pin */
    cmd_report report;
    bool has_report;
    int error_code;
    char error[512];
    const char *verdict; /* native, rosetta, qemu, will-fail, mislabeled, no-linux-image, error */
    char platform[OCI_PLATFORM_STR_MAX]; /* the entry that would run */
    char reason[1024];
    bool native;
    bool has_native; /* some entry runs natively (even if a pin picks another) */
    char native_platform[OCI_PLATFORM_STR_MAX];
    mar_strv alt_tags; /* newer tags of the same release line, closest first */
    reg_image *alt_imgs[3];
    mar_strv recs;
} cmd_audit_image;

typedef struct cmd_audit_run {
    vm_target target;
    bld_inputs in;
    cmd_audit_image **use_image; /* per use */
    cmd_audit_image *images;
    size_t n_images;
    uint64_t requests;
} cmd_audit_run;

/* Writes the audit as a table, JSON or Markdown on stdout, and the HTML page when html is set
 * (audit-report.c). Errors: MAR_EIO. */
MAR_MUST_USE int cmd_audit_output(const cmd_audit_run *a, const char *format, const char *html,
                                  mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * mar run (cmd-run.c, cmd-run-explain.c). */

/* mar run --explain: the plan, printed, nothing run. Returns the exit status. */
int cmd_run_explain(const cmd_args *args);
/* The --security-opt list applied in order to vm_security_init's defaults (*ret is initialized
 * even on failure). Errors: as vm_security_opt. */
MAR_MUST_USE int cmd_run_security(const cmd_args *args, vm_security *ret, mar_err **err);

/* mar run's --pull (docker's): pull when the store lacks the platform asked for, always, never. */
typedef enum { CMD_RUN_PULL_MISSING, CMD_RUN_PULL_ALWAYS, CMD_RUN_PULL_NEVER } cmd_run_pull;
/* Errors: MAR_EUSAGE. */
MAR_MUST_USE int cmd_run_pull_policy(const cmd_args *args, cmd_run_pull *ret, mar_err **err);

typedef struct cmd_run_choice {
    reg_store_image im;
    oci_platform label; /* the platform the chosen entry claims */
    vm_verdict verdict; /* how the target runs that label */
} cmd_run_choice;

/* What mar run runs (run-pick.c): the store's copy when --pull allows it and it is the platform
 * asked for (want; NULL: the target's default), else the entry the registry's report selects,
 * planned and refused (MAR_EUNSUPPORTED) before its layers are pulled. Warnings about the entry
 * are printed. Errors: MAR_ENOTFOUND (no such entry, or --pull never and not stored),
 * MAR_EUNSUPPORTED, those of the pull. */
MAR_MUST_USE int cmd_run_choose(const cmd_args *args, reg_store *s, const char *image,
                                const char *refname, const vm_target *t, const oci_platform *want,
                                cmd_run_choice *ret, mar_err **err);
/* "cannot run REF PLATFORM here: why (fix: `...`)". Returns -MAR_EUNSUPPORTED. */
MAR_MUST_USE int cmd_run_refuse(const char *refname, const oci_platform *p, const vm_verdict *v,
                                mar_err **err);
/* The ELF file the kernel would execute for cmd in the image (PATH searched as runc does, a
 * script's interpreter followed once); its path in ret_path. False when it is not found or not an
 * ELF file of a known architecture. */
bool cmd_run_command_elf(const oci_lview *v, const char *cmd, const char *path_var, const char *cwd,
                         char *ret_path, size_t n, oci_elf_info *ret);

/* ---------------------------------------------------------------------------------------------
 * The store and pulling (cmd-pull.c, progress.c). */

/* Opens the store named by --store, $MAR_STORE or the default. */
MAR_MUST_USE int cmd_open_store(const cmd_args *args, reg_store **ret, mar_err **err);
/* Every --platform value, comma lists split. Errors: MAR_EUSAGE. */
MAR_MUST_USE int cmd_parse_platforms(const cmd_args *args, const oci_host *host, oci_platform **ret,
                                     size_t *ret_n, mar_err **err);
/* --platform and --all-platforms of a verb that takes both (pull, push, copy): 0, or the exit
 * status after printing the error (they exclude each other). */
int cmd_parse_selection(const cmd_def *def, const cmd_args *args, oci_platform **ret, size_t *ret_n,
                        bool *ret_all);
/* The same for another option that lists platforms (index create's --remove). */
MAR_MUST_USE int cmd_parse_platform_list(const cmd_args *args, const char *option,
                                         const oci_host *host, oci_platform **ret, size_t *ret_n,
                                         mar_err **err);
/* --jobs, or dflt. Errors: MAR_EUSAGE. */
MAR_MUST_USE int cmd_jobs(const cmd_args *args, int dflt, int *ret, mar_err **err);
/* Pulls image into s with progress on stderr. */
MAR_MUST_USE int cmd_pull_image(const cmd_args *args, reg_store *s, const char *image,
                                const oci_platform *platforms, size_t n_platforms, bool all,
                                bool unpack, reg_pull_result *ret, mar_err **err);
/* The stored image refname (the normalized image) for m; pulls image for the platforms first
 * when the store lacks it, or lacks its blobs, or (unpacked) its unpacked layers. Errors: as
 * reg_store_image_find and cmd_pull_image. */
MAR_MUST_USE int cmd_stored_or_pull(const cmd_args *args, reg_store *s, const char *image,
                                    const char *refname, const oci_matcher *m,
                                    const oci_platform *platforms, size_t n_platforms,
                                    bool unpacked, reg_store_image *ret, mar_err **err);

typedef struct cmd_progress cmd_progress;
cmd_progress *cmd_progress_new(bool quiet);
cmd_progress *cmd_progress_free(cmd_progress *pr);
/* A reg_pull_progress_fn drawing on stderr. */
void cmd_progress_pull(reg_pull *p, const reg_pull_layer *row, void *ud);

/* Push progress on stderr (push-progress.c), drawn from the engine's callback, which holds no
 * lock. */
typedef struct cmd_push_progress cmd_push_progress;
cmd_push_progress *cmd_push_progress_new(bool quiet);
cmd_push_progress *cmd_push_progress_free(cmd_push_progress *pr);
void cmd_progress_push(reg_push *p, const reg_push_item *item, void *ud);
/* The word for an item's final state: "pushed", "mounted", "present". */
const char *cmd_push_state_word(reg_push_state st);
/* The items of a push as a JSON array (blobs or documents). Returns: new reference. */
json_t *cmd_push_items_json(const reg_push *p, bool documents);
json_t *cmd_push_stats_json(const reg_push_stats *st);

#endif
