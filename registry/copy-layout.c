/* mar copy into and out of OCI image layouts (docs/internals/registry-protocol.md §15;
 * image-spec image-layout.md): a directory with oci-layout, index.json and blobs/<alg>/<hex>, or
 * the same tree in a tar archive. Into a layout, blobs stream from the registry into a temporary
 * file beside their final name and are renamed only once verified; index.json names the image
 * with org.opencontainers.image.ref.name and is replaced atomically, last. Out of a layout, every
 * document is read back and verified before it is pushed, blobs are sent from their files (the
 * upload hashes them as they go). An archive is written as a layout in a temporary directory,
 * then tarred; it is read by extracting only the layout's own names. */
#include "push-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REF_NAME "org.opencontainers.image.ref.name"

typedef struct blob_dl {
    int dirfd; /* blobs/<alg> */
    int fd;
    char tmp[MAR_DIGEST_STR_MAX + 16];
    const oci_descriptor *desc;
    int rc;
    mar_err *err;
    mar_digest verified;
} blob_dl;

static const char *alg_name(const mar_digest *d)
{
    return d->alg == MAR_DIGEST_SHA512 ? "sha512" : "sha256";
}

/* blobs/<alg> of the layout, created when asked. Returns the fd or -1 with *err set. */
MAR_MUST_USE static int blob_dir(int root, const mar_digest *d, bool create, mar_err **err)
{
    if (create && ((mkdirat(root, "blobs", 0755) < 0 && errno != EEXIST))) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create blobs/ in the layout"), -1;
    }
    _cleanup_free_ char *rel = mar_xasprintf("blobs/%s", alg_name(d));
    if (create && mkdirat(root, rel, 0755) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create %s in the layout", rel), -1;
    }
    int fd = openat(root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        mar_err_set(err, errno == ENOENT ? MAR_ENOTFOUND : MAR_EIO, errno, "the layout has no %s",
                    rel);
    }
    return fd;
}

static bool has_blob(int root, const oci_descriptor *d)
{
    _cleanup_free_ char *rel =
            mar_xasprintf("blobs/%s/%s", alg_name(&d->digest), mar_digest_hex(&d->digest));
    struct stat st;
    return fstatat(root, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           st.st_size == d->size;
}

MAR_MUST_USE static int write_all(int fd, const void *p, size_t n, const char *what, mar_err **err)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot write %s", what);
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes name in dirfd through a temporary file renamed over it. */
MAR_MUST_USE static int put_file(int dirfd, const char *name, const void *p, size_t n,
                                 mar_err **err)
{
    _cleanup_free_ char *tmp = mar_xasprintf(".%s.tmp", name);
    _cleanup_close_ int fd =
            openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create %s in the layout", name);
    }
    if (write_all(fd, p, n, name, err) < 0 || fsync(fd) < 0 ||
        renameat(dirfd, tmp, dirfd, name) < 0) {
        unlinkat(dirfd, tmp, 0);
        return *err ? -mar_err_code(*err)
                    : mar_err_set(err, MAR_EIO, errno, "cannot write %s in the layout", name);
    }
    return 0;
}

MAR_MUST_USE static int put_doc(int root, const oci_descriptor *d, const mar_buf *bytes,
                                mar_err **err)
{
    if (has_blob(root, d)) {
        return 0;
    }
    _cleanup_close_ int bd = blob_dir(root, &d->digest, true, err);
    if (bd < 0) {
        return -mar_err_code(*err);
    }
    return put_file(bd, mar_digest_hex(&d->digest), bytes->data, bytes->len, err);
}

MAR_MUST_USE static int dl_write(void *ud, const void *p, size_t n, mar_err **err)
{
    blob_dl *b = ud;
    return write_all(b->fd, p, n, b->tmp, err);
}

MAR_MUST_USE static int dl_reset(void *ud, mar_err **err)
{
    blob_dl *b = ud;
    if (ftruncate(b->fd, 0) < 0 || lseek(b->fd, 0, SEEK_SET) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot truncate %s", b->tmp);
    }
    return 0;
}

static void dl_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    blob_dl *b = ud;
    b->rc = rc;
    b->err = err;
    if (rc == 0) {
        b->verified = blob->digest;
    }
}

/* Streams every blob item of p the layout lacks into it. */
MAR_MUST_USE static int fetch_blobs(reg_client *c, const oci_ref *src, reg_push *p, int root,
                                    reg_copy_result *ret, mar_err **err)
{
    const reg_push_item *items;
    size_t n = reg_push_items(p, &items);
    blob_dl *dl = mar_xcalloc(n + 1, sizeof(*dl));
    reg_sink *sinks = mar_xcalloc(n + 1, sizeof(*sinks));
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        dl[i].fd = dl[i].dirfd = -1;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (items[i].document) {
            continue;
        }
        ret->blobs++;
        if (has_blob(root, &items[i].desc)) {
            continue;
        }
        blob_dl *b = &dl[i];
        b->desc = &items[i].desc;
        b->dirfd = blob_dir(root, &b->desc->digest, true, err);
        if (b->dirfd < 0) {
            rc = -mar_err_code(*err);
            break;
        }
        snprintf(b->tmp, sizeof(b->tmp), ".%s.part", mar_digest_hex(&b->desc->digest));
        b->fd = openat(b->dirfd, b->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                       0644);
        if (b->fd < 0) {
            rc = mar_err_set(err, MAR_EIO, errno, "cannot create a blob in the layout");
            break;
        }
        sinks[i] = (reg_sink){.write = dl_write, .reset = dl_reset, .ud = b};
        reg_blob_stream(c, src, b->desc, 0, NULL, &sinks[i], dl_done, b);
    }
    if (reg_client_run(c, rc == 0 ? err : NULL) < 0 && rc == 0) {
        rc = -mar_err_code(*err);
    }
    for (size_t i = 0; i < n; i++) {
        blob_dl *b = &dl[i];
        if (b->fd < 0) {
            continue;
        }
        if (rc == 0 && b->rc < 0) {
            rc = b->rc;
            *err = TAKE_PTR(b->err);
        }
        if (rc == 0 && !mar_digest_eq(&b->verified, &b->desc->digest)) {
            rc = mar_err_set(err, MAR_EINTEGRITY, 0, "blob %s did not verify", b->desc->digest.str);
        }
        if (rc == 0 && fsync(b->fd) < 0) {
            rc = mar_err_set(err, MAR_EIO, errno, "cannot write %s", b->tmp);
        }
        if (rc == 0 && renameat(b->dirfd, b->tmp, b->dirfd, mar_digest_hex(&b->desc->digest))) {
            rc = mar_err_set(err, MAR_EIO, errno, "cannot rename %s", b->tmp);
        }
        if (rc < 0) {
            unlinkat(b->dirfd, b->tmp, 0);
        } else {
            ret->bytes += (uint64_t)b->desc->size;
        }
        mar_err_free(b->err);
        close(b->fd);
        close(b->dirfd);
    }
    free(sinks);
    free(dl);
    return rc;
}

/* index.json names the image (by tag, replacing an entry of that name). */
MAR_MUST_USE static int put_index(int root, const reg_push_item *top, const char *tag,
                                  mar_err **err)
{
    _cleanup_buf_ mar_buf old = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_json_ json_t *doc = NULL;
    mar_err *e = NULL;
    if (mar_read_file_at(root, "index.json", MAR_CAP_MANIFEST, &old, &e) == 0) {
        if (mar_json_load(old.data, old.len, "index.json", &doc, err) < 0) {
            return -mar_err_code(*err);
        }
    } else if (mar_err_code(e) == MAR_ENOTFOUND) {
        mar_err_free(e);
        doc = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", OCI_MT_INDEX,
                        "manifests");
    } else {
        *err = e;
        return -mar_err_code(e);
    }
    json_t *ms = json_object_get(doc, "manifests");
    if (!json_is_array(ms)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "the layout's index.json has no manifests");
    }
    for (size_t i = json_array_size(ms); i-- > 0;) {
        json_t *e2 = json_array_get(ms, i);
        const char *name =
                json_string_value(json_object_get(json_object_get(e2, "annotations"), REF_NAME));
        const char *dg = json_string_value(json_object_get(e2, "digest"));
        if (tag ? name && strcmp(name, tag) == 0
                : !name && dg && strcmp(dg, top->desc.digest.str) == 0) {
            json_array_remove(ms, i);
        }
    }
    json_t *d = json_pack("{s:s, s:s, s:I}", "mediaType", top->desc.media_type, "digest",
                          top->desc.digest.str, "size", (json_int_t)top->desc.size);
    if (tag) {
        json_object_set_new(d, "annotations", json_pack("{s:s}", REF_NAME, tag));
    }
    json_array_append_new(ms, d);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot serialize index.json");
    }
    return put_file(root, "index.json", text, strlen(text), err);
}

/* Removes a layout tree mar made (blobs/<alg>/<files>, top-level files), then the directory. */
static void remove_layout(const char *path)
{
    _cleanup_close_ int root = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0) {
        return;
    }
    const char *algs[] = {"blobs/sha256", "blobs/sha512"};
    for (size_t k = 0; k < MAR_ARRAY_SIZE(algs); k++) {
        int fd = openat(root, algs[k], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        if (!dir) {
            if (fd >= 0) {
                close(fd);
            }
            continue;
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))) {
                unlinkat(dirfd(dir), de->d_name, 0);
            }
        }
        closedir(dir);
        unlinkat(root, algs[k], AT_REMOVEDIR);
    }
    unlinkat(root, "blobs", AT_REMOVEDIR);
    unlinkat(root, "index.json", 0);
    unlinkat(root, "oci-layout", 0);
    rmdir(path);
}

static const char LAYOUT_FILE[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

/* Opens (creating) the layout directory to write. */
MAR_MUST_USE static int open_layout_dir(const char *path, mar_err **err)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "'%s' exists and is not a directory: oci: names a layout directory "
                           "(oci-archive: writes a tar)",
                           path),
               -1;
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create the layout directory '%s'", path),
               -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open the layout directory '%s'", path), -1;
    }
    if (faccessat(fd, "oci-layout", F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
        put_file(fd, "oci-layout", LAYOUT_FILE, strlen(LAYOUT_FILE), err) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

MAR_MUST_USE static int tar_sink(void *ud, const void *buf, size_t n, mar_err **err)
{
    return write_all(*(int *)ud, buf, n, "the archive", err);
}

/* The layout in dir as a tar at path (through a temporary file renamed over it). */
MAR_MUST_USE static int write_archive(const char *dir, const char *path, mar_err **err)
{
    _cleanup_close_ int root = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_free_ char *tmp = mar_xasprintf("%s.mar-tmp", path);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (root < 0 || fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create the archive '%s'", path);
    }
    _cleanup_tarw_ oci_tarw *w = oci_tarw_new(NULL, tar_sink, &fd);
    oci_tree_opts to = {.kind = OCI_TREE_PLAIN};
    if (oci_tarw_add_tree(w, root, NULL, &to, NULL, err) < 0 || oci_tarw_finish(w, err) < 0 ||
        fsync(fd) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return *err ? mar_err_wrap(err, "writing '%s'", path)
                    : mar_err_set(err, MAR_EIO, errno, "cannot write the archive '%s'", path);
    }
    return 0;
}

int reg__copy_to_layout(reg_client *c, const oci_ref *src, const reg_endpoint *dst,
                        const reg_copy_opts *o, reg_copy_result *ret, mar_err **err)
{
    _cleanup_free_ char *name = oci_ref_string(src);
    _cleanup_free_ char *tmpdir = NULL;
    const char *dir = dst->path;
    if (dst->kind == REG_END_ARCHIVE) {
        struct stat st;
        if (stat(dst->path, &st) == 0 && S_ISDIR(st.st_mode)) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "'%s' is a directory: oci-archive: names a tar file (oci: writes "
                               "a layout directory)",
                               dst->path);
        }
        tmpdir = mar_xasprintf("%s.mar-XXXXXX", dst->path);
        if (!mkdtemp(tmpdir)) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create a directory beside '%s'",
                               dst->path);
        }
        dir = tmpdir;
    }
    int rc = 0;
    _cleanup_close_ int root = open_layout_dir(dir, err);
    if (root < 0) {
        rc = -mar_err_code(*err);
    }
    /* A push that is never run collects what the image is made of. */
    reg_push_opts po = {.dst = src};
    _cleanup_push_ reg_push *p = reg_push_new(c, &po);
    reg__fetched top = {0};
    _cleanup_manifest_ oci_manifest *m = NULL;
    _cleanup_buf_ mar_buf made = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_free_ bool *keep = NULL;
    if (rc == 0) {
        reg_manifest_fetch(c, src, reg__on_fetch, &top);
        rc = reg_client_run(c, err);
    }
    if (rc == 0) {
        rc = reg__push_add_fetched(p, src, &top, top.blob.content_type, &m, err);
    }
    if (rc == 0) {
        ret->source = top.blob.digest;
        ret->kept = ret->entries = 1;
    }
    if (rc == 0 && m->kind == OCI_KIND_INDEX) {
        keep = mar_xcalloc(m->n_manifests + 1, sizeof(bool));
        rc = reg__copy_select(name, m, o->platforms, o->n_platforms, keep, err);
        ret->entries = m->n_manifests;
        ret->kept = 0;
        for (size_t i = 0; rc == 0 && i < m->n_manifests; i++) {
            ret->kept += keep[i];
        }
        if (rc == 0) {
            rc = reg__push_add_children(c, p, src, m, keep, err);
        }
        if (rc == 0 && ret->kept != ret->entries) {
            ret->new_index = true;
            rc = reg__narrowed_index(&top.blob.data, keep, m->n_manifests, &made, err);
        }
    }
    if (rc == 0) {
        const mar_buf *doc = ret->new_index ? &made : &top.blob.data;
        rc = reg_push_set_top(p, m->media_type, doc->data, doc->len, err);
    }
    reg__fetched_release(&top);
    if (rc == 0) {
        rc = fetch_blobs(c, src, p, root, ret, err);
    }
    const reg_push_item *items;
    size_t n = reg_push_items(p, &items);
    const reg_push_item *topi = NULL;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (items[i].document) {
            rc = put_doc(root, &items[i].desc, reg__push_item_bytes(p, i), err);
            topi = items[i].top ? &items[i] : topi;
        }
    }
    if (rc == 0) {
        rc = put_index(root, topi, dst->tag, err);
    }
    if (rc == 0 && dst->kind == REG_END_ARCHIVE) {
        rc = write_archive(tmpdir, dst->path, err);
    }
    if (tmpdir) {
        remove_layout(tmpdir);
    }
    if (rc < 0) {
        return mar_err_wrap(err, "copying '%s' to '%s'", name, dst->path);
    }
    ret->digest = topi->desc.digest;
    ret->media_type = mar_xstrdup(topi->desc.media_type);
    ret->size = topi->desc.size;
    return 0;
}

/* ---- out of a layout ------------------------------------------------------------------------ */

typedef struct reader {
    reg_push *p;
    int root;
    const char *name;
    int *fds;
    size_t n_fds;
    int depth;
} reader;

/* Reads a document of the layout and checks it against its descriptor. */
MAR_MUST_USE static int read_doc(reader *r, const oci_descriptor *d, mar_buf *ret,
                                 oci_manifest **ret_m, mar_err **err)
{
    _cleanup_free_ char *rel =
            mar_xasprintf("blobs/%s/%s", alg_name(&d->digest), mar_digest_hex(&d->digest));
    if (d->size < 0 || d->size > MAR_CAP_MANIFEST) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "%s: a document of %" PRId64 " bytes", rel,
                           d->size);
    }
    if (mar_read_file_at(r->root, rel, MAR_CAP_MANIFEST, ret, err) < 0) {
        return -mar_err_code(*err);
    }
    if ((int64_t)ret->len != d->size || !mar_digest_verify(&d->digest, ret->data, ret->len)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "%s does not match its descriptor", rel);
    }
    return oci_manifest_parse(ret->data, ret->len, d->media_type, ret_m, err);
}

MAR_MUST_USE static int add_layout_blob(reader *r, const oci_descriptor *d, mar_err **err)
{
    _cleanup_free_ char *rel =
            mar_xasprintf("blobs/%s/%s", alg_name(&d->digest), mar_digest_hex(&d->digest));
    int fd = openat(r->root, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, errno == ENOENT ? MAR_ENOTFOUND : MAR_EIO, errno,
                           "the layout lacks %s", rel);
    }
    r->fds = mar_xrealloc(r->fds, (r->n_fds + 1) * sizeof(int));
    r->fds[r->n_fds++] = fd;
    reg_blob_src bs = {.kind = REG_SRC_FD, .fd = fd};
    reg_push_add_blob(r->p, d, &bs);
    return 0;
}

MAR_MUST_USE static int add_layout_doc(reader *r, const oci_manifest *m, const bool *keep,
                                       mar_err **err);

MAR_MUST_USE static int add_layout_child(reader *r, const oci_descriptor *d, mar_err **err)
{
    _cleanup_buf_ mar_buf raw = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_manifest_ oci_manifest *m = NULL;
    const oci_platform *pf =
            d->has_platform && !oci_descriptor_is_attestation(d) ? &d->platform : NULL;
    if (read_doc(r, d, &raw, &m, err) < 0 || add_layout_doc(r, m, NULL, err) < 0 ||
        reg_push_add_manifest(r->p, m->media_type, raw.data, raw.len, pf, err) < 0) {
        return -mar_err_code(*err);
    }
    return 0;
}

MAR_MUST_USE static int add_layout_doc(reader *r, const oci_manifest *m, const bool *keep,
                                       mar_err **err)
{
    if (m->kind == OCI_KIND_MANIFEST) {
        if (add_layout_blob(r, &m->config, err) < 0) {
            return -mar_err_code(*err);
        }
        for (size_t i = 0; i < m->n_layers; i++) {
            if (add_layout_blob(r, &m->layers[i], err) < 0) {
                return -mar_err_code(*err);
            }
        }
        return 0;
    }
    if (++r->depth > 4) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "'%s' nests indexes more than 4 deep",
                           r->name);
    }
    for (size_t i = 0; i < m->n_manifests; i++) {
        if ((!keep || keep[i]) && add_layout_child(r, &m->manifests[i], err) < 0) {
            return -mar_err_code(*err);
        }
    }
    r->depth--;
    return 0;
}

/* The entry of index.json the source names: its tag, or the only one. */
MAR_MUST_USE static int pick_entry(const oci_manifest *idx, const reg_endpoint *src, size_t *ret,
                                   mar_err **err)
{
    size_t hit = SIZE_MAX;
    mar_buf names = MAR_BUF_INIT(MAR_BUF_NOCAP); /* index.json is capped when read */
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const char *n = oci_descriptor_annotation(&idx->manifests[i], REF_NAME);
        mar_buf_xprintf(&names, "%s%s", names.len ? ", " : "", n ? n : "(untagged)");
        if (src->tag ? n && strcmp(n, src->tag) == 0 : true) {
            hit = src->tag || hit == SIZE_MAX ? i : SIZE_MAX - 1;
        }
    }
    int rc = 0;
    if (hit == SIZE_MAX) {
        rc = mar_err_set(err, MAR_ENOTFOUND, 0, "the layout '%s' has no image%s%s (it has: %s)",
                         src->path, src->tag ? " named " : "", src->tag ? src->tag : "",
                         names.len ? names.data : "none");
    } else if (hit == SIZE_MAX - 1) {
        rc = mar_err_set(err, MAR_EUSAGE, 0,
                         "the layout '%s' holds several images (%s): name one as %s:TAG", src->path,
                         names.data, src->kind == REG_END_LAYOUT ? "oci:DIR" : "FILE");
    }
    mar_buf_release(&names);
    *ret = hit;
    return rc;
}

MAR_MUST_USE static int extract_sink(void *ud, const void *buf, size_t n, mar_err **err)
{
    return write_all(*(int *)ud, buf, n, "an extracted file", err);
}

/* The layout's own names only: oci-layout, index.json, blobs/<alg>/<hex>. */
static bool layout_name(const char *path)
{
    if (strcmp(path, "oci-layout") == 0 || strcmp(path, "index.json") == 0) {
        return true;
    }
    const char *rest = NULL;
    if (mar_str_startswith(path, "blobs/sha256/")) {
        rest = path + 13;
    } else if (mar_str_startswith(path, "blobs/sha512/")) {
        rest = path + 13;
    }
    if (!rest || !*rest) {
        return false;
    }
    for (const char *q = rest; *q; q++) {
        if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))) {
            return false;
        }
    }
    return true;
}

MAR_MUST_USE static int extract_archive(const char *file, const char *dir, mar_err **err)
{
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, errno == ENOENT ? MAR_ENOTFOUND : MAR_EIO, errno,
                           "cannot open the archive '%s'", file);
    }
    _cleanup_close_ int root = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    oci_layer_limits lim;
    oci_layer_limits_default(&lim);
    _cleanup_layer_ oci_layer_reader *lr = NULL;
    if (root < 0 || oci_layer_open(fd, &lim, &lr, err) < 0) {
        return *err ? mar_err_wrap(err, "'%s'", file)
                    : mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", dir);
    }
    const oci_layer_entry *e;
    int rc;
    char buf[65536];
    while ((rc = oci_layer_next(lr, &e, err)) > 0) {
        if (e->kind != OCI_ENTRY_FILE || !layout_name(e->path)) {
            continue;
        }
        if (mar_str_startswith(e->path, "blobs/")) {
            mar_digest d = {.alg = strstr(e->path, "sha512") ? MAR_DIGEST_SHA512
                                                             : MAR_DIGEST_SHA256};
            _cleanup_close_ int bd = blob_dir(root, &d, true, err);
            if (bd < 0) {
                return -mar_err_code(*err);
            }
        }
        _cleanup_close_ int out =
                openat(root, e->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0) {
            return mar_err_set(err, MAR_EIO, errno, "cannot extract %s of '%s'", e->path, file);
        }
        ssize_t n;
        while ((n = oci_layer_read(lr, buf, sizeof(buf), err)) > 0) {
            if (extract_sink(&out, buf, (size_t)n, err) < 0) {
                return -mar_err_code(*err);
            }
        }
        if (n < 0) {
            return mar_err_wrap(err, "'%s'", file);
        }
    }
    return rc < 0 ? mar_err_wrap(err, "'%s'", file) : 0;
}

MAR_MUST_USE static int open_source_layout(const char *path, mar_err **err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        return mar_err_set(err, errno == ENOENT ? MAR_ENOTFOUND : MAR_EIO, errno,
                           "no layout at '%s'", path),
               -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "'%s' is not a directory: oci: names a layout directory "
                           "(oci-archive: reads a tar)",
                           path),
               -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open the layout '%s'", path), -1;
    }
    if (faccessat(fd, "oci-layout", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
        close(fd);
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' is not an OCI image layout (no oci-layout)",
                           path),
               -1;
    }
    return fd;
}

MAR_MUST_USE static int push_layout(reg_client *c, int root, const reg_endpoint *src,
                                    const oci_ref *dst, const reg_copy_opts *o,
                                    reg_copy_result *ret, mar_err **err)
{
    const char *name = src->path;
    _cleanup_buf_ mar_buf ib = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_manifest_ oci_manifest *idx = NULL;
    if (mar_read_file_at(root, "index.json", MAR_CAP_MANIFEST, &ib, err) < 0 ||
        oci_manifest_parse(ib.data, ib.len, OCI_MT_INDEX, &idx, err) < 0) {
        return mar_err_wrap(err, "the layout '%s'", name);
    }
    size_t at;
    if (pick_entry(idx, src, &at, err) < 0) {
        return -mar_err_code(*err);
    }
    reg_push_opts po = {
            .dst = dst,
            .jobs = o->jobs,
            .progress = o->progress,
            .progress_ud = o->progress_ud,
    };
    _cleanup_push_ reg_push *p = reg_push_new(c, &po);
    reader r = {.p = p, .root = root, .name = name};
    _cleanup_buf_ mar_buf raw = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_buf_ mar_buf made = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    _cleanup_manifest_ oci_manifest *m = NULL;
    _cleanup_free_ bool *keep = NULL;
    int rc = read_doc(&r, &idx->manifests[at], &raw, &m, err);
    if (rc == 0) {
        ret->source = idx->manifests[at].digest;
        ret->kept = ret->entries = 1;
    }
    if (rc == 0 && m->kind == OCI_KIND_INDEX) {
        keep = mar_xcalloc(m->n_manifests + 1, sizeof(bool));
        rc = reg__copy_select(name, m, o->platforms, o->n_platforms, keep, err);
        ret->entries = m->n_manifests;
        ret->kept = 0;
        for (size_t i = 0; rc == 0 && i < m->n_manifests; i++) {
            ret->kept += keep[i];
        }
        if (rc == 0 && ret->kept != ret->entries) {
            ret->new_index = true;
            rc = reg__narrowed_index(&raw, keep, m->n_manifests, &made, err);
        }
    } else if (rc == 0 && o->n_platforms) {
        rc = mar_err_set(err, MAR_EUSAGE, 0,
                         "'%s' is a single manifest: --platform filters the entries of an index",
                         name);
    }
    if (rc == 0) {
        rc = add_layout_doc(&r, m, keep, err);
    }
    if (rc == 0) {
        const mar_buf *doc = ret->new_index ? &made : &raw;
        rc = reg_push_set_top(p, m->media_type, doc->data, doc->len, err);
    }
    if (rc == 0) {
        const reg_push_item *items;
        size_t n = reg_push_items(p, &items);
        for (size_t i = 0; i < n; i++) {
            ret->blobs += !items[i].document;
        }
        reg_push_result pr;
        rc = reg_push_run(p, &pr, err);
        if (rc == 0) {
            ret->digest = pr.digest;
            ret->media_type = TAKE_PTR(pr.media_type);
            ret->size = pr.size;
            ret->stats = pr.stats;
            ret->bytes = pr.stats.bytes_sent;
        }
    } else {
        mar_err_wrap(err, "the layout '%s'", name);
    }
    for (size_t i = 0; i < r.n_fds; i++) {
        close(r.fds[i]);
    }
    free(r.fds);
    return rc;
}

int reg__copy_from_layout(reg_client *c, const reg_endpoint *src, const oci_ref *dst,
                          const reg_copy_opts *o, reg_copy_result *ret, mar_err **err)
{
    _cleanup_free_ char *tmpdir = NULL;
    const char *dir = src->path;
    if (src->kind == REG_END_ARCHIVE) {
        struct stat st;
        if (stat(src->path, &st) == 0 && S_ISDIR(st.st_mode)) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "'%s' is a directory: oci-archive: names a tar file (oci: reads "
                               "a layout directory)",
                               src->path);
        }
        const char *t = getenv("TMPDIR");
        tmpdir = mar_xasprintf("%s/mar-archive-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) {
            return mar_err_set(err, MAR_EIO, errno, "cannot create a directory in '%s'",
                               t && *t ? t : "/tmp");
        }
        if (extract_archive(src->path, tmpdir, err) < 0) {
            remove_layout(tmpdir);
            return -mar_err_code(*err);
        }
        dir = tmpdir;
    }
    int rc;
    int root = open_source_layout(dir, err);
    if (root < 0) {
        rc = -mar_err_code(*err);
    } else {
        reg_endpoint named = *src;
        named.path = src->path;
        rc = push_layout(c, root, &named, dst, o, ret, err);
        close(root);
    }
    if (tmpdir) {
        remove_layout(tmpdir);
    }
    return rc;
}
