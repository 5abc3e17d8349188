/* mar run's choice of what to run (docs/mar-run.1.md DESCRIPTION, steps 1-3): the store's copy
 * when it holds exactly the platform asked for, else the registry's answer planned before a
 * single layer is fetched; and, once the layers are there, what the command's binary really is.
 * --explain reads the same report (cmd_report_build), so the two agree. */
#include "cli-internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

int cmd_run_pull_policy(const cmd_args *args, cmd_run_pull *ret, mar_err **err)
{
    const char *p = cmd_value(args, "pull");
    if (!p || strcmp(p, "missing") == 0) {
        *ret = CMD_RUN_PULL_MISSING;
    } else if (strcmp(p, "always") == 0) {
        *ret = CMD_RUN_PULL_ALWAYS;
    } else if (strcmp(p, "never") == 0) {
        *ret = CMD_RUN_PULL_NEVER;
    } else {
        return mar_err_set(err, MAR_EUSAGE, 0, "--pull is always, missing or never, not '%s'", p);
    }
    return 0;
}

/* The planner's verdict, with a handler that lacks the F flag counted as unusable: its
 * interpreter would be looked up inside the container (docs/internals/binfmt-and-rosetta.md). */
static void plan(const vm_target *t, const oci_platform *p, vm_verdict *v)
{
    vm_plan_platform(t, p, v);
    if (v->mode == VM_RUN_EMULATED && strstr(v->reason, "lacks the F flag")) {
        v->mode = VM_RUN_UNAVAILABLE;
    }
}

int cmd_run_refuse(const char *refname, const oci_platform *p, const vm_verdict *v, mar_err **err)
{
    char ps[OCI_PLATFORM_STR_MAX];
    oci_platform_format(p, ps, sizeof(ps));
    return mar_err_set(err, MAR_EUNSUPPORTED, 0, "cannot run %s %s here: %s%s%s%s", refname, ps,
                       v->reason, v->fix[0] ? " (fix: `" : "", v->fix, v->fix[0] ? "`)" : "");
}

/* The warnings inspect gives for a stored image whose registry report mar did not read. */
static void local_warnings(const reg_store_image *im, const vm_target *t, bool explicit_platform,
                           const vm_verdict *v)
{
    char ps[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&im->platform, ps, sizeof(ps));
    if (im->config && im->config->has_platform &&
        !oci_platform_same(&im->platform, &im->config->platform)) {
        char cp[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&im->config->platform, cp, sizeof(cp));
        mar_diag_warn("the %s entry of '%s' is labeled %s but its config says %s: the image is "
                      "mislabeled",
                      ps, im->name, ps, cp);
    }
    if (!explicit_platform && mar_digest_eq(&im->top, &im->digest) && v->mode != VM_RUN_NATIVE) {
        char tp[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&t->platform, tp, sizeof(tp));
        mar_diag_warn("the image's platform (%s) does not match %s (%s) and no platform was "
                      "requested",
                      ps, t->is_host ? "this host" : t->name, tp);
    }
}

static void on_image(reg_client *c, reg_image *img, void *ud)
{
    (void)c;
    *(reg_image **)ud = img;
}

/* The registry's answer: the entry --explain names, planned, refused before any layer is fetched
 * when this host cannot run it, else pulled; then the store's copy of exactly that manifest. */
MAR_MUST_USE static int from_registry(const cmd_args *args, reg_store *s, const char *image,
                                      const char *refname, const vm_target *t,
                                      const oci_platform *want, cmd_run_choice *ret, mar_err **err)
{
    oci_ref ref;
    if (oci_ref_parse(image, &ref, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_client_ reg_client *c = NULL;
    if (cmd_registry_client(args, 0, &c, err) < 0) {
        oci_ref_release(&ref);
        return -mar_err_code(*err);
    }
    reg_image *raw = NULL;
    reg_image_fetch(c, &ref, REG_IMAGE_CHILDREN | REG_IMAGE_CONFIGS, on_image, &raw);
    oci_ref_release(&ref);
    if (reg_client_run(c, err) < 0) {
        reg_image_free(raw);
        return -mar_err_code(*err);
    }
    _cleanup_image_ reg_image *img = raw;
    if (img->rc < 0) {
        *err = TAKE_PTR(img->err);
        return -mar_err_code(*err);
    }
    cmd_report r;
    cmd_report_build(img, t, want, &r);
    const cmd_row *row = NULL;
    for (size_t i = 0; i < r.n_rows; i++) {
        row = r.rows[i].selected ? &r.rows[i] : row;
    }
    const char *refusal = NULL;
    for (size_t i = 0; i < r.n_problems; i++) {
        const cmd_problem *pb = &r.problems[i];
        bool why_none = !row && (strcmp(pb->kind, "no-match") == 0 ||
                                 strcmp(pb->kind, "platform-mismatch") == 0);
        if (why_none && !refusal) {
            refusal = pb->message;
        } else {
            mar_diag_warn("%s", pb->message);
        }
    }
    int rc = 0;
    oci_platform label = {0};
    if (!row) {
        char ws[OCI_PLATFORM_ALL_STR_MAX];
        oci_platform_format_all(want ? want : &t->platform, ws, sizeof(ws));
        rc = r.none_reason[0] ? mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' has no %s image: %s",
                                            r.reference, ws, r.none_reason)
             : refusal        ? mar_err_set(err, MAR_ENOTFOUND, 0, "%s", refusal)
                       : mar_err_set(err, MAR_ENOTFOUND, 0, "'%s' has no entry for %s", r.reference,
                                     ws);
        goto out;
    }
    label = row->has_platform ? row->platform : row->config;
    ret->label = label;
    plan(t, &label, &ret->verdict);
    if (ret->verdict.mode == VM_RUN_UNAVAILABLE) {
        rc = cmd_run_refuse(refname, &label, &ret->verdict, err);
        goto out;
    }
    /* The pull makes containerd's choice again with the same platform; a single-platform image
     * is asked for by what its config says, so a foreign one is not refused there. */
    const oci_platform *pp = want;
    if (!want && !r.is_index && row->has_config) {
        pp = &row->config;
    }
    reg_pull_result pr;
    if (cmd_pull_image(args, s, image, pp, pp ? 1 : 0, false, true, &pr, err) < 0) {
        rc = -mar_err_code(*err);
        goto out;
    }
    reg_pull_result_release(&pr);
    oci_matcher m;
    oci_matcher_only(&m, pp ? pp : &t->platform);
    if (reg_store_image_find(s, refname, &m, &ret->im, err) < 0) {
        rc = -mar_err_code(*err);
        goto out;
    }
    if (!mar_digest_eq(&ret->im.digest, &row->digest)) {
        reg_store_image_release(&ret->im);
        rc = mar_err_set(err, MAR_EFAIL, 0,
                         "'%s' changed in its registry while it was pulled (%s was planned); run "
                         "again",
                         refname, row->digest.str);
        goto out;
    }
out:
    cmd_report_release(&r);
    return rc;
}

int cmd_run_choose(const cmd_args *args, reg_store *s, const char *image, const char *refname,
                   const vm_target *t, const oci_platform *want, cmd_run_choice *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    cmd_run_pull policy;
    if (cmd_run_pull_policy(args, &policy, err) < 0) {
        return -MAR_EUSAGE;
    }
    oci_matcher m;
    if (want) {
        oci_matcher_only(&m, want);
    } else {
        vm_target_matcher(t, &m);
    }
    mar_err *e = NULL;
    int rc = reg_store_image_find(s, refname, &m, &ret->im, &e);
    if (rc < 0 && mar_err_code(e) != MAR_ENOTFOUND) {
        *err = e;
        return rc;
    }
    bool usable = rc == 0 && ret->im.unpacked;
    /* "missing" is about the platform asked for: an entry further down containerd's ladder (arm/v7
     * for arm64) or an older copy of a moved tag is not it. A single-platform image is what it is.
     */
    bool exact = usable && (want ? oci_platform_same(&ret->im.platform, want)
                                 : mar_digest_eq(&ret->im.top, &ret->im.digest) ||
                                            oci_platform_same(&ret->im.platform, &t->platform));
    if (policy == CMD_RUN_PULL_NEVER && !usable) {
        if (rc == 0) {
            reg_store_image_release(&ret->im);
        }
        int code = rc == 0 ? MAR_ENOTFOUND : mar_err_code(e);
        mar_err_free(e);
        return mar_err_set(err, code, 0,
                           "'%s'%s is not in the store%s, and --pull never forbids "
                           "pulling it",
                           refname, want ? " for that platform" : "", rc == 0 ? " unpacked" : "");
    }
    mar_err_free(e);
    if (usable && (policy == CMD_RUN_PULL_NEVER || (policy == CMD_RUN_PULL_MISSING && exact))) {
        ret->label = ret->im.platform;
        plan(t, &ret->label, &ret->verdict);
        local_warnings(&ret->im, t, want != NULL, &ret->verdict);
        if (ret->verdict.mode == VM_RUN_UNAVAILABLE) {
            rc = cmd_run_refuse(refname, &ret->label, &ret->verdict, err);
            reg_store_image_release(&ret->im);
            return rc;
        }
        return 0;
    }
    if (rc == 0) {
        char sp[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&ret->im.platform, sp, sizeof(sp));
        mar_debug("%s '%s' (the store holds %s): asking the registry",
                  policy == CMD_RUN_PULL_ALWAYS ? "--pull always for"
                                                : "not the platform asked for in",
                  refname, sp);
        reg_store_image_release(&ret->im);
    }
    return from_registry(args, s, image, refname, t, want, ret, err);
}

/* The first bytes of a regular file of the image, through the merged view. */
static bool read_head(const oci_lview *v, const char *path, unsigned char *buf, size_t cap,
                      size_t *ret_len, bool *ret_exec)
{
    mar_err *e = NULL;
    _cleanup_free_ char *resolved = NULL;
    bool exists = false;
    if (oci_lview_resolve(v, path, true, &resolved, &exists, &e) < 0 || !exists || !*resolved) {
        mar_err_free(e);
        return false;
    }
    size_t layer;
    struct stat st;
    int pfd = -1;
    if (oci_lview_stat(v, resolved, &layer, &st, &pfd, &e) < 0) {
        mar_err_free(e);
        return false;
    }
    const char *name = strrchr(resolved, '/');
    name = name ? name + 1 : resolved;
    _cleanup_close_ int fd =
            S_ISREG(st.st_mode) ? openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                                : -1;
    close(pfd);
    if (fd < 0) {
        return false;
    }
    ssize_t n = read(fd, buf, cap);
    *ret_len = n > 0 ? (size_t)n : 0;
    *ret_exec = (st.st_mode & 0111) != 0;
    return true;
}

/* A name without a slash is looked up in PATH, as runc does; a relative one from the working
 * directory. Returns the absolute path in the image, or NULL. */
static char *find_command(const oci_lview *v, const char *cmd, const char *path_var,
                          const char *cwd)
{
    unsigned char buf[4];
    size_t len;
    bool x;
    if (strchr(cmd, '/')) {
        return cmd[0] == '/' ? mar_xstrdup(cmd) : mar_xasprintf("%s/%s", cwd, cmd);
    }
    _cleanup_free_ char *copy = mar_xstrdup(path_var ? path_var : "");
    for (char *d = copy, *next; d; d = next) {
        next = strchr(d, ':');
        if (next) {
            *next++ = '\0';
        }
        char *p = mar_xasprintf("%s/%s", *d ? d : ".", cmd);
        if (read_head(v, p, buf, sizeof(buf), &len, &x) && x) {
            return p;
        }
        free(p);
    }
    return NULL;
}

bool cmd_run_command_elf(const oci_lview *v, const char *cmd, const char *path_var, const char *cwd,
                         char *ret_path, size_t n, oci_elf_info *ret)
{
    _cleanup_free_ char *p = find_command(v, cmd, path_var, cwd);
    /* A script once: the kernel executes its interpreter. */
    for (int depth = 0; p && depth < 2; depth++) {
        unsigned char buf[4096];
        size_t len = 0;
        bool x;
        if (!read_head(v, p, buf, sizeof(buf) - 1, &len, &x)) {
            return false;
        }
        if (len > 2 && buf[0] == '#' && buf[1] == '!') {
            buf[len] = '\0';
            char *s = (char *)buf + 2;
            s += strspn(s, " \t");
            s[strcspn(s, " \t\r\n")] = '\0';
            free(p);
            p = *s == '/' ? mar_xstrdup(s) : NULL;
            continue;
        }
        oci_elf_parse(buf, len, ret);
        mar_strlcpy(ret_path, p, n);
        return ret->is_elf && ret->arch[0];
    }
    return false;
}
