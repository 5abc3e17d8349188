/* mar build: options in, the executor of builder/ run, its steps and RUN output printed
 * (docs/mar-build.1.md, docs/internals/build.md). */
#include "cli-internal.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#define DEFAULT_ADDRESS "/run/containerd/containerd.sock"
#define DEFAULT_NS      "mar"

typedef struct build_ui {
    const cmd_args *args;
    reg_store *s;
    bool quiet;
} build_ui;

MAR_MUST_USE static int hook_image(void *ud, const char *ref, const oci_platform *p,
                                   reg_store_image *ret, mar_err **err)
{
    build_ui *ui = ud;
    oci_ref r;
    if (oci_ref_parse(ref, &r, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_free_ char *refname = oci_ref_string(&r);
    oci_ref_release(&r);
    oci_matcher m;
    oci_matcher_only(&m, p);
    return cmd_stored_or_pull(ui->args, ui->s, ref, refname, &m, p, 1, true, ret, err);
}

static void hook_output(void *ud, const char *prefix, const char *line)
{
    (void)ud;
    _cleanup_free_ char *esc = mar_str_escape(line);
    fprintf(stderr, "%s %s\n", prefix, esc);
}

static void hook_step(void *ud, const char *prefix, const char *text)
{
    build_ui *ui = ud;
    if (!ui->quiet) {
        _cleanup_free_ char *esc = mar_str_escape(text);
        fprintf(stderr, "%s %s\n", prefix, esc);
    }
}

/* The host's target for the plan: the command's own --target is a stage, not a machine. */
MAR_MUST_USE static int host_target(const cmd_args *args, const oci_host *host, vm_target *ret,
                                    mar_err **err)
{
    cmd_args copy = *args;
    for (size_t i = 0; i < copy.n_opts; i++) {
        if (strcmp(copy.opts[i]->name, "target") == 0) {
            copy.value[i] = NULL;
        }
    }
    return cmd_target(&copy, host, ret, err);
}

MAR_MUST_USE static int read_dockerfile(const cmd_def *def, const char *context, const char *file,
                                        mar_buf *ret, char **ret_name, mar_err **err)
{
    if (file && strcmp(file, "-") == 0) {
        *ret_name = "Dockerfile";
        return mar_read_file_at(AT_FDCWD, "/dev/stdin", BLD_CAP_DOCKERFILE, ret, err);
    }
    _cleanup_free_ char *dflt = NULL;
    if (!file) {
        dflt = mar_xasprintf("%s/Dockerfile", context);
        struct stat st;
        if (stat(dflt, &st) < 0) {
            _cleanup_free_ char *alt = mar_xasprintf("%s/Containerfile", context);
            if (stat(alt, &st) == 0) {
                free(dflt);
                dflt = TAKE_PTR(alt);
            }
        }
        file = dflt;
    }
    const char *slash = strrchr(file, '/');
    *ret_name = mar_xstrdup(slash ? slash + 1 : file);
    (void)def;
    return mar_read_file_at(AT_FDCWD, file, BLD_CAP_DOCKERFILE, ret, err);
}

typedef struct build_output {
    bool tar;
    const char *dest;
    char *copy;
} build_output;

/* --output type=oci-layout,dest=DIR | type=oci,dest=FILE (buildx's spelling). */
static int parse_output(const cmd_def *def, const char *spec, build_output *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->copy = mar_xstrdup(spec);
    const char *type = NULL;
    for (char *f = ret->copy, *next; f; f = next) {
        next = strchr(f, ',');
        if (next) {
            *next++ = '\0';
        }
        if (mar_str_startswith(f, "type=")) {
            type = f + 5;
        } else if (mar_str_startswith(f, "dest=")) {
            ret->dest = f + 5;
        } else {
            return cmd_usage_error(def, "--output '%s': unknown field '%s'", spec, f);
        }
    }
    if (!type || (strcmp(type, "oci-layout") && strcmp(type, "oci"))) {
        return cmd_usage_error(def, "--output '%s': type is oci-layout or oci", spec);
    }
    if (!ret->dest || !*ret->dest) {
        return cmd_usage_error(def, "--output '%s': dest= is required", spec);
    }
    ret->tar = strcmp(type, "oci") == 0;
    /* Refused now rather than after the build. */
    _cleanup_free_ char *idx = mar_xasprintf("%s/index.json", ret->dest);
    struct stat st;
    if (!ret->tar && lstat(idx, &st) == 0) {
        return cmd_usage_error(def, "--output: '%s' already holds an image layout", ret->dest);
    }
    return 0;
}

/* --secret id=ID,src=FILE | id=ID,env=VAR (buildx's spelling; src= also as source=). The value
 * of env= is read here, the file when the step runs. */
static int parse_secrets(const cmd_def *def, const cmd_args *args, bld_secret **ret, size_t *ret_n,
                         mar_strv *keep)
{
    const mar_strv *l = cmd_list(args, "secret");
    size_t n = l ? l->n : 0;
    bld_secret *v = mar_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        char *copy = mar_xstrdup(l->v[i]);
        mar_strv_push_take(keep, copy);
        const char *env = NULL;
        for (char *f = copy, *next; f; f = next) {
            next = strchr(f, ',');
            if (next) {
                *next++ = '\0';
            }
            if (mar_str_startswith(f, "id=")) {
                v[i].id = f + 3;
            } else if (mar_str_startswith(f, "src=")) {
                v[i].path = f + 4;
            } else if (mar_str_startswith(f, "source=")) {
                v[i].path = f + 7;
            } else if (mar_str_startswith(f, "env=")) {
                env = f + 4;
            } else {
                free(v);
                return cmd_usage_error(def, "--secret: unknown field '%s'", f);
            }
        }
        if (!v[i].id || !*v[i].id || (!v[i].path && !env) || (v[i].path && env)) {
            free(v);
            return cmd_usage_error(def, "--secret is id=ID,src=FILE or id=ID,env=VAR");
        }
        if (env) {
            v[i].value = getenv(env);
            if (!v[i].value) {
                int rc = cmd_usage_error(def, "--secret %s: $%s is not set", v[i].id, env);
                free(v);
                return rc;
            }
        }
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

/* --push: the tagged result, through the push engine as `mar push NAME` sends it. */
static int push_result(const cmd_args *args, reg_store *s, const char *name, const char *stored,
                       bool by_digest, bool quiet, mar_digest *ret_digest, mar_err **err)
{
    oci_ref dst;
    if (oci_ref_parse(name, &dst, err) < 0) {
        return -mar_err_code(*err);
    }
    if (by_digest) {
        free(TAKE_PTR(dst.tag)); /* untagged: the registry names it by its digest only */
    }
    int jobs;
    _cleanup_client_ reg_client *c = NULL;
    if (cmd_jobs(args, 4, &jobs, err) < 0 || cmd_registry_client(args, 0, &c, err) < 0) {
        oci_ref_release(&dst);
        return -mar_err_code(*err);
    }
    cmd_push_progress *pr = cmd_push_progress_new(quiet);
    reg_push_opts o = {.dst = &dst, .jobs = jobs, .progress = cmd_progress_push, .progress_ud = pr};
    _cleanup_push_ reg_push *p = reg_push_new(c, &o);
    oci_ref_release(&dst);
    reg_push_plan pl;
    int rc = reg_push_add_stored(p, s, stored, NULL, 0, &pl, err);
    reg_push_result r;
    memset(&r, 0, sizeof(r));
    if (rc == 0) {
        rc = reg_push_run(p, &r, err);
        reg_push_plan_release(&pl);
    }
    cmd_push_progress_free(pr);
    if (rc == 0 && !quiet && !by_digest) {
        mar_diag_notice("pushed %s@%s", name, r.digest.str);
    }
    if (rc == 0) {
        *ret_digest = r.digest;
        reg_push_result_release(&r);
    }
    return rc < 0 ? -mar_err_code(*err) : 0;
}

static const char *base_word(bld_base_kind k)
{
    return k == BLD_BASE_STAGE ? "stage" : k == BLD_BASE_SCRATCH ? "scratch" : "image";
}

/* --explain: the plan, text or JSON, for this host or the --build-machine. Exit 0 when every RUN
 * step can execute on that machine, 7 when some cannot (as mar run --explain). */
static int explain(const cmd_args *args, const bld_opts *o)
{
    mar_err *err = NULL;
    bld_plan pl;
    if (bld_explain(o, &pl, &err) < 0) {
        return cmd_fail(err);
    }
    if (cmd_flag(args, "json")) {
        json_t *stages = json_array();
        for (size_t i = 0; i < pl.n; i++) {
            const bld_plan_stage *p = &pl.v[i];
            char label[64];
            vm_verdict_label(&p->verdict, label, sizeof(label));
            json_t *st = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:s}", "target", p->target,
                                   "stage", p->stage, "baseKind", base_word(p->base_kind), "base",
                                   p->base, "platform", p->platform, "buildPlatform",
                                   p->build_platform, "runSteps", (json_int_t)p->n_run, "executes",
                                   p->n_run ? vm_run_mode_name(p->verdict.mode) : "nothing");
            if (p->n_run && p->verdict.emu != VM_EMU_NONE && vm_emulator_name(p->verdict.emu)) {
                json_object_set_new(st, "emulator", json_string(vm_emulator_name(p->verdict.emu)));
            }
            if (p->n_run && p->verdict.reason[0]) {
                json_object_set_new(st, "reason", json_string(p->verdict.reason));
            }
            if (p->n_run && p->verdict.fix[0]) {
                json_object_set_new(st, "fix", json_string(p->verdict.fix));
            }
            if (p->advice) {
                json_object_set_new(st, "advice", json_string(p->advice));
            }
            json_array_append_new(stages, st);
        }
        json_t *doc = json_pack("{s:s, s:s, s:o, s:I, s:I}", "machine", pl.machine,
                                "machinePlatform", pl.build_platform, "stages", stages,
                                "emulatedRunSteps", (json_int_t)pl.n_emulated, "unavailableStages",
                                (json_int_t)pl.n_unavailable);
        if (o->vm->macos_major) {
            json_object_set_new(doc, "macos", json_integer(o->vm->macos_major));
        }
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else {
        if (!o->vm->is_host) {
            char mac[32] = "";
            if (o->vm->macos_major && !strstr(pl.machine, ":macos")) {
                snprintf(mac, sizeof(mac), " (macOS %d)", o->vm->macos_major);
            }
            printf("machine: %s%s, native %s ($BUILDPLATFORM, as BuildKit there sets it)\n",
                   cmd_esc(pl.machine), mac, pl.build_platform);
        }
        printf("%-16s %-16s %-16s %4s  %s\n", "TARGET", "STAGE", "RUNS AS", "RUN", "EXECUTES");
        for (size_t i = 0; i < pl.n; i++) {
            const bld_plan_stage *p = &pl.v[i];
            char label[64];
            if (p->n_run) {
                vm_verdict_label(&p->verdict, label, sizeof(label));
            } else {
                snprintf(label, sizeof(label), "nothing to run");
            }
            printf("%-16s %-16s %-16s %4zu  %s (FROM %s%s)\n", p->target, cmd_esc(p->stage),
                   p->platform, p->n_run, label, cmd_esc(p->base),
                   p->build_platform ? ", --platform=$BUILDPLATFORM" : "");
            if (p->n_run && p->verdict.reason[0]) {
                printf("    why: %s\n", cmd_esc(p->verdict.reason));
            }
            if (p->n_run && p->verdict.fix[0]) {
                printf("    fix: %s\n", p->verdict.fix);
            }
        }
        printf("%zu RUN step%s would run emulated\n", pl.n_emulated, pl.n_emulated == 1 ? "" : "s");
        for (size_t i = 0; i < pl.n; i++) {
            if (pl.v[i].advice) {
                printf("advice: %s\n", cmd_esc(pl.v[i].advice));
            }
        }
    }
    int rc = pl.n_unavailable ? MAR_EUNSUPPORTED : 0;
    bld_plan_release(&pl);
    return rc;
}

int cmd_build(const cmd_def *def, cmd_args *args)
{
    mar_err *err = NULL;
    const char *context = args->pos.v[0];
    const char *name = cmd_value(args, "tag");
    bool explaining = cmd_flag(args, "explain");
    if (!name && !explaining) {
        return cmd_usage_error(def, "-t NAME[:TAG] is required");
    }
    if (cmd_flag(args, "json") && !explaining) {
        return cmd_usage_error(def, "--json goes with --explain");
    }
    /* The machine that builds, for the plan only: the command's own --target is a stage
     * (docker build's meaning), so the machine has an option of its own. */
    const char *machine = cmd_value(args, "build-machine");
    if (machine && !explaining) {
        return cmd_usage_error(def, "--build-machine goes with --explain");
    }
    struct stat cst;
    if (stat(context, &cst) < 0 || !S_ISDIR(cst.st_mode)) {
        return cmd_usage_error(def, "the context '%s' is not a directory", context);
    }
    oci_ref ref;
    if (oci_ref_parse(name ? name : "mar-explain", &ref, &err) < 0) {
        return cmd_fail(err);
    }
    _cleanup_free_ char *refname = oci_ref_string(&ref);
    oci_ref_release(&ref);
    bool has_epoch = false;
    int64_t epoch = 0;
    const char *sde = cmd_value(args, "source-date-epoch");
    if (!sde) {
        sde = getenv("SOURCE_DATE_EPOCH");
    }
    if (sde && *sde) {
        if (!mar_parse_i64(sde, 0, INT64_C(253402300799), &epoch)) {
            return cmd_usage_error(def, "bad source date epoch '%s' (seconds since 1970)", sde);
        }
        has_epoch = true;
    }
    const char *comp = cmd_value(args, "compression");
    if (comp && strcmp(comp, "gzip") && strcmp(comp, "zstd")) {
        return cmd_usage_error(def, "bad compression '%s' (gzip or zstd)", comp);
    }
    _cleanup_(vm_security_release) vm_security sec;
    if (cmd_run_security(args, &sec, &err) < 0) {
        return cmd_fail(err);
    }
    oci_host host;
    oci_host_detect(&host);
    /* Platforms are read, and default, as on the machine that builds: `--platform linux` and no
     * --platform at all mean its architecture, as for BuildKit running there. */
    vm_target target;
    oci_host builder = host;
    if (machine) {
        if (vm_target_parse(machine, &host.platform, &target, &err) < 0) {
            return cmd_fail(err);
        }
        builder.platform = target.platform;
    }
    _cleanup_free_ oci_platform *platforms = NULL;
    size_t n_platforms = 0;
    if (cmd_parse_platforms(args, &builder, &platforms, &n_platforms, &err) < 0) {
        return cmd_fail(err);
    }
    if (n_platforms == 0) {
        platforms = mar_xcalloc(1, sizeof(*platforms));
        platforms[0] = builder.platform;
        n_platforms = 1;
    }
    _cleanup_buf_ mar_buf text = MAR_BUF_INIT(BLD_CAP_DOCKERFILE);
    _cleanup_free_ char *dfname = NULL;
    if (read_dockerfile(def, context, cmd_value(args, "file"), &text, &dfname, &err) < 0) {
        return cmd_fail(err);
    }
    if (!machine) {
        if (host_target(args, &host, &target, &err) < 0) {
            return cmd_fail(err);
        }
        target.amd64_level = host.amd64_level;
    }
    const mar_strv *bargs = cmd_list(args, "build-arg");
    if (explaining) {
        bld_opts eo = {
                .context = context,
                .dockerfile_name = dfname,
                .dockerfile_text = text.data,
                .dockerfile_len = text.len,
                .platforms = platforms,
                .n_platforms = n_platforms,
                .build_args = bargs ? (const char *const *)bargs->v : NULL,
                .n_build_args = bargs ? bargs->n : 0,
                .target = cmd_value(args, "target"),
                .vm = &target,
                .host = &host,
        };
        return explain(args, &eo);
    }
    if (geteuid() != 0) {
        /* Overlay mounts, containerd's runc and 0/0 character-device whiteouts need root. */
        fprintf(stderr, "mar: mar build needs root (RUN steps run through containerd on overlay "
                        "mounts; --explain does not)\n");
        return MAR_EUNSUPPORTED;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    _cleanup_close_ int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    _cleanup_store_ reg_store *s = NULL;
    if (cmd_open_store(args, &s, &err) < 0 || reg_store_hold(s, false, true, &err) < 0) {
        return cmd_fail(err);
    }
    const char *address = cmd_value(args, "address");
    if (!address) {
        address = getenv("CONTAINERD_ADDRESS");
    }
    const char *ns = cmd_value(args, "namespace");
    if (!ns) {
        ns = getenv("CONTAINERD_NAMESPACE");
    }
    _cleanup_strv_ mar_strv secret_text = MAR_STRV_INIT;
    _cleanup_free_ bld_secret *secrets = NULL;
    size_t n_secrets = 0;
    int src = parse_secrets(def, args, &secrets, &n_secrets, &secret_text);
    if (src) {
        return src;
    }
    build_ui ui = {.args = args, .s = s, .quiet = cmd_flag(args, "quiet")};
    /* -j also bounds the stages built at once over all platforms; without it, every stage
     * whose stages are built starts. */
    int jobs = 0;
    if (cmd_value(args, "jobs") && cmd_jobs(args, 0, &jobs, &err) < 0) {
        return cmd_fail(err);
    }
    bld_opts o = {
            .context = context,
            .dockerfile_name = dfname,
            .dockerfile_text = text.data,
            .dockerfile_len = text.len,
            .platforms = platforms,
            .n_platforms = n_platforms,
            .build_args = bargs ? (const char *const *)bargs->v : NULL,
            .n_build_args = bargs ? bargs->n : 0,
            .target = cmd_value(args, "target"),
            .name = refname,
            .store = s,
            .vm = &target,
            .host = &host,
            .security = &sec,
            .ctd_address = address && *address ? address : DEFAULT_ADDRESS,
            .ctd_namespace = ns && *ns ? ns : DEFAULT_NS,
            .sigfd = sigfd,
            .secrets = secrets,
            .n_secrets = n_secrets,
            .allow_mislabeled = cmd_flag(args, "allow-mislabeled"),
            .no_cache = cmd_flag(args, "no-cache"),
            .zstd = comp && strcmp(comp, "zstd") == 0,
            .has_epoch = has_epoch,
            .epoch = epoch,
            .jobs = (unsigned)jobs,
            .hooks = {.image = hook_image, .output = hook_output, .step = hook_step, .ud = &ui},
    };
    const mar_strv *outs = cmd_list(args, "output");
    size_t n_outs = outs ? outs->n : 0;
    build_output *outputs = mar_xcalloc(n_outs + 1, sizeof(*outputs));
    int orc = 0;
    for (size_t i = 0; i < n_outs && orc == 0; i++) {
        orc = parse_output(def, outs->v[i], &outputs[i]);
    }
    if (orc) {
        for (size_t i = 0; i < n_outs; i++) {
            free(outputs[i].copy);
        }
        free(outputs);
        return orc;
    }
    bld_result r;
    int rc = bld_build(&o, &r, &err);
    for (size_t i = 0; rc == 0 && i < n_outs; i++) {
        rc = outputs[i].tar
                     ? bld_output_tar(s, refname, &r.index, r.index_size, epoch, outputs[i].dest,
                                      &err)
                     : bld_output_layout(s, refname, &r.index, r.index_size, outputs[i].dest, &err);
        if (rc == 0 && !ui.quiet) {
            mar_diag_notice("wrote %s", outputs[i].dest);
        }
    }
    for (size_t i = 0; i < n_outs; i++) {
        free(outputs[i].copy);
    }
    free(outputs);
    mar_digest pushed;
    if (rc == 0 && cmd_flag(args, "push")) {
        rc = push_result(args, s, refname, refname, false, ui.quiet, &pushed, &err);
    }
    /* --push-by-digest: each platform's manifest untagged, for a later `mar index create`. */
    for (size_t i = 0; rc == 0 && cmd_flag(args, "push-by-digest") && i < r.n; i++) {
        char ps[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&r.platforms[i], ps, sizeof(ps));
        _cleanup_free_ char *stored = mar_xasprintf("%s@%s", refname, ps);
        rc = push_result(args, s, refname, stored, true, ui.quiet, &pushed, &err);
        if (rc == 0) {
            _cleanup_free_ char *repo = NULL;
            oci_ref pref;
            if (oci_ref_parse(refname, &pref, &err) == 0) {
                repo = oci_ref_repo(&pref);
                oci_ref_release(&pref);
                printf("%s@%s %s\n", repo, pushed.str, ps);
            } else {
                rc = -mar_err_code(err);
            }
        }
    }
    if (rc < 0) {
        bld_result_release(&r);
        return cmd_fail(err);
    }
    if (!ui.quiet) {
        for (size_t i = 0; i < r.n; i++) {
            char ps[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&platforms[i], ps, sizeof(ps));
            fprintf(stderr, "%s %s\n", ps, r.manifests[i].str);
        }
    }
    printf("%s %s\n", refname, r.index.str);
    bld_result_release(&r);
    return 0;
}
