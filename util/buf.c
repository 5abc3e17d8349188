/* Capped, always-terminated buffers and string vectors (docs/internals/style.md §4). */
#include "util.h"

#include <errno.h>
#include <string.h>

char mar__buf_empty[1];

void mar_buf_init(mar_buf *b, size_t cap)
{
    b->data = mar__buf_empty;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void mar_buf_release(mar_buf *b)
{
    if (b->alloc) {
        free(b->data);
    }
    b->data = mar__buf_empty;
    b->len = 0;
    b->alloc = 0;
}

void mar_buf_release_secret(mar_buf *b)
{
    if (b->alloc) {
        mar_memzero(b->data, b->alloc);
    }
    mar_buf_release(b);
}

static void grow(mar_buf *b, size_t need)
{
    if (need + 1 <= b->alloc) {
        return;
    }
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need + 1) {
        n = n < SIZE_MAX / 2 ? n * 2 : need + 1;
    }
    if (b->alloc) {
        b->data = mar_xrealloc(b->data, n);
    } else {
        b->data = mar_xmalloc(n);
        b->data[0] = '\0';
    }
    b->alloc = n;
}

int mar_buf_append(mar_buf *b, const void *p, size_t n)
{
    /* len + n + 1 (the terminator) must not exceed the cap nor wrap around. */
    if (n > b->cap || b->len > b->cap - n || b->len + n == SIZE_MAX) {
        /* No half-built value survives an overflow. */
        mar_buf_release(b);
        return -E2BIG;
    }
    if (n == 0) {
        return 0;
    }
    grow(b, b->len + n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int mar_buf_puts(mar_buf *b, const char *s)
{
    return mar_buf_append(b, s, strlen(s));
}

int mar_buf_printf(mar_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = mar_xvasprintf(fmt, ap);
    va_end(ap);
    return mar_buf_puts(b, s);
}

static void x_check(const mar_buf *b, int rc)
{
    if (b->cap != MAR_BUF_NOCAP || rc < 0) {
        /* As in util/mem.c: no caller is left to tell. */
        static const char msg[] = "mar: internal error: unchecked append to a capped buffer\n";
        static const char oom[] = "mar: out of memory\n";
        const char *m = b->cap != MAR_BUF_NOCAP ? msg : oom;
        size_t n = b->cap != MAR_BUF_NOCAP ? sizeof(msg) - 1 : sizeof(oom) - 1;
        ssize_t unused = write(2, m, n);
        (void)unused;
        abort();
    }
}

void mar_buf_xappend(mar_buf *b, const void *p, size_t n)
{
    x_check(b, 0);
    x_check(b, mar_buf_append(b, p, n));
}

void mar_buf_xputs(mar_buf *b, const char *s)
{
    mar_buf_xappend(b, s, strlen(s));
}

void mar_buf_xprintf(mar_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = mar_xvasprintf(fmt, ap);
    va_end(ap);
    mar_buf_xappend(b, s, strlen(s));
}

char *mar_buf_detach(mar_buf *b, size_t *ret_len)
{
    char *r;
    if (b->alloc) {
        r = b->data;
    } else {
        r = mar_xstrdup("");
    }
    if (ret_len) {
        *ret_len = b->len;
    }
    b->data = mar__buf_empty;
    b->len = 0;
    b->alloc = 0;
    return r;
}

void mar_buf_truncate(mar_buf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

void mar_strv_push_take(mar_strv *sv, char *s)
{
    if (sv->n + 2 > sv->alloc) {
        sv->alloc = sv->alloc ? sv->alloc * 2 : 8;
        sv->v = mar_xrealloc(sv->v, sv->alloc * sizeof(char *));
    }
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
}

void mar_strv_push(mar_strv *sv, const char *s)
{
    mar_strv_push_take(sv, mar_xstrdup(s));
}

void mar_strv_release(mar_strv *sv)
{
    for (size_t i = 0; i < sv->n; i++) {
        free(sv->v[i]);
    }
    free(sv->v);
    sv->v = NULL;
    sv->n = 0;
    sv->alloc = 0;
}

bool mar_strv_contains(const mar_strv *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++) {
        if (strcmp(sv->v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void mar_strv_sort(mar_strv *sv)
{
    if (sv->n > 1) {
        qsort(sv->v, sv->n, sizeof(char *), cmp_strp);
    }
}

bool mar_str_startswith(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool mar_str_endswith(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

bool mar_str_caseeq(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') {
            x = (char)(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = (char)(y - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
        if (!x) {
            return true;
        }
    }
}

bool mar_strlcpy(char *dst, const char *src, size_t n)
{
    if (n == 0) {
        return false;
    }
    size_t len = strnlen(src, n);
    if (len >= n) {
        memcpy(dst, src, n - 1);
        dst[n - 1] = '\0';
        return false;
    }
    memcpy(dst, src, len + 1);
    return true;
}

bool mar_parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
    if (!s || !*s) {
        return false;
    }
    bool neg = false;
    const char *p = s;
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (!*p) {
        return false;
    }
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    int64_t r;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return false;
        }
        r = (int64_t)v;
    }
    if (r < min || r > max) {
        return false;
    }
    *ret = r;
    return true;
}

void mar_format_size(int64_t bytes, char *buf, size_t n)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    if (bytes < 0) {
        snprintf(buf, n, "-");
        return;
    }
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000.0 && u + 1 < MAR_ARRAY_SIZE(units)) {
        v /= 1000.0;
        u++;
    }
    if (u == 0) {
        snprintf(buf, n, "%lld B", (long long)bytes);
    } else {
        snprintf(buf, n, "%.3g %s", v, units[u]);
    }
}
