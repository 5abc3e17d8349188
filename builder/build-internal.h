/* Shared between the files of the build executor (build.c, build-config.c, build-run.c,
 * build-copy.c, build-layer.c; docs/internals/build.md). */
#ifndef MAR_BUILDER_BUILD_INTERNAL_H
#define MAR_BUILDER_BUILD_INTERNAL_H

#include "builder/builder.h"

/* One layer of an image being built. */
typedef struct bld__layer {
    char *media_type;
    mar_digest digest; /* the blob */
    int64_t size;
    mar_digest diff_id;
    mar_digest chain;  /* its unpacked directory in the store */
    unsigned line;     /* the instruction that made it, 0 for a base image's layer */
    const char *stage; /* its stage's name (borrowed from the build), NULL for a base's */
} bld__layer;

/* The image a stage has produced so far. */
typedef struct bld__image {
    bld__layer *layers;
    size_t n_layers;
    json_t *config;        /* the whole image config document */
    oci_platform platform; /* what the stage runs as */
    bool cmd_set;          /* CMD given in this stage (ENTRYPOINT then keeps it) */
    mar_strv shell;        /* SHELL, default /bin/sh -c */
} bld__image;

/* A stage of one platform's build. */
typedef struct bld__stage {
    bool needed, done;
    bool shared; /* taken from the first platform's build (target-independent) */
    /* What the ONBUILD triggers of its base image do (set when the base is resolved): a RUN
     * (the stage needs containerd), a COPY --from (which stage it names is seen only when the
     * trigger runs). */
    bool triggers_run, triggers_from;
    bld__image img;
    bld_scope *scope;
    const char *name; /* "build" or "stage-2" (borrowed or static storage in name_buf) */
    char name_buf[32];
} bld__stage;

/* One target platform's build. */
typedef struct bld__ctx {
    const bld_opts *o;
    const bld_dockerfile *df;
    bld_ignore *ignore; /* .dockerignore of the context, or NULL */
    int context_fd;     /* O_PATH root of the context */
    char *work;         /* <store>/containers/<id>: upper dirs, staging, mounts */
    char *work_rel;     /* containers/<id> */
    unsigned seq;       /* for names under work (a worker's unit number in the top bits) */
    int sigfd;          /* o->sigfd, or the worker's stop pipe (build-par.c) */
    vm_ctd *ctd;        /* connected on the first RUN (a worker's own: build-par.c) */
    oci_platform target;
    char target_str[OCI_PLATFORM_STR_MAX];
    bld_scope *global;
    bld_graph *graph;
    bld__stage *stages;
    size_t n_stages;
    size_t step, n_steps;   /* for the prefixes */
    reg_store_image *extra; /* images named by COPY --from */
    size_t n_extra;
} bld__ctx;

/* Pieces of a platform's build (build.c), for the parallel driver. The images of the
 * platform's needed stages that are not shared, each pulled through the image hook (bases[i] for
 * stage i; COPY --from images into c->extra). Errors: those of the hook, MAR_EUSAGE. */
MAR_MUST_USE int bld__resolve_images(bld__ctx *c, reg_store_image *bases, mar_err **err);
/* Stage i of c takes a copy of first's result (target-independent stages). */
void bld__share_stage(bld__ctx *c, const bld__ctx *first, size_t i);
/* Builds stage i on base. Errors: those of the steps. */
MAR_MUST_USE int bld__build_stage(bld__ctx *c, size_t i, const reg_store_image *base,
                                  mar_err **err);
/* The final stage's config and manifest, committed to the store. Errors: as reg_store_put. */
MAR_MUST_USE int bld__write_image(bld__ctx *c, bld__image *im, const oci_platform *p,
                                  mar_digest *ret, int64_t *ret_size, mar_err **err);
/* Builds the needed stages of the np platforms of cs on threads (build-par.c), each stage once
 * the stages it waits for are built, at most o->jobs at once: stage fin of each platform gated
 * and written as plats[p], digests[p], sizes[p]. The first failure, or a signal on the build's
 * sigfd, stops the others. Errors: the first stage's to fail; MAR_EFAIL "interrupted by signal
 * N". */
MAR_MUST_USE int bld__build_parallel(bld__ctx *cs, size_t np, size_t fin, oci_platform *plats,
                                     mar_digest *digests, int64_t *sizes, mar_err **err);

/* A platform's build: scopes, graph, needed stages (build.c). Errors: those of the frontend. */
/* A signal read from sigfd (SIGWINCH aside) ends the build. Errors: MAR_EFAIL "interrupted by
 * signal N". */
MAR_MUST_USE int bld__interrupted(int sigfd, mar_err **err);
MAR_MUST_USE int bld__ctx_init(bld__ctx *c, const bld_opts *o, const bld_dockerfile *df, size_t pi,
                               mar_err **err);
void bld__ctx_release(bld__ctx *c);
/* The platform a stage runs as: its FROM --platform, this host's for $BUILDPLATFORM, else the
 * target. */
void bld__stage_platform(const bld__ctx *c, size_t i, oci_platform *ret);
/* Refuses, as "FILE:LINE: X is not supported by mar build yet" (MAR_EUSAGE), what the
 * executor does not execute in the needed stages. */
MAR_MUST_USE int bld__check_dockerfile(const bld_dockerfile *df, int ctxfd, const bool *needed,
                                       mar_err **err);
bool bld__stage_runs(const bld_stage *s);
/* Whether stage i of c runs a container: a RUN of its own, or of the ONBUILD triggers of its
 * base (a stage's, or an image's once resolved). */
bool bld__stage_needs_ctd(const bld__ctx *c, size_t i);
/* The stages stage i must wait for before it starts (build-par.c): ret[j] for each of the
 * df->n_stages stages. Those the graph says it needs (its base, COPY --from, RUN --mount from=,
 * the ONBUILD triggers of a stage base: --from takes no variables, so these are all). `wide`:
 * the ONBUILD triggers of its base image name a --from, which the graph never saw; then also
 * every needed stage before it, as a build in stage order has them. */
void bld__stage_waits(const bld_dockerfile *df, const bld_graph *g, const bool *needed, size_t i,
                      bool wide, bool *ret);

void bld__image_release(bld__image *im);
/* A deep copy (a stage based on another stage). */
void bld__image_copy(const bld__image *in, bld__image *out);
/* From a stored image: its layers and config document. Errors: as reg_store_read. */
MAR_MUST_USE int bld__image_from_store(reg_store *s, const reg_store_image *si, bld__image *ret,
                                       mar_err **err);
/* An empty image of platform p (scratch). */
void bld__image_scratch(const oci_platform *p, bld__image *ret);

/* The "config" object of the document (created when missing). Borrowed. */
json_t *bld__cfg(bld__image *im);
/* Appends a history entry. */
void bld__history(const bld__ctx *c, bld__image *im, const char *created_by, bool empty_layer);
/* Applies a config instruction (everything but FROM RUN COPY ADD ARG). Errors: MAR_EUSAGE. */
MAR_MUST_USE int bld__config_instr(bld__ctx *c, bld__stage *st, const bld_instr *in, mar_err **err);
/* The created time: SOURCE_DATE_EPOCH or now, RFC 3339. */
void bld__created(const bld__ctx *c, char *buf, size_t n);

/* Expands a raw word with the stage's variables. Errors: MAR_EUSAGE with FILE:LINE. */
MAR_MUST_USE int bld__expand(const bld__ctx *c, bld__stage *st, const bld_instr *in,
                             const char *raw, char **ret, mar_err **err);

/* Opens the unpacked directories of the image's layers, top first (fds closed by the caller,
 * *ret_n of them). Errors: MAR_EIO. */
MAR_MUST_USE int bld__open_layers(const bld__ctx *c, const bld__image *im, int *fds, size_t *ret_n,
                                  mar_err **err);
/* The lowerdir= option of an overlay over the image's layers (top first); an empty directory
 * under the work directory when it has none. Returns: new string. */
char *bld__lowerdir(const bld__ctx *c, const bld__image *im);
/* A fresh directory under the work directory ("<work>/<what>-<n>"). Errors: MAR_EIO. Returns:
 * the new path. */
MAR_MUST_USE int bld__mkwork(bld__ctx *c, const char *what, char **ret, mar_err **err);

/* Writes the tree under dirfd as a layer (overlay upper or plain), commits its blob to the
 * store, unpacks it into its chain directory and appends it to the image. Errors: MAR_EIO,
 * those of the layer writer and unpacker. */
MAR_MUST_USE int bld__commit_tree(bld__ctx *c, bld__image *im, int dirfd, bool overlay_upper,
                                  mar_err **err);

/* Appends a layer whose blob is in the store (l's chain computed, l taken over), unpacking it
 * into its chain directory unless an identical one is there. Errors: as bld__commit_tree. */
MAR_MUST_USE int bld__add_layer(bld__ctx *c, bld__image *im, bld__layer *l, mar_err **err);
/* The diff_id bld__commit_tree would give the tree, without writing anything. Errors: those of
 * the layer writer. */
MAR_MUST_USE int bld__tree_diff_id(const bld__ctx *c, int dirfd, bool overlay_upper,
                                   mar_digest *ret, mar_err **err);

/* The step cache (build-cache.c; docs/internals/build.md §11). The key of a RUN, COPY or ADD
 * step on the stage's current image; content is the digest of a COPY's sources as read where
 * they are (or of the staged tree of an ADD of a URL; NULL for RUN). False when the step is not
 * cached (a RUN with a bind mount). */
bool bld__cache_key(const bld__ctx *c, const bld__stage *st, const bld_instr *in,
                    const mar_digest *content, mar_digest *ret);
/* A recorded result for key appended to im: 1, or 0 when there is none usable (no record, or
 * its blob is gone) or --no-cache. Errors: those of bld__add_layer. */
MAR_MUST_USE int bld__cache_use(bld__ctx *c, bld__image *im, const mar_digest *key, mar_err **err);
/* Records im's top layer under key (a failure is a warning: the build does not depend on it). */
void bld__cache_record(bld__ctx *c, const bld__image *im, const mar_digest *key);

/* The truth gate (build-gate.c): the ELF files the build's own layers leave in the image must
 * be of the image's architecture. Errors: MAR_EFAIL (unless allowed: then a warning), MAR_EIO,
 * those of the layer reader. */
MAR_MUST_USE int bld__gate(bld__ctx *c, const bld__image *im, const oci_platform *p, mar_err **err);

/* Mounts the image's layers read-only as an overlay at a new directory under the work
 * directory (*ret_mnt; the caller unmounts it). Errors: MAR_EIO. */
MAR_MUST_USE int bld__mount_image(bld__ctx *c, const bld__image *im, char **ret_mnt, mar_err **err);
/* The image a --from (or mount from=) names: a stage built before `before`, or an image pulled
 * for the build (*tmp then holds it: release it). NULL with *err set when neither. */
const bld__image *bld__from_image(bld__ctx *c, const char *from, size_t before, bld__image *tmp,
                                  mar_err **err);

/* RUN --mount (build-mount.c): the binds a step's mounts make, set up under the work directory
 * (cache directories in the store), and what to undo afterwards. */
typedef struct bld__mounts {
    vm_bind *binds;
    size_t n;
    mar_strv env;     /* secrets given as environment variables, "K=V" */
    mar_strv unmount; /* stage mounts and writable binds' overlays to undo, in order */
    mar_strv discard; /* writable binds' upper directories, removed after the step */
    int *locks;       /* cache locks held until the step ends */
    mar_strv held;    /* the cache directories (store-relative) they lock */
    size_t n_locks;
} bld__mounts;
MAR_MUST_USE int bld__mounts_setup(bld__ctx *c, bld__stage *st, const bld_instr *in,
                                   bld__mounts *ret, mar_err **err);
void bld__mounts_release(bld__mounts *m);

/* What ADD does with a regular file (build-copy.c): copy it, extract it (a tar, plain or gzip,
 * zstd, bzip2, xz), or refuse it (bzip2 or xz that this libarchive cannot decompress). */
enum { BLD__ARCHIVE_NONE = 0, BLD__ARCHIVE_TAR, BLD__ARCHIVE_UNSUPPORTED };
int bld__archive_kind(int fd);

/* ADD of a URL (build-fetch.c). */
bool bld__is_url(const char *s);
/* Downloads url (following up to 5 redirects) into fd, verified against checksum ("sha256:..."
 * or NULL); *ret_mtime from Last-Modified, else 0. Errors: MAR_EUSAGE (a bad checksum),
 * MAR_EINTEGRITY (a mismatch), MAR_ENET, MAR_ENOTFOUND (404), MAR_EIO. */
MAR_MUST_USE int bld__fetch_url(const char *url, const char *checksum, int fd, int64_t *ret_mtime,
                                mar_err **err);

/* The platform's containerd connection, made once (the first RUN, or the
 * parallel driver before its threads start). Errors: those of vm_ctd_connect, vm_ctd_version. */
MAR_MUST_USE int bld__connect_ctd(bld__ctx *c, mar_err **err);
/* RUN (build-run.c). */
MAR_MUST_USE int bld__run(bld__ctx *c, bld__stage *st, const bld_instr *in, const char *prefix,
                          mar_err **err);
/* COPY and ADD (build-copy.c). */
MAR_MUST_USE int bld__copy(bld__ctx *c, bld__stage *st, const bld_instr *in, bool *ret_cached,
                           mar_err **err);

/* The stage a COPY --from names (by name or index), or -1 for an image. */
long bld__stage_ref(const bld_dockerfile *df, const char *from, size_t before);

#endif
