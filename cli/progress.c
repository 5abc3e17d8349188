/* Pull progress on stderr. On a terminal: one line per layer with its state, bytes and rate,
 * plus a total line, redrawn in place at most ten times a second (and at every state change,
 * so the last picture is always the final one). Elsewhere, or with -q: one plain line per state
 * change, no byte counters, so CI logs stay short and greppable. */
#include "cli-internal.h"

#include <string.h>
#include <sys/ioctl.h>

#define REDRAW_MS 100

typedef struct row_clock {
    uint64_t start_ms;
    uint64_t start_bytes;
    reg_layer_state last;
} row_clock;

struct cmd_progress {
    bool tty;
    bool quiet;
    size_t drawn;
    uint64_t last_draw;
    uint64_t start_ms;
    row_clock *rows;
    size_t n_rows;
};

cmd_progress *cmd_progress_new(bool quiet)
{
    cmd_progress *pr = mar_xcalloc(1, sizeof(*pr));
    pr->tty = isatty(STDERR_FILENO) && !quiet;
    pr->quiet = quiet;
    pr->start_ms = mar_now_ms();
    return pr;
}

cmd_progress *cmd_progress_free(cmd_progress *pr)
{
    if (pr) {
        free(pr->rows);
        free(pr);
    }
    return NULL;
}

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

static void grow(cmd_progress *pr, size_t n)
{
    if (n <= pr->n_rows) {
        return;
    }
    pr->rows = mar_xrealloc(pr->rows, n * sizeof(*pr->rows));
    memset(pr->rows + pr->n_rows, 0, (n - pr->n_rows) * sizeof(*pr->rows));
    pr->n_rows = n;
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) {
        return ws.ws_col;
    }
    return 100;
}

static void row_line(const reg_pull_layer *r, const row_clock *ck, char *buf, size_t n)
{
    char dg[24], got[16], size[16];
    mar_digest_short(&r->desc->digest, dg, sizeof(dg));
    mar_format_size((int64_t)r->got, got, sizeof(got));
    mar_format_size((int64_t)r->size, size, sizeof(size));
    if (r->state == REG_LAYER_DOWNLOADING) {
        uint64_t el = mar_now_ms() - ck->start_ms;
        char rate[16] = "";
        if (el > 200) {
            mar_format_size((int64_t)((r->got - ck->start_bytes) * 1000 / el), rate, sizeof(rate));
        }
        int pct = r->size ? (int)(r->got * 100 / r->size) : 100;
        char bar[22];
        int fill = pct / 5;
        for (int i = 0; i < 20; i++) {
            bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        }
        bar[20] = '\0';
        snprintf(buf, n, "%s %-14s downloading [%s] %s/%s %s%s", dg, r->platform, bar, got, size,
                 rate, *rate ? "/s" : "");
    } else if (r->state == REG_LAYER_EXTRACTING) {
        int pct = r->size ? (int)(r->unpacked * 100 / r->size) : 100;
        snprintf(buf, n, "%s %-14s extracting %3d%% of %s", dg, r->platform, pct > 100 ? 100 : pct,
                 size);
    } else {
        snprintf(buf, n, "%s %-14s %s (%s)", dg, r->platform, state_word(r->state), size);
    }
}

static void redraw(cmd_progress *pr, reg_pull *p)
{
    const reg_pull_layer *rows;
    size_t n = reg_pull_rows(p, &rows);
    int w = term_width();
    char line[512];
    if (pr->drawn) {
        fprintf(stderr, "\033[%zuA", pr->drawn);
    }
    uint64_t got = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        row_line(&rows[i], &pr->rows[i], line, sizeof(line));
        if ((int)strlen(line) >= w) {
            line[w - 1] = '\0';
        }
        fprintf(stderr, "\r\033[K%s\n", line);
        got += rows[i].got;
        total += rows[i].size;
    }
    char g[16], t[16];
    mar_format_size((int64_t)got, g, sizeof(g));
    mar_format_size((int64_t)total, t, sizeof(t));
    double el = (double)(mar_now_ms() - pr->start_ms) / 1000.0;
    snprintf(line, sizeof(line), "total %s/%s  %.1fs", g, t, el);
    fprintf(stderr, "\r\033[K%s\n", line);
    pr->drawn = n + 1;
    fflush(stderr);
}

void cmd_progress_pull(reg_pull *p, const reg_pull_layer *row, void *ud)
{
    cmd_progress *pr = ud;
    const reg_pull_layer *rows;
    size_t n = reg_pull_rows(p, &rows);
    grow(pr, n);
    size_t i = (size_t)(row - rows);
    row_clock *ck = &pr->rows[i];
    bool changed = ck->last != row->state || (ck->start_ms == 0 && row->state != REG_LAYER_WAITING);
    if (changed && row->state == REG_LAYER_DOWNLOADING) {
        ck->start_ms = mar_now_ms();
        ck->start_bytes = row->got;
    }
    reg_layer_state before = ck->last;
    ck->last = row->state;
    if (pr->quiet) {
        return;
    }
    if (!pr->tty) {
        if (!changed || before == row->state) {
            return;
        }
        char dg[24], size[16];
        mar_digest_short(&row->desc->digest, dg, sizeof(dg));
        mar_format_size((int64_t)row->size, size, sizeof(size));
        if (row->state == REG_LAYER_DOWNLOADING && row->resumed_from) {
            char from[16];
            mar_format_size((int64_t)row->resumed_from, from, sizeof(from));
            fprintf(stderr, "%s %s: resuming at %s of %s\n", dg, row->platform, from, size);
        } else {
            fprintf(stderr, "%s %s: %s (%s)\n", dg, row->platform, state_word(row->state), size);
        }
        return;
    }
    uint64_t now = mar_now_ms();
    if (changed || now - pr->last_draw >= REDRAW_MS) {
        pr->last_draw = now;
        redraw(pr, p);
    }
}
