/* The binaries of image entries against their labels (mar inspect/check/audit --deep). A layer the
 * store holds (verified when it was committed) is scanned from there; every other layer streams
 * straight from the registry (nothing is stored) through a pipe into a scanner thread, so
 * decompression runs in parallel with the downloads and on several cores, and a streamed layer's
 * facts count only if its bytes verified against the descriptor digest. The layers of one platform
 * are then merged with whiteouts into its final filesystem and summarized. */
#include "registry-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>

typedef struct deep_layer {
    size_t owner; /* index into the caller's reg_deep_entry array */
    const oci_descriptor *desc;
    int pfd[2];
    pthread_t thread;
    bool started;
    bool local; /* read from the store */
    oci_scan_layer *scan;
    mar_err *scan_err;
    mar_err *fetch_err;
} deep_layer;

typedef struct deep_run {
    reg_client *c;
    const reg_image *img;
    deep_layer *v;
    size_t n;
    size_t next;
    size_t active;
    size_t max_active;
} deep_run;

static void *scan_thread(void *arg)
{
    deep_layer *l = arg;
    /* A failure is l->scan_err (set exactly once, docs/internals/style.md §2), which the joiner
     * reads. */
    mar_ignore(oci_scan_layer_read(l->pfd[0], NULL, &l->scan, &l->scan_err));
    /* Drain whatever the scanner left (an error, or data past the end) so the writer never
     * blocks on a full pipe. */
    char buf[65536];
    while (read(l->pfd[0], buf, sizeof(buf)) > 0) {
    }
    close(l->pfd[0]);
    return NULL;
}

MAR_MUST_USE static int sink_write(void *ud, const void *p, size_t n, mar_err **err)
{
    deep_layer *l = ud;
    const char *c = p;
    while (n) {
        ssize_t w = write(l->pfd[1], c, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return mar_err_set(err, MAR_EFAIL, errno, "cannot feed the layer scanner");
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void start_next(deep_run *run);

/* The completion callback needs both the layer and the run. */
typedef struct layer_ctx {
    deep_run *run;
    deep_layer *l;
} layer_ctx;

static void on_layer_done(reg_client *c, int rc, reg_blob *blob, mar_err *err, void *ud)
{
    (void)c;
    (void)blob;
    layer_ctx *ctx = ud;
    deep_layer *l = ctx->l;
    deep_run *run = ctx->run;
    free(ctx);
    close(l->pfd[1]);
    pthread_join(l->thread, NULL);
    if (rc < 0) {
        l->fetch_err = err;
    }
    run->active--;
    start_next(run);
}

static void start_next(deep_run *run)
{
    while (run->active < run->max_active && run->next < run->n) {
        deep_layer *l = &run->v[run->next++];
        if (l->local) {
            continue;
        }
        if (pipe2(l->pfd, O_CLOEXEC) < 0) {
            mar_err_set(&l->fetch_err, MAR_EFAIL, errno, "cannot create a pipe");
            continue;
        }
        /* A larger pipe means fewer switches between the download and the scanner. */
        fcntl(l->pfd[1], F_SETPIPE_SZ, 1 << 20);
        if (pthread_create(&l->thread, NULL, scan_thread, l) != 0) {
            close(l->pfd[0]);
            close(l->pfd[1]);
            mar_err_set(&l->fetch_err, MAR_EFAIL, 0, "cannot start a scanner thread");
            continue;
        }
        l->started = true;
        run->active++;
        layer_ctx *ctx = mar_xcalloc(1, sizeof(*ctx));
        ctx->run = run;
        ctx->l = l;
        reg_sink sink = {.write = sink_write, .ud = l};
        reg_blob_stream(run->c, &run->img->ref, l->desc, 0, NULL, &sink, on_layer_done, ctx);
    }
}

static bool is_tar_layer(const char *mt)
{
    return oci_layer_media_codec(mt) >= 0;
}

static oci_elf_summary *summarize(const reg_deep_entry *de, const reg_image_entry *e,
                                  deep_layer *ls, size_t n, mar_err **err)
{
    oci_scan_layer **layers = mar_xcalloc(n ? n : 1, sizeof(*layers));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ls[i].fetch_err || ls[i].scan_err) {
            mar_err *src = ls[i].fetch_err ? ls[i].fetch_err : ls[i].scan_err;
            mar_err_set(err, mar_err_code(src), 0, "layer %s: %s", ls[i].desc->digest.str,
                        src->msg);
            free(layers);
            return NULL;
        }
        layers[k++] = ls[i].scan;
    }
    oci_scan_view view;
    oci_scan_view_build(layers, k, &view);
    oci_platform label;
    oci_platform_normalize(&de->label, &label);
    oci_elf_summary *s = mar_xcalloc(1, sizeof(*s));
    oci_elf_summarize(&view, e->config, label.arch, s);
    oci_scan_view_release(&view);
    free(layers);
    return s;
}

/* Scans the layers the store holds, min(jobs, CPUs) at a time. */
static void scan_local(deep_run *run, reg_store *s)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t width = run->max_active < (size_t)(ncpu > 0 ? ncpu : 1) ? run->max_active
                                                                   : (size_t)(ncpu > 0 ? ncpu : 1);
    size_t *live = mar_xcalloc(run->n + 1, sizeof(*live));
    size_t head = 0, tail = 0, n_local = 0;
    for (size_t i = 0; i < run->n; i++) {
        deep_layer *l = &run->v[i];
        int fd;
        mar_err *e = NULL;
        if (!reg_store_has(s, &l->desc->digest, l->desc->size) ||
            reg_store_blob_open(s, &l->desc->digest, &fd, &e) < 0) {
            mar_err_free(e);
            continue;
        }
        l->local = true;
        l->pfd[0] = fd;
        n_local++;
        if (tail - head == width) {
            pthread_join(run->v[live[head++]].thread, NULL);
        }
        if (pthread_create(&l->thread, NULL, scan_thread, l) != 0) {
            close(fd);
            mar_err_set(&l->fetch_err, MAR_EFAIL, 0, "cannot start a scanner thread");
            continue;
        }
        live[tail++] = i;
    }
    while (head < tail) {
        pthread_join(run->v[live[head++]].thread, NULL);
    }
    free(live);
    mar_debug("--deep: %zu of %zu layers read from the store '%s'", n_local, run->n,
              reg_store_path(s));
}

int reg_deep_scan(reg_client *c, reg_store *s, const reg_image *img, reg_deep_entry *v, size_t n,
                  int jobs, mar_err **err)
{
    deep_run run = {.c = c, .img = img, .max_active = jobs > 0 ? (size_t)jobs : 8};
    size_t alloc = 0;
    for (size_t di = 0; di < n; di++) {
        const reg_image_entry *e = &img->entries[v[di].entry];
        v[di].elf = NULL;
        v[di].err = NULL;
        if (!e->manifest || !e->config) {
            continue;
        }
        for (size_t li = 0; li < e->manifest->n_layers; li++) {
            const oci_descriptor *d = &e->manifest->layers[li];
            if (!is_tar_layer(d->media_type)) {
                continue;
            }
            if (run.n == alloc) {
                alloc = alloc ? alloc * 2 : 16;
                run.v = mar_xrealloc(run.v, alloc * sizeof(*run.v));
            }
            run.v[run.n++] = (deep_layer){.owner = di, .desc = d, .pfd = {-1, -1}};
        }
    }
    if (s) {
        scan_local(&run, s);
    }
    start_next(&run);
    int rc = reg_client_run(c, err);
    if (rc == 0) {
        for (size_t di = 0; di < n; di++) {
            size_t first = SIZE_MAX, count = 0;
            for (size_t i = 0; i < run.n; i++) {
                if (run.v[i].owner == di) {
                    first = first == SIZE_MAX ? i : first;
                    count++;
                }
            }
            const reg_image_entry *e = &img->entries[v[di].entry];
            if (!e->manifest || !e->config) {
                continue;
            }
            mar_err *se = NULL;
            v[di].elf = summarize(&v[di], e, first == SIZE_MAX ? NULL : &run.v[first], count, &se);
            if (!v[di].elf) {
                v[di].err = se;
            }
        }
    }
    for (size_t i = 0; i < run.n; i++) {
        oci_scan_layer_free(run.v[i].scan);
        mar_err_free(run.v[i].scan_err);
        mar_err_free(run.v[i].fetch_err);
    }
    free(run.v);
    return rc;
}
