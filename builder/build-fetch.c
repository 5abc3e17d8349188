/* ADD of a URL (docs/internals/build.md §6): the file is downloaded with the registry client's
 * libcurl transport into the work directory, hashed on the way and, with --checksum, compared
 * before anything of it is copied into the layer; a mismatch stores nothing. */
#include "build-internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A download larger than this is refused (a hostile server could stream forever). */
#define FETCH_CAP       (UINT64_C(8) << 30)
#define FETCH_REDIRECTS 5

typedef struct sink {
    int fd;
    mar_hasher *h;
    uint64_t n;
    int err;
} sink;

static int on_data(reg_http_req *req, const void *p, size_t n)
{
    sink *s = req->userdata;
    if (s->n + n > FETCH_CAP) {
        return -1;
    }
    mar_hasher_update(s->h, p, n);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(s->fd, (const char *)p + off, n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            s->err = errno;
            return -1;
        }
        off += (size_t)w;
    }
    s->n += n;
    return 0;
}

static void on_done(reg_http_req *req)
{
    (void)req;
}

bool bld__is_url(const char *s)
{
    return mar_str_startswith(s, "http://") || mar_str_startswith(s, "https://");
}

/* Last-Modified (RFC 9110 §8.8.2, IMF-fixdate), or 0. */
static int64_t last_modified(const reg_http_req *req)
{
    const char *v = reg_http_header(req, "last-modified");
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!v || !strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
        return 0;
    }
    time_t t = timegm(&tm);
    return t < 0 ? 0 : (int64_t)t;
}

int bld__fetch_url(const char *url, const char *checksum, int fd, int64_t *ret_mtime, mar_err **err)
{
    mar_digest want;
    if (checksum && mar_digest_parse(checksum, &want, err) < 0) {
        return mar_err_wrap(err, "--checksum=%s", checksum);
    }
    const reg_http_ops *ops;
    void *ctx;
    if (reg_curl_transport_new(&(reg_curl_options){0}, &ops, &ctx, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_free_ char *cur = mar_xstrdup(url);
    int rc = 0;
    for (int hop = 0;; hop++) {
        _cleanup_hasher_ mar_hasher *h = mar_hasher_new(checksum ? want.alg : MAR_DIGEST_SHA256);
        sink s = {.fd = fd, .h = h};
        reg_http_req req = {.method = "GET",
                            .url = mar_xstrdup(cur),
                            .verify_tls = true,
                            .on_data = on_data,
                            .done = on_done,
                            .userdata = &s};
        if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
            rc = mar_err_set(err, MAR_EIO, errno, "cannot write the download of %s", url);
        } else if (ops->submit(ctx, &req, err) < 0 || ops->run(ctx, err) < 0) {
            rc = -mar_err_code(*err);
        } else if (req.result != REG_HTTP_OK) {
            rc = s.err ? mar_err_set(err, MAR_EIO, s.err, "cannot write the download of %s", url)
                       : mar_err_set(err, MAR_ENET, 0, "%s: %s", cur,
                                     req.errmsg[0] ? req.errmsg : "failed");
        } else if (req.status >= 300 && req.status < 400 && req.status != 304) {
            const char *loc = reg_http_header(&req, "location");
            if (!loc || !bld__is_url(loc) || hop >= FETCH_REDIRECTS) {
                rc = mar_err_set(err, MAR_ENET, 0, "%s: HTTP %ld redirect not followed", cur,
                                 req.status);
            } else {
                free(cur);
                cur = mar_xstrdup(loc);
                reg_http_req_release(&req);
                continue;
            }
        } else if (req.status != 200) {
            rc = mar_err_set(err, req.status == 404 ? MAR_ENOTFOUND : MAR_ENET, 0, "%s: HTTP %ld",
                             cur, req.status);
        } else {
            mar_digest got;
            mar_hasher_final(h, &got);
            if (checksum && !mar_digest_eq(&got, &want)) {
                rc = mar_err_set(err, MAR_EINTEGRITY, 0, "%s: checksum mismatch: got %s, want %s",
                                 url, got.str, want.str);
            }
            *ret_mtime = last_modified(&req);
        }
        reg_http_req_release(&req);
        break;
    }
    ops->destroy(ctx);
    return rc;
}
