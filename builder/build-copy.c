/* COPY and ADD (docs/internals/build.md §6): no container. The sources — from the context
 * (through .dockerignore), or from another stage or an image mounted read-only as an overlay
 * of its layers — are copied into a staging directory at their destination path, whose parent
 * directories take the metadata the stage's filesystem gives them, and the staging tree is
 * written as the step's layer. Semantics of the Dockerfile reference, "COPY"
 * (https://docs.docker.com/reference/dockerfile/#copy): a directory source copies its contents,
 * several sources or a trailing '/' make the destination a directory, a relative destination
 * is under WORKDIR, `*?[` in the last component of a source match like filepath.Match. */
#include "copy-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

static int set_meta(bld__copy_job *j, int dirfd, const char *name, const struct stat *st, bool link)
{
    uid_t uid = j->chown ? j->uid : j->from_ctx ? 0 : st->st_uid;
    gid_t gid = j->chown ? j->gid : j->from_ctx ? 0 : st->st_gid;
    if (fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
        return -1;
    }
    if (!link && fchmodat(dirfd, name, j->chmod ? j->mode : (st->st_mode & 07777), 0) < 0) {
        return -1;
    }
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    return utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

MAR_MUST_USE static int copy_file(int sfd, int dfd, const char *name, mar_err **err)
{
    _cleanup_close_ int out =
            openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s' in the staging directory",
                           name);
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(sfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot read a COPY source");
        }
        if (n == 0) {
            return 0;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR) {
                return mar_err_set(err, MAR_EIO, errno, "cannot write '%s'", name);
            }
            off += w > 0 ? w : 0;
        }
    }
}

MAR_MUST_USE static int copy_tree(bld__copy_job *j, int sdir, const char *rel, int ddir,
                                  mar_err **err);
MAR_MUST_USE static int make_parents(bld__copy_job *j, int stagefd, const oci_lview *v,
                                     const char *path, bool last_too, mar_err **err);

/* Docker's ADD extracts a local file when it decompresses (gzip, bzip2, xz; zstd too in
 * BuildKit) to a tar stream whose first header reads (moby pkg/archive IsArchivePath, BuildKit
 * solver/llbsolver/file/unpack.go): the same test with oci/'s reader, the offset of fd kept. */
int bld__archive_kind(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return BLD__ARCHIVE_NONE;
    }
    off_t at = lseek(fd, 0, SEEK_CUR);
    if (at < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        return BLD__ARCHIVE_NONE;
    }
    oci_layer_reader *r = NULL;
    mar_err *e = NULL;
    const oci_layer_entry *entry;
    int kind = BLD__ARCHIVE_NONE;
    if (oci_archive_open(fd, NULL, &r, &e) < 0) {
        kind = mar_err_code(e) == MAR_EUNSUPPORTED ? BLD__ARCHIVE_UNSUPPORTED : BLD__ARCHIVE_NONE;
    } else if (oci_layer_next(r, &entry, &e) != 0) {
        kind = BLD__ARCHIVE_TAR; /* a header, or a bad one, which extracting will name */
    }
    mar_err_free(e);
    oci_layer_free(r);
    return lseek(fd, at, SEEK_SET) < 0 ? BLD__ARCHIVE_NONE : kind;
}

/* ADD of a local archive: its entries applied into the destination directory of the staging
 * tree by oci/'s unpacker (every write inside that directory; owners and modes as archived). */
static int extract(bld__copy_job *j, int stagefd, const oci_lview *v, int fd, const char *src,
                   const char *resolved, mar_err **err)
{
    if (make_parents(j, stagefd, v, resolved, true, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_close_ int dd =
            *resolved ? mar_in_root_open(stagefd, resolved, O_PATH | O_DIRECTORY | O_CLOEXEC, 0)
                      : openat(stagefd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s' in the staging directory",
                           resolved);
    }
    oci_unpack_opts uo = {.mode = OCI_UNPACK_APPLY, .archive = true};
    oci_unpack_result res;
    memset(&res, 0, sizeof(res));
    int rc = oci_unpack(fd, dd, &uo, &res, err);
    oci_unpack_result_release(&res);
    if (rc < 0) {
        return mar_err_wrap(err, "%s:%u: ADD %s", j->c->df->filename, j->in->line, src);
    }
    j->files += res.files;
    return 0;
}

/* Copies one entry (name in sdir, at context path rel) to dname in ddir. */
MAR_MUST_USE static int copy_entry(bld__copy_job *j, int sdir, const char *name, const char *rel,
                                   int ddir, const char *dname, bool follow, mar_err **err)
{
    struct stat st;
    int fl = follow ? 0 : AT_SYMLINK_NOFOLLOW;
    if (fstatat(sdir, name, &st, fl) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", rel);
    }
    bool is_dir = S_ISDIR(st.st_mode);
    if (j->from_ctx && j->c->ignore && *rel) {
        bld_ignore_result r = bld_ignore_match(j->c->ignore, rel, is_dir);
        if (r == BLD_IGNORE_EXCLUDE) {
            return 0;
        }
    }
    if (j->exclude && strlen(rel) > j->src_len &&
        bld_ignore_match(j->exclude, rel + j->src_len, is_dir) == BLD_IGNORE_EXCLUDE) {
        return 0;
    }
    if (is_dir) {
        if (mkdirat(ddir, dname, 0700) < 0 && errno != EEXIST) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", dname);
        }
        _cleanup_close_ int s =
                openat(sdir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
        _cleanup_close_ int d =
                openat(ddir, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s < 0 || d < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot open the directory '%s'", rel);
        }
        if (copy_tree(j, s, rel, d, err) < 0) {
            return -mar_err_code(*err);
        }
    } else if (S_ISREG(st.st_mode)) {
        _cleanup_close_ int s =
                openat(sdir, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
        if (s < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", rel);
        }
        if (copy_file(s, ddir, dname, err) < 0) {
            return -mar_err_code(*err);
        }
        j->files++;
    } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);
        if (n < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot read the link '%s'", rel);
        }
        target[n] = '\0';
        unlinkat(ddir, dname, 0);
        if (symlinkat(target, ddir, dname) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create the link '%s'", dname);
        }
    } else {
        mar_diag_warn("%s:%u: skipping '%s': not a file, directory or symbolic link",
                      j->c->df->filename, j->in->line, rel);
        return 0;
    }
    if (set_meta(j, ddir, dname, &st, S_ISLNK(st.st_mode)) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot set the metadata of '%s'", dname);
    }
    return 0;
}

MAR_MUST_USE static int copy_tree(bld__copy_job *j, int sdir, const char *rel, int ddir,
                                  mar_err **err)
{
    _cleanup_strv_ mar_strv names = MAR_STRV_INIT;
    if (bld__list_dir(sdir, &names, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < names.n; i++) {
        _cleanup_free_ char *r =
                *rel ? mar_xasprintf("%s/%s", rel, names.v[i]) : mar_xstrdup(names.v[i]);
        if (copy_entry(j, sdir, names.v[i], r, ddir, names.v[i], false, err) < 0) {
            return -mar_err_code(*err);
        }
    }
    return 0;
}

/* Makes the directories of path (relative) in the staging tree, each with the metadata the
 * stage's filesystem gives it, or 0755 root for a new one (owned by --chown as BuildKit does). */
MAR_MUST_USE static int make_parents(bld__copy_job *j, int stagefd, const oci_lview *v,
                                     const char *path, bool last_too, mar_err **err)
{
    size_t len = strlen(path);
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/') {
            continue;
        }
        if (i == len && !last_too) {
            break;
        }
        if (i == 0) {
            continue;
        }
        _cleanup_free_ char *p = mar_xstrndup(path, i);
        if (mkdirat(stagefd, p, 0755) < 0 && errno != EEXIST) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create '%s' in the staging directory",
                               p);
        }
        struct stat st;
        mar_err *e = NULL;
        size_t lay;
        if (oci_lview_stat(v, p, &lay, &st, NULL, &e) == 0 && S_ISDIR(st.st_mode)) {
            struct timespec ts[2] = {st.st_mtim, st.st_mtim};
            if (fchownat(stagefd, p, st.st_uid, st.st_gid, 0) < 0 ||
                fchmodat(stagefd, p, st.st_mode & 07777, 0) < 0 ||
                utimensat(stagefd, p, ts, 0) < 0) {
                return mar_err_set(err, MAR_EIO, errno, "cannot set the metadata of '%s'", p);
            }
        } else {
            mar_err_free(e);
            if (fchownat(stagefd, p, j->chown ? j->uid : 0, j->chown ? j->gid : 0, 0) < 0 ||
                fchmodat(stagefd, p, 0755, 0) < 0) {
                return mar_err_set(err, MAR_EIO, errno, "cannot set the metadata of '%s'", p);
            }
        }
    }
    return 0;
}

/* Resolves --chown against the stage's /etc/passwd and /etc/group. */
MAR_MUST_USE static int resolve_chown(bld__copy_job *j, bld__stage *st, const oci_lview *v,
                                      mar_err **err)
{
    _cleanup_free_ char *spec = NULL;
    if (bld__expand(j->c, st, j->in, j->in->chown, &spec, err) < 0) {
        return -MAR_EUSAGE;
    }
    mar_buf passwd = MAR_BUF_INIT(0), group = MAR_BUF_INIT(0);
    mar_err *e = NULL;
    if (oci_lview_read(v, "etc/passwd", 1 << 20, &passwd, &e) < 0) {
        mar_err_free(TAKE_PTR(e));
    }
    if (oci_lview_read(v, "etc/group", 1 << 20, &group, &e) < 0) {
        mar_err_free(TAKE_PTR(e));
    }
    vm_user u;
    int rc = vm_user_resolve(spec, passwd.len ? passwd.data : NULL, group.len ? group.data : NULL,
                             &u, err);
    mar_buf_release(&passwd);
    mar_buf_release(&group);
    if (rc < 0) {
        return mar_err_wrap(err, "%s:%u: --chown", j->c->df->filename, j->in->line);
    }
    j->chown = true;
    j->uid = u.uid;
    j->gid = u.gid;
    return 0;
}

MAR_MUST_USE int bld__mount_image(bld__ctx *c, const bld__image *im, char **ret_mnt, mar_err **err)
{
    if (bld__mkwork(c, "from", ret_mnt, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_free_ char *opts = bld__lowerdir(c, im);
    if (mount("overlay", *ret_mnt, "overlay", MS_RDONLY | MS_NODEV | MS_NOSUID, opts) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot mount the stage at '%s'", *ret_mnt);
    }
    return 0;
}

/* COPY <<EOF /dest: the body (expanded unless the delimiter was quoted) becomes a file, named
 * after the delimiter when the destination is a directory. */
MAR_MUST_USE static int copy_heredoc(bld__copy_job *j, bld__stage *st, const oci_lview *v,
                                     int stagefd, const bld_heredoc *h, const char *resolved,
                                     bool dir_dest, mar_err **err)
{
    _cleanup_free_ char *content = NULL;
    if (h->expand) {
        if (bld_expand_word(h->content, '\\', BLD_X_NO_QUOTES, bld_scope_lookup, st->scope,
                            &content, NULL, err) < 0) {
            return mar_err_wrap(err, "%s:%u", j->c->df->filename, j->in->line);
        }
    } else {
        content = mar_xstrdup(h->content);
    }
    _cleanup_free_ char *target = dir_dest ? (*resolved ? mar_xasprintf("%s/%s", resolved, h->name)
                                                        : mar_xstrdup(h->name))
                                           : mar_xstrdup(resolved);
    if (!*target || strchr(h->name, '/')) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: cannot write the heredoc '%s' there",
                           j->c->df->filename, j->in->line, h->name);
    }
    if (make_parents(j, stagefd, v, target, false, err) < 0) {
        return -mar_err_code(*err);
    }
    const char *base = strrchr(target, '/');
    _cleanup_free_ char *pdir = base ? mar_xstrndup(target, (size_t)(base - target)) : NULL;
    _cleanup_close_ int dd = pdir ? mar_in_root_open(stagefd, pdir, O_RDONLY | O_DIRECTORY, 0)
                                  : openat(stagefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *name = base ? base + 1 : target;
    _cleanup_close_ int fd =
            dd < 0 ? -1
                   : openat(dd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    size_t len = strlen(content);
    if (fd < 0 || write(fd, content, len) != (ssize_t)len ||
        fchown(fd, j->chown ? j->uid : 0, j->chown ? j->gid : 0) < 0 ||
        fchmod(fd, j->chmod ? j->mode : 0644) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot write '%s' in the staging directory",
                           target);
    }
    return 0;
}

/* ADD URL: downloaded (and verified) into the work directory, then copied as a file of mode
 * 0600 (or --chmod), root's (or --chown's), its time the server's Last-Modified, named after
 * the URL path's last component in a directory destination. */
MAR_MUST_USE static int add_url(bld__copy_job *j, const oci_lview *v, int stagefd, const char *url,
                                const char *resolved, bool dir_dest, mar_err **err)
{
    bld__ctx *c = j->c;
    const char *host = strstr(url, "://") + 3;
    const char *path = host + strcspn(host, "/?#");
    size_t plen = strcspn(path, "?#");
    size_t cut = plen;
    while (cut > 0 && path[cut - 1] != '/') {
        cut--;
    }
    _cleanup_free_ char *name = mar_xstrndup(path + cut, plen - cut);
    if (dir_dest && (!*name || !strcmp(name, ".") || !strcmp(name, ".."))) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: ADD %s: no file name in the URL",
                           c->df->filename, j->in->line, url);
    }
    _cleanup_free_ char *target =
            dir_dest ? (*resolved ? mar_xasprintf("%s/%s", resolved, name) : mar_xstrdup(name))
                     : mar_xstrdup(resolved);
    if (!*target) {
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: cannot copy a file to '/'", c->df->filename,
                           j->in->line);
    }
    _cleanup_free_ char *tmp = mar_xasprintf("%s/fetch-%u", c->work, c->seq++);
    _cleanup_close_ int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", tmp);
    }
    int64_t mtime = 0;
    int rc = bld__fetch_url(url, j->in->checksum, fd, &mtime, err);
    unlink(tmp);
    if (rc < 0) {
        return mar_err_wrap(err, "%s:%u: ADD", c->df->filename, j->in->line);
    }
    if (make_parents(j, stagefd, v, target, false, err) < 0) {
        return -mar_err_code(*err);
    }
    const char *base = strrchr(target, '/');
    _cleanup_free_ char *pdir = base ? mar_xstrndup(target, (size_t)(base - target)) : NULL;
    _cleanup_close_ int dd = pdir ? mar_in_root_open(stagefd, pdir, O_RDONLY | O_DIRECTORY, 0)
                                  : openat(stagefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *dname = base ? base + 1 : target;
    if (dd < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot stage '%s'", target);
    }
    if (copy_file(fd, dd, dname, err) < 0) {
        return -mar_err_code(*err);
    }
    struct stat fake;
    memset(&fake, 0, sizeof(fake));
    fake.st_mode = S_IFREG | 0600;
    fake.st_atim.tv_sec = fake.st_mtim.tv_sec = (time_t)mtime;
    bool from_ctx = j->from_ctx;
    j->from_ctx = true; /* owned by root unless --chown */
    rc = set_meta(j, dd, dname, &fake, false);
    j->from_ctx = from_ctx;
    if (rc < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot set the metadata of '%s'", dname);
    }
    return 0;
}

MAR_MUST_USE static int do_copy(bld__copy_job *j, bld__stage *st, const oci_lview *v, int stagefd,
                                mar_err **err)
{
    const bld_instr *in = j->in;
    bld__ctx *c = j->c;
    _cleanup_free_ char *dest = NULL;
    if (bld__expand(c, st, in, in->dest, &dest, err) < 0) {
        return -MAR_EUSAGE;
    }
    bool dir_dest = mar_str_endswith(dest, "/") || in->args.n + in->n_heredocs > 1;
    const char *wd = json_string_value(json_object_get(bld__cfg(&st->img), "WorkingDir"));
    _cleanup_free_ char *abs =
            dest[0] == '/' ? mar_xstrdup(dest) : mar_xasprintf("%s/%s", wd ? wd : "", dest);
    _cleanup_free_ char *clean = NULL, *resolved = NULL;
    bool exists = false;
    if (oci_clean_path(abs, &clean, err) < 0 ||
        oci_lview_resolve(v, clean, true, &resolved, &exists, err) < 0) {
        return mar_err_wrap(err, "%s:%u: COPY destination", c->df->filename, in->line);
    }
    struct stat dst_st;
    mar_err *e = NULL;
    size_t lay;
    if (exists && oci_lview_stat(v, resolved, &lay, &dst_st, NULL, &e) == 0 &&
        S_ISDIR(dst_st.st_mode)) {
        dir_dest = true;
    }
    mar_err_free(e);
    _cleanup_strv_ mar_strv srcs = MAR_STRV_INIT, urls = MAR_STRV_INIT;
    bool wild = false;
    if (bld__copy_gather(j, st, &srcs, &urls, &wild, err) < 0) {
        return -mar_err_code(*err);
    }
    dir_dest = dir_dest || wild;
    for (size_t i = 0; i < urls.n; i++) {
        if (add_url(j, v, stagefd, urls.v[i], resolved, dir_dest, err) < 0) {
            return -mar_err_code(*err);
        }
    }
    for (size_t i = 0; i < srcs.n; i++) {
        const char *s = srcs.v[i];
        int sfd;
        if (bld__copy_open_source(j, s, &sfd, err) < 0) {
            return -mar_err_code(*err);
        }
        if (sfd < 0) {
            continue; /* a file source (or wildcard match) the exclusions name */
        }
        _cleanup_close_ int sf = sfd;
        struct stat sst;
        if (fstat(sf, &sst) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", s);
        }
        if (j->in->kind == BLD_ADD && j->from_ctx && S_ISREG(sst.st_mode)) {
            _cleanup_close_ int af =
                    mar_in_root_open(j->srcroot, s, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
            int kind = af >= 0 ? bld__archive_kind(af) : BLD__ARCHIVE_NONE;
            if (kind == BLD__ARCHIVE_UNSUPPORTED) {
                return mar_err_set(err, MAR_EUSAGE, 0,
                                   "%s:%u: ADD of '%s', which this libarchive cannot decompress, "
                                   "is not supported by mar build",
                                   c->df->filename, in->line, s);
            }
            if (kind == BLD__ARCHIVE_TAR) {
                if (extract(j, stagefd, v, af, s, resolved, err) < 0) {
                    return -mar_err_code(*err);
                }
                continue;
            }
        }
        if (S_ISDIR(sst.st_mode)) {
            /* The directory's contents go to the destination directory. */
            if (make_parents(j, stagefd, v, resolved, true, err) < 0) {
                return -mar_err_code(*err);
            }
            _cleanup_close_ int sd = openat(sf, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            _cleanup_close_ int dd =
                    *resolved ? mar_in_root_open(stagefd, resolved, O_RDONLY | O_DIRECTORY, 0)
                              : openat(stagefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sd < 0 || dd < 0 || copy_tree(j, sd, s, dd, err) < 0) {
                return *err ? -mar_err_code(*err)
                            : mar_err_set(err, MAR_EIO, errno, "cannot copy '%s'", s);
            }
            continue;
        }
        _cleanup_free_ char *target =
                dir_dest ? (*resolved ? mar_xasprintf("%s/%s", resolved,
                                                      strrchr(s, '/') ? strrchr(s, '/') + 1 : s)
                                      : mar_xstrdup(strrchr(s, '/') ? strrchr(s, '/') + 1 : s))
                         : mar_xstrdup(resolved);
        if (!*target) {
            return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: cannot copy a file to '/'",
                               c->df->filename, in->line);
        }
        if (make_parents(j, stagefd, v, target, false, err) < 0) {
            return -mar_err_code(*err);
        }
        const char *base = strrchr(target, '/');
        _cleanup_free_ char *pdir = base ? mar_xstrndup(target, (size_t)(base - target)) : NULL;
        _cleanup_close_ int dd = pdir ? mar_in_root_open(stagefd, pdir, O_RDONLY | O_DIRECTORY, 0)
                                      : openat(stagefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dd < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot open '%s' in the staging directory",
                               pdir ? pdir : ".");
        }
        const char *dname = base ? base + 1 : target;
        if (!S_ISREG(sst.st_mode)) {
            return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: '%s' is not a file or directory",
                               c->df->filename, in->line, s);
        }
        _cleanup_close_ int rf =
                mar_in_root_open(j->srcroot, s, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
        if (rf < 0 || copy_file(rf, dd, dname, err) < 0) {
            return *err ? -mar_err_code(*err)
                        : mar_err_set(err, MAR_EIO, errno, "cannot read '%s'", s);
        }
        if (set_meta(j, dd, dname, &sst, false) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot set the metadata of '%s'", dname);
        }
    }
    for (size_t i = 0; i < in->n_heredocs; i++) {
        if (copy_heredoc(j, st, v, stagefd, &in->heredocs[i], resolved, dir_dest, err) < 0) {
            return -mar_err_code(*err);
        }
    }
    return 0;
}

const bld__image *bld__from_image(bld__ctx *c, const char *from, size_t before, bld__image *tmp,
                                  mar_err **err)
{
    memset(tmp, 0, sizeof(*tmp));
    long si = bld__stage_ref(c->df, from, before);
    if (si >= 0) {
        return &c->stages[si].img;
    }
    for (size_t k = 0; k < c->n_extra; k++) {
        if (c->extra[k].name && strcmp(c->extra[k].name, from) == 0) {
            return bld__image_from_store(c->o->store, &c->extra[k], tmp, err) == 0 ? tmp : NULL;
        }
    }
    mar_err_set(err, MAR_ENOTFOUND, 0, "--from=%s: no such stage or image", from);
    return NULL;
}

long bld__stage_ref(const bld_dockerfile *df, const char *from, size_t before)
{
    for (size_t i = 0; i < before && i < df->n_stages; i++) {
        if (df->stages[i].name && mar_str_caseeq(df->stages[i].name, from)) {
            return (long)i;
        }
    }
    int64_t idx;
    if (mar_parse_i64(from, 0, (int64_t)before - 1, &idx)) {
        return (long)idx;
    }
    return -1;
}

int bld__copy(bld__ctx *c, bld__stage *st, const bld_instr *in, bool *ret_cached, mar_err **err)
{
    *ret_cached = false;
    bld__copy_job j = {.c = c, .in = in, .srcroot = c->context_fd, .from_ctx = true};
    int fds[OCI_LVIEW_MAX_LAYERS];
    size_t n_fds = 0;
    _cleanup_free_ char *stage = NULL, *mnt = NULL;
    int rc = -1;
    int mroot = -1;
    _cleanup_close_ int stagefd = -1;
    mar_digest content, key;
    bool keyed = false;
    if (in->excludes.n && bld_ignore_from_patterns((const char *const *)in->excludes.v,
                                                   in->excludes.n, &j.exclude, err) < 0) {
        mar_err_wrap(err, "%s:%u: --exclude", c->df->filename, in->line);
        goto out;
    }
    if (bld__copy_key(&j, st, &content, &keyed, err) < 0) {
        goto out;
    }
    keyed = keyed && bld__cache_key(c, st, in, &content, &key);
    if (keyed) {
        int hit = bld__cache_use(c, &st->img, &key, err);
        if (hit < 0) {
            goto out;
        }
        if (hit) {
            *ret_cached = true;
            rc = 0;
            goto out;
        }
    }
    if (bld__open_layers(c, &st->img, fds, &n_fds, err) < 0) {
        goto out;
    }
    oci_lview v = {.fds = fds, .n = n_fds};
    if (in->chown && resolve_chown(&j, st, &v, err) < 0) {
        goto out;
    }
    if (in->chmod) {
        size_t ml = strlen(in->chmod);
        if (ml == 0 || ml > 5 || strspn(in->chmod, "01234567") != ml) {
            mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: --chmod=%s: only octal modes are supported",
                        c->df->filename, in->line, in->chmod);
            goto out;
        }
        j.chmod = true;
        j.mode = (mode_t)strtol(in->chmod, NULL, 8);
    }
    if (in->from) {
        _cleanup_free_ char *from = NULL;
        if (bld__expand(c, st, in, in->from, &from, err) < 0) {
            goto out;
        }
        bld__image tmp;
        const bld__image *src = bld__from_image(c, from, (size_t)(st - c->stages), &tmp, err);
        if (!src) {
            mar_err_wrap(err, "%s:%u", c->df->filename, in->line);
            goto out;
        }
        rc = bld__mount_image(c, src, &mnt, err);
        bld__image_release(&tmp);
        if (rc < 0) {
            rc = -1;
            free(TAKE_PTR(mnt));
            goto out;
        }
        rc = -1;
        mroot = mar_root_open(mnt, err);
        if (mroot < 0) {
            goto out;
        }
        j.srcroot = mroot;
        j.from_ctx = false;
    }
    if (bld__mkwork(c, "copy", &stage, err) < 0) {
        goto out;
    }
    stagefd = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (stagefd < 0) {
        mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", stage);
        goto out;
    }
    if (do_copy(&j, st, &v, stagefd, err) < 0) {
        goto out;
    }
    if (!keyed) {
        /* An ADD of a URL: the staged tree is exactly what the layer will hold, so its diff_id
         * stands for the download in the key. */
        if (bld__tree_diff_id(c, stagefd, false, &content, err) < 0) {
            goto out;
        }
        keyed = bld__cache_key(c, st, in, &content, &key);
        int hit = keyed ? bld__cache_use(c, &st->img, &key, err) : 0;
        if (hit < 0) {
            goto out;
        }
        if (hit) {
            *ret_cached = true;
            rc = 0;
            goto out;
        }
    }
    if (bld__commit_tree(c, &st->img, stagefd, false, err) < 0) {
        goto out;
    }
    if (keyed) {
        bld__cache_record(c, &st->img, &key);
    }
    rc = 0;
out:
    bld_ignore_free(j.exclude);
    for (size_t i = 0; i < n_fds; i++) {
        close(fds[i]);
    }
    if (mroot >= 0) {
        close(mroot);
    }
    if (mnt) {
        umount2(mnt, MNT_DETACH);
        rmdir(mnt);
    }
    if (stage) {
        _cleanup_close_ int wfd = open(c->work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        mar_err *e = NULL;
        if (wfd >= 0 && oci_remove_at(wfd, strrchr(stage, '/') + 1, &e) < 0) {
            mar_err_free(e);
        }
    }
    return rc < 0 ? -mar_err_code(*err) : 0;
}
