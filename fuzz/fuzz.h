/* Fuzz harnesses: each defines LLVMFuzzerTestOneInput and its seeds. Built with libFuzzer by
 * ci/fuzz.sh (clang), and with driver.c into a replay test that runs every seed in CTest. */
#ifndef MAR_FUZZ_H
#define MAR_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Calls emit for each built-in seed input. */
void mar_fuzz_seeds(void (*emit)(const void *data, size_t size));

#endif
