/* gRPC unary calls over a unix socket with libcurl: HTTP/2 with prior knowledge (containerd's
 * socket speaks nothing else), POST /<service>/<method>, `content-type: application/grpc`,
 * `te: trailers`, and the namespace as `containerd-namespace` metadata
 * (containerd/namespaces/grpc.go). Messages are length-prefixed frames (gRPC over HTTP/2,
 * "Length-Prefixed-Message": a compressed flag byte and a 4-byte big-endian length); the status
 * arrives in the trailers (`grpc-status`, `grpc-message`, percent-encoded), or in the headers of
 * a trailers-only answer.
 *
 * Every call opens its own connection: libcurl 7.88 (Debian 12) breaks the second stream on an
 * HTTP/2 connection whose first answer ended with trailers ("Error in the HTTP2 framing layer"),
 * and a unix-socket connection costs next to nothing. One easy handle is kept for its buffers; a
 * call made while it is busy (Wait blocks on another thread for the container's whole life)
 * gets its own. */
#include "vm.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#define RESPONSE_CAP (16u << 20)

typedef struct grpc_ctx {
    char *socket;
    char *ns_header;
    pthread_mutex_t mu;
    CURL *shared;
} grpc_ctx;

typedef struct call_state {
    mar_buf body;
    int grpc_status; /* -1 until seen */
    char grpc_message[512];
    bool too_big;
} call_state;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    call_state *cs = ud;
    size_t len = size * n;
    if (mar_buf_append(&cs->body, p, len) < 0) {
        cs->too_big = true;
        return 0;
    }
    return len;
}

/* grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"). */
static void percent_decode(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned v;
        if (in[i] == '%' && i + 2 < n && sscanf(in + i + 1, "%2x", &v) == 1) {
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    call_state *cs = ud;
    size_t len = size * n;
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
        len--;
    }
    static const char st[] = "grpc-status:", msg[] = "grpc-message:";
    if (len > sizeof(st) - 1 && strncasecmp(p, st, sizeof(st) - 1) == 0) {
        char num[16];
        size_t k = len - (sizeof(st) - 1);
        const char *v = p + sizeof(st) - 1;
        while (k && *v == ' ') {
            v++;
            k--;
        }
        snprintf(num, sizeof(num), "%.*s", (int)(k < 15 ? k : 15), v);
        int64_t code;
        cs->grpc_status = mar_parse_i64(num, 0, 100, &code) ? (int)code : 2;
    } else if (len >= sizeof(msg) - 1 && strncasecmp(p, msg, sizeof(msg) - 1) == 0) {
        const char *v = p + sizeof(msg) - 1;
        size_t k = len - (sizeof(msg) - 1);
        while (k && *v == ' ') {
            v++;
            k--;
        }
        percent_decode(v, k, cs->grpc_message, sizeof(cs->grpc_message));
    }
    return size * n;
}

/* gRPC status codes (grpc doc/statuscodes.md) to mar's closed set. */
static int map_status(int s)
{
    switch (s) {
    case 5: /* NOT_FOUND */
        return MAR_ENOTFOUND;
    case 7:  /* PERMISSION_DENIED */
    case 16: /* UNAUTHENTICATED */
        return MAR_EAUTH;
    case 12: /* UNIMPLEMENTED */
        return MAR_EUNSUPPORTED;
    case 4:  /* DEADLINE_EXCEEDED */
    case 14: /* UNAVAILABLE */
        return MAR_ENET;
    default:
        return MAR_EFAIL;
    }
}

static CURL *new_handle(grpc_ctx *g)
{
    CURL *h = curl_easy_init();
    if (h) {
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, g->socket);
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    }
    return h;
}

MAR_MUST_USE static int do_call(grpc_ctx *g, CURL *h, const char *path, const void *req,
                                size_t req_len, int timeout_ms, mar_buf *resp, int *ret_status,
                                mar_err **err)
{
    _cleanup_free_ char *url = mar_xasprintf("http://localhost%s", path);
    /* Length-prefixed message: flag 0 (uncompressed), big-endian length. */
    mar_buf frame = MAR_BUF_INIT(MAR_BUF_NOCAP);
    unsigned char pre[5] = {0, (unsigned char)(req_len >> 24), (unsigned char)(req_len >> 16),
                            (unsigned char)(req_len >> 8), (unsigned char)req_len};
    mar_buf_xappend(&frame, pre, sizeof(pre));
    mar_buf_xappend(&frame, req, req_len);
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, "content-type: application/grpc");
    hdrs = curl_slist_append(hdrs, "te: trailers");
    hdrs = curl_slist_append(hdrs, "user-agent: mar");
    hdrs = curl_slist_append(hdrs, g->ns_header);
    hdrs = curl_slist_append(hdrs, "expect:");
    call_state cs = {.body = MAR_BUF_INIT(RESPONSE_CAP + 5), .grpc_status = -1};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, frame.data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)frame.len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &cs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &cs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    CURLcode cr = curl_easy_perform(h);
    long http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    mar_buf_release(&frame);
    const char *method = strrchr(path, '/') + 1;
    int rc = 0;
    if (cs.too_big) {
        rc = mar_err_set(err, MAR_EFAIL, 0, "containerd's answer to %s is over %u bytes", method,
                         RESPONSE_CAP);
    } else if (cr != CURLE_OK) {
        rc = mar_err_set(err, MAR_ENET, 0, "containerd at '%s': %s: %s", g->socket, method,
                         errbuf[0] ? errbuf : curl_easy_strerror(cr));
    } else if (http != 200) {
        rc = mar_err_set(err, MAR_EFAIL, 0, "containerd at '%s' answered %s with HTTP %ld",
                         g->socket, method, http);
    } else if (cs.grpc_status != 0) {
        *ret_status = cs.grpc_status < 0 ? 2 : cs.grpc_status;
        rc = mar_err_set(err, map_status(*ret_status), 0, "containerd: %s: %s", method,
                         cs.grpc_message[0] ? cs.grpc_message : "no status");
    } else if (cs.body.len < 5 || cs.body.data[0] != 0) {
        rc = mar_err_set(err, MAR_EFAIL, 0, "containerd: %s: %s", method,
                         cs.body.len < 5 ? "no message" : "compressed message, refusing");
    } else {
        const unsigned char *b = (const unsigned char *)cs.body.data;
        size_t mlen = (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4];
        if (mlen != cs.body.len - 5) {
            rc = mar_err_set(err, MAR_EFAIL, 0,
                             "containerd: %s: malformed answer (%zu of %zu "
                             "bytes)",
                             method, cs.body.len - 5, mlen);
        } else {
            mar_buf_release(resp);
            mar_buf_init(resp, RESPONSE_CAP);
            if (mar_buf_append(resp, cs.body.data + 5, mlen) < 0) {
                rc = mar_err_set(err, MAR_EFAIL, 0, "containerd's answer to %s is over %u bytes",
                                 method, RESPONSE_CAP);
            } else {
                *ret_status = 0;
            }
        }
    }
    mar_buf_release(&cs.body);
    return rc;
}

MAR_MUST_USE static int grpc_call(void *ctx, const char *path, const void *req, size_t req_len,
                                  int timeout_ms, mar_buf *resp, int *ret_status, mar_err **err)
{
    grpc_ctx *g = ctx;
    *ret_status = -1;
    if (pthread_mutex_trylock(&g->mu) == 0) {
        int rc = do_call(g, g->shared, path, req, req_len, timeout_ms, resp, ret_status, err);
        pthread_mutex_unlock(&g->mu);
        return rc;
    }
    CURL *h = new_handle(g);
    if (!h) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot initialize libcurl");
    }
    int rc = do_call(g, h, path, req, req_len, timeout_ms, resp, ret_status, err);
    curl_easy_cleanup(h);
    return rc;
}

static void grpc_destroy(void *ctx)
{
    grpc_ctx *g = ctx;
    if (g) {
        curl_easy_cleanup(g->shared);
        pthread_mutex_destroy(&g->mu);
        free(g->socket);
        free(g->ns_header);
        free(g);
    }
}

static const vm_grpc_ops unix_ops = {.call = grpc_call, .destroy = grpc_destroy};

int vm_grpc_unix_new(const char *socket, const char *ns, const vm_grpc_ops **ret_ops,
                     void **ret_ctx, mar_err **err)
{
    struct stat st;
    if (stat(socket, &st) < 0) {
        return mar_err_set(err, MAR_ENET, errno,
                           "no containerd socket at '%s' (is containerd running? set --address "
                           "or CONTAINERD_ADDRESS)",
                           socket);
    }
    if (!S_ISSOCK(st.st_mode)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' is not a socket", socket);
    }
    if (access(socket, W_OK) < 0) {
        return mar_err_set(err, MAR_EAUTH, errno, "cannot use the containerd socket '%s'%s", socket,
                           errno == EACCES ? " (containerd wants root)" : "");
    }
    grpc_ctx *g = mar_xcalloc(1, sizeof(*g));
    g->socket = mar_xstrdup(socket);
    g->ns_header = mar_xasprintf("containerd-namespace: %s", ns);
    pthread_mutex_init(&g->mu, NULL);
    g->shared = new_handle(g);
    if (!g->shared) {
        grpc_destroy(g);
        return mar_err_set(err, MAR_EFAIL, 0, "cannot initialize libcurl");
    }
    *ret_ops = &unix_ops;
    *ret_ctx = g;
    return 0;
}
