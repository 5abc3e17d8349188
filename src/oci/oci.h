/* oci/: the image model. Platforms (containerd semantics, platforms.md), references (Docker's
 * grammar, registry-protocol.md §1), media types, descriptors, manifests, indexes and image
 * configs, index-entry selection, and host platform detection. Knows nothing about the network,
 * the store layout or the emulators. */
#ifndef MAR_OCI_H
#define MAR_OCI_H

#include "util/util.h"

/* ---------------------------------------------------------------------------------------------
 * Platforms. Fixed-size fields: values come from the network and are validated against the
 * specifier grammar (platforms.md §3), so an overlong value is an error, not a truncation. */

typedef struct oci_platform {
    char os[32];
    char arch[32];
    char variant[32];
    char os_version[64];
    char features[256]; /* sorted, de-duplicated, '+'-joined */
} oci_platform;

/* Parses a specifier `<os>|<arch>|<os>/<arch>[/<variant>]` with containerd's quirks (platforms.md
 * §3). One-word forms take the missing half from `host` (the host's OS, or its architecture and
 * arm variant). Errors: MAR_EUSAGE. */
int oci_platform_parse(const char *spec, const oci_platform *host, oci_platform *ret,
                       mar_err **err);

/* Builds a platform from the fields of a descriptor or config; values are lower-cased, validated
 * (`[A-Za-z0-9_.-]+`, field length) but not normalized. Errors: MAR_EINTEGRITY. */
int oci_platform_from_fields(const char *os, const char *arch, const char *variant,
                             const char *os_version, json_t *features, oci_platform *ret,
                             mar_err **err);

/* containerd Normalize (platforms.md §2). `in` and `out` may alias. */
void oci_platform_normalize(const oci_platform *in, oci_platform *out);

/* "os/arch[/variant]"; empty OS formats as "unknown". */
void oci_platform_format(const oci_platform *p, char *buf, size_t n);
/* As oci_platform_format, plus "(os.version+feature+...)" after the OS when present. */
void oci_platform_format_all(const oci_platform *p, char *buf, size_t n);

#define OCI_PLATFORM_STR_MAX 256

/* containerd NewMatcher(want).Match(have): equal after normalizing both sides, and have's OS
 * features a subset of want's. */
bool oci_platform_matches(const oci_platform *want, const oci_platform *have);

/* Exact field equality after normalizing both (used for "config agrees with the index"). */
bool oci_platform_same(const oci_platform *a, const oci_platform *b);

/* An attestation or other non-runnable entry: OS or architecture "unknown" (platforms.md §9). */
bool oci_platform_is_unknown(const oci_platform *p);

/* Match comparers (platforms.md §5.1). */
typedef enum {
    OCI_MATCH_ORDERED, /* Only, OnlyStrict and Ordered */
    OCI_MATCH_ANY,
    OCI_MATCH_ALL,
} oci_match_kind;

#define OCI_MATCHER_MAX 32

typedef struct oci_matcher {
    oci_match_kind kind;
    size_t n;
    oci_platform v[OCI_MATCHER_MAX]; /* normalized */
} oci_matcher;

/* Only(p): p's fallback vector (platforms.md §5.2). */
void oci_matcher_only(oci_matcher *m, const oci_platform *p);
/* OnlyStrict(p): p alone, normalized. */
void oci_matcher_only_strict(oci_matcher *m, const oci_platform *p);
void oci_matcher_ordered(oci_matcher *m, const oci_platform *ps, size_t n);
void oci_matcher_any(oci_matcher *m, const oci_platform *ps, size_t n);
void oci_matcher_all(oci_matcher *m);
bool oci_matcher_match(const oci_matcher *m, const oci_platform *p);
/* True when p1 sorts before p2. */
bool oci_matcher_less(const oci_matcher *m, const oci_platform *p1, const oci_platform *p2);

/* ---------------------------------------------------------------------------------------------
 * Host. */

typedef struct oci_host {
    oci_platform platform; /* what containerd's Default() would use: no amd64 level */
    int amd64_level;       /* 1..4 from CPUID on x86-64, 0 elsewhere (information only) */
    char machine[32];      /* uname -m */
    char cpu_model[128];
    char kernel[64]; /* uname -r */
} oci_host;

/* Detects the host: OS and architecture of this build, the arm variant from /proc/cpuinfo, the
 * amd64 ISA level from CPUID. Never fails; unknown facts stay empty. */
void oci_host_detect(oci_host *ret);

/* The arm variant ("v5".."v8") for a /proc/cpuinfo text and a uname machine, per containerd's
 * cpuinfo_linux.go rules (platforms.md §6). Empty when unknown. */
void oci_cpu_variant(const char *cpuinfo, const char *machine, char *buf, size_t n);

/* ---------------------------------------------------------------------------------------------
 * References (registry-protocol.md §1). */

typedef struct oci_ref {
    char *domain; /* "docker.io", "localhost:5000", "[::1]:5000" */
    char *path;   /* "library/alpine" */
    char *tag;    /* NULL when pulled by digest only */
    bool has_digest;
    mar_digest digest;
    char *api_host; /* host[:port] to talk to: registry-1.docker.io for docker.io */
} oci_ref;

/* Parses and normalizes a reference; `alpine` becomes docker.io/library/alpine:latest. Errors:
 * MAR_EUSAGE (bad syntax), MAR_EUNSUPPORTED (digest algorithm). */
int oci_ref_parse(const char *s, oci_ref *ret, mar_err **err);
void oci_ref_release(oci_ref *r);
/* The canonical string "domain/path[:tag][@digest]". Returns: new string. */
char *oci_ref_string(const oci_ref *r);
/* "domain/path" (the repository). Returns: new string. */
char *oci_ref_repo(const oci_ref *r);
/* The tag or digest to ask the registry for (digest wins). Borrowed. */
const char *oci_ref_target(const oci_ref *r);
/* True for a valid tag `[\w][\w.-]{0,127}`. */
bool oci_tag_valid(const char *tag);

/* ---------------------------------------------------------------------------------------------
 * Media types (registry-protocol.md §3, §11). */

#define OCI_MT_INDEX                 "application/vnd.oci.image.index.v1+json"
#define OCI_MT_MANIFEST              "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_DOCKER_LIST           "application/vnd.docker.distribution.manifest.list.v2+json"
#define OCI_MT_DOCKER_MANIFEST       "application/vnd.docker.distribution.manifest.v2+json"
#define OCI_MT_DOCKER_SCHEMA1        "application/vnd.docker.distribution.manifest.v1+json"
#define OCI_MT_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define OCI_MT_CONFIG                "application/vnd.oci.image.config.v1+json"
#define OCI_MT_DOCKER_CONFIG         "application/vnd.docker.container.image.v1+json"
#define OCI_MT_EMPTY                 "application/vnd.oci.empty.v1+json"
/* The Accept header for manifests: the four supported types, schema 1 never listed. */
#define OCI_MANIFEST_ACCEPT                                                                        \
    OCI_MT_INDEX ", " OCI_MT_DOCKER_LIST ", " OCI_MT_MANIFEST ", " OCI_MT_DOCKER_MANIFEST

typedef enum {
    OCI_KIND_UNKNOWN = 0,
    OCI_KIND_INDEX,    /* OCI index or Docker manifest list */
    OCI_KIND_MANIFEST, /* OCI manifest or Docker schema 2 */
    OCI_KIND_SCHEMA1,
} oci_kind;

/* The kind of a manifest media type; parameters (";charset=...") are ignored. */
oci_kind oci_media_kind(const char *media_type);
/* Copies a media type without parameters and surrounding blanks, lower-cased. */
void oci_media_type_base(const char *media_type, char *buf, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Descriptors, manifests, indexes (image-spec descriptor.md, manifest.md, image-index.md). */

typedef struct oci_descriptor {
    char *media_type;
    mar_digest digest;
    int64_t size;
    bool has_platform;
    oci_platform platform;
    char *artifact_type;
    json_t *annotations; /* owned reference or NULL */
    mar_strv urls;
} oci_descriptor;

/* Annotation value or NULL. Borrowed. */
const char *oci_descriptor_annotation(const oci_descriptor *d, const char *key);
/* A buildx attestation manifest (platforms.md §9). */
bool oci_descriptor_is_attestation(const oci_descriptor *d);
void oci_descriptor_release(oci_descriptor *d);

typedef struct oci_manifest {
    oci_kind kind;
    char *media_type; /* effective type: the body's, else the Content-Type */
    int64_t schema_version;
    /* index */
    oci_descriptor *manifests;
    size_t n_manifests;
    /* manifest */
    oci_descriptor config;
    oci_descriptor *layers;
    size_t n_layers;
    /* both */
    char *artifact_type;
    bool has_subject;
    oci_descriptor subject;
    json_t *annotations;
    size_t size; /* bytes of the document */
} oci_manifest;

/* Parses a manifest or index served with `content_type`, enforcing the type checks of
 * registry-protocol.md §10 (CVE-2021-41190): schemaVersion 2, body mediaType equal to the
 * Content-Type when both are present, no `manifests` in a manifest, no `config`/`layers` in an
 * index, schema 1 refused. Errors: MAR_EINTEGRITY (malformed, type confusion), MAR_EUNSUPPORTED
 * (schema 1, unknown type or digest algorithm). Returns: new manifest. */
int oci_manifest_parse(const void *buf, size_t len, const char *content_type, oci_manifest **ret,
                       mar_err **err);
oci_manifest *oci_manifest_free(oci_manifest *m);
MAR_DEFINE_CLEANUP(oci_manifest, oci_manifest_free)
#define _cleanup_manifest_ _cleanup_(oci_manifest_freep)

/* Sum of the config and layer sizes of a manifest (the "compressed size"). */
int64_t oci_manifest_total_size(const oci_manifest *m);
/* True when the manifest is a runnable image (not an artifact or attestation). */
bool oci_manifest_is_image(const oci_manifest *m);

typedef struct oci_config {
    oci_platform platform;
    bool has_platform; /* architecture and os present */
    mar_strv entrypoint;
    mar_strv cmd;
    mar_strv env;
    char *user;
    char *working_dir;
    mar_digest *diff_ids;
    size_t n_diff_ids;
} oci_config;

/* Parses an image config (image-spec config.md). Errors: MAR_EINTEGRITY. Returns: new config. */
int oci_config_parse(const void *buf, size_t len, oci_config **ret, mar_err **err);
oci_config *oci_config_free(oci_config *c);
MAR_DEFINE_CLEANUP(oci_config, oci_config_free)
#define _cleanup_config_ _cleanup_(oci_config_freep)

/* ---------------------------------------------------------------------------------------------
 * Choosing an index entry (platforms.md §7, containerd images.Manifest). */

typedef struct oci_selection {
    /* Indexes into idx->manifests of runnable entries accepted by the matcher, best first.
     * Attestations are never candidates. */
    size_t *order;
    size_t n;
    size_t n_attestations;
} oci_selection;

/* Filters and stable-sorts the entries of an index with the matcher; entries without a platform
 * sort last. n == 0 means no match. */
void oci_index_select(const oci_manifest *idx, const oci_matcher *m, oci_selection *ret);
void oci_selection_release(oci_selection *s);

#endif
