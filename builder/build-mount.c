/* RUN --mount (Dockerfile reference, "RUN --mount"; docs/internals/build.md §5): every mount
 * becomes a bind of a directory or file mar prepares, so that what the step writes there stays
 * out of its upper directory and so out of the layer.
 *   cache   a directory of the store, <store>/cache/<sha256 of id, platform and from=>, kept
 *           between builds: created with mode, uid, gid, or seeded with a copy of from='s
 *           source; sharing=locked and private through flock(2) on <dir>.lock
 *   tmpfs   an empty directory under the work directory, gone with the build
 *   bind    a path of the context or of a stage or image (mounted read-only), read-only; with
 *           rw, the same path under an overlay whose upper directory is thrown away after the
 *           step (BuildKit: writes to a writable bind are discarded)
 *   secret  the --secret file (or a file holding the environment variable's value), read-only
 *           at /run/secrets/<id> or its target, or an environment variable with env= */
#include "build-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>

void bld__mounts_release(bld__mounts *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->binds[i].source);
        free(m->binds[i].dest);
    }
    free(m->binds);
    mar_strv_release(&m->env);
    /* Last mounted first: a writable bind's overlay may sit on a stage mounted before it. */
    for (size_t i = m->unmount.n; i-- > 0;) {
        umount2(m->unmount.v[i], MNT_DETACH);
        rmdir(m->unmount.v[i]);
    }
    mar_strv_release(&m->unmount);
    for (size_t i = 0; i < m->discard.n; i++) {
        _cleanup_free_ char *dir = mar_xstrdup(m->discard.v[i]);
        const char *base = strrchr(m->discard.v[i], '/') + 1;
        _cleanup_close_ int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        mar_err *e = NULL;
        if (dfd < 0 || oci_remove_at(dfd, base, &e) < 0) {
            mar_diag_warn("cannot remove '%s': %s", m->discard.v[i], e ? e->msg : strerror(errno));
            mar_err_free(e);
        }
    }
    mar_strv_release(&m->discard);
    for (size_t i = 0; i < m->n_locks; i++) {
        close(m->locks[i]);
    }
    free(m->locks);
    mar_strv_release(&m->held);
    memset(m, 0, sizeof(*m));
}

static void add_bind(bld__mounts *m, char *source, const char *target, bool readonly)
{
    m->binds = mar_xrealloc(m->binds, (m->n + 1) * sizeof(*m->binds));
    m->binds[m->n++] =
            (vm_bind){.source = source,
                      .dest = target[0] == '/' ? mar_xstrdup(target) : mar_xasprintf("/%s", target),
                      .readonly = readonly};
}

/* A path under root (a directory this process resolved), refused when it leaves it. */
static int inside(const char *root, const char *rel, char **ret, mar_err **err)
{
    _cleanup_free_ char *clean = NULL;
    if (oci_clean_path(rel, &clean, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_free_ char *rroot = realpath(root, NULL);
    _cleanup_free_ char *joined = mar_xasprintf("%s/%s", root, clean);
    char *real = realpath(joined, NULL);
    size_t rl = rroot ? strlen(rroot) : 0;
    if (!rroot || !real) {
        free(real);
        return mar_err_set(err, MAR_ENOTFOUND, errno, "'%s' not found", rel);
    }
    if (strncmp(real, rroot, rl) != 0 || (real[rl] != '\0' && real[rl] != '/')) {
        free(real);
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' leads out of its root", rel);
    }
    *ret = real;
    return 0;
}

/* The root of a mount's from= (a stage or image, mounted read-only until the step ends), or
 * the context. *ret_root is borrowed (the mount belongs to ret); *ret_chain, when asked for,
 * is what identifies the from's content: its top layer's ChainID (new string). */
static int from_root(bld__ctx *c, bld__stage *st, const bld_mount *m, bld__mounts *ret,
                     const char **ret_root, char **ret_chain, mar_err **err)
{
    *ret_root = c->o->context;
    if (!m->from) {
        return 0;
    }
    bld__image tmp;
    const bld__image *im = bld__from_image(c, m->from, (size_t)(st - c->stages), &tmp, err);
    if (!im) {
        return -mar_err_code(*err);
    }
    if (ret_chain) {
        *ret_chain = mar_xstrdup(im->n_layers ? im->layers[im->n_layers - 1].chain.str : "empty");
    }
    char *mnt = NULL;
    int rc = bld__mount_image(c, im, &mnt, err);
    bld__image_release(&tmp);
    if (mnt) {
        mar_strv_push_take(&ret->unmount, mnt);
    }
    if (rc < 0) {
        return rc;
    }
    *ret_root = ret->unmount.v[ret->unmount.n - 1];
    return 0;
}

/* Waits for flock(fd, op) while watching the build's signal fd: a signal ends the wait as it
 * ends a step (bld__interrupted). */
static int lock_wait(bld__ctx *c, int fd, int op, const char *what, mar_err **err)
{
    for (;;) {
        if (flock(fd, op | LOCK_NB) == 0) {
            return 0;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            return mar_err_set(err, MAR_EIO, errno, "cannot lock the cache '%s'", what);
        }
        struct pollfd p = {.fd = c->sigfd, .events = POLLIN};
        int pr = c->sigfd >= 0 ? poll(&p, 1, 250) : poll(NULL, 0, 250);
        if (pr > 0 && (p.revents & POLLIN)) {
            if (bld__interrupted(c->sigfd, err) < 0) {
                return -mar_err_code(*err);
            }
        } else if (pr > 0) {
            poll(NULL, 0, 250); /* a closed or failed fd: no busy loop */
        }
    }
}

/* Copies from='s source (rootdir/rel) into a new directory of the work directory through the
 * layer writer and the unpacker (modes, owners, times, links kept; nothing followed out of the
 * source). Returns: its path. */
static int seed_copy(bld__ctx *c, const char *src, char **ret, mar_err **err)
{
    _cleanup_close_ int sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0) {
        return mar_err_set(err, MAR_EUSAGE, errno, "the source of a cache must be a directory");
    }
    _cleanup_free_ char *dir = NULL;
    if (bld__mkwork(c, "seed", &dir, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_free_ char *tarp = mar_xasprintf("%s/seed.tar", dir);
    _cleanup_free_ char *tree = mar_xasprintf("%s/tree", dir);
    _cleanup_close_ int tfd = open(tarp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    struct stat st;
    if (tfd < 0 || fstat(sfd, &st) < 0 || mkdir(tree, 0700) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot seed a cache in '%s'", dir);
    }
    oci_layer_write_opts wo = OCI_LAYER_WRITE_OPTS_INIT;
    wo.codec = OCI_CODEC_NONE;
    wo.threads = 1;
    oci_layer_written w;
    if (oci_layer_write_dir(sfd, &wo, tfd, &w, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_close_ int dfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    oci_unpack_opts uo = {.mode = OCI_UNPACK_APPLY};
    oci_unpack_result res;
    if (dfd < 0 || lseek(tfd, 0, SEEK_SET) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot seed a cache in '%s'", dir);
    }
    int rc = oci_unpack(tfd, dfd, &uo, &res, err);
    oci_unpack_result_release(&res);
    /* The directory itself is the source's, as BuildKit mounts the source path. */
    if (rc == 0 && (fchown(dfd, st.st_uid, st.st_gid) < 0 || fchmod(dfd, st.st_mode & 07777) < 0)) {
        rc = mar_err_set(err, MAR_EIO, errno, "cannot seed a cache in '%s'", dir);
    }
    if (rc < 0) {
        return rc;
    }
    *ret = TAKE_PTR(tree);
    return 0;
}

/* The cache directory of a mount: <store>/cache/<hex of id, target platform and, with from=,
 * the from's content and source>; with sharing=private, the first of <hex>, <hex>-1, ... that
 * no other step holds. Made on first use: empty with mode, uid and gid, or a copy of from='s
 * source (BuildKit: "from: build stage, context, or image name to use as a base of the cache
 * mount"). Its lock (<dir>.lock) is held in ret until the step ends: shared for shared, the
 * default, exclusive for locked (waiting for the holders) and private. */
static int cache_dir(bld__ctx *c, bld__stage *st, const bld_mount *m, const char *target,
                     bld__mounts *ret, char **ret_dir, mar_err **err)
{
    int sfd = reg_store_dirfd(c->o->store);
    if (mkdirat(sfd, "cache", 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/cache'",
                           reg_store_path(c->o->store));
    }
    _cleanup_free_ char *seed_src = NULL;
    mar_buf keyed = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xappend(&keyed, m->id ? m->id : target, strlen(m->id ? m->id : target) + 1);
    mar_buf_xappend(&keyed, c->target_str, strlen(c->target_str));
    if (m->from) {
        const char *root;
        _cleanup_free_ char *chain = NULL;
        if (from_root(c, st, m, ret, &root, &chain, err) < 0 ||
            inside(root, m->source ? m->source : ".", &seed_src, err) < 0) {
            mar_buf_release(&keyed);
            return mar_err_wrap(err, "--mount=%s", m->spec);
        }
        mar_buf_xappend(&keyed, "", 1);
        mar_buf_xappend(&keyed, chain, strlen(chain) + 1);
        mar_buf_xputs(&keyed, m->source ? m->source : ".");
    }
    mar_digest d;
    mar_digest_of(MAR_DIGEST_SHA256, keyed.data, keyed.len, &d);
    mar_buf_release(&keyed);
    _cleanup_free_ char *rel = NULL;
    for (unsigned k = 0;; k++) {
        free(rel);
        rel = k ? mar_xasprintf("cache/%s-%u", mar_digest_hex(&d), k)
                : mar_xasprintf("cache/%s", mar_digest_hex(&d));
        bool held = false;
        for (size_t i = 0; i < ret->held.n && !held; i++) {
            held = strcmp(ret->held.v[i], rel) == 0;
        }
        if (held) {
            break; /* another mount of this step has it: a second lock would wait for itself */
        }
        _cleanup_free_ char *lock = mar_xasprintf("%s.lock", rel);
        int lfd = openat(sfd, lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lfd < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", lock);
        }
        ret->locks = mar_xrealloc(ret->locks, (ret->n_locks + 1) * sizeof(*ret->locks));
        ret->locks[ret->n_locks++] = lfd;
        if (m->sharing == BLD_SHARING_PRIVATE) {
            if (flock(lfd, LOCK_EX | LOCK_NB) == 0) {
                mar_strv_push(&ret->held, rel);
                break;
            }
            if (errno != EWOULDBLOCK || k >= 255) {
                return mar_err_set(err, MAR_EIO, errno, "cannot lock a private cache '%s'", rel);
            }
            close(ret->locks[--ret->n_locks]);
            continue;
        }
        if (lock_wait(c, lfd, m->sharing == BLD_SHARING_LOCKED ? LOCK_EX : LOCK_SH, rel, err) < 0) {
            return -mar_err_code(*err);
        }
        mar_strv_push(&ret->held, rel);
        break;
    }
    if (seed_src) {
        _cleanup_free_ char *tree = NULL;
        struct stat dst;
        if (fstatat(sfd, rel, &dst, AT_SYMLINK_NOFOLLOW) < 0) {
            if (seed_copy(c, seed_src, &tree, err) < 0) {
                return mar_err_wrap(err, "--mount=%s", m->spec);
            }
            /* Another build may have made it meanwhile: its copy stands, ours goes with the
             * work directory. */
            if (renameat2(AT_FDCWD, tree, sfd, rel, RENAME_NOREPLACE) < 0 && errno != EEXIST) {
                return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/%s'",
                                   reg_store_path(c->o->store), rel);
            }
        }
    } else if (mkdirat(sfd, rel, 0755) == 0) {
        if (fchownat(sfd, rel, m->uid >= 0 ? (uid_t)m->uid : 0, m->gid >= 0 ? (gid_t)m->gid : 0,
                     0) < 0 ||
            fchmodat(sfd, rel, m->mode >= 0 ? (mode_t)m->mode : 0755, 0) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot set up the cache '%s'", rel);
        }
    } else if (errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/%s'",
                           reg_store_path(c->o->store), rel);
    }
    *ret_dir = mar_xasprintf("%s/%s", reg_store_path(c->o->store), rel);
    return 0;
}

/* A writable bind (BuildKit: what the step writes there is discarded): an overlay with the
 * source directory (a file's directory) as its lower directory, named by a descriptor so that
 * no path is parsed as mount options, and a fresh upper directory under the work directory
 * that is removed after the step. Returns: the path to bind. */
static int discardable(bld__ctx *c, const char *source, bld__mounts *ret, char **ret_path,
                       mar_err **err)
{
    struct stat st;
    if (stat(source, &st) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", source);
    }
    bool dir = S_ISDIR(st.st_mode);
    _cleanup_free_ char *copy = mar_xstrdup(source);
    _cleanup_close_ int lfd = open(dir ? source : dirname(copy), O_PATH | O_DIRECTORY | O_CLOEXEC);
    char *top = NULL;
    if (lfd < 0 || bld__mkwork(c, "rw", &top, err) < 0) {
        return *err ? -mar_err_code(*err)
                    : mar_err_set(err, MAR_EIO, errno, "cannot open the directory of '%s'", source);
    }
    mar_strv_push_take(&ret->discard, top);
    static const char *const sub[] = {"upper", "work", "mnt"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(sub); i++) {
        _cleanup_free_ char *p = mar_xasprintf("%s/%s", top, sub[i]);
        if (mkdir(p, 0755) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", p);
        }
    }
    _cleanup_free_ char *mnt = mar_xasprintf("%s/mnt", top);
    _cleanup_free_ char *opts = mar_xasprintf(
            "lowerdir=/proc/self/fd/%d,upperdir=%s/upper,workdir=%s/work", lfd, top, top);
    if (mount("overlay", mnt, "overlay", MS_NODEV | MS_NOSUID, opts) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot mount an overlay over '%s'", source);
    }
    mar_strv_push(&ret->unmount, mnt);
    _cleanup_free_ char *scopy = mar_xstrdup(source);
    *ret_path = dir ? TAKE_PTR(mnt) : mar_xasprintf("%s/%s", mnt, basename(scopy));
    return 0;
}

static const bld_secret *find_secret(const bld_opts *o, const char *id)
{
    for (size_t i = o->n_secrets; i-- > 0;) {
        if (strcmp(o->secrets[i].id, id) == 0) {
            return &o->secrets[i];
        }
    }
    return NULL;
}

static int secret(bld__ctx *c, const bld_mount *m, bld__mounts *ret, mar_err **err)
{
    const char *id = m->id;
    _cleanup_free_ char *dflt = NULL;
    if (!id && m->target) {
        const char *slash = strrchr(m->target, '/');
        id = slash ? slash + 1 : m->target;
    }
    if (!id || !*id) {
        return mar_err_set(err, MAR_EUSAGE, 0, "a secret mount needs an id");
    }
    const bld_secret *s = find_secret(c->o, id);
    if (!s) {
        return m->required ? mar_err_set(err, MAR_EUSAGE, 0,
                                         "secret '%s' is required and no --secret gives it", id)
                           : 0;
    }
    if (m->env) {
        if (s->value) {
            mar_strv_push_take(&ret->env, mar_xasprintf("%s=%s", m->env, s->value));
        } else {
            _cleanup_buf_ mar_buf b = MAR_BUF_INIT(1u << 20);
            if (mar_read_file_at(AT_FDCWD, s->path, 1u << 20, &b, err) < 0) {
                return mar_err_wrap(err, "secret '%s'", id);
            }
            mar_strv_push_take(&ret->env, mar_xasprintf("%s=%.*s", m->env, (int)b.len, b.data));
            mar_memzero(b.data, b.len);
        }
        if (!m->target) {
            return 0;
        }
    }
    char *source = NULL;
    if (s->path) {
        source = realpath(s->path, NULL);
        if (!source) {
            return mar_err_set(err, MAR_ENOTFOUND, errno, "secret '%s': '%s' not found", id,
                               s->path);
        }
    } else {
        char *dir = NULL;
        if (bld__mkwork(c, "secret", &dir, err) < 0) {
            return -mar_err_code(*err);
        }
        source = mar_xasprintf("%s/value", dir);
        free(dir);
        int fd = open(source, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
        size_t len = strlen(s->value);
        bool ok = fd >= 0 && write(fd, s->value, len) == (ssize_t)len;
        if (fd >= 0) {
            close(fd);
        }
        if (!ok) {
            free(source);
            return mar_err_set(err, MAR_EIO, errno, "cannot stage secret '%s'", id);
        }
    }
    dflt = mar_xasprintf("/run/secrets/%s", id);
    add_bind(ret, source, m->target ? m->target : dflt, true);
    return 0;
}

static int one(bld__ctx *c, bld__stage *st, const bld_instr *in, const bld_mount *m,
               bld__mounts *ret, mar_err **err)
{
    const char *target = m->target;
    if (m->type != BLD_MOUNT_SECRET && (!target || !*target)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "--mount=%s: no target", m->spec);
    }
    switch (m->type) {
    case BLD_MOUNT_CACHE: {
        char *dir = NULL;
        if (cache_dir(c, st, m, target, ret, &dir, err) < 0) {
            return -mar_err_code(*err);
        }
        add_bind(ret, dir, target, m->readonly);
        return 0;
    }
    case BLD_MOUNT_TMPFS: {
        char *dir = NULL;
        if (bld__mkwork(c, "tmpfs", &dir, err) < 0) {
            return -mar_err_code(*err);
        }
        chmod(dir, 01777);
        add_bind(ret, dir, target, false);
        return 0;
    }
    case BLD_MOUNT_BIND: {
        const char *root;
        char *source = NULL;
        if (from_root(c, st, m, ret, &root, NULL, err) < 0 ||
            inside(root, m->source ? m->source : ".", &source, err) < 0) {
            return mar_err_wrap(err, "--mount=%s", m->spec);
        }
        if (!m->readonly) {
            _cleanup_free_ char *real = source;
            source = NULL;
            if (discardable(c, real, ret, &source, err) < 0) {
                return mar_err_wrap(err, "--mount=%s", m->spec);
            }
        }
        add_bind(ret, source, target, m->readonly);
        return 0;
    }
    case BLD_MOUNT_SECRET:
        return secret(c, m, ret, err);
    }
    (void)in;
    return 0;
}

int bld__mounts_setup(bld__ctx *c, bld__stage *st, const bld_instr *in, bld__mounts *ret,
                      mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    for (size_t i = 0; i < in->n_mounts; i++) {
        bld_mount m;
        if (bld_mount_parse(in->mounts[i].spec, c->df->escape, bld_scope_lookup, st->scope, &m,
                            err) < 0) {
            bld__mounts_release(ret);
            return mar_err_wrap(err, "%s:%u", c->df->filename, in->line);
        }
        int rc = one(c, st, in, &m, ret, err);
        bld_mount_release(&m);
        if (rc < 0) {
            bld__mounts_release(ret);
            return mar_err_wrap(err, "%s:%u", c->df->filename, in->line);
        }
    }
    return 0;
}
