/* Integration-test helpers. */
#include "itest.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

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
                mar_buf_append(&v, p, 1);
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

const char *itest_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof(tmpdir), "%s/mar-itest-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
            exit(1);
        }
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
