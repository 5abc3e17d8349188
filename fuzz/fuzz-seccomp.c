/* Seccomp profiles from --security-opt seccomp=FILE (Docker's JSON) and mar's own format
 * (vm/seccomp/default.txt): parsed, then evaluated for two kernels as vm_spec_json would. */
#include "fuzz.h"
#include "vm/seccomp-internal.h"

#include <string.h>

static const char *const caps[] = {"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_CHROOT"};

static void evaluate(vm_seccomp *p)
{
    vm_security s = {.seccomp = VM_SECCOMP_FILE, .profile = p};
    static const char *const kernels[][2] = {{"x86_64", "6.1.0"}, {"aarch64", "4.4"}};
    for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++) {
        json_t *j = NULL;
        mar_err *e = NULL;
        if (vm_seccomp_json(&s, kernels[i][0], kernels[i][1], caps, 3, &j, &e) == 0) {
            free(json_dumps(j, JSON_COMPACT));
            json_decref(j);
        }
        mar_err_free(e);
    }
    vm_seccomp_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vm_seccomp *p = NULL;
    mar_err *e = NULL;
    if (vm__seccomp_parse_docker("fuzz.json", (const char *)data, size, &p, &e) == 0) {
        evaluate(p);
    }
    e = mar_err_free(e);
    if (vm__seccomp_parse_text("fuzz.txt", (const char *)data, size, &p, &e) == 0) {
        evaluate(p);
    }
    mar_err_free(e);
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const char *const seeds[] = {
            "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1, \"archMap\": "
            "[{\"architecture\": \"SCMP_ARCH_X86_64\", \"subArchitectures\": [\"SCMP_ARCH_X86\"]}],"
            " \"syscalls\": [{\"names\": [\"read\", \"write\"], \"action\": \"SCMP_ACT_ALLOW\"},"
            " {\"name\": \"clone\", \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, "
            "\"value\": 2114060288, \"valueTwo\": 0, \"op\": \"SCMP_CMP_MASKED_EQ\"}], "
            "\"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\"], \"arches\": [\"s390x\"]}},"
            " {\"names\": [\"ptrace\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": "
            "{\"minKernel\": \"4.8\", \"arches\": [\"amd64\"]}}]}",
            "default errno EPERM\narch SCMP_ARCH_AARCH64 SCMP_ARCH_ARM\nallow:\n    read write\n"
            "allow with arg1 & 0x7e020000 == 0 if not cap CAP_SYS_ADMIN and host s390x:\n"
            "    clone\nerrno ENOSYS if not cap CAP_SYS_ADMIN and kernel >= 5.3:\n    clone3\n",
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        emit(seeds[i], strlen(seeds[i]));
    }
    emit(vm__seccomp_default_txt, vm__seccomp_default_txt_len);
}
