/* Host platform detection (docs/internals/platforms.md §6): the OS and architecture of this build,
 * like containerd's Default(); the arm variant from /proc/cpuinfo; the amd64 ISA level from CPUID
 * for reporting only (containerd matches without it). */
#include "oci.h"

#include <fcntl.h>
#include <string.h>
#include <sys/utsname.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static const char *build_arch(void)
{
#if defined(__x86_64__)
    return "amd64";
#elif defined(__aarch64__)
    return "arm64";
#elif defined(__arm__)
    return "arm";
#elif defined(__i386__)
    return "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return "ppc64le";
#elif defined(__s390x__)
    return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    return "riscv64";
#elif defined(__loongarch64)
    return "loong64";
#elif defined(__mips64) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return "mips64le";
#else
    return "unknown";
#endif
}

/* The value of the first "<key>\s*: value" line, trimmed. */
static bool cpuinfo_field(const char *text, const char *key, char *buf, size_t n)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > kl && strncmp(line, key, kl) == 0) {
            const char *p = line + kl;
            const char *end = line + ll;
            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }
            if (p < end && *p == ':') {
                p++;
                while (p < end && (*p == ' ' || *p == '\t')) {
                    p++;
                }
                while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) {
                    end--;
                }
                snprintf(buf, n, "%.*s", (int)(end - p), p);
                return true;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return false;
}

void oci_cpu_variant(const char *cpuinfo, const char *machine, char *buf, size_t n)
{
    char v[64] = "";
    buf[0] = '\0';
    if (!cpuinfo_field(cpuinfo ? cpuinfo : "", "Cpu architecture", v, sizeof(v)) &&
        !cpuinfo_field(cpuinfo ? cpuinfo : "", "CPU architecture", v, sizeof(v))) {
        /* containerd falls back to uname -m: "aarch64" is 8, "armv7l" is 7. */
        if (machine && strcmp(machine, "aarch64") == 0) {
            mar_strlcpy(v, "8", sizeof(v));
        } else if (machine && strncmp(machine, "armv", 4) == 0 && machine[4] >= '5' &&
                   machine[4] <= '8') {
            v[0] = machine[4];
            v[1] = '\0';
        } else {
            return;
        }
    }
    /* A Raspberry Pi 1/Zero reports architecture 7 but is an ARMv6 core. */
    char model[128] = "";
    if (cpuinfo && cpuinfo_field(cpuinfo, "model name", model, sizeof(model)) &&
        strncmp(model, "ARMv6-compatible", 16) == 0) {
        mar_strlcpy(v, "6", sizeof(v));
    }
    for (char *p = v; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    if (strcmp(v, "8") == 0 || strcmp(v, "aarch64") == 0) {
        snprintf(buf, n, "v8");
    } else if (strcmp(v, "7") == 0 || strcmp(v, "7m") == 0 || strcmp(v, "?(12)") == 0 ||
               strcmp(v, "?(13)") == 0 || strcmp(v, "?(14)") == 0 || strcmp(v, "?(15)") == 0 ||
               strcmp(v, "?(16)") == 0 || strcmp(v, "?(17)") == 0) {
        snprintf(buf, n, "v7");
    } else if (strcmp(v, "6") == 0 || strcmp(v, "6tej") == 0) {
        snprintf(buf, n, "v6");
    } else if (strcmp(v, "5") == 0 || strcmp(v, "5t") == 0 || strcmp(v, "5te") == 0 ||
               strcmp(v, "5tej") == 0) {
        snprintf(buf, n, "v5");
    } else {
        snprintf(buf, n, "%s", v);
    }
}

#if defined(__x86_64__)
/* x86-64 psABI micro-architecture levels. */
static int amd64_level(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) {
        return 1;
    }
    unsigned c1 = c;
    bool v2 = (c1 & bit_CMPXCHG16B) && (c1 & bit_POPCNT) && (c1 & bit_SSE3) && (c1 & bit_SSE4_1) &&
              (c1 & bit_SSE4_2) && (c1 & bit_SSSE3);
    unsigned ext_c = 0;
    if (__get_cpuid(0x80000001, &a, &b, &c, &d)) {
        ext_c = c;
    }
    v2 = v2 && (ext_c & bit_LAHF_LM);
    if (!v2) {
        return 1;
    }
    bool osxsave = c1 & bit_OSXSAVE;
    bool avx_os = false;
    unsigned xcr0 = 0;
    if (osxsave) {
        unsigned eax, edx;
        __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
        xcr0 = eax;
        avx_os = (xcr0 & 6) == 6;
    }
    unsigned b7 = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        b7 = b;
    }
    bool v3 = avx_os && (c1 & bit_AVX) && (c1 & bit_FMA) && (c1 & bit_F16C) && (c1 & bit_MOVBE) &&
              (b7 & bit_AVX2) && (b7 & bit_BMI) && (b7 & bit_BMI2) && (ext_c & bit_LZCNT);
    if (!v3) {
        return 2;
    }
    bool avx512_os = (xcr0 & 0xe6) == 0xe6;
    bool v4 = avx512_os && (b7 & bit_AVX512F) && (b7 & bit_AVX512BW) && (b7 & bit_AVX512CD) &&
              (b7 & bit_AVX512DQ) && (b7 & bit_AVX512VL);
    return v4 ? 4 : 3;
}
#endif

void oci_host_detect(oci_host *ret)
{
    memset(ret, 0, sizeof(*ret));
#if defined(__APPLE__)
    mar_strlcpy(ret->platform.os, "darwin", sizeof(ret->platform.os));
#else
    mar_strlcpy(ret->platform.os, "linux", sizeof(ret->platform.os));
#endif
    mar_strlcpy(ret->platform.arch, build_arch(), sizeof(ret->platform.arch));

    struct utsname u;
    if (uname(&u) == 0) {
        mar_strlcpy(ret->machine, u.machine, sizeof(ret->machine));
        mar_strlcpy(ret->kernel, u.release, sizeof(ret->kernel));
    }
    mar_buf info = MAR_BUF_INIT(MAR_CAP_PROC_FILE);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, "/proc/cpuinfo", MAR_CAP_PROC_FILE, &info, &e) < 0) {
        e = mar_err_free(e);
    }
    if (!cpuinfo_field(info.data, "model name", ret->cpu_model, sizeof(ret->cpu_model))) {
        cpuinfo_field(info.data, "cpu model", ret->cpu_model, sizeof(ret->cpu_model));
    }
    if (strcmp(ret->platform.arch, "arm") == 0 || strcmp(ret->platform.arch, "arm64") == 0) {
        oci_cpu_variant(info.data, ret->machine, ret->platform.variant,
                        sizeof(ret->platform.variant));
    }
    mar_buf_release(&info);
    oci_platform_normalize(&ret->platform, &ret->platform);
#if defined(__x86_64__)
    ret->amd64_level = amd64_level();
#endif
}
