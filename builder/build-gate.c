/* The truth gate (docs/internals/build.md §7): after a platform's image is built, the ELF files
 * its own layers (RUN, COPY, ADD — not the base image's) leave in the final filesystem are
 * checked against the image's architecture with the deep scanner `mar inspect --deep` uses
 * (docs/internals/platforms.md §10). The classic mistake it catches: `COPY --from=builder` of a
 * binary the builder stage compiled for the build machine into an image for another platform.
 * Such an image is labeled for one architecture and carries programs for another. */
#include "build-internal.h"

#include <string.h>

#define GATE_EXAMPLES 8

/* Architectures whose binaries the declared one runs without an emulator on the CPUs that
 * carry it: 32-bit x86 in an amd64 image, 32-bit Arm in an arm64 image. */
static bool compatible(const char *declared, const char *elf)
{
    return strcmp(declared, elf) == 0 || (strcmp(declared, "amd64") == 0 && !strcmp(elf, "386")) ||
           (strcmp(declared, "arm64") == 0 && strcmp(elf, "arm") == 0);
}

typedef struct bad_file {
    const char *path;
    const oci_scan_node *node;
    size_t layer;
} bad_file;

static int cmp_bad(const void *a, const void *b)
{
    return strcmp(((const bad_file *)a)->path, ((const bad_file *)b)->path);
}

int bld__gate(bld__ctx *c, const bld__image *im, const oci_platform *p, mar_err **err)
{
    /* The build's layers are above the base's: a view over them alone shows what is visible in
     * the end of what they added. */
    size_t first = im->n_layers;
    for (size_t i = 0; i < im->n_layers; i++) {
        if (im->layers[i].line && first == im->n_layers) {
            first = i;
        }
    }
    size_t n = im->n_layers - first;
    if (n == 0) {
        return 0;
    }
    oci_scan_layer **scans = mar_xcalloc(n + 1, sizeof(*scans));
    oci_layer_limits lim;
    oci_layer_limits_default(&lim);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int fd;
        if (reg_store_blob_open(c->o->store, &im->layers[first + i].digest, &fd, err) < 0) {
            rc = -mar_err_code(*err);
            break;
        }
        rc = oci_scan_layer_read(fd, &lim, &scans[i], err);
        close(fd);
    }
    bad_file *bad = NULL;
    size_t n_bad = 0;
    char ps[OCI_PLATFORM_STR_MAX];
    oci_platform_format(p, ps, sizeof(ps));
    oci_platform norm;
    oci_platform_normalize(p, &norm);
    if (rc == 0) {
        oci_scan_view v;
        oci_scan_view_build(scans, n, &v);
        size_t pos = 0;
        const char *path;
        void *val;
        while (mar_map_next(&v.nodes, &pos, &path, &val)) {
            const oci_scan_node *node = val;
            if (node->kind != OCI_ENTRY_FILE || !node->elf || !node->elf->is_elf ||
                !node->elf->arch[0] || compatible(norm.arch, node->elf->arch)) {
                continue;
            }
            size_t li = 0;
            for (size_t i = 0; i < n; i++) {
                if (node >= scans[i]->v && node < scans[i]->v + scans[i]->n) {
                    li = first + i;
                }
            }
            bad = mar_xrealloc(bad, (n_bad + 1) * sizeof(*bad));
            bad[n_bad++] = (bad_file){.path = path, .node = node, .layer = li};
        }
        if (n_bad) {
            qsort(bad, n_bad, sizeof(*bad), cmp_bad);
            mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
            mar_buf_xprintf(&b, "%s: %zu ELF file%s the build added %s not %s:", ps, n_bad,
                            n_bad == 1 ? "" : "s", n_bad == 1 ? "is" : "are", norm.arch);
            for (size_t i = 0; i < n_bad && i < GATE_EXAMPLES; i++) {
                const bld__layer *l = &im->layers[bad[i].layer];
                mar_buf_xprintf(&b, "%s /%s (ELF machine %u, %s) from %s:%u (stage %s)",
                                i ? ";" : "", bad[i].path, bad[i].node->elf->e_machine,
                                bad[i].node->elf->arch, c->df->filename, l->line,
                                l->stage ? l->stage : "?");
            }
            if (n_bad > GATE_EXAMPLES) {
                mar_buf_xprintf(&b, "; and %zu more", n_bad - GATE_EXAMPLES);
            }
            if (c->o->allow_mislabeled) {
                mar_diag_warn("%s (kept: --allow-mislabeled)", b.data);
            } else {
                rc = mar_err_set(err, MAR_EFAIL, 0,
                                 "%s; refusing to label them %s (build them for the target, e.g. "
                                 "with TARGETARCH, or pass --allow-mislabeled)",
                                 b.data, ps);
            }
            mar_buf_release(&b);
        }
        free(bad);
        oci_scan_view_release(&v);
    }
    for (size_t i = 0; i < n; i++) {
        oci_scan_layer_free(scans[i]);
    }
    free(scans);
    return rc;
}
