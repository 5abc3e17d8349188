/* Push progress on stderr, and the push's items as JSON. On a terminal: one line per blob and
 * document with its state and bytes, plus a total, redrawn in place at most ten times a second
 * (and at every state change). Elsewhere: one plain line per state change, so CI logs stay
 * short. The engine calls back from its event loop without holding any lock, so drawing here
 * never delays another thread. */
#include "cli-internal.h"

#include <string.h>
#include <sys/ioctl.h>

#define REDRAW_MS 100

struct cmd_push_progress {
    bool tty;
    bool quiet;
    size_t drawn;
    uint64_t last_draw;
    uint64_t start_ms;
    reg_push_state *last; /* per item */
    size_t n_last;
};

cmd_push_progress *cmd_push_progress_new(bool quiet)
{
    cmd_push_progress *pr = mar_xcalloc(1, sizeof(*pr));
    pr->tty = isatty(STDERR_FILENO) && !quiet;
    pr->quiet = quiet;
    pr->start_ms = mar_now_ms();
    return pr;
}

cmd_push_progress *cmd_push_progress_free(cmd_push_progress *pr)
{
    if (pr) {
        free(pr->last);
        free(pr);
    }
    return NULL;
}

const char *cmd_push_state_word(reg_push_state st)
{
    switch (st) {
    case REG_PUSH_WAITING:
        return "waiting";
    case REG_PUSH_CHECKING:
        return "checking";
    case REG_PUSH_MOUNTING:
        return "mounting";
    case REG_PUSH_UPLOADING:
        return "uploading";
    case REG_PUSH_PRESENT:
        return "present";
    case REG_PUSH_MOUNTED:
        return "mounted";
    case REG_PUSH_PUSHED:
        return "pushed";
    case REG_PUSH_FAILED:
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

static void item_line(const reg_push_item *it, char *buf, size_t n)
{
    char dg[24], sent[16], size[16], ps[OCI_PLATFORM_STR_MAX] = "";
    mar_digest_short(&it->desc.digest, dg, sizeof(dg));
    mar_format_size((int64_t)it->sent, sent, sizeof(sent));
    mar_format_size(it->desc.size, size, sizeof(size));
    if (it->desc.has_platform) {
        oci_platform_format(&it->desc.platform, ps, sizeof(ps));
    }
    const char *kind = it->top ? "image" : it->document ? "manifest" : "blob";
    if (it->state == REG_PUSH_UPLOADING && !it->document) {
        int pct = it->desc.size > 0 ? (int)(it->sent * 100 / (uint64_t)it->desc.size) : 100;
        char bar[22];
        int fill = pct / 5;
        for (int i = 0; i < 20; i++) {
            bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        }
        bar[20] = '\0';
        snprintf(buf, n, "%s %-8s uploading [%s] %s/%s%s", dg, kind, bar, sent, size,
                 it->resumes ? " (resumed)" : "");
    } else {
        snprintf(buf, n, "%s %-8s %s (%s)%s%s", dg, kind, cmd_push_state_word(it->state), size,
                 ps[0] ? " " : "", ps);
    }
}

static void redraw(cmd_push_progress *pr, reg_push *p)
{
    const reg_push_item *items;
    size_t n = reg_push_items(p, &items);
    int w = term_width();
    char line[512];
    if (pr->drawn) {
        fprintf(stderr, "\033[%zuA", pr->drawn);
    }
    uint64_t sent = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        item_line(&items[i], line, sizeof(line));
        if ((int)strlen(line) >= w) {
            line[w - 1] = '\0';
        }
        fprintf(stderr, "\r\033[K%s\n", line);
        sent += items[i].sent;
        total += items[i].desc.size > 0 ? (uint64_t)items[i].desc.size : 0;
    }
    char s[16], t[16];
    mar_format_size((int64_t)sent, s, sizeof(s));
    mar_format_size((int64_t)total, t, sizeof(t));
    fprintf(stderr, "\r\033[Ktotal %s/%s  %.1fs\n", s, t,
            (double)(mar_now_ms() - pr->start_ms) / 1000.0);
    pr->drawn = n + 1;
    fflush(stderr);
}

void cmd_progress_push(reg_push *p, const reg_push_item *item, void *ud)
{
    cmd_push_progress *pr = ud;
    const reg_push_item *items;
    size_t n = reg_push_items(p, &items);
    if (n > pr->n_last) {
        pr->last = mar_xrealloc(pr->last, n * sizeof(*pr->last));
        memset(pr->last + pr->n_last, 0, (n - pr->n_last) * sizeof(*pr->last));
        pr->n_last = n;
    }
    size_t i = (size_t)(item - items);
    bool changed = pr->last[i] != item->state;
    pr->last[i] = item->state;
    if (pr->quiet) {
        return;
    }
    if (!pr->tty) {
        /* Final states and resumes only: "checking" and "uploading" would double the log. */
        bool final = item->state >= REG_PUSH_PRESENT;
        if (changed && final) {
            char line[512];
            item_line(item, line, sizeof(line));
            fprintf(stderr, "%s\n", line);
        } else if (changed && item->state == REG_PUSH_UPLOADING && item->resumes) {
            char dg[24], from[16];
            mar_digest_short(&item->desc.digest, dg, sizeof(dg));
            mar_format_size((int64_t)item->resumed_from, from, sizeof(from));
            fprintf(stderr, "%s blob     resuming at %s\n", dg, from);
        }
        return;
    }
    uint64_t now = mar_now_ms();
    if (changed || now - pr->last_draw >= REDRAW_MS) {
        pr->last_draw = now;
        redraw(pr, p);
    }
}

json_t *cmd_push_items_json(const reg_push *p, bool documents)
{
    const reg_push_item *items;
    size_t n = reg_push_items(p, &items);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const reg_push_item *it = &items[i];
        if (it->document != documents) {
            continue;
        }
        json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "digest", it->desc.digest.str, "mediaType",
                              it->desc.media_type, "size", (json_int_t)it->desc.size, "status",
                              cmd_push_state_word(it->state));
        if (it->desc.has_platform) {
            char ps[OCI_PLATFORM_STR_MAX];
            oci_platform_format(&it->desc.platform, ps, sizeof(ps));
            json_object_set_new(o, "platform", json_string(ps));
        }
        if (!documents) {
            json_object_set_new(o, "resumes", json_integer((json_int_t)it->resumes));
            json_object_set_new(o, "restarts", json_integer((json_int_t)it->restarts));
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

json_t *cmd_push_stats_json(const reg_push_stats *st)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "blobsPushed",
                     (json_int_t)st->blobs_pushed, "blobsMounted", (json_int_t)st->blobs_mounted,
                     "blobsPresent", (json_int_t)st->blobs_present, "manifestsPushed",
                     (json_int_t)st->documents_pushed, "manifestsPresent",
                     (json_int_t)st->documents_present, "bytesSent", (json_int_t)st->bytes_sent,
                     "resumes", (json_int_t)st->resumes, "restarts", (json_int_t)st->restarts,
                     "retries", (json_int_t)st->retries);
}
