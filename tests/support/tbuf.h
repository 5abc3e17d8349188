/* Appends in test code: the test chose the buffer's cap, so a failed append (the buffer is then
 * released) is a broken test, reported where it happened rather than as a confusing later
 * mismatch. */
#ifndef MAR_TEST_TBUF_H
#define MAR_TEST_TBUF_H

#include <stdio.h>
#include <stdlib.h>

#define T_BUF(call)                                                                                \
    do {                                                                                           \
        if ((call) < 0) {                                                                          \
            fprintf(stderr, "%s:%d: %s failed: over the buffer's cap\n", __FILE__, __LINE__,       \
                    #call);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
