/* fuzz_manifest_parse: manifests, indexes and configs, with the first byte choosing the
 * Content-Type the document arrives with. */
#include "fuzz.h"
#include "oci/oci.h"

#include <string.h>

static const char *const types[] = {OCI_MT_INDEX,           OCI_MT_MANIFEST,    OCI_MT_DOCKER_LIST,
                                    OCI_MT_DOCKER_MANIFEST, "application/json", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const char *ct = types[data[0] % 6];
    oci_manifest *m = NULL;
    mar_err *e = NULL;
    if (oci_manifest_parse(data + 1, size - 1, ct, &m, &e) == 0) {
        for (size_t i = 0; i < m->n_manifests; i++) {
            oci_descriptor_is_attestation(&m->manifests[i]);
        }
        oci_manifest_total_size(m);
        oci_manifest_free(m);
    }
    e = mar_err_free(e);
    oci_config *c = NULL;
    if (oci_config_parse(data + 1, size - 1, &c, &e) == 0) {
        oci_config_free(c);
    }
    mar_err_free(e);
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const char *const seeds[] = {
            ("\x00{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
             "\"manifests\":[{\"mediaType\":\"application/"
             "vnd.oci.image.manifest.v1+json\",\"digest\":"
             "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\",\"size\":"
             "1,"
             "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}}]}"),
            ("\x01{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/"
             "vnd.oci.image.config."
             "v1+json\",\"digest\":\"sha256:"
             "0000000000000000000000000000000000000000000000000000000000"
             "000000\",\"size\":2},\"layers\":[]}"),
            ("\x04{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\",\"config\":{"
             "\"Cmd\":"
             "[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"),
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        emit(seeds[i], 1 + strlen(seeds[i] + 1));
    }
}
