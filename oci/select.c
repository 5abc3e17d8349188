/* Choosing the entry of an index to run, as containerd's images.Manifest() does
 * (docs/internals/platforms.md §7): drop attestations, keep entries the matcher accepts or that
 * carry no platform, stable-sort by the matcher's order with platform-less entries last, take the
 * first. */
#include "oci.h"

#include <string.h>

void oci_selection_release(oci_selection *s)
{
    free(s->order);
    memset(s, 0, sizeof(*s));
}

void oci_index_select(const oci_manifest *idx, const oci_matcher *m, oci_selection *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->order = mar_xcalloc(idx->n_manifests ? idx->n_manifests : 1, sizeof(size_t));
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const oci_descriptor *d = &idx->manifests[i];
        if (oci_descriptor_is_attestation(d)) {
            ret->n_attestations++;
            continue;
        }
        if (d->platform_err) {
            continue;
        }
        if (!d->has_platform || oci_matcher_match(m, &d->platform)) {
            ret->order[ret->n++] = i;
        }
    }
    /* Insertion sort: stable, and n is small. */
    for (size_t i = 1; i < ret->n; i++) {
        size_t cur = ret->order[i];
        size_t j = i;
        while (j > 0) {
            const oci_descriptor *a = &idx->manifests[cur];
            const oci_descriptor *b = &idx->manifests[ret->order[j - 1]];
            bool less;
            if (!a->has_platform) {
                less = false;
            } else if (!b->has_platform) {
                less = true;
            } else {
                less = oci_matcher_less(m, &a->platform, &b->platform);
            }
            if (!less) {
                break;
            }
            ret->order[j] = ret->order[j - 1];
            j--;
        }
        ret->order[j] = cur;
    }
}
