/* fuzz_layer: the layer reader and deep scan on arbitrary (tar, gzip or zstd) bytes. */
#include "fuzz.h"
#include "oci/oci.h"
#include "tarw.h"

#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    lseek(fd, 0, SEEK_SET);
    oci_layer_limits lim;
    oci_layer_limits_default(&lim);
    lim.max_uncompressed = 64u << 20;
    oci_scan_layer *l = NULL;
    mar_err *e = NULL;
    if (oci_scan_layer_read(fd, &lim, &l, &e) == 0) {
        oci_scan_view v;
        oci_scan_view_build(&l, 1, &v);
        oci_elf_summary s;
        oci_elf_summarize(&v, NULL, "amd64", &s);
        oci_scan_view_release(&v);
        oci_scan_layer_free(l);
    }
    mar_err_free(e);
    close(fd);
    return 0;
}

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    mar_buf t = MAR_BUF_INIT(MAR_BUF_NOCAP), gz = MAR_BUF_INIT(MAR_BUF_NOCAP),
            zs = MAR_BUF_INIT(MAR_BUF_NOCAP);
    tarw_add(&t, &(tarw_entry){.name = "bin/", .type = '5', .mode = 0755});
    tarw_add(&t, &(tarw_entry){.name = "bin/x",
                               .type = '0',
                               .mode = 0755,
                               .data = "\x7f"
                                       "ELF\x02\x01\x01",
                               .size = 7});
    tarw_add(&t, &(tarw_entry){.name = "bin/sh", .type = '2', .linkname = "x"});
    tarw_add(&t, &(tarw_entry){.name = "etc/.wh.gone", .type = '0', .mode = 0644});
    tarw_finish(&t);
    tarw_gzip(&t, &gz);
    tarw_zstd(&t, &zs);
    emit(t.data, t.len);
    emit(gz.data, gz.len);
    emit(zs.data, zs.len);
    mar_buf_release(&t);
    mar_buf_release(&gz);
    mar_buf_release(&zs);
}
