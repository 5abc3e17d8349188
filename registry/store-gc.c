/* Garbage collection and verification of the store (docs/internals/unpack-security.md §7 "fsck").
 * gc runs under the exclusive store lock, which every pull holds shared: with it, no ingest or part
 * directory belongs to a live process, so all of them go. What stays is what the references of
 * index.json reach: their manifests and indexes, the children of indexes that are present,
 * configs, layer blobs, and the unpacked layers named by the configs' ChainIDs. */
#include "registry-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

typedef struct reach {
    mar_map blobs;  /* "alg:hex" */
    mar_map chains; /* hex */
} reach;

static void mark_config(reg_store *s, reach *r, const oci_descriptor *cfg)
{
    mar_map_set(&r->blobs, cfg->digest.str, (void *)1);
    mar_buf b = MAR_BUF_INIT(MAR_CAP_CONFIG);
    mar_err *e = NULL;
    _cleanup_config_ oci_config *c = NULL;
    if (reg_store_read(s, &cfg->digest, MAR_CAP_CONFIG, &b, &e) == 0 &&
        oci_config_parse(b.data, b.len, &c, &e) == 0 && c->n_diff_ids) {
        mar_digest *chains = mar_xcalloc(c->n_diff_ids, sizeof(*chains));
        oci_chain_ids(c->diff_ids, c->n_diff_ids, chains);
        for (size_t i = 0; i < c->n_diff_ids; i++) {
            mar_map_set(&r->chains, mar_digest_hex(&chains[i]), (void *)1);
        }
        free(chains);
    }
    mar_err_free(e);
    mar_buf_release(&b);
}

static void mark(reg_store *s, reach *r, const mar_digest *d, const char *media_type, int depth)
{
    /* A reference's document (0), the nested indexes mar reads (docs/internals/platforms.md §7)
     * and the manifests they list. */
    if (mar_map_get(&r->blobs, d->str) || depth > OCI_INDEX_DEPTH_MAX + 1) {
        return;
    }
    mar_map_set(&r->blobs, d->str, (void *)1);
    mar_buf b = MAR_BUF_INIT(MAR_CAP_MANIFEST);
    mar_err *e = NULL;
    _cleanup_manifest_ oci_manifest *m = NULL;
    if (reg_store_read(s, d, MAR_CAP_MANIFEST, &b, &e) < 0 ||
        oci_manifest_parse(b.data, b.len, media_type, &m, &e) < 0) {
        mar_err_free(e);
        mar_buf_release(&b);
        return;
    }
    mar_buf_release(&b);
    for (size_t i = 0; i < m->n_manifests; i++) {
        mark(s, r, &m->manifests[i].digest, m->manifests[i].media_type, depth + 1);
    }
    if (m->kind == OCI_KIND_MANIFEST) {
        mark_config(s, r, &m->config);
        for (size_t i = 0; i < m->n_layers; i++) {
            mar_map_set(&r->blobs, m->layers[i].digest.str, (void *)1);
        }
    }
}

static uint64_t tree_bytes(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        return (uint64_t)st.st_blocks * 512;
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) {
            close(fd);
        }
        return 0;
    }
    uint64_t sum = (uint64_t)st.st_blocks * 512;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            sum += tree_bytes(dirfd(d), de->d_name);
        }
    }
    closedir(d);
    return sum;
}

static void list_dir(int dfd, const char *rel, mar_strv *out)
{
    int fd = openat(dfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            mar_strv_push(out, de->d_name);
        }
    }
    closedir(d);
    mar_strv_sort(out);
}

MAR_MUST_USE static int drop(reg_store *s, const char *dir, const char *name, bool dry_run,
                             uint64_t *bytes, mar_err **err)
{
    _cleanup_close_ int dfd = openat(s->dfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s/%s'", s->path, dir);
    }
    *bytes += tree_bytes(dfd, name);
    if (dry_run) {
        return 0;
    }
    if (oci_remove_at(dfd, name, err) < 0) {
        return mar_err_wrap(err, "store '%s'", s->path);
    }
    return 0;
}

/* Containers mar run keeps (--keep) hold their layers: containers/<id>/layers lists the
 * ChainIDs an overlay mount of theirs needs, whether or not their image is still tagged. */
static void mark_containers(reg_store *s, reach *r)
{
    mar_strv ids = MAR_STRV_INIT;
    list_dir(s->dfd, "containers", &ids);
    for (size_t i = 0; i < ids.n; i++) {
        _cleanup_free_ char *p = mar_xasprintf("containers/%s/layers", ids.v[i]);
        mar_buf b = MAR_BUF_INIT(1 << 20);
        mar_err *e = NULL;
        if (mar_read_file_at(s->dfd, p, 1 << 20, &b, &e) < 0) {
            mar_err_free(e);
            continue;
        }
        for (char *l = b.data, *next; l && *l; l = next) {
            next = strchr(l, '\n');
            if (next) {
                *next++ = '\0';
            }
            _cleanup_free_ char *dg = mar_xasprintf("sha256:%s", l);
            if (mar_digest_valid(dg)) {
                mar_map_set(&r->chains, l, (void *)1);
            }
        }
        mar_buf_release(&b);
    }
    mar_strv_release(&ids);
}

/* The build cache's records (store-cache.c) keep the layer blob and the unpacked layer they
 * name; with prune_cache they are removed instead, so that what only they kept goes too. Stray
 * temporary names of their atomic writes go either way. */
MAR_MUST_USE static int mark_cache(reg_store *s, reach *r, bool dry_run, bool prune,
                                   reg_gc_stats *st, mar_err **err)
{
    mar_strv names = MAR_STRV_INIT;
    list_dir(s->dfd, "buildcache", &names);
    int rc = 0;
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        if (strstr(names.v[i], ".tmp-")) {
            rc = drop(s, "buildcache", names.v[i], dry_run, &st->bytes, err);
            st->tmp++;
            continue;
        }
        if (prune) {
            rc = drop(s, "buildcache", names.v[i], dry_run, &st->bytes, err);
            st->cache_records++;
            continue;
        }
        _cleanup_free_ char *p = mar_xasprintf("buildcache/%s", names.v[i]);
        mar_buf b = MAR_BUF_INIT(REG_CACHE_RECORD_MAX);
        mar_err *e = NULL;
        json_t *doc = NULL;
        if (mar_read_file_at(s->dfd, p, REG_CACHE_RECORD_MAX, &b, &e) == 0 &&
            mar_json_load(b.data, b.len, "build cache record", &doc, &e) == 0) {
            const char *blob = json_string_value(json_object_get(doc, "digest"));
            const char *chain = json_string_value(json_object_get(doc, "chain_id"));
            mar_digest d;
            if (blob && mar_digest_parse(blob, &d, NULL) == 0) {
                mar_map_set(&r->blobs, d.str, (void *)1);
            }
            if (chain && mar_digest_parse(chain, &d, NULL) == 0) {
                mar_map_set(&r->chains, mar_digest_hex(&d), (void *)1);
            }
        }
        json_decref(doc);
        mar_err_free(e);
        mar_buf_release(&b);
    }
    mar_strv_release(&names);
    return rc;
}

int reg_store_gc(reg_store *s, bool dry_run, bool prune_cache, reg_gc_stats *ret, mar_err **err)
{
    if (reg_store_hold(s, true, true, err) < 0) {
        return -mar_err_code(*err);
    }
    reg_store_refs refs;
    if (reg_store_list(s, &refs, err) < 0) {
        return -mar_err_code(*err);
    }
    reach r = {.blobs = MAR_MAP_INIT, .chains = MAR_MAP_INIT};
    for (size_t i = 0; i < refs.n; i++) {
        mark(s, &r, &refs.v[i].digest, refs.v[i].media_type, 0);
    }
    mark_containers(s, &r);
    reg_store_refs_release(&refs);
    reg_gc_stats st = {0};
    int rc = mark_cache(s, &r, dry_run, prune_cache, &st, err);
    static const char *const algs[] = {"sha256", "sha512"};
    for (size_t a = 0; a < MAR_ARRAY_SIZE(algs) && rc == 0; a++) {
        _cleanup_free_ char *dir = mar_xasprintf("blobs/%s", algs[a]);
        mar_strv names = MAR_STRV_INIT;
        list_dir(s->dfd, dir, &names);
        for (size_t i = 0; i < names.n && rc == 0; i++) {
            _cleanup_free_ char *dg = mar_xasprintf("%s:%s", algs[a], names.v[i]);
            if (mar_map_get(&r.blobs, dg)) {
                st.kept_blobs++;
                continue;
            }
            rc = drop(s, dir, names.v[i], dry_run, &st.bytes, err);
            st.blobs++;
        }
        mar_strv_release(&names);
    }
    mar_strv names = MAR_STRV_INIT;
    list_dir(s->dfd, "unpack", &names);
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        bool part = mar_str_startswith(names.v[i], "part-");
        if (!part && mar_map_get(&r.chains, names.v[i])) {
            st.kept_layers++;
            continue;
        }
        rc = drop(s, "unpack", names.v[i], dry_run, &st.bytes, err);
        part ? st.parts++ : st.layers++;
    }
    mar_strv_release(&names);
    names = (mar_strv)MAR_STRV_INIT;
    list_dir(s->dfd, "ingest", &names);
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        rc = drop(s, "ingest", names.v[i], dry_run, &st.bytes, err);
        st.ingests++;
    }
    mar_strv_release(&names);
    /* Temporary names of an atomic write a killed process left (index.json.tmp-<pid>), and
     * lock files of digests no longer present. */
    names = (mar_strv)MAR_STRV_INIT;
    list_dir(s->dfd, ".", &names);
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        if (strstr(names.v[i], ".tmp-")) {
            rc = drop(s, ".", names.v[i], dry_run, &st.bytes, err);
            st.tmp++;
        }
    }
    mar_strv_release(&names);
    /* Under the exclusive hold no build runs: a build's work directory still there is one a
     * killed build left, and trash/ is what a killed remover left (registry/store-trash.c). */
    names = (mar_strv)MAR_STRV_INIT;
    list_dir(s->dfd, "containers", &names);
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        if (mar_str_startswith(names.v[i], "build-")) {
            rc = drop(s, "containers", names.v[i], dry_run, &st.bytes, err);
            st.tmp++;
        }
    }
    mar_strv_release(&names);
    names = (mar_strv)MAR_STRV_INIT;
    list_dir(s->dfd, "trash", &names);
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        rc = drop(s, "trash", names.v[i], dry_run, &st.bytes, err);
        st.tmp++;
    }
    mar_strv_release(&names);
    names = (mar_strv)MAR_STRV_INIT;
    list_dir(s->dfd, "locks", &names);
    for (size_t i = 0; i < names.n && rc == 0 && !dry_run; i++) {
        if (strcmp(names.v[i], "store.lock") && strcmp(names.v[i], "index.lock")) {
            _cleanup_free_ char *p = mar_xasprintf("locks/%s", names.v[i]);
            unlinkat(s->dfd, p, 0);
        }
    }
    mar_strv_release(&names);
    mar_map_release(&r.blobs);
    mar_map_release(&r.chains);
    if (rc == 0) {
        *ret = st;
    }
    return rc;
}

int reg_store_verify(reg_store *s, mar_strv *ret_bad, mar_err **err)
{
    (void)err;
    int bad = 0;
    static const struct {
        const char *name;
        mar_digest_alg alg;
    } algs[] = {{"sha256", MAR_DIGEST_SHA256}, {"sha512", MAR_DIGEST_SHA512}};
    for (size_t a = 0; a < MAR_ARRAY_SIZE(algs); a++) {
        _cleanup_free_ char *dir = mar_xasprintf("blobs/%s", algs[a].name);
        mar_strv names = MAR_STRV_INIT;
        list_dir(s->dfd, dir, &names);
        for (size_t i = 0; i < names.n; i++) {
            _cleanup_free_ char *dg = mar_xasprintf("%s:%s", algs[a].name, names.v[i]);
            mar_digest want;
            bool ok = mar_digest_parse(dg, &want, NULL) == 0;
            _cleanup_free_ char *p = mar_xasprintf("%s/%s", dir, names.v[i]);
            _cleanup_close_ int fd = ok ? openat(s->dfd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
            struct stat st;
            ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                 (st.st_mode & 0777) == 0444;
            if (ok) {
                _cleanup_hasher_ mar_hasher *h = mar_hasher_new(algs[a].alg);
                char buf[1 << 16];
                ssize_t n;
                while ((n = read(fd, buf, sizeof(buf))) > 0) {
                    mar_hasher_update(h, buf, (size_t)n);
                }
                mar_digest got;
                mar_hasher_final(h, &got);
                ok = n == 0 && mar_digest_eq(&got, &want);
            }
            if (!ok) {
                bad++;
                mar_strv_push(ret_bad, dg);
            }
        }
        mar_strv_release(&names);
    }
    return bad;
}
