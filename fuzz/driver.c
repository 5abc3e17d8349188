/* Replay driver: runs a harness over its built-in seeds and over every file named on the
 * command line (or in directories named there). With --write-seeds DIR it writes the seeds as a
 * libFuzzer corpus instead. */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t runs;
static const char *seed_dir;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void run_one(const void *data, size_t size)
{
    LLVMFuzzerTestOneInput(data, size);
    runs++;
}

/* A seed, every truncation of its first 64 bytes, and 200 copies with a few random bytes
 * changed: a deterministic smoke test for builds without libFuzzer. */
static void run(const void *data, size_t size)
{
    if (seed_dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/seed-%zu", seed_dir, runs++);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(data, 1, size, f);
            fclose(f);
        }
        return;
    }
    run_one(data, size);
    for (size_t n = 0; n < size && n < 64; n++) {
        run_one(data, n);
    }
    if (!size) {
        return;
    }
    unsigned char *m = malloc(size);
    for (int k = 0; k < 200; k++) {
        memcpy(m, data, size);
        int changes = 1 + (int)(next() % 4);
        for (int c = 0; c < changes; c++) {
            m[next() % size] = (unsigned char)next();
        }
        run_one(m, size);
    }
    free(m);
}

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(buf, 1, n > 0 ? (size_t)n : 0, f);
    fclose(f);
    run(buf, got);
    free(buf);
}

int main(int argc, char **argv)
{
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--write-seeds") == 0) {
        seed_dir = argv[2];
        mkdir(seed_dir, 0755);
        i = argc;
    }
    mar_fuzz_seeds(run);
    for (; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *de;
            while (d && (de = readdir(d))) {
                if (de->d_name[0] != '.') {
                    char p[4096];
                    snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
                    run_file(p);
                }
            }
            if (d) {
                closedir(d);
            }
        } else {
            run_file(argv[i]);
        }
    }
    printf("%zu inputs\n", runs);
    return 0;
}
