/* The architecture table (docs/internals/binfmt-and-rosetta.md §6, tonistiigi/binfmt's magic/mask
 * set). Each row refers to its architecture's row of oci/'s ELF table (docs/internals/platforms.md
 * §10) for the OCI name, machine, class and byte order, which the magic must agree with
 * (tests/unit/test-binfmt.c). Enum-indexed with string lookups (docs/internals/style.md §6). */
#include "binfmt.h"

#include <string.h>

static const binfmt_arch table[BINFMT_ARCH_COUNT] = {
        [BINFMT_ARCH_AMD64] =
                {BINFMT_ARCH_AMD64, &oci_elf_arches[OCI_ELF_AMD64], "x86_64",
                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x02\\x00\\x3e\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_386] =
                {BINFMT_ARCH_386, &oci_elf_arches[OCI_ELF_386], "i386",
                 "\\x7fELF\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x02\\x00\\x03\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_ARM64] =
                {BINFMT_ARCH_ARM64, &oci_elf_arches[OCI_ELF_ARM64], "aarch64",
                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x02\\x00\\xb7\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_ARM] =
                {BINFMT_ARCH_ARM, &oci_elf_arches[OCI_ELF_ARM], "arm",
                 "\\x7fELF\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x02\\x00\\x28\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_PPC64LE] = {BINFMT_ARCH_PPC64LE, &oci_elf_arches[OCI_ELF_PPC64LE], "ppc64le",
                                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                                 "\\x00\\x02\\x00\\x15\\x00",
                                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff"
                                 "\\xff\\xff\\xff\\xfe\\xff\\xff\\x00"},
        [BINFMT_ARCH_PPC64] =
                {BINFMT_ARCH_PPC64, &oci_elf_arches[OCI_ELF_PPC64], "ppc64",
                 "\\x7fELF\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x00\\x02\\x00\\x15",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xff\\xfe\\xff\\xff"},
        [BINFMT_ARCH_S390X] =
                {BINFMT_ARCH_S390X, &oci_elf_arches[OCI_ELF_S390X], "s390x",
                 "\\x7fELF\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x00\\x02\\x00\\x16",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xff\\xfe\\xff\\xff"},
        [BINFMT_ARCH_RISCV64] = {BINFMT_ARCH_RISCV64, &oci_elf_arches[OCI_ELF_RISCV64], "riscv64",
                                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                                 "\\x00\\x02\\x00\\xf3\\x00",
                                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff"
                                 "\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_MIPS64LE] =
                {BINFMT_ARCH_MIPS64LE, &oci_elf_arches[OCI_ELF_MIPS64LE], "mips64el",
                 "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                 "\\x00\\x02\\x00\\x08\\x00",
                 "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff\\xff\\xff"
                 "\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"},
        [BINFMT_ARCH_MIPS64] = {BINFMT_ARCH_MIPS64, &oci_elf_arches[OCI_ELF_MIPS64], "mips64",
                                "\\x7fELF\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                                "\\x00\\x00\\x02\\x00\\x08",
                                "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff\\xff\\xff"
                                "\\xff\\xff\\xff\\xff\\xfe\\xff\\xff"},
        [BINFMT_ARCH_LOONG64] = {BINFMT_ARCH_LOONG64, &oci_elf_arches[OCI_ELF_LOONG64],
                                 "loongarch64",
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
        if (strcmp(table[i].elf->arch, oci_arch) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

const binfmt_arch *binfmt_arch_by_elf(unsigned elf_class, unsigned elf_data, unsigned e_machine)
{
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const oci_elf_arch *e = table[i].elf;
        if (e->elf_class == elf_class && e->elf_data == elf_data && e->e_machine == e_machine) {
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
    const oci_elf_arch *e = a->elf;
    out[4] = e->elf_class;
    out[5] = e->elf_data;
    out[6] = 1; /* EI_VERSION */
    /* EI_OSABI 0 (SYSV), EI_ABIVERSION 0, padding 0. */
    bool be = e->elf_data == 2;
    out[16] = be ? 0 : (unsigned char)e_type;
    out[17] = be ? (unsigned char)e_type : 0;
    out[18] = be ? (unsigned char)(e->e_machine >> 8) : (unsigned char)(e->e_machine & 0xff);
    out[19] = be ? (unsigned char)(e->e_machine & 0xff) : (unsigned char)(e->e_machine >> 8);
    out[20] = be ? 0 : 1; /* e_version */
    out[23] = be ? 1 : 0;
}
