/* Where lines go: stdout carries data only, stderr diagnostics (docs/internals/style.md §7
 * "streams"); and the plumbing every verb shares (registry client, evaluation target). */
#include "cli-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool quiet_mode;

/* Escaped copies handed out by cmd_esc: each stays valid for the next ESC_RING - 1 calls in the
 * same thread, enough for the arguments of one printf. */
#define ESC_RING 16
static _Thread_local char *esc_ring[ESC_RING];
static _Thread_local unsigned esc_next;

const char *cmd_esc(const char *s)
{
    if (!s || !mar_str_needs_escape(s)) {
        return s;
    }
    unsigned i = esc_next++ % ESC_RING;
    free(esc_ring[i]);
    esc_ring[i] = mar_str_escape(s);
    return esc_ring[i];
}

void cmd_esc_release(void)
{
    for (size_t i = 0; i < ESC_RING; i++) {
        free(esc_ring[i]);
        esc_ring[i] = NULL;
    }
}

static void diag_sink(mar_diag_level level, const char *m, void *ud)
{
    (void)ud;
    _cleanup_free_ char *msg = mar_str_escape(m);
    switch (level) {
    case MAR_DIAG_DEBUG:
        fprintf(stderr, "mar: debug: %s\n", msg);
        break;
    case MAR_DIAG_NOTICE:
        if (!quiet_mode) {
            fprintf(stderr, "mar: %s\n", msg);
        }
        break;
    case MAR_DIAG_WARN:
        fprintf(stderr, "mar: warning: %s\n", msg);
        break;
    }
}

void cmd_diag_init(bool debug, bool quiet)
{
    quiet_mode = quiet;
    mar_diag_set_debug(debug);
    mar_diag_set_sink(diag_sink, NULL);
}

int cmd_fail(mar_err *err)
{
    int code = mar_err_code(err);
    _cleanup_free_ char *msg = mar_str_escape(err->msg);
    fprintf(stderr, "mar: %s\n", msg);
    mar_err_free(err);
    return code;
}

bool cmd_stdout_is_tty(void)
{
    return isatty(STDOUT_FILENO);
}

int cmd_json_print(json_t *doc, bool pretty)
{
    size_t flags = JSON_PRESERVE_ORDER | (pretty ? JSON_INDENT(2) : JSON_COMPACT);
    if (json_dumpf(doc, stdout, flags) < 0) {
        return -1;
    }
    fputc('\n', stdout);
    return 0;
}

FILE *cmd_report_open(const char *path, char **ret_tmp, mar_err **err)
{
    char *tmp = mar_xasprintf("%s.tmp-XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        mar_err_set(err, MAR_EIO, errno, "cannot write '%s'", path);
        free(tmp);
        return NULL;
    }
    /* mkostemp makes it 0600; a report is as readable as any file the user creates. */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        mar_err_set(err, MAR_EIO, errno, "cannot write '%s'", path);
        close(fd);
        unlink(tmp);
        free(tmp);
        return NULL;
    }
    *ret_tmp = tmp;
    return f;
}

int cmd_report_commit(FILE *f, const char *path, char *tmp, mar_err **err)
{
    int rc = 0;
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        rc = mar_err_set(err, MAR_EIO, errno, "cannot write '%s'", path);
    } else if (rename(tmp, path) < 0) {
        rc = mar_err_set(err, MAR_EIO, errno, "cannot write '%s'", path);
    }
    if (rc < 0) {
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int cmd_registry_client(const cmd_args *args, int connections, reg_client **ret, mar_err **err)
{
    reg_options o;
    reg_options_init(&o);
    const mar_strv *ins = cmd_list(args, "insecure-registry");
    for (size_t i = 0; ins && i < ins->n; i++) {
        mar_strv_push(&o.insecure, ins->v[i]);
    }
    const mar_strv *tls = cmd_list(args, "tls-registry");
    for (size_t i = 0; tls && i < tls->n; i++) {
        mar_strv_push(&o.tls, tls->v[i]);
    }
    /* A stalled transfer is given up after MAR_STALL_TIMEOUT seconds below 1 KiB/s (default 30,
     * docs/internals/registry-protocol.md §9), then retried. */
    reg_curl_options co = {.max_host_connections = connections};
    const char *stall = getenv("MAR_STALL_TIMEOUT");
    int64_t st;
    if (stall && mar_parse_i64(stall, 1, 3600, &st)) {
        co.low_speed_time = (long)st;
    }
    const reg_http_ops *ops;
    void *ctx;
    int rc = reg_curl_transport_new(&co, &ops, &ctx, err);
    if (rc < 0) {
        reg_options_release(&o);
        return rc;
    }
    *ret = reg_client_new(&o, ops, ctx);
    reg_options_release(&o);
    return 0;
}

/* Maps the effective binfmt_misc entry of every architecture to the planner's handlers. */
static void add_host_handlers(const binfmt_table *t, vm_target *target)
{
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch *a = binfmt_arch_get((binfmt_arch_id)i);
        const binfmt_entry *e = binfmt_effective(t, a, NULL);
        if (!e) {
            continue;
        }
        vm_handler h = {0};
        mar_strlcpy(h.arch, a->elf->arch, sizeof(h.arch));
        switch (binfmt_entry_kind(e)) {
        case BINFMT_KIND_ROSETTA:
            h.emu = VM_EMU_ROSETTA;
            break;
        case BINFMT_KIND_QEMU:
        case BINFMT_KIND_BUILDKIT_QEMU:
            h.emu = VM_EMU_QEMU;
            break;
        default:
            h.emu = VM_EMU_OTHER;
            break;
        }
        h.fix_binary = binfmt_entry_has_flag(e, 'F');
        mar_strlcpy(h.entry, e->name, sizeof(h.entry));
        mar_strlcpy(h.interpreter, e->interpreter, sizeof(h.interpreter));
        vm_target_add_handler(target, &h);
    }
}

/* Whether the 32-bit sibling of the host architecture really executes: containerd's ladder
 * assumes it does, kernels and CPUs often disagree (the exec probe is the authority). */
static void probe_compat(vm_target *t)
{
    const char *compat = strcmp(t->platform.arch, "amd64") == 0   ? "386"
                         : strcmp(t->platform.arch, "arm64") == 0 ? "arm"
                                                                  : NULL;
    if (!compat) {
        return;
    }
    binfmt_probe pr;
    mar_err *e = NULL;
    if (binfmt_probe_run(binfmt_arch_by_oci(compat), &pr, &e) < 0) {
        mar_debug("%s, assuming %s runs natively", e->msg, compat);
        mar_err_free(e);
        return;
    }
    bool native = pr.result == BINFMT_PROBE_NATIVE;
    mar_debug("%s probe: %s%s%s", compat, binfmt_probe_result_name(pr.result),
              pr.interpreter[0] ? " via " : "", pr.interpreter);
    if (strcmp(compat, "386") == 0) {
        t->ia32 = native;
    } else {
        t->aarch32 = native;
    }
}

int cmd_target(const cmd_args *args, const oci_host *host, vm_target *ret, mar_err **err)
{
    const char *spec = cmd_value(args, "target");
    if (spec) {
        return vm_target_parse(spec, &host->platform, ret, err);
    }
    vm_target_from_host(host, ret);
    binfmt_table t;
    const char *root = binfmt_root(cmd_value(args, "binfmt-root"));
    if (binfmt_table_read(root, &t, err) < 0) {
        return -mar_err_code(*err);
    }
    if (!t.mounted) {
        mar_debug("binfmt_misc is not mounted at '%s': no emulators", root);
    }
    ret->binfmt_known = t.mounted;
    add_host_handlers(&t, ret);
    binfmt_table_release(&t);
    probe_compat(ret);
    return 0;
}
