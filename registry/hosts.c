/* Per-registry transport policy (docs/internals/registry-protocol.md §8): plain HTTP only for
 * loopback and for registries the user names insecure; extra CA certificates from certs.d
 * directories. */
#include "registry-internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>

#include <curl/curl.h>

/* Splits "host:port", "[v6]:port", "host" into the bare host. */
static void bare_host(const char *hostport, char *buf, size_t n)
{
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        size_t l = close ? (size_t)(close - hostport - 1) : strlen(hostport + 1);
        snprintf(buf, n, "%.*s", (int)l, hostport + 1);
        return;
    }
    const char *colon = strchr(hostport, ':');
    if (colon && strchr(colon + 1, ':')) {
        /* An unbracketed IPv6 literal: no port. */
        snprintf(buf, n, "%s", hostport);
        return;
    }
    size_t l = colon ? (size_t)(colon - hostport) : strlen(hostport);
    snprintf(buf, n, "%.*s", (int)l, hostport);
}

bool reg_host_is_loopback(const char *hostport)
{
    char h[256];
    bare_host(hostport, h, sizeof(h));
    if (strcmp(h, "localhost") == 0) {
        return true;
    }
    /* Only canonical addresses, as containerd's MatchLocalhost: octal or hex forms are not
     * loopback here. */
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, h, &a6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return false;
}

/* An entry names "host:port" exactly, or a bare host for every port. */
static bool listed(const mar_strv *list, const char *hostport)
{
    char h[256];
    bare_host(hostport, h, sizeof(h));
    for (size_t i = 0; i < list->n; i++) {
        if (strcmp(list->v[i], hostport) == 0 || strcmp(list->v[i], h) == 0) {
            return true;
        }
    }
    return false;
}

bool reg__host_insecure_listed(const reg_client *c, const char *hostport)
{
    return listed(&c->opts.insecure, hostport);
}

reg_host *reg__host_get(reg_client *c, const char *hostport)
{
    for (reg_host *h = c->hosts; h; h = h->next) {
        if (strcmp(h->host, hostport) == 0) {
            return h;
        }
    }
    reg_host *h = mar_xcalloc(1, sizeof(*h));
    h->host = mar_xstrdup(hostport);
    if (listed(&c->opts.tls, hostport)) {
        /* Verified HTTPS, loopback or not. */
    } else if (reg_host_is_loopback(hostport)) {
        h->plain_http = true;
    } else if (reg__host_insecure_listed(c, hostport)) {
        h->insecure = true;
    }
    if (h->plain_http && reg__host_insecure_listed(c, hostport)) {
        h->plain_http = false;
        h->insecure = true;
    }
    h->next = c->hosts;
    c->hosts = h;
    return h;
}

bool reg__host_scheme_park(reg_op *op)
{
    reg_host *h = op->host;
    if (!h || !h->insecure || h->plain_http || h->scheme_known || op->redirects > 0) {
        return false;
    }
    if (!h->probe || h->probe == op) {
        h->probe = op;
        return false;
    }
    h->parked = mar_xrealloc(h->parked, (h->n_parked + 1) * sizeof(*h->parked));
    h->parked[h->n_parked++] = op;
    return true;
}

void reg__host_scheme_probed(reg_op *op, int result)
{
    reg_host *h = op->host;
    if (!h || h->probe != op) {
        return;
    }
    h->probe = NULL;
    if (result == REG_HTTP_ETLS) {
        /* Docker's behaviour for registries named insecure: HTTPS without verification first,
         * then plain HTTP. */
        h->plain_http = true;
        mar_debug("'%s' does not speak TLS: plain HTTP for every request", h->host);
    } else if (result == REG_HTTP_OK) {
        h->scheme_known = true;
    }
    reg_op **parked = TAKE_PTR(h->parked);
    size_t n = h->n_parked;
    h->n_parked = 0;
    for (size_t i = 0; i < n; i++) {
        reg__op_start(parked[i]);
    }
    free(parked);
}

static void read_pem_dir(const char *dir, mar_buf *ca, char **cert, char **key)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') {
            continue;
        }
        _cleanup_free_ char *path = mar_xasprintf("%s/%s", dir, de->d_name);
        if (mar_str_endswith(de->d_name, ".crt")) {
            mar_buf b = MAR_BUF_INIT(1u << 20);
            mar_err *e = NULL;
            if (mar_read_file_at(AT_FDCWD, path, 1u << 20, &b, &e) < 0) {
                mar_diag_warn("%s, ignoring", e->msg);
                mar_err_free(e);
            } else if (b.len + 1 > ca->cap - ca->len) {
                /* Checked before appending: a failed append would release the certificates
                 * already read as well. */
                mar_diag_warn("'%s' makes the CA certificates longer than %zu bytes, ignoring it",
                              path, ca->cap);
            } else {
                /* The room is checked above: neither append can fail. */
                mar_ignore(mar_buf_append(ca, b.data, b.len));
                mar_ignore(mar_buf_puts(ca, "\n"));
            }
            mar_buf_release(&b);
        } else if (mar_str_endswith(de->d_name, ".cert") && !*cert) {
            /* Docker pairs client.cert with client.key. */
            _cleanup_free_ char *stem = mar_xstrndup(de->d_name, strlen(de->d_name) - 5);
            _cleanup_free_ char *kpath = mar_xasprintf("%s/%s.key", dir, stem);
            if (access(kpath, R_OK) == 0) {
                *cert = TAKE_PTR(path);
                *key = TAKE_PTR(kpath);
            } else {
                mar_diag_warn("client certificate '%s' has no matching '%s.key', ignoring", path,
                              stem);
            }
        }
    }
    closedir(d);
}

void reg__host_load_certs(reg_client *c, reg_host *h)
{
    if (h->certs_loaded) {
        return;
    }
    h->certs_loaded = true;
    mar_buf ca = MAR_BUF_INIT(8u << 20);
    const char *dirs[6] = {NULL};
    size_t nd = 0;
    _cleanup_free_ char *home_dir = NULL;
    if (c->opts.certs_dirs[0]) {
        for (size_t i = 0; i < MAR_ARRAY_SIZE(c->opts.certs_dirs) && c->opts.certs_dirs[i]; i++) {
            dirs[nd++] = c->opts.certs_dirs[i];
        }
    } else {
        dirs[nd++] = "/etc/docker/certs.d";
        const char *xdg = getenv("XDG_CONFIG_HOME");
        const char *home = getenv("HOME");
        if (xdg && *xdg) {
            home_dir = mar_xasprintf("%s/mar/certs.d", xdg);
        } else if (home && *home) {
            home_dir = mar_xasprintf("%s/.config/mar/certs.d", home);
        }
        if (home_dir) {
            dirs[nd++] = home_dir;
        }
    }
    for (size_t i = 0; i < nd; i++) {
        _cleanup_free_ char *dir = mar_xasprintf("%s/%s", dirs[i], h->host);
        read_pem_dir(dir, &ca, &h->client_cert, &h->client_key);
    }
    if (ca.len) {
        h->ca_pem = mar_buf_detach(&ca, NULL);
    }
    mar_buf_release(&ca);
}

static char *url_part(const char *url, CURLUPart part)
{
    CURLU *u = curl_url();
    char *v = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, part, &v, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    curl_url_cleanup(u);
    char *r = mar_xstrdup(v);
    curl_free(v);
    return r;
}

char *reg__url_hostport(const char *url)
{
    _cleanup_free_ char *host = url_part(url, CURLUPART_HOST);
    if (!host) {
        return NULL;
    }
    _cleanup_free_ char *port = url_part(url, CURLUPART_PORT);
    for (char *p = host; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    return port ? mar_xasprintf("%s:%s", host, port) : mar_xstrdup(host);
}

char *reg__url_origin(const char *url)
{
    _cleanup_free_ char *scheme = url_part(url, CURLUPART_SCHEME);
    _cleanup_free_ char *hp = reg__url_hostport(url);
    if (!scheme || !hp) {
        return NULL;
    }
    return mar_xasprintf("%s://%s", scheme, hp);
}
