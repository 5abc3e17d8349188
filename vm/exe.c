/* Which CPUs a program is built for, from its first bytes: Mach-O (thin, and universal "fat"
 * files listing several slices) and ELF. `mar doctor` uses it on limactl, colima and QEMU: an
 * x86-64 build of them on an M-series Mac runs under Rosetta, sees an x86-64 host and makes every
 * VM x86-64 too, emulated by QEMU's TCG (abiosoft/colima#204, docs/internals/binfmt-and-rosetta.md
 * §10). Mach-O layout: <mach-o/loader.h> and <mach-o/fat.h> (magic, cputype at offset 4; fat
 * headers are big-endian, nfat_arch at 4, then 20-byte fat_arch records, or 32-byte ones for
 * FAT_MAGIC_64). */
#include "vm.h"

#include <string.h>

#define CPU_ARCH_ABI64  0x01000000u
#define CPU_TYPE_X86    7u
#define CPU_TYPE_ARM    12u
#define CPU_TYPE_X86_64 (CPU_TYPE_X86 | CPU_ARCH_ABI64)
#define CPU_TYPE_ARM64  (CPU_TYPE_ARM | CPU_ARCH_ABI64)
#define MH_MAGIC_64     0xfeedfacfu
#define MH_CIGAM_64     0xcffaedfeu
#define FAT_MAGIC       0xcafebabeu
#define FAT_MAGIC_64    0xcafebabfu
#define MAX_FAT_SLICES  16

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static const char *cpu_name(uint32_t cputype)
{
    return cputype == CPU_TYPE_X86_64  ? "amd64"
           : cputype == CPU_TYPE_ARM64 ? "arm64"
           : cputype == CPU_TYPE_X86   ? "386"
           : cputype == CPU_TYPE_ARM   ? "arm"
                                       : NULL;
}

static void add(char *out, size_t n, const char *arch)
{
    if (!arch || strstr(out, arch)) {
        return;
    }
    size_t l = strlen(out);
    snprintf(out + l, n - l, "%s%s", l ? "," : "", arch);
}

bool vm_exe_archs(const unsigned char *buf, size_t len, char *out, size_t n)
{
    out[0] = '\0';
    if (len < 8) {
        return false;
    }
    uint32_t magic = be32(buf);
    if (magic == MH_CIGAM_64) { /* little-endian 64-bit Mach-O, as both CPUs write it */
        add(out, n, cpu_name(le32(buf + 4)));
    } else if (magic == MH_MAGIC_64) {
        add(out, n, cpu_name(be32(buf + 4)));
    } else if (magic == FAT_MAGIC || magic == FAT_MAGIC_64) {
        /* 0xcafebabe is also a Java class file; those have a huge version where nfat_arch is. */
        uint32_t count = be32(buf + 4);
        size_t rec = magic == FAT_MAGIC ? 20 : 32;
        if (count == 0 || count > MAX_FAT_SLICES) {
            return false;
        }
        for (uint32_t i = 0; i < count && 8 + (i + 1) * rec <= len; i++) {
            add(out, n, cpu_name(be32(buf + 8 + i * rec)));
        }
    } else {
        oci_elf_info e;
        oci_elf_parse(buf, len, &e);
        if (e.is_elf && e.arch[0]) {
            add(out, n, e.arch);
        }
    }
    return out[0] != '\0';
}
