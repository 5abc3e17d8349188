/* The stages of one build on threads of their own (docs/internals/build.md §12). Every needed
 * stage of every target platform is a unit that starts once the stages it waits for are built
 * (bld__stage_waits), at most -j units at once over all platforms; one more unit per platform
 * gates its final stage and writes its config and manifest. The calling thread does what is
 * shared or talks to the command line: it resolves every platform's images through the image
 * hook, has the first platform's target-independent stages built (in parallel among themselves)
 * and gives the other platforms their copies, then owns the build's signalfd while the workers
 * run. Each worker has a stop pipe in its place: what it reads from it looks like a signalfd
 * record, so the step loop and a RUN step's attach (vm_attach.kill_on_signal: the task is
 * killed) stop exactly as they do on a signal. */
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

/* ---- what a stage waits for ------------------------------------------------------------------ */

void bld__stage_waits(const bld_dockerfile *df, const bld_graph *g, const bool *needed, size_t i,
                      bool wide, bool *ret)
{
    const bld_node *nd = &g->nodes[i];
    memset(ret, 0, df->n_stages * sizeof(*ret));
    for (size_t k = 0; k < nd->n_deps; k++) {
        ret[nd->deps[k]] = true;
    }
    for (size_t j = 0; wide && j < i; j++) {
        ret[j] = ret[j] || needed[j];
    }
}

/* ---- the scheduler --------------------------------------------------------------------------- */

/* A unit's state: not built in this phase, waiting to start, running, built. */
enum { U_NONE = 0, U_PENDING, U_RUNNING, U_DONE };

typedef struct slot {
    vm_ctd *ctd; /* the worker's own containerd connection, made when it first needs one */
    int stop[2]; /* the worker reads [0] as its sigfd, the caller writes [1] */
} slot;

typedef struct par {
    bld__ctx *cs;
    size_t np, n, fin;       /* platforms, stages, the final stage */
    reg_store_image **bases; /* per platform, resolved on the calling thread */
    oci_platform *plats;
    mar_digest *digests;
    int64_t *sizes;
    bool **waits;          /* per platform: waits[p][i * n + j], stage i waits for stage j */
    slot *slots;           /* room for one per stage of every platform */
    size_t n_slots;        /* those with a stop pipe: the workers of the widest phase so far */
    int done_fd;           /* eventfd: a worker finished a unit or returned */
    pthread_mutex_t mu;    /* guards everything below */
    pthread_cond_t cv;     /* a unit finished, or the build stops */
    unsigned char **state; /* per platform, n + 1 units (the last: gate and write): U_* */
    size_t pending;        /* units not started */
    size_t running;        /* units started and not finished */
    bool stopping;         /* a failure or a signal: no unit starts any more */
    size_t exited;         /* workers that have returned */
    unsigned started;      /* units started, over both phases */
    mar_err *first_err;    /* the first failure's error */
} par;

typedef struct worker_arg {
    par *P;
    size_t k; /* its slot */
} worker_arg;

/* One signalfd record on every stop pipe: each worker's next check, or its running RUN step,
 * reads it and stops. */
static void stop_all(par *P, uint32_t signo)
{
    struct signalfd_siginfo si;
    memset(&si, 0, sizeof(si));
    si.ssi_signo = signo;
    for (size_t k = 0; k < P->n_slots; k++) {
        ssize_t w = write(P->slots[k].stop[1], &si, sizeof(si));
        (void)w; /* a full pipe already holds a record */
    }
}

/* Unit u of platform p can start: every stage it waits for that this phase builds is built.
 * With P->mu held. */
static bool ready(const par *P, size_t p, size_t u)
{
    const unsigned char *st = P->state[p];
    if (st[u] != U_PENDING) {
        return false;
    }
    if (u == P->n) {
        return st[P->fin] == U_DONE;
    }
    for (size_t j = 0; j < P->n; j++) {
        if (P->waits[p][u * P->n + j] && (st[j] == U_PENDING || st[j] == U_RUNNING)) {
            return false;
        }
    }
    return true;
}

/* The first unit that can start, platform by platform in the order given, each platform's in
 * stage order. With P->mu held. */
static bool pick(const par *P, size_t *ret_p, size_t *ret_u)
{
    for (size_t p = 0; p < P->np; p++) {
        for (size_t u = 0; u <= P->n; u++) {
            if (ready(P, p, u)) {
                *ret_p = p, *ret_u = u;
                return true;
            }
        }
    }
    return false;
}

/* A stage, or a platform's gate and image, on a copy of the platform's context that carries
 * this worker's containerd connection and stop pipe. What the stage builds goes to the shared
 * c->stages[u]; what else the copy changes (c->df during ONBUILD triggers) is the worker's. */
static int run_unit(par *P, slot *sl, size_t p, size_t u, unsigned k, mar_err **err)
{
    bld__ctx w = P->cs[p];
    w.ctd = sl->ctd;
    w.sigfd = sl->stop[0];
    /* Distinct names under the shared work directory (bld__mkwork): 2^20 per unit, 4095 units;
     * past that a name is taken and its mkdir or O_EXCL open fails the step. */
    w.seq = k << 20;
    int rc;
    if (u < P->n) {
        rc = bld__build_stage(&w, u, &P->bases[p][u], err);
    } else {
        bld__stage_platform(&w, P->fin, &P->plats[p]);
        rc = bld__gate(&w, &w.stages[P->fin].img, &P->plats[p], err);
        if (rc == 0) {
            rc = bld__write_image(&w, &w.stages[P->fin].img, &P->plats[p], &P->digests[p],
                                  &P->sizes[p], err);
        }
    }
    sl->ctd = w.ctd;
    return rc < 0 ? -mar_err_code(*err) : 0;
}

static void *worker(void *arg)
{
    par *P = ((worker_arg *)arg)->P;
    slot *sl = &P->slots[((worker_arg *)arg)->k];
    uint64_t one = 1;
    pthread_mutex_lock(&P->mu);
    for (;;) {
        size_t p = 0, u = 0;
        bool go = false;
        while (!P->stopping && P->pending > 0 && !(go = pick(P, &p, &u))) {
            if (P->running == 0) {
                /* Cannot happen: a stage waits only for stages before it. */
                P->stopping = true;
                if (!P->first_err) {
                    mar_err_set(&P->first_err, MAR_EFAIL, 0, "no stage can start");
                }
                pthread_cond_broadcast(&P->cv);
                break;
            }
            pthread_cond_wait(&P->cv, &P->mu);
        }
        if (!go || P->stopping) {
            break;
        }
        P->state[p][u] = U_RUNNING;
        P->pending--;
        P->running++;
        unsigned k = ++P->started;
        pthread_mutex_unlock(&P->mu);
        mar_err *e = NULL;
        int rc = run_unit(P, sl, p, u, k, &e);
        pthread_mutex_lock(&P->mu);
        P->running--;
        if (rc < 0) {
            if (!P->first_err) {
                P->first_err = TAKE_PTR(e);
            }
            P->stopping = true;
        } else {
            P->state[p][u] = U_DONE;
        }
        pthread_cond_broadcast(&P->cv);
        pthread_mutex_unlock(&P->mu);
        mar_err_free(e);
        ssize_t w = write(P->done_fd, &one, sizeof(one));
        (void)w;
        pthread_mutex_lock(&P->mu);
    }
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
            pthread_cond_broadcast(&P->cv);
            pthread_mutex_unlock(&P->mu);
            if (!told) {
                stop_all(P, sig);
                told = true;
            }
        }
    }
}

/* Builds the units marked U_PENDING on min(jobs, stages) workers. */
MAR_MUST_USE static int run_phase(par *P, mar_err **err)
{
    const bld_opts *o = P->cs[0].o;
    size_t n_stage_units = 0;
    bool ctd = false;
    P->pending = 0;
    for (size_t p = 0; p < P->np; p++) {
        const bld__ctx *c = &P->cs[p];
        _cleanup_free_ bool *needed = mar_xcalloc(P->n + 1, sizeof(*needed));
        for (size_t i = 0; i < P->n; i++) {
            needed[i] = c->stages[i].needed;
        }
        for (size_t u = 0; u <= P->n; u++) {
            if (P->state[p][u] != U_PENDING) {
                continue;
            }
            P->pending++;
            if (u < P->n) {
                n_stage_units++;
                ctd = ctd || bld__stage_needs_ctd(c, u);
                bld__stage_waits(c->df, c->graph, needed, u, c->stages[u].triggers_from,
                                 &P->waits[p][u * P->n]);
            }
        }
    }
    if (P->pending == 0) {
        return 0;
    }
    /* The first connection is made here, not in a worker: it initializes libcurl's global
     * state, which older libcurl does not do safely from several threads. The other workers
     * connect on their first RUN. */
    if (ctd && !P->slots[0].ctd) {
        bld__ctx t = P->cs[0];
        t.ctd = NULL;
        int rc = bld__connect_ctd(&t, err);
        P->slots[0].ctd = t.ctd;
        if (rc < 0) {
            return rc;
        }
    }
    /* Without -j, up to twice the CPUs (at least 4): each worker holds a thread, a containerd
     * connection and, while a RUN runs, a container, so a Dockerfile of many independent stages
     * must not start them all at once. */
    size_t n_workers = n_stage_units ? n_stage_units : 1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t cap = o->jobs ? o->jobs : ncpu > 2 ? 2 * (size_t)ncpu : 4;
    if (cap < n_workers) {
        n_workers = cap;
    }
    for (; P->n_slots < n_workers; P->n_slots++) {
        slot *sl = &P->slots[P->n_slots];
        if (pipe2(sl->stop, O_CLOEXEC | O_NONBLOCK) < 0) {
            return mar_err_set(err, MAR_EFAIL, errno, "cannot create a pipe");
        }
    }
    P->stopping = false;
    P->running = 0;
    P->exited = 0;
    worker_arg *args = mar_xcalloc(n_workers + 1, sizeof(*args));
    pthread_t *th = mar_xcalloc(n_workers + 1, sizeof(*th));
    size_t started = 0;
    for (; started < n_workers; started++) {
        args[started] = (worker_arg){.P = P, .k = started};
        if (pthread_create(&th[started], NULL, worker, &args[started]) != 0) {
            break;
        }
    }
    uint32_t sig = 0;
    if (started > 0) {
        sig = supervise(P, started, o->sigfd);
    }
    for (size_t t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
    }
    free(th);
    free(args);
    if (P->first_err) {
        *err = TAKE_PTR(P->first_err);
        return -mar_err_code(*err);
    }
    if (sig) {
        return mar_err_set(err, MAR_EFAIL, 0, "interrupted by signal %u", sig);
    }
    if (started == 0) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot start a thread");
    }
    return 0;
}

/* The first platform's target-independent stages (built once for all: phase 1), then every
 * other platform's images and copies of those stages, on this thread. */
MAR_MUST_USE static int prepare(par *P, mar_err **err)
{
    bld__ctx *first = &P->cs[0];
    if (bld__resolve_images(first, P->bases[0], err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < P->n && P->np > 1; i++) {
        bool ti = first->stages[i].needed && first->graph->nodes[i].target_independent;
        P->state[0][i] = ti ? U_PENDING : U_NONE;
    }
    if (run_phase(P, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t p = 1; p < P->np; p++) {
        bld__ctx *c = &P->cs[p];
        for (size_t i = 0; i < c->n_stages; i++) {
            c->stages[i].shared = c->stages[i].needed && c->graph->nodes[i].target_independent &&
                                  first->stages[i].done;
        }
        if (bld__resolve_images(c, P->bases[p], err) < 0) {
            return -mar_err_code(*err);
        }
        for (size_t i = 0; i < c->n_stages; i++) {
            if (c->stages[i].shared) {
                bld__share_stage(c, first, i);
            }
        }
    }
    return 0;
}

int bld__build_parallel(bld__ctx *cs, size_t np, size_t fin, oci_platform *plats,
                        mar_digest *digests, int64_t *sizes, mar_err **err)
{
    size_t n = cs[0].n_stages;
    par P = {.cs = cs,
             .np = np,
             .n = n,
             .fin = fin,
             .plats = plats,
             .digests = digests,
             .sizes = sizes,
             .done_fd = -1};
    P.bases = mar_xcalloc(np + 1, sizeof(*P.bases));
    P.waits = mar_xcalloc(np + 1, sizeof(*P.waits));
    P.state = mar_xcalloc(np + 1, sizeof(*P.state));
    for (size_t p = 0; p < np; p++) {
        P.bases[p] = mar_xcalloc(n + 1, sizeof(**P.bases));
        P.waits[p] = mar_xcalloc(n * n + 1, sizeof(**P.waits));
        P.state[p] = mar_xcalloc(n + 2, sizeof(**P.state));
    }
    P.slots = mar_xcalloc(np * n + 2, sizeof(*P.slots));
    int rc = 0;
    P.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (P.done_fd < 0) {
        rc = mar_err_set(err, MAR_EFAIL, errno, "cannot create an eventfd");
    }
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    if (rc == 0) {
        rc = prepare(&P, err);
    }
    for (size_t p = 0; p < np && rc == 0; p++) {
        for (size_t i = 0; i < n; i++) {
            const bld__stage *st = &cs[p].stages[i];
            P.state[p][i] = st->done ? U_DONE : st->needed ? U_PENDING : U_NONE;
        }
        P.state[p][n] = U_PENDING;
    }
    if (rc == 0) {
        rc = run_phase(&P, err);
    }
    mar_err_free(P.first_err);
    for (size_t p = 0; p < np; p++) {
        for (size_t i = 0; i < n; i++) {
            if (P.bases[p][i].manifest || P.bases[p][i].name) {
                reg_store_image_release(&P.bases[p][i]);
            }
        }
        free(P.bases[p]);
        free(P.waits[p]);
        free(P.state[p]);
    }
    for (size_t k = 0; k < np * n + 1; k++) {
        vm_ctd_free(P.slots[k].ctd);
    }
    for (size_t k = 0; k < P.n_slots; k++) {
        close(P.slots[k].stop[0]);
        close(P.slots[k].stop[1]);
    }
    free(P.bases);
    free(P.waits);
    free(P.state);
    free(P.slots);
    if (P.done_fd >= 0) {
        close(P.done_fd);
    }
    pthread_cond_destroy(&P.cv);
    pthread_mutex_destroy(&P.mu);
    return rc;
}
