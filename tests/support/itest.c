/* Integration-test helpers. */
#include "itest.h"
#include "tbuf.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static json_t *bed_env;
static json_t *fixtures;
static char tmpdir[256];

static void load_env(void)
{
    if (bed_env) {
        return;
    }
    bed_env = json_object();
    const char *bed = getenv("MAR_BED");
    if (!bed) {
        return;
    }
    _cleanup_free_ char *path = mar_xasprintf("%s/env", bed);
    mar_buf b = MAR_BUF_INIT(1 << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, path, 1 << 20, &b, &e) < 0) {
        mar_err_free(e);
        return;
    }
    /* Lines are NAME=value with bash %q quoting; values here never need unquoting except '\'. */
    for (char *line = b.data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            mar_buf v = MAR_BUF_INIT(1 << 16);
            for (const char *p = eq + 1; *p; p++) {
                if (*p == '\\' && p[1]) {
                    p++;
                }
                T_BUF(mar_buf_append(&v, p, 1));
            }
            json_object_set_new(bed_env, line, json_string(v.data));
            mar_buf_release(&v);
        }
        line = nl ? nl + 1 : NULL;
    }
    mar_buf_release(&b);
}

const char *itest_bed(const char *name)
{
    load_env();
    return json_string_value(json_object_get(bed_env, name));
}

void itest_require(const char *const *names)
{
    for (size_t i = 0; names[i]; i++) {
        if (!itest_bed(names[i])) {
            const char *ci = getenv("MAR_CI");
            fprintf(stderr,
                    "test bed lacks %s (set MAR_BED to a directory made by "
                    "tests/bed/bed.sh up)\n",
                    names[i]);
            exit(ci && strcmp(ci, "1") == 0 ? 1 : 77);
        }
    }
}

json_t *itest_fixtures(void)
{
    if (!fixtures) {
        const char *path = itest_bed("MAR_TEST_FIXTURES");
        json_error_t je;
        fixtures = path ? json_load_file(path, 0, &je) : NULL;
        if (!fixtures) {
            fixtures = json_object();
        }
    }
    return fixtures;
}

const char *itest_fixture_ref(const char *name)
{
    return json_string_value(json_object_get(json_object_get(itest_fixtures(), name), "ref"));
}

const char *itest_cache_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
        const char *cache = getenv("MAR_CACHE_DIR");
        const char *home = getenv("HOME");
        if (cache && *cache) {
            snprintf(dir, sizeof(dir), "%s", cache);
        } else {
            snprintf(dir, sizeof(dir), "%s/.cache/mar", home && *home ? home : "/root");
        }
    }
    return dir;
}

const char *itest_busybox(const char *debarch)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/busybox/%s/busybox", itest_cache_dir(), debarch);
    return path;
}

bool itest_host_runs(const char *debarch)
{
    itest_run r;
    const char *argv[] = {itest_busybox(debarch), "true", NULL};
    itest_runv(&r, NULL, argv);
    bool ok = r.status == 0;
    itest_run_release(&r);
    return ok;
}

static pid_t tmpdir_owner;

/* The scratch directory goes when the test program ends (MAR_KEEP_TMP=1 keeps it to look at).
 * Stores hold 0444 blobs and images may bring read-only directories, hence the chmod; a mount
 * a test forgot is not crossed. Forked children that exit leave it alone. */
static void remove_tmpdir(void)
{
    if (getpid() != tmpdir_owner || getenv("MAR_KEEP_TMP")) {
        return;
    }
    char *argv[] = {
            "sh", "-c",   "chmod -R u+w \"$1\" 2>/dev/null; rm -rf --one-file-system \"$1\"",
            "sh", tmpdir, NULL};
    mar_proc_result r;
    mar_err *e = NULL;
    if (mar_proc_run(argv, NULL, 0, 4096, 4096, 60000, &r, &e) == 0) {
        mar_proc_result_release(&r);
    }
    mar_err_free(e);
}

const char *itest_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof(tmpdir), "%s/mar-itest-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
            exit(1);
        }
        tmpdir_owner = getpid();
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

char *itest_write(const char *name, const char *content, unsigned mode)
{
    char *path = mar_xasprintf("%s/%s", itest_tmpdir(), name);
    _cleanup_free_ char *dir = mar_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        mkdir(dir, 0700);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fchmod(fd, mode);
    close(fd);
    return path;
}

bool itest_contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
}

void itest_runv(itest_run *r, const char *const *env, const char *const *argv)
{
    /* Run under `env` so the extra variables reach the child without touching ours. */
    mar_strv av = MAR_STRV_INIT;
    mar_strv_push(&av, "env");
    for (size_t i = 0; env && env[i]; i++) {
        mar_strv_push(&av, env[i]);
    }
    for (size_t i = 0; argv[i]; i++) {
        mar_strv_push(&av, argv[i]);
    }
    mar_proc_result pr;
    mar_err *e = NULL;
    if (mar_proc_run(av.v, NULL, 0, 64u << 20, 16u << 20, 120000, &pr, &e) < 0) {
        fprintf(stderr, "cannot run %s: %s\n", argv[0], e->msg);
        exit(1);
    }
    mar_strv_release(&av);
    r->status = pr.timed_out ? -1 : pr.status;
    r->out = pr.out;
    r->err = pr.errout;
    if (getenv("MAR_ITEST_VERBOSE")) {
        fprintf(stderr, "$");
        for (size_t i = 0; argv[i]; i++) {
            fprintf(stderr, " %s", argv[i]);
        }
        fprintf(stderr, "\n-> %d\n%s%s", r->status, r->out.data, r->err.data);
    }
}

void itest_mar(itest_run *r, const char *const *env, ...)
{
    const char *bin = getenv("MAR_BIN");
    if (!bin) {
        fprintf(stderr, "MAR_BIN is not set\n");
        exit(1);
    }
    const char *argv[64];
    size_t n = 0;
    argv[n++] = bin;
    va_list ap;
    va_start(ap, env);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 63) {
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    itest_runv(r, env, argv);
}

void itest_run_release(itest_run *r)
{
    mar_buf_release(&r->out);
    mar_buf_release(&r->err);
}

/* ---- the store ------------------------------------------------------------------------------ */

static void list_names(const char *dir, mar_strv *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            mar_strv_push(out, de->d_name);
        }
    }
    closedir(d);
}

void itest_store_fsck(const char *store, itest_fsck *ret)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_free_ char *bdir = mar_xasprintf("%s/blobs/sha256", store);
    mar_strv names = MAR_STRV_INIT;
    list_names(bdir, &names);
    for (size_t i = 0; i < names.n; i++) {
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", bdir, names.v[i]);
        _cleanup_free_ char *want = mar_xasprintf("sha256:%s", names.v[i]);
        struct stat st;
        bool ok = lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0444;
        if (ok) {
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            _cleanup_hasher_ mar_hasher *h = mar_hasher_new(MAR_DIGEST_SHA256);
            char buf[1 << 16];
            ssize_t n;
            while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
                mar_hasher_update(h, buf, (size_t)n);
            }
            if (fd >= 0) {
                close(fd);
            }
            mar_digest got;
            mar_hasher_final(h, &got);
            ok = strcmp(got.str, want) == 0;
        }
        ret->blobs++;
        if (!ok) {
            ret->bad_blobs++;
            fprintf(stderr, "fsck: bad blob %s\n", p);
        }
    }
    mar_strv_release(&names);
    _cleanup_free_ char *udir = mar_xasprintf("%s/unpack", store);
    names = (mar_strv)MAR_STRV_INIT;
    list_names(udir, &names);
    for (size_t i = 0; i < names.n; i++) {
        if (mar_str_startswith(names.v[i], "part-")) {
            ret->parts++;
            continue;
        }
        _cleanup_free_ char *c = mar_xasprintf("%s/%s/.complete", udir, names.v[i]);
        _cleanup_free_ char *r = mar_xasprintf("%s/%s/rootfs", udir, names.v[i]);
        struct stat st;
        if (lstat(c, &st) == 0 && S_ISREG(st.st_mode) && lstat(r, &st) == 0 &&
            S_ISDIR(st.st_mode)) {
            ret->layers++;
        } else {
            ret->incomplete_layers++;
            fprintf(stderr, "fsck: layer %s without .complete\n", names.v[i]);
        }
    }
    mar_strv_release(&names);
    _cleanup_free_ char *idir = mar_xasprintf("%s/ingest", store);
    names = (mar_strv)MAR_STRV_INIT;
    list_names(idir, &names);
    ret->ingests = names.n;
    mar_strv_release(&names);
    struct stat st;
    ret->mode_ok = stat(store, &st) == 0 && (st.st_mode & 0777) == 0700;
}

json_t *itest_json(const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text ? text : "", 0, &je);
    if (!doc) {
        fprintf(stderr, "not JSON (%s):\n%s\n", je.text, text ? text : "");
        fail();
    }
    return doc;
}

pid_t itest_mar_spawn(const char *const *env, const char *out, const char *err,
                      const char *const *args)
{
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        for (size_t i = 0; env && env[i]; i++) {
            putenv((char *)env[i]);
        }
        const char *argv[64];
        size_t n = 0;
        argv[n++] = getenv("MAR_BIN");
        for (size_t i = 0; args[i] && n < 63; i++) {
            argv[n++] = args[i];
        }
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int itest_wait(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int itest_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &l) < 0) {
        fprintf(stderr, "cannot find a free port\n");
        exit(1);
    }
    close(s);
    return ntohs(a.sin_port);
}

pid_t itest_faultproxy_start(int port, int redirect_port, const char *upstream,
                             const char *target_auth)
{
    _cleanup_free_ char *script = mar_xasprintf("%s/tests/bed/faultproxy.py", getenv("MAR_SRC"));
    _cleanup_free_ char *ps = mar_xasprintf("%d", port);
    _cleanup_free_ char *rps = mar_xasprintf("%d", redirect_port);
    pid_t pid = fork();
    if (pid == 0) {
        if (target_auth) {
            setenv("FAULTPROXY_TARGET_AUTH", target_auth, 1);
        }
        execl("/usr/bin/python3", "python3", script, ps, rps, upstream, (char *)NULL);
        _exit(127);
    }
    _cleanup_free_ char *url = mar_xasprintf("http://127.0.0.1:%d/_stats", port);
    for (int i = 0; i < 200; i++) {
        itest_run r;
        const char *argv[] = {"curl", "-sf", "-o", "/dev/null", url, NULL};
        itest_runv(&r, NULL, argv);
        int st = r.status;
        itest_run_release(&r);
        if (st == 0) {
            return pid;
        }
        usleep(50000);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return -1;
}

void itest_require_root(const char *why)
{
    if (geteuid() != 0) {
        fprintf(stderr, "skip: %s needs root\n", why);
        exit(getenv("MAR_CI") ? 1 : 77);
    }
}

const char *itest_ctd_env(void)
{
    static char env[600];
    if (!env[0]) {
        snprintf(env, sizeof(env), "CONTAINERD_ADDRESS=%s", itest_bed("MAR_TEST_CONTAINERD"));
    }
    return env;
}

void itest_ctd_nothing_left(const char *store)
{
    static const char *const what[] = {"containers", "tasks"};
    for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
        itest_run r;
        const char *c[] = {"ctr", "--address", itest_bed("MAR_TEST_CONTAINERD"),
                           "-n",  "mar",       what[i],
                           "ls",  "-q",        NULL};
        itest_runv(&r, NULL, c);
        if (r.status != 0 || r.out.data[0]) {
            fail_msg("containerd's mar namespace still has %s (ctr status %d): %s", what[i],
                     r.status, r.out.data);
        }
        itest_run_release(&r);
    }
    if (store) {
        char dir[1024];
        snprintf(dir, sizeof(dir), "%s/containers", store);
        itest_run r;
        const char *ls[] = {"ls", "-A", dir, NULL};
        itest_runv(&r, NULL, ls);
        if (r.out.data[0]) {
            fail_msg("left in %s: %s", dir, r.out.data);
        }
        itest_run_release(&r);
    }
}
