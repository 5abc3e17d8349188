/* Allocation that aborts in one place, with an injectable failure for tests
 * (docs/internals/style.md §3). */
#include "util.h"

#include <string.h>

static long fail_alloc_n = -1; /* -1: not read yet; 0: disabled */
static long alloc_count;

static void *check(void *p)
{
    if (!p) {
        /* Printing from util/ is reserved for this: there is no caller left to tell. */
        static const char msg[] = "mar: out of memory\n";
        ssize_t unused = write(2, msg, sizeof(msg) - 1);
        (void)unused;
        abort();
    }
    return p;
}

static bool injected_failure(void)
{
    if (fail_alloc_n < 0) {
        int64_t n = 0;
        const char *s = getenv("MAR_FAIL_ALLOC_N");
        fail_alloc_n = (s && mar_parse_i64(s, 1, INT64_MAX, &n)) ? (long)n : 0;
    }
    if (fail_alloc_n == 0) {
        return false;
    }
    return ++alloc_count == fail_alloc_n;
}

void *mar_xmalloc(size_t n)
{
    if (injected_failure()) {
        return check(NULL);
    }
    return check(malloc(n ? n : 1));
}

void *mar_xcalloc(size_t n, size_t size)
{
    if (injected_failure()) {
        return check(NULL);
    }
    return check(calloc(n ? n : 1, size ? size : 1));
}

void *mar_xrealloc(void *p, size_t n)
{
    if (injected_failure()) {
        return check(NULL);
    }
    return check(realloc(p, n ? n : 1));
}

char *mar_xstrdup(const char *s)
{
    return mar_xstrndup(s, strlen(s));
}

char *mar_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *r = mar_xmalloc(len + 1);
    memcpy(r, s, len);
    r[len] = '\0';
    return r;
}

char *mar_xvasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return mar_xstrdup("(format error)");
    }
    char *r = mar_xmalloc((size_t)n + 1);
    vsnprintf(r, (size_t)n + 1, fmt, ap);
    return r;
}

char *mar_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *r = mar_xvasprintf(fmt, ap);
    va_end(ap);
    return r;
}

void mar_memzero(void *p, size_t n)
{
    if (p && n) {
        explicit_bzero(p, n);
    }
}

char *mar_secret_free(char *s)
{
    if (s) {
        mar_memzero(s, strlen(s));
        free(s);
    }
    return NULL;
}
