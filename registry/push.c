/* A push: blobs, then manifests, then indexes, then the top document under its tag
 * (docs/internals/registry-protocol.md §14). Blobs upload in parallel (upload.c); documents are
 * put with their exact bytes and their media type as Content-Type, and the registry's
 * Docker-Content-Digest must be the digest mar computed. A stage starts only when the one before
 * it finished without a failure, so a tag never names something incomplete. */
#include "push-internal.h"

#include <string.h>

enum { STAGE_BLOBS, STAGE_MANIFESTS, STAGE_INDEXES, STAGE_TOP, STAGE_DONE };

typedef struct job {
    reg_push *push;
    size_t idx;
    int stage;
    reg_blob_src src; /* blobs */
    oci_ref from;     /* REG_SRC_REGISTRY, owned */
    reg_source *source;
    mar_buf bytes; /* documents */
    char *scope;   /* a blob mounted from its own source repository */
    bool started;
    bool finished;
} job;

struct reg_push {
    reg_client *c;
    reg_push_opts o;
    oci_ref dst;
    char *mount_from;
    char *scope;
    reg_host *host;
    reg_push_item *items;
    job *jobs;
    size_t n;
    size_t top; /* SIZE_MAX: none */
    int stage;
    size_t active;
    mar_err *err; /* the first failure */
    reg_push_stats stats;
    uint64_t chunk_size, monolithic_max;
};

void reg_push_result_release(reg_push_result *r)
{
    free(r->media_type);
    r->media_type = NULL;
}

static void ref_copy(const oci_ref *in, oci_ref *out)
{
    memset(out, 0, sizeof(*out));
    out->domain = mar_xstrdup(in->domain);
    out->path = mar_xstrdup(in->path);
    out->api_host = mar_xstrdup(in->api_host);
    out->tag = in->tag ? mar_xstrdup(in->tag) : NULL;
    out->has_digest = in->has_digest;
    out->digest = in->digest;
}

reg_push *reg_push_new(reg_client *c, const reg_push_opts *o)
{
    reg_push *p = mar_xcalloc(1, sizeof(*p));
    p->c = c;
    p->o = *o;
    ref_copy(o->dst, &p->dst);
    p->o.dst = &p->dst;
    p->mount_from = o->mount_from ? mar_xstrdup(o->mount_from) : NULL;
    p->o.mount_from = p->mount_from;
    p->o.jobs = o->jobs > 0 ? o->jobs : 4;
    p->scope = reg__push_scope(p->dst.path, p->mount_from);
    p->host = reg__host_get(c, p->dst.api_host);
    p->top = SIZE_MAX;
    /* A tuning knob for tests (small chunks without big blobs); documented in docs/mar.1.md. */
    int64_t v;
    const char *env = getenv("MAR_PUSH_CHUNK_SIZE");
    p->chunk_size = o->chunk_size                                    ? o->chunk_size
                    : env && mar_parse_i64(env, 1024, INT64_MAX, &v) ? (uint64_t)v
                                                                     : 32u << 20;
    p->monolithic_max = o->monolithic_max ? o->monolithic_max : p->chunk_size;
    return p;
}

static void job_release(job *j)
{
    reg__source_free(j->source);
    j->source = NULL;
    oci_ref_release(&j->from);
    mar_buf_release(&j->bytes);
    free(j->scope);
    j->scope = NULL;
}

reg_push *reg_push_free(reg_push *p)
{
    if (!p) {
        return NULL;
    }
    for (size_t i = 0; i < p->n; i++) {
        job_release(&p->jobs[i]);
        oci_descriptor_release(&p->items[i].desc);
    }
    free(p->items);
    free(p->jobs);
    free(p->scope);
    free(p->mount_from);
    oci_ref_release(&p->dst);
    mar_err_free(p->err);
    free(p);
    return NULL;
}

size_t reg_push_items(const reg_push *p, const reg_push_item **ret)
{
    *ret = p->items;
    return p->n;
}

const mar_buf *reg__push_item_bytes(const reg_push *p, size_t i)
{
    return &p->jobs[i].bytes;
}

static size_t add_item(reg_push *p)
{
    p->items = mar_xrealloc(p->items, (p->n + 1) * sizeof(*p->items));
    p->jobs = mar_xrealloc(p->jobs, (p->n + 1) * sizeof(*p->jobs));
    memset(&p->items[p->n], 0, sizeof(*p->items));
    memset(&p->jobs[p->n], 0, sizeof(*p->jobs));
    p->items[p->n].push = p;
    p->jobs[p->n].push = p;
    p->jobs[p->n].idx = p->n;
    p->jobs[p->n].bytes = (mar_buf)MAR_BUF_INIT(MAR_CAP_MANIFEST);
    return p->n++;
}

static size_t find(const reg_push *p, const mar_digest *d, bool document)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->items[i].document == document && mar_digest_eq(&p->items[i].desc.digest, d)) {
            return i;
        }
    }
    return SIZE_MAX;
}

void reg_push_add_blob(reg_push *p, const oci_descriptor *d, const reg_blob_src *src)
{
    if (find(p, &d->digest, false) != SIZE_MAX) {
        return;
    }
    size_t i = add_item(p);
    reg_push_item *it = &p->items[i];
    job *j = &p->jobs[i];
    it->desc.media_type = mar_xstrdup(d->media_type ? d->media_type : "");
    it->desc.digest = d->digest;
    it->desc.size = d->size;
    j->stage = STAGE_BLOBS;
    j->src = *src;
    if (src->kind == REG_SRC_REGISTRY) {
        /* Pointed at when the upload starts: the jobs move while items are added. */
        ref_copy(src->from, &j->from);
        j->src.from = NULL;
    }
}

MAR_MUST_USE static int add_document(reg_push *p, const char *media_type, const void *bytes,
                                     size_t n, const oci_platform *platform, bool top,
                                     mar_err **err)
{
    oci_kind kind = oci_media_kind(media_type);
    if (kind != OCI_KIND_INDEX && kind != OCI_KIND_MANIFEST) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "'%s' is not a manifest media type, refusing",
                           media_type ? media_type : "");
    }
    if (n > MAR_CAP_MANIFEST) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "a manifest of %zu bytes exceeds the limit of %u, refusing", n,
                           MAR_CAP_MANIFEST);
    }
    mar_digest d;
    mar_digest_of(MAR_DIGEST_SHA256, bytes, n, &d);
    if (top && p->dst.has_digest && !mar_digest_eq(&d, &p->dst.digest)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "the image is %s, not the digest %s asked for",
                           d.str, p->dst.digest.str);
    }
    size_t i = top ? SIZE_MAX : find(p, &d, true);
    if (i != SIZE_MAX) {
        return 0;
    }
    i = add_item(p);
    reg_push_item *it = &p->items[i];
    job *j = &p->jobs[i];
    it->document = true;
    it->top = top;
    char base[128];
    oci_media_type_base(media_type, base, sizeof(base));
    it->desc.media_type = mar_xstrdup(base);
    it->desc.digest = d;
    it->desc.size = (int64_t)n;
    if (platform) {
        it->desc.has_platform = true;
        it->desc.platform = *platform;
    }
    /* n is checked against the buffer's cap (MAR_CAP_MANIFEST) above: this cannot fail. */
    mar_ignore(mar_buf_append(&j->bytes, bytes, n));
    j->stage = top ? STAGE_TOP : kind == OCI_KIND_INDEX ? STAGE_INDEXES : STAGE_MANIFESTS;
    if (top) {
        p->top = i;
    }
    return 0;
}

int reg_push_add_manifest(reg_push *p, const char *media_type, const void *bytes, size_t n,
                          const oci_platform *platform, mar_err **err)
{
    return add_document(p, media_type, bytes, n, platform, false, err);
}

int reg_push_set_top(reg_push *p, const char *media_type, const void *bytes, size_t n,
                     mar_err **err)
{
    if (p->top != SIZE_MAX) {
        return mar_err_set(err, MAR_EFAIL, 0, "a push has one top document");
    }
    return add_document(p, media_type, bytes, n, NULL, true, err);
}

void reg_push_expect_manifest(reg_push *p, const oci_descriptor *d)
{
    if (find(p, &d->digest, true) != SIZE_MAX) {
        return;
    }
    size_t i = add_item(p);
    reg_push_item *it = &p->items[i];
    it->document = true;
    it->expect_only = true;
    it->desc.media_type = mar_xstrdup(d->media_type ? d->media_type : OCI_MT_MANIFEST);
    it->desc.digest = d->digest;
    it->desc.size = d->size;
    it->desc.has_platform = d->has_platform;
    it->desc.platform = d->platform;
    p->jobs[i].stage = STAGE_MANIFESTS;
}

/* ---- running -------------------------------------------------------------------------------- */

static void emit(reg_push *p, size_t i)
{
    if (p->o.progress) {
        p->o.progress(p, &p->items[i], p->o.progress_ud);
    }
}

static void pump(reg_push *p);

static void item_failed(reg_push *p, size_t i, mar_err *err)
{
    reg_push_item *it = &p->items[i];
    it->state = REG_PUSH_FAILED;
    emit(p, i);
    char ps[OCI_PLATFORM_STR_MAX] = "";
    if (it->desc.has_platform) {
        ps[0] = ' ';
        oci_platform_format(&it->desc.platform, ps + 1, sizeof(ps) - 1);
    }
    _cleanup_free_ char *repo = oci_ref_repo(&p->dst);
    mar_err_wrap(&err, "pushing %s %s%s to '%s'",
                 it->document ? (it->top ? "the image" : "manifest") : "blob", it->desc.digest.str,
                 ps, repo);
    if (!p->err) {
        p->err = err;
    } else {
        mar_err_free(err);
    }
}

static void item_end(reg_push *p, size_t i)
{
    p->jobs[i].finished = true;
    p->active--;
    pump(p);
}

static void up_progress(void *ud, reg_push_state st, uint64_t sent, uint64_t resumed_from,
                        bool resumed, bool restarted)
{
    job *j = ud;
    reg_push *p = j->push;
    reg_push_item *it = &p->items[j->idx];
    it->state = st;
    it->sent = sent;
    it->resumed_from = resumed_from;
    if (resumed) {
        it->resumes++;
        p->stats.resumes++;
    }
    if (restarted) {
        it->restarts++;
        p->stats.restarts++;
    }
    emit(p, j->idx);
}

static void up_done(void *ud, int rc, reg_push_state final, uint64_t body_bytes, mar_err *err)
{
    job *j = ud;
    reg_push *p = j->push;
    reg__source_free(j->source);
    j->source = NULL;
    p->stats.bytes_sent += body_bytes;
    if (rc < 0) {
        item_failed(p, j->idx, err);
    } else {
        p->items[j->idx].state = final;
        p->stats.blobs_pushed += final == REG_PUSH_PUSHED;
        p->stats.blobs_mounted += final == REG_PUSH_MOUNTED;
        p->stats.blobs_present += final == REG_PUSH_PRESENT;
    }
    item_end(p, j->idx);
}

static void start_blob(reg_push *p, size_t i)
{
    job *j = &p->jobs[i];
    reg_push_item *it = &p->items[i];
    mar_err *err = NULL;
    if (j->src.kind == REG_SRC_REGISTRY) {
        j->src.from = &j->from;
    }
    bool producer = j->src.kind == REG_SRC_REGISTRY || j->src.kind == REG_SRC_PRODUCER;
    uint64_t chunk = p->chunk_size, mono = p->monolithic_max;
    if (producer) {
        /* A chunk, and a whole monolithic body, must fit the producer's window. */
        chunk = chunk < REG__SOURCE_WINDOW ? chunk : REG__SOURCE_WINDOW;
        mono = mono < chunk ? mono : chunk;
    }
    if (reg__source_open(p->c, &j->src, &it->desc, chunk, &j->source, &err) < 0) {
        item_failed(p, i, err);
        j->finished = true;
        return;
    }
    /* Without a push-wide mount source, a blob streamed from another repository of the same
     * registry is mounted from there, when asked. */
    const char *mount_from = p->mount_from;
    const char *scope = p->scope;
    if (!mount_from && p->o.mount_sources && j->src.kind == REG_SRC_REGISTRY &&
        strcmp(j->from.api_host, p->dst.api_host) == 0 && strcmp(j->from.path, p->dst.path) != 0) {
        mount_from = j->from.path;
        free(j->scope);
        j->scope = reg__push_scope(p->dst.path, mount_from);
        scope = j->scope;
    }
    reg_upload_params prm = {
            .c = p->c,
            .host = p->host,
            .repo = p->dst.path,
            .mount_from = mount_from,
            .scope = scope,
            .desc = &it->desc,
            .src = j->source,
            .chunk_size = chunk,
            .monolithic_max = mono,
            .progress = up_progress,
            .done = up_done,
            .ud = j,
    };
    p->active++;
    reg__upload_start(&prm);
}

/* ---- documents ------------------------------------------------------------------------------ */

static void doc_prepare(reg_op *op)
{
    job *j = op->userdata;
    reg_push_item *it = &j->push->items[j->idx];
    if (strcmp(op->method, "PUT") == 0) {
        mar_strv_push_take(&op->req.headers,
                           mar_xasprintf("Content-Type: %s", it->desc.media_type));
        mar_strv_push_take(&op->req.headers, mar_xasprintf("Content-Length: %zu", j->bytes.len));
        op->req.body_kind = REG_BODY_MEMORY;
        op->req.body = j->bytes.data;
        op->req.body_len = j->bytes.len;
    }
}

static void start_doc_put(reg_push *p, size_t i);

static void on_doc(reg_op *op)
{
    job *j = op->userdata;
    reg_push *p = j->push;
    reg_push_item *it = &p->items[j->idx];
    long st = op->req.status;
    mar_err *err = NULL;
    bool head = strcmp(op->method, "HEAD") == 0;
    if (head && op->rc == 0 && st == 200) {
        reg__op_free(op);
        it->state = REG_PUSH_PRESENT;
        p->stats.documents_present++;
        emit(p, j->idx);
        item_end(p, j->idx);
        return;
    }
    if (head && op->rc == 0 && st == 404 && !it->expect_only) {
        reg__op_free(op);
        start_doc_put(p, j->idx);
        return;
    }
    if (head && op->rc == 0 && st == 404) {
        reg__op_free(op);
        _cleanup_free_ char *repo = oci_ref_repo(&p->dst);
        mar_err_set(&err, MAR_ENOTFOUND, 0, "'%s' does not have it", repo);
        item_failed(p, j->idx, err);
        item_end(p, j->idx);
        return;
    }
    if (!head && op->rc == 0 && (st == 201 || st == 200)) {
        /* The registry must have stored the bytes as sent (distribution-spec "Pushing
         * Manifests": Docker-Content-Digest MUST match the client's). */
        const char *dcd = reg_http_header(&op->req, "docker-content-digest");
        if (dcd && strcmp(dcd, it->desc.digest.str) != 0) {
            mar_err_set(&err, MAR_EINTEGRITY, 0,
                        "registry '%s' says it stored %.80s, but mar sent %s, refusing",
                        p->host->host, dcd, it->desc.digest.str);
            reg__op_free(op);
            item_failed(p, j->idx, err);
            item_end(p, j->idx);
            return;
        }
        if (!dcd) {
            mar_debug("'%s' did not say which digest it stored for %s", p->host->host,
                      it->desc.digest.str);
        }
        reg__op_free(op);
        it->state = REG_PUSH_PUSHED;
        it->sent = (uint64_t)it->desc.size;
        p->stats.documents_pushed++;
        p->stats.bytes_sent += (uint64_t)it->desc.size;
        emit(p, j->idx);
        item_end(p, j->idx);
        return;
    }
    reg__op_status_error(op, head ? "HEAD manifest" : "PUT manifest", &err);
    reg__op_free(op);
    item_failed(p, j->idx, err);
    item_end(p, j->idx);
}

static void start_doc_put(reg_push *p, size_t i)
{
    reg_push_item *it = &p->items[i];
    /* With both a tag and a digest, the digest was checked when the top was set. */
    const char *ref = it->top && p->dst.tag ? p->dst.tag : it->desc.digest.str;
    _cleanup_free_ char *path = mar_xasprintf("/v2/%s/manifests/%s", p->dst.path, ref);
    reg_op *op = reg__op_new(p->c, p->host, p->dst.path, "PUT", path, on_doc, &p->jobs[i]);
    op->scope = mar_xstrdup(p->scope);
    op->prepare = doc_prepare;
    it->state = REG_PUSH_UPLOADING;
    emit(p, i);
    reg__op_start(op);
}

static void start_doc(reg_push *p, size_t i)
{
    reg_push_item *it = &p->items[i];
    p->active++;
    if (it->top || (p->o.put_documents && !it->expect_only)) {
        /* Always put the top: the tag must name it now, whatever the repository held. */
        start_doc_put(p, i);
        return;
    }
    _cleanup_free_ char *path =
            mar_xasprintf("/v2/%s/manifests/%s", p->dst.path, it->desc.digest.str);
    reg_op *op = reg__op_new(p->c, p->host, p->dst.path, "HEAD", path, on_doc, &p->jobs[i]);
    op->scope = mar_xstrdup(p->scope);
    op->accept = mar_xstrdup(OCI_MANIFEST_ACCEPT);
    it->state = REG_PUSH_CHECKING;
    emit(p, i);
    reg__op_start(op);
}

/* Starts what the current stage allows; moves to the next stage when it is complete. */
static void pump(reg_push *p)
{
    while (p->stage < STAGE_DONE) {
        bool pending = false;
        for (size_t i = 0; i < p->n && !p->err; i++) {
            job *j = &p->jobs[i];
            if (j->stage != p->stage || j->finished) {
                continue;
            }
            pending = true;
            if (j->started || p->active >= (size_t)p->o.jobs) {
                continue;
            }
            j->started = true;
            if (p->stage == STAGE_BLOBS) {
                start_blob(p, i);
            } else {
                start_doc(p, i);
            }
        }
        if (pending || p->err || p->active) {
            return;
        }
        p->stage++;
    }
}

int reg_push_run(reg_push *p, reg_push_result *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    if (p->top == SIZE_MAX) {
        return mar_err_set(err, MAR_EFAIL, 0, "nothing to push: no top document");
    }
    reg_stats before;
    reg_client_stats(p->c, &before);
    pump(p);
    if (reg_client_run(p->c, err) < 0) {
        return -mar_err_code(*err);
    }
    reg_stats after;
    reg_client_stats(p->c, &after);
    p->stats.retries = after.retries - before.retries;
    if (p->err) {
        *err = TAKE_PTR(p->err);
        return -mar_err_code(*err);
    }
    if (p->stage != STAGE_DONE) {
        return mar_err_set(err, MAR_EFAIL, 0, "the push of '%s' stopped before its end",
                           p->dst.path);
    }
    const reg_push_item *top = &p->items[p->top];
    ret->digest = top->desc.digest;
    ret->media_type = mar_xstrdup(top->desc.media_type);
    ret->size = top->desc.size;
    ret->stats = p->stats;
    return 0;
}
