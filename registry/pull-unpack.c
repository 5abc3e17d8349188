/* The unpacking side of a pull: worker threads unpack committed layer blobs into part
 * directories (OCI_UNPACK_LAYER), then each image's layers are settled bottom-up against the
 * ones under them and marked complete (docs/internals/unpack-security.md §2 "Layout"). */
#include "pull-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

/* ---- unpacking ------------------------------------------------------------------------------ */

void reg__pull_queue_chains(reg_pull *p, size_t blob)
{
    if (!p->o->unpack) {
        reg__pull_set_state(p, blob, REG_LAYER_DONE);
        return;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_chains; i++) {
        if (p->chains[i].row == blob) {
            p->queue[p->q_tail++] = i;
        }
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void unpack_progress(void *ud, uint64_t in_bytes)
{
    reg_pull_layer *row = ud;
    reg_pull *p = row->pull;
    pthread_mutex_lock(&p->mu);
    row->unpacked = in_bytes;
    reg__pull_emit_locked(p, (size_t)(row - p->rows));
    pthread_mutex_unlock(&p->mu);
}

/* Unpacks a chain's layer into its part directory (the lock is held until it is settled). */
MAR_MUST_USE static int extract(reg_pull *p, chainjob *cj, mar_err **err)
{
    reg_pull_layer *row = &p->rows[cj->row];
    reg__pull_set_state(p, cj->row, REG_LAYER_EXTRACTING);
    int bfd;
    if (reg_store_blob_open(p->s, &row->desc->digest, &bfd, err) < 0) {
        return -1;
    }
    _cleanup_close_ int blobfd = bfd;
    oci_unpack_opts uo = {
            .mode = OCI_UNPACK_LAYER,
            .lim = p->o->lim,
            .expect_diff_id = &row->diff_id,
            .progress = unpack_progress,
            .progress_ud = row,
    };
    if (oci_unpack(blobfd, cj->rootfd, &uo, &cj->res, err) < 0) {
        if (*err && (*err)->sys_errno == ENOSPC) {
            /* The layer's uncompressed size is known only once read: say how far it got. */
            char got[16];
            mar_format_size((int64_t)cj->res.bytes, got, sizeof(got));
            return mar_err_wrap(err, "the store '%s' is full after %s of layer %s",
                                reg_store_path(p->s), got, row->desc->digest.str);
        }
        return mar_err_wrap(err, "layer %s", row->desc->digest.str);
    }
    if ((int)cj->res.codec != oci_layer_media_codec(row->desc->media_type)) {
        mar_diag_warn("layer %s is labeled '%s' but is %s data", row->desc->digest.str,
                      row->desc->media_type, oci_codec_name(cj->res.codec));
    }
    cj->extracted = true;
    return 0;
}

void *reg__pull_worker(void *arg)
{
    reg_pull *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->q_head == p->q_tail && !p->closing && !p->err) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->err || p->q_head == p->q_tail) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        size_t ci = p->queue[p->q_head++];
        pthread_mutex_unlock(&p->mu);
        chainjob *cj = &p->chains[ci];
        mar_err *e = NULL;
        int rc = reg_store_layer_begin(p->s, &cj->chain, false, &cj->lock, &cj->rootfd, &e);
        if (rc < 0) {
            reg__pull_fail(p, e);
            continue;
        }
        if (rc == 1) {
            cj->deferred = true;
            reg__pull_set_state(p, cj->row, REG_LAYER_LOCKED);
            continue;
        }
        if (cj->lock < 0) {
            pthread_mutex_lock(&p->mu);
            p->stats.layers_present++;
            p->rows[cj->row].state = REG_LAYER_DONE;
            reg__pull_emit_locked(p, cj->row);
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        if (extract(p, cj, &e) < 0) {
            reg__pull_set_state(p, cj->row, REG_LAYER_FAILED);
            reg__pull_fail(p, e);
        }
    }
}

/* Settles and commits the layers of one image bottom-up. Chains other processes held are
 * waited for here; a chain nobody finished is unpacked now. */
int reg__pull_settle_image(reg_pull *p, pimage *im, mar_err **err)
{
    size_t n = im->m->n_layers;
    int lowers_fd[OCI_LVIEW_MAX_LAYERS];
    size_t n_low = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        chainjob *cj = &p->chains[im->chains[i]];
        reg_pull_layer *row = &p->rows[cj->row];
        if (cj->deferred && cj->lock < 0) {
            cj->deferred = false;
            if (reg_store_layer_begin(p->s, &cj->chain, true, &cj->lock, &cj->rootfd, err) < 0) {
                rc = -1;
                break;
            }
            if (cj->lock >= 0 && extract(p, cj, err) < 0) {
                rc = -1;
                break;
            }
            if (cj->lock < 0) {
                p->stats.layers_present++;
                reg__pull_set_state(p, cj->row, REG_LAYER_DONE);
            }
        }
        if (cj->extracted) {
            /* Lowers top first. */
            int lw[OCI_LVIEW_MAX_LAYERS];
            for (size_t k = 0; k < n_low; k++) {
                lw[k] = lowers_fd[n_low - 1 - k];
            }
            oci_lview v = {.fds = lw, .n = n_low};
            _cleanup_free_ char *info = mar_xasprintf(
                    "{\"diff_id\":\"%s\",\"chain_id\":\"%s\",\"blob\":\"%s\",\"size\":%llu,"
                    "\"entries\":%llu}\n",
                    row->diff_id.str, cj->chain.str, row->desc->digest.str,
                    (unsigned long long)cj->res.size, (unsigned long long)cj->res.entries);
            if (oci_layer_settle(cj->rootfd, &v, &cj->res, NULL, err) < 0 ||
                reg_store_layer_commit(p->s, &cj->chain, info, err) < 0) {
                mar_err_wrap(err, "layer %s", row->desc->digest.str);
                reg_store_layer_abort(p->s, &cj->chain);
                rc = -1;
            } else {
                pthread_mutex_lock(&p->mu);
                p->stats.layers_unpacked++;
                row->state = REG_LAYER_DONE;
                reg__pull_emit_locked(p, cj->row);
                pthread_mutex_unlock(&p->mu);
            }
            cj->extracted = false;
            oci_unpack_result_release(&cj->res);
            close(cj->rootfd);
            cj->rootfd = -1;
            close(cj->lock);
            cj->lock = -1;
        }
        if (rc == 0) {
            _cleanup_free_ char *lp = reg_store_layer_path(p->s, &cj->chain);
            int fd = open(lp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 || n_low >= OCI_LVIEW_MAX_LAYERS) {
                rc = mar_err_set(err, MAR_EIO, errno, "cannot open the unpacked layer '%s'", lp);
                if (fd >= 0) {
                    close(fd);
                }
                break;
            }
            lowers_fd[n_low++] = fd;
        }
    }
    for (size_t k = 0; k < n_low; k++) {
        close(lowers_fd[k]);
    }
    return rc;
}
