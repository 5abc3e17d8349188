/* fuzz_inputs: the project inputs of mar audit that are not Dockerfiles: compose files,
 * Kubernetes manifests (libyaml's document loader underneath) and plain lists. Each input is read
 * twice, once named like a YAML file (YAML errors are errors) and once not (a file that is not
 * YAML is a list), and every use found must be complete. */
#include "builder/builder.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static void check_uses(const bld_inputs *in)
{
    for (size_t i = 0; i < in->n; i++) {
        const bld_input_use *u = &in->v[i];
        if (!u->image || !u->file || !u->context || u->line == 0 ||
            u->kind == BLD_INPUT_DOCKERFILE || (u->pin && !*u->pin)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"compose.yaml", "images"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        bld_inputs in = BLD_INPUTS_INIT;
        mar_err *err = NULL;
        if (bld_inputs_parse_yaml_or_list(names[k], (const char *)data, size, &in, &err) < 0) {
            if (!err || mar_err_code(err) != MAR_EUSAGE) {
                abort();
            }
            mar_err_free(err);
        } else if (err) {
            abort();
        }
        check_uses(&in);
        bld_inputs_release(&in);
    }
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const char *const seeds[] = {
            /* compose: image, platform pin, build platforms, a service built locally */
            "services:\n"
            "  web:\n"
            "    image: nginx:1.25\n"
            "    platform: linux/amd64\n"
            "  api:\n"
            "    image: ghcr.io/org/api:1.4\n"
            "    build:\n"
            "      context: .\n"
            "      platforms: [linux/amd64, linux/arm64]\n"
            "  local:\n"
            "    build: .\n",
            /* Kubernetes: several documents, every container list, CronJob and List nesting */
            "apiVersion: apps/v1\n"
            "kind: Deployment\n"
            "metadata: {name: api}\n"
            "spec:\n"
            "  template:\n"
            "    spec:\n"
            "      initContainers: [{name: init, image: busybox:1.36}]\n"
            "      containers:\n"
            "      - name: app\n"
            "        image: ghcr.io/org/api:1.4\n"
            "---\n"
            "apiVersion: batch/v1\n"
            "kind: CronJob\n"
            "metadata: {name: nightly}\n"
            "spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: j, image: "
            "alpine:3.19}]}}}}}\n"
            "---\n"
            "apiVersion: v1\n"
            "kind: List\n"
            "items:\n"
            "- apiVersion: v1\n"
            "  kind: Pod\n"
            "  metadata: {name: p}\n"
            "  spec:\n"
            "    ephemeralContainers: [{name: dbg, image: debian:12}]\n"
            "    containers: [{image: redis:7}]\n",
            /* anchors and aliases */
            "x-base: &base {image: postgres:16, platform: linux/arm64}\n"
            "services:\n"
            "  db: *base\n"
            "  db2: {<<: *base}\n",
            /* a plain list with comments, blank lines and trailing spaces */
            "# images\n"
            "alpine:3.19\n"
            "\n"
            "  ghcr.io/org/api:1.4   # pinned\n"
            "docker.io/library/busybox@sha256:"
            "0000000000000000000000000000000000000000000000000000000000000000\n",
            /* not YAML: an error when named .yaml, a list otherwise */
            "services: [\n  web: {image: x\n",
            "key: value\n- item\n",
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        emit(seeds[i], strlen(seeds[i]));
    }
}
