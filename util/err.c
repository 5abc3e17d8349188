/* The one error type (docs/internals/style.md §2): set once, wrapped with context, freed by the
 * caller. */
#include "util.h"

#include <assert.h>
#include <string.h>

static const char *const code_names[] = {
        [0] = "ok",
        [MAR_EFAIL] = "failure",
        [MAR_EUSAGE] = "usage",
        [MAR_ENOTFOUND] = "not found",
        [MAR_EAUTH] = "authentication",
        [MAR_ENET] = "network",
        [MAR_EINTEGRITY] = "integrity",
        [MAR_EUNSUPPORTED] = "unsupported",
        [MAR_ERATELIMIT] = "rate limit",
        [MAR_EIO] = "local storage",
};

const char *mar_err_code_name(int code)
{
    if (code < 0 || (size_t)code >= MAR_ARRAY_SIZE(code_names) || !code_names[code]) {
        return "failure";
    }
    return code_names[code];
}

static int clamp_code(int code)
{
    if (code < MAR_EFAIL || code > MAR_EIO) {
        return MAR_EFAIL;
    }
    return code;
}

int mar_err_set(mar_err **err, int code, int sys_errno, const char *fmt, ...)
{
    code = clamp_code(code);
    if (!err) {
        return -code;
    }
    /* Set exactly once: a second set is a bug in the caller, but the newer message is kept so
     * that nothing leaks. */
    assert(*err == NULL);
    mar_err_free(*err);

    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mar_xvasprintf(fmt, ap);
    va_end(ap);

    mar_err *e = mar_xcalloc(1, sizeof(*e));
    e->code = code;
    e->sys_errno = sys_errno;
    if (sys_errno) {
        e->msg = mar_xasprintf("%s: %s", msg, strerror(sys_errno));
    } else {
        e->msg = TAKE_PTR(msg);
    }
    *err = e;
    return -code;
}

int mar_err_wrap(mar_err **err, const char *fmt, ...)
{
    if (!err || !*err) {
        return -MAR_EFAIL;
    }
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *ctx = mar_xvasprintf(fmt, ap);
    va_end(ap);

    char *msg = mar_xasprintf("%s: %s", ctx, (*err)->msg);
    free((*err)->msg);
    (*err)->msg = msg;
    return -(*err)->code;
}

int mar_err_code(const mar_err *e)
{
    return e ? clamp_code(e->code) : MAR_EFAIL;
}

mar_err *mar_err_free(mar_err *e)
{
    if (e) {
        free(e->msg);
        free(e);
    }
    return NULL;
}
