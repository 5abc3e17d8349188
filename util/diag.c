/* The diagnostics sink: libraries never print (docs/internals/style.md §2); cli/ installs where
 * lines go. */
#include "util.h"

static mar_diag_fn sink;
static void *sink_data;
static bool debug_on;

void mar_diag_set_sink(mar_diag_fn fn, void *userdata)
{
    sink = fn;
    sink_data = userdata;
}

void mar_diag_set_debug(bool on)
{
    debug_on = on;
}

bool mar_diag_debug_enabled(void)
{
    return debug_on;
}

static void emit(mar_diag_level level, const char *fmt, va_list ap) MAR_PRINTF(2, 0);
static void emit(mar_diag_level level, const char *fmt, va_list ap)
{
    if (!sink) {
        return;
    }
    _cleanup_free_ char *msg = mar_xvasprintf(fmt, ap);
    sink(level, msg, sink_data);
}

void mar_diag_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(MAR_DIAG_WARN, fmt, ap);
    va_end(ap);
}

void mar_diag_notice(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(MAR_DIAG_NOTICE, fmt, ap);
    va_end(ap);
}

void mar_debug(const char *fmt, ...)
{
    if (!debug_on) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    emit(MAR_DIAG_DEBUG, fmt, ap);
    va_end(ap);
}
