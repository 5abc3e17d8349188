/* Dockerfile parser test cases shared by tests/unit/test-dockerfile*.c: parse a text and compare
 * bld_dockerfile_dump's text, or the error. */
#ifndef MAR_TEST_DFCHECK_H
#define MAR_TEST_DFCHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "builder/builder.h"

/* Parses `in` and compares the dump (want) or the error (want NULL, err a substring). */
static inline int check(const char *name, const char *in, const char *want, const char *err_want)
{
    bld_dockerfile *df = NULL;
    mar_err *err = NULL;
    int rc = bld_dockerfile_parse(in, strlen(in), "Dockerfile", &df, &err);
    int bad = 0;
    if (want) {
        if (rc < 0) {
            print_error("%s: unexpected error: %s\n", name, err->msg);
            bad = 1;
        } else {
            char *d = bld_dockerfile_dump(df);
            if (strcmp(d, want) != 0) {
                print_error("%s: got\n%s\nwant\n%s\n", name, d, want);
                bad = 1;
            }
            free(d);
        }
    } else if (rc == 0) {
        char *d = bld_dockerfile_dump(df);
        print_error("%s: want error '%s', got\n%s\n", name, err_want, d);
        free(d);
        bad = 1;
    } else if (err->code != MAR_EUSAGE || !strstr(err->msg, err_want)) {
        print_error("%s: want error '%s', got %d '%s'\n", name, err_want, err->code, err->msg);
        bad = 1;
    }
    bld_dockerfile_free(df);
    mar_err_free(err);
    return bad;
}

typedef struct pcase {
    const char *name, *in, *want, *err;
} pcase;

static inline int run_cases(const pcase *c, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad += check(c[i].name, c[i].in, c[i].want, c[i].err);
    }
    return bad;
}

#endif
