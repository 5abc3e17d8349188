/* builder/: `mar build` and the project inputs it shares with `mar audit`. Above registry/,
 * binfmt/ and vm/ (it pulls, runs steps and pushes through them); only cli/ includes it
 * (docs/internals/layering.md). */
#ifndef MAR_BUILDER_H
#define MAR_BUILDER_H

#include "oci/oci.h"
#include "registry/registry.h"
#include "vm/vm.h"

/* ---------------------------------------------------------------------------------------------
 * Project inputs (mar audit): every image reference a project uses, with the file and line it
 * came from (inputs.c). */

/* The biggest input file read. */
#define BLD_INPUT_CAP (16u << 20)

typedef enum {
    BLD_INPUT_LIST,
    BLD_INPUT_COMPOSE,
    BLD_INPUT_K8S,
    BLD_INPUT_DOCKERFILE,
} bld_input_kind;

/* One place an image reference is used. */
typedef struct bld_input_use {
    char *image; /* as written (Dockerfile ARGs substituted) */
    char *file;
    size_t line;       /* 1-based */
    char *context;     /* "service web", "Deployment/api container app", "FROM (stage build)" */
    char *pin;         /* compose `platform:` or FROM --platform=, or NULL */
    size_t pin_line;   /* where the pin is written */
    char *service;     /* compose service name, or NULL */
    size_t builds_for; /* compose build.platforms count */
    bld_input_kind kind;
} bld_input_use;

typedef struct bld_inputs {
    bld_input_use *v;
    size_t n;
} bld_inputs;

#define BLD_INPUTS_INIT                                                                            \
    {                                                                                              \
        0                                                                                          \
    }

/* Reads one input file ("-" for stdin, named "<stdin>" in the uses) and appends its uses to in,
 * detected by name and content as bld_inputs_parse does. Errors: MAR_EIO, MAR_ENOTFOUND, and
 * those of bld_inputs_parse. */
MAR_MUST_USE int bld_inputs_read(const char *path, bld_inputs *in, mar_err **err);
/* Appends the uses of the len bytes at data, read from the file `name`: a Dockerfile (by name,
 * or a first instruction FROM or ARG), else compose or Kubernetes YAML, else a plain list of
 * references. Errors: MAR_EUSAGE (malformed YAML, with file:line); in is then unchanged or
 * holds the uses of the documents before the bad one. */
MAR_MUST_USE int bld_inputs_parse(const char *name, const char *data, size_t len, bld_inputs *in,
                                  mar_err **err);
/* bld_inputs_parse without the Dockerfile detection: compose or Kubernetes YAML, else a plain
 * list. Errors: as bld_inputs_parse. */
MAR_MUST_USE int bld_inputs_parse_yaml_or_list(const char *name, const char *data, size_t len,
                                               bld_inputs *in, mar_err **err);
void bld_inputs_release(bld_inputs *in);
#include "util/util.h"

/* =============================================================================================
 * Dockerfile frontend (docs/internals/dockerfile.md): parsing and validating Dockerfiles, word
 * expansion, ARG scoping, the stage graph and .dockerignore matching. Nothing here runs, pulls
 * or reads a build context. The semantics are the Dockerfile reference's, checked against
 * BuildKit's dockerfile frontend; where mar refuses what BuildKit accepts, the design page says
 * why. Every error of this section is MAR_EUSAGE, and a message about a Dockerfile line reads
 * "FILE:LINE: what" with FILE the name passed to bld_dockerfile_parse. */

/* Caps (docs/internals/buffers.md). */
#define BLD_CAP_DOCKERFILE   (4u << 20)  /* a Dockerfile, heredoc bodies included */
#define BLD_CAP_DOCKERIGNORE (1u << 20)  /* a .dockerignore file */
#define BLD_CAP_WORD         (16u << 20) /* the result of expanding one word */

/* ---------------------------------------------------------------------------------------------
 * Word expansion (Dockerfile reference, "Environment replacement"; BuildKit shell/lex.go).
 * $v ${v} ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?w} ${v?w} ${v#p} ${v##p} ${v%p} ${v%%p} ${v/p/r}
 * ${v//p/r}; quotes and the escape character as BuildKit's shell lexer treats them. Anything
 * else after ${v (such as ${v:=w} or ${v:#p}) is refused. */

/* What a lookup knows about a variable. UNKNOWN keeps the reference as written in the result
 * (for readers that cannot know a value, like `mar audit` facing a build argument). */
typedef enum { BLD_VAR_UNSET = 0, BLD_VAR_SET, BLD_VAR_UNKNOWN } bld_var_state;

/* Looks a variable up; for BLD_VAR_SET *ret_value is set (borrowed until the expansion
 * returns). */
typedef bld_var_state (*bld_lookup_fn)(const char *name, const char **ret_value, void *userdata);

enum {
    BLD_X_RAW_QUOTES = 1u << 0,  /* keep quote characters in the result */
    BLD_X_RAW_ESCAPES = 1u << 1, /* keep escape characters in the result */
    BLD_X_NO_QUOTES = 1u << 2,   /* quotes are ordinary characters (heredoc bodies) */
};

/* Expands one word (BuildKit ProcessWord): quotes removed, escapes applied, whitespace kept.
 * `escape` is the Dockerfile's escape character ('\\' or '`'); heredoc bodies are expanded with
 * '\\' and BLD_X_NO_QUOTES. A NULL lookup means every variable is unset. *ret_unresolved (may be
 * NULL) tells whether a BLD_VAR_UNKNOWN variable was met. Errors: MAR_EUSAGE ("cannot expand
 * 'WORD': why"). Returns: new string in *ret. */
MAR_MUST_USE int bld_expand_word(const char *word, char escape, unsigned flags,
                                 bld_lookup_fn lookup, void *userdata, char **ret,
                                 bool *ret_unresolved, mar_err **err);
/* The same, split into words after expansion (BuildKit ProcessWords, used by EXPOSE): unquoted
 * whitespace that comes from the text or from a variable's value separates words. Appends to
 * *ret. */
MAR_MUST_USE int bld_expand_words(const char *word, char escape, unsigned flags,
                                  bld_lookup_fn lookup, void *userdata, mar_strv *ret,
                                  bool *ret_unresolved, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * The parsed Dockerfile. Arguments are kept as written (raw): the build step expands the
 * instructions that expand (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR, RUN
 * mount values, ONBUILD-wrapped ones) with bld_expand_word and the stage's variables, because
 * the values are only known then. RUN, CMD and ENTRYPOINT are never expanded by the builder. */

typedef enum {
    BLD_FROM = 1,
    BLD_RUN,
    BLD_CMD,
    BLD_ENTRYPOINT,
    BLD_ENV,
    BLD_ARG,
    BLD_LABEL,
    BLD_EXPOSE,
    BLD_VOLUME,
    BLD_USER,
    BLD_WORKDIR,
    BLD_STOPSIGNAL,
    BLD_HEALTHCHECK,
    BLD_SHELL,
    BLD_ONBUILD,
    BLD_MAINTAINER,
    BLD_COPY,
    BLD_ADD,
} bld_kind;

/* "FROM", "RUN", ...; "?" for anything else. Borrowed static string. */
const char *bld_kind_name(bld_kind kind);

/* An instruction flag as written: --name=value, or --name (value NULL). */
typedef struct bld_flag {
    char *name; /* without the dashes */
    char *value;
} bld_flag;

/* ENV and LABEL pairs; ARG declarations (value NULL: no default). Both raw. */
typedef struct bld_kv {
    char *key;
    char *value;
} bld_kv;

/* A here-document (Dockerfile reference, "Here-Documents"). */
typedef struct bld_heredoc {
    char *name;    /* the delimiter word, quotes removed */
    char *raw;     /* the body lines as written, each with its newline */
    char *content; /* raw with leading tabs removed when chomp, else equal to raw */
    bool expand;   /* no part of the delimiter was quoted: the body is subject to expansion */
    bool chomp;    /* <<- */
    unsigned fd;   /* 3<<EOF: 3; 0 when no number was written */
} bld_heredoc;

typedef enum {
    BLD_MOUNT_BIND = 0,
    BLD_MOUNT_CACHE,
    BLD_MOUNT_TMPFS,
    BLD_MOUNT_SECRET
} bld_mount_type;
typedef enum {
    BLD_SHARING_DEFAULT = 0, /* not given: shared */
    BLD_SHARING_SHARED,
    BLD_SHARING_PRIVATE,
    BLD_SHARING_LOCKED,
} bld_sharing;

/* RUN --mount=... (Dockerfile reference, "RUN --mount"). type=ssh is refused. */
typedef struct bld_mount {
    char *spec; /* the flag value as written */
    bld_mount_type type;
    char *from;   /* stage, image or NULL (the context; for cache an empty directory) */
    char *source; /* or NULL */
    char *target; /* or NULL */
    char *id;     /* cache or secret id, or NULL */
    char *env;    /* secret: environment variable to set, or NULL */
    bool readonly;
    bool required; /* secret */
    bld_sharing sharing;
    int64_t size;     /* tmpfs size in bytes, -1 when not given */
    int64_t mode;     /* cache or secret file mode, -1 when not given */
    int64_t uid, gid; /* -1 when not given */
    bool deferred;    /* a value refers to a variable: the fields above are not final; parse
                         the spec again with the stage's variables (bld_mount_parse) */
} bld_mount;

/* A --chmod value BuildKit accepts: octal up to 07777, or a chmod(1) symbolic mode
 * ("u=rwX,go=rX", "+x"). Validity only; the build step applies it. */
bool bld_chmod_valid(const char *mode);

/* Parses a --mount value: CSV fields key=value, each value expanded with `lookup` (NULL: taken
 * as written; a value that refers to a variable then sets ret->deferred and is not checked).
 * Errors: MAR_EUSAGE. ret is released by bld_mount_release. */
MAR_MUST_USE int bld_mount_parse(const char *spec, char escape, bld_lookup_fn lookup,
                                 void *userdata, bld_mount *ret, mar_err **err);
void bld_mount_release(bld_mount *m);

typedef enum { BLD_NET_DEFAULT = 0, BLD_NET_NONE, BLD_NET_HOST } bld_network;

/* HEALTHCHECK options; a duration or count of 0 means "not given" (inherit). */
typedef struct bld_health {
    bool none; /* HEALTHCHECK NONE */
    int64_t interval_ns, timeout_ns, start_period_ns, start_interval_ns;
    int retries;
} bld_health;

typedef struct bld_instr bld_instr;

/* One instruction. What `args` holds, by kind:
 *   FROM         [image]; stage_name and platform below
 *   RUN CMD ENTRYPOINT HEALTHCHECK(CMD)
 *                json: the array; else one element, the command line as written
 *   SHELL        the JSON array (shell form is refused)
 *   COPY ADD     the file sources (heredoc sources are in heredocs); dest below
 *   EXPOSE       the words; VOLUME the JSON array or the words
 *   USER WORKDIR STOPSIGNAL MAINTAINER
 *                one element, the rest of the line as written
 *   ENV LABEL ARG
 *                empty; the pairs are in kvs
 *   ONBUILD      empty; the wrapped instruction is `trigger`
 * RUN heredocs are files for the shell: the build step reassembles the command line and the
 * bodies as BuildKit does (docs/internals/dockerfile.md §6). */
struct bld_instr {
    bld_kind kind;
    unsigned line;     /* first line, 1-based */
    unsigned end_line; /* last line, heredoc bodies included */
    char *original;    /* the logical line: continuations joined, comments dropped, trimmed */
    bld_flag *flags;   /* as written */
    size_t n_flags;
    bool json; /* exec form (a JSON array) */
    mar_strv args;
    bld_kv *kvs;
    size_t n_kvs;
    bld_heredoc *heredocs;
    size_t n_heredocs;
    /* Flags, parsed and checked; strings raw (the build step expands them). */
    char *platform;      /* FROM --platform */
    char *stage_name;    /* FROM ... AS name, lower-cased */
    char *from;          /* COPY --from: a stage name, a stage index or an image */
    char *chown, *chmod; /* COPY ADD */
    char *checksum;      /* ADD --checksum */
    bool link;           /* COPY ADD --link */
    int unpack;          /* ADD --unpack: -1 not given, 0, 1 */
    mar_strv excludes;   /* COPY ADD --exclude (.dockerignore pattern syntax) */
    char *dest;          /* COPY ADD destination */
    bld_mount *mounts;   /* RUN --mount */
    size_t n_mounts;
    bld_network network; /* RUN --network */
    bld_health health;   /* HEALTHCHECK */
    bld_instr *trigger;  /* ONBUILD: the wrapped instruction */
    char *trigger_text;  /* ONBUILD: the text stored in the image's OnBuild list */
};

typedef struct bld_stage {
    size_t index;
    char *name;        /* lower-cased AS name, or NULL */
    bld_instr *instrs; /* instrs[0] is the FROM */
    size_t n_instrs;
} bld_stage;

typedef struct bld_dockerfile {
    char *filename;
    char escape;     /* '\\' or '`' (# escape=) */
    char *syntax;    /* # syntax= value (recorded, not followed), or NULL */
    char *check;     /* # check= value (recorded, not followed), or NULL */
    bld_instr *args; /* the ARG instructions before the first FROM */
    size_t n_args;
    bld_stage *stages;
    size_t n_stages;
    mar_strv warnings; /* "FILE:LINE: text" for the CLI to print (empty continuation lines) */
} bld_dockerfile;

/* Parses and validates a Dockerfile of at most BLD_CAP_DOCKERFILE bytes (UTF-8, an optional
 * byte-order mark, LF or CRLF lines). `filename` names it in messages. Errors: MAR_EUSAGE
 * ("FILE:LINE: ..."). Returns: new document in *ret, freed with bld_dockerfile_free. */
MAR_MUST_USE int bld_dockerfile_parse(const char *text, size_t len, const char *filename,
                                      bld_dockerfile **ret, mar_err **err);
bld_dockerfile *bld_dockerfile_free(bld_dockerfile *df);
MAR_DEFINE_CLEANUP(bld_dockerfile, bld_dockerfile_free)
#define _cleanup_dockerfile_ _cleanup_(bld_dockerfile_freep)

/* A stable one-line-per-instruction text form of the parse (for tests and `--debug`):
 * `kind [flags] args...` with every string quoted C-style. Returns: new string. */
char *bld_dockerfile_dump(const bld_dockerfile *df);

/* ---------------------------------------------------------------------------------------------
 * ARG scoping (Dockerfile reference, "ARG" and "Automatic platform ARGs in the global scope").
 * The global scope holds the automatic platform ARGs and the ARGs before the first FROM, and is
 * what FROM lines (image and --platform) expand with. A stage scope starts empty, or as a copy
 * of the scope of the stage it is based on; `ARG NAME` inside a stage brings in the global value
 * (or the --build-arg); ENV of the same name always wins over an ARG. */

typedef struct bld_scope bld_scope;

typedef struct bld_arg_opts {
    const char *const *build_args; /* "NAME=VALUE" (--build-arg); a later one wins */
    size_t n_build_args;
    oci_platform build_platform;  /* normalized by the callee (containerd Normalize) */
    oci_platform target_platform; /* likewise */
    const char *target;           /* --target, or NULL for the last stage (sets TARGETSTAGE) */
} bld_arg_opts;

/* The global scope of a build. Errors: MAR_EUSAGE (a --build-arg without '=', a global ARG
 * default that does not expand). Returns: new scope in *ret. */
MAR_MUST_USE int bld_scope_global(const bld_dockerfile *df, const bld_arg_opts *opts,
                                  bld_scope **ret, mar_err **err);
/* A stage scope: empty, or a copy of `base` when the stage's FROM names a stage. `global` must
 * outlive it. Returns: new scope. */
bld_scope *bld_scope_stage(const bld_scope *global, const bld_scope *base);
/* Applies one `ARG key[=default]` (a stage's or, through bld_scope_global, a global one): the
 * --build-arg if given, else the default expanded with the scope, else the global value.
 * Errors: MAR_EUSAGE (the default does not expand). */
MAR_MUST_USE int bld_scope_arg(bld_scope *s, const bld_kv *arg, char escape, mar_err **err);
/* Sets an ENV value (from the base image's config or an ENV instruction). */
void bld_scope_env(bld_scope *s, const char *key, const char *value);
/* bld_lookup_fn over a scope (userdata: the bld_scope): ENV, then declared ARGs. */
bld_var_state bld_scope_lookup(const char *name, const char **ret_value, void *scope);
/* The environment of a RUN step: "K=V" for every ENV, every ARG with a value not shadowed by an
 * ENV, and the predefined proxy ARGs given as --build-arg but not declared (which stay out of
 * the history). Appends to *ret. */
void bld_scope_run_env(const bld_scope *s, mar_strv *ret);
/* The declared ARGs with a value, "K=V" in declaration order (BuildKit puts them in front of a
 * RUN's history entry). Appends to *ret. */
void bld_scope_args(const bld_scope *s, mar_strv *ret);
bld_scope *bld_scope_free(bld_scope *s);
MAR_DEFINE_CLEANUP(bld_scope, bld_scope_free)
#define _cleanup_scope_ _cleanup_(bld_scope_freep)

/* True for the ARGs usable without a declaration (HTTP_PROXY and friends, both cases). */
bool bld_arg_is_proxy(const char *name);

/* ---------------------------------------------------------------------------------------------
 * The stage graph. FROM names a stage when it equals the name of an earlier stage after
 * expansion with the global scope; COPY --from and RUN --mount=from name any stage (by name or
 * index) or else an image. */

typedef enum { BLD_BASE_IMAGE = 0, BLD_BASE_STAGE, BLD_BASE_SCRATCH } bld_base_kind;

typedef struct bld_node {
    bld_base_kind base_kind;
    char *base;          /* expanded FROM image (BLD_BASE_IMAGE), or the stage name, or "scratch" */
    size_t base_stage;   /* BLD_BASE_STAGE: its index */
    char *platform;      /* expanded --platform, or NULL (the target platform) */
    oci_platform pinned; /* the parsed --platform, normalized (when platform is set) */
    bool platform_fixed; /* the stage's platform is the same for every target platform */
    bool build_platform; /* ... and is the build platform (FROM --platform=$BUILDPLATFORM) */
    bool target_independent; /* nothing in the stage or what it needs varies with the target
                                platform: one build serves every target (shared) */
    size_t *deps;            /* stage indices this stage needs (base, COPY --from, mounts, ONBUILD
                                triggers of its base), ascending, no duplicates */
    unsigned *dep_lines;     /* for each dependency, the first line that makes it */
    size_t n_deps;
    mar_strv images; /* images named by COPY --from or --mount from=, sorted, unique */
} bld_node;

typedef struct bld_graph {
    bld_node *nodes; /* one per stage, same index */
    size_t n;
    mar_strv warnings; /* "FILE:LINE: text" */
} bld_graph;

/* Builds the graph with a global scope (bld_scope_global). Errors: MAR_EUSAGE (an empty image
 * name or platform after expansion, a bad platform, a COPY --from index out of range, a cycle).
 * Returns: new graph in *ret. */
MAR_MUST_USE int bld_graph_build(const bld_dockerfile *df, const bld_scope *global, bld_graph **ret,
                                 mar_err **err);
bld_graph *bld_graph_free(bld_graph *g);
MAR_DEFINE_CLEANUP(bld_graph, bld_graph_free)
#define _cleanup_graph_ _cleanup_(bld_graph_freep)

/* The stages needed to build `target` (a stage name; NULL: the last stage): ret_needed[i] for
 * each stage. Errors: MAR_EUSAGE (no such stage; a needed stage uses a stage defined after it).
 * Returns: new array of g->n bools in *ret_needed. */
MAR_MUST_USE int bld_graph_needed(const bld_graph *g, const bld_dockerfile *df, const char *target,
                                  bool **ret_needed, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Base images for `mar audit`: each FROM with the global ARG defaults substituted (no build
 * arguments, automatic platform ARGs unknown). */

typedef struct bld_base {
    unsigned line;
    char *image;      /* substituted; unknown variables left as written */
    char *platform;   /* --platform, substituted likewise, or NULL */
    char *stage_name; /* AS name, or NULL */
    bool is_stage;    /* names an earlier stage */
    bool is_scratch;
    bool image_unresolved;    /* image still depends on an unknown variable */
    bool platform_unresolved; /* platform likewise (e.g. $BUILDPLATFORM) */
} bld_base;

/* Errors: MAR_EUSAGE (a default that does not expand). Returns: new array in *ret, *ret_n
 * entries, freed with bld_bases_free. */
MAR_MUST_USE int bld_dockerfile_bases(const bld_dockerfile *df, bld_base **ret, size_t *ret_n,
                                      mar_err **err);
void bld_bases_free(bld_base *v, size_t n);

/* ---------------------------------------------------------------------------------------------
 * .dockerignore (moby patternmatcher and ignorefile semantics): Go filepath.Match per path
 * component, `**`, `!` re-includes, the last matching line wins, patterns cleaned like
 * filepath.Clean with a leading '/' dropped, '#' comments in column 1. */

typedef struct bld_ignore bld_ignore;

typedef enum {
    BLD_IGNORE_KEEP = 0, /* part of the context */
    BLD_IGNORE_EXCLUDE,  /* excluded (a directory: with everything below it) */
    BLD_IGNORE_DESCEND,  /* an excluded directory under which a '!' line may re-include
                            something: leave it out but walk it */
} bld_ignore_result;

/* Parses a .dockerignore text (at most BLD_CAP_DOCKERIGNORE bytes). Errors: MAR_EUSAGE
 * ("FILE:LINE: ..." for a bad pattern). Returns: new matcher in *ret. */
MAR_MUST_USE int bld_ignore_parse(const char *text, size_t len, const char *filename,
                                  bld_ignore **ret, mar_err **err);
/* A matcher from patterns given one by one (COPY --exclude). Errors: MAR_EUSAGE. */
MAR_MUST_USE int bld_ignore_from_patterns(const char *const *patterns, size_t n, bld_ignore **ret,
                                          mar_err **err);
/* Matches a context-relative path ("dir/file", no leading "./" or '/'); is_dir tells whether it
 * names a directory. */
bld_ignore_result bld_ignore_match(const bld_ignore *m, const char *path, bool is_dir);
/* Number of patterns (blank and comment lines not counted). */
size_t bld_ignore_count(const bld_ignore *m);
bld_ignore *bld_ignore_free(bld_ignore *m);
MAR_DEFINE_CLEANUP(bld_ignore, bld_ignore_free)
#define _cleanup_ignore_ _cleanup_(bld_ignore_freep)

/* =============================================================================================
 * The build executor (docs/internals/build.md): a parsed Dockerfile, a context directory and a
 * list of target platforms in; per platform the needed stages executed in order (bases pulled
 * through the caller, RUN steps through containerd on an overlay of the stage's layers, COPY and
 * ADD written as layers straight from the context or another stage), an image config and
 * manifest per platform and an OCI index over them committed to the store and tagged. */

/* What the executor asks of its caller (cli/): the pull path, and where RUN output goes. image
 * is called from bld_build's thread only; output and step, when platforms are built in
 * parallel, from any of the build's threads, so each must write its line at once. */
typedef struct bld_hooks {
    /* An image for platform p in the store, every layer unpacked (pulled when missing). */
    int (*image)(void *ud, const char *ref, const oci_platform *p, reg_store_image *ret,
                 mar_err **err);
    /* One line of a RUN step's output (no newline), with its "[platform stage step]" prefix. */
    void (*output)(void *ud, const char *prefix, const char *line);
    /* A step starts: "[platform stage step/total] INSTRUCTION"; again with text "CACHED" when
     * the step cache supplied its result. */
    void (*step)(void *ud, const char *prefix, const char *text);
    void *ud;
} bld_hooks;

/* A secret a RUN --mount=type=secret may use (--secret id=ID,src=PATH|env=VAR). */
typedef struct bld_secret {
    const char *id;
    const char *path;  /* a file, or NULL */
    const char *value; /* from an environment variable, or NULL */
} bld_secret;

typedef struct bld_opts {
    const char *context;         /* the context directory */
    const char *dockerfile_name; /* "Dockerfile", names it in messages */
    const char *dockerfile_text;
    size_t dockerfile_len;
    const oci_platform *platforms; /* target platforms, normalized, at least one */
    size_t n_platforms;
    const char *const *build_args; /* "K=V" */
    size_t n_build_args;
    const char *target; /* --target, or NULL for the last stage */
    const char *name;   /* the store reference to tag (oci_ref_string form) */
    reg_store *store;
    const vm_target *vm; /* this host, its emulators added */
    const oci_host *host;
    const vm_security *security;
    const char *ctd_address, *ctd_namespace;
    int sigfd; /* a signalfd of SIGINT/SIGTERM/SIGHUP: forwarded to a RUN, an abort between */
    const bld_secret *secrets;
    size_t n_secrets;
    bool allow_mislabeled; /* the truth gate warns instead of failing */
    bool no_cache;         /* run every step (the step cache is still written) */
    bool zstd;             /* new layers compressed with zstd instead of gzip */
    bool has_epoch;        /* SOURCE_DATE_EPOCH */
    int64_t epoch;
    /* Stages built at once over all platforms, each on a thread of its own
     * (docs/internals/build.md §12); 0: every stage whose dependencies are built, 1: one after
     * another in stage order, platform after platform. The hooks are then called from several
     * threads. */
    unsigned jobs;
    bld_hooks hooks;
} bld_opts;

typedef struct bld_result {
    mar_digest index; /* the OCI index tagged as name */
    int64_t index_size;
    mar_digest *manifests;   /* one per platform, in the order given */
    oci_platform *platforms; /* each image's platform (its per-platform name NAME@PLATFORM) */
    size_t n;
} bld_result;
void bld_result_release(bld_result *r);

/* Builds and tags. Nothing is tagged unless every platform built. Errors: MAR_EUSAGE
 * ("Dockerfile:LINE: ..." for what the executor does not support, refused before anything
 * runs), MAR_EUNSUPPORTED (a platform this host cannot execute RUN steps of, with the fix),
 * MAR_ENOTFOUND (a missing COPY source, a base image), MAR_EFAIL (a RUN step failed: platform,
 * stage, line, command, exit status), those of the pull path, MAR_EIO. */
MAR_MUST_USE int bld_build(const bld_opts *o, bld_result *ret, mar_err **err);

/* Copies the stored index `index` (size bytes) with every manifest, config and layer it reaches
 * into an OCI image layout at dir (created, or an existing directory that holds no layout yet),
 * its index.json naming it `name` (the tag for skopeo, the whole name for containerd).
 * index.json is written last. Errors: MAR_EUSAGE (dir holds a layout, or is no directory),
 * MAR_EIO, those of reg_store_read. */
MAR_MUST_USE int bld_output_layout(reg_store *s, const char *name, const mar_digest *index,
                                   int64_t size, const char *dir, mar_err **err);
/* The same layout as one tar file (entries sorted, owner 0, times mtime), written to a temporary
 * name beside file and renamed into place. Errors: as bld_output_layout. */
MAR_MUST_USE int bld_output_tar(reg_store *s, const char *name, const mar_digest *index,
                                int64_t size, int64_t mtime, const char *file, mar_err **err);

/* What a build would do, without pulling or running anything (mar build --explain): for every
 * target platform and needed stage, its base, the platform its RUN steps run as and how the
 * planned machine (this host, or a profile such as apple-silicon) would execute them. */
typedef struct bld_plan_stage {
    char target[OCI_PLATFORM_STR_MAX];   /* the target platform */
    char platform[OCI_PLATFORM_STR_MAX]; /* what the stage runs as */
    char *stage;                         /* its name, or "stage-N" */
    char *base;                          /* the expanded FROM: an image, a stage, "scratch" */
    bld_base_kind base_kind;
    bool build_platform; /* FROM --platform=$BUILDPLATFORM: runs as the machine's platform */
    size_t n_run;        /* RUN steps */
    unsigned first_run_line;
    vm_verdict verdict; /* for its platform; meaningful when n_run > 0 */
    char *advice;       /* an emulated stage with RUN steps: the cross-build rewrite, or NULL */
} bld_plan_stage;

typedef struct bld_plan {
    char machine[64]; /* the planned machine: "this host", "apple-silicon" */
    char build_platform[OCI_PLATFORM_STR_MAX]; /* its native platform: $BUILDPLATFORM */
    bld_plan_stage *v;
    size_t n;
    size_t n_emulated;    /* RUN steps that would run under an emulator */
    size_t n_unavailable; /* stages whose RUN steps cannot run here */
} bld_plan;

/* Parses, validates (the refusals of bld_build) and plans for the machine o->vm: this host, or
 * another one (vm_target_parse). $BUILDPLATFORM is that machine's native platform
 * (o->vm->platform), as BuildKit running there would set it, so a `FROM --platform=$BUILDPLATFORM`
 * stage runs as, and is planned for, that platform. Uses o's Dockerfile, context, platforms,
 * build arguments, target, vm and host only. Errors: as bld_build's refusals. */
MAR_MUST_USE int bld_explain(const bld_opts *o, bld_plan *ret, mar_err **err);
void bld_plan_release(bld_plan *p);

#endif
