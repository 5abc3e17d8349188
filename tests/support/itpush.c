/* Pushing a crafted single-platform image to the bed's registry (plain HTTP), for integration
 * tests whose layers are built by the tests' tar writer. */
#include "itpush.h"

#include <string.h>
#include <sys/utsname.h>

#include <curl/curl.h>
#include <jansson.h>

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
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
        size_t vl = (size_t)(p + len - v);
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
    if (location) {
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, hsink);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, location);
    }
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    long st = 0;
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return st;
}

static void push_blob(const char *reg, const char *repo, const mar_buf *data, mar_digest *ret)
{
    mar_digest_of(MAR_DIGEST_SHA256, data->data, data->len, ret);
    _cleanup_free_ char *start = mar_xasprintf("http://%s/v2/%s/blobs/uploads/", reg, repo);
    _cleanup_free_ char *loc = NULL;
    if (http("POST", start, NULL, NULL, 0, &loc) != 202 || !loc) {
        fail_msg("cannot start an upload to %s", repo);
    }
    const char *sep = strchr(loc, '?') ? "&" : "?";
    _cleanup_free_ char *put =
            mar_str_startswith(loc, "http")
                    ? mar_xasprintf("%s%sdigest=%s", loc, sep, ret->str)
                    : mar_xasprintf("http://%s%s%sdigest=%s", reg, loc, sep, ret->str);
    if (http("PUT", put, "application/octet-stream", data->data, data->len, NULL) != 201) {
        fail_msg("cannot upload %s to %s", ret->str, repo);
    }
}

const char *itest_host_arch(void)
{
    struct utsname u;
    uname(&u);
    return strcmp(u.machine, "aarch64") == 0 ? "arm64" : "amd64";
}

char *itest_push_image(const char *repo, const char *tag, mar_buf *tars, size_t n)
{
    const char *reg = itest_bed("MAR_TEST_REGISTRY");
    json_t *diff_ids = json_array(), *layers = json_array();
    for (size_t i = 0; i < n; i++) {
        mar_buf tar = MAR_BUF_INIT(MAR_BUF_NOCAP), gz = MAR_BUF_INIT(MAR_BUF_NOCAP);
        mar_buf_xappend(&tar, tars[i].data, tars[i].len);
        tarw_finish(&tar);
        mar_digest diff, d;
        mar_digest_of(MAR_DIGEST_SHA256, tar.data, tar.len, &diff);
        tarw_gzip(&tar, &gz);
        push_blob(reg, repo, &gz, &d);
        json_array_append_new(diff_ids, json_string(diff.str));
        json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType",
                                                "application/vnd.oci.image.layer.v1.tar+gzip",
                                                "digest", d.str, "size", (json_int_t)gz.len));
        mar_buf_release(&tar);
        mar_buf_release(&gz);
    }
    json_t *cfg = json_pack("{s:s, s:s, s:{s:s, s:o}, s:{s:[s]}}", "architecture",
                            itest_host_arch(), "os", "linux", "rootfs", "type", "layers",
                            "diff_ids", diff_ids, "config", "Cmd", "/bin/sh");
    char *cs = json_dumps(cfg, JSON_COMPACT);
    mar_buf cb = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xputs(&cb, cs);
    free(cs);
    json_decref(cfg);
    mar_digest cd;
    push_blob(reg, repo, &cb, &cd);
    json_t *m = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
                          "application/vnd.oci.image.manifest.v1+json", "config", "mediaType",
                          "application/vnd.oci.image.config.v1+json", "digest", cd.str, "size",
                          (json_int_t)cb.len, "layers", layers);
    mar_buf_release(&cb);
    char *ms = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    _cleanup_free_ char *url = mar_xasprintf("http://%s/v2/%s/manifests/%s", reg, repo, tag);
    long st = http("PUT", url, "application/vnd.oci.image.manifest.v1+json", ms, strlen(ms), NULL);
    free(ms);
    if (st != 201) {
        fail_msg("cannot push the manifest of %s:%s (%ld)", repo, tag, st);
    }
    return mar_xasprintf("%s/%s:%s", reg, repo, tag);
}
