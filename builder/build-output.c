/* `mar build --output` (docs/internals/build.md §8): a built image copied out of the store as an
 * OCI image layout — a directory (type=oci-layout) or a tar of one (type=oci, what
 * `skopeo copy oci-archive:` and `ctr images import` read) — per image-spec image-layout.md
 * (https://github.com/opencontainers/image-spec/blob/main/image-layout.md). */
#include "build-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

typedef struct blob_ref {
    mar_digest digest;
    int64_t size;
} blob_ref;

typedef struct blob_list {
    blob_ref *v;
    size_t n;
} blob_list;

static void add_blob(blob_list *l, const mar_digest *d, int64_t size)
{
    for (size_t i = 0; i < l->n; i++) {
        if (mar_digest_eq(&l->v[i].digest, d)) {
            return;
        }
    }
    l->v = mar_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = (blob_ref){.digest = *d, .size = size};
}

/* Every blob the index reaches: itself, its manifests, their configs and layers. */
static int collect(reg_store *s, const mar_digest *index, int64_t size, blob_list *ret,
                   mar_err **err)
{
    add_blob(ret, index, size);
    _cleanup_buf_ mar_buf b = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_manifest_ oci_manifest *idx = NULL;
    if (reg_store_read(s, index, MAR_CAP_MANIFEST, &b, err) < 0 ||
        oci_manifest_parse(b.data, b.len, OCI_MT_INDEX, &idx, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const oci_descriptor *d = &idx->manifests[i];
        add_blob(ret, &d->digest, d->size);
        _cleanup_buf_ mar_buf mb = MAR_BUF_INIT(MAR_CAP_MANIFEST);
        _cleanup_manifest_ oci_manifest *m = NULL;
        if (reg_store_read(s, &d->digest, MAR_CAP_MANIFEST, &mb, err) < 0 ||
            oci_manifest_parse(mb.data, mb.len, d->media_type, &m, err) < 0) {
            return -mar_err_code(*err);
        }
        add_blob(ret, &m->config.digest, m->config.size);
        for (size_t k = 0; k < m->n_layers; k++) {
            add_blob(ret, &m->layers[k].digest, m->layers[k].size);
        }
    }
    return 0;
}

/* index.json of the layout: the one image, named for skopeo (the tag) and containerd. */
static char *layout_index(const char *name, const mar_digest *index, int64_t size)
{
    const char *slash = strrchr(name, '/');
    const char *colon = strrchr(slash ? slash : name, ':');
    const char *tag = colon ? colon + 1 : "latest";
    _cleanup_json_ json_t *doc =
            json_pack("{s:i, s:s, s:[{s:s, s:s, s:I, s:{s:s, s:s}}]}", "schemaVersion", 2,
                      "mediaType", OCI_MT_INDEX, "manifests", "mediaType", OCI_MT_INDEX, "digest",
                      index->str, "size", (json_int_t)size, "annotations",
                      "org.opencontainers.image.ref.name", tag, "io.containerd.image.name", name);
    return json_dumps(doc, JSON_COMPACT);
}

#define LAYOUT_FILE "{\"imageLayoutVersion\":\"1.0.0\"}"

static int write_all(int fd, const void *p, size_t n, const char *what, mar_err **err)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot write '%s'", what);
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_file_at(int dfd, const char *name, const void *p, size_t n, const char *dir,
                         mar_err **err)
{
    _cleanup_close_ int fd =
            openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/%s'", dir, name);
    }
    return write_all(fd, p, n, name, err);
}

static int copy_blob(reg_store *s, const blob_ref *b, int dfd, const char *dir, mar_err **err)
{
    int in;
    if (reg_store_blob_open(s, &b->digest, &in, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_close_ int sfd = in;
    _cleanup_free_ char *name = mar_xasprintf("blobs/sha256/%s", mar_digest_hex(&b->digest));
    _cleanup_close_ int out =
            openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s/%s'", dir, name);
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(sfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot read blob %s", b->digest.str);
        }
        if (n == 0) {
            return 0;
        }
        if (write_all(out, buf, (size_t)n, name, err) < 0) {
            return -MAR_EIO;
        }
    }
}

int bld_output_layout(reg_store *s, const char *name, const mar_digest *index, int64_t size,
                      const char *dir, mar_err **err)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", dir);
    }
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        return mar_err_set(err, MAR_EUSAGE, errno, "'%s' is not a directory", dir);
    }
    struct stat st;
    if (fstatat(dfd, "index.json", &st, AT_SYMLINK_NOFOLLOW) == 0 ||
        fstatat(dfd, "blobs", &st, AT_SYMLINK_NOFOLLOW) == 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' already holds an image layout", dir);
    }
    blob_list l = {0};
    int rc = collect(s, index, size, &l, err);
    _cleanup_free_ char *idx = layout_index(name, index, size);
    if (rc == 0 && ((mkdirat(dfd, "blobs", 0755) < 0 && errno != EEXIST) ||
                    (mkdirat(dfd, "blobs/sha256", 0755) < 0 && errno != EEXIST))) {
        rc = mar_err_set(err, MAR_EIO, errno, "cannot create '%s/blobs/sha256'", dir);
    }
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        rc = copy_blob(s, &l.v[i], dfd, dir, err);
    }
    if (rc == 0) {
        rc = write_file_at(dfd, "oci-layout", LAYOUT_FILE, strlen(LAYOUT_FILE), dir, err);
    }
    /* index.json last: a layout interrupted on the way has none and reads as empty. */
    if (rc == 0) {
        rc = write_file_at(dfd, "index.json", idx, strlen(idx), dir, err);
    }
    free(l.v);
    return rc < 0 ? -mar_err_code(*err) : 0;
}

static int fd_sink(void *ud, const void *buf, size_t n, mar_err **err)
{
    return write_all(*(int *)ud, buf, n, "the archive", err);
}

static int tar_bytes(oci_tarw *w, const char *path, const char *data, int64_t mtime, mar_err **err)
{
    oci_layer_entry e = {.kind = OCI_ENTRY_FILE,
                         .path = (char *)path,
                         .mode = 0644,
                         .size = (int64_t)strlen(data),
                         .mtime = mtime};
    if (oci_tarw_add(w, &e, err) < 0 || oci_tarw_write(w, data, strlen(data), err) < 0) {
        return -mar_err_code(*err);
    }
    return 0;
}

static int cmp_blob(const void *a, const void *b)
{
    return strcmp(((const blob_ref *)a)->digest.str, ((const blob_ref *)b)->digest.str);
}

int bld_output_tar(reg_store *s, const char *name, const mar_digest *index, int64_t size,
                   int64_t mtime, const char *file, mar_err **err)
{
    blob_list l = {0};
    if (collect(s, index, size, &l, err) < 0) {
        free(l.v);
        return -mar_err_code(*err);
    }
    /* Entries in name order (docs/internals/layer-write.md §2): blobs/, blobs/sha256/ and the
     * blobs sorted, then index.json and oci-layout. */
    qsort(l.v, l.n, sizeof(*l.v), cmp_blob);
    _cleanup_free_ char *tmp = mar_xasprintf("%s.tmp-%d", file, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(l.v);
        return mar_err_set(err, MAR_EIO, errno, "cannot create '%s'", tmp);
    }
    oci_tarw_opts to = {.set_owner = true};
    _cleanup_tarw_ oci_tarw *w = oci_tarw_new(&to, fd_sink, &fd);
    _cleanup_free_ char *idx = layout_index(name, index, size);
    int rc = 0;
    static const char *const dirs[] = {"blobs", "blobs/sha256"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(dirs) && rc == 0; i++) {
        oci_layer_entry d = {
                .kind = OCI_ENTRY_DIR, .path = (char *)dirs[i], .mode = 0755, .mtime = mtime};
        rc = oci_tarw_add(w, &d, err);
    }
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        int in;
        if (reg_store_blob_open(s, &l.v[i].digest, &in, err) < 0) {
            rc = -mar_err_code(*err);
            break;
        }
        _cleanup_free_ char *path =
                mar_xasprintf("blobs/sha256/%s", mar_digest_hex(&l.v[i].digest));
        oci_layer_entry e = {.kind = OCI_ENTRY_FILE,
                             .path = path,
                             .mode = 0644,
                             .size = l.v[i].size,
                             .mtime = mtime};
        rc = oci_tarw_add_fd(w, &e, in, l.v[i].digest.str, err);
        close(in);
    }
    if (rc == 0) {
        rc = tar_bytes(w, "index.json", idx, mtime, err);
    }
    if (rc == 0) {
        rc = tar_bytes(w, "oci-layout", LAYOUT_FILE, mtime, err);
    }
    if (rc == 0) {
        rc = oci_tarw_finish(w, err);
    }
    if (rc == 0 && (fsync(fd) < 0 || close(fd) < 0)) {
        fd = -1;
        rc = mar_err_set(err, MAR_EIO, errno, "cannot write '%s'", tmp);
    } else if (rc == 0) {
        fd = -1;
        if (rename(tmp, file) < 0) {
            rc = mar_err_set(err, MAR_EIO, errno, "cannot rename '%s' to '%s'", tmp, file);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    if (rc < 0) {
        unlink(tmp);
    }
    free(l.v);
    return rc < 0 ? -mar_err_code(*err) : 0;
}
