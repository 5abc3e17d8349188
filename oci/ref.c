/* Image references: the distribution/reference grammar and Docker Hub normalization
 * (docs/internals/registry-protocol.md §1; distribution/reference reference.go, normalize.go). */
#include "oci.h"

#include <arpa/inet.h>
#include <string.h>

#define NAME_TOTAL_MAX 255 /* reference.go NameTotalLengthMax */

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_alnum_lower(c) || (c >= 'A' && c <= 'Z');
}

/* component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | -+ */
static bool path_component_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_alnum_lower(s[0])) {
        return false;
    }
    while (i < n) {
        if (is_alnum_lower(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        if (s[i] == '.') {
            j = i + 1;
        } else if (s[i] == '_') {
            j = i + 1;
            if (j < n && s[j] == '_') {
                j++;
            }
        } else if (s[i] == '-') {
            while (j < n && s[j] == '-') {
                j++;
            }
        } else {
            return false;
        }
        if (j >= n || !is_alnum_lower(s[j])) {
            return false;
        }
        i = j;
    }
    return true;
}

/* domain := host [":" port]; host := domain-name | IPv4 | "[" IPv6 "]" */
static bool domain_ok(const char *s, size_t n)
{
    if (n == 0) {
        return false;
    }
    size_t host_end = n;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) {
            return false;
        }
        char addr[64];
        size_t al = (size_t)(close - s - 1);
        if (al == 0 || al >= sizeof(addr)) {
            return false;
        }
        memcpy(addr, s + 1, al);
        addr[al] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, addr, &a6) != 1) {
            return false;
        }
        host_end = (size_t)(close - s) + 1;
        if (host_end < n && s[host_end] != ':') {
            return false;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon) {
            host_end = (size_t)(colon - s);
        }
        /* domain-name := component ("." component)*, component := alnum ([alnum-]* alnum)? */
        size_t i = 0;
        if (host_end == 0) {
            return false;
        }
        while (i < host_end) {
            size_t j = i;
            while (j < host_end && s[j] != '.') {
                j++;
            }
            if (j == i || !is_alnum(s[i]) || !is_alnum(s[j - 1])) {
                return false;
            }
            for (size_t k = i; k < j; k++) {
                if (!is_alnum(s[k]) && s[k] != '-') {
                    return false;
                }
            }
            i = j + 1;
            if (j < host_end && i == host_end) {
                return false; /* trailing dot */
            }
        }
    }
    if (host_end < n) {
        /* ":" port, digits only, 1-65535 (a TCP port; 0 and 99999 are typing errors) */
        if (host_end + 1 == n || n - host_end - 1 > 5) {
            return false;
        }
        unsigned port = 0;
        for (size_t k = host_end + 1; k < n; k++) {
            if (s[k] < '0' || s[k] > '9') {
                return false;
            }
            port = port * 10 + (unsigned)(s[k] - '0');
        }
        if (port == 0 || port > 65535) {
            return false;
        }
    }
    return true;
}

bool oci_tag_valid(const char *tag)
{
    size_t n = strlen(tag);
    if (n == 0 || n > 128) {
        return false;
    }
    if (!(is_alnum(tag[0]) || tag[0] == '_')) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        char c = tag[i];
        if (!(is_alnum(c) || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64) {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) {
            return false;
        }
    }
    return true;
}

void oci_ref_release(oci_ref *r)
{
    free(r->domain);
    free(r->path);
    free(r->tag);
    free(r->api_host);
    memset(r, 0, sizeof(*r));
}

int oci_ref_parse(const char *s, oci_ref *ret, mar_err **err)
{
    oci_ref r = {0};
    if (!s || !*s) {
        return mar_err_set(err, MAR_EUSAGE, 0, "invalid reference format: empty reference");
    }
    if (strlen(s) > 4096) {
        return mar_err_set(err, MAR_EUSAGE, 0, "invalid reference format: too long");
    }
    if (is_hex64(s)) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "invalid repository name (%s), cannot specify 64-byte hexadecimal "
                           "strings",
                           s);
    }
    _cleanup_free_ char *work = mar_xstrdup(s);

    char *at = strchr(work, '@');
    if (at) {
        *at = '\0';
        const char *d = at + 1;
        if (strchr(d, '/')) {
            /* "user:password@host/repo": a digest never has a '/'. The reference is not echoed,
             * it holds a password. */
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "invalid reference format: credentials never go in a reference "
                               "(USER[:PASSWORD]@ before the registry host); log in instead "
                               "(docker login, or config.json)");
        }
        if (!*d) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "invalid reference format: no digest after '@' in '%.100s'", s);
        }
        if (strchr(d, '@')) {
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "invalid reference format: more than one '@' in '%.100s'", s);
        }
        bool known_alg = mar_str_startswith(d, "sha256:") || mar_str_startswith(d, "sha512:");
        if ((known_alg && !mar_digest_valid(d)) || !mar_digest_grammar_ok(d)) {
            /* A typing error, not an unsupported algorithm. */
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "invalid reference format: bad digest in "
                               "'%.100s'",
                               s);
        }
        if (mar_digest_parse(d, &r.digest, err) < 0) {
            return mar_err_wrap(err, "invalid reference '%.100s'", s);
        }
        r.has_digest = true;
    }
    char *last_slash = strrchr(work, '/');
    char *colon = strrchr(last_slash ? last_slash : work, ':');
    if (colon) {
        *colon = '\0';
        if (!oci_tag_valid(colon + 1)) {
            return mar_err_set(err, MAR_EUSAGE, 0, "invalid reference format: bad tag in '%s'", s);
        }
        r.tag = mar_xstrdup(colon + 1);
    }
    char *name = work;
    if (strlen(name) > NAME_TOTAL_MAX) {
        free(r.tag);
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "invalid reference format: repository name must not be more than %d "
                           "characters",
                           NAME_TOTAL_MAX);
    }

    /* splitDockerDomain: the first component is a host when it has '.' or ':', is "localhost",
     * or has upper-case letters. */
    char *slash = strchr(name, '/');
    const char *remainder = name;
    if (slash) {
        size_t fl = (size_t)(slash - name);
        bool lowercase = true;
        for (size_t i = 0; i < fl; i++) {
            if (name[i] >= 'A' && name[i] <= 'Z') {
                lowercase = false;
            }
        }
        bool is_host = memchr(name, '.', fl) || memchr(name, ':', fl) ||
                       (fl == 9 && strncmp(name, "localhost", 9) == 0) || !lowercase;
        if (is_host) {
            if (!domain_ok(name, fl)) {
                free(r.tag);
                const char *pc = memrchr(name, ':', fl);
                size_t pl = pc ? fl - (size_t)(pc + 1 - name) : 0;
                unsigned long port = 0;
                for (size_t k = 0; k < pl && port <= 65535 && pc[1 + k] >= '0' && pc[1 + k] <= '9';
                     k++) {
                    port = port * 10 + (unsigned long)(pc[1 + k] - '0');
                }
                if (pl && strspn(pc + 1, "0123456789") >= pl && (port == 0 || port > 65535)) {
                    return mar_err_set(err, MAR_EUSAGE, 0,
                                       "invalid reference format: port '%.*s' in '%s' is not "
                                       "1-65535",
                                       (int)pl, pc + 1, s);
                }
                return mar_err_set(err, MAR_EUSAGE, 0,
                                   "invalid reference format: bad registry "
                                   "host in '%s'",
                                   s);
            }
            r.domain = mar_xstrndup(name, fl);
            remainder = slash + 1;
        }
    }
    if (!r.domain) {
        r.domain = mar_xstrdup("docker.io");
    }
    if (strcmp(r.domain, "index.docker.io") == 0) {
        free(r.domain);
        r.domain = mar_xstrdup("docker.io");
    }

    /* Path components. */
    const char *p = remainder;
    if (!*p) {
        oci_ref_release(&r);
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "invalid reference format: empty repository in "
                           "'%s'",
                           s);
    }
    while (*p) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (!path_component_ok(p, l)) {
            bool upper = false;
            for (size_t i = 0; i < l; i++) {
                upper = upper || (p[i] >= 'A' && p[i] <= 'Z');
            }
            oci_ref_release(&r);
            if (upper) {
                return mar_err_set(err, MAR_EUSAGE, 0,
                                   "invalid reference format: repository name must be lowercase "
                                   "in '%s'",
                                   s);
            }
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "invalid reference format: bad repository "
                               "name in '%s'",
                               s);
        }
        if (!e) {
            break;
        }
        p = e + 1;
        if (!*p) {
            oci_ref_release(&r);
            return mar_err_set(err, MAR_EUSAGE, 0,
                               "invalid reference format: trailing '/' in "
                               "'%s'",
                               s);
        }
    }
    if (strcmp(r.domain, "docker.io") == 0 && !strchr(remainder, '/')) {
        r.path = mar_xasprintf("library/%s", remainder);
    } else {
        r.path = mar_xstrdup(remainder);
    }
    if (!r.tag && !r.has_digest) {
        r.tag = mar_xstrdup("latest");
    }
    r.api_host =
            mar_xstrdup(strcmp(r.domain, "docker.io") == 0 ? "registry-1.docker.io" : r.domain);
    *ret = r;
    return 0;
}

char *oci_ref_string(const oci_ref *r)
{
    return mar_xasprintf("%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "",
                         r->tag ? r->tag : "", r->has_digest ? "@" : "",
                         r->has_digest ? r->digest.str : "");
}

char *oci_ref_repo(const oci_ref *r)
{
    return mar_xasprintf("%s/%s", r->domain, r->path);
}

const char *oci_ref_target(const oci_ref *r)
{
    return r->has_digest ? r->digest.str : r->tag;
}
