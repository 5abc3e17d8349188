/* fuzz_cred_helper: what a `docker-credential-<helper> get` wrote, as mar interprets it. The
 * first byte sets the exit status (0, 1 or 2), a timeout and a capped stdout; the rest is stdout,
 * then, after the first NUL, stderr. */
#include "fuzz.h"
#include "registry/registry-internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    mar_proc_result r = {
            .status = (data[0] & 3) % 3,
            .timed_out = (data[0] & 0x10) != 0,
            .out_capped = (data[0] & 0x20) != 0,
            .out = MAR_BUF_INIT(MAR_CAP_HELPER_OUT),
            .errout = MAR_BUF_INIT(MAR_CAP_HELPER_ERR),
    };
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    const uint8_t *nul = memchr(p, 0, n);
    size_t out_len = nul ? (size_t)(nul - p) : n;
    /* Output over the caps never reaches the parser: mar_proc_run stops reading at them. */
    if (mar_buf_append(&r.out, p, out_len) < 0 ||
        (nul && mar_buf_append(&r.errout, nul + 1, n - out_len - 1) < 0)) {
        mar_proc_result_release(&r);
        return 0;
    }
    reg_creds cr = {0};
    reg__creds_helper_result("fuzz", &r, &cr);
    reg__creds_release(&cr);
    mar_proc_result_release(&r);
    return 0;
}

#define SEED(s)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const struct {
        const char *data;
        size_t size;
    } seeds[] = {
            SEED("\x00{\"ServerURL\":\"ghcr.io\",\"Username\":\"u\",\"Secret\":\"s\"}"),
            SEED("\x00{\"ServerURL\":\"ghcr.io\",\"Username\":\"<token>\",\"Secret\":\"refresh\"}"),
            SEED("\x00{\"Username\":\"u\"}"),
            SEED("\x00{\"Secret\":\"\\u0000hidden\"}"),
            SEED("\x01"
                 "credentials not found in native keychain\n"),
            SEED("\x02"
                 "secret-looking text\0error: cannot reach the keyring\nsecond line"),
            SEED("\x10{\"Secret\":\"s\"}"),
            SEED("\x20{\"Secret\":\"s\""),
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        emit(seeds[i].data, seeds[i].size);
    }
}
