/* Pull progress on stderr. On a terminal: one line per layer with its state, bytes and rate,
 * plus a total line, redrawn in place at most ten times a second (and at every state change,
 * so the last picture is always the final one). Elsewhere: one plain line per state change, no
 * byte counters, so CI logs stay short and greppable. With -q: nothing.
 *
 * The pull engine calls cmd_progress_pull with its lock held, from any of its threads, so the
 * callback only copies the rows into a snapshot under a mutex of its own (and queues the plain
 * lines). A drawing thread takes the snapshot and writes to stderr with no lock of the pull's
 * held: a slow or blocked terminal never stalls the downloads and the unpackers. */
#include "cli-internal.h"

#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define REDRAW_MS 100

/* One layer as the picture shows it: the engine's counters, copied, and when its download
 * started (for the rate). */
typedef struct row_snap {
    char digest[24];
    char platform[OCI_PLATFORM_STR_MAX];
    reg_layer_state state;
    uint64_t size, got, unpacked;
    uint64_t start_ms; /* when this row's download started; 0: not yet */
    uint64_t start_bytes;
    reg_layer_state last; /* the state of the previous event */
} row_snap;

struct cmd_progress {
    bool tty;
    bool quiet;
    uint64_t start_ms;
    /* Shared between the callback and the drawing thread, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    row_snap *rows;
    size_t n_rows;
    bool dirty;   /* counters changed since the last picture */
    bool urgent;  /* a state changed: draw now */
    mar_strv out; /* plain lines waiting to be written */
    bool stop;
    /* The drawing thread's own. */
    pthread_t thread;
    bool running;
    row_snap *pic;
    size_t n_pic;
    size_t drawn;
    uint64_t last_draw;
};

static const char *state_word(reg_layer_state s)
{
    switch (s) {
    case REG_LAYER_WAITING:
        return "waiting";
    case REG_LAYER_LOCKED:
        return "waiting for another mar";
    case REG_LAYER_DOWNLOADING:
        return "downloading";
    case REG_LAYER_DOWNLOADED:
        return "verified";
    case REG_LAYER_PRESENT:
        return "already present";
    case REG_LAYER_EXTRACTING:
        return "extracting";
    case REG_LAYER_DONE:
        return "done";
    case REG_LAYER_FAILED:
        return "failed";
    }
    return "?";
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) {
        return ws.ws_col;
    }
    return 100;
}

static void row_line(const row_snap *r, char *buf, size_t n)
{
    char got[16], size[16];
    mar_format_size((int64_t)r->got, got, sizeof(got));
    mar_format_size((int64_t)r->size, size, sizeof(size));
    if (r->state == REG_LAYER_DOWNLOADING) {
        uint64_t el = mar_now_ms() - r->start_ms;
        char rate[16] = "";
        if (el > 200) {
            mar_format_size((int64_t)((r->got - r->start_bytes) * 1000 / el), rate, sizeof(rate));
        }
        int pct = r->size ? (int)(r->got * 100 / r->size) : 100;
        char bar[22];
        int fill = pct / 5;
        for (int i = 0; i < 20; i++) {
            bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        }
        bar[20] = '\0';
        snprintf(buf, n, "%s %-14s downloading [%s] %s/%s %s%s", r->digest, r->platform, bar, got,
                 size, rate, *rate ? "/s" : "");
    } else if (r->state == REG_LAYER_EXTRACTING) {
        int pct = r->size ? (int)(r->unpacked * 100 / r->size) : 100;
        snprintf(buf, n, "%s %-14s extracting %3d%% of %s", r->digest, r->platform,
                 pct > 100 ? 100 : pct, size);
    } else {
        snprintf(buf, n, "%s %-14s %s (%s)", r->digest, r->platform, state_word(r->state), size);
    }
}

/* Draws the drawing thread's picture over the previous one. */
static void redraw(cmd_progress *pr)
{
    int w = term_width();
    char line[512];
    if (pr->drawn) {
        fprintf(stderr, "\033[%zuA", pr->drawn);
    }
    uint64_t got = 0, total = 0;
    for (size_t i = 0; i < pr->n_pic; i++) {
        row_line(&pr->pic[i], line, sizeof(line));
        if ((int)strlen(line) >= w) {
            line[w - 1] = '\0';
        }
        fprintf(stderr, "\r\033[K%s\n", line);
        got += pr->pic[i].got;
        total += pr->pic[i].size;
    }
    char g[16], t[16];
    mar_format_size((int64_t)got, g, sizeof(g));
    mar_format_size((int64_t)total, t, sizeof(t));
    double el = (double)(mar_now_ms() - pr->start_ms) / 1000.0;
    snprintf(line, sizeof(line), "total %s/%s  %.1fs", g, t, el);
    fprintf(stderr, "\r\033[K%s\n", line);
    pr->drawn = pr->n_pic + 1;
    fflush(stderr);
}

/* Waits on cv for at most ms (cv runs on CLOCK_MONOTONIC, see cmd_progress_new). */
static void wait_ms(cmd_progress *pr, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&pr->cv, &pr->mu, &ts);
}

/* Until stopped: on a terminal, a new picture at every state change and at most every
 * REDRAW_MS while counters move; elsewhere the queued lines. At the stop, what is left. */
static void *draw_thread(void *arg)
{
    cmd_progress *pr = arg;
    pthread_mutex_lock(&pr->mu);
    for (;;) {
        uint64_t since = mar_now_ms() - pr->last_draw;
        bool due = pr->urgent || pr->out.n || (pr->dirty && since >= REDRAW_MS);
        if (!due && !pr->stop) {
            if (pr->dirty) {
                wait_ms(pr, REDRAW_MS - since);
            } else {
                pthread_cond_wait(&pr->cv, &pr->mu);
            }
            continue;
        }
        bool last = pr->stop;
        bool draw = pr->tty && (pr->urgent || pr->dirty);
        if (draw) {
            if (pr->n_pic < pr->n_rows) {
                pr->pic = mar_xrealloc(pr->pic, pr->n_rows * sizeof(*pr->pic));
            }
            memcpy(pr->pic, pr->rows, pr->n_rows * sizeof(*pr->pic));
            pr->n_pic = pr->n_rows;
        }
        mar_strv lines = pr->out;
        pr->out = (mar_strv)MAR_STRV_INIT;
        pr->dirty = pr->urgent = false;
        pthread_mutex_unlock(&pr->mu);

        for (size_t i = 0; i < lines.n; i++) {
            fputs(lines.v[i], stderr);
        }
        mar_strv_release(&lines);
        if (draw) {
            pr->last_draw = mar_now_ms();
            redraw(pr);
        }
        if (last) {
            return NULL;
        }
        pthread_mutex_lock(&pr->mu);
    }
}

cmd_progress *cmd_progress_new(bool quiet)
{
    cmd_progress *pr = mar_xcalloc(1, sizeof(*pr));
    pr->tty = isatty(STDERR_FILENO) && !quiet;
    pr->quiet = quiet;
    pr->start_ms = mar_now_ms();
    pr->out = (mar_strv)MAR_STRV_INIT;
    pthread_mutex_init(&pr->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pr->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!quiet) {
        int e = pthread_create(&pr->thread, NULL, draw_thread, pr);
        pr->running = e == 0;
        if (!pr->running) {
            mar_debug("no pull progress: cannot start its thread: %s", strerror(e));
        }
    }
    return pr;
}

cmd_progress *cmd_progress_free(cmd_progress *pr)
{
    if (!pr) {
        return NULL;
    }
    if (pr->running) {
        pthread_mutex_lock(&pr->mu);
        pr->stop = true;
        pthread_cond_signal(&pr->cv);
        pthread_mutex_unlock(&pr->mu);
        pthread_join(pr->thread, NULL);
    }
    pthread_cond_destroy(&pr->cv);
    pthread_mutex_destroy(&pr->mu);
    mar_strv_release(&pr->out);
    free(pr->rows);
    free(pr->pic);
    free(pr);
    return NULL;
}

/* Called with the pull's lock held (reg_pull_opts.progress): copies, queues, signals; never
 * writes to the terminal. */
void cmd_progress_pull(reg_pull *p, const reg_pull_layer *row, void *ud)
{
    cmd_progress *pr = ud;
    if (!pr->running) {
        return;
    }
    const reg_pull_layer *rows;
    size_t n = reg_pull_rows(p, &rows);
    size_t i = (size_t)(row - rows);
    pthread_mutex_lock(&pr->mu);
    if (n > pr->n_rows) {
        pr->rows = mar_xrealloc(pr->rows, n * sizeof(*pr->rows));
        memset(pr->rows + pr->n_rows, 0, (n - pr->n_rows) * sizeof(*pr->rows));
        for (size_t k = pr->n_rows; k < n; k++) {
            mar_digest_short(&rows[k].desc->digest, pr->rows[k].digest, sizeof(pr->rows[k].digest));
            mar_strlcpy(pr->rows[k].platform, rows[k].platform, sizeof(pr->rows[k].platform));
        }
        pr->n_rows = n;
    }
    /* Every row's counters, as the engine has them now: the picture is one moment. */
    for (size_t k = 0; k < n; k++) {
        pr->rows[k].state = rows[k].state;
        pr->rows[k].size = rows[k].size;
        pr->rows[k].got = rows[k].got;
        pr->rows[k].unpacked = rows[k].unpacked;
    }
    row_snap *ck = &pr->rows[i];
    bool changed = ck->last != row->state || (ck->start_ms == 0 && row->state != REG_LAYER_WAITING);
    if (changed && row->state == REG_LAYER_DOWNLOADING) {
        ck->start_ms = mar_now_ms();
        ck->start_bytes = row->got;
    }
    reg_layer_state before = ck->last;
    ck->last = row->state;
    bool was_dirty = pr->dirty;
    if (pr->tty) {
        pr->dirty = true;
        pr->urgent = pr->urgent || changed;
    } else if (changed && before != row->state) {
        char size[16];
        mar_format_size((int64_t)row->size, size, sizeof(size));
        if (row->state == REG_LAYER_DOWNLOADING && row->resumed_from) {
            char from[16];
            mar_format_size((int64_t)row->resumed_from, from, sizeof(from));
            mar_strv_push_take(&pr->out, mar_xasprintf("%s %s: resuming at %s of %s\n", ck->digest,
                                                       row->platform, from, size));
        } else {
            mar_strv_push_take(&pr->out,
                               mar_xasprintf("%s %s: %s (%s)\n", ck->digest, row->platform,
                                             state_word(row->state), size));
        }
    }
    /* Wake the thread for what is due now; and once when counters first move, since it sleeps
     * without a deadline while nothing is dirty (later moves it picks up on its deadline). */
    if (pr->urgent || pr->out.n || (pr->dirty && !was_dirty)) {
        pthread_cond_signal(&pr->cv);
    }
    pthread_mutex_unlock(&pr->mu);
}
