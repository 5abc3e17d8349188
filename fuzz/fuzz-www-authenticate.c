/* fuzz_www_authenticate: the RFC 7235 challenge parser. */
#include "fuzz.h"
#include "registry/registry-internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    reg_challenge ch[4];
    int n = reg__challenge_parse(s, ch, 4);
    for (int i = 0; i < n; i++) {
        reg__challenge_release(&ch[i]);
    }
    free(s);
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const char *const seeds[] = {
            ("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
             "scope=\"repository:library/alpine:pull\""),
            "Basic realm=\"a, \\\"b\\\"\", Bearer realm=x,error=insufficient_scope",
            "Negotiate abc==, Basic realm=r",
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        emit(seeds[i], strlen(seeds[i]));
    }
}
