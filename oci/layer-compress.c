/* Layer blobs (docs/internals/layer-write.md §5): uncompressed tar in, the DiffID (sha256 of
 * those bytes) and the blob (compressed, hashed again, written to an fd) out, in one pass.
 *
 * gzip is ISA-L's igzip, cut into 1 MiB chunks compressed independently on worker threads, each
 * primed with the 32 KiB before it as its dictionary and ended with a sync flush, and the chunks
 * joined into one gzip member (RFC 1951 blocks may end at any byte boundary a sync flush leaves):
 * one member is what every gzip reader reads, and because the cuts depend only on the stream, the
 * bytes are the same for any number of threads. The CRC-32 is computed once over the whole
 * stream, beside the DiffID. zstd uses libzstd's own workers (ZSTD_c_nbWorkers), whose output
 * does not depend on their number either. */
#include "oci.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#define GZ_CHUNK    (1u << 20)
#define GZ_DICT     (32u << 10) /* the deflate window (RFC 1951 §2) */
#define GZ_OUT      (GZ_CHUNK + GZ_CHUNK / 8 + (64u << 10))
#define MAX_THREADS 64u
#define RAW_CHUNK   (1u << 20)

typedef enum { JOB_FREE, JOB_FILLING, JOB_READY, JOB_BUSY, JOB_DONE } job_state;

typedef struct gz_job {
    unsigned char *in; /* GZ_DICT bytes of room for the dictionary, then the chunk */
    size_t dict_len, len;
    bool last;
    unsigned char *out;
    size_t out_len, out_alloc;
    int rc;          /* ISA-L's status when it failed */
    job_state state; /* under the mutex once workers run */
    uint64_t seq;
} gz_job;

struct oci_layer_out {
    oci_codec codec;
    int level;
    unsigned threads;
    int fd;
    mar_hasher *diff, *blob;
    uint64_t in_total, out_total;
    int failed; /* sticky MAR_E* code */
    bool finished;
    /* uncompressed */
    unsigned char *raw;
    size_t raw_len;
    /* gzip */
    gz_job *jobs;
    size_t n_jobs;
    uint64_t fill_seq, retire_seq; /* the job being filled; the oldest not yet written */
    gz_job *fill;
    unsigned char dict[GZ_DICT];
    size_t dict_len;
    uint32_t crc;
    unsigned char *level_buf; /* for compressing on the calling thread */
    pthread_t *tids;
    size_t n_tids;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    bool quit;
    /* zstd */
    ZSTD_CCtx *zc;
    unsigned char *zout;
    size_t zout_size;
};

const char *oci_layer_media_type(oci_codec c)
{
    switch (c) {
    case OCI_CODEC_GZIP:
        return OCI_MT_LAYER_GZIP;
    case OCI_CODEC_ZSTD:
        return OCI_MT_LAYER_ZSTD;
    case OCI_CODEC_NONE:
        break;
    }
    return OCI_MT_LAYER;
}

static unsigned cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
        return (unsigned)CPU_COUNT(&set);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static uint32_t level_buf_size(int level)
{
    switch (level) {
    case 1:
        return ISAL_DEF_LVL1_DEFAULT;
    case 2:
        return ISAL_DEF_LVL2_DEFAULT;
    default:
        return ISAL_DEF_LVL3_DEFAULT;
    }
}

/* The compressed bytes, in order: hashed and written. */
MAR_MUST_USE static int put_out(oci_layer_out *z, const void *p, size_t n, mar_err **err)
{
    if (z->blob) {
        mar_hasher_update(z->blob, p, n);
    }
    const unsigned char *c = p;
    while (n) {
        ssize_t w = write(z->fd, c, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            z->failed = MAR_EIO;
            return mar_err_set(err, MAR_EIO, w < 0 ? errno : ENOSPC, "cannot write the layer blob");
        }
        c += w;
        n -= (size_t)w;
        z->out_total += (uint64_t)w;
    }
    return 0;
}

/* ---- gzip ----------------------------------------------------------------------------------- */

/* Deflates one chunk: a pure function of its dictionary, its bytes and whether it is the last,
 * whichever thread runs it. */
static void gz_compress(gz_job *j, int level, unsigned char *level_buf)
{
    /* Level 3 reads parts of its working memory before writing them (valgrind sees it): cleared
     * for every chunk, so that nothing a previous chunk left there, on whichever thread, can
     * reach the output. */
    memset(level_buf, 0, level_buf_size(level));
    struct isal_zstream s;
    isal_deflate_init(&s);
    s.level = (uint32_t)level;
    s.level_buf = level_buf;
    s.level_buf_size = level_buf_size(level);
    s.gzip_flag = IGZIP_DEFLATE;
    s.end_of_stream = j->last;
    s.flush = j->last ? NO_FLUSH : SYNC_FLUSH;
    j->rc = 0;
    j->out_len = 0;
    if (j->dict_len) {
        int rc = isal_deflate_set_dict(&s, j->in + GZ_DICT - j->dict_len, (uint32_t)j->dict_len);
        if (rc != COMP_OK) {
            j->rc = rc;
            return;
        }
    }
    s.next_in = j->in + GZ_DICT;
    s.avail_in = (uint32_t)j->len;
    for (;;) {
        if (j->out_alloc - j->out_len < 4096) {
            j->out_alloc *= 2;
            j->out = mar_xrealloc(j->out, j->out_alloc);
        }
        s.next_out = j->out + j->out_len;
        s.avail_out = (uint32_t)(j->out_alloc - j->out_len);
        int rc = isal_deflate(&s);
        if (rc != COMP_OK) {
            j->rc = rc;
            return;
        }
        j->out_len = j->out_alloc - s.avail_out;
        /* isal_deflate returns when the input is used up and the flush or the end written, or
         * when the output is full. */
        bool done =
                j->last ? s.internal_state.state == ZSTATE_END : s.avail_in == 0 && s.avail_out > 0;
        if (done) {
            return;
        }
    }
}

static void *gz_worker(void *arg)
{
    oci_layer_out *z = arg;
    _cleanup_free_ unsigned char *lb = mar_xmalloc(level_buf_size(z->level));
    pthread_mutex_lock(&z->mu);
    for (;;) {
        gz_job *j = NULL;
        /* The oldest ready job first, so that output leaves in order as soon as possible. */
        for (size_t i = 0; i < z->n_jobs; i++) {
            gz_job *c = &z->jobs[i];
            if (c->state == JOB_READY && (!j || c->seq < j->seq)) {
                j = c;
            }
        }
        if (!j) {
            if (z->quit) {
                break;
            }
            pthread_cond_wait(&z->work, &z->mu);
            continue;
        }
        j->state = JOB_BUSY;
        pthread_mutex_unlock(&z->mu);
        gz_compress(j, z->level, lb);
        pthread_mutex_lock(&z->mu);
        j->state = JOB_DONE;
        pthread_cond_broadcast(&z->done);
    }
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

static void gz_start_workers(oci_layer_out *z)
{
    z->started = true;
    z->tids = mar_xcalloc(z->threads, sizeof(*z->tids));
    for (unsigned i = 0; i < z->threads; i++) {
        if (pthread_create(&z->tids[z->n_tids], NULL, gz_worker, z) != 0) {
            break; /* fewer workers, or none: the calling thread compresses what is left */
        }
        z->n_tids++;
    }
    if (z->n_tids) {
        mar_debug("gzip: %zu compression threads", z->n_tids);
    }
}

static void gz_header(unsigned char h[10], int level)
{
    /* RFC 1952 §2.3: no name, no comment, MTIME 0 ("not available"), OS 255 ("unknown"), so
     * that nothing about the host or the moment enters the blob. XFL 4 marks the fastest
     * level. */
    static const unsigned char base[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
    memcpy(h, base, sizeof(base));
    h[8] = level == 1 ? 4 : 0;
}

/* Writes the oldest job out once it is compressed, and frees its slot. */
MAR_MUST_USE static int gz_retire(oci_layer_out *z, mar_err **err)
{
    gz_job *j = &z->jobs[z->retire_seq % z->n_jobs];
    if (z->n_tids) {
        pthread_mutex_lock(&z->mu);
        while (j->state != JOB_DONE) {
            pthread_cond_wait(&z->done, &z->mu);
        }
        pthread_mutex_unlock(&z->mu);
    } else if (j->state == JOB_READY) {
        gz_compress(j, z->level, z->level_buf);
        j->state = JOB_DONE;
    }
    if (j->rc) {
        z->failed = MAR_EFAIL;
        return mar_err_set(err, MAR_EFAIL, 0, "gzip compression failed (ISA-L status %d)", j->rc);
    }
    int rc = 0;
    if (z->retire_seq == 0) {
        unsigned char h[10];
        gz_header(h, z->level);
        rc = put_out(z, h, sizeof(h), err);
    }
    if (rc == 0) {
        rc = put_out(z, j->out, j->out_len, err);
    }
    pthread_mutex_lock(&z->mu);
    j->state = JOB_FREE;
    pthread_mutex_unlock(&z->mu);
    z->retire_seq++;
    return rc;
}

/* Takes the next slot for filling, writing out older jobs until it is free. */
MAR_MUST_USE static int gz_acquire(oci_layer_out *z, mar_err **err)
{
    /* The slot of job fill_seq held job fill_seq - n_jobs: it must be written out first. */
    while (z->fill_seq - z->retire_seq >= z->n_jobs) {
        int rc = gz_retire(z, err);
        if (rc < 0) {
            return rc;
        }
    }
    gz_job *j = &z->jobs[z->fill_seq % z->n_jobs];
    pthread_mutex_lock(&z->mu);
    j->state = JOB_FILLING;
    pthread_mutex_unlock(&z->mu);
    j->seq = z->fill_seq;
    j->len = 0;
    j->last = false;
    j->dict_len = z->dict_len;
    memcpy(j->in + GZ_DICT - z->dict_len, z->dict, z->dict_len);
    z->fill = j;
    return 0;
}

static void gz_submit(oci_layer_out *z, bool last)
{
    gz_job *j = z->fill;
    j->last = last;
    size_t keep = j->len < GZ_DICT ? j->len : GZ_DICT;
    memcpy(z->dict, j->in + GZ_DICT + j->len - keep, keep);
    z->dict_len = keep;
    z->fill = NULL;
    z->fill_seq++;
    if (!last && z->threads > 1 && !z->started) {
        gz_start_workers(z);
    }
    pthread_mutex_lock(&z->mu);
    j->state = JOB_READY;
    pthread_cond_signal(&z->work);
    pthread_mutex_unlock(&z->mu);
}

MAR_MUST_USE static int gz_write(oci_layer_out *z, const unsigned char *p, size_t n, mar_err **err)
{
    while (n) {
        if (!z->fill) {
            int rc = gz_acquire(z, err);
            if (rc < 0) {
                return rc;
            }
        }
        gz_job *j = z->fill;
        size_t take = GZ_CHUNK - j->len < n ? GZ_CHUNK - j->len : n;
        memcpy(j->in + GZ_DICT + j->len, p, take);
        j->len += take;
        p += take;
        n -= take;
        if (j->len == GZ_CHUNK) {
            gz_submit(z, false);
        }
    }
    return 0;
}

MAR_MUST_USE static int gz_finish(oci_layer_out *z, mar_err **err)
{
    int rc;
    if (!z->fill && (rc = gz_acquire(z, err)) < 0) {
        return rc;
    }
    gz_submit(z, true);
    while (z->retire_seq < z->fill_seq) {
        if ((rc = gz_retire(z, err)) < 0) {
            return rc;
        }
    }
    /* RFC 1952 §2.3.1: CRC-32 and ISIZE (the length modulo 2^32), little-endian. */
    unsigned char t[8];
    uint32_t isize = (uint32_t)z->in_total;
    for (int i = 0; i < 4; i++) {
        t[i] = (unsigned char)(z->crc >> (8 * i));
        t[4 + i] = (unsigned char)(isize >> (8 * i));
    }
    return put_out(z, t, sizeof(t), err);
}

/* ---- zstd and uncompressed ------------------------------------------------------------------ */

MAR_MUST_USE static int zs_pump(oci_layer_out *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode,
                                mar_err **err)
{
    for (;;) {
        ZSTD_outBuffer out = {z->zout, z->zout_size, 0};
        size_t left = ZSTD_compressStream2(z->zc, &out, in, mode);
        if (ZSTD_isError(left)) {
            z->failed = MAR_EFAIL;
            return mar_err_set(err, MAR_EFAIL, 0, "zstd compression failed: %s",
                               ZSTD_getErrorName(left));
        }
        if (out.pos) {
            int rc = put_out(z, z->zout, out.pos, err);
            if (rc < 0) {
                return rc;
            }
        }
        if (mode == ZSTD_e_end ? left == 0 : in->pos == in->size) {
            return 0;
        }
    }
}

MAR_MUST_USE static int zs_init(oci_layer_out *z, mar_err **err)
{
    z->zc = ZSTD_createCCtx();
    if (!z->zc || ZSTD_isError(ZSTD_CCtx_setParameter(z->zc, ZSTD_c_compressionLevel, z->level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->zc, ZSTD_c_checksumFlag, 1))) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot initialize zstd");
    }
    /* Workers from one on: the frames then depend on the level alone, not on how many
     * (docs/internals/layer-write.md §5). A libzstd built without threads refuses, and
     * compresses on this thread, into other (still valid, still deterministic) frames. */
    size_t r = ZSTD_CCtx_setParameter(z->zc, ZSTD_c_nbWorkers, (int)z->threads);
    if (ZSTD_isError(r)) {
        mar_debug("zstd: no worker threads in this libzstd (%s)", ZSTD_getErrorName(r));
    }
    z->zout_size = ZSTD_CStreamOutSize();
    z->zout = mar_xmalloc(z->zout_size);
    return 0;
}

MAR_MUST_USE static int raw_flush(oci_layer_out *z, mar_err **err)
{
    int rc = z->raw_len ? put_out(z, z->raw, z->raw_len, err) : 0;
    z->raw_len = 0;
    return rc;
}

/* ---- the public face ------------------------------------------------------------------------ */

int oci_layer_out_new(oci_codec codec, int level, unsigned threads, int out_fd, oci_layer_out **ret,
                      mar_err **err)
{
    if (codec == OCI_CODEC_GZIP && (level < 0 || level > ISAL_DEF_MAX_LEVEL)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "gzip level %d out of range 1..%d", level,
                           ISAL_DEF_MAX_LEVEL);
    }
    if (codec == OCI_CODEC_ZSTD && level &&
        (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())) {
        return mar_err_set(err, MAR_EUSAGE, 0, "zstd level %d out of range %d..%d", level,
                           ZSTD_minCLevel(), ZSTD_maxCLevel());
    }
    if (codec == OCI_CODEC_NONE && level) {
        return mar_err_set(err, MAR_EUSAGE, 0, "an uncompressed layer has no level");
    }
    _cleanup_(oci_layer_out_freep) oci_layer_out *z = mar_xcalloc(1, sizeof(*z));
    z->codec = codec;
    z->fd = out_fd;
    z->threads = threads ? threads : cpus();
    if (z->threads > MAX_THREADS) {
        z->threads = MAX_THREADS;
    }
    z->level = level                     ? level
               : codec == OCI_CODEC_GZIP ? OCI_GZIP_LEVEL_DEFAULT
               : codec == OCI_CODEC_ZSTD ? OCI_ZSTD_LEVEL_DEFAULT
                                         : 0;
    z->diff = mar_hasher_new(MAR_DIGEST_SHA256);
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->work, NULL);
    pthread_cond_init(&z->done, NULL);
    switch (codec) {
    case OCI_CODEC_NONE:
        z->raw = mar_xmalloc(RAW_CHUNK);
        break;
    case OCI_CODEC_GZIP:
        z->blob = mar_hasher_new(MAR_DIGEST_SHA256);
        /* Two slots per worker keep every worker busy while the oldest is written out. */
        z->n_jobs = z->threads > 1 ? 2 * (size_t)z->threads : 1;
        z->jobs = mar_xcalloc(z->n_jobs, sizeof(*z->jobs));
        for (size_t i = 0; i < z->n_jobs; i++) {
            z->jobs[i].in = mar_xmalloc(GZ_DICT + GZ_CHUNK);
            z->jobs[i].out_alloc = GZ_OUT;
            z->jobs[i].out = mar_xmalloc(GZ_OUT);
        }
        z->level_buf = mar_xmalloc(level_buf_size(z->level));
        break;
    case OCI_CODEC_ZSTD: {
        z->blob = mar_hasher_new(MAR_DIGEST_SHA256);
        int rc = zs_init(z, err);
        if (rc < 0) {
            return rc;
        }
        break;
    }
    default:
        return mar_err_set(err, MAR_EUNSUPPORTED, 0, "unknown layer codec %d", (int)codec);
    }
    *ret = TAKE_PTR(z);
    return 0;
}

MAR_MUST_USE static int check_usable(oci_layer_out *z, mar_err **err)
{
    if (z->failed) {
        return mar_err_set(err, z->failed, 0, "the layer blob failed earlier");
    }
    if (z->finished) {
        return mar_err_set(err, MAR_EFAIL, 0, "the layer blob is already finished");
    }
    return 0;
}

int oci_layer_out_write(oci_layer_out *z, const void *buf, size_t n, mar_err **err)
{
    int rc = check_usable(z, err);
    if (rc < 0) {
        return rc;
    }
    if (!n) {
        return 0;
    }
    mar_hasher_update(z->diff, buf, n);
    z->in_total += n;
    switch (z->codec) {
    case OCI_CODEC_GZIP:
        z->crc = crc32_gzip_refl(z->crc, buf, n);
        return gz_write(z, buf, n, err);
    case OCI_CODEC_ZSTD: {
        ZSTD_inBuffer in = {buf, n, 0};
        return zs_pump(z, &in, ZSTD_e_continue, err);
    }
    case OCI_CODEC_NONE:
        break;
    }
    const unsigned char *p = buf;
    while (n) {
        size_t take = RAW_CHUNK - z->raw_len < n ? RAW_CHUNK - z->raw_len : n;
        memcpy(z->raw + z->raw_len, p, take);
        z->raw_len += take;
        p += take;
        n -= take;
        if (z->raw_len == RAW_CHUNK) {
            rc = raw_flush(z, err);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

int oci_layer_out_sink(void *z, const void *buf, size_t n, mar_err **err)
{
    return oci_layer_out_write(z, buf, n, err);
}

int oci_layer_out_finish(oci_layer_out *z, oci_layer_written *ret, mar_err **err)
{
    int rc = check_usable(z, err);
    if (rc < 0) {
        return rc;
    }
    if (z->codec == OCI_CODEC_GZIP) {
        rc = gz_finish(z, err);
    } else if (z->codec == OCI_CODEC_ZSTD) {
        ZSTD_inBuffer in = {NULL, 0, 0};
        rc = zs_pump(z, &in, ZSTD_e_end, err);
    } else {
        rc = raw_flush(z, err);
    }
    if (rc < 0) {
        return rc;
    }
    ret->codec = z->codec;
    ret->media_type = oci_layer_media_type(z->codec);
    mar_hasher_final(z->diff, &ret->diff_id);
    if (z->blob) {
        mar_hasher_final(z->blob, &ret->digest);
    } else {
        ret->digest = ret->diff_id; /* the blob is the tar */
    }
    ret->size = z->out_total;
    ret->uncompressed_size = z->in_total;
    z->finished = true;
    return 0;
}

oci_layer_out *oci_layer_out_free(oci_layer_out *z)
{
    if (!z) {
        return NULL;
    }
    if (z->n_tids) {
        pthread_mutex_lock(&z->mu);
        z->quit = true;
        /* Jobs not yet taken are dropped: nobody will write them out. */
        for (size_t i = 0; i < z->n_jobs; i++) {
            if (z->jobs[i].state == JOB_READY) {
                z->jobs[i].state = JOB_DONE;
            }
        }
        pthread_cond_broadcast(&z->work);
        pthread_mutex_unlock(&z->mu);
        for (size_t i = 0; i < z->n_tids; i++) {
            pthread_join(z->tids[i], NULL);
        }
    }
    free(z->tids);
    for (size_t i = 0; i < z->n_jobs; i++) {
        free(z->jobs[i].in);
        free(z->jobs[i].out);
    }
    free(z->jobs);
    free(z->level_buf);
    free(z->raw);
    ZSTD_freeCCtx(z->zc);
    free(z->zout);
    mar_hasher_free(z->diff);
    mar_hasher_free(z->blob);
    pthread_mutex_destroy(&z->mu);
    pthread_cond_destroy(&z->work);
    pthread_cond_destroy(&z->done);
    free(z);
    return NULL;
}
