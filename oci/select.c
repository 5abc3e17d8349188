/* Choosing the entry of an index to run, as containerd's images.Manifest() does
 * (docs/internals/platforms.md §7): drop what is not a candidate, keep entries the matcher accepts
 * or that carry no platform, stable-sort by the matcher's order with platform-less entries last,
 * take the first, and descend into it when it is an index. */
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
        oci_entry_role role = oci_descriptor_role(d);
        if (role == OCI_ENTRY_ATTESTATION) {
            ret->n_attestations++;
            continue;
        }
        if (role != OCI_ENTRY_MANIFEST && role != OCI_ENTRY_INDEX) {
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

int oci_index_nest_check(const oci_descriptor *d, const mar_digest *path, size_t n_path,
                         mar_err **err)
{
    for (size_t i = 0; i < n_path; i++) {
        if (mar_digest_eq(&path[i], &d->digest)) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "index %s is nested in itself (a loop), not read", d->digest.str);
        }
    }
    if (n_path > OCI_INDEX_DEPTH_MAX) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "index %s is nested %zu levels deep, more than the %d mar reads, "
                           "not read",
                           d->digest.str, n_path, OCI_INDEX_DEPTH_MAX);
    }
    return 0;
}

typedef struct pick_ctx {
    const oci_matcher *m;
    oci_index_lookup_fn lookup;
    oci_index_accept_fn accept;
    void *ud;
    mar_digest path[OCI_INDEX_DEPTH_MAX + 1]; /* the top-level document, then nested indexes */
} pick_ctx;

/* One index n_path - 1 levels below the top-level one. Returns 0 (found), 1 (nothing) or a
 * negative code. */
MAR_MUST_USE static int pick_in(pick_ctx *x, const oci_manifest *idx, size_t n_path, oci_pick *ret,
                                mar_err **err)
{
    oci_selection sel;
    oci_index_select(idx, x->m, &sel);
    int rc = 1;
    for (size_t k = 0; k < sel.n && rc == 1; k++) {
        const oci_descriptor *d = &idx->manifests[sel.order[k]];
        if (oci_descriptor_role(d) == OCI_ENTRY_MANIFEST) {
            if (!x->accept || x->accept(d, x->ud)) {
                ret->desc = d;
                ret->depth = n_path - 1;
                memcpy(ret->via, x->path + 1, ret->depth * sizeof(ret->via[0]));
                rc = 0;
            }
        } else if (oci_index_nest_check(d, x->path, n_path, NULL) < 0) {
            /* Too deep or a loop: listed with its reason by the caller, never a candidate. */
            continue;
        } else {
            const oci_manifest *nested = NULL;
            mar_err *e = NULL;
            int lr = x->lookup(d, x->ud, &nested, &e);
            if (lr < 0 && x->accept && mar_err_code(e) == MAR_ENOTFOUND) {
                mar_err_free(e);
            } else if (lr < 0) {
                if (err) {
                    *err = e;
                } else {
                    mar_err_free(e);
                }
                rc = lr;
            } else if (nested->kind != OCI_KIND_INDEX) {
                rc = mar_err_set(err, MAR_EINTEGRITY, 0,
                                 "%s is listed as an index but is a manifest, refusing",
                                 d->digest.str);
            } else {
                x->path[n_path] = d->digest;
                rc = pick_in(x, nested, n_path + 1, ret, err);
            }
        }
        if (!x->accept) {
            break; /* containerd looks at the first candidate only */
        }
    }
    oci_selection_release(&sel);
    return rc;
}

int oci_index_pick(const oci_manifest *top, const mar_digest *top_digest, const oci_matcher *m,
                   oci_index_lookup_fn lookup, oci_index_accept_fn accept, void *ud, oci_pick *ret,
                   mar_err **err)
{
    pick_ctx x = {.m = m, .lookup = lookup, .accept = accept, .ud = ud};
    x.path[0] = *top_digest;
    oci_pick p = {0};
    int rc = pick_in(&x, top, 1, &p, err);
    if (rc == 0) {
        *ret = p;
    }
    return rc;
}
