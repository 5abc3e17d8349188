/* fuzz_docker_config: Docker's config.json as mar reads it for credentials: parsed, then looked up
 * for a few registry hosts (credHelpers, credsStore, auths entries with base64 'auth',
 * username/password, identity and registry tokens). */
#include "fuzz.h"
#include "registry/registry-internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *cfg = reg__creds_config_parse(data, size, "config.json");
    if (!cfg) {
        return 0;
    }
    static const char *const hosts[] = {"registry-1.docker.io", "ghcr.io", "127.0.0.1:5000",
                                        "localhost"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        const char *helper = reg__creds_config_helper(cfg, hosts[i]);
        if (helper) {
            (void)strlen(helper);
        }
        reg_creds cr = {0};
        if (reg__creds_config_auths(cfg, hosts[i], &cr)) {
            reg__creds_any(&cr);
        }
        reg__creds_release(&cr);
    }
    json_decref(cfg);
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const char *const seeds[] = {
            /* base64 "user:pass" under Docker Hub's legacy key; a helper for ghcr.io */
            ("{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"dXNlcjpwYXNz\"},"
             "\"127.0.0.1:5000\":{\"username\":\"u\",\"password\":\"p\"}},"
             "\"credHelpers\":{\"ghcr.io\":\"pass\"}}"),
            /* padding of one and two '=', no colon, an identity and a registry token */
            ("{\"auths\":{\"http://127.0.0.1:5000/v2/\":{\"auth\":\"dTpwYQ==\","
             "\"identitytoken\":\"refresh\"},\"localhost\":{\"auth\":\"dXNlcg==\"},"
             "\"ghcr.io\":{\"auth\":\"dTpwYWI=\",\"registrytoken\":\"bearer\"}}}"),
            /* a credsStore for everything, an empty helper name, wrong types */
            ("{\"credsStore\":\"desktop\",\"credHelpers\":{\"localhost\":\"\","
             "\"registry-1.docker.io\":7},\"auths\":{\"ghcr.io\":\"x\",\"docker.io\":{\"auth\":"
             "\"=\"}}}"),
            "{\"auths\":{\"https://localhost/\":{\"auth\":\"!!!!\"}}}",
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        emit(seeds[i], strlen(seeds[i]));
    }
}
