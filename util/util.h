/* util/: errors, cleanup helpers, capped buffers, diagnostics, digests, JSON loading, child
 * processes and fd-relative filesystem helpers. The bottom of the dependency order: it includes
 * nothing else from mar. */
#ifndef MAR_UTIL_H
#define MAR_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#define MAR_PRINTF(a, b) __attribute__((format(printf, a, b)))
/* A result the caller must look at (docs/internals/style.md §2): every function that returns a
 * mar_err status, and the buffer appends, whose failure means the buffer was released. */
#define MAR_MUST_USE __attribute__((warn_unused_result))
/* Drops a MAR_MUST_USE result on purpose, with the reason in a comment beside it. A cast to void
 * does not silence warn_unused_result in GCC; using the value does. */
#define mar_ignore(x)                                                                              \
    do {                                                                                           \
        __typeof__(x) mar_ignored_ = (x);                                                          \
        (void)mar_ignored_;                                                                        \
    } while (0)
#define MAR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------------------
 * Errors (docs/internals/style.md §2). Codes are a closed set and double as exit statuses. */

enum {
    MAR_EFAIL = 1,
    MAR_EUSAGE = 2,
    MAR_ENOTFOUND = 3,
    MAR_EAUTH = 4,
    MAR_ENET = 5,
    MAR_EINTEGRITY = 6,
    MAR_EUNSUPPORTED = 7,
    MAR_ERATELIMIT = 8,
    MAR_EIO = 9,
};

typedef struct mar_err {
    int code;      /* one of MAR_E* */
    int sys_errno; /* errno behind the failure, or 0 */
    char *msg;     /* one line, no trailing newline */
} mar_err;

/* Sets *err (when err is not NULL) to a new error whose message is the formatted text, followed by
 * ": strerror(sys_errno)" when sys_errno is not 0. Returns -code, so callers can write
 * `return mar_err_set(err, MAR_ENET, 0, "GET '%s'", url);`. */
int mar_err_set(mar_err **err, int code, int sys_errno, const char *fmt, ...) MAR_PRINTF(4, 5);

/* Prefixes context to an existing error: "context: previous message". Returns -code of the error
 * (or -MAR_EFAIL when *err is unset). */
int mar_err_wrap(mar_err **err, const char *fmt, ...) MAR_PRINTF(2, 3);

/* The code of an error, MAR_EFAIL for NULL. */
int mar_err_code(const mar_err *e);

/* Frees an error; accepts NULL; returns NULL. */
mar_err *mar_err_free(mar_err *e);

/* The lower-case name of a code ("not found", "network", ...). Borrowed static string. */
const char *mar_err_code_name(int code);

/* ---------------------------------------------------------------------------------------------
 * Memory. The x-allocators abort in one place on exhaustion. MAR_FAIL_ALLOC_N=<n> in the
 * environment makes the n-th allocation fail, to test that path. */

void *mar_xmalloc(size_t n);
void *mar_xcalloc(size_t n, size_t size);
void *mar_xrealloc(void *p, size_t n);
char *mar_xstrdup(const char *s);
char *mar_xstrndup(const char *s, size_t n);
char *mar_xasprintf(const char *fmt, ...) MAR_PRINTF(1, 2);
char *mar_xvasprintf(const char *fmt, va_list ap) MAR_PRINTF(1, 0);
/* Zeroes then frees a NUL-terminated secret; accepts NULL; returns NULL. */
char *mar_secret_free(char *s);
/* Zeroes memory the compiler may not elide. */
void mar_memzero(void *p, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Cleanup attributes (docs/internals/style.md §3). */

static inline void mar__freep(void *p)
{
    free(*(void **)p);
}
static inline void mar__closep(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
    }
}
static inline void mar__fclosep(FILE **f)
{
    if (*f) {
        fclose(*f);
    }
}
static inline void mar__errp(mar_err **e)
{
    mar_err_free(*e);
}
static inline void mar__jsonp(json_t **j)
{
    json_decref(*j);
}
static inline void mar__secretp(char **s)
{
    mar_secret_free(*s);
}

#define _cleanup_(f)     __attribute__((cleanup(f)))
#define _cleanup_free_   _cleanup_(mar__freep)
#define _cleanup_close_  _cleanup_(mar__closep)
#define _cleanup_fclose_ _cleanup_(mar__fclosep)
#define _cleanup_err_    _cleanup_(mar__errp)
#define _cleanup_json_   _cleanup_(mar__jsonp)
#define _cleanup_secret_ _cleanup_(mar__secretp)

/* Defines `static inline void name##_freep(type **p)` calling fn(*p) when not NULL. */
#define MAR_DEFINE_CLEANUP(type, fn)                                                               \
    static inline void fn##p(type **p)                                                             \
    {                                                                                              \
        if (*p) {                                                                                  \
            fn(*p);                                                                                \
        }                                                                                          \
    }

#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) take_ptr_tmp_ = (p);                                                         \
        (p) = NULL;                                                                                \
        take_ptr_tmp_;                                                                             \
    })
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int take_fd_tmp_ = (fd);                                                                   \
        (fd) = -1;                                                                                 \
        take_fd_tmp_;                                                                              \
    })

/* ---------------------------------------------------------------------------------------------
 * Capped buffers (docs/internals/style.md §4). Always NUL-terminated; data is never NULL after
 * MAR_BUF_INIT; a failed append releases the buffer. */

extern char mar__buf_empty[1];

typedef struct mar_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap; /* largest len allowed */
} mar_buf;

#define MAR_BUF_INIT(cap_)                                                                         \
    {                                                                                              \
        .data = mar__buf_empty, .len = 0, .alloc = 0, .cap = (cap_)                                \
    }

void mar_buf_init(mar_buf *b, size_t cap);
/* Appends n bytes. Returns 0, or -E2BIG when the result would exceed the cap (the buffer is then
 * released). */
MAR_MUST_USE int mar_buf_append(mar_buf *b, const void *p, size_t n);
MAR_MUST_USE int mar_buf_puts(mar_buf *b, const char *s);
MAR_MUST_USE int mar_buf_printf(mar_buf *b, const char *fmt, ...) MAR_PRINTF(2, 3);
/* The cap of a buffer that holds text mar composes itself (a message, a command line, a listing):
 * no input limit applies, and reaching the cap means memory is exhausted. */
#define MAR_BUF_NOCAP (SIZE_MAX / 2)
/* Appends to a MAR_BUF_NOCAP buffer, which cannot fail: passing the cap aborts like the
 * x-allocators. Any other buffer aborts at once (every test that reaches the call finds the
 * mistake): capped input goes through mar_buf_append and its error. */
void mar_buf_xappend(mar_buf *b, const void *p, size_t n);
void mar_buf_xputs(mar_buf *b, const char *s);
void mar_buf_xprintf(mar_buf *b, const char *fmt, ...) MAR_PRINTF(2, 3);
/* Releases the memory; the buffer is empty and reusable afterwards with the same cap. */
void mar_buf_release(mar_buf *b);
/* Hands the memory (NUL-terminated, never NULL) to the caller; the buffer is empty afterwards.
 * Returns: new string the caller frees; *ret_len (optional) receives the length. */
char *mar_buf_detach(mar_buf *b, size_t *ret_len);
void mar_buf_truncate(mar_buf *b, size_t len);
/* Wipes and releases a buffer that held secrets. */
void mar_buf_release_secret(mar_buf *b);

static inline void mar__bufp(mar_buf *b)
{
    mar_buf_release(b);
}
#define _cleanup_buf_ _cleanup_(mar__bufp)

/* Caps on inputs (docs/internals/buffers.md). */
#define MAR_CAP_MANIFEST                                                                           \
    4393216u /* containerd MaxManifestSize, docs/internals/registry-protocol.md §10 */
#define MAR_CAP_CONFIG        (8u << 20)
#define MAR_CAP_ERROR_BODY    (64u << 10)
#define MAR_CAP_TOKEN_BODY    (64u << 10)
#define MAR_CAP_AUTH_HEADER   (8u << 10)
#define MAR_CAP_HEADERS       (64u << 10)
#define MAR_CAP_HELPER_OUT    (1u << 20)
#define MAR_CAP_HELPER_ERR    (4u << 10)
#define MAR_CAP_BINFMT_ENTRY  (4u << 10)
#define MAR_CAP_DOCKER_CONFIG (4u << 20)
#define MAR_CAP_PROC_FILE     (1u << 20)

/* ---------------------------------------------------------------------------------------------
 * String vectors. */

typedef struct mar_strv {
    char **v; /* NULL-terminated once n > 0 */
    size_t n;
    size_t alloc;
} mar_strv;

#define MAR_STRV_INIT                                                                              \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }
void mar_strv_push(mar_strv *sv, const char *s);
void mar_strv_push_take(mar_strv *sv, char *s);
void mar_strv_release(mar_strv *sv);
bool mar_strv_contains(const mar_strv *sv, const char *s);
/* Sorts the strings (strcmp order). */
void mar_strv_sort(mar_strv *sv);
static inline void mar__strvp(mar_strv *sv)
{
    mar_strv_release(sv);
}
#define _cleanup_strv_ _cleanup_(mar__strvp)

/* Small string helpers. */
bool mar_str_startswith(const char *s, const char *prefix);
bool mar_str_endswith(const char *s, const char *suffix);
/* Case-insensitive ASCII comparison. */
bool mar_str_caseeq(const char *a, const char *b);
/* Copies at most n-1 bytes and NUL-terminates; returns false when truncated. */
bool mar_strlcpy(char *dst, const char *src, size_t n);
/* Text for a terminal (util/escape.c): control characters (C0, DEL, C1) and bytes that are not
 * UTF-8 written as visible escapes ("\x1b", "\n", "\u009b"); everything else as it is. Every
 * string from a registry, a store file or an image goes through this before it is printed.
 * Returns: new string. */
char *mar_str_escape(const char *s);
bool mar_str_needs_escape(const char *s);
/* Strict decimal parse of the whole string into [min, max]; returns false on any junk. */
bool mar_parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret);
/* Human size: "1.2 MB" (decimal units, like docker). */
void mar_format_size(int64_t bytes, char *buf, size_t n);

/* ---------------------------------------------------------------------------------------------
 * A string-keyed hash map (open addressing). Keys are copied; values are the caller's. */

typedef struct mar_map {
    char **keys;
    void **values;
    size_t n;     /* entries */
    size_t slots; /* power of two, 0 when empty */
    size_t tombs;
} mar_map;

#define MAR_MAP_INIT                                                                               \
    {                                                                                              \
        NULL, NULL, 0, 0, 0                                                                        \
    }
/* Sets key to value; returns the previous value or NULL. */
void *mar_map_set(mar_map *m, const char *key, void *value);
void *mar_map_get(const mar_map *m, const char *key);
/* Removes key; returns its value or NULL. */
void *mar_map_del(mar_map *m, const char *key);
/* Iteration: *pos starts at 0; returns false at the end. Deleting the current key is allowed. */
bool mar_map_next(const mar_map *m, size_t *pos, const char **ret_key, void **ret_value);
/* Frees the keys (values are the caller's). */
void mar_map_release(mar_map *m);

/* ---------------------------------------------------------------------------------------------
 * Diagnostics sink (docs/internals/style.md §2 "Printing"). Libraries report through these; cli/
 * installs the sink and decides what reaches stderr. */

typedef enum { MAR_DIAG_DEBUG, MAR_DIAG_NOTICE, MAR_DIAG_WARN } mar_diag_level;
typedef void (*mar_diag_fn)(mar_diag_level level, const char *msg, void *userdata);

void mar_diag_set_sink(mar_diag_fn fn, void *userdata);
void mar_diag_set_debug(bool on);
bool mar_diag_debug_enabled(void);
void mar_diag_warn(const char *fmt, ...) MAR_PRINTF(1, 2);
void mar_diag_notice(const char *fmt, ...) MAR_PRINTF(1, 2);
void mar_debug(const char *fmt, ...) MAR_PRINTF(1, 2);

/* ---------------------------------------------------------------------------------------------
 * Digests (docs/internals/registry-protocol.md §10): "sha256:" + 64 or "sha512:" + 128 lower-case
 * hex, nothing else. The algorithm is mapped through a fixed table; registry strings never name a
 * hash. */

typedef enum { MAR_DIGEST_SHA256 = 0, MAR_DIGEST_SHA512 = 1 } mar_digest_alg;

#define MAR_DIGEST_STR_MAX (7 + 128 + 1)

typedef struct mar_digest {
    mar_digest_alg alg;
    char str[MAR_DIGEST_STR_MAX]; /* canonical "alg:hex" */
} mar_digest;

/* Validates and copies a digest string. Errors: MAR_EUNSUPPORTED for a well-formed digest of
 * another algorithm, MAR_EINTEGRITY for a malformed value (wrong length or characters). */
MAR_MUST_USE int mar_digest_parse(const char *s, mar_digest *ret, mar_err **err);
bool mar_digest_valid(const char *s);
/* True when s has the shape of image-spec's digest grammar, whatever the algorithm. */
bool mar_digest_grammar_ok(const char *s);
/* The hex part of a digest string (borrowed pointer into d->str). */
const char *mar_digest_hex(const mar_digest *d);
bool mar_digest_eq(const mar_digest *a, const mar_digest *b);
/* "sha256:0123456789ab" style short form (12 hex digits). */
void mar_digest_short(const mar_digest *d, char *buf, size_t n);

typedef struct mar_hasher mar_hasher;
mar_hasher *mar_hasher_new(mar_digest_alg alg);
void mar_hasher_update(mar_hasher *h, const void *p, size_t n);
/* Finishes into ret; the hasher may be reset and reused afterwards. */
void mar_hasher_final(mar_hasher *h, mar_digest *ret);
void mar_hasher_reset(mar_hasher *h);
mar_hasher *mar_hasher_free(mar_hasher *h);
MAR_DEFINE_CLEANUP(mar_hasher, mar_hasher_free)
#define _cleanup_hasher_ _cleanup_(mar_hasher_freep)

/* One-shot digest of a buffer. */
void mar_digest_of(mar_digest_alg alg, const void *p, size_t n, mar_digest *ret);
/* True when the bytes hash to d (same algorithm as d). */
bool mar_digest_verify(const mar_digest *d, const void *p, size_t n);

/* ---------------------------------------------------------------------------------------------
 * JSON (docs/internals/style.md §5). */

/* Loads a document, rejecting duplicate keys; failures name "line:column". Errors:
 * MAR_EINTEGRITY. Returns: new reference in *ret. */
MAR_MUST_USE int mar_json_load(const void *buf, size_t len, const char *what, json_t **ret,
                               mar_err **err);

typedef enum {
    MAR_JSON_STRING, /* char * (new copy) */
    MAR_JSON_INT,    /* int64_t */
    MAR_JSON_BOOL,   /* bool */
    MAR_JSON_OBJECT, /* json_t * (borrowed from the document) */
    MAR_JSON_ARRAY,  /* json_t * (borrowed) */
    MAR_JSON_STRV,   /* mar_strv of strings */
} mar_json_type;

typedef struct mar_json_field {
    const char *name;
    mar_json_type type;
    size_t offset;
    bool mandatory;
} mar_json_field;

/* Fills the fields of base from obj by table. Unknown keys are ignored; missing mandatory fields
 * and wrong types are MAR_EINTEGRITY errors naming `what` and the field. A JSON null counts as
 * absent. */
MAR_MUST_USE int mar_json_dispatch(json_t *obj, const mar_json_field *fields, size_t n, void *base,
                                   const char *what, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Time. */

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t mar_now_ms(void);
/* Seconds since the epoch (CLOCK_REALTIME). */
int64_t mar_wall_s(void);
/* A uniformly distributed value in [0, n). From getrandom(2). */
uint64_t mar_random_below(uint64_t n);

/* ---------------------------------------------------------------------------------------------
 * Child processes without a shell (credential helpers, limactl, the binfmt probe). The child
 * starts with every fd above 2 closed-on-exec (docs/internals/style.md §3: runc CVE-2024-21626),
 * default signal dispositions, an empty signal mask and, unless told otherwise, the parent's
 * environment. */

enum {
    MAR_SPAWN_NEW_PGRP = 1 << 0,    /* setpgid(0, 0): a process group of its own */
    MAR_SPAWN_NEW_SESSION = 1 << 1, /* setsid(): a session (and process group) of its own */
};

typedef struct mar_spawn_opts {
    int stdin_fd; /* becomes the child's fd 0; -1 keeps the parent's */
    int stdout_fd;
    int stderr_fd;
    const char *cwd;   /* the child's working directory; NULL keeps the parent's */
    char *const *envp; /* the whole environment; NULL passes the parent's */
    int exec_fd;       /* >= 0: run this file (fexecve) instead of a PATH lookup of argv[0]; it
                        * stays open in the child, as a binfmt_misc interpreter opens /dev/fd/N */
    unsigned flags;    /* MAR_SPAWN_* */
} mar_spawn_opts;

#define MAR_SPAWN_OPTS_INIT                                                                        \
    {                                                                                              \
        .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .exec_fd = -1                            \
    }

/* Starts argv[0] (looked up in PATH as execvp(3) does, a script without "#!" through /bin/sh)
 * with argv; o may be NULL for the defaults. Safe to call from any thread: the child makes only
 * async-signal-safe calls. Returns 0 with the running child in *ret_pid, for the caller to reap.
 * When exec itself fails and ret_exec_errno is not NULL, returns 0 with *ret_pid -1 and exec's
 * errno in *ret_exec_errno (for callers to whom that is a result); otherwise exec failures are
 * errors. Errors: MAR_EFAIL, with sys_errno (ENOENT: no such program). */
MAR_MUST_USE int mar_spawn(char *const argv[], const mar_spawn_opts *o, pid_t *ret_pid,
                           int *ret_exec_errno, mar_err **err);

typedef struct mar_proc_result {
    int status;      /* exit status, or 128+signal */
    bool timed_out;  /* killed after the timeout */
    bool out_capped; /* stdout exceeded its cap and was cut */
    mar_buf out;
    mar_buf errout;
} mar_proc_result;

/* Runs argv[0] (looked up in PATH) with argv, feeding `in` to stdin, collecting stdout up to
 * out_cap and stderr up to err_cap, killing the child after timeout_ms. Errors: MAR_EFAIL when
 * the program cannot be started (ENOENT is reported with sys_errno). */
MAR_MUST_USE int mar_proc_run(char *const argv[], const void *in, size_t in_len, size_t out_cap,
                              size_t err_cap, int timeout_ms, mar_proc_result *ret, mar_err **err);
void mar_proc_result_release(mar_proc_result *r);

/* ---------------------------------------------------------------------------------------------
 * Files. */

/* Reads a whole regular file (opened relative to dirfd, AT_FDCWD allowed) up to cap bytes,
 * refusing symlinks at the last component and non-regular files. Errors: MAR_ENOTFOUND (ENOENT),
 * MAR_EIO, MAR_EINTEGRITY (over the cap). */
MAR_MUST_USE int mar_read_file_at(int dirfd, const char *path, size_t cap, mar_buf *ret,
                                  mar_err **err);
/* The same from an open fd (path names it in messages). */
MAR_MUST_USE int mar_read_fd(int fd, const char *path, size_t cap, mar_buf *ret, mar_err **err);
/* Any readable fd to its end (a pipe, stdin), at most cap bytes. */
MAR_MUST_USE int mar_read_stream(int fd, const char *path, size_t cap, mar_buf *ret, mar_err **err);

/* Fault injection for unit tests: when set, mar_fault(site) calls it just before a system call
 * whose failure cannot be provoked from outside (a directory fsync, a chmod on one's own
 * directory); a non-zero return is the errno that call then fails with, without being made. It is
 * NULL in mar: only tests/unit sets it, so release behaviour does not depend on it. Sites are
 * named where mar_fault is called. */
extern int (*mar_test_fault)(const char *site);
static inline int mar_fault(const char *site)
{
    return mar_test_fault ? mar_test_fault(site) : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Path components (docs/internals/unpack-security.md §2): one way to split a path and one limit on
 * symlinks, for every walk over paths inside an image root. */

/* Symlinks followed while resolving one path before giving up with ELOOP: the kernel's MAXSYMLINKS
 * (include/linux/namei.h; path_resolution(7): "a maximum of 40 symbolic links"), so a path
 * resolves inside mar as it would inside the container, and a link loop ends. */
#define MAR_SYMLINK_HOPS 40

typedef enum mar_path_comp {
    MAR_PATH_END = 0, /* no component left */
    MAR_PATH_NAME,    /* a name: never "", never "." */
    MAR_PATH_DOTDOT,  /* "..", for the caller to pop, clamp at its root or refuse */
} mar_path_comp;

/* Yields the next component of the path at *cursor, skipping empty components ("a//b", leading
 * and trailing slashes) and ".". *ret_comp points into the path (not NUL-terminated) and *ret_len
 * is its length in bytes; a name is any bytes but '/' and NUL, of any length. *cursor moves past
 * the component and the slashes after it, so an empty rest (**cursor == '\0') tells that the
 * component is the last one written ("a" in "a/." is not). Returns MAR_PATH_END, with *ret_len 0,
 * when nothing is left. */
mar_path_comp mar_path_next(const char **cursor, const char **ret_comp, size_t *ret_len);
/* The length of the parent of the first len bytes of a cleaned relative path ("a/b" -> 1,
 * "a" -> 0): what ".." leaves of it. */
size_t mar_path_dirlen(const char *path, size_t len);

/* ---------------------------------------------------------------------------------------------
 * Access scoped to a root directory (docs/internals/unpack-security.md §2): openat2 with
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV, or an fd-based user-space walk where
 * openat2 is missing (MAR_NO_OPENAT2=1 forces it). "/", ".." and absolute symlinks never leave the
 * root. */

/* Opens a directory to serve as a root: O_PATH|O_DIRECTORY|O_NOFOLLOW. Errors: MAR_ENOTFOUND,
 * MAR_EIO. Returns: the fd. */
MAR_MUST_USE int mar_root_open(const char *path, mar_err **err);
/* openat(2) of a path resolved inside rootfd (O_NOFOLLOW applies to the last component only).
 * Returns the fd or -1 with errno. */
int mar_in_root_open(int rootfd, const char *path, int flags, mode_t mode);
/* Opens (creating missing directories with dir_mode when asked) the directory that holds path;
 * *ret_name points at path's last component. Errors: MAR_EINTEGRITY (a component is not a
 * directory, a loop), MAR_EIO. */
MAR_MUST_USE int mar_in_root_parent(int rootfd, const char *path, bool create, mode_t dir_mode,
                                    int *ret_fd, const char **ret_name, mar_err **err);
/* The same, listing in `created` (when not NULL) every directory it had to make. */
MAR_MUST_USE int mar_in_root_parent_created(int rootfd, const char *path, bool create,
                                            mode_t dir_mode, mar_strv *created, int *ret_fd,
                                            const char **ret_name, mar_err **err);
/* Reads a regular file inside the root, never through a symlink at the last component and never
 * blocking on a FIFO, up to cap bytes. Errors: MAR_ENOTFOUND, MAR_EIO, MAR_EINTEGRITY. */
MAR_MUST_USE int mar_in_root_read(int rootfd, const char *path, size_t cap, mar_buf *ret,
                                  mar_err **err);

#endif
