/* ELF machine, class and byte order <-> OCI architecture (docs/internals/platforms.md §10): the one
 * table of the tree. oci_elf_parse names the architecture of a binary with it, and binfmt's arch
 * table refers to its rows for the headers it registers and synthesizes. Machine numbers are
 * <elf.h>'s EM_* constants; the OCI names are Go's GOARCH values, which image-spec
 * config.md "architecture" uses. */
#include "oci.h"

#include <elf.h>

enum { ANY_CLASS = 1, ANY_DATA = 2 };

/* Each row is the header the architecture's binaries carry; `any` widens the match to headers
 * that are only ever that architecture whatever the class or byte order says. */
const oci_elf_arch oci_elf_arches[OCI_ELF_ARCH_COUNT] = {
        [OCI_ELF_AMD64] = {OCI_ELF_AMD64, "amd64", EM_X86_64, ELFCLASS64, ELFDATA2LSB, ANY_DATA},
        [OCI_ELF_386] = {OCI_ELF_386, "386", EM_386, ELFCLASS32, ELFDATA2LSB, ANY_CLASS | ANY_DATA},
        [OCI_ELF_ARM64] = {OCI_ELF_ARM64, "arm64", EM_AARCH64, ELFCLASS64, ELFDATA2LSB, 0},
        [OCI_ELF_ARM] = {OCI_ELF_ARM, "arm", EM_ARM, ELFCLASS32, ELFDATA2LSB, ANY_CLASS},
        [OCI_ELF_PPC64LE] = {OCI_ELF_PPC64LE, "ppc64le", EM_PPC64, ELFCLASS64, ELFDATA2LSB, 0},
        [OCI_ELF_PPC64] = {OCI_ELF_PPC64, "ppc64", EM_PPC64, ELFCLASS64, ELFDATA2MSB, 0},
        [OCI_ELF_S390X] = {OCI_ELF_S390X, "s390x", EM_S390, ELFCLASS64, ELFDATA2MSB, ANY_DATA},
        [OCI_ELF_RISCV64] = {OCI_ELF_RISCV64, "riscv64", EM_RISCV, ELFCLASS64, ELFDATA2LSB,
                             ANY_DATA},
        [OCI_ELF_MIPS64LE] = {OCI_ELF_MIPS64LE, "mips64le", EM_MIPS, ELFCLASS64, ELFDATA2LSB, 0},
        [OCI_ELF_MIPS64] = {OCI_ELF_MIPS64, "mips64", EM_MIPS, ELFCLASS64, ELFDATA2MSB, 0},
        [OCI_ELF_LOONG64] = {OCI_ELF_LOONG64, "loong64", EM_LOONGARCH, ELFCLASS64, ELFDATA2LSB,
                             ANY_CLASS | ANY_DATA},
        [OCI_ELF_AMD64P32] = {OCI_ELF_AMD64P32, "amd64p32", EM_X86_64, ELFCLASS32, ELFDATA2LSB,
                              ANY_DATA},
        [OCI_ELF_ARM64BE] = {OCI_ELF_ARM64BE, "arm64be", EM_AARCH64, ELFCLASS64, ELFDATA2MSB, 0},
        [OCI_ELF_ARMBE] = {OCI_ELF_ARMBE, "armbe", EM_ARM, ELFCLASS32, ELFDATA2MSB, ANY_CLASS},
        [OCI_ELF_PPC] = {OCI_ELF_PPC, "ppc", EM_PPC, ELFCLASS32, ELFDATA2MSB, ANY_CLASS | ANY_DATA},
        [OCI_ELF_S390] = {OCI_ELF_S390, "s390", EM_S390, ELFCLASS32, ELFDATA2MSB, ANY_DATA},
        [OCI_ELF_RISCV] = {OCI_ELF_RISCV, "riscv", EM_RISCV, ELFCLASS32, ELFDATA2LSB, ANY_DATA},
        [OCI_ELF_MIPS] = {OCI_ELF_MIPS, "mips", EM_MIPS, ELFCLASS32, ELFDATA2MSB, 0},
        [OCI_ELF_MIPSLE] = {OCI_ELF_MIPSLE, "mipsle", EM_MIPS, ELFCLASS32, ELFDATA2LSB, 0},
        [OCI_ELF_SPARC64] = {OCI_ELF_SPARC64, "sparc64", EM_SPARCV9, ELFCLASS64, ELFDATA2MSB,
                             ANY_DATA},
        [OCI_ELF_SPARC] = {OCI_ELF_SPARC, "sparc", EM_SPARC, ELFCLASS32, ELFDATA2MSB, ANY_DATA},
};

/* Other headers the same architectures are seen with: a 32-bit object under the 64-bit machine
 * number and the SPARC numbers used across both classes. */
static const oci_elf_arch aliases[] = {
        {OCI_ELF_PPC, "ppc", EM_PPC64, ELFCLASS32, ELFDATA2MSB, ANY_DATA},
        {OCI_ELF_SPARC64, "sparc64", EM_SPARC, ELFCLASS64, ELFDATA2MSB, ANY_DATA},
        {OCI_ELF_SPARC, "sparc", EM_SPARCV9, ELFCLASS32, ELFDATA2MSB, ANY_DATA},
};

static bool row_matches(const oci_elf_arch *a, unsigned elf_class, unsigned elf_data,
                        unsigned e_machine)
{
    return a->e_machine == e_machine && ((a->any & ANY_CLASS) || a->elf_class == elf_class) &&
           ((a->any & ANY_DATA) || a->elf_data == elf_data);
}

const oci_elf_arch *oci_elf_arch_get(oci_elf_arch_id id)
{
    return (unsigned)id < OCI_ELF_ARCH_COUNT ? &oci_elf_arches[id] : NULL;
}

const oci_elf_arch *oci_elf_arch_find(unsigned elf_class, unsigned elf_data, unsigned e_machine)
{
    /* The rows do not overlap (each row's own header finds that row: tests/unit/test-elf.c), so
     * their order does not matter. */
    for (size_t i = 0; i < OCI_ELF_ARCH_COUNT; i++) {
        if (row_matches(&oci_elf_arches[i], elf_class, elf_data, e_machine)) {
            return &oci_elf_arches[i];
        }
    }
    for (size_t i = 0; i < MAR_ARRAY_SIZE(aliases); i++) {
        if (row_matches(&aliases[i], elf_class, elf_data, e_machine)) {
            return &oci_elf_arches[aliases[i].id];
        }
    }
    return NULL;
}
