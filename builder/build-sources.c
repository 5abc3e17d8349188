/* Which files a COPY or ADD takes, and the digest of them the step cache keys it by
 * (docs/internals/build.md §6, §11): its arguments expanded (variables, then a wildcard last
 * component matched like Go's filepath.Match, as the Dockerfile reference says), each opened
 * inside the source root, and everything the copy would take hashed where it is, so that a
 * cache hit copies nothing. */
#include "copy-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <string.h>
#include <sys/stat.h>

static bool has_wildcard(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

MAR_MUST_USE int bld__list_dir(int dfd, mar_strv *ret, mar_err **err)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) {
            close(fd);
        }
        return mar_err_set(err, MAR_EIO, errno, "cannot list a directory");
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            mar_strv_push(ret, de->d_name);
        }
    }
    closedir(d);
    if (ret->n) {
        qsort(ret->v, ret->n, sizeof(*ret->v), cmp_str);
    }
    return 0;
}

/* The sources of one argument: a path, or the matches of a wildcard last component. */
MAR_MUST_USE static int expand_source(bld__copy_job *j, const char *src, mar_strv *ret,
                                      mar_err **err)
{
    _cleanup_free_ char *clean = NULL;
    if (oci_clean_path(src, &clean, err) < 0) {
        return mar_err_wrap(err, "%s:%u: COPY source '%s'", j->c->df->filename, j->in->line, src);
    }
    const char *slash = strrchr(clean, '/');
    const char *last = slash ? slash + 1 : clean;
    if (!has_wildcard(last)) {
        mar_strv_push(ret, clean);
        return 0;
    }
    _cleanup_free_ char *dir =
            slash ? mar_xstrndup(clean, (size_t)(slash - clean)) : mar_xstrdup("");
    int dfd = *dir ? mar_in_root_open(j->srcroot, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
                   : openat(j->srcroot, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return 0;
    }
    _cleanup_close_ int dd = dfd;
    _cleanup_strv_ mar_strv names = MAR_STRV_INIT;
    if (bld__list_dir(dd, &names, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < names.n; i++) {
        if (fnmatch(last, names.v[i], FNM_PERIOD) == 0) {
            mar_strv_push_take(ret, *dir ? mar_xasprintf("%s/%s", dir, names.v[i])
                                         : mar_xstrdup(names.v[i]));
        }
    }
    return 0;
}

/* The sources of the instruction's arguments, expanded: paths in the source root (wildcards
 * matched, *ret_wild set when one was) and, for ADD, URLs apart. Errors: MAR_EUSAGE (expansion),
 * MAR_ENOTFOUND (a wildcard that matches nothing), MAR_EIO. */
MAR_MUST_USE int bld__copy_gather(bld__copy_job *j, bld__stage *st, mar_strv *srcs, mar_strv *urls,
                                  bool *ret_wild, mar_err **err)
{
    const bld_instr *in = j->in;
    for (size_t i = 0; i < in->args.n; i++) {
        _cleanup_free_ char *s = NULL;
        if (bld__expand(j->c, st, in, in->args.v[i], &s, err) < 0) {
            return -MAR_EUSAGE;
        }
        if (in->kind == BLD_ADD && bld__is_url(s)) {
            mar_strv_push(urls, s);
            continue;
        }
        size_t before = srcs->n;
        if (expand_source(j, s, srcs, err) < 0) {
            return -mar_err_code(*err);
        }
        *ret_wild = *ret_wild || has_wildcard(s);
        if (srcs->n == before) {
            return mar_err_set(err, MAR_ENOTFOUND, 0, "%s:%u: %s: no source files match '%s'",
                               j->c->df->filename, in->line, bld_kind_name(in->kind), s);
        }
    }
    return 0;
}

/* One gathered source opened O_PATH into *ret_fd (following links inside the root), or -1 there
 * when --exclude names it; j->src_len set for --exclude below it. Errors: MAR_ENOTFOUND (absent,
 * or excluded by .dockerignore). */
MAR_MUST_USE int bld__copy_open_source(bld__copy_job *j, const char *s, int *ret_fd, mar_err **err)
{
    const char *sbase = strrchr(s, '/') ? strrchr(s, '/') + 1 : s;
    j->src_len = *s ? strlen(s) + 1 : 0;
    *ret_fd = -1;
    if (j->exclude && *s && bld_ignore_match(j->exclude, sbase, false) == BLD_IGNORE_EXCLUDE) {
        return 0;
    }
    bool ignored = j->from_ctx && j->c->ignore && *s &&
                   bld_ignore_match(j->c->ignore, s, false) == BLD_IGNORE_EXCLUDE;
    int fd = *s ? mar_in_root_open(j->srcroot, s, O_PATH | O_CLOEXEC, 0)
                : openat(j->srcroot, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ignored) {
        if (fd >= 0) {
            close(fd);
        }
        return mar_err_set(err, MAR_ENOTFOUND, 0, "%s:%u: %s source '%s' not found in %s",
                           j->c->df->filename, j->in->line, bld_kind_name(j->in->kind), s,
                           j->from_ctx ? "the build context" : "the --from stage");
    }
    *ret_fd = fd;
    return 0;
}

/* The step's sources in the cache key (docs/internals/build.md §11), read where they are, so a
 * hit copies nothing. Each entry the copy would take, chosen as do_copy and copy_entry choose
 * (wildcards, .dockerignore, --exclude), enters with what the layer keeps of it: its path, type,
 * mode, modification time, link target and contents, and its owner when it comes from a stage.
 * Fields are length-prefixed so that no two different trees hash alike. */
static void key_field(mar_hasher *h, const char *tag, const char *v, size_t n)
{
    char head[64];
    int k = snprintf(head, sizeof(head), "%s %zu:", tag, n);
    mar_hasher_update(h, head, (size_t)k);
    mar_hasher_update(h, v, n);
}

MAR_MUST_USE static int key_entry(bld__copy_job *j, mar_hasher *h, int sdir, const char *name,
                                  const char *rel, bool top, mar_err **err)
{
    /* At the top, sdir is the source itself, opened O_PATH as do_copy opens it. */
    struct stat st;
    if (fstatat(sdir, name, &st, top ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", rel);
    }
    bool is_dir = S_ISDIR(st.st_mode);
    if (!top && j->from_ctx && j->c->ignore &&
        bld_ignore_match(j->c->ignore, rel, is_dir) == BLD_IGNORE_EXCLUDE) {
        return 0;
    }
    if (!top && j->exclude && strlen(rel) > j->src_len &&
        bld_ignore_match(j->exclude, rel + j->src_len, is_dir) == BLD_IGNORE_EXCLUDE) {
        return 0;
    }
    char meta[160];
    int k = snprintf(meta, sizeof(meta), "%o %lld.%09ld %lld", (unsigned)st.st_mode,
                     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_size);
    if (!j->from_ctx) {
        k += snprintf(meta + k, sizeof(meta) - (size_t)k, " %u:%u", (unsigned)st.st_uid,
                      (unsigned)st.st_gid);
    }
    key_field(h, "path", rel, strlen(rel));
    /* A source directory gives its contents, not itself: its own time, which any new file in
     * it (an ignored one too) changes, is not in the layer. */
    key_field(h, "meta", meta, top && is_dir ? 0 : (size_t)k);
    int fl = O_CLOEXEC | (top ? 0 : O_NOFOLLOW);
    if (is_dir) {
        _cleanup_close_ int d = openat(sdir, top ? "." : name, O_RDONLY | O_DIRECTORY | fl);
        _cleanup_strv_ mar_strv names = MAR_STRV_INIT;
        if (d < 0 || bld__list_dir(d, &names, err) < 0) {
            return *err ? -mar_err_code(*err)
                        : mar_err_set(err, MAR_EIO, errno, "cannot open the directory '%s'", rel);
        }
        for (size_t i = 0; i < names.n; i++) {
            _cleanup_free_ char *r =
                    *rel ? mar_xasprintf("%s/%s", rel, names.v[i]) : mar_xstrdup(names.v[i]);
            if (key_entry(j, h, d, names.v[i], r, false, err) < 0) {
                return -mar_err_code(*err);
            }
        }
        key_field(h, "end", "", 0);
    } else if (S_ISREG(st.st_mode)) {
        _cleanup_close_ int f =
                top ? mar_in_root_open(j->srcroot, rel, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0)
                    : openat(sdir, name, O_RDONLY | O_NONBLOCK | fl);
        if (f < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", rel);
        }
        /* The size is in meta: the contents need no prefix, but must be exactly that long. */
        char buf[1 << 16];
        off_t total = 0;
        for (;;) {
            ssize_t n = read(f, buf, sizeof(buf));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                return mar_err_set(err, MAR_EIO, errno, "cannot read '%s'", rel);
            }
            if (n == 0) {
                break;
            }
            mar_hasher_update(h, buf, (size_t)n);
            total += n;
        }
        if (total != st.st_size) {
            return mar_err_set(err, MAR_EIO, 0, "'%s' changed while it was read", rel);
        }
    } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlinkat(sdir, name, target, sizeof(target));
        if (n < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot read the link '%s'", rel);
        }
        key_field(h, "link", target, (size_t)n);
    }
    return 0;
}

/* *ret_keyed is false when the sources cannot be read without fetching them (ADD of a URL):
 * such a step is keyed by its staged tree instead. Errors: those do_copy gives for a source
 * that is missing or unreadable. */
MAR_MUST_USE int bld__copy_key(bld__copy_job *j, bld__stage *st, mar_digest *ret, bool *ret_keyed,
                               mar_err **err)
{
    bld__ctx *c = j->c;
    const bld_instr *in = j->in;
    *ret_keyed = false;
    _cleanup_hasher_ mar_hasher *h = mar_hasher_new(MAR_DIGEST_SHA256);
    if (in->from) {
        /* A stage or image is its layers: the tree the copy reads is a function of them. */
        _cleanup_free_ char *from = NULL;
        if (bld__expand(c, st, in, in->from, &from, err) < 0) {
            return -MAR_EUSAGE;
        }
        bld__image tmp;
        const bld__image *src = bld__from_image(c, from, (size_t)(st - c->stages), &tmp, err);
        if (!src) {
            return mar_err_wrap(err, "%s:%u", c->df->filename, in->line);
        }
        key_field(h, "from", "", 0);
        for (size_t i = 0; i < src->n_layers; i++) {
            key_field(h, "layer", src->layers[i].diff_id.str, strlen(src->layers[i].diff_id.str));
        }
        bld__image_release(&tmp);
        mar_hasher_final(h, ret);
        *ret_keyed = true;
        return 0;
    }
    _cleanup_strv_ mar_strv srcs = MAR_STRV_INIT, urls = MAR_STRV_INIT;
    bool wild = false;
    if (bld__copy_gather(j, st, &srcs, &urls, &wild, err) < 0) {
        return -mar_err_code(*err);
    }
    if (urls.n) {
        return 0;
    }
    for (size_t i = 0; i < srcs.n; i++) {
        const char *s = srcs.v[i];
        int sfd;
        if (bld__copy_open_source(j, s, &sfd, err) < 0) {
            return -mar_err_code(*err);
        }
        if (sfd < 0) {
            continue;
        }
        _cleanup_close_ int sf = sfd;
        key_field(h, "source", s, strlen(s));
        if (key_entry(j, h, sf, "", s, true, err) < 0) {
            return -mar_err_code(*err);
        }
    }
    mar_hasher_final(h, ret);
    *ret_keyed = true;
    return 0;
}
