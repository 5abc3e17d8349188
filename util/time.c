/* Clocks and randomness. */
#include "util.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>

uint64_t mar_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t mar_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

uint64_t mar_random_below(uint64_t n)
{
    if (n <= 1) {
        return 0;
    }
    /* Rejection sampling keeps the distribution uniform. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t v = 0;
        ssize_t r = getrandom(&v, sizeof(v), 0);
        if (r != (ssize_t)sizeof(v)) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            /* Jitter only: a weak fallback is acceptable. */
            v = mar_now_ms() * 6364136223846793005u + 1442695040888963407u;
        }
        if (v < limit) {
            return v % n;
        }
    }
}
