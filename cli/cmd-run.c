/* mar run: plan how an image's platform executes here, then run it through containerd
 * (docs/mar-run.1.md). The root filesystem is an overlay mount of the layers mar pull unpacked
 * (lowerdir, top first) and a fresh upper directory under <store>/containers/<id>; containerd's
 * shim mounts it, runc runs the spec mar writes. Whatever happens after the first object is
 * created — a failure, a signal to mar — the task, the container and the directory go again,
 * unless --keep. */
#include "cli-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#define DEFAULT_ADDRESS "/run/containerd/containerd.sock"
#define DEFAULT_NS      "mar"
#define DEFAULT_PATH    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

typedef struct run_state {
    reg_store *s;
    char *id;
    char *dir; /* <store>/containers/<id> */
    vm_ctd *c;
    bool container_created;
    bool task_created;
    bool keep;
    const vm_security *sec;
    const oci_host *host;
    const vm_target *target;
    const cmd_run_choice *choice;
    const char *refname;
} run_state;

/* containerd identifiers (identifiers/validate.go): [A-Za-z0-9] then [A-Za-z0-9_.-], at most
 * 76 characters. */
static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 76 ||
        !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
          (s[0] >= '0' && s[0] <= '9'))) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-')) {
            return false;
        }
    }
    return true;
}

static void teardown(run_state *st)
{
    if (st->keep) {
        if (st->container_created) {
            fprintf(stderr, "mar: kept container '%s' (its upper directory is in '%s')\n", st->id,
                    st->dir);
        }
        return;
    }
    mar_err *e = NULL;
    if (st->task_created) {
        uint32_t status;
        if (vm_ctd_task_delete(st->c, st->id, &status, &e) < 0) {
            /* Still running (mar was interrupted before it ended): kill, wait, delete. */
            mar_err_free(TAKE_PTR(e));
            /* A failure of either shows in the delete below, which is what matters. */
            if (vm_ctd_task_kill(st->c, st->id, SIGKILL, true, &e) < 0) {
                mar_debug("kill of '%s': %s", st->id, e->msg);
            }
            mar_err_free(TAKE_PTR(e));
            if (vm_ctd_task_wait(st->c, st->id, &status, &e) < 0) {
                mar_debug("wait for '%s': %s", st->id, e->msg);
            }
            mar_err_free(TAKE_PTR(e));
            if (vm_ctd_task_delete(st->c, st->id, &status, &e) < 0) {
                mar_diag_warn("cannot delete the task of '%s': %s", st->id, e->msg);
                mar_err_free(TAKE_PTR(e));
            }
        }
    }
    if (st->container_created && vm_ctd_container_delete(st->c, st->id, &e) < 0) {
        mar_diag_warn("cannot delete container '%s': %s", st->id, e->msg);
        mar_err_free(TAKE_PTR(e));
    }
    if (st->dir) {
        _cleanup_close_ int cfd =
                openat(reg_store_dirfd(st->s), "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cfd >= 0 && oci_remove_at(cfd, st->id, &e) < 0) {
            mar_diag_warn("cannot remove '%s': %s", st->dir, e->msg);
            mar_err_free(TAKE_PTR(e));
        }
    }
}

/* A signal that arrived during setup aborts it (the objects made so far are removed). */
MAR_MUST_USE static int interrupted(int sigfd, mar_err **err)
{
    struct signalfd_siginfo si;
    if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo != SIGWINCH) {
        return mar_err_set(err, MAR_EFAIL, 0, "interrupted by signal %u", si.ssi_signo);
    }
    return 0;
}

static void add_env(mar_strv *env, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t kl = eq ? (size_t)(eq - kv) : strlen(kv);
    for (size_t i = 0; i < env->n; i++) {
        if (strncmp(env->v[i], kv, kl) == 0 && env->v[i][kl] == '=') {
            free(env->v[i]);
            env->v[i] = mar_xstrdup(kv);
            return;
        }
    }
    mar_strv_push(env, kv);
}

static bool has_env(const mar_strv *env, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < env->n; i++) {
        if (strncmp(env->v[i], key, kl) == 0 && env->v[i][kl] == '=') {
            return true;
        }
    }
    return false;
}

/* An --env-file names a file on this machine: one that is missing, a directory or a FIFO is a
 * bad command line (2), not a store or registry failure. */
MAR_MUST_USE static int read_env_file(const char *path, mar_buf *ret, mar_err **err)
{
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, path, 1 << 20, ret, &e) < 0) {
        int rc = mar_err_set(err, MAR_EUSAGE, 0, "--env-file: %s", e->msg);
        mar_err_free(e);
        return rc;
    }
    return 0;
}

/* -e K=V sets, -e K copies mar's own value (as docker does); --env-file lines likewise, with
 * comments and blank lines skipped. */
MAR_MUST_USE static int build_env(const cmd_args *args, const oci_config *cfg, const vm_user *u,
                                  mar_strv *ret, mar_err **err)
{
    for (size_t i = 0; i < cfg->env.n; i++) {
        add_env(ret, cfg->env.v[i]);
    }
    if (!has_env(ret, "PATH")) {
        add_env(ret, DEFAULT_PATH);
    }
    const mar_strv *files = cmd_list(args, "env-file");
    mar_strv from = MAR_STRV_INIT;
    for (size_t f = 0; files && f < files->n; f++) {
        mar_buf b = MAR_BUF_INIT(1 << 20);
        if (read_env_file(files->v[f], &b, err) < 0) {
            mar_strv_release(&from);
            return -MAR_EUSAGE;
        }
        for (char *l = b.data, *next; l && *l; l = next) {
            next = strchr(l, '\n');
            if (next) {
                *next++ = '\0';
            }
            if (*l && *l != '#') {
                mar_strv_push(&from, l);
            }
        }
        mar_buf_release(&b);
    }
    const mar_strv *e = cmd_list(args, "env");
    for (size_t i = 0; e && i < e->n; i++) {
        mar_strv_push(&from, e->v[i]);
    }
    for (size_t i = 0; i < from.n; i++) {
        const char *kv = from.v[i];
        if (strchr(kv, '=')) {
            add_env(ret, kv);
        } else if (getenv(kv)) {
            _cleanup_free_ char *copy = mar_xasprintf("%s=%s", kv, getenv(kv));
            add_env(ret, copy);
        }
    }
    mar_strv_release(&from);
    if (!has_env(ret, "HOME")) {
        _cleanup_free_ char *home = mar_xasprintf("HOME=%s", u->home);
        add_env(ret, home);
    }
    return 0;
}

/* -v HOST:CTR[:ro]: the host path must exist (made absolute), the container path be absolute. */
MAR_MUST_USE static int build_binds(const cmd_args *args, vm_bind **ret, size_t *ret_n,
                                    mar_err **err)
{
    const mar_strv *v = cmd_list(args, "volume");
    size_t n = v ? v->n : 0;
    /* Room for /etc/resolv.conf, /etc/hosts and /etc/hostname. */
    vm_bind *b = mar_xcalloc(n + 3, sizeof(*b));
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *copy = mar_xstrdup(v->v[i]);
        char *dst = strchr(copy, ':');
        char *mode = dst ? strchr(dst + 1, ':') : NULL;
        if (dst) {
            *dst++ = '\0';
        }
        if (mode) {
            *mode++ = '\0';
        }
        char *real = dst ? realpath(copy, NULL) : NULL;
        if (!dst || !*dst || (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0) ||
            !real) {
            free(real);
            for (size_t k = 0; k < i; k++) {
                free(b[k].source);
                free(b[k].dest);
            }
            free(b);
            return mar_err_set(err, MAR_EUSAGE, errno,
                               "bad --volume '%s' (HOST:CONTAINER[:ro], HOST must exist)", v->v[i]);
        }
        b[i] = (vm_bind){
                .source = real, .dest = mar_xstrdup(dst), .readonly = mode && !strcmp(mode, "ro")};
    }
    *ret = b;
    *ret_n = n;
    return 0;
}

static void free_binds(vm_bind *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].source);
        free(b[i].dest);
    }
    free(b);
}

/* The cap on the image's /etc/passwd and /etc/group (docs/mar-run.1.md USERS). */
#define USER_DB_CAP (1u << 20)

/* One of the image's user files, read through the merged view of its layers (in-root,
 * no-follow, capped, no FIFO hang: CVE-2024-9676). A missing file is fine; one over the cap is
 * not read, and the caller says so when a name could not be found in it. */
static bool read_user_file(const oci_lview *v, const char *path, mar_buf *ret)
{
    mar_err *e = NULL;
    if (oci_lview_read(v, path, USER_DB_CAP, ret, &e) < 0) {
        bool over = mar_err_code(e) == MAR_EINTEGRITY && strstr(e->msg, "larger than");
        if (over) {
            mar_diag_warn("the image's /%s is larger than %u KiB, the cap: it is not read", path,
                          USER_DB_CAP >> 10);
        } else {
            mar_debug("no usable /%s in the image: %s", path, e->msg);
        }
        mar_err_free(e);
        return over;
    }
    return false;
}

static void random_id(char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char r[13];
    for (size_t i = 0; i < 12; i++) {
        r[i] = hex[mar_random_below(16)];
    }
    r[12] = '\0';
    snprintf(buf, n, "mar-%s", r);
}

/* The command: --entrypoint replaces the image's ENTRYPOINT and drops its CMD (docker's rule);
 * arguments after IMAGE replace CMD. */
static void build_args(const cmd_args *args, const oci_config *cfg, mar_strv *av)
{
    const char *ep = cmd_value(args, "entrypoint");
    if (ep) {
        if (*ep) {
            mar_strv_push(av, ep);
        }
    } else {
        for (size_t i = 0; i < cfg->entrypoint.n; i++) {
            mar_strv_push(av, cfg->entrypoint.v[i]);
        }
    }
    if (args->pos.n > 1) {
        for (size_t i = 1; i < args->pos.n; i++) {
            mar_strv_push(av, args->pos.v[i]);
        }
    } else if (!ep) {
        for (size_t i = 0; i < cfg->cmd.n; i++) {
            mar_strv_push(av, cfg->cmd.v[i]);
        }
    }
}

/* Opens the image's layer directories, top first; returns how many the mount uses. */
MAR_MUST_USE static int open_layers(reg_store *s, const reg_store_image *im, int *fds,
                                    mar_strv *paths, mar_err **err)
{
    size_t n = im->manifest->n_layers;
    for (size_t i = 0; i < n; i++) {
        /* Top first, as overlayfs and the merged view want them. */
        char *p = reg_store_layer_path(s, &im->chains[n - 1 - i]);
        fds[i] = open(p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fds[i] < 0) {
            int e = errno;
            for (size_t k = 0; k < i; k++) {
                close(fds[k]);
            }
            mar_err_set(err, MAR_EIO, e, "cannot open the unpacked layer '%s'", p);
            free(p);
            return -MAR_EIO;
        }
        mar_strv_push_take(paths, p);
        /* Layers under one whose root is opaque are hidden: not mounted at all. */
        if (oci_lview_opaque_root(fds[i])) {
            return (int)(i + 1);
        }
    }
    return (int)n;
}

MAR_MUST_USE static int make_dirs(run_state *st, const reg_store_image *im, mar_err **err)
{
    int sfd = reg_store_dirfd(st->s);
    if (mkdirat(sfd, "containers", 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/containers'",
                           reg_store_path(st->s));
    }
    _cleanup_free_ char *rel = mar_xasprintf("containers/%s", st->id);
    if (mkdirat(sfd, rel, 0700) < 0) {
        return mar_err_set(err, errno == EEXIST ? MAR_EUSAGE : MAR_EIO, errno,
                           "cannot create '%s/%s'%s", reg_store_path(st->s), rel,
                           errno == EEXIST ? ": a container of that name exists" : "");
    }
    st->dir = mar_xasprintf("%s/%s", reg_store_path(st->s), rel);
    static const struct {
        const char *name;
        mode_t mode;
    } sub[] = {{"upper", 0755}, {"work", 0700}, {"io", 0700}};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(sub); i++) {
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", rel, sub[i].name);
        if (mkdirat(sfd, p, sub[i].mode) < 0 || fchmodat(sfd, p, sub[i].mode, 0) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/%s'", reg_store_path(st->s),
                               p);
        }
    }
    /* The layers the container uses, so that mar gc keeps them while it exists. */
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < im->manifest->n_layers; i++) {
        mar_buf_xprintf(&b, "%s\n", mar_digest_hex(&im->chains[i]));
    }
    _cleanup_free_ char *lp = mar_xasprintf("%s/layers", rel);
    _cleanup_close_ int fd = openat(sfd, lp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len;
    mar_buf_release(&b);
    if (!ok) {
        return mar_err_set(err, MAR_EIO, errno, "cannot write '%s/%s'", reg_store_path(st->s), lp);
    }
    return 0;
}

/* Names a line of an /etc/hosts text gives (after the address), up to a comment. */
static bool hosts_has(const char *text, const char *name)
{
    size_t nl = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        size_t len = strcspn(l, "#\n");
        const char *p = l + strcspn(l, " \t#\n"); /* past the address */
        while (p < l + len) {
            p += strspn(p, " \t");
            size_t w = strcspn(p, " \t#\n");
            if (w == nl && strncmp(p, name, nl) == 0) {
                return true;
            }
            p += w;
            if (!w) {
                break;
            }
        }
    }
    return false;
}

/* The container's own /etc/hosts and /etc/hostname, as docker gives them: with --network none,
 * docker's loopback table; with the host's network, a copy of the host's /etc/hosts. Either way
 * `localhost` and the container's hostname resolve (the hostname to 127.0.1.1, Debian's
 * convention, when the table lacks it). Written under the container's directory and bound
 * read-write, as docker binds its copies. */
MAR_MUST_USE static int net_files(run_state *st, bool host_net, const char *hostname,
                                  vm_bind *binds, size_t *n_binds, mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP); /* the host file is read under its own 1 MiB cap */
    if (host_net) {
        mar_err *e = NULL;
        if (mar_read_file_at(AT_FDCWD, "/etc/hosts", 1u << 20, &b, &e) < 0) {
            mar_debug("no host /etc/hosts to copy: %s", e->msg);
            mar_err_free(e);
        }
        if (b.len && b.data[b.len - 1] != '\n') {
            mar_buf_xputs(&b, "\n");
        }
    } else {
        mar_buf_xputs(&b, "127.0.0.1\tlocalhost\n"
                          "::1\tlocalhost ip6-localhost ip6-loopback\n"
                          "fe00::\tip6-localnet\n"
                          "ff00::\tip6-mcastprefix\n"
                          "ff02::1\tip6-allnodes\n"
                          "ff02::2\tip6-allrouters\n");
    }
    if (!hosts_has(b.data ? b.data : "", "localhost")) {
        mar_buf_xputs(&b, "127.0.0.1\tlocalhost\n");
    }
    if (!hosts_has(b.data ? b.data : "", hostname)) {
        mar_buf_xprintf(&b, "127.0.1.1\t%s\n", hostname);
    }
    _cleanup_free_ char *name_line = mar_xasprintf("%s\n", hostname);
    const struct {
        const char *file, *dest, *text;
        size_t len;
    } files[] = {{"hosts", "/etc/hosts", b.data, b.len},
                 {"hostname", "/etc/hostname", name_line, strlen(name_line)}};
    int sfd = reg_store_dirfd(st->s);
    for (size_t i = 0; i < MAR_ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *rel = mar_xasprintf("containers/%s/%s", st->id, files[i].file);
        _cleanup_close_ int fd =
                openat(sfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 || fchmod(fd, 0644) < 0 ||
            write(fd, files[i].text, files[i].len) != (ssize_t)files[i].len) {
            int e = errno;
            mar_buf_release(&b);
            return mar_err_set(err, MAR_EIO, e, "cannot write '%s/%s'", reg_store_path(st->s), rel);
        }
        binds[(*n_binds)++] = (vm_bind){.source = mar_xasprintf("%s/%s", st->dir, files[i].file),
                                        .dest = mar_xstrdup(files[i].dest)};
    }
    mar_buf_release(&b);
    return 0;
}

/* runc's "exec: ..." failures as docker reports them (daemon/start.go): a command that is not
 * there exits 127, one that cannot be executed 126, with runc's line; other failures are mar's
 * own (-1, the error kept). */
MAR_MUST_USE static int exec_failure(mar_err **err)
{
    const char *m = (*err)->msg;
    if (!strstr(m, "exec: ")) {
        return -1;
    }
    int status = strstr(m, "executable file not found") || strstr(m, "no such file or directory")
                         ? 127
                 : strstr(m, "permission denied") || strstr(m, "is a directory") ||
                                 strstr(m, "exec format error")
                         ? 126
                         : -1;
    if (status > 0) {
        cmd_fail(TAKE_PTR(*err));
    }
    return status;
}

/* The label says what the entry claims; the command's binary says what executes. When the two
 * disagree the binary wins, with a warning: an arm64-labeled entry of amd64 binaries runs
 * natively here, and the plan (and the notice) says so. Refused (7) before anything is created
 * when neither can run. */
MAR_MUST_USE static int what_executes(run_state *st, const oci_lview *lv, const mar_strv *av,
                                      const mar_strv *env, const char *cwd, mar_err **err)
{
    const cmd_run_choice *ch = st->choice;
    vm_verdict v = ch->verdict;
    oci_platform label, runs = ch->label;
    oci_platform_normalize(&ch->label, &label);
    const char *path = NULL;
    for (size_t i = 0; i < env->n; i++) {
        path = strncmp(env->v[i], "PATH=", 5) == 0 ? env->v[i] + 5 : path;
    }
    char file[1024];
    oci_elf_info elf;
    if (av->n && cmd_run_command_elf(lv, av->v[0], path, cwd, file, sizeof(file), &elf)) {
        oci_platform bin = {0};
        mar_strlcpy(bin.os, label.os, sizeof(bin.os));
        mar_strlcpy(bin.arch, elf.arch, sizeof(bin.arch));
        oci_platform_normalize(&bin, &bin);
        if (strcmp(bin.arch, label.arch) != 0) {
            runs = bin;
            vm_plan_platform(st->target, &runs, &v);
            if (v.mode == VM_RUN_EMULATED && strstr(v.reason, "lacks the F flag")) {
                v.mode = VM_RUN_UNAVAILABLE;
            }
            char ls[OCI_PLATFORM_STR_MAX], rs[OCI_PLATFORM_STR_MAX], how[64];
            oci_platform_format(&ch->label, ls, sizeof(ls));
            oci_platform_format(&runs, rs, sizeof(rs));
            if (v.mode == VM_RUN_NATIVE) {
                snprintf(how, sizeof(how), "natively");
            } else if (v.mode == VM_RUN_EMULATED) {
                snprintf(how, sizeof(how), "under %s", vm_emulator_name(v.emu));
            } else {
                snprintf(how, sizeof(how), "not at all");
            }
            mar_diag_warn(
                    "the %s entry of '%s' is labeled %s but its command %s is built for %s: it "
                    "runs as %s, %s here",
                    ls, st->refname, ls, file, bin.arch, rs, how);
        }
    }
    if (v.mode == VM_RUN_UNAVAILABLE) {
        return cmd_run_refuse(st->refname, &runs, &v, err);
    }
    if (v.uncertain) {
        char us[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&runs, us, sizeof(us));
        mar_diag_warn("%s %s %s", st->refname, us, v.reason);
    }
    if (v.mode == VM_RUN_EMULATED) {
        char rs[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&runs, rs, sizeof(rs));
        mar_diag_notice("running %s under %s", rs, vm_emulator_name(v.emu));
    }
    return 0;
}

MAR_MUST_USE static int run_container(const cmd_args *args, const reg_store_image *im,
                                      run_state *st, int sigfd, bool tty, bool interactive,
                                      bool host_net, mar_err **err)
{
    const oci_config *cfg = im->config;
    mar_strv av = MAR_STRV_INIT, env = MAR_STRV_INIT, layer_paths = MAR_STRV_INIT;
    size_t n = im->manifest->n_layers;
    int *fds = mar_xcalloc(n + 1, sizeof(*fds));
    vm_bind *binds = NULL;
    size_t n_binds = 0;
    _cleanup_free_ char *spec = NULL;
    vm_io io = VM_IO_INIT;
    vm_mount rootfs = {.type = "overlay", .source = "overlay", .options = MAR_STRV_INIT};
    mar_buf passwd = MAR_BUF_INIT(0), group = MAR_BUF_INIT(0);
    char *cgroup = NULL, *iodir = NULL, *version = NULL;
    int rc = -1;

    build_args(args, cfg, &av);
    int n_open = open_layers(st->s, im, fds, &layer_paths, err);
    if (n_open < 0) {
        free(fds);
        fds = NULL;
        goto out;
    }
    n = (size_t)n_open;
    oci_lview lv = {.fds = fds, .n = n};
    bool passwd_over = read_user_file(&lv, "etc/passwd", &passwd);
    bool group_over = read_user_file(&lv, "etc/group", &group);
    const char *uspec = cmd_value(args, "user");
    vm_user u;
    if (vm_user_resolve(uspec ? uspec : cfg->user, passwd.len ? passwd.data : NULL,
                        group.len ? group.data : NULL, &u, err) < 0) {
        bool user = strstr((*err)->msg, "/etc/passwd") != NULL;
        if ((user && passwd_over) || (!user && group_over)) {
            mar_err_wrap(err, "the image's /etc/%s exceeds the %u KiB cap and was not read",
                         user ? "passwd" : "group", USER_DB_CAP >> 10);
        }
        goto out;
    }
    if (build_env(args, cfg, &u, &env, err) < 0 || build_binds(args, &binds, &n_binds, err) < 0) {
        goto out;
    }
    /* With the host's network, the host's resolver (read-only), as docker does with --network
     * host; /etc/hosts and /etc/hostname are the container's own (net_files). */
    char *resolv = host_net ? realpath("/etc/resolv.conf", NULL) : NULL;
    if (resolv) {
        binds[n_binds++] = (vm_bind){
                .source = resolv, .dest = mar_xstrdup("/etc/resolv.conf"), .readonly = true};
    }
    const char *cwd = cmd_value(args, "workdir");
    if (!cwd) {
        cwd = cfg->working_dir && *cfg->working_dir ? cfg->working_dir : "/";
    }
    if (what_executes(st, &lv, &av, &env, cwd, err) < 0) {
        goto out;
    }
    char idbuf[32];
    const char *name = cmd_value(args, "name");
    if (!name) {
        random_id(idbuf, sizeof(idbuf));
        name = idbuf;
    }
    st->id = mar_xstrdup(name);
    cgroup = mar_xasprintf("/%s/%s", DEFAULT_NS, st->id);
    /* docker run --network host: "the container's hostname will match the hostname on the host
     * system"; otherwise the container's name. */
    char hostname[256] = "";
    if (!host_net || gethostname(hostname, sizeof(hostname) - 1) < 0 || !hostname[0]) {
        mar_strlcpy(hostname, st->id, sizeof(hostname));
    }
    if (make_dirs(st, im, err) < 0 || net_files(st, host_net, hostname, binds, &n_binds, err) < 0) {
        goto out;
    }
    vm_spec_opts so = {
            .args = &av,
            .env = &env,
            .cwd = cwd,
            .uid = u.uid,
            .gid = u.gid,
            .gids = u.gids,
            .n_gids = u.n_gids,
            .terminal = tty,
            .hostname = hostname,
            .host_network = host_net,
            .binds = binds,
            .n_binds = n_binds,
            .cgroups_path = cgroup,
            .security = st->sec,
            .kernel_arch = st->host->machine,
            .kernel_release = st->host->kernel,
    };
    if (vm_spec_json(&so, &spec, err) < 0) {
        goto out;
    }
    iodir = mar_xasprintf("%s/io", st->dir);
    if (vm_io_fifos(iodir, interactive, tty, &io, err) < 0) {
        goto out;
    }
    const char *address = cmd_value(args, "address");
    if (!address) {
        address = getenv("CONTAINERD_ADDRESS");
    }
    const char *ns = cmd_value(args, "namespace");
    if (!ns) {
        ns = getenv("CONTAINERD_NAMESPACE");
    }
    if (vm_ctd_connect(address && *address ? address : DEFAULT_ADDRESS, ns && *ns ? ns : DEFAULT_NS,
                       &st->c, err) < 0) {
        goto out;
    }
    if (vm_ctd_version(st->c, &version, err) < 0) {
        mar_err_wrap(err, "is containerd running");
        goto out;
    }
    mar_debug("containerd %s", version);
    char ps[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&im->platform, ps, sizeof(ps));
    const char *labels[] = {"mar.image", im->name, "mar.platform", ps, NULL};
    if (interrupted(sigfd, err) < 0 ||
        vm_ctd_container_create(st->c, st->id, im->name, spec, labels, err) < 0) {
        goto out;
    }
    st->container_created = true;
    /* overlayfs: lowerdir top first (filesystems/overlayfs.rst "Multiple lower layers"). */
    mar_buf lower = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xputs(&lower, "lowerdir=");
    for (size_t i = 0; i < layer_paths.n; i++) {
        mar_buf_xprintf(&lower, "%s%s", i ? ":" : "", layer_paths.v[i]);
    }
    mar_strv_push_take(&rootfs.options, mar_buf_detach(&lower, NULL));
    mar_strv_push_take(&rootfs.options, mar_xasprintf("upperdir=%s/upper", st->dir));
    mar_strv_push_take(&rootfs.options, mar_xasprintf("workdir=%s/work", st->dir));
    vm_stdio stdio = {.stdin_path = io.in_path,
                      .stdout_path = io.out_path,
                      .stderr_path = io.err_path,
                      .terminal = tty};
    if (interrupted(sigfd, err) < 0) {
        goto out;
    }
    if (vm_ctd_task_create(st->c, st->id, &rootfs, 1, &stdio, NULL, err) < 0) {
        rc = exec_failure(err);
        goto out;
    }
    st->task_created = true;
    if (interrupted(sigfd, err) < 0) {
        goto out;
    }
    if (vm_ctd_task_start(st->c, st->id, NULL, err) < 0) {
        rc = exec_failure(err);
        goto out;
    }
    uint32_t status = 0;
    vm_attach at = {.sigfd = sigfd,
                    .stdin_open = interactive,
                    .in = STDIN_FILENO,
                    .out = STDOUT_FILENO,
                    .err = STDERR_FILENO};
    if (vm_ctd_attach(st->c, st->id, &io, &at, &status, err) < 0) {
        goto out;
    }
    rc = (int)(status > 255 ? 255 : status);
out:
    free(cgroup);
    free(iodir);
    free(version);
    vm_io_release(&io);
    for (size_t i = 0; fds && i < layer_paths.n; i++) {
        close(fds[i]);
    }
    free(fds);
    free_binds(binds, n_binds);
    mar_strv_release(&av);
    mar_strv_release(&env);
    mar_strv_release(&layer_paths);
    mar_strv_release(&rootfs.options);
    mar_buf_release(&passwd);
    mar_buf_release(&group);
    return rc;
}

int cmd_run(const cmd_def *def, cmd_args *args)
{
    mar_err *err = NULL;
    const char *driver, *instance;
    if (cmd_vm_driver(args, NULL, &driver, &instance, &err) < 0) {
        return cmd_fail(err);
    }
    if (strcmp(driver, "lima") == 0) {
        return cmd_vm_forward_run(args, instance);
    }
    if (cmd_flag(args, "explain")) {
        return cmd_run_explain(args);
    }
    const char *image = args->pos.v[0];
    bool tty = cmd_flag(args, "tty"), interactive = cmd_flag(args, "interactive");
    const char *network = cmd_value(args, "network");
    if (network && strcmp(network, "host") && strcmp(network, "none")) {
        return cmd_usage_error(def, "--network is 'host' or 'none', not '%s'", network);
    }
    const char *name = cmd_value(args, "name");
    if (name && !valid_id(name)) {
        return cmd_usage_error(def, "bad --name '%s' ([A-Za-z0-9][A-Za-z0-9_.-]*, at most 76)",
                               name);
    }
    _cleanup_(vm_security_release) vm_security sec;
    if (cmd_run_security(args, &sec, &err) < 0) {
        return cmd_fail(err);
    }
    const mar_strv *env_files = cmd_list(args, "env-file");
    for (size_t i = 0; env_files && i < env_files->n; i++) {
        _cleanup_buf_ mar_buf b = MAR_BUF_INIT(1 << 20);
        if (read_env_file(env_files->v[i], &b, &err) < 0) {
            int rc = cmd_usage_error(def, "%s", err->msg);
            mar_err_free(err);
            return rc;
        }
    }
    oci_host host;
    oci_host_detect(&host);
    _cleanup_free_ oci_platform *platforms = NULL;
    size_t n_platforms = 0;
    if (cmd_parse_platforms(args, &host, &platforms, &n_platforms, &err) < 0) {
        return cmd_fail(err);
    }
    if (n_platforms > 1) {
        return cmd_usage_error(def, "run takes one --platform");
    }
    oci_ref ref;
    if (oci_ref_parse(image, &ref, &err) < 0) {
        return cmd_fail(err);
    }
    _cleanup_free_ char *refname = oci_ref_string(&ref);
    oci_ref_release(&ref);

    /* Signals wait in a signalfd from here on: forwarded to the task once it runs, an orderly
     * abort before. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGWINCH);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    _cleanup_close_ int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    vm_target target;
    if (cmd_target(args, &host, &target, &err) < 0) {
        return cmd_fail(err);
    }
    target.amd64_level = host.amd64_level;
    _cleanup_store_ reg_store *s = NULL;
    if (cmd_open_store(args, &s, &err) < 0 || reg_store_hold(s, false, true, &err) < 0) {
        return cmd_fail(err);
    }
    /* The plan comes first: refused before any layer is pulled or anything created when this
     * host cannot run it. */
    cmd_run_choice ch;
    if (cmd_run_choose(args, s, image, refname, &target, n_platforms ? platforms : NULL, &ch,
                       &err) < 0) {
        return cmd_fail(err);
    }

    run_state st = {.s = s,
                    .keep = cmd_flag(args, "keep"),
                    .sec = &sec,
                    .host = &host,
                    .target = &target,
                    .choice = &ch,
                    .refname = refname};
    int rc = run_container(args, &ch.im, &st, sigfd, tty, interactive,
                           network ? strcmp(network, "host") == 0 : true, &err);
    reg_store_image_release(&ch.im);
    if (rc < 0) {
        teardown(&st);
        vm_ctd_free(st.c);
        free(st.id);
        free(st.dir);
        return cmd_fail(err);
    }
    teardown(&st);
    vm_ctd_free(st.c);
    free(st.id);
    free(st.dir);
    return rc;
}
