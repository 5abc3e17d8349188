/* The platforms of one build on threads of their own (docs/internals/build.md §12). The calling
 * thread builds what is shared first — the target-independent stages, once, and every image the
 * platforms need, through the image hook — then starts min(jobs, platforms) workers that take
 * platforms in order, and owns the build's signalfd meanwhile. Each platform gets a stop pipe
 * in its place: what the workers read from it looks like a signalfd record, so the step loop
 * and a RUN step's attach (vm_attach.kill_on_signal: the task is killed) stop exactly as they
 * do on a signal. */
#include "build-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

typedef struct par {
    bld__ctx *cs;
    size_t np, fin;
    reg_store_image **bases; /* per platform, resolved before any worker starts */
    oci_platform *plats;
    mar_digest *digests;
    int64_t *sizes;
    int (*stop)[2]; /* per platform: the workers read [0] as their sigfd, the caller writes [1] */
    int done_fd;    /* eventfd: a worker finished a platform or exited */
    pthread_mutex_t mu; /* guards everything below */
    size_t next;        /* the next platform to build */
    bool stopping;      /* a failure or a signal: no platform starts any more */
    size_t exited;      /* workers that have returned */
    long failed;        /* the first platform to fail, or -1 */
    mar_err *first_err; /* its error */
} par;

/* One signalfd record on every stop pipe: each platform's next check, or its running RUN step,
 * reads it and stops. */
static void stop_all(par *P, uint32_t signo)
{
    struct signalfd_siginfo si;
    memset(&si, 0, sizeof(si));
    si.ssi_signo = signo;
    for (size_t p = 0; p < P->np; p++) {
        ssize_t w = write(P->stop[p][1], &si, sizeof(si));
        (void)w; /* a full pipe already holds a record */
    }
}

static int build_one(par *P, size_t p, mar_err **err)
{
    bld__ctx *c = &P->cs[p];
    for (size_t i = 0; i < c->n_stages; i++) {
        if (c->stages[i].needed && !c->stages[i].done &&
            bld__build_stage(c, i, &P->bases[p][i], err) < 0) {
            return -mar_err_code(*err);
        }
    }
    bld__stage_platform(c, P->fin, &P->plats[p]);
    if (bld__gate(c, &c->stages[P->fin].img, &P->plats[p], err) < 0 ||
        bld__write_image(c, &c->stages[P->fin].img, &P->plats[p], &P->digests[p], &P->sizes[p],
                         err) < 0) {
        return -mar_err_code(*err);
    }
    return 0;
}

static void *worker(void *arg)
{
    par *P = arg;
    uint64_t one = 1;
    for (;;) {
        pthread_mutex_lock(&P->mu);
        size_t p = P->next;
        bool go = !P->stopping && p < P->np;
        P->next += go;
        pthread_mutex_unlock(&P->mu);
        if (!go) {
            break;
        }
        mar_err *e = NULL;
        int rc = build_one(P, p, &e);
        pthread_mutex_lock(&P->mu);
        if (rc < 0 && P->failed < 0) {
            P->failed = (long)p;
            P->first_err = TAKE_PTR(e);
        }
        P->stopping = P->stopping || rc < 0;
        pthread_mutex_unlock(&P->mu);
        mar_err_free(e);
        ssize_t w = write(P->done_fd, &one, sizeof(one));
        (void)w;
    }
    pthread_mutex_lock(&P->mu);
    P->exited++;
    pthread_mutex_unlock(&P->mu);
    ssize_t w = write(P->done_fd, &one, sizeof(one));
    (void)w;
    return NULL;
}

/* The caller's part while the workers run: the signalfd is read here only. Returns the signal
 * that stopped the build, or 0. */
static uint32_t supervise(par *P, size_t n_workers, int sigfd)
{
    uint32_t sig = 0;
    bool told = false;
    for (;;) {
        pthread_mutex_lock(&P->mu);
        bool all = P->exited == n_workers;
        bool stop = P->stopping && !told;
        pthread_mutex_unlock(&P->mu);
        if (all) {
            return sig;
        }
        if (stop) {
            stop_all(P, SIGTERM);
            told = true;
        }
        struct pollfd pf[2] = {{.fd = P->done_fd, .events = POLLIN},
                               {.fd = sigfd, .events = POLLIN}};
        if (poll(pf, sigfd >= 0 ? 2 : 1, -1) < 0) {
            continue; /* EINTR */
        }
        uint64_t v;
        if (pf[0].revents & POLLIN) {
            ssize_t r = read(P->done_fd, &v, sizeof(v));
            (void)r;
        }
        struct signalfd_siginfo si;
        while (sigfd >= 0 && (pf[1].revents & POLLIN) &&
               read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo == SIGWINCH || sig) {
                continue;
            }
            sig = si.ssi_signo;
            pthread_mutex_lock(&P->mu);
            P->stopping = true;
            pthread_mutex_unlock(&P->mu);
            if (!told) {
                stop_all(P, sig);
                told = true;
            }
        }
    }
}

/* The stages built once for all platforms, and every platform's images, on this thread. */
MAR_MUST_USE static int prepare(par *P, mar_err **err)
{
    bld__ctx *first = &P->cs[0];
    for (size_t p = 0; p < P->np; p++) {
        bld__ctx *c = &P->cs[p];
        for (size_t i = 0; i < c->n_stages && p > 0; i++) {
            c->stages[i].shared = c->stages[i].needed && c->graph->nodes[i].target_independent &&
                                  first->stages[i].done;
        }
        if (bld__resolve_images(c, P->bases[p], err) < 0) {
            return -mar_err_code(*err);
        }
        for (size_t i = 0; i < c->n_stages; i++) {
            if (c->stages[i].shared) {
                bld__share_stage(c, first, i);
            } else if (p == 0 && c->stages[i].needed && c->graph->nodes[i].target_independent &&
                       bld__build_stage(c, i, &P->bases[0][i], err) < 0) {
                return -mar_err_code(*err);
            }
        }
    }
    return 0;
}

int bld__build_parallel(bld__ctx *cs, size_t np, size_t fin, oci_platform *plats,
                        mar_digest *digests, int64_t *sizes, mar_err **err)
{
    int sigfd = cs[0].o->sigfd;
    unsigned jobs = cs[0].o->jobs;
    size_t n_workers = jobs == 0 || jobs > np ? np : jobs;
    par P = {.cs = cs,
             .np = np,
             .fin = fin,
             .plats = plats,
             .digests = digests,
             .sizes = sizes,
             .failed = -1,
             .done_fd = -1};
    P.bases = mar_xcalloc(np + 1, sizeof(*P.bases));
    P.stop = mar_xcalloc(np + 1, sizeof(*P.stop));
    for (size_t p = 0; p < np; p++) {
        P.bases[p] = mar_xcalloc(cs[p].n_stages + 1, sizeof(**P.bases));
        P.stop[p][0] = P.stop[p][1] = -1;
    }
    pthread_mutex_init(&P.mu, NULL);
    int rc = prepare(&P, err);
    for (size_t p = 0; p < np && rc == 0; p++) {
        /* Connected here, not in the workers: the first connection initializes libcurl's
         * global state, which older libcurl does not do safely from several threads. */
        bool runs = false;
        for (size_t i = 0; i < cs[p].n_stages; i++) {
            runs = runs || (cs[p].stages[i].needed && !cs[p].stages[i].done &&
                            bld__stage_runs(&cs[p].df->stages[i]));
        }
        if (runs && bld__connect_ctd(&cs[p], err) < 0) {
            rc = -mar_err_code(*err);
            break;
        }
        /* Distinct names under the shared work directory (bld__mkwork). */
        cs[p].seq = (unsigned)p << 24;
        if (pipe2(P.stop[p], O_CLOEXEC | O_NONBLOCK) < 0) {
            rc = mar_err_set(err, MAR_EFAIL, errno, "cannot create a pipe");
        }
        cs[p].sigfd = P.stop[p][0];
    }
    if (rc == 0) {
        P.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (P.done_fd < 0) {
            rc = mar_err_set(err, MAR_EFAIL, errno, "cannot create an eventfd");
        }
    }
    pthread_t *th = mar_xcalloc(n_workers + 1, sizeof(*th));
    size_t started = 0;
    for (; rc == 0 && started < n_workers; started++) {
        if (pthread_create(&th[started], NULL, worker, &P) != 0) {
            break;
        }
    }
    if (rc == 0 && started == 0) {
        rc = mar_err_set(err, MAR_EFAIL, 0, "cannot start a thread");
    }
    uint32_t sig = 0;
    if (rc == 0) {
        sig = supervise(&P, started, sigfd);
    }
    for (size_t t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
    }
    free(th);
    if (rc == 0 && P.failed >= 0) {
        *err = TAKE_PTR(P.first_err);
        rc = -mar_err_code(*err);
    } else if (rc == 0 && sig) {
        rc = mar_err_set(err, MAR_EFAIL, 0, "interrupted by signal %u", sig);
    }
    mar_err_free(P.first_err);
    for (size_t p = 0; p < np; p++) {
        cs[p].sigfd = sigfd;
        for (size_t i = 0; i < cs[p].n_stages; i++) {
            if (P.bases[p][i].manifest || P.bases[p][i].name) {
                reg_store_image_release(&P.bases[p][i]);
            }
        }
        free(P.bases[p]);
        for (int k = 0; k < 2; k++) {
            if (P.stop[p][k] >= 0) {
                close(P.stop[p][k]);
            }
        }
    }
    free(P.bases);
    free(P.stop);
    if (P.done_fd >= 0) {
        close(P.done_fd);
    }
    pthread_mutex_destroy(&P.mu);
    return rc;
}
