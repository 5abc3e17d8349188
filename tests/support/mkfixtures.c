/* Builds the test bed's sample images from Debian's static busybox binaries and pushes them to a
 * registry with a small distribution-spec pusher of its own (POST + PUT uploads, manifest PUTs).
 * Writes a JSON summary of what it pushed, so tests cross-check mar against facts computed in
 * the same run rather than hard-coded values.
 *
 * usage: mar-fixtures BUSYBOX_DIR HOST:PORT SUMMARY.json
 *   BUSYBOX_DIR/<debian-arch>/busybox for amd64 arm64 armhf armel i386 ppc64el s390x mips64el */
#include "tarw.h"
#include "tbuf.h"

#include <fcntl.h>
#include <string.h>

#include <curl/curl.h>

#define MT_OCI_LAYER_GZ    "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD  "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_DOCKER_LAYER    "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MTIME              1700000000

static const char *registry;
static const char *bbdir;
static json_t *summary;

typedef struct blob {
    const char *media_type;
    mar_buf data;
    mar_digest digest;
} blob;

static void blob_set(blob *b, const char *mt, mar_buf *data)
{
    b->media_type = mt;
    b->data = *data;
    *data = (mar_buf)MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_digest_of(MAR_DIGEST_SHA256, b->data.data, b->data.len, &b->digest);
}

static void die(const char *fmt, ...) MAR_PRINTF(1, 2) __attribute__((noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mar-fixtures: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- pushing ---------------------------------------------------------------------------- */

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
    /* Less than was given fails the transfer (CURLE_WRITE_ERROR). */
    return mar_buf_append(ud, p, s * n) < 0 ? 0 : s * n;
}

static size_t hsink(char *p, size_t s, size_t n, void *ud)
{
    char **loc = ud;
    size_t len = s * n;
    if (len > 9 && strncasecmp(p, "location:", 9) == 0) {
        const char *v = p + 9;
        while (*v == ' ') {
            v++;
        }
        size_t vl = len - (size_t)(v - p);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) {
            vl--;
        }
        free(*loc);
        *loc = mar_xstrndup(v, vl);
    }
    return len;
}

static long http(const char *method, const char *url, const char *ctype, const void *body,
                 size_t len, char **location)
{
    CURL *h = curl_easy_init();
    mar_buf resp = MAR_BUF_INIT(1 << 20);
    struct curl_slist *hdr = NULL;
    if (ctype) {
        _cleanup_free_ char *l = mar_xasprintf("Content-Type: %s", ctype);
        hdr = curl_slist_append(hdr, l);
    }
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    if (location) {
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, hsink);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, location);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (body || strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(h);
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    if (rc != CURLE_OK) {
        die("%s %s: %s", method, url, curl_easy_strerror(rc));
    }
    if (st >= 400 && strcmp(method, "HEAD") != 0) {
        fprintf(stderr, "mar-fixtures: %s %s: %ld %s\n", method, url, st, resp.data);
    }
    mar_buf_release(&resp);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return st;
}

static void push_blob(const char *repo, const blob *b)
{
    _cleanup_free_ char *head =
            mar_xasprintf("http://%s/v2/%s/blobs/%s", registry, repo, b->digest.str);
    if (http("HEAD", head, NULL, NULL, 0, NULL) == 200) {
        return;
    }
    _cleanup_free_ char *start = mar_xasprintf("http://%s/v2/%s/blobs/uploads/", registry, repo);
    _cleanup_free_ char *loc = NULL;
    if (http("POST", start, NULL, NULL, 0, &loc) != 202 || !loc) {
        die("cannot start an upload to %s", repo);
    }
    _cleanup_free_ char *put = mar_str_startswith(loc, "http")
                                       ? mar_xasprintf("%s%sdigest=%s", loc,
                                                       strchr(loc, '?') ? "&" : "?", b->digest.str)
                                       : mar_xasprintf("http://%s%s%sdigest=%s", registry, loc,
                                                       strchr(loc, '?') ? "&" : "?", b->digest.str);
    if (http("PUT", put, "application/octet-stream", b->data.data, b->data.len, NULL) != 201) {
        die("cannot upload %s to %s", b->digest.str, repo);
    }
}

static void push_manifest(const char *repo, const char *ref, const blob *m)
{
    _cleanup_free_ char *url = mar_xasprintf("http://%s/v2/%s/manifests/%s", registry, repo, ref);
    if (http("PUT", url, m->media_type, m->data.data, m->data.len, NULL) != 201) {
        die("cannot push manifest %s to %s:%s", m->digest.str, repo, ref);
    }
}

/* ---- content ------------------------------------------------------------------------------ */

static mar_buf read_busybox(const char *debarch)
{
    _cleanup_free_ char *path = mar_xasprintf("%s/%s/busybox", bbdir, debarch);
    mar_buf b = MAR_BUF_INIT(64u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, path, 64u << 20, &b, &e) < 0) {
        die("%s", e->msg);
    }
    return b;
}

static const char *const applets[] = {"sh",    "uname", "echo", "cat",   "true", "false",
                                      "sleep", "env",   "ls",   "id",    "pwd",  "printf",
                                      "test",  "kill",  "wc",   "mkdir", "rm",   "touch"};

static void add_dir(mar_buf *t, const char *name, unsigned mode)
{
    tarw_add(t, &(tarw_entry){.name = name, .type = '5', .mode = mode, .mtime = MTIME});
}

static void add_file(mar_buf *t, const char *name, unsigned mode, const void *data, size_t n)
{
    tarw_add(t, &(tarw_entry){.name = name,
                              .type = '0',
                              .mode = mode,
                              .mtime = MTIME,
                              .data = data,
                              .size = n});
}

/* The root filesystem layer: busybox with its applet links, /etc/passwd and /etc/group. */
static void rootfs_tar(const mar_buf *bb, mar_buf *t)
{
    static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                                 "app:x:1000:1000:app:/home/app:/bin/sh\n"
                                 "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    static const char group[] = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n";
    add_dir(t, "bin/", 0755);
    add_file(t, "bin/busybox", 0755, bb->data, bb->len);
    for (size_t i = 0; i < MAR_ARRAY_SIZE(applets); i++) {
        _cleanup_free_ char *n = mar_xasprintf("bin/%s", applets[i]);
        tarw_add(t, &(tarw_entry){.name = n,
                                  .type = '2',
                                  .mode = 0777,
                                  .mtime = MTIME,
                                  .linkname = "busybox"});
    }
    add_dir(t, "etc/", 0755);
    add_file(t, "etc/passwd", 0644, passwd, sizeof(passwd) - 1);
    add_file(t, "etc/group", 0644, group, sizeof(group) - 1);
    add_dir(t, "home/", 0755);
    tarw_add(t, &(tarw_entry){.name = "home/app/",
                              .type = '5',
                              .mode = 0755,
                              .uid = 1000,
                              .gid = 1000,
                              .mtime = MTIME});
    add_dir(t, "root/", 0700);
    add_dir(t, "tmp/", 01777);
}

typedef enum { C_GZIP, C_ZSTD } codec;

/* Compresses a finished tar into a layer blob; diff_id receives the uncompressed digest. */
static void make_layer(mar_buf *tar, codec c, const char *mt, blob *ret, mar_digest *diff_id)
{
    tarw_finish(tar);
    mar_digest_of(MAR_DIGEST_SHA256, tar->data, tar->len, diff_id);
    mar_buf z = MAR_BUF_INIT(MAR_BUF_NOCAP);
    if (c == C_GZIP) {
        tarw_gzip(tar, &z);
    } else {
        tarw_zstd(tar, &z);
    }
    blob_set(ret, mt, &z);
    mar_buf_release(tar);
}

static void json_blob(json_t *doc, const char *mt, blob *ret)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_puts(&b, s));
    free(s);
    blob_set(ret, mt, &b);
}

/* Platform fields beyond architecture and variant, for the shapes fixtures. */
typedef struct platform_extra {
    const char *os; /* NULL: linux; "-": none */
    const char *os_version;
    const char *const *features; /* NULL-terminated */
} platform_extra;

static void set_extra(json_t *p, const platform_extra *x)
{
    if (!x || !x->os || strcmp(x->os, "-") != 0) {
        json_object_set_new(p, "os", json_string(x && x->os ? x->os : "linux"));
    }
    if (x && x->os_version) {
        json_object_set_new(p, "os.version", json_string(x->os_version));
    }
    if (x && x->features) {
        json_t *f = json_array();
        for (size_t i = 0; x->features[i]; i++) {
            json_array_append_new(f, json_string(x->features[i]));
        }
        json_object_set_new(p, "os.features", f);
    }
}

static const platform_extra *config_extra;

static void make_config(const char *arch, const char *variant, const mar_digest *diff_ids, size_t n,
                        bool docker, const char *entrypoint, blob *ret)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(ids, json_string(diff_ids[i].str));
    }
    json_t *cfg = json_pack("{s:s, s:s}", "created", "2023-11-14T22:13:20Z", "architecture", arch);
    if (variant) {
        json_object_set_new(cfg, "variant", json_string(variant));
    }
    set_extra(cfg, config_extra);
    json_t *c = json_pack("{s:[s], s:[s], s:s}", "Env",
                          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "Cmd", "/bin/sh", "WorkingDir", "/");
    if (entrypoint) {
        json_object_set_new(c, "Entrypoint", json_pack("[s]", entrypoint));
    }
    json_object_set_new(cfg, "config", c);
    json_object_set_new(cfg, "rootfs", json_pack("{s:s, s:o}", "type", "layers", "diff_ids", ids));
    json_object_set_new(cfg, "history",
                        json_pack("[{s:s, s:s}]", "created", "2023-11-14T22:13:20Z", "created_by",
                                  "mar test bed: busybox-static from Debian"));
    json_blob(cfg, docker ? MT_DOCKER_CONFIG : MT_OCI_CONFIG, ret);
    json_decref(cfg);
}

static json_t *descriptor(const blob *b)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", b->media_type, "digest", b->digest.str, "size",
                     (json_int_t)b->data.len);
}

static void make_manifest(const blob *config, const blob *layers, size_t n, bool docker, blob *ret)
{
    json_t *ls = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(ls, descriptor(&layers[i]));
    }
    const char *mt = docker ? MT_DOCKER_MANIFEST : MT_OCI_MANIFEST;
    json_t *m = json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType", mt, "config",
                          descriptor(config), "layers", ls);
    json_blob(m, mt, ret);
    json_decref(m);
}

typedef struct platform_spec {
    const char *debarch;  /* busybox binary to use */
    const char *arch;     /* label in config and index */
    const char *variant;  /* label variant or NULL */
    const char *cfg_arch; /* config architecture when it must differ from the label */
    platform_extra extra; /* OS, os.version, os.features of config and label */
} platform_spec;

typedef struct built {
    blob manifest;
    blob config;
    blob layer;
    mar_digest diff_id;
    platform_spec spec;
} built;

static void built_release(built *b)
{
    mar_buf_release(&b->manifest.data);
    mar_buf_release(&b->config.data);
    mar_buf_release(&b->layer.data);
}

static void build_platform(const char *repo, const platform_spec *ps, codec c, bool docker,
                           built *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->spec = *ps;
    mar_buf bb = read_busybox(ps->debarch);
    mar_buf tar = MAR_BUF_INIT(MAR_BUF_NOCAP);
    rootfs_tar(&bb, &tar);
    mar_buf_release(&bb);
    make_layer(&tar, c,
               docker ? MT_DOCKER_LAYER : (c == C_ZSTD ? MT_OCI_LAYER_ZSTD : MT_OCI_LAYER_GZ),
               &ret->layer, &ret->diff_id);
    config_extra = &ps->extra;
    make_config(ps->cfg_arch ? ps->cfg_arch : ps->arch, ps->cfg_arch ? NULL : ps->variant,
                &ret->diff_id, 1, docker, NULL, &ret->config);
    config_extra = NULL;
    make_manifest(&ret->config, &ret->layer, 1, docker, &ret->manifest);
    push_blob(repo, &ret->layer);
    push_blob(repo, &ret->config);
    push_manifest(repo, ret->manifest.digest.str, &ret->manifest);
}

/* A buildx-style attestation manifest describing `subject` (docs/internals/platforms.md §9). */
static void build_attestation(const char *repo, const blob *subject, blob *ret)
{
    char stmt[512];
    snprintf(stmt, sizeof(stmt),
             "{\"_type\":\"https://in-toto.io/Statement/v0.1\",\"predicateType\":"
             "\"https://slsa.dev/provenance/v0.2\",\"subject\":[{\"name\":\"mar-test\","
             "\"digest\":{\"sha256\":\"%s\"}}],\"predicate\":{}}",
             mar_digest_hex(&subject->digest));
    mar_buf sb = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_puts(&sb, stmt));
    blob layer;
    blob_set(&layer, "application/vnd.in-toto+json", &sb);
    mar_buf cb = MAR_BUF_INIT(MAR_BUF_NOCAP);
    T_BUF(mar_buf_puts(&cb, "{}"));
    blob config;
    blob_set(&config, "application/vnd.docker.attestation.config.v1+json", &cb);
    json_t *ld = descriptor(&layer);
    json_object_set_new(
            ld, "annotations",
            json_pack("{s:s}", "in-toto.io/predicate-type", "https://slsa.dev/provenance/v0.2"));
    json_t *m = json_pack("{s:i, s:s, s:o, s:[o]}", "schemaVersion", 2, "mediaType",
                          MT_OCI_MANIFEST, "config", descriptor(&config), "layers", ld);
    json_blob(m, MT_OCI_MANIFEST, ret);
    json_decref(m);
    push_blob(repo, &layer);
    push_blob(repo, &config);
    push_manifest(repo, ret->digest.str, ret);
    mar_buf_release(&layer.data);
    mar_buf_release(&config.data);
}

static json_t *index_entry(const built *b)
{
    json_t *d = descriptor(&b->manifest);
    json_t *p = json_pack("{s:s}", "architecture", b->spec.arch);
    set_extra(p, &b->spec.extra);
    if (b->spec.variant) {
        json_object_set_new(p, "variant", json_string(b->spec.variant));
    }
    json_object_set_new(d, "platform", p);
    return d;
}

static void record(const char *name, const char *repo, const char *tag, const blob *top,
                   const built *parts, size_t n)
{
    json_t *plats = json_array();
    for (size_t i = 0; i < n; i++) {
        char plat[96];
        const platform_extra *x = &parts[i].spec.extra;
        const char *os = !x->os ? "linux" : strcmp(x->os, "-") == 0 ? "unknown" : x->os;
        snprintf(plat, sizeof(plat), "%s/%s%s%s", os, parts[i].spec.arch,
                 parts[i].spec.variant ? "/" : "",
                 parts[i].spec.variant ? parts[i].spec.variant : "");
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "platform", plat, "digest",
                              parts[i].manifest.digest.str, "config", parts[i].config.digest.str,
                              "diffId", parts[i].diff_id.str, "debarch", parts[i].spec.debarch,
                              "configArch",
                              parts[i].spec.cfg_arch ? parts[i].spec.cfg_arch : parts[i].spec.arch);
        if (x->os_version) {
            json_object_set_new(o, "osVersion", json_string(x->os_version));
        }
        if (x->features) {
            json_t *f = json_array();
            for (size_t k = 0; x->features[k]; k++) {
                json_array_append_new(f, json_string(x->features[k]));
            }
            json_object_set_new(o, "features", f);
        }
        json_array_append_new(plats, o);
    }
    _cleanup_free_ char *ref = mar_xasprintf("%s/%s:%s", registry, repo, tag);
    json_object_set_new(summary, name,
                        json_pack("{s:s, s:s, s:s, s:o}", "ref", ref, "digest", top->digest.str,
                                  "mediaType", top->media_type, "platforms", plats));
}

/* The index entry of a buildx attestation manifest describing subject. */
static json_t *attestation_entry(const blob *att, const blob *subject)
{
    json_t *d = descriptor(att);
    json_object_set_new(d, "annotations",
                        json_pack("{s:s, s:s}", "vnd.docker.reference.digest", subject->digest.str,
                                  "vnd.docker.reference.type", "attestation-manifest"));
    json_object_set_new(d, "platform",
                        json_pack("{s:s, s:s}", "architecture", "unknown", "os", "unknown"));
    return d;
}

static void push_index(const char *name, const char *repo, const char *tag, built *parts, size_t n,
                       size_t attestations, bool docker)
{
    json_t *ms = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(ms, index_entry(&parts[i]));
    }
    for (size_t i = 0; i < attestations && i < n; i++) {
        blob att;
        build_attestation(repo, &parts[i].manifest, &att);
        json_array_append_new(ms, attestation_entry(&att, &parts[i].manifest));
        mar_buf_release(&att.data);
    }
    const char *mt = docker ? MT_DOCKER_LIST : MT_OCI_INDEX;
    json_t *idx =
            json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", mt, "manifests", ms);
    blob top;
    json_blob(idx, mt, &top);
    json_decref(idx);
    push_manifest(repo, tag, &top);
    record(name, repo, tag, &top, parts, n);
    mar_buf_release(&top.data);
}

static const platform_spec all8[] = {
        {"amd64", "amd64", NULL, NULL}, {"arm64", "arm64", "v8", NULL},
        {"armhf", "arm", "v7", NULL},   {"armel", "arm", "v5", NULL},
        {"i386", "386", NULL, NULL},    {"ppc64el", "ppc64le", NULL, NULL},
        {"s390x", "s390x", NULL, NULL}, {"mips64el", "mips64le", NULL, NULL},
};

static void fixture_multi(void)
{
    built b[8];
    for (size_t i = 0; i < 8; i++) {
        build_platform("mar/multi", &all8[i], C_GZIP, false, &b[i]);
    }
    push_index("multi", "mar/multi", "latest", b, 8, 2, false);
    /* The same 8 images one repository each, as per-architecture CI jobs push them: the first
     * two as an index of the image and its attestation (buildx's default), the others as a
     * single manifest. mar index create of the 8 gives mar/multi's entries back. */
    for (size_t i = 0; i < 8; i++) {
        char repo[64], name[64];
        snprintf(repo, sizeof(repo), "mar/arch-%s", all8[i].debarch);
        snprintf(name, sizeof(name), "arch-%s", all8[i].debarch);
        push_blob(repo, &b[i].layer);
        push_blob(repo, &b[i].config);
        push_manifest(repo, b[i].manifest.digest.str, &b[i].manifest);
        if (i >= 2) {
            push_manifest(repo, "latest", &b[i].manifest);
            record(name, repo, "latest", &b[i].manifest, &b[i], 1);
            continue;
        }
        blob att;
        build_attestation(repo, &b[i].manifest, &att);
        json_t *idx =
                json_pack("{s:i, s:s, s:[o, o]}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
                          "manifests", index_entry(&b[i]), attestation_entry(&att, &b[i].manifest));
        blob top;
        json_blob(idx, MT_OCI_INDEX, &top);
        json_decref(idx);
        push_manifest(repo, "latest", &top);
        record(name, repo, "latest", &top, &b[i], 1);
        mar_buf_release(&top.data);
        mar_buf_release(&att.data);
    }
    for (size_t i = 0; i < 8; i++) {
        built_release(&b[i]);
    }
}

static void fixture_dockerlist(void)
{
    built b[2];
    build_platform("mar/dockerlist", &all8[0], C_GZIP, true, &b[0]);
    build_platform("mar/dockerlist", &all8[1], C_GZIP, true, &b[1]);
    push_index("dockerlist", "mar/dockerlist", "latest", b, 2, 0, true);
    built_release(&b[0]);
    built_release(&b[1]);
}

static void fixture_single(void)
{
    built b;
    build_platform("mar/single", &all8[0], C_GZIP, true, &b);
    push_manifest("mar/single", "latest", &b.manifest);
    record("single", "mar/single", "latest", &b.manifest, &b, 1);
    built_release(&b);
}

static void fixture_zstd(void)
{
    built b[2];
    build_platform("mar/zstd", &all8[0], C_ZSTD, false, &b[0]);
    build_platform("mar/zstd", &all8[1], C_ZSTD, false, &b[1]);
    push_index("zstd", "mar/zstd", "latest", b, 2, 0, false);
    built_release(&b[0]);
    built_release(&b[1]);
}

static void fixture_amd64only(void)
{
    built b;
    build_platform("mar/amd64only", &all8[0], C_GZIP, false, &b);
    push_index("amd64only", "mar/amd64only", "latest", &b, 1, 1, false);
    built_release(&b);
}

/* Index, config and tag say arm64; the binaries are x86-64. */
static void fixture_mislabeled(void)
{
    built b;
    platform_spec ps = {"amd64", "arm64", "v8", NULL};
    build_platform("mar/mislabeled", &ps, C_GZIP, false, &b);
    push_index("mislabeled", "mar/mislabeled", "arm64", &b, 1, 0, false);
    built_release(&b);
}

/* The arm64 entry (arm64 binaries) has a config that says amd64. */
static void fixture_confmismatch(void)
{
    built b[2];
    platform_spec arm = {"arm64", "arm64", "v8", "amd64"};
    build_platform("mar/confmismatch", &all8[0], C_GZIP, false, &b[0]);
    build_platform("mar/confmismatch", &arm, C_GZIP, false, &b[1]);
    push_index("confmismatch", "mar/confmismatch", "latest", b, 2, 0, false);
    built_release(&b[0]);
    built_release(&b[1]);
}

/* Three layers: a base, one whiting out a file and making a directory opaque, one adding more. */
static void fixture_whiteout(void)
{
    const char *repo = "mar/whiteout";
    mar_buf bb = read_busybox("amd64");
    blob layers[3];
    mar_digest ids[3];
    mar_buf t = MAR_BUF_INIT(MAR_BUF_NOCAP);
    rootfs_tar(&bb, &t);
    mar_buf_release(&bb);
    add_dir(&t, "data/", 0755);
    add_file(&t, "data/keep", 0644, "keep\n", 5);
    add_file(&t, "data/gone", 0644, "gone\n", 5);
    add_dir(&t, "data/opaque/", 0755);
    add_file(&t, "data/opaque/old", 0644, "old\n", 4);
    /* A foreign binary that the next layer whites out: --deep must not count it. */
    mar_buf foreign = read_busybox("arm64");
    add_dir(&t, "usr/", 0755);
    add_dir(&t, "usr/bin/", 0755);
    add_file(&t, "usr/bin/foreign", 0755, foreign.data, foreign.len);
    mar_buf_release(&foreign);
    make_layer(&t, C_GZIP, MT_OCI_LAYER_GZ, &layers[0], &ids[0]);

    t = (mar_buf)MAR_BUF_INIT(MAR_BUF_NOCAP);
    add_dir(&t, "data/", 0755);
    add_file(&t, "data/.wh.gone", 0644, "", 0);
    add_dir(&t, "data/opaque/", 0755);
    add_file(&t, "data/opaque/.wh..wh..opq", 0644, "", 0);
    add_file(&t, "data/opaque/new", 0644, "new\n", 4);
    add_dir(&t, "usr/bin/", 0755);
    add_file(&t, "usr/bin/.wh.foreign", 0644, "", 0);
    make_layer(&t, C_GZIP, MT_OCI_LAYER_GZ, &layers[1], &ids[1]);

    t = (mar_buf)MAR_BUF_INIT(MAR_BUF_NOCAP);
    add_dir(&t, "data/", 0755);
    add_file(&t, "data/added", 0644, "added\n", 6);
    make_layer(&t, C_GZIP, MT_OCI_LAYER_GZ, &layers[2], &ids[2]);

    built b = {.spec = all8[0]};
    make_config("amd64", NULL, ids, 3, false, NULL, &b.config);
    make_manifest(&b.config, layers, 3, false, &b.manifest);
    for (size_t i = 0; i < 3; i++) {
        push_blob(repo, &layers[i]);
        mar_buf_release(&layers[i].data);
    }
    push_blob(repo, &b.config);
    push_manifest(repo, "latest", &b.manifest);
    record("whiteout", repo, "latest", &b.manifest, &b, 1);
    built_release(&b);
}

/* One layer: the amd64 root filesystem plus extra files; config with an optional entrypoint. */
static void single_layer_image(const char *name, const char *repo, const char *extra_path,
                               const mar_buf *extra, const char *entrypoint, bool as_index)
{
    mar_buf bb = read_busybox("amd64");
    mar_buf t = MAR_BUF_INIT(MAR_BUF_NOCAP);
    rootfs_tar(&bb, &t);
    mar_buf_release(&bb);
    add_dir(&t, "usr/", 0755);
    add_dir(&t, "usr/local/", 0755);
    add_dir(&t, "usr/local/bin/", 0755);
    add_dir(&t, "usr/bin/", 0755);
    add_file(&t, extra_path, 0755, extra->data, extra->len);
    built b = {.spec = all8[0]};
    make_layer(&t, C_GZIP, MT_OCI_LAYER_GZ, &b.layer, &b.diff_id);
    make_config("amd64", NULL, &b.diff_id, 1, false, entrypoint, &b.config);
    make_manifest(&b.config, &b.layer, 1, false, &b.manifest);
    push_blob(repo, &b.layer);
    push_blob(repo, &b.config);
    push_manifest(repo, b.manifest.digest.str, &b.manifest);
    if (as_index) {
        push_index(name, repo, "latest", &b, 1, 0, false);
    } else {
        push_manifest(repo, "latest", &b.manifest);
        record(name, repo, "latest", &b.manifest, &b, 1);
    }
    built_release(&b);
}

/* amd64 binaries plus one arm64 helper: a mixed image. */
static void fixture_mixed(void)
{
    mar_buf helper = read_busybox("arm64");
    single_layer_image("mixed", "mar/mixed", "usr/local/bin/helper", &helper, NULL, true);
    mar_buf_release(&helper);
}

/* The entrypoint is a dynamic glibc binary (the test machine's own /bin/ls) and the image has no
 * loader: it can only fail with "failed to open elf" or "no such file". */
static void fixture_noloader(void)
{
    mar_buf ls = MAR_BUF_INIT(64u << 20);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, "/bin/ls", 64u << 20, &ls, &e) < 0) {
        die("%s", e->msg);
    }
    single_layer_image("noloader", "mar/noloader", "usr/bin/dynls", &ls, "/usr/bin/dynls", false);
    mar_buf_release(&ls);
}

/* Pushes a multi-layer amd64 image built from finished layer tars. */
static void layered_image(const char *name, const char *repo, mar_buf *tars, size_t n)
{
    blob *layers = mar_xcalloc(n, sizeof(*layers));
    mar_digest *ids = mar_xcalloc(n, sizeof(*ids));
    for (size_t i = 0; i < n; i++) {
        make_layer(&tars[i], C_GZIP, MT_OCI_LAYER_GZ, &layers[i], &ids[i]);
    }
    built b = {.spec = all8[0]};
    make_config("amd64", NULL, ids, n, false, NULL, &b.config);
    make_manifest(&b.config, layers, n, false, &b.manifest);
    for (size_t i = 0; i < n; i++) {
        push_blob(repo, &layers[i]);
        mar_buf_release(&layers[i].data);
    }
    push_blob(repo, &b.config);
    push_manifest(repo, "latest", &b.manifest);
    record(name, repo, "latest", &b.manifest, &b, 1);
    built_release(&b);
    free(layers);
    free(ids);
}

/* Four images on one base layer (the same bytes, so the same digest), each with its own top
 * layer: concurrent pulls into one store must fetch the base once. */
static void fixture_shared(void)
{
    mar_buf bb = read_busybox("amd64");
    for (int i = 1; i <= 4; i++) {
        mar_buf t[2] = {MAR_BUF_INIT(MAR_BUF_NOCAP), MAR_BUF_INIT(MAR_BUF_NOCAP)};
        rootfs_tar(&bb, &t[0]);
        char content[32];
        int cl = snprintf(content, sizeof(content), "shared image %d\n", i);
        add_dir(&t[1], "etc/", 0755);
        add_file(&t[1], "etc/shared-id", 0644, content, (size_t)cl);
        char name[16], repo[32];
        snprintf(name, sizeof(name), "shared%d", i);
        snprintf(repo, sizeof(repo), "mar/shared%d", i);
        layered_image(name, repo, t, 2);
    }
    mar_buf_release(&bb);
}

/* A 64 MiB layer that does not compress (xorshift bytes), for interrupted and resumed
 * downloads, over a small base. */
static void fixture_big(void)
{
    mar_buf bb = read_busybox("amd64");
    mar_buf t[2] = {MAR_BUF_INIT(MAR_BUF_NOCAP), MAR_BUF_INIT(MAR_BUF_NOCAP)};
    rootfs_tar(&bb, &t[0]);
    mar_buf_release(&bb);
    size_t n = 64u << 20;
    uint64_t *data = mar_xmalloc(n);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = x;
    }
    add_dir(&t[1], "data/", 0755);
    add_file(&t[1], "data/random", 0644, data, n);
    free(data);
    layered_image("big", "mar/big", t, 2);
}

/* One repository, several releases: 1.0 is amd64 only, 1.1 and 2.0 add arm64, 0.9 is older;
 * mar audit should point from 1.0 to 1.1, the closest newer tag of the same release line. And
 * an image published for arm/v7 only. */
static void fixture_app(void)
{
    built amd, arm;
    build_platform("mar/app", &all8[0], C_GZIP, false, &amd);
    build_platform("mar/app", &all8[1], C_GZIP, false, &arm);
    built both[2] = {amd, arm};
    push_index("app09", "mar/app", "0.9", &amd, 1, 0, false);
    push_index("app10", "mar/app", "1.0", &amd, 1, 0, false);
    push_index("app11", "mar/app", "1.1", both, 2, 0, false);
    push_index("app20", "mar/app", "2.0", both, 2, 0, false);
    built_release(&amd);
    built_release(&arm);

    built v7;
    build_platform("mar/armonly", &all8[2], C_GZIP, false, &v7);
    push_index("armonly", "mar/armonly", "1", &v7, 1, 0, false);
    built_release(&v7);
}

/* ---- index shapes (docs/internals/platforms.md §1, §4, §7, §9) ------------------------------ */

/* Pushes an index of the given entries under ref (a tag, or its digest when NULL). Takes ms. */
static void push_index_doc(const char *repo, const char *ref, json_t *ms, blob *ret)
{
    json_t *idx = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
                            "manifests", ms);
    json_blob(idx, MT_OCI_INDEX, ret);
    json_decref(idx);
    push_manifest(repo, ref ? ref : ret->digest.str, ret);
}

static json_t *nested_entry(const blob *b)
{
    return descriptor(b);
}

/* The image-spec's own shape (image-layout.md): a nested index without a platform beside a
 * labelled manifest; inside it, another nested index. */
static void fixture_nested(void)
{
    const char *repo = "mar/nested";
    built b[5];
    const platform_spec specs[5] = {all8[0], all8[1], all8[2], all8[6], all8[5]};
    for (size_t i = 0; i < 5; i++) {
        build_platform(repo, &specs[i], C_GZIP, false, &b[i]);
    }
    blob n2, n1, top;
    push_index_doc(repo, NULL, json_pack("[o]", index_entry(&b[3])), &n2);
    push_index_doc(repo, NULL,
                   json_pack("[o, o, o, o]", index_entry(&b[0]), index_entry(&b[1]),
                             index_entry(&b[2]), nested_entry(&n2)),
                   &n1);
    json_t *n1d = nested_entry(&n1);
    json_object_set_new(n1d, "annotations",
                        json_pack("{s:s}", "org.opencontainers.image.ref.name", "stable-release"));
    push_index_doc(repo, "latest", json_pack("[o, o]", n1d, index_entry(&b[4])), &top);
    record("nested", repo, "latest", &top, b, 5);
    json_object_set_new(json_object_get(summary, "nested"), "nested",
                        json_pack("[s, s]", n1.digest.str, n2.digest.str));
    mar_buf_release(&top.data);
    mar_buf_release(&n1.data);
    mar_buf_release(&n2.data);
    for (size_t i = 0; i < 5; i++) {
        built_release(&b[i]);
    }
}

/* Nested five levels deep: the fifth is more than mar reads. The fourth level's s390x entry is
 * read; the amd64 one below the fifth is not. */
static void fixture_deepnest(void)
{
    const char *repo = "mar/deepnest";
    built b[3];
    const platform_spec specs[3] = {all8[0], all8[1], all8[6]};
    for (size_t i = 0; i < 3; i++) {
        build_platform(repo, &specs[i], C_GZIP, false, &b[i]);
    }
    blob lvl[5];
    json_t *digests = json_array();
    push_index_doc(repo, NULL, json_pack("[o]", index_entry(&b[0])), &lvl[4]);
    push_index_doc(repo, NULL, json_pack("[o, o]", nested_entry(&lvl[4]), index_entry(&b[2])),
                   &lvl[3]);
    for (int k = 2; k >= 0; k--) {
        push_index_doc(repo, NULL, json_pack("[o]", nested_entry(&lvl[k + 1])), &lvl[k]);
    }
    for (size_t k = 0; k < 5; k++) {
        json_array_append_new(digests, json_string(lvl[k].digest.str));
    }
    blob top;
    push_index_doc(repo, "latest", json_pack("[o, o]", nested_entry(&lvl[0]), index_entry(&b[1])),
                   &top);
    record("deepnest", repo, "latest", &top, b, 3);
    json_object_set_new(json_object_get(summary, "deepnest"), "nested", digests);
    for (size_t k = 0; k < 5; k++) {
        mar_buf_release(&lvl[k].data);
    }
    mar_buf_release(&top.data);
    for (size_t i = 0; i < 3; i++) {
        built_release(&b[i]);
    }
}

/* Two entries without a platform: arm64 first, amd64 second. containerd takes the first and
 * stops when its config does not match. */
static void fixture_platformless(void)
{
    const char *repo = "mar/platformless";
    built b[2];
    build_platform(repo, &all8[1], C_GZIP, false, &b[0]);
    build_platform(repo, &all8[0], C_GZIP, false, &b[1]);
    blob top;
    push_index_doc(repo, "latest",
                   json_pack("[o, o]", descriptor(&b[0].manifest), descriptor(&b[1].manifest)),
                   &top);
    record("platformless", repo, "latest", &top, b, 2);
    mar_buf_release(&top.data);
    built_release(&b[0]);
    built_release(&b[1]);
}

/* Windows builds with revisions, and a linux entry. The layers are busybox: never run. */
static void fixture_windows(void)
{
    const char *repo = "mar/windows";
    static const char *const w32k[] = {"win32k", NULL};
    const platform_spec specs[4] = {
            {"amd64", "amd64", NULL, NULL, {"windows", "10.0.17763.1", w32k}},
            {"amd64", "amd64", NULL, NULL, {"windows", "10.0.17763.2", w32k}},
            {"amd64", "amd64", NULL, NULL, {"windows", "10.0.20348.1", NULL}},
            all8[0],
    };
    built b[4];
    for (size_t i = 0; i < 4; i++) {
        build_platform(repo, &specs[i], C_GZIP, false, &b[i]);
    }
    push_index("windows", repo, "latest", b, 4, 0, false);
    for (size_t i = 0; i < 4; i++) {
        built_release(&b[i]);
    }
}

/* os.features the specifier grammar does not allow, and a list longer than mar keeps. */
static void fixture_features(void)
{
    const char *repo = "mar/features";
    static const char *const odd[] = {"has space", "a/b+c(d)%", NULL};
    static const char *const many[] = {"feature with a long name 01", "feature with a long name 02",
                                       "feature with a long name 03", "feature with a long name 04",
                                       "feature with a long name 05", "feature with a long name 06",
                                       "feature with a long name 07", "feature with a long name 08",
                                       "feature with a long name 09", NULL};
    const platform_spec specs[3] = {
            all8[0],
            {"arm64", "arm64", "v8", NULL, {NULL, NULL, odd}},
            {"s390x", "s390x", NULL, NULL, {NULL, NULL, many}},
    };
    built b[3];
    for (size_t i = 0; i < 3; i++) {
        build_platform(repo, &specs[i], C_GZIP, false, &b[i]);
    }
    push_index("features", repo, "latest", b, 3, 0, false);
    for (size_t i = 0; i < 3; i++) {
        built_release(&b[i]);
    }
}

/* A linux/amd64 image and an entry of a media type mar does not read (the OCI 1.1 release
 * candidates' artifact manifest), labelled linux/arm64. */
static void fixture_unknownmt(void)
{
    const char *repo = "mar/unknownmt";
    built b[2];
    build_platform(repo, &all8[0], C_GZIP, false, &b[0]);
    build_platform(repo, &all8[1], C_GZIP, false, &b[1]);
    json_t *u = index_entry(&b[1]);
    json_object_set_new(u, "mediaType",
                        json_string("application/vnd.oci.artifact.manifest.v1+json"));
    blob top;
    push_index_doc(repo, "latest", json_pack("[o, o]", index_entry(&b[0]), u), &top);
    record("unknownmt", repo, "latest", &top, b, 1);
    mar_buf_release(&top.data);
    built_release(&b[0]);
    built_release(&b[1]);
}

/* BuildKit references: an attestation naming the amd64 entry, and an s390x entry whose
 * vnd.docker.reference.type is another value (to be ignored, attestation-storage.md). */
static void fixture_reftypes(void)
{
    const char *repo = "mar/reftypes";
    built b[2];
    build_platform(repo, &all8[0], C_GZIP, false, &b[0]);
    build_platform(repo, &all8[6], C_GZIP, false, &b[1]);
    blob att;
    build_attestation(repo, &b[0].manifest, &att);
    json_t *ad = descriptor(&att);
    json_object_set_new(ad, "annotations",
                        json_pack("{s:s, s:s}", "vnd.docker.reference.digest",
                                  b[0].manifest.digest.str, "vnd.docker.reference.type",
                                  "attestation-manifest"));
    json_object_set_new(ad, "platform",
                        json_pack("{s:s, s:s}", "architecture", "unknown", "os", "unknown"));
    json_t *other = index_entry(&b[1]);
    json_object_set_new(other, "annotations",
                        json_pack("{s:s}", "vnd.docker.reference.type", "sbom-sidecar"));
    blob top;
    push_index_doc(repo, "latest", json_pack("[o, o, o]", index_entry(&b[0]), other, ad), &top);
    record("reftypes", repo, "latest", &top, b, 1);
    json_object_set_new(json_object_get(summary, "reftypes"), "attestation",
                        json_string(att.digest.str));
    mar_buf_release(&att.data);
    mar_buf_release(&top.data);
    built_release(&b[0]);
    built_release(&b[1]);
}

/* A single manifest whose config has an architecture but no OS. */
static void fixture_noos(void)
{
    const platform_spec ps = {"amd64", "amd64", NULL, NULL, {"-", NULL, NULL}};
    built b;
    build_platform("mar/noos", &ps, C_GZIP, false, &b);
    push_manifest("mar/noos", "latest", &b.manifest);
    record("noos", "mar/noos", "latest", &b.manifest, &b, 1);
    built_release(&b);
}

/* mar run's choices (docs/mar-run.1.md): a single-platform arm64 image; one repository with an
 * arm/v7-only index (tag v1) and the same plus arm64 (tag v2), so a test can move a tag from one
 * to the other; an arm64-labeled entry whose config and binaries are amd64; amd64/v3 and v4
 * entries; an image whose /etc/passwd is over mar run's 1 MiB cap. */
static void fixture_runpick(void)
{
    built b;
    build_platform("mar/single-arm64", &all8[1], C_GZIP, false, &b);
    push_manifest("mar/single-arm64", "latest", &b.manifest);
    record("single-arm64", "mar/single-arm64", "latest", &b.manifest, &b, 1);
    built_release(&b);

    built s[2];
    build_platform("mar/stale", &all8[2], C_GZIP, false, &s[0]);
    build_platform("mar/stale", &all8[1], C_GZIP, false, &s[1]);
    push_index("stale-v1", "mar/stale", "v1", s, 1, 0, false);
    push_index("stale-v2", "mar/stale", "v2", s, 2, 0, false);
    built_release(&s[0]);
    built_release(&s[1]);

    /* amd64 binaries, a config that says so, an index entry labeled arm64. */
    built l;
    platform_spec lab = {"amd64", "arm64", "v8", "amd64"};
    build_platform("mar/labelonly", &lab, C_GZIP, false, &l);
    push_index("labelonly", "mar/labelonly", "latest", &l, 1, 0, false);
    built_release(&l);

    /* Entries that ask for x86-64-v3 (AVX2) and v4 (AVX-512), for the Rosetta model. */
    built lv[2];
    platform_spec v3 = {"amd64", "amd64", "v3", NULL}, v4 = {"amd64", "amd64", "v4", NULL};
    build_platform("mar/amd64levels", &v3, C_GZIP, false, &lv[0]);
    build_platform("mar/amd64levels", &v4, C_GZIP, false, &lv[1]);
    push_index("amd64levels", "mar/amd64levels", "latest", lv, 2, 0, false);
    built_release(&lv[0]);
    built_release(&lv[1]);

    mar_buf pw = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xputs(&pw, "root:x:0:0:root:/root:/bin/sh\n");
    while (pw.len <= (1u << 20)) {
        mar_buf_xputs(&pw, "# filler to take /etc/passwd over the cap of mar run\n");
    }
    mar_buf_xputs(&pw, "last:x:4242:4242:last:/:/bin/sh\n");
    single_layer_image("bigpasswd", "mar/bigpasswd", "etc/passwd", &pw, NULL, false);
    mar_buf_release(&pw);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mar-fixtures BUSYBOX_DIR HOST:PORT SUMMARY.json\n");
        return 2;
    }
    bbdir = argv[1];
    registry = argv[2];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    summary = json_object();
    json_object_set_new(summary, "_registry", json_string(registry));
    fixture_multi();
    fixture_dockerlist();
    fixture_single();
    fixture_zstd();
    fixture_amd64only();
    fixture_mislabeled();
    fixture_confmismatch();
    fixture_whiteout();
    fixture_mixed();
    fixture_noloader();
    fixture_shared();
    fixture_big();
    fixture_app();
    fixture_nested();
    fixture_deepnest();
    fixture_platformless();
    fixture_windows();
    fixture_features();
    fixture_unknownmt();
    fixture_reftypes();
    fixture_noos();
    fixture_runpick();
    if (json_dump_file(summary, argv[3], JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) {
        die("cannot write %s", argv[3]);
    }
    json_decref(summary);
    curl_global_cleanup();
    return 0;
}
