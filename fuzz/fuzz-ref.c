/* fuzz_digest_parse and friends: digests, references and platform specifiers from user input. */
#include "fuzz.h"
#include "oci/oci.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    mar_err *e = NULL;
    mar_digest d;
    if (mar_digest_parse(s, &d, &e) == 0) {
        mar_digest_hex(&d);
    }
    e = mar_err_free(e);
    oci_ref r;
    if (oci_ref_parse(s, &r, &e) == 0) {
        free(oci_ref_string(&r));
        oci_ref_release(&r);
    }
    e = mar_err_free(e);
    oci_platform host = {.os = "linux", .arch = "amd64"}, p;
    if (oci_platform_parse(s, &host, &p, &e) == 0) {
        char buf[OCI_PLATFORM_STR_MAX];
        oci_platform_format_all(&p, buf, sizeof(buf));
        oci_matcher m;
        oci_matcher_only(&m, &p);
        oci_matcher_match(&m, &host);
    }
    mar_err_free(e);
    free(s);
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const char *const seeds[] = {
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ("registry.example.com:5000/team/app:1.0@sha256:"
             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "windows(10.0.17763+win32k)/amd64",
            "linux/arm64/v9.2",
            "[::1]:5000/app",
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        emit(seeds[i], strlen(seeds[i]));
    }
}
