/* RUN (docs/internals/build.md §5): the step runs through containerd as `mar run` runs a
 * container — the same runtime spec, seccomp profile and emulator plan (vm/) — on an overlay
 * of the stage's layers with a fresh upper directory, which then becomes the step's layer.
 * Output goes line by line to the caller with the step's prefix. */
#include "build-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define LINE_CAP     (64u << 10)

typedef struct pump {
    int fd;
    const bld_hooks *hooks;
    const char *prefix;
} pump;

/* Reads the step's merged output and hands it over a line at a time (long lines in pieces). */
static void *pump_main(void *arg)
{
    pump *p = arg;
    mar_buf line = MAR_BUF_INIT(MAR_BUF_NOCAP);
    char buf[4096];
    for (;;) {
        ssize_t n = read(p->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || line.len >= LINE_CAP) {
                mar_buf_xappend(&line, "", 1);
                if (p->hooks->output) {
                    p->hooks->output(p->hooks->ud, p->prefix, line.data);
                }
                mar_buf_truncate(&line, 0);
                if (buf[i] == '\n') {
                    continue;
                }
            }
            mar_buf_xappend(&line, &buf[i], 1);
        }
    }
    if (line.len && p->hooks->output) {
        mar_buf_xappend(&line, "", 1);
        p->hooks->output(p->hooks->ud, p->prefix, line.data);
    }
    mar_buf_release(&line);
    return NULL;
}

static void read_user_db(const bld__ctx *c, const bld__image *im, const char *spec, vm_user *u,
                         mar_err **err, int *rc)
{
    int fds[OCI_LVIEW_MAX_LAYERS];
    size_t n = 0;
    *rc = 0;
    if (im->n_layers > OCI_LVIEW_MAX_LAYERS || bld__open_layers(c, im, fds, &n, err) < 0) {
        *rc = im->n_layers > OCI_LVIEW_MAX_LAYERS
                      ? mar_err_set(err, MAR_EUNSUPPORTED, 0, "too many layers")
                      : -mar_err_code(*err);
        return;
    }
    oci_lview v = {.fds = fds, .n = n};
    mar_buf passwd = MAR_BUF_INIT(0), group = MAR_BUF_INIT(0);
    mar_err *e = NULL;
    if (oci_lview_read(&v, "etc/passwd", 1 << 20, &passwd, &e) < 0) {
        mar_err_free(TAKE_PTR(e));
    }
    if (oci_lview_read(&v, "etc/group", 1 << 20, &group, &e) < 0) {
        mar_err_free(TAKE_PTR(e));
    }
    for (size_t i = 0; i < n; i++) {
        close(fds[i]);
    }
    if (vm_user_resolve(spec, passwd.len ? passwd.data : NULL, group.len ? group.data : NULL, u,
                        err) < 0) {
        *rc = -mar_err_code(*err);
    }
    mar_buf_release(&passwd);
    mar_buf_release(&group);
}

static void random_id(char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char r[13];
    for (size_t i = 0; i < 12; i++) {
        r[i] = hex[mar_random_below(16)];
    }
    r[12] = '\0';
    snprintf(buf, n, "mar-build-%s", r);
}

/* Removes the task and the container, whatever state they are in. */
static void teardown(vm_ctd *ctd, const char *id, bool task, bool container)
{
    mar_err *e = NULL;
    uint32_t status;
    if (task && vm_ctd_task_delete(ctd, id, &status, &e) < 0) {
        mar_err_free(TAKE_PTR(e));
        /* A failure of either shows in the delete below, which is what matters. */
        if (vm_ctd_task_kill(ctd, id, SIGKILL, true, &e) < 0) {
            mar_debug("kill of '%s': %s", id, e->msg);
        }
        mar_err_free(TAKE_PTR(e));
        if (vm_ctd_task_wait(ctd, id, &status, &e) < 0) {
            mar_debug("wait for '%s': %s", id, e->msg);
        }
        mar_err_free(TAKE_PTR(e));
        if (vm_ctd_task_delete(ctd, id, &status, &e) < 0) {
            mar_diag_warn("cannot delete the task of '%s': %s", id, e->msg);
            mar_err_free(TAKE_PTR(e));
        }
    }
    if (container && vm_ctd_container_delete(ctd, id, &e) < 0) {
        mar_diag_warn("cannot delete container '%s': %s", id, e->msg);
        mar_err_free(TAKE_PTR(e));
    }
}

int bld__connect_ctd(bld__ctx *c, mar_err **err)
{
    if (c->ctd) {
        return 0;
    }
    if (vm_ctd_connect(c->o->ctd_address, c->o->ctd_namespace, &c->ctd, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_free_ char *version = NULL;
    if (vm_ctd_version(c->ctd, &version, err) < 0) {
        return mar_err_wrap(err, "is containerd running");
    }
    mar_debug("containerd %s", version);
    return 0;
}

typedef struct run_job {
    char *dir, *id, *iodir, *spec, *cgroup;
    mar_strv av, env;
    vm_mount rootfs;
    vm_bind *binds; /* heredoc script, host network files, then the mounts' */
    size_t n_binds;
    bld__mounts mounts;
    vm_io io;
    int pipe[2];
    bool container, task;
} run_job;

/* A command line that is one heredoc word ("<<EOF", "<<-'EOF'"), nothing else. */
static bool single_heredoc(const char *line)
{
    line += strspn(line, " \t");
    size_t n = strcspn(line, " \t");
    return mar_str_startswith(line, "<<") && line[n + strspn(line + n, " \t")] == '\0';
}

/* A heredoc that is a script (#!) runs as a file of its own, as BuildKit runs it from
 * /dev/pipes (docs/internals/dockerfile.md §6). */
static int heredoc_script(bld__ctx *c, const bld_heredoc *h, run_job *j, mar_err **err)
{
    _cleanup_free_ char *dir = NULL;
    if (bld__mkwork(c, "heredoc", &dir, err) < 0) {
        return -mar_err_code(*err);
    }
    char *path = mar_xasprintf("%s/script", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    size_t len = strlen(h->content);
    if (fd < 0 || write(fd, h->content, len) != (ssize_t)len || fchmod(fd, 0755) < 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        free(path);
        return mar_err_set(err, MAR_EIO, e, "cannot write the heredoc '%s'", h->name);
    }
    close(fd);
    char *name = mar_xstrdup(h->name);
    for (char *p = name; *p; p++) {
        *p = *p == '/' ? '_' : *p;
    }
    j->binds[j->n_binds++] = (vm_bind){
            .source = path, .dest = mar_xasprintf("/dev/pipes/%s", name), .readonly = true};
    free(name);
    mar_strv_push(&j->av, j->binds[j->n_binds - 1].dest);
    return 0;
}

/* The command a RUN executes: the JSON array, or the stage's SHELL with the line; with
 * heredocs, BuildKit's three ways (docs/internals/dockerfile.md §6). */
static int run_argv(bld__ctx *c, const bld__stage *st, const bld_instr *in, run_job *j,
                    mar_err **err)
{
    if (in->json) {
        for (size_t i = 0; i < in->args.n; i++) {
            mar_strv_push(&j->av, in->args.v[i]);
        }
        return 0;
    }
    const char *line = in->args.n ? in->args.v[0] : "";
    bool single = in->n_heredocs == 1 && single_heredoc(line);
    if (single && mar_str_startswith(in->heredocs[0].content, "#!")) {
        return heredoc_script(c, &in->heredocs[0], j, err);
    }
    for (size_t i = 0; i < st->img.shell.n; i++) {
        mar_strv_push(&j->av, st->img.shell.v[i]);
    }
    if (single) {
        mar_strv_push(&j->av, in->heredocs[0].content);
    } else if (in->n_heredocs) {
        char *cmd = mar_xstrdup(line);
        for (size_t i = 0; i < in->n_heredocs; i++) {
            char *next = mar_xasprintf("%s\n%s%s", cmd, in->heredocs[i].raw, in->heredocs[i].name);
            free(cmd);
            cmd = next;
        }
        mar_strv_push_take(&j->av, cmd);
    } else {
        mar_strv_push(&j->av, line);
    }
    return 0;
}

static void job_release(run_job *j)
{
    vm_io_release(&j->io);
    for (size_t i = 0; i < 2; i++) {
        if (j->pipe[i] >= 0) {
            close(j->pipe[i]);
        }
    }
    for (size_t i = 0; i < j->n_binds; i++) {
        free(j->binds[i].source);
        free(j->binds[i].dest);
    }
    free(j->binds);
    bld__mounts_release(&j->mounts);
    free(j->dir);
    free(j->id);
    free(j->iodir);
    free(j->spec);
    free(j->cgroup);
    mar_strv_release(&j->av);
    mar_strv_release(&j->env);
    mar_strv_release(&j->rootfs.options);
}

MAR_MUST_USE static int prepare(bld__ctx *c, bld__stage *st, const bld_instr *in, run_job *j,
                                mar_err **err)
{
    json_t *cfg = bld__cfg(&st->img);
    j->binds = mar_xcalloc(3, sizeof(*j->binds));
    if (run_argv(c, st, in, j, err) < 0) {
        return -mar_err_code(*err);
    }
    bld_scope_run_env(st->scope, &j->env);
    bool has_path = false;
    for (size_t i = 0; i < j->env.n; i++) {
        has_path = has_path || strncmp(j->env.v[i], "PATH=", 5) == 0;
    }
    if (!has_path) {
        mar_strv_push(&j->env, DEFAULT_PATH);
    }
    vm_user u;
    int rc;
    read_user_db(c, &st->img, json_string_value(json_object_get(cfg, "User")), &u, err, &rc);
    if (rc < 0) {
        return mar_err_wrap(err, "%s:%u", c->df->filename, in->line);
    }
    const char *cwd = json_string_value(json_object_get(cfg, "WorkingDir"));
    bool host_net = in->network != BLD_NET_NONE;
    static const char *const netfiles[] = {"/etc/resolv.conf", "/etc/hosts"};
    for (size_t i = 0; host_net && i < MAR_ARRAY_SIZE(netfiles); i++) {
        char *real = realpath(netfiles[i], NULL);
        if (real) {
            j->binds[j->n_binds++] =
                    (vm_bind){.source = real, .dest = mar_xstrdup(netfiles[i]), .readonly = true};
        }
    }
    if (bld__mounts_setup(c, st, in, &j->mounts, err) < 0) {
        return -mar_err_code(*err);
    }
    j->binds = mar_xrealloc(j->binds, (j->n_binds + j->mounts.n + 1) * sizeof(*j->binds));
    for (size_t i = 0; i < j->mounts.n; i++) {
        j->binds[j->n_binds++] = j->mounts.binds[i];
    }
    j->mounts.n = 0; /* the binds are j's now */
    for (size_t i = 0; i < j->mounts.env.n; i++) {
        mar_strv_push(&j->env, j->mounts.env.v[i]);
    }
    char idbuf[40];
    random_id(idbuf, sizeof(idbuf));
    j->id = mar_xstrdup(idbuf);
    j->cgroup = mar_xasprintf("/%s/%s", c->o->ctd_namespace, j->id);
    vm_spec_opts so = {
            .args = &j->av,
            .env = &j->env,
            .cwd = cwd && *cwd ? cwd : "/",
            .uid = u.uid,
            .gid = u.gid,
            .gids = u.gids,
            .n_gids = u.n_gids,
            .hostname = "buildkitsandbox",
            .host_network = host_net,
            .binds = j->binds,
            .n_binds = j->n_binds,
            .cgroups_path = j->cgroup,
            .security = c->o->security,
            .kernel_arch = c->o->host->machine,
            .kernel_release = c->o->host->kernel,
    };
    if (vm_spec_json(&so, &j->spec, err) < 0 || bld__mkwork(c, "run", &j->dir, err) < 0) {
        return -mar_err_code(*err);
    }
    static const char *const sub[] = {"upper", "work", "io"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(sub); i++) {
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", j->dir, sub[i]);
        if (mkdir(p, i == 0 ? 0755 : 0700) < 0 || chmod(p, i == 0 ? 0755 : 0700) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", p);
        }
    }
    j->iodir = mar_xasprintf("%s/io", j->dir);
    if (vm_io_fifos(j->iodir, false, false, &j->io, err) < 0) {
        return -mar_err_code(*err);
    }
    if (pipe2(j->pipe, O_CLOEXEC) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create a pipe");
    }
    j->rootfs = (vm_mount){.type = "overlay", .source = "overlay", .options = MAR_STRV_INIT};
    mar_strv_push_take(&j->rootfs.options, bld__lowerdir(c, &st->img));
    mar_strv_push_take(&j->rootfs.options, mar_xasprintf("upperdir=%s/upper", j->dir));
    mar_strv_push_take(&j->rootfs.options, mar_xasprintf("workdir=%s/work", j->dir));
    return 0;
}

/* Creates, starts and waits for the container; *ret_status is its exit status. */
MAR_MUST_USE static int execute(bld__ctx *c, run_job *j, const char *prefix, uint32_t *ret_status,
                                mar_err **err)
{
    char ps[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&c->target, ps, sizeof(ps));
    const char *labels[] = {"mar.build", c->o->name, "mar.platform", ps, NULL};
    if (bld__interrupted(c->sigfd, err) < 0 ||
        vm_ctd_container_create(c->ctd, j->id, c->o->name, j->spec, labels, err) < 0) {
        return -mar_err_code(*err);
    }
    j->container = true;
    vm_stdio stdio = {.stdout_path = j->io.out_path, .stderr_path = j->io.err_path};
    if (bld__interrupted(c->sigfd, err) < 0 ||
        vm_ctd_task_create(c->ctd, j->id, &j->rootfs, 1, &stdio, NULL, err) < 0) {
        return -mar_err_code(*err);
    }
    j->task = true;
    if (bld__interrupted(c->sigfd, err) < 0 || vm_ctd_task_start(c->ctd, j->id, NULL, err) < 0) {
        return -mar_err_code(*err);
    }
    pump p = {.fd = j->pipe[0], .hooks = &c->o->hooks, .prefix = prefix};
    pthread_t th;
    if (pthread_create(&th, NULL, pump_main, &p) != 0) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot start a thread");
    }
    int sig = 0;
    vm_attach at = {.sigfd = c->sigfd,
                    .in = -1,
                    .out = j->pipe[1],
                    .err = j->pipe[1],
                    .kill_on_signal = true,
                    .ret_signal = &sig};
    int rc = vm_ctd_attach(c->ctd, j->id, &j->io, &at, ret_status, err);
    close(j->pipe[1]);
    j->pipe[1] = -1;
    pthread_join(th, NULL);
    if (rc == 0 && sig) {
        /* The step was killed for it: the build stops here, whatever the step's status. */
        return mar_err_set(err, MAR_EFAIL, 0, "interrupted by signal %d", sig);
    }
    return rc < 0 ? -mar_err_code(*err) : 0;
}

/* Removes from path (in the upper directory) an empty file or directory the stage's layers do
 * not have, and then its parents likewise. */
static void drop_created(const oci_lview *v, int ufd, const char *path)
{
    _cleanup_free_ char *p = mar_xstrdup(path);
    while (*p) {
        struct stat st;
        size_t layer;
        mar_err *e = NULL;
        if (fstatat(ufd, p, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            return;
        }
        if (oci_lview_stat(v, p, &layer, &st, NULL, &e) == 0) {
            return; /* the stage has it: the upper entry is a real change or a copy-up */
        }
        mar_err_free(e);
        if (fstatat(ufd, p, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            (S_ISDIR(st.st_mode)
                     ? unlinkat(ufd, p, AT_REMOVEDIR)
                     : (S_ISREG(st.st_mode) && st.st_size == 0 ? unlinkat(ufd, p, 0) : -1)) < 0) {
            return; /* not empty: the step made it */
        }
        char *slash = strrchr(p, '/');
        if (!slash) {
            return;
        }
        *slash = '\0';
    }
}

/* The mountpoints runc makes for the container (/proc, /dev, /sys and what is under them, the
 * bound /etc/hosts and /etc/resolv.conf, and every bind target) are no change of the step's:
 * where the stage's layers lack them, their empty traces leave the upper directory before it
 * becomes a layer, as BuildKit leaves them out. */
static void drop_mountpoints(const bld__ctx *c, const bld__image *im, const run_job *j, int ufd)
{
    int fds[OCI_LVIEW_MAX_LAYERS];
    size_t n = 0;
    mar_err *e = NULL;
    if (im->n_layers > OCI_LVIEW_MAX_LAYERS || bld__open_layers(c, im, fds, &n, &e) < 0) {
        mar_err_free(e);
        return;
    }
    oci_lview v = {.fds = fds, .n = n};
    static const char *const runtime[] = {"dev/pts", "dev/shm", "dev/mqueue", "dev",
                                          "proc",    "sys",     "etc/hosts",  "etc/resolv.conf"};
    for (size_t i = 0; i < j->n_binds; i++) {
        drop_created(&v, ufd, j->binds[i].dest + strspn(j->binds[i].dest, "/"));
    }
    for (size_t i = 0; i < MAR_ARRAY_SIZE(runtime); i++) {
        drop_created(&v, ufd, runtime[i]);
    }
    for (size_t i = 0; i < n; i++) {
        close(fds[i]);
    }
}

int bld__run(bld__ctx *c, bld__stage *st, const bld_instr *in, const char *prefix, mar_err **err)
{
    run_job j = {.pipe = {-1, -1}, .io = VM_IO_INIT};
    int rc = bld__connect_ctd(c, err);
    if (rc == 0) {
        rc = prepare(c, st, in, &j, err);
    }
    uint32_t status = 0;
    if (rc == 0) {
        rc = execute(c, &j, prefix, &status, err);
    }
    if (j.container) {
        teardown(c->ctd, j.id, j.task, j.container);
    }
    if (rc == 0 && status != 0) {
        _cleanup_free_ char *cmd = NULL;
        if (in->json) {
            mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
            for (size_t i = 0; i < in->args.n; i++) {
                mar_buf_xprintf(&b, "%s%s", i ? " " : "", in->args.v[i]);
            }
            cmd = mar_buf_detach(&b, NULL);
        } else {
            cmd = mar_xstrdup(in->args.n ? in->args.v[0] : "");
        }
        rc = mar_err_set(err, MAR_EFAIL, 0, "%s stage %s: %s:%u: RUN %s: exit status %u",
                         c->target_str, st->name, c->df->filename, in->line, cmd, status);
    }
    if (rc == 0) {
        _cleanup_free_ char *up = mar_xasprintf("%s/upper", j.dir);
        _cleanup_close_ int ufd = open(up, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ufd < 0) {
            rc = mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", up);
        } else {
            drop_mountpoints(c, &st->img, &j, ufd);
            rc = bld__commit_tree(c, &st->img, ufd, true, err);
        }
    }
    if (j.dir) {
        _cleanup_close_ int wfd = open(c->work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        mar_err *e = NULL;
        const char *base = strrchr(j.dir, '/') + 1;
        if (wfd >= 0 && oci_remove_at(wfd, base, &e) < 0) {
            mar_diag_warn("cannot remove '%s': %s", j.dir, e->msg);
            mar_err_free(e);
        }
    }
    job_release(&j);
    return rc;
}
