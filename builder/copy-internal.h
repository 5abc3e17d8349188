/* What COPY and ADD share between the copy (build-copy.c) and the reading of their sources
 * (build-sources.c). Internal to builder/. */
#ifndef MAR_BUILDER_COPY_INTERNAL_H
#define MAR_BUILDER_COPY_INTERNAL_H

#include "build-internal.h"

typedef struct bld__copy_job {
    bld__ctx *c;
    const bld_instr *in;
    int srcroot;   /* the context or the mounted stage */
    bool from_ctx; /* apply .dockerignore; owner 0:0 */
    bool chown;    /* --chown */
    uid_t uid;
    gid_t gid;
    bool chmod; /* --chmod (octal) */
    mode_t mode;
    size_t files;
    bld_ignore *exclude; /* --exclude, matched below the source being copied */
    size_t src_len;      /* length of that source's path plus its '/' (0 for the root) */
} bld__copy_job;

/* The entries of a directory but . and .., sorted. Errors: MAR_EIO. */
MAR_MUST_USE int bld__list_dir(int dfd, mar_strv *ret, mar_err **err);
/* The sources of the instruction's arguments, expanded: paths in the source root (wildcards
 * matched, *ret_wild set when one was) and, for ADD, URLs apart. Errors: MAR_EUSAGE (expansion),
 * MAR_ENOTFOUND (a wildcard that matches nothing), MAR_EIO. */
MAR_MUST_USE int bld__copy_gather(bld__copy_job *j, bld__stage *st, mar_strv *srcs, mar_strv *urls,
                                  bool *ret_wild, mar_err **err);
/* One gathered source opened O_PATH into *ret_fd (following links inside the root), or -1 there
 * when --exclude names it; j->src_len set for --exclude below it. Errors: MAR_ENOTFOUND (absent,
 * or excluded by .dockerignore). */
MAR_MUST_USE int bld__copy_open_source(bld__copy_job *j, const char *s, int *ret_fd, mar_err **err);
/* The digest of what the copy would take, read where it is (*ret_keyed false when it cannot be
 * read without fetching it: an ADD of a URL). Errors: those of bld__copy_gather and
 * bld__copy_open_source, MAR_EIO. */
MAR_MUST_USE int bld__copy_key(bld__copy_job *j, bld__stage *st, mar_digest *ret, bool *ret_keyed,
                               mar_err **err);

#endif
