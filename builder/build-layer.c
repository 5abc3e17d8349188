/* The images stages build on and the layers they add (docs/internals/build.md §3): a tree (an
 * overlay upper directory after RUN, a staging directory after COPY) becomes a layer blob in the
 * store through oci/'s layer writer, and is unpacked into its ChainID directory as a pull would
 * unpack it (its regular files hard-linked from the tree rather than written again), so that the
 * next step and `mar run` mount it like any pulled layer. */
#include "build-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

void bld__image_release(bld__image *im)
{
    for (size_t i = 0; i < im->n_layers; i++) {
        free(im->layers[i].media_type);
    }
    free(im->layers);
    json_decref(im->config);
    mar_strv_release(&im->shell);
    memset(im, 0, sizeof(*im));
}

static void default_shell(bld__image *im)
{
    mar_strv_push(&im->shell, "/bin/sh");
    mar_strv_push(&im->shell, "-c");
}

void bld__image_copy(const bld__image *in, bld__image *out)
{
    memset(out, 0, sizeof(*out));
    out->layers = mar_xcalloc(in->n_layers + 1, sizeof(*out->layers));
    for (size_t i = 0; i < in->n_layers; i++) {
        out->layers[i] = in->layers[i];
        out->layers[i].media_type = mar_xstrdup(in->layers[i].media_type);
    }
    out->n_layers = in->n_layers;
    out->config = json_deep_copy(in->config);
    out->platform = in->platform;
    for (size_t i = 0; i < in->shell.n; i++) {
        mar_strv_push(&out->shell, in->shell.v[i]);
    }
}

static void set_platform(json_t *doc, const oci_platform *p)
{
    json_object_set_new(doc, "architecture", json_string(p->arch));
    json_object_set_new(doc, "os", json_string(p->os));
    if (p->variant[0]) {
        json_object_set_new(doc, "variant", json_string(p->variant));
    } else {
        json_object_del(doc, "variant");
    }
}

int bld__image_from_store(reg_store *s, const reg_store_image *si, bld__image *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_buf_ mar_buf b = MAR_BUF_INIT(MAR_CAP_CONFIG);
    if (reg_store_read(s, &si->manifest->config.digest, MAR_CAP_CONFIG, &b, err) < 0) {
        return -mar_err_code(*err);
    }
    json_t *doc;
    if (mar_json_load(b.data, b.len, "image config", &doc, err) < 0) {
        return -mar_err_code(*err);
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return mar_err_set(err, MAR_EINTEGRITY, 0, "the config of '%s' is not an object", si->name);
    }
    ret->config = doc;
    size_t n = si->manifest->n_layers;
    ret->layers = mar_xcalloc(n + 1, sizeof(*ret->layers));
    for (size_t i = 0; i < n; i++) {
        const oci_descriptor *d = &si->manifest->layers[i];
        ret->layers[i] = (bld__layer){.media_type = mar_xstrdup(d->media_type),
                                      .digest = d->digest,
                                      .size = d->size,
                                      .diff_id = si->config->diff_ids[i],
                                      .chain = si->chains[i]};
    }
    ret->n_layers = n;
    ret->platform = si->platform;
    default_shell(ret);
    json_t *sh = json_object_get(bld__cfg(ret), "Shell");
    if (json_is_array(sh) && json_array_size(sh) > 0) {
        mar_strv_release(&ret->shell);
        size_t i;
        json_t *v;
        json_array_foreach(sh, i, v)
        {
            if (json_is_string(v)) {
                mar_strv_push(&ret->shell, json_string_value(v));
            }
        }
    }
    return 0;
}

void bld__image_scratch(const oci_platform *p, bld__image *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->config = json_object();
    set_platform(ret->config, p);
    json_object_set_new(ret->config, "config", json_object());
    ret->layers = mar_xcalloc(1, sizeof(*ret->layers));
    ret->platform = *p;
    default_shell(ret);
}

json_t *bld__cfg(bld__image *im)
{
    json_t *c = json_object_get(im->config, "config");
    if (!json_is_object(c)) {
        c = json_object();
        json_object_set_new(im->config, "config", c);
    }
    return c;
}

int bld__open_layers(const bld__ctx *c, const bld__image *im, int *fds, size_t *ret_n,
                     mar_err **err)
{
    size_t n = im->n_layers;
    *ret_n = 0;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *p = reg_store_layer_path(c->o->store, &im->layers[n - 1 - i].chain);
        fds[i] = open(p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fds[i] < 0) {
            int e = errno;
            for (size_t k = 0; k < i; k++) {
                close(fds[k]);
            }
            return mar_err_set(err, MAR_EIO, e, "cannot open the unpacked layer '%s'", p);
        }
    }
    *ret_n = n;
    return 0;
}

char *bld__lowerdir(const bld__ctx *c, const bld__image *im)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xputs(&b, "lowerdir=");
    for (size_t i = 0; i < im->n_layers; i++) {
        _cleanup_free_ char *p =
                reg_store_layer_path(c->o->store, &im->layers[im->n_layers - 1 - i].chain);
        mar_buf_xprintf(&b, "%s%s", i ? ":" : "", p);
    }
    /* An empty directory at the bottom: an overlay needs a lower directory, and without an
     * upper one at least two (filesystems/overlayfs.rst "Multiple lower layers"). */
    mar_buf_xprintf(&b, "%s%s/empty", im->n_layers ? ":" : "", c->work);
    return mar_buf_detach(&b, NULL);
}

int bld__mkwork(bld__ctx *c, const char *what, char **ret, mar_err **err)
{
    char *p = mar_xasprintf("%s/%s-%u", c->work, what, c->seq++);
    if (mkdir(p, 0700) < 0) {
        int e = errno;
        mar_err_set(err, MAR_EIO, e, "cannot create '%s'", p);
        free(p);
        return -MAR_EIO;
    }
    *ret = p;
    return 0;
}

/* Moves the blob file (dirfd/name, in the work directory on the store's filesystem) into the
 * store under its digest without copying it: it becomes the blob's ingest, is hashed again there
 * (a read of what is still in the page cache) and the ingest commits only what that hash
 * verifies (docs/internals/build.md §3). */
MAR_MUST_USE static int store_blob(reg_store *s, int fd, int dirfd, const char *name,
                                   const oci_layer_written *w, mar_err **err)
{
    reg_ingest *g;
    int rc = reg_ingest_begin(s, &w->digest, (int64_t)w->size, true, &g, err);
    if (rc < 0 || !g) {
        return rc < 0 ? rc : 0;
    }
    _cleanup_hasher_ mar_hasher *h = mar_hasher_new(MAR_DIGEST_SHA256);
    char buf[1 << 16];
    uint64_t off = 0;
    if (reg_ingest_adopt(g, fd, dirfd, name, err) < 0) {
        goto fail;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            mar_err_set(err, MAR_EIO, errno, "cannot read the layer just written");
            goto fail;
        }
        if (n == 0) {
            break;
        }
        mar_hasher_update(h, buf, (size_t)n);
        off += (uint64_t)n;
    }
    mar_digest got;
    mar_hasher_final(h, &got);
    if (reg_ingest_commit(g, &got, err) < 0) {
        goto fail;
    }
    reg_ingest_free(g);
    return 0;
fail:
    rc = -mar_err_code(*err);
    reg_ingest_discard(g);
    return rc;
}

/* Unpacks the committed blob into unpack/<chain> and settles it against the layers under it,
 * as a pull does (registry/pull-unpack.c). */
MAR_MUST_USE static int unpack_layer(bld__ctx *c, const bld__image *im, const bld__layer *l,
                                     const int *tree, mar_err **err)
{
    reg_store *s = c->o->store;
    int lock, rootfd;
    if (reg_store_layer_begin(s, &l->chain, true, &lock, &rootfd, err) < 0) {
        return -mar_err_code(*err);
    }
    if (lock < 0) {
        return 0; /* an identical layer on the same parents is already there */
    }
    /* The chain's lock, held until return (the cleanup releases it). */
    _cleanup_close_ int lockfd = lock;
    (void)lockfd;
    _cleanup_close_ int root = rootfd;
    int bfd;
    if (reg_store_blob_open(s, &l->digest, &bfd, err) < 0) {
        reg_store_layer_abort(s, &l->chain);
        return -mar_err_code(*err);
    }
    _cleanup_close_ int blobfd = bfd;
    oci_unpack_opts uo = {
            .mode = OCI_UNPACK_LAYER, .expect_diff_id = &l->diff_id, .link_from = tree};
    oci_unpack_result res;
    memset(&res, 0, sizeof(res));
    int fds[OCI_LVIEW_MAX_LAYERS];
    size_t n_fds = 0;
    int rc = -1;
    _cleanup_free_ char *info = NULL;
    if (im->n_layers >= OCI_LVIEW_MAX_LAYERS) {
        mar_err_set(err, MAR_EUNSUPPORTED, 0, "more than %d layers", OCI_LVIEW_MAX_LAYERS);
        goto out;
    }
    if (oci_unpack(blobfd, root, &uo, &res, err) < 0 ||
        bld__open_layers(c, im, fds, &n_fds, err) < 0) {
        goto out;
    }
    oci_lview v = {.fds = fds, .n = n_fds};
    info = mar_xasprintf("{\"diff_id\":\"%s\",\"chain_id\":\"%s\",\"blob\":\"%s\",\"size\":%llu,"
                         "\"entries\":%llu}\n",
                         l->diff_id.str, l->chain.str, l->digest.str, (unsigned long long)res.size,
                         (unsigned long long)res.entries);
    if (oci_layer_settle(root, &v, &res, NULL, err) < 0 ||
        reg_store_layer_commit(s, &l->chain, info, err) < 0) {
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n_fds; i++) {
        close(fds[i]);
    }
    oci_unpack_result_release(&res);
    if (rc < 0) {
        reg_store_layer_abort(s, &l->chain);
        return -mar_err_code(*err);
    }
    return 0;
}

/* tree: the directory the layer was just written from, whose files the unpack may take over
 * (NULL for a layer from the cache). */
MAR_MUST_USE static int add_layer(bld__ctx *c, bld__image *im, bld__layer *l, const int *tree,
                                  mar_err **err)
{
    if (im->n_layers >= OCI_LVIEW_MAX_LAYERS) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "more than %d layers", OCI_LVIEW_MAX_LAYERS);
    }
    mar_digest ids[OCI_LVIEW_MAX_LAYERS + 1];
    mar_digest diffs[OCI_LVIEW_MAX_LAYERS + 1];
    for (size_t i = 0; i < im->n_layers; i++) {
        diffs[i] = im->layers[i].diff_id;
    }
    diffs[im->n_layers] = l->diff_id;
    oci_chain_ids(diffs, im->n_layers + 1, ids);
    l->chain = ids[im->n_layers];
    if (unpack_layer(c, im, l, tree, err) < 0) {
        return -mar_err_code(*err);
    }
    im->layers = mar_xrealloc(im->layers, (im->n_layers + 2) * sizeof(*im->layers));
    im->layers[im->n_layers++] = *l;
    return 0;
}

int bld__add_layer(bld__ctx *c, bld__image *im, bld__layer *l, mar_err **err)
{
    return add_layer(c, im, l, NULL, err);
}

/* The layer writer's options for a build's layers: the same for the layer and its cache key. */
static void write_opts(const bld__ctx *c, bool overlay_upper, oci_layer_write_opts *wo)
{
    *wo = (oci_layer_write_opts)OCI_LAYER_WRITE_OPTS_INIT;
    wo->tree.kind = overlay_upper ? OCI_TREE_OVERLAY_UPPER : OCI_TREE_PLAIN;
    wo->codec = c->o->zstd ? OCI_CODEC_ZSTD : OCI_CODEC_GZIP;
    if (c->o->has_epoch) {
        wo->tar.clamp_mtime = true;
        wo->tar.mtime_max = c->o->epoch;
    }
}

int bld__tree_diff_id(const bld__ctx *c, int dirfd, bool overlay_upper, mar_digest *ret,
                      mar_err **err)
{
    oci_layer_write_opts wo;
    write_opts(c, overlay_upper, &wo);
    wo.codec = OCI_CODEC_NONE;
    _cleanup_close_ int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open /dev/null");
    }
    oci_layer_written w;
    if (oci_layer_write_dir(dirfd, &wo, fd, &w, err) < 0) {
        return -mar_err_code(*err);
    }
    *ret = w.diff_id;
    return 0;
}

int bld__commit_tree(bld__ctx *c, bld__image *im, int dirfd, bool overlay_upper, mar_err **err)
{
    _cleanup_free_ char *name = mar_xasprintf("layer-%u.tmp", c->seq++);
    _cleanup_free_ char *tmp = mar_xasprintf("%s/%s", c->work, name);
    _cleanup_close_ int wfd = open(c->work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (wfd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", c->work);
    }
    _cleanup_close_ int fd = openat(wfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", tmp);
    }
    oci_layer_write_opts wo;
    write_opts(c, overlay_upper, &wo);
    oci_layer_written w;
    int rc = oci_layer_write_dir(dirfd, &wo, fd, &w, err);
    if (rc == 0) {
        rc = store_blob(c->o->store, fd, wfd, name, &w, err);
    }
    unlinkat(wfd, name, 0); /* left only when the store did not take it */
    if (rc < 0) {
        return mar_err_wrap(err, "writing a layer");
    }
    bld__layer l = {.media_type = mar_xstrdup(w.media_type),
                    .digest = w.digest,
                    .size = (int64_t)w.size,
                    .diff_id = w.diff_id};
    /* The tree is discarded after this: its files become the unpacked layer's. */
    if (add_layer(c, im, &l, &dirfd, err) < 0) {
        free(l.media_type);
        return -mar_err_code(*err);
    }
    return 0;
}
