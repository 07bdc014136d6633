/*
** gen_corpus.c: writes the seed corpus of fuzz_recover into directory
** argv[1]: inputs of every mode (fuzz_store.h) built from valid records
** and frames, some cut short or overwritten, so that the fuzzer starts
** from logs a writer really makes.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_store.h"

static const char *outdir;
static int nseeds;

static void seed(const uint8_t *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%03d", outdir, nseeds++);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    mkdir(outdir, 0755);
    static uint8_t list[16384], frames[FZ_DATA], in[FZ_DATA + 16];
    for (unsigned v = 0; v < 8; v++) {
        size_t n = 0;
        for (unsigned k = 0; k <= v % 3; k++) n += fz_sample_list(list + n, sizeof list - n, v + k);
        /* mode 2: the record list itself */
        in[0] = 2;
        memcpy(in + 1, list, n);
        seed(in, n + 1);
        /* mode 0: the frames, whole, then cut inside the last one */
        uint64_t lsn = 1;
        size_t m = fz_frame_list(list, n, frames, sizeof frames, &lsn);
        in[0] = 0;
        memcpy(in + 1, frames, m);
        seed(in, m + 1);
        seed(in, m + 1 - (v * 13 + 5) % 40);
        /* mode 0: a byte of an early frame flipped (corruption) */
        in[1 + 40 + v] ^= 0x20;
        seed(in, m + 1);
        /* mode 1: the sample frames with these frames spliced in */
        in[0] = 1;
        in[1] = (uint8_t)(v * 3);
        memcpy(in + 2, frames, m);
        seed(in, m + 2);
        /* mode 3: a sealed segment of the list (padded with frame breaks
        ** to the 16-byte split unit), then raw bytes */
        size_t padded = (n + 15) & ~(size_t)15;
        if (padded / 16 <= 255) {
            in[0] = 3;
            in[1] = (uint8_t)(padded / 16);
            memcpy(in + 2, list, n);
            memset(in + 2 + n, 0xff, padded - n);
            memcpy(in + 2 + padded, "\x4d\x4d\x46\x52garbage-tail", 16);
            seed(in, padded + 2 + 16);
        }
    }
    /* Regression: a checksummed memory record whose id is far beyond the
    ** dense range (ids are dense in any log a writer makes).  Found by
    ** fuzz_recover: the engine sized an array by the id and asked for
    ** terabytes.  Recovery must refuse it (CORRUPT) or cope, not abort. */
    in[0] = 2;
    size_t m = fz_memory_item(in + 1, sizeof in - 1, 1);
    m += fz_memory_item(in + 1 + m, sizeof in - 1 - m, (uint64_t)1 << 40);
    seed(in, m + 1);
    /* empty and tiny inputs */
    seed((const uint8_t *)"", 0);
    seed((const uint8_t *)"\x01\x00", 2);
    printf("gen_corpus: %d seeds in %s\n", nseeds, outdir);
    return 0;
}
