/* fuzz_elf: the ELF reader on arbitrary bytes. Seeds: the probe programs of every architecture. */
#include "binfmt/binfmt.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    oci_elf_info e;
    oci_elf_parse(data, size, &e);
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    for (size_t i = 0; i < BINFMT_ARCH_COUNT; i++) {
        mar_buf b = MAR_BUF_INIT(0);
        binfmt_probe_image(binfmt_arch_get((binfmt_arch_id)i), &b);
        emit(b.data, b.len);
        mar_buf_release(&b);
    }
}
