/* RUN --mount (Dockerfile reference, "RUN --mount"; docs/internals/build.md §5): every mount
 * becomes a bind of a directory or file mar prepares, so that what the step writes there stays
 * out of its upper directory and so out of the layer.
 *   cache   a directory of the store, <store>/cache/<sha256 of id and platform>, kept between
 *           builds (created with mode, uid, gid); sharing modes are not told apart
 *   tmpfs   an empty directory under the work directory, gone with the build
 *   bind    a path of the context or of a stage or image (mounted read-only), read-only
 *   secret  the --secret file (or a file holding the environment variable's value), read-only
 *           at /run/secrets/<id> or its target, or an environment variable with env= */
#include "build-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
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
    for (size_t i = 0; i < m->unmount.n; i++) {
        umount2(m->unmount.v[i], MNT_DETACH);
        rmdir(m->unmount.v[i]);
    }
    mar_strv_release(&m->unmount);
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

static int cache_dir(bld__ctx *c, const bld_mount *m, const char *target, char **ret, mar_err **err)
{
    int sfd = reg_store_dirfd(c->o->store);
    if (mkdirat(sfd, "cache", 0700) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/cache'",
                           reg_store_path(c->o->store));
    }
    size_t kl = strlen(m->id ? m->id : target) + 1;
    _cleanup_free_ char *keyed = mar_xmalloc(kl + strlen(c->target_str) + 1);
    memcpy(keyed, m->id ? m->id : target, kl);
    memcpy(keyed + kl, c->target_str, strlen(c->target_str) + 1);
    mar_digest d;
    mar_digest_of(MAR_DIGEST_SHA256, keyed, kl + strlen(c->target_str), &d);
    _cleanup_free_ char *rel = mar_xasprintf("cache/%s", mar_digest_hex(&d));
    if (mkdirat(sfd, rel, 0755) == 0) {
        if (fchownat(sfd, rel, m->uid >= 0 ? (uid_t)m->uid : 0, m->gid >= 0 ? (gid_t)m->gid : 0,
                     0) < 0 ||
            fchmodat(sfd, rel, m->mode >= 0 ? (mode_t)m->mode : 0755, 0) < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot set up the cache '%s'", rel);
        }
    } else if (errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/%s'",
                           reg_store_path(c->o->store), rel);
    }
    *ret = mar_xasprintf("%s/%s", reg_store_path(c->o->store), rel);
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
        if (m->from) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "--mount=%s: a cache seeded from= is not supported yet", m->spec);
        }
        char *dir = NULL;
        if (cache_dir(c, m, target, &dir, err) < 0) {
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
        if (!m->readonly) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "--mount=%s: a writable bind mount is not supported yet", m->spec);
        }
        const char *root = c->o->context;
        _cleanup_free_ char *mnt = NULL;
        if (m->from) {
            bld__image tmp;
            const bld__image *im = bld__from_image(c, m->from, (size_t)(st - c->stages), &tmp, err);
            if (!im) {
                return -mar_err_code(*err);
            }
            int rc = bld__mount_image(c, im, &mnt, err);
            bld__image_release(&tmp);
            if (rc < 0) {
                free(TAKE_PTR(mnt));
                return rc;
            }
            mar_strv_push(&ret->unmount, mnt);
            root = mnt;
        }
        char *source = NULL;
        if (inside(root, m->source ? m->source : ".", &source, err) < 0) {
            return mar_err_wrap(err, "--mount=%s", m->spec);
        }
        add_bind(ret, source, target, true);
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
