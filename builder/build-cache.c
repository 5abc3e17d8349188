/* The step cache (docs/internals/build.md §11): a RUN, COPY or ADD step is keyed by everything
 * its layer depends on — the image it starts from (its layers' diff_ids and its config without
 * history and times), the platforms, the instruction as written with its here-documents, the
 * variables it sees, the epoch its times are clamped to, and for COPY and ADD the digest of the
 * sources it reads (build-copy.c key_sources) — and a record in the store under that key names the
 * layer a step with the same key made. A secret's value is never part of a key or a record: RUN
 * --mount=type=secret enters the key as written in the Dockerfile (its id and target), and secrets
 * given as environment variables are not in the stage's scope. */
#include "build-internal.h"

#include <string.h>

#define KEY_VERSION "mar build cache 2"

/* Each field with its length in front, so that no two different lists of fields hash alike. */
static void put(mar_hasher *h, const char *s)
{
    char len[24];
    size_t n = s ? strlen(s) : 0;
    int k = snprintf(len, sizeof(len), "%zu:", n);
    mar_hasher_update(h, len, (size_t)k);
    if (n) {
        mar_hasher_update(h, s, n);
    }
}

/* The image a step starts from: its layers and its config, without what differs between two
 * builds of the same inputs (history, created) and is not part of any layer. */
static void put_image(mar_hasher *h, const bld__image *im)
{
    put(h, "layers");
    for (size_t i = 0; i < im->n_layers; i++) {
        put(h, im->layers[i].diff_id.str);
    }
    _cleanup_json_ json_t *cfg = json_deep_copy(im->config);
    json_object_del(cfg, "history");
    json_object_del(cfg, "created");
    _cleanup_free_ char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    put(h, "config");
    put(h, text);
    put(h, "shell");
    for (size_t i = 0; i < im->shell.n; i++) {
        put(h, im->shell.v[i]);
    }
    char ps[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&im->platform, ps, sizeof(ps));
    put(h, ps);
}

bool bld__cache_key(const bld__ctx *c, const bld__stage *st, const bld_instr *in,
                    const mar_digest *content, mar_digest *ret)
{
    /* A bind mount's contents (the context's files, another stage's) change what the step
     * does without changing anything the key holds. */
    for (size_t i = 0; i < in->n_mounts; i++) {
        if (in->mounts[i].deferred || in->mounts[i].type == BLD_MOUNT_BIND) {
            return false;
        }
    }
    _cleanup_hasher_ mar_hasher *h = mar_hasher_new(MAR_DIGEST_SHA256);
    put(h, KEY_VERSION);
    put(h, c->target_str);
    put_image(h, &st->img);
    char epoch[32] = "none";
    if (c->o->has_epoch) {
        snprintf(epoch, sizeof(epoch), "%lld", (long long)c->o->epoch);
    }
    put(h, "epoch");
    put(h, epoch);
    put(h, c->o->zstd ? "zstd" : "gzip");
    put(h, "instruction");
    put(h, in->original);
    for (size_t i = 0; i < in->n_heredocs; i++) {
        const bld_heredoc *hd = &in->heredocs[i];
        char flags[48];
        snprintf(flags, sizeof(flags), "%d %d %u", hd->expand, hd->chomp, hd->fd);
        put(h, hd->name);
        put(h, hd->content);
        put(h, flags);
    }
    mar_strv env = MAR_STRV_INIT;
    bld_scope_run_env(st->scope, &env);
    put(h, "env");
    for (size_t i = 0; i < env.n; i++) {
        put(h, env.v[i]);
    }
    mar_strv_release(&env);
    put(h, "content");
    put(h, content ? content->str : NULL);
    mar_hasher_final(h, ret);
    return true;
}

int bld__cache_use(bld__ctx *c, bld__image *im, const mar_digest *key, mar_err **err)
{
    if (c->o->no_cache) {
        return 0;
    }
    _cleanup_buf_ mar_buf b = MAR_BUF_INIT(REG_CACHE_RECORD_MAX);
    mar_err *e = NULL;
    _cleanup_json_ json_t *doc = NULL;
    if (reg_store_cache_get(c->o->store, key, &b, &e) < 0 ||
        mar_json_load(b.data, b.len, "build cache record", &doc, &e) < 0) {
        mar_err_free(e);
        return 0;
    }
    const char *mt = json_string_value(json_object_get(doc, "media_type"));
    const char *dg = json_string_value(json_object_get(doc, "digest"));
    const char *id = json_string_value(json_object_get(doc, "diff_id"));
    json_t *size = json_object_get(doc, "size");
    bld__layer l = {0};
    if (!mt || !dg || !id || !json_is_integer(size) || json_integer_value(size) < 0 ||
        mar_digest_parse(dg, &l.digest, NULL) < 0 || mar_digest_parse(id, &l.diff_id, NULL) < 0 ||
        (strcmp(mt, OCI_MT_LAYER_GZIP) && strcmp(mt, OCI_MT_LAYER_ZSTD) &&
         strcmp(mt, OCI_MT_LAYER))) {
        return 0;
    }
    l.size = (int64_t)json_integer_value(size);
    /* gc may have removed the blob (a record of a build that was never tagged, pruned before
     * the record was): then the step runs again. */
    if (!reg_store_has(c->o->store, &l.digest, l.size)) {
        return 0;
    }
    l.media_type = mar_xstrdup(mt);
    if (bld__add_layer(c, im, &l, err) < 0) {
        free(l.media_type);
        return -mar_err_code(*err);
    }
    return 1;
}

void bld__cache_record(bld__ctx *c, const bld__image *im, const mar_digest *key)
{
    if (!im->n_layers) {
        return;
    }
    const bld__layer *l = &im->layers[im->n_layers - 1];
    _cleanup_json_ json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:s}", "media_type", l->media_type,
                                           "digest", l->digest.str, "size", (json_int_t)l->size,
                                           "diff_id", l->diff_id.str, "chain_id", l->chain.str);
    _cleanup_free_ char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    mar_err *e = NULL;
    if (text && reg_store_cache_put(c->o->store, key, text, &e) < 0) {
        mar_diag_warn("cannot record the build cache: %s", e->msg);
        mar_err_free(e);
    }
}
