/* Crafted images for integration tests: layers built with the tests' tar writer, pushed to the
 * bed's registry. */
#ifndef MAR_TEST_ITPUSH_H
#define MAR_TEST_ITPUSH_H

#include "itest.h"
#include "tarw.h"

/* "amd64" or "arm64": the platform of this host, as the pushed config names it. */
const char *itest_host_arch(void);
/* Pushes repo:tag, an OCI manifest for the host's platform whose layers are the tar streams (end
 * blocks added, gzip-compressed). Returns: the reference (caller frees). Fails the test on error.
 */
char *itest_push_image(const char *repo, const char *tag, mar_buf *tars, size_t n);

#endif
