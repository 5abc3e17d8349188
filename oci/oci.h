/* oci/: the image model. Platforms (containerd semantics, docs/internals/platforms.md), references
 * (Docker's grammar, docs/internals/registry-protocol.md §1), media types, descriptors, manifests,
 * indexes and image configs, index-entry selection, and host platform detection. Knows nothing
 * about the network, the store layout or the emulators. */
#ifndef MAR_OCI_H
#define MAR_OCI_H

#include "util/util.h"

#include <sys/stat.h>

/* ---------------------------------------------------------------------------------------------
 * Platforms. Fixed-size fields: values come from the network, so an overlong value is an error,
 * not a truncation (docs/internals/platforms.md §1). */

typedef struct oci_platform {
    char os[32];
    char arch[32];
    char variant[32];
    char os_version[64]; /* as written */
    /* '+'-joined, each feature with every byte outside `[A-Za-z0-9_.-]` written as %XX (the
     * specifier form, docs/internals/platforms.md §3); sorted by normalization only */
    char features[256];
} oci_platform;

/* Parses a specifier `<os>|<arch>|<os>/<arch>[/<variant>]` with containerd's quirks
 * (docs/internals/platforms.md §3). One-word forms take the missing half from `host` (the host's
 * OS, or its architecture and arm variant). Errors: MAR_EUSAGE. */
MAR_MUST_USE int oci_platform_parse(const char *spec, const oci_platform *host, oci_platform *ret,
                                    mar_err **err);

/* Builds a platform from the fields of a descriptor or config; os, architecture and variant are
 * lower-cased and validated (`[A-Za-z0-9_.-]+`, length), os.features may be any strings; nothing
 * is normalized. Errors: MAR_EINTEGRITY (a malformed or invalid field: the document is wrong),
 * MAR_EUNSUPPORTED (an os.version or os.features longer than mar keeps: *ret then holds the
 * OS, architecture and variant, and the entry can be reported but not matched). */
MAR_MUST_USE int oci_platform_from_fields(const char *os, const char *arch, const char *variant,
                                          const char *os_version, json_t *features,
                                          oci_platform *ret, mar_err **err);

/* containerd Normalize (docs/internals/platforms.md §2). `in` and `out` may alias. */
void oci_platform_normalize(const oci_platform *in, oci_platform *out);

/* "os/arch[/variant]"; an empty OS formats as "unknown" alone (containerd Format). */
void oci_platform_format(const oci_platform *p, char *buf, size_t n);
/* As oci_platform_format, plus "(os.version+feature+...)" after the OS when present, escaped so
 * that oci_platform_parse reads the same platform back (docs/internals/platforms.md §3). */
void oci_platform_format_all(const oci_platform *p, char *buf, size_t n);

/* Holds every platform oci_platform_format writes. */
#define OCI_PLATFORM_STR_MAX 256
/* Holds every platform oci_platform_format_all writes (escaped os.version and features). */
#define OCI_PLATFORM_ALL_STR_MAX 576

/* containerd NewMatcher(want).Match(have): equal after normalizing both sides, Windows versions
 * compatible, and have's OS features a subset of want's. */
bool oci_platform_matches(const oci_platform *want, const oci_platform *have);
/* containerd's Windows os.version rule (docs/internals/platforms.md §4): true when either side
 * is empty or unreadable on the want side, else when a host of version `want` runs a container of
 * version `have` (major, minor and build; the revision is ignored). */
bool oci_windows_version_matches(const char *want, const char *have);
/* Compares two Windows versions by major, minor, build and revision (missing or unreadable parts
 * are 0): <0, 0, >0. */
int oci_windows_version_cmp(const char *a, const char *b);

/* Exact field equality after normalizing both (used for "config agrees with the index"). */
bool oci_platform_same(const oci_platform *a, const oci_platform *b);

/* An attestation or other non-runnable entry: OS or architecture "unknown"
 * (docs/internals/platforms.md §9). */
bool oci_platform_is_unknown(const oci_platform *p);

/* Match comparers (docs/internals/platforms.md §5.1). */
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

/* Only(p): p's fallback vector (docs/internals/platforms.md §5.2). */
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
 * cpuinfo_linux.go rules (docs/internals/platforms.md §6). Empty when unknown. */
void oci_cpu_variant(const char *cpuinfo, const char *machine, char *buf, size_t n);

/* ---------------------------------------------------------------------------------------------
 * References (docs/internals/registry-protocol.md §1). */

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
MAR_MUST_USE int oci_ref_parse(const char *s, oci_ref *ret, mar_err **err);
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
 * Media types (docs/internals/registry-protocol.md §3, §11). */

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
    /* Why the platform is only partly read (an os.version or os.features list longer than mar
     * keeps), or NULL. Such an entry is listed, never chosen. */
    char *platform_err;
    char *artifact_type;
    json_t *annotations; /* owned reference or NULL */
    mar_strv urls;
} oci_descriptor;

/* Annotation value or NULL. Borrowed. */
const char *oci_descriptor_annotation(const oci_descriptor *d, const char *key);
/* A buildx attestation manifest (docs/internals/platforms.md §9). */
bool oci_descriptor_is_attestation(const oci_descriptor *d);
void oci_descriptor_release(oci_descriptor *d);

/* What an index entry is to platform selection (docs/internals/platforms.md §7, §9). */
typedef enum oci_entry_role {
    OCI_ENTRY_MANIFEST,    /* an image manifest: a candidate */
    OCI_ENTRY_INDEX,       /* a nested index: a candidate, descended */
    OCI_ENTRY_ATTESTATION, /* a BuildKit attestation manifest: counted, never chosen */
    OCI_ENTRY_IGNORED,     /* another vnd.docker.reference.type: BuildKit says to ignore it */
    OCI_ENTRY_UNKNOWN,     /* a media type mar does not read: listed, never chosen */
} oci_entry_role;

oci_entry_role oci_descriptor_role(const oci_descriptor *d);
/* The manifest an attestation entry describes (its vnd.docker.reference.digest annotation), or
 * false. */
bool oci_descriptor_attests(const oci_descriptor *d, mar_digest *ret);

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
 * docs/internals/registry-protocol.md §10 (CVE-2021-41190): schemaVersion 2, body mediaType equal
 * to the Content-Type when both are present, no `manifests` in a manifest, no `config`/`layers` in
 * an index, schema 1 refused. Errors: MAR_EINTEGRITY (malformed, type confusion), MAR_EUNSUPPORTED
 * (schema 1, unknown type or digest algorithm). Returns: new manifest. */
MAR_MUST_USE int oci_manifest_parse(const void *buf, size_t len, const char *content_type,
                                    oci_manifest **ret, mar_err **err);
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
MAR_MUST_USE int oci_config_parse(const void *buf, size_t len, oci_config **ret, mar_err **err);
/* ChainIDs of a layer stack (image-spec config.md "Layer ChainID"): ChainID(L0) = DiffID(L0),
 * ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)). An unpacked layer depends on
 * the layers under it, so it is named by its ChainID, as containerd names snapshots. */
void oci_chain_ids(const mar_digest *diff_ids, size_t n, mar_digest *ret);
oci_config *oci_config_free(oci_config *c);
MAR_DEFINE_CLEANUP(oci_config, oci_config_free)
#define _cleanup_config_ _cleanup_(oci_config_freep)

/* ---------------------------------------------------------------------------------------------
 * ELF identity of a file from its first bytes (docs/internals/platforms.md §10). */

typedef struct oci_elf_info {
    bool is_elf;
    bool truncated;     /* some headers lay beyond the bytes given */
    unsigned elf_class; /* 1 = 32-bit, 2 = 64-bit */
    unsigned elf_data;  /* 1 = little, 2 = big endian */
    uint16_t e_type;
    uint16_t e_machine;
    uint32_t e_flags;
    char arch[16];     /* OCI architecture ("arm64"), empty when unknown */
    char float_abi[8]; /* arm: "hard" (armhf) or "soft" (armel) */
    bool dynamic;      /* has PT_INTERP */
    char interp[128];  /* the loader, "/lib/ld-musl-aarch64.so.1" */
    char libc[8];      /* "glibc", "musl" or empty, from the loader's name */
    int x86_isa_level; /* 1..4 from GNU_PROPERTY_X86_ISA_1_NEEDED, 0 when absent */
} oci_elf_info;

/* Reads what the first len bytes of a file tell. Never fails: is_elf is false for anything that
 * is not an ELF file. */
void oci_elf_parse(const void *buf, size_t len, oci_elf_info *ret);

/* The architectures ELF headers name, by the header their binaries carry. binfmt/ registers and
 * synthesizes headers from these rows. */
typedef enum oci_elf_arch_id {
    OCI_ELF_AMD64,
    OCI_ELF_386,
    OCI_ELF_ARM64,
    OCI_ELF_ARM,
    OCI_ELF_PPC64LE,
    OCI_ELF_PPC64,
    OCI_ELF_S390X,
    OCI_ELF_RISCV64,
    OCI_ELF_MIPS64LE,
    OCI_ELF_MIPS64,
    OCI_ELF_LOONG64,
    OCI_ELF_AMD64P32,
    OCI_ELF_ARM64BE,
    OCI_ELF_ARMBE,
    OCI_ELF_PPC,
    OCI_ELF_S390,
    OCI_ELF_RISCV,
    OCI_ELF_MIPS,
    OCI_ELF_MIPSLE,
    OCI_ELF_SPARC64,
    OCI_ELF_SPARC,
    OCI_ELF_ARCH_COUNT
} oci_elf_arch_id;

typedef struct oci_elf_arch {
    oci_elf_arch_id id;
    const char *arch;        /* OCI architecture, "arm64" */
    uint16_t e_machine;      /* <elf.h> EM_*, EM_AARCH64 */
    unsigned char elf_class; /* ELFCLASS32 (1), ELFCLASS64 (2) */
    unsigned char elf_data;  /* ELFDATA2LSB (1), ELFDATA2MSB (2) */
    unsigned char any;       /* internal: the class or byte order that also match */
} oci_elf_arch;

/* Indexed by oci_elf_arch_id. */
extern const oci_elf_arch oci_elf_arches[OCI_ELF_ARCH_COUNT];
/* The row of an id, or NULL. Borrowed (static). */
const oci_elf_arch *oci_elf_arch_get(oci_elf_arch_id id);
/* The architecture of an ELF header's class, byte order and machine, or NULL when mar does not
 * know it. Borrowed (static). */
const oci_elf_arch *oci_elf_arch_find(unsigned elf_class, unsigned elf_data, unsigned e_machine);

/* ---------------------------------------------------------------------------------------------
 * Layers: an open blob fd in, validated tar entries out. Compression is sniffed from the magic
 * bytes; the uncompressed stream is hashed (the DiffID) and capped. Read-only. */

#define OCI_PATH_MAX 4096 /* docs/internals/unpack-security.md §3 */
#define OCI_NAME_MAX 255

typedef enum { OCI_CODEC_NONE, OCI_CODEC_GZIP, OCI_CODEC_ZSTD } oci_codec;
const char *oci_codec_name(oci_codec c);
/* The codec a layer media type announces (docs/internals/registry-protocol.md §11), or -1 for a
 * type mar does not unpack: non-distributable and foreign layers (refused by default),
 * attestations, unknown types. The data is decoded by its magic bytes whatever the label says. */
int oci_layer_media_codec(const char *media_type);

typedef struct oci_layer_limits {
    /* 16 GiB: the decompressed stream, and the apparent size of the files it writes (a sparse
     * entry counts its whole size, holes included) */
    uint64_t max_uncompressed;
    uint64_t max_entries;
    uint64_t max_header_bytes; /* all headers of one entry: 1 MiB of PAX plus blocks */
    uint64_t max_sparse;       /* regions of one sparse file */
    uint64_t min_free;         /* unpacking stops when the target has less free space */
} oci_layer_limits;
void oci_layer_limits_default(oci_layer_limits *l);

typedef enum {
    OCI_ENTRY_FILE,
    OCI_ENTRY_DIR,
    OCI_ENTRY_SYMLINK,
    OCI_ENTRY_HARDLINK,
    OCI_ENTRY_CHAR,
    OCI_ENTRY_BLOCK,
    OCI_ENTRY_FIFO,
    OCI_ENTRY_SOCKET,
    OCI_ENTRY_WHITEOUT,  /* path names what to delete from lower layers */
    OCI_ENTRY_OPAQUE,    /* path names the directory whose lower children are hidden */
    OCI_ENTRY_AUFS_META, /* .wh..wh.* other than the opaque marker: skipped */
} oci_entry_kind;

typedef struct oci_xattr {
    const char *name;
    const void *value;
    size_t size;
} oci_xattr;

typedef struct oci_layer_entry {
    oci_entry_kind kind;
    char *path;    /* cleaned, relative to the root, never empty, never climbing out */
    char *link;    /* symlink target verbatim, or the cleaned hard link target */
    unsigned mode; /* permission bits with setuid/setgid/sticky */
    int64_t uid, gid;
    int64_t size; /* apparent size: a sparse entry's holes included */
    bool sparse;  /* data comes in blocks with holes between them (oci_layer_read_block) */
    int64_t mtime;
    long mtime_nsec;
    uint64_t devmajor, devminor;
    oci_xattr *xattrs;
    size_t n_xattrs;
} oci_layer_entry;

typedef struct oci_layer_reader oci_layer_reader;

/* Opens a layer read from fd (which stays the caller's). Errors: MAR_EUNSUPPORTED (xz, bzip2),
 * MAR_EINTEGRITY (not tar), MAR_EIO. */
MAR_MUST_USE int oci_layer_open(int fd, const oci_layer_limits *lim, oci_layer_reader **ret,
                                mar_err **err);
/* oci_layer_open for a tar archive that is not an image layer (what a Dockerfile's ADD
 * extracts): bzip2 and xz are decompressed too, by libarchive's built-in decoders; the codec
 * then reads as OCI_CODEC_NONE. Errors: as oci_layer_open; MAR_EUNSUPPORTED when libarchive
 * was built without that decoder. */
MAR_MUST_USE int oci_archive_open(int fd, const oci_layer_limits *lim, oci_layer_reader **ret,
                                  mar_err **err);
oci_layer_reader *oci_layer_free(oci_layer_reader *r);
MAR_DEFINE_CLEANUP(oci_layer_reader, oci_layer_free)
#define _cleanup_layer_ _cleanup_(oci_layer_freep)
oci_codec oci_layer_codec(const oci_layer_reader *r);
/* Compressed bytes read from the fd so far. */
uint64_t oci_layer_in_bytes(const oci_layer_reader *r);
/* The next entry (borrowed until the next call): 1, 0 at the end, or an error (MAR_EINTEGRITY for
 * a bad archive or name, MAR_EIO). */
MAR_MUST_USE int oci_layer_next(oci_layer_reader *r, const oci_layer_entry **ret, mar_err **err);
/* Data of the current entry: bytes read, 0 at its end. */
ssize_t oci_layer_read(oci_layer_reader *r, void *buf, size_t n, mar_err **err);
MAR_MUST_USE int oci_layer_skip(oci_layer_reader *r, mar_err **err);
/* Data of the current entry as blocks at their offsets in the file (borrowed until the next call):
 * 1 with a block, 0 at its end. The holes of a sparse entry are the gaps between blocks; blocks
 * never reach past the entry's size. */
MAR_MUST_USE int oci_layer_read_block(oci_layer_reader *r, const void **ret_buf, size_t *ret_len,
                                      int64_t *ret_off, mar_err **err);
/* Reads the stream to its very end and returns the DiffID and uncompressed size. */
MAR_MUST_USE int oci_layer_finish(oci_layer_reader *r, mar_digest *ret_diff_id, uint64_t *ret_size,
                                  mar_err **err);
/* Lexical clean of a tar name (docs/internals/unpack-security.md §3). Returns: new string, "" for
 * the root. Errors: MAR_EINTEGRITY for names climbing out or over the length limits. */
MAR_MUST_USE int oci_clean_path(const char *in, char **ret, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Layer writer (docs/internals/layer-write.md): entries or a directory tree in, a deterministic
 * PAX tar out, hashed (the DiffID) and compressed (the blob and its digest) in one pass. The tar
 * is mar's own; what it writes reads back through oci_layer_open. */

/* Where written bytes go: returns 0, or a negative MAR_E* code with *err set. */
typedef int (*oci_sink_fn)(void *ud, const void *buf, size_t n, mar_err **err);

/* Rewrites applied to every entry a tar writer writes. */
typedef struct oci_tarw_opts {
    bool set_owner; /* every entry gets uid:gid (COPY --chown) */
    int64_t uid, gid;
    bool clamp_mtime;  /* SOURCE_DATE_EPOCH: later mtimes become mtime_max */
    int64_t mtime_max; /* seconds since the epoch */
} oci_tarw_opts;

typedef struct oci_tarw oci_tarw;

/* A tar writer that hands its bytes to sink(ud, ...). opts may be NULL. Returns: new writer. */
oci_tarw *oci_tarw_new(const oci_tarw_opts *opts, oci_sink_fn sink, void *ud);
oci_tarw *oci_tarw_free(oci_tarw *w);
MAR_DEFINE_CLEANUP(oci_tarw, oci_tarw_free)
#define _cleanup_tarw_ _cleanup_(oci_tarw_freep)

/* Writes the headers of one entry, as the reader would return it: path clean and relative
 * ("usr/bin", no trailing slash for directories), link the symlink target or the hard link's
 * first path; WHITEOUT names what to delete, OPAQUE the directory to empty (both become the
 * `.wh.` files of image-spec layer.md); size is the data of a FILE, which oci_tarw_write must
 * then supply in full; mtime_nsec is ignored (whole seconds). Callers write parents before their
 * children and order siblings (docs/internals/layer-write.md §2). Errors: MAR_EINTEGRITY (an
 * unclean path, a name reserved for whiteouts, data of the previous entry short), MAR_EUNSUPPORTED
 * (sockets, over-long paths or headers), and the sink's. */
MAR_MUST_USE int oci_tarw_add(oci_tarw *w, const oci_layer_entry *e, mar_err **err);
/* Data of the current FILE entry. Errors: MAR_EINTEGRITY (more than its size), the sink's. */
MAR_MUST_USE int oci_tarw_write(oci_tarw *w, const void *buf, size_t n, mar_err **err);
/* oci_tarw_add, then exactly e->size bytes read from fd (`what` names it in messages). Errors:
 * as oci_tarw_add; MAR_EIO (read failure, or the file shrank or grew while being read). */
MAR_MUST_USE int oci_tarw_add_fd(oci_tarw *w, const oci_layer_entry *e, int fd, const char *what,
                                 mar_err **err);
/* Ends the archive with two zero blocks. Errors: MAR_EINTEGRITY (data short), the sink's. */
MAR_MUST_USE int oci_tarw_finish(oci_tarw *w, mar_err **err);
/* Entries written so far. */
uint64_t oci_tarw_entries(const oci_tarw *w);

typedef enum {
    OCI_TREE_PLAIN,         /* the tree as it is (COPY sources staged in a directory) */
    OCI_TREE_OVERLAY_UPPER, /* an overlayfs upper directory: whiteouts and opaque directories */
} oci_tree_kind;

typedef struct oci_tree_opts {
    oci_tree_kind kind;
    bool userxattr; /* OVERLAY_UPPER: the mount used userxattr (user.overlay.* xattrs) */
} oci_tree_opts;

typedef struct oci_tree_stats {
    uint64_t entries; /* tar entries written, whiteouts included */
    uint64_t files, bytes, dirs, symlinks, hardlinks, specials;
    uint64_t whiteouts, opaques;
    uint64_t skipped; /* sockets: tar has no type for them */
} oci_tree_stats;

/* Adds everything under dirfd (not the directory itself) to w, below `prefix` (NULL or "" for
 * the root of the layer; a clean relative path otherwise), in the order of
 * docs/internals/layer-write.md §2. The tree is hostile: nothing is followed, files are opened
 * O_NOFOLLOW|O_NONBLOCK relative to their directory's fd and checked to be what lstat said. Hard
 * links are found by (dev, ino) within this call. ret_stats may be NULL. Errors: MAR_EIO (a
 * local failure, naming the path), MAR_EUNSUPPORTED (overlay redirect_dir or metacopy artefacts,
 * over-long paths), MAR_EINTEGRITY (names reserved for whiteouts), and the writer's. */
MAR_MUST_USE int oci_tarw_add_tree(oci_tarw *w, int dirfd, const char *prefix,
                                   const oci_tree_opts *o, oci_tree_stats *ret_stats,
                                   mar_err **err);

#define OCI_MT_LAYER      "application/vnd.oci.image.layer.v1.tar"
#define OCI_MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCI_MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

/* The OCI layer media type of a codec. Borrowed static string. */
const char *oci_layer_media_type(oci_codec c);

typedef struct oci_layer_written {
    oci_codec codec;
    const char *media_type; /* static */
    mar_digest diff_id;     /* sha256 of the uncompressed tar */
    mar_digest digest;      /* sha256 of the blob as written */
    uint64_t size;          /* blob bytes */
    uint64_t uncompressed_size;
    oci_tree_stats stats; /* oci_layer_write_dir only */
} oci_layer_written;

/* A blob being written: uncompressed bytes in, hashed and compressed, the result written to an
 * fd (which stays the caller's) and hashed again. */
typedef struct oci_layer_out oci_layer_out;

#define OCI_GZIP_LEVEL_DEFAULT 2 /* ISA-L levels 1..3 (docs/internals/layer-write.md §5) */
#define OCI_ZSTD_LEVEL_DEFAULT 3

/* level 0 picks the codec's default (gzip level 0 is not offered); threads 0 picks the CPUs
 * this process may run on. The bytes written do not depend on threads
 * (docs/internals/layer-write.md §5). Errors: MAR_EUSAGE (a level out of range), MAR_EFAIL.
 * Returns: new writer in *ret. */
MAR_MUST_USE int oci_layer_out_new(oci_codec codec, int level, unsigned threads, int out_fd,
                                   oci_layer_out **ret, mar_err **err);
/* Feeds uncompressed bytes. Errors: MAR_EIO (writing the fd), MAR_EFAIL (the codec). */
MAR_MUST_USE int oci_layer_out_write(oci_layer_out *z, const void *buf, size_t n, mar_err **err);
/* oci_layer_out_write with a void * first argument: the sink for oci_tarw_new. */
MAR_MUST_USE int oci_layer_out_sink(void *z, const void *buf, size_t n, mar_err **err);
/* Flushes the codec and the fd and fills ret (stats untouched). Errors as oci_layer_out_write. */
MAR_MUST_USE int oci_layer_out_finish(oci_layer_out *z, oci_layer_written *ret, mar_err **err);
oci_layer_out *oci_layer_out_free(oci_layer_out *z);
MAR_DEFINE_CLEANUP(oci_layer_out, oci_layer_out_free)
#define _cleanup_layer_out_ _cleanup_(oci_layer_out_freep)

typedef struct oci_layer_write_opts {
    oci_tree_opts tree;
    oci_tarw_opts tar;
    oci_codec codec;
    int level;        /* 0: the codec's default */
    unsigned threads; /* 0: the CPUs this process may run on */
} oci_layer_write_opts;

#define OCI_LAYER_WRITE_OPTS_INIT                                                                  \
    {                                                                                              \
        .tree = {.kind = OCI_TREE_PLAIN}, .codec = OCI_CODEC_GZIP                                  \
    }

/* Writes the tree under dirfd as one layer blob to out_fd: oci_layer_out_new, oci_tarw_new,
 * oci_tarw_add_tree, oci_tarw_finish, oci_layer_out_finish. On failure out_fd holds a partial
 * blob the caller discards. Errors: as those functions. */
MAR_MUST_USE int oci_layer_write_dir(int dirfd, const oci_layer_write_opts *o, int out_fd,
                                     oci_layer_written *ret, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Unpacking (docs/internals/unpack-security.md §2): every write through one root dirfd. */

typedef enum {
    OCI_UNPACK_LAYER, /* one layer alone, as an overlayfs lower directory */
    OCI_UNPACK_APPLY, /* applied onto a tree (flattening) */
} oci_unpack_mode;

typedef struct oci_unpack_opts {
    oci_unpack_mode mode;
    const oci_layer_limits *lim;      /* NULL: defaults */
    const mar_digest *expect_diff_id; /* verified after the last byte, when set */
    bool archive; /* an archive ADD extracts, not a layer: bzip2 and xz too (oci_archive_open) */
    /* The tree the layer was just written from (a build's upper or staging directory, about to
     * be discarded): its regular files are hard-linked into the layer instead of written
     * again, then given the entry's owner, mode, xattrs and times as written ones are. The
     * data is still read through, so expect_diff_id is verified all the same. NULL: none. */
    const int *link_from;
    /* Called about every MiB of compressed input with the bytes read so far. */
    void (*progress)(void *ud, uint64_t in_bytes);
    void *progress_ud;
} oci_unpack_opts;

typedef struct oci_unpack_result {
    oci_codec codec;
    mar_digest diff_id;
    uint64_t size;    /* uncompressed bytes */
    uint64_t entries; /* tar entries */
    uint64_t files;
    uint64_t bytes; /* file data written */
    size_t dropped; /* entries or xattrs dropped (devices rootless, trusted.*, sockets) */
    size_t whiteouts, opaques;
    mar_strv implicit_dirs;  /* LAYER: directories made only as parents */
    mar_strv deferred_links; /* LAYER: pairs (path, target) whose target is not in the layer */
} oci_unpack_result;

/* Unpacks the layer read from blobfd into rootfd. On failure the tree is partial: the caller
 * removes it. Errors: MAR_EINTEGRITY (bad or hostile layer, DiffID mismatch), MAR_EUNSUPPORTED
 * (codec), MAR_EIO (disk full, permissions). */
MAR_MUST_USE int oci_unpack(int blobfd, int rootfd, const oci_unpack_opts *o,
                            oci_unpack_result *ret, mar_err **err);
void oci_unpack_result_release(oci_unpack_result *r);
/* Removes name (recursively for directories) in dirfd without following symlinks. */
MAR_MUST_USE int oci_remove_at(int dirfd, const char *name, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Layer directories merged as overlayfs merges its lower directories (lview.c), and settling a
 * layer unpacked alone against the layers under it (settle.c). Both need CAP_SYS_ADMIN to see
 * trusted.overlay.opaque, as overlayfs itself does. */

#define OCI_LVIEW_MAX_LAYERS 128 /* more than Docker's 127-layer limit */

typedef struct oci_lview {
    const int *fds; /* layer directories, top first (borrowed) */
    size_t n;
} oci_lview;

/* True when the root of the layer directory is opaque: the layer had ".wh..wh..opq" at its root
 * and hides every layer under it. overlayfs does not read the mark on a lower layer's root, so
 * an overlay mount leaves those layers out. */
bool oci_lview_opaque_root(int layerfd);

/* Resolves path in the merged view, following symlinks (clamped to the root, at most
 * MAR_SYMLINK_HOPS) and the last component when follow_last. Missing components are kept literally
 * and *ret_exists says whether the whole path exists. Returns: the resolved path without a leading
 * slash ("" for the root), caller-owned. Errors: MAR_EINTEGRITY (symlink loop), MAR_EIO. */
MAR_MUST_USE int oci_lview_resolve(const oci_lview *v, const char *path, bool follow_last,
                                   char **ret_path, bool *ret_exists, mar_err **err);
/* The visible entry at a resolved path: the layer that provides it, its lstat and, when
 * ret_parent_fd is set, an fd of its directory in that layer (caller closes). Errors:
 * MAR_ENOTFOUND (absent or whited out), MAR_EIO. */
MAR_MUST_USE int oci_lview_stat(const oci_lview *v, const char *resolved, size_t *ret_layer,
                                struct stat *ret_st, int *ret_parent_fd, mar_err **err);
/* Reads a regular file through the view (symlinks followed in the view), at most cap bytes;
 * never blocks on a FIFO. Errors: MAR_ENOTFOUND, MAR_EIO, MAR_EINTEGRITY (over the cap). */
MAR_MUST_USE int oci_lview_read(const oci_lview *v, const char *path, size_t cap, mar_buf *ret,
                                mar_err **err);

typedef struct oci_settle_stats {
    size_t moved;        /* entries moved to where the lower layers resolve their directory */
    size_t shadowed;     /* entries dropped because the layer also wrote the destination */
    size_t dirs_matched; /* implied directories given the lower directory's metadata */
    size_t copied_up;    /* lower files copied into the layer for a hard link */
    size_t links;
} oci_settle_stats;

/* Settles the layer directory layerfd (unpacked with OCI_UNPACK_LAYER, result r) against the
 * settled layers under it, so that an overlay mount of them equals applying the layers in
 * order. Errors: MAR_EINTEGRITY (a hard link to nothing, symlink loops), MAR_EIO. */
MAR_MUST_USE int oci_layer_settle(int layerfd, const oci_lview *lowers, const oci_unpack_result *r,
                                  oci_settle_stats *ret_stats, mar_err **err);

/* ---------------------------------------------------------------------------------------------
 * Deep scan: what the layers really contain. */

typedef struct oci_scan_node {
    oci_entry_kind kind;
    char *path;
    char *link;
    unsigned mode;
    oci_elf_info *elf; /* regular files that are ELF */
    char *shebang;     /* regular files starting with "#!": the interpreter */
} oci_scan_node;

typedef struct oci_scan_layer {
    oci_scan_node *v; /* in tar order, whiteouts included */
    size_t n, alloc;
    oci_codec codec;
    mar_digest diff_id;
    uint64_t size; /* uncompressed */
} oci_scan_layer;

/* Reads a whole layer from fd, keeping each entry and the first bytes' verdict of each regular
 * file. Errors as oci_layer_open/next. Returns: new layer scan. */
MAR_MUST_USE int oci_scan_layer_read(int fd, const oci_layer_limits *lim, oci_scan_layer **ret,
                                     mar_err **err);
oci_scan_layer *oci_scan_layer_free(oci_scan_layer *l);

/* The final filesystem: path -> node (borrowed from the layers, which must outlive it). */
typedef struct oci_scan_view {
    mar_map nodes;
} oci_scan_view;

/* Merges layers bottom to top with OCI whiteout semantics. */
void oci_scan_view_build(oci_scan_layer *const *layers, size_t n, oci_scan_view *ret);
void oci_scan_view_release(oci_scan_view *v);
/* Resolves an absolute path inside the image through its symlinks (at most MAR_SYMLINK_HOPS);
 * resolved gets "/final/path". NULL when it does not exist or loops. */
const oci_scan_node *oci_scan_resolve(const oci_scan_view *v, const char *path, char *resolved,
                                      size_t n);

typedef struct oci_elf_summary {
    size_t n_elf;
    struct {
        char arch[16];
        size_t n;
    } counts[16];
    size_t n_counts;
    char majority_arch[16];
    size_t n_foreign; /* ELF files of another architecture than declared */
    struct {
        char path[256];
        char arch[16];
    } examples[10];
    size_t n_examples;
    char verdict[16]; /* "consistent", "mislabeled", "mixed", "no-elf" */
    bool has_entrypoint;
    bool ep_found;
    char ep_path[256];     /* as configured (Entrypoint[0] or Cmd[0]) */
    char ep_script[256];   /* the script, when the entrypoint is one */
    char ep_resolved[256]; /* the file that runs, symlinks followed */
    char ep_arch[16];
    int ep_isa_level;
    char ep_interp[128];
    bool ep_interp_missing;
    int max_isa_level; /* highest x86-64 level any binary needs */
    char isa_example[256];
    size_t n_isa_v3plus;
    size_t n_missing_loader; /* dynamic binaries whose loader the image lacks */
    char loader_example[256];
    char loader_missing[128];
} oci_elf_summary;

/* Counts the ELF files of the final filesystem against the declared architecture (normalized
 * OCI arch), resolves the entrypoint and gives a verdict. */
void oci_elf_summarize(const oci_scan_view *v, const oci_config *cfg, const char *declared,
                       oci_elf_summary *ret);

/* ---------------------------------------------------------------------------------------------
 * Choosing an index entry (docs/internals/platforms.md §7, containerd images.Manifest). */

typedef struct oci_selection {
    /* Indexes into idx->manifests of the candidates (manifests and nested indexes the matcher
     * accepts or that carry no platform), best first. */
    size_t *order;
    size_t n;
    size_t n_attestations;
} oci_selection;

/* Filters and stable-sorts the entries of an index with the matcher; entries without a platform
 * sort last. Attestations, ignored and unknown entries and entries whose platform could not be
 * read are never candidates. n == 0 means no match. */
void oci_index_select(const oci_manifest *idx, const oci_matcher *m, oci_selection *ret);
void oci_selection_release(oci_selection *s);

/* Nested indexes (docs/internals/platforms.md §7): how many levels below the top-level index mar
 * descends. An index entry deeper than this is listed, never read. */
#define OCI_INDEX_DEPTH_MAX 4

/* Whether the nested index d, listed by the index at the end of `path` (the digests from the
 * top-level document down, n_path of them), may be read: 0, or -MAR_EUNSUPPORTED when it would be
 * deeper than OCI_INDEX_DEPTH_MAX, -MAR_EINTEGRITY when its digest is already on the path (a
 * loop), with err naming the entry. */
MAR_MUST_USE int oci_index_nest_check(const oci_descriptor *d, const mar_digest *path,
                                      size_t n_path, mar_err **err);

/* Supplies the nested index an entry points to: 0 and *ret (borrowed, alive while the pick is
 * used), or a negative MAR_E* code with err. */
typedef int (*oci_index_lookup_fn)(const oci_descriptor *d, void *ud, const oci_manifest **ret,
                                   mar_err **err);
/* May the manifest entry d be taken? Returning false passes over it. */
typedef bool (*oci_index_accept_fn)(const oci_descriptor *d, void *ud);

typedef struct oci_pick {
    const oci_descriptor *desc; /* the chosen manifest entry, borrowed from the index listing it */
    size_t depth;               /* nested indexes descended to reach it */
    mar_digest via[OCI_INDEX_DEPTH_MAX]; /* their digests, outermost first */
} oci_pick;

/* Chooses a manifest through an index and its nested indexes as containerd's images.Manifest
 * does (docs/internals/platforms.md §7): at every index the first candidate of oci_index_select;
 * a nested index is read with lookup and chosen from in turn. With accept NULL only the first
 * candidate of each index counts, as in containerd: when it leads nowhere there is no match.
 * With accept, a refused manifest or a nested index that yields nothing passes to the next
 * candidate (the store's "best entry it holds"). A chosen entry without a platform is returned
 * as it is: the caller reads its config and, without accept, treats a mismatch as no match.
 * top_digest is the top-level document's digest (loop detection). Returns 0 and *ret, 1 when
 * nothing matches, or a negative code from lookup with err. */
MAR_MUST_USE int oci_index_pick(const oci_manifest *top, const mar_digest *top_digest,
                                const oci_matcher *m, oci_index_lookup_fn lookup,
                                oci_index_accept_fn accept, void *ud, oci_pick *ret, mar_err **err);

#endif
