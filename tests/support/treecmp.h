/* A canonical listing of a directory tree for comparing unpack results: one line per entry,
 * sorted, with type, mode, owner, size and a content hash (or link target, or device number).
 * Test code only. */
#ifndef MAR_TEST_TREECMP_H
#define MAR_TEST_TREECMP_H

#include "util/util.h"

typedef enum {
    TREE_DIR_TIMES = 1 << 0, /* include directory mtimes */
    TREE_INODES = 1 << 1,    /* group hard links: "=N" names the first path of each inode */
} tree_flags;

/* Returns: the listing (caller frees), or NULL when root cannot be walked. */
char *tree_listing(const char *root, unsigned flags);

/* Prints the lines that differ between two listings to stderr; returns true when equal. */
bool tree_equal(const char *a, const char *b, const char *label_a, const char *label_b);

#endif
