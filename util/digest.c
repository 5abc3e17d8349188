/* Content digests (docs/internals/registry-protocol.md §10; image-spec descriptor.md "Digests").
 * Only sha256 and sha512 are accepted, lower-case hex of exact length, and the OpenSSL algorithm
 * comes from a fixed table: a registry string never reaches EVP_get_digestbyname. */
#include "util.h"

#include <string.h>

#include <openssl/evp.h>

static const struct {
    const char *name;
    size_t hexlen;
} algs[] = {
        [MAR_DIGEST_SHA256] = {"sha256", 64},
        [MAR_DIGEST_SHA512] = {"sha512", 128},
};

static const EVP_MD *alg_md(mar_digest_alg alg)
{
    return alg == MAR_DIGEST_SHA512 ? EVP_sha512() : EVP_sha256();
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int classify(const char *s, mar_digest_alg *ret)
{
    for (size_t i = 0; i < MAR_ARRAY_SIZE(algs); i++) {
        size_t nl = strlen(algs[i].name);
        if (strncmp(s, algs[i].name, nl) == 0 && s[nl] == ':') {
            const char *hex = s + nl + 1;
            if (strlen(hex) != algs[i].hexlen || !is_lower_hex(hex, algs[i].hexlen)) {
                return -1;
            }
            *ret = (mar_digest_alg)i;
            return 0;
        }
    }
    return -1;
}

bool mar_digest_valid(const char *s)
{
    mar_digest_alg a;
    return s && classify(s, &a) == 0;
}

static bool alg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool mar_digest_grammar_ok(const char *s)
{
    /* image-spec descriptor.md "Digests": algorithm ":" encoded, with
     * algorithm = [a-z0-9]+ ([+._-] [a-z0-9]+)* and encoded = [a-zA-Z0-9=_-]+ */
    const char *p = s;
    for (;;) {
        if (!alg_char(*p)) {
            return false;
        }
        while (alg_char(*p)) {
            p++;
        }
        if (*p == ':') {
            break;
        }
        if (*p != '+' && *p != '.' && *p != '_' && *p != '-') {
            return false;
        }
        p++;
    }
    p++;
    if (!*p) {
        return false;
    }
    for (; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '=' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

int mar_digest_parse(const char *s, mar_digest *ret, mar_err **err)
{
    mar_digest_alg a;
    if (!s || classify(s, &a) < 0) {
        /* Never echo an arbitrary-length value into a message. A digest of the right shape
         * naming another algorithm is unsupported; anything else, including a sha256 digest
         * of the wrong length, is a malformed document. */
        bool known = s && (mar_str_startswith(s, "sha256:") || mar_str_startswith(s, "sha512:"));
        if (s && !known && mar_digest_grammar_ok(s)) {
            return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                               "unsupported digest algorithm in '%.80s', refusing", s);
        }
        return mar_err_set(err, MAR_EINTEGRITY, 0, "malformed digest '%.80s', refusing",
                           s ? s : "");
    }
    ret->alg = a;
    mar_strlcpy(ret->str, s, sizeof(ret->str));
    return 0;
}

const char *mar_digest_hex(const mar_digest *d)
{
    const char *c = strchr(d->str, ':');
    return c ? c + 1 : d->str;
}

bool mar_digest_eq(const mar_digest *a, const mar_digest *b)
{
    return a->alg == b->alg && strcmp(a->str, b->str) == 0;
}

void mar_digest_short(const mar_digest *d, char *buf, size_t n)
{
    snprintf(buf, n, "%s:%.12s", algs[d->alg].name, mar_digest_hex(d));
}

struct mar_hasher {
    mar_digest_alg alg;
    EVP_MD_CTX *ctx;
};

mar_hasher *mar_hasher_new(mar_digest_alg alg)
{
    mar_hasher *h = mar_xcalloc(1, sizeof(*h));
    h->alg = alg;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, alg_md(alg), NULL) != 1) {
        /* Only allocation can fail here. */
        mar_xmalloc((size_t)-1);
    }
    return h;
}

void mar_hasher_update(mar_hasher *h, const void *p, size_t n)
{
    if (n) {
        EVP_DigestUpdate(h->ctx, p, n);
    }
}

void mar_hasher_reset(mar_hasher *h)
{
    EVP_DigestInit_ex(h->ctx, alg_md(h->alg), NULL);
}

void mar_hasher_final(mar_hasher *h, mar_digest *ret)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(h->ctx, md, &len);
    static const char hexd[] = "0123456789abcdef";
    size_t nl = strlen(algs[h->alg].name);
    ret->alg = h->alg;
    memcpy(ret->str, algs[h->alg].name, nl);
    ret->str[nl] = ':';
    char *o = ret->str + nl + 1;
    for (unsigned int i = 0; i < len; i++) {
        *o++ = hexd[md[i] >> 4];
        *o++ = hexd[md[i] & 15];
    }
    *o = '\0';
    mar_hasher_reset(h);
}

mar_hasher *mar_hasher_free(mar_hasher *h)
{
    if (h) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
    }
    return NULL;
}

void mar_digest_of(mar_digest_alg alg, const void *p, size_t n, mar_digest *ret)
{
    _cleanup_hasher_ mar_hasher *h = mar_hasher_new(alg);
    mar_hasher_update(h, p, n);
    mar_hasher_final(h, ret);
}

bool mar_digest_verify(const mar_digest *d, const void *p, size_t n)
{
    mar_digest got;
    mar_digest_of(d->alg, p, n, &got);
    return mar_digest_eq(d, &got);
}
