/* Escaping text for a terminal. Strings from a registry, a store file or an image reach stderr
 * and stdout in errors, warnings and tables; a control character in one (ESC starts a terminal
 * escape sequence, BEL rings, a newline forges a line) must arrive as visible text, never as the
 * control itself (CVE-2021-25743 is the same flaw in kubectl). JSON output needs none of this:
 * jansson escapes control characters itself. */
#include "util.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when p does not start one. Overlong forms
 * and surrogates are not valid (RFC 3629 §4). */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = c & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* True when the character of n bytes at p is printed as it is. */
static bool plain(const unsigned char *p, size_t n)
{
    if (n == 1) {
        return p[0] >= 0x20 && p[0] != 0x7f;
    }
    /* C1 controls U+0080..U+009F: 0x9b is CSI to many terminals. */
    return !(n == 2 && p[0] == 0xc2 && p[1] < 0xa0);
}

bool mar_str_needs_escape(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0 || !plain(p, n)) {
            return true;
        }
        p += n;
    }
    return false;
}

char *mar_str_escape(const char *s)
{
    if (!mar_str_needs_escape(s)) {
        return mar_xstrdup(s);
    }
    size_t len = strlen(s);
    /* Each byte becomes at most 4 ("\x1b"); a C1 character's 2 bytes become 6 ("\u009b"). */
    char *out = mar_xmalloc(4 * len + 1);
    char *o = out;
    const unsigned char *p = (const unsigned char *)s;
    static const char hex[] = "0123456789abcdef";
    while (*p) {
        size_t n = utf8_len(p);
        if (n && plain(p, n)) {
            memcpy(o, p, n);
            o += n;
            p += n;
            continue;
        }
        if (n == 2) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[p[1] >> 4];
            o[5] = hex[p[1] & 0xf];
            o += 6;
            p += 2;
            continue;
        }
        *o++ = '\\';
        switch (*p) {
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'x';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 0xf];
            break;
        }
        p++;
    }
    *o = '\0';
    return out;
}
