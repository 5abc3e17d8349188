/* The symlink-exchange race (docs/internals/unpack-security.md §7, CVE-2018-15664 model): while a
 * layer of 10,000 files under d/ is applied, another thread keeps swapping the directory root/d
 * with a symlink root/d.lnk -> <outside> (renameat2 RENAME_EXCHANGE). Whatever the interleaving, no
 * write may land outside the root; aborted unpacks are allowed and counted. Runs with openat2
 * and again with the user-space walk (MAR_NO_OPENAT2=1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "oci/oci.h"
#include "tarw.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* MAR_RACE_FILES overrides (valgrind serializes threads, which makes 10,000 very slow there). */
static int files_n(void)
{
    const char *v = getenv("MAR_RACE_FILES");
    int64_t n = 10000;
    if (v) {
        mar_parse_i64(v, 2, 1000000, &n);
    }
    return (int)n;
}

static atomic_bool stop;
static int race_root = -1;
static atomic_ulong swaps;

static void *attacker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        if (renameat2(race_root, "d", race_root, "d.lnk", RENAME_EXCHANGE) == 0) {
            atomic_fetch_add(&swaps, 1);
        }
    }
    return NULL;
}

static size_t count_entries(const char *dir);

/* Files in dir/a and dir/b. */
static size_t count_files(const char *dir)
{
    _cleanup_free_ char *a = mar_xasprintf("%s/a", dir);
    _cleanup_free_ char *b = mar_xasprintf("%s/b", dir);
    return count_entries(a) + count_entries(b);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return 0;
    }
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    }
    closedir(d);
    return n;
}

static void test_race(void **state)
{
    (void)state;
    char T[] = "/tmp/mar-race-XXXXXX";
    assert_non_null(mkdtemp(T));
    _cleanup_free_ char *root = mar_xasprintf("%s/root", T);
    _cleanup_free_ char *outside = mar_xasprintf("%s/outside", T);
    _cleanup_free_ char *d = mar_xasprintf("%s/d", root);
    _cleanup_free_ char *lnk = mar_xasprintf("%s/d.lnk", root);
    _cleanup_free_ char *sentinel = mar_xasprintf("%s/sentinel", outside);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(mkdir(outside, 0755), 0);
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(symlink(outside, lnk), 0);
    int sfd = open(sentinel, O_WRONLY | O_CREAT, 0644);
    assert_true(sfd >= 0);
    close(sfd);

    mar_buf t = MAR_BUF_INIT(MAR_BUF_NOCAP);
    /* Alternating between two subdirectories, so that every entry resolves its parent through
     * d again (the unpacker reuses a parent fd only while consecutive entries share it). */
    int files = files_n();
    for (int i = 0; i < files; i++) {
        char name[32];
        snprintf(name, sizeof(name), "d/%c/f%05d", i % 2 ? 'a' : 'b', i);
        tarw_add(&t,
                 &(tarw_entry){.name = name, .type = '0', .mode = 0644, .data = "x", .size = 1});
    }
    tarw_finish(&t);
    int blob = memfd_create("layer", MFD_CLOEXEC);
    assert_int_equal(write(blob, t.data, t.len), (ssize_t)t.len);
    lseek(blob, 0, SEEK_SET);
    mar_buf_release(&t);

    mar_err *err = NULL;
    int rootfd = mar_root_open(root, &err);
    assert_true(rootfd >= 0);
    race_root = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    atomic_store(&stop, false);
    atomic_store(&swaps, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, attacker, NULL), 0);
    oci_unpack_opts o = {.mode = OCI_UNPACK_APPLY};
    oci_unpack_result r;
    int rc = oci_unpack(blob, rootfd, &o, &r, &err);
    atomic_store(&stop, true);
    pthread_join(th, NULL);
    char why[160] = "";
    if (rc < 0) {
        snprintf(why, sizeof(why), " (%s)", err->msg);
        mar_err_free(TAKE_PTR(err));
    }
    oci_unpack_result_release(&r);
    close(rootfd);
    close(race_root);
    close(blob);

    /* The oracle: outside holds exactly its sentinel. */
    size_t escaped = count_entries(outside) - 1;
    escaped += count_files(outside);
    /* Where the writes went: d (the directory, wherever it sits now) and the in-root image of
     * the symlink's target. */
    struct stat st;
    const char *real = lstat(d, &st) == 0 && S_ISDIR(st.st_mode) ? d : lnk;
    size_t in_d = count_files(real);
    _cleanup_free_ char *mirror = mar_xasprintf("%s%s", root, outside);
    size_t redirected = count_files(mirror);
    fprintf(stderr,
            "unpack-race%s  %d entries  %lu swaps  %s%s  %zu in d, %zu under root%s  %zu "
            "outside\n",
            getenv("MAR_NO_OPENAT2") ? " (walk)" : "", files, atomic_load(&swaps),
            rc == 0 ? "completed" : "aborted", why, in_d, redirected, outside, escaped);
    assert_int_equal(escaped, 0);
    char *argv[] = {"rm", "-rf", T, NULL};
    mar_proc_result pr;
    assert_int_equal(mar_proc_run(argv, NULL, 0, 4096, 4096, 60000, &pr, NULL), 0);
    mar_proc_result_release(&pr);
}

int main(int argc, char **argv)
{
    (void)argc;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_race)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    const char *pre = getenv("LD_PRELOAD");
    if (rc != 0 || getenv("MAR_NO_OPENAT2") || (pre && strstr(pre, "vgpreload"))) {
        return rc; /* valgrind lacks openat2: the walk already ran */
    }
    /* Again through the user-space walk. */
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MAR_NO_OPENAT2", "1", 1);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
