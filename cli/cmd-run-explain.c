/* mar run --explain: which manifest mar run would pick and how it would execute, from the same
 * report mar inspect builds (so the two never disagree), for this host or a --target. Nothing
 * is pulled or run. Exit status: 0 runnable, 7 not runnable here, 3 no such platform. */
#include "cli-internal.h"

#include <string.h>

typedef struct plan {
    const cmd_row *row;
    const vm_handler *handler;
    const char *mode;
} plan;

static const char *mode_text(const vm_verdict *v, char *buf, size_t n)
{
    if (v->mode == VM_RUN_NATIVE) {
        return "native";
    }
    if (v->mode == VM_RUN_EMULATED) {
        vm_verdict_label(v, buf, n);
        return buf;
    }
    if (strstr(v->reason, "images need a")) {
        return "needs a VM of another OS";
    }
    return "impossible";
}

static const vm_handler *handler_of(const vm_target *t, const oci_platform *p)
{
    oci_platform n;
    oci_platform_normalize(p, &n);
    for (size_t i = 0; i < t->n_handlers; i++) {
        if (strcmp(t->handlers[i].arch, n.arch) == 0) {
            return &t->handlers[i];
        }
    }
    return NULL;
}

int cmd_run_security(const cmd_args *args, vm_security *ret, mar_err **err)
{
    vm_security_init(ret);
    const mar_strv *opts = cmd_list(args, "security-opt");
    for (size_t i = 0; opts && i < opts->n; i++) {
        if (vm_security_opt(ret, opts->v[i], err) < 0) {
            return -mar_err_code(*err);
        }
    }
    return 0;
}

/* "seccomp=default (SCMP_ARCH_X86_64 SCMP_ARCH_X86 SCMP_ARCH_X32), no-new-privileges=true":
 * the options that would give the same confinement. */
static char *security_text(const vm_security *sec, const mar_strv *arches)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xprintf(&b, "seccomp=%s", vm_security_seccomp_name(sec));
    if (sec->seccomp != VM_SECCOMP_UNCONFINED) {
        mar_buf_xputs(&b, " (");
        for (size_t i = 0; i < arches->n; i++) {
            mar_buf_xprintf(&b, "%s%s", i ? " " : "", arches->v[i]);
        }
        mar_buf_xputs(&b, arches->n ? ")" : "native ABI only)");
    }
    mar_buf_xprintf(&b, ", no-new-privileges=%s", sec->no_new_privileges ? "true" : "false");
    return mar_buf_detach(&b, NULL);
}

static void on_image(reg_client *c, reg_image *img, void *ud)
{
    (void)c;
    *(reg_image **)ud = img;
}

int cmd_run_explain(const cmd_args *args)
{
    mar_err *err = NULL;
    const char *image = args->pos.v[0];
    oci_host host;
    oci_host_detect(&host);
    _cleanup_free_ oci_platform *platforms = NULL;
    size_t n_platforms = 0;
    if (cmd_parse_platforms(args, &host, &platforms, &n_platforms, &err) < 0) {
        return cmd_fail(err);
    }
    vm_target target;
    if (cmd_target(args, &host, &target, &err) < 0) {
        return cmd_fail(err);
    }
    if (target.is_host) {
        target.amd64_level = host.amd64_level;
    }
    _cleanup_(vm_security_release) vm_security sec;
    if (cmd_run_security(args, &sec, &err) < 0) {
        return cmd_fail(err);
    }
    /* The filter is for the kernel that runs the containers (docs/internals/seccomp.md §4). */
    _cleanup_strv_ mar_strv arches = MAR_STRV_INIT;
    vm_seccomp_arches(&sec, target.is_host ? host.machine : target.platform.arch, &arches);
    _cleanup_free_ char *security = security_text(&sec, &arches);
    oci_ref ref;
    if (oci_ref_parse(image, &ref, &err) < 0) {
        return cmd_fail(err);
    }
    _cleanup_client_ reg_client *c = NULL;
    if (cmd_registry_client(args, 0, &c, &err) < 0) {
        oci_ref_release(&ref);
        return cmd_fail(err);
    }
    reg_image *raw = NULL;
    reg_image_fetch(c, &ref, REG_IMAGE_CHILDREN | REG_IMAGE_CONFIGS, on_image, &raw);
    oci_ref_release(&ref);
    if (reg_client_run(c, &err) < 0) {
        reg_image_free(raw);
        return cmd_fail(err);
    }
    _cleanup_image_ reg_image *img = raw;
    if (img->rc < 0) {
        return cmd_fail(TAKE_PTR(img->err));
    }
    cmd_report r;
    cmd_report_build(img, &target, n_platforms ? &platforms[0] : NULL, &r);
    const cmd_row *row = NULL;
    for (size_t i = 0; i < r.n_rows; i++) {
        if (r.rows[i].selected) {
            row = &r.rows[i];
        }
    }
    int status = 0;
    char mbuf[64];
    const char *mode = "impossible";
    const vm_handler *h = NULL;
    if (!row) {
        status = MAR_ENOTFOUND;
    } else {
        mode = mode_text(&row->verdict, mbuf, sizeof(mbuf));
        h = row->verdict.mode == VM_RUN_EMULATED ? handler_of(&target, &row->config) : NULL;
        if (row->verdict.mode == VM_RUN_UNAVAILABLE || (h && target.is_host && !h->fix_binary)) {
            status = MAR_EUNSUPPORTED;
        }
    }
    const char *want = n_platforms ? r.requested : target.name;
    if (cmd_flag(args, "json")) {
        json_t *doc =
                json_pack("{s:s, s:s, s:s}", "image", r.reference, "target", r.host, "mode", mode);
        if (row) {
            json_object_set_new(doc, "platform", json_string(row->published));
            json_object_set_new(doc, "digest", json_string(row->digest.str));
            char cp[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&row->config, cp, sizeof(cp));
            json_object_set_new(doc, "configPlatform", json_string(cp));
            json_object_set_new(doc, "runnable", json_boolean(status == 0));
            json_object_set_new(doc, "mayFail", json_boolean(row->verdict.uncertain));
            if (h) {
                json_object_set_new(doc, "handler",
                                    json_pack("{s:s, s:s, s:b}", "entry", h->entry, "interpreter",
                                              h->interpreter, "fixBinary", h->fix_binary));
            }
            json_object_set_new(doc, "reason", json_string(row->verdict.reason));
            json_object_set_new(doc, "fix", json_string(row->verdict.fix));
            json_t *archv = json_array();
            for (size_t i = 0; i < arches.n; i++) {
                json_array_append_new(archv, json_string(arches.v[i]));
            }
            json_object_set_new(doc, "security",
                                json_pack("{s:s, s:o, s:b}", "seccomp",
                                          vm_security_seccomp_name(&sec), "architectures", archv,
                                          "noNewPrivileges", sec.no_new_privileges));
        } else {
            json_object_set_new(doc, "runnable", json_false());
            json_object_set_new(doc, "reason",
                                json_string("the image has no entry for the requested platform"));
        }
        json_t *probs = json_array();
        for (size_t i = 0; i < r.n_problems; i++) {
            json_array_append_new(probs, json_string(r.problems[i].message));
        }
        json_object_set_new(doc, "warnings", probs);
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else {
        printf("image:     %s\n", cmd_esc(r.reference));
        if (r.host_detail[0]) {
            printf("target:    %s (%s)\n", r.host, r.host_detail);
        } else {
            printf("target:    %s\n", r.host);
        }
        if (!row) {
            printf("plan:      impossible: no entry for %s\n", want);
        } else {
            printf("manifest:  %s %s\n", cmd_esc(row->published), row->digest.str);
            printf("plan:      %s\n", mode);
            if (h) {
                printf("emulator:  %s (%s%s%s)\n", h->entry, h->interpreter,
                       h->interpreter[0] ? ", " : "", h->fix_binary ? "F flag" : "no F flag");
            }
            printf("security:  %s\n", security);
            if (row->verdict.reason[0]) {
                printf("why:       %s\n", cmd_esc(row->verdict.reason));
            }
            if (row->verdict.fix[0]) {
                printf("fix:       %s\n", row->verdict.fix);
            }
        }
        for (size_t i = 0; i < r.n_problems; i++) {
            printf("warning:   %s\n", cmd_esc(r.problems[i].message));
        }
    }
    cmd_report_release(&r);
    return status;
}
