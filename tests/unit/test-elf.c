/* The ELF reader on real probe programs of eleven architectures, on crafted headers (dynamic
 * loaders, the x86 ISA note, Arm float ABI) and on truncated and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <elf.h>

#include "binfmt/binfmt.h"

static void test_probe_images(void **state)
{
    (void)state;
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        const binfmt_arch *a = binfmt_arch_get((binfmt_arch_id)i);
        mar_buf img = MAR_BUF_INIT(0);
        binfmt_probe_image(a, &img);
        oci_elf_info e;
        oci_elf_parse(img.data, img.len, &e);
        assert_true(e.is_elf);
        assert_false(e.truncated);
        assert_string_equal(e.arch, a->elf->arch);
        assert_false(e.dynamic);
        /* Every prefix parses without reading past it. */
        for (size_t n = 0; n < img.len; n++) {
            oci_elf_info t;
            oci_elf_parse(img.data, n, &t);
            if (n >= 20) {
                assert_string_equal(t.arch, a->elf->arch);
            }
        }
        mar_buf_release(&img);
    }
}

/* A header of e_type, class, byte order and machine, cut after e_machine. */
static void header(unsigned char h[20], unsigned elf_class, unsigned elf_data, unsigned machine)
{
    memset(h, 0, 20);
    memcpy(h, ELFMAG, SELFMAG);
    h[EI_CLASS] = (unsigned char)elf_class;
    h[EI_DATA] = (unsigned char)elf_data;
    h[EI_VERSION] = EV_CURRENT;
    bool be = elf_data == ELFDATA2MSB;
    h[be ? 17 : 16] = ET_EXEC;
    h[be ? 19 : 18] = (unsigned char)(machine & 0xff);
    h[be ? 18 : 19] = (unsigned char)(machine >> 8);
}

/* The one ELF table: each row's own header names that row (so no row shadows another), names are
 * unique, and the headers an architecture is also known by map to it. */
static void test_arch_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < OCI_ELF_ARCH_COUNT; i++) {
        const oci_elf_arch *a = oci_elf_arch_get((oci_elf_arch_id)i);
        assert_ptr_equal(a, &oci_elf_arches[i]);
        assert_int_equal(a->id, i);
        assert_ptr_equal(oci_elf_arch_find(a->elf_class, a->elf_data, a->e_machine), a);
        unsigned char h[20];
        header(h, a->elf_class, a->elf_data, a->e_machine);
        oci_elf_info e;
        oci_elf_parse(h, sizeof(h), &e);
        assert_string_equal(e.arch, a->arch);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(oci_elf_arches[j].arch, a->arch);
        }
    }
    assert_null(oci_elf_arch_get(OCI_ELF_ARCH_COUNT));
    static const struct {
        unsigned elf_class, elf_data, machine;
        const char *arch; /* NULL: unknown */
    } k[] = {
            {ELFCLASS64, ELFDATA2MSB, EM_386, "386"},
            {ELFCLASS64, ELFDATA2MSB, EM_X86_64, "amd64"},
            {ELFCLASS32, ELFDATA2MSB, EM_X86_64, "amd64p32"},
            {ELFCLASS32, ELFDATA2LSB, EM_AARCH64, NULL},
            {ELFCLASS64, ELFDATA2LSB, EM_ARM, "arm"},
            {ELFCLASS64, ELFDATA2MSB, EM_ARM, "armbe"},
            {ELFCLASS32, ELFDATA2LSB, EM_PPC64, "ppc"},
            {ELFCLASS64, ELFDATA2LSB, EM_PPC, "ppc"},
            {ELFCLASS64, ELFDATA2LSB, EM_S390, "s390x"},
            {ELFCLASS32, ELFDATA2MSB, EM_RISCV, "riscv"},
            {ELFCLASS32, ELFDATA2LSB, EM_MIPS, "mipsle"},
            {ELFCLASS32, ELFDATA2MSB, EM_LOONGARCH, "loong64"},
            {ELFCLASS64, ELFDATA2MSB, EM_SPARC, "sparc64"},
            {ELFCLASS32, ELFDATA2LSB, EM_SPARCV9, "sparc"},
            {ELFCLASS64, ELFDATA2LSB, EM_NONE, NULL},
            {ELFCLASS64, ELFDATA2LSB, EM_IA_64, NULL},
    };
    for (size_t i = 0; i < MAR_ARRAY_SIZE(k); i++) {
        const oci_elf_arch *a = oci_elf_arch_find(k[i].elf_class, k[i].elf_data, k[i].machine);
        unsigned char h[20];
        header(h, k[i].elf_class, k[i].elf_data, k[i].machine);
        oci_elf_info e;
        oci_elf_parse(h, sizeof(h), &e);
        if (k[i].arch) {
            assert_non_null(a);
            assert_string_equal(a->arch, k[i].arch);
            assert_string_equal(e.arch, k[i].arch);
        } else {
            assert_null(a);
            assert_string_equal(e.arch, "");
        }
    }
}

/* A 64-bit little-endian ELF with PT_INTERP and a PT_GNU_PROPERTY note. */
static size_t craft64(unsigned char *b, uint16_t machine, const char *interp, uint32_t isa_bits)
{
    memset(b, 0, 1024);
    memcpy(b,
           "\x7f"
           "ELF\x02\x01\x01",
           7);
    b[16] = 3; /* ET_DYN */
    b[18] = (unsigned char)machine;
    b[19] = (unsigned char)(machine >> 8);
    b[20] = 1;
    b[32] = 64; /* e_phoff */
    b[52] = 64; /* e_ehsize */
    b[54] = 56; /* e_phentsize */
    b[56] = 2;  /* e_phnum */
    unsigned char *ph = b + 64;
    /* PT_INTERP at 200 */
    ph[0] = 3;
    ph[8] = 200;
    size_t il = strlen(interp) + 1;
    ph[32] = (unsigned char)il;
    memcpy(b + 200, interp, il);
    /* PT_GNU_PROPERTY (0x6474e553) at 400 */
    ph += 56;
    ph[0] = 0x53;
    ph[1] = 0xe5;
    ph[2] = 0x74;
    ph[3] = 0x64;
    ph[8] = 0x90; /* 400 */
    ph[9] = 0x01;
    ph[32] = 32; /* filesz */
    unsigned char *n = b + 400;
    n[0] = 4;  /* namesz */
    n[4] = 16; /* descsz */
    n[8] = 5;  /* NT_GNU_PROPERTY_TYPE_0 */
    memcpy(n + 12, "GNU", 4);
    n[16] = 0x02; /* pr_type 0xc0008002 */
    n[17] = 0x80;
    n[18] = 0x00;
    n[19] = 0xc0;
    n[20] = 4; /* pr_datasz */
    n[24] = (unsigned char)isa_bits;
    return 432;
}

static void test_loader_and_isa(void **state)
{
    (void)state;
    unsigned char b[1024];
    size_t n = craft64(b, 0x3e, "/lib64/ld-linux-x86-64.so.2", 0x4 | 0x1);
    oci_elf_info e;
    oci_elf_parse(b, n, &e);
    assert_true(e.is_elf);
    assert_string_equal(e.arch, "amd64");
    assert_true(e.dynamic);
    assert_string_equal(e.interp, "/lib64/ld-linux-x86-64.so.2");
    assert_string_equal(e.libc, "glibc");
    assert_int_equal(e.x86_isa_level, 3);
    assert_false(e.truncated);

    n = craft64(b, 0xb7, "/lib/ld-musl-aarch64.so.1", 0);
    oci_elf_parse(b, n, &e);
    assert_string_equal(e.arch, "arm64");
    assert_string_equal(e.libc, "musl");
    assert_int_equal(e.x86_isa_level, 0);

    /* Only the first 300 bytes: the loader is there, the note is not. */
    n = craft64(b, 0x3e, "/lib64/ld-linux-x86-64.so.2", 0x8);
    oci_elf_parse(b, 300, &e);
    assert_string_equal(e.interp, "/lib64/ld-linux-x86-64.so.2");
    assert_int_equal(e.x86_isa_level, 0);
    assert_true(e.truncated);
    oci_elf_parse(b, n, &e);
    assert_int_equal(e.x86_isa_level, 4);
}

static void test_arm_float_abi(void **state)
{
    (void)state;
    unsigned char b[64] = {0};
    memcpy(b,
           "\x7f"
           "ELF\x01\x01\x01",
           7);
    b[16] = 2;
    b[18] = 0x28;
    b[36] = 0x00;
    b[37] = 0x04; /* EF_ARM_ABI_FLOAT_HARD 0x400 */
    b[39] = 0x05;
    oci_elf_info e;
    oci_elf_parse(b, sizeof(b), &e);
    assert_string_equal(e.arch, "arm");
    assert_string_equal(e.float_abi, "hard");
    b[37] = 0x02;
    oci_elf_parse(b, sizeof(b), &e);
    assert_string_equal(e.float_abi, "soft");
}

static void test_hostile(void **state)
{
    (void)state;
    unsigned char b[1024];
    oci_elf_info e;
    /* Not ELF at all. */
    oci_elf_parse("#!/bin/sh\n", 10, &e);
    assert_false(e.is_elf);
    oci_elf_parse("", 0, &e);
    assert_false(e.is_elf);
    /* Bad class / data. */
    memset(b, 0, sizeof(b));
    memcpy(b,
           "\x7f"
           "ELF\x07\x09",
           6);
    oci_elf_parse(b, 64, &e);
    assert_false(e.is_elf);
    /* Program headers far outside the buffer, huge counts, overflowing offsets. */
    size_t n = craft64(b, 0x3e, "/x", 1);
    b[32] = 0xff;
    b[39] = 0xff; /* e_phoff ~ 2^63 */
    oci_elf_parse(b, n, &e);
    assert_true(e.truncated);
    n = craft64(b, 0x3e, "/x", 1);
    b[56] = 0xff;
    b[57] = 0xff; /* 65535 program headers */
    oci_elf_parse(b, n, &e);
    assert_true(e.truncated);
    /* PT_INTERP with a size beyond the buffer, or without a NUL. */
    n = craft64(b, 0x3e, "/lib64/ld-linux-x86-64.so.2", 1);
    b[64 + 32] = 0xff;
    b[64 + 33] = 0xff;
    oci_elf_parse(b, n, &e);
    assert_string_equal(e.interp, "");
    /* A note whose sizes overflow. */
    n = craft64(b, 0x3e, "/x", 1);
    b[400] = 0xff;
    b[401] = 0xff;
    b[402] = 0xff;
    b[403] = 0xff;
    oci_elf_parse(b, n, &e);
    assert_int_equal(e.x86_isa_level, 0);
    n = craft64(b, 0x3e, "/x", 1);
    b[404] = 0xff;
    b[405] = 0xff;
    b[406] = 0xff;
    b[407] = 0xff;
    oci_elf_parse(b, n, &e);
    /* A property with a huge datasz. */
    n = craft64(b, 0x3e, "/x", 1);
    b[420] = 0xff;
    b[421] = 0xff;
    b[422] = 0xff;
    b[423] = 0xff;
    oci_elf_parse(b, n, &e);
    assert_int_equal(e.x86_isa_level, 0);
    /* Random bytes behind a valid magic, many times. */
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 4; i < sizeof(b); i++) {
            b[i] = (unsigned char)mar_random_below(256);
        }
        b[4] = (unsigned char)(1 + mar_random_below(2));
        b[5] = (unsigned char)(1 + mar_random_below(2));
        oci_elf_parse(b, (size_t)mar_random_below(sizeof(b) + 1), &e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_probe_images),   cmocka_unit_test(test_arch_table),
            cmocka_unit_test(test_loader_and_isa), cmocka_unit_test(test_arm_float_abi),
            cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
