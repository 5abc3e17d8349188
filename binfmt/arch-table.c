/* The architecture table (docs/internals/binfmt-and-rosetta.md §6, tonistiigi/binfmt's magic/mask
 * set; ELF machine numbers from docs/internals/platforms.md §10). Enum-indexed with string lookups
 * (docs/internals/style.md §6). */
#include "binfmt.h"

#include <string.h>

static const binfmt_arch table[BINFMT_ARCH_COUNT] = {
        [BINFMT_ARCH_AMD64] =
                {BINFMT_ARCH_AMD64, "amd64", "x86_64", 2, 1, 0x3e,
                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x02\\x00\\x3e\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_386] =
                {BINFMT_ARCH_386, "386", "i386", 1, 1, 0x03,
                 "\\x7fELF\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x02\\x00\\x03\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_ARM64] =
                {BINFMT_ARCH_ARM64, "arm64", "aarch64", 2, 1, 0xb7,
                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x02\\x00\\xb7\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_ARM] =
                {BINFMT_ARCH_ARM, "arm", "arm", 1, 1, 0x28,
                 "\\x7fELF\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x02\\x00\\x28\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_PPC64LE] = {BINFMT_ARCH_PPC64LE, "ppc64le", "ppc64le", 2, 1, 0x15,
                                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                                 "\\x00\\x02\\x00\\x15\\x00",
                                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff"
                                 "\\xff\\xff\\xff\\xfe\\xff\\xff\\x00"},
        [BINFMT_ARCH_PPC64] =
                {BINFMT_ARCH_PPC64, "ppc64", "ppc64", 2, 2, 0x15,
                 "\\x7fELF\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x00\\x02\\x00\\x15",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xff\\xfe\\xff\\xff"},
        [BINFMT_ARCH_S390X] =
                {BINFMT_ARCH_S390X, "s390x", "s390x", 2, 2, 0x16,
                 "\\x7fELF\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x00\\x02\\x00\\x16",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xff\\xfe\\xff\\xff"},
        [BINFMT_ARCH_RISCV64] = {BINFMT_ARCH_RISCV64, "riscv64", "riscv64", 2, 1, 0xf3,
                                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                                 "\\x00\\x02\\x00\\xf3\\x00",
                                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff"
                                 "\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_MIPS64LE] =
                {BINFMT_ARCH_MIPS64LE, "mips64le", "mips64el", 2, 1, 0x08,
                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x00\\x02\\x00\\x08\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_MIPS64] = {BINFMT_ARCH_MIPS64, "mips64", "mips64", 2, 2, 0x08,
                                "\\x7fELF\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                                "\\x00\\x00\\x02\\x00\\x08",
                                "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff\\xff\\xff"
                                "\\xff\\xff\\xff\\xff\\xfe\\xff\\xff"},
        [BINFMT_ARCH_LOONG64] = {BINFMT_ARCH_LOONG64, "loong64", "loongarch64", 2, 1, 0x102,
                                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                                 "\\x00\\x02\\x00\\x02\\x01",
                                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfc\\x00\\xff\\xff\\xff\\xff"
                                 "\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"},
};

const binfmt_arch *binfmt_arch_get(binfmt_arch_id id)
{
    return (unsigned)id < BINFMT_ARCH_COUNT ? &table[id] : NULL;
}

const binfmt_arch *binfmt_arch_by_oci(const char *oci_arch)
{
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        if (strcmp(table[i].oci_arch, oci_arch) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

const binfmt_arch *binfmt_arch_by_elf(unsigned elf_class, unsigned elf_data, unsigned e_machine)
{
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        if (table[i].elf_class == elf_class && table[i].elf_data == elf_data &&
            table[i].e_machine == e_machine) {
            return &table[i];
        }
    }
    return NULL;
}

void binfmt_synthetic_header(const binfmt_arch *a, unsigned e_type,
                             unsigned char out[BINFMT_HEADER_SIZE])
{
    memset(out, 0, BINFMT_HEADER_SIZE);
    memcpy(out,
           "\x7f"
           "ELF",
           4);
    out[4] = a->elf_class;
    out[5] = a->elf_data;
    out[6] = 1; /* EI_VERSION */
    /* EI_OSABI 0 (SYSV), EI_ABIVERSION 0, padding 0. */
    bool be = a->elf_data == 2;
    out[16] = be ? 0 : (unsigned char)e_type;
    out[17] = be ? (unsigned char)e_type : 0;
    out[18] = be ? (unsigned char)(a->e_machine >> 8) : (unsigned char)(a->e_machine & 0xff);
    out[19] = be ? (unsigned char)(a->e_machine & 0xff) : (unsigned char)(a->e_machine >> 8);
    out[20] = be ? 0 : 1; /* e_version */
    out[23] = be ? 1 : 0;
}
