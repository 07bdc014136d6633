/*
** gen_ixseg.c: writes fuzz_ixseg's seed corpus into DIR: segments made by
** the library's own writer (tokenizers v0 and v1, one document and many,
** terms spanning several blocks, deletes), each cut before its table of
** block checksums, which is what fuzz_ixseg takes.
*/
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "search/search.h"

static const char *WORDS[] = {"coffee", "tea", "morning", "agent", "memory", "user", "likes", "espresso",
                              "running", "café", "東京", "東京都", "日本語", "w1", "w10", "the"};
#define NWORDS (sizeof WORDS / sizeof *WORDS)

static void die(const char *what) {
    fprintf(stderr, "gen_ixseg: %s: %s\n", what, mmfs_errmsg(NULL));
    exit(1);
}

/* One seed: NDOC documents from docno LO (every DEL-th deleted) with
** tokenizer VERSION, written to DIR/seed-NAME. */
static void seed(const char *dir, const char *name, int version, uint32_t lo, uint32_t ndoc, uint32_t del) {
    mmfs__index *ix = mmfs__index_new();
    if (!ix || mmfs__index_set_tokenizer(ix, version, version ? "english" : "")) die("index");
    uint64_t r = 0x9E3779B97F4A7C15ull * (ndoc + 1);
    for (uint32_t d = lo; d < lo + ndoc; d++) {
        char buf[400];
        size_t off = 0;
        uint32_t n = 1 + (uint32_t)(r >> 59);
        for (uint32_t i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t w = (uint32_t)(r >> 33) % NWORDS;
            w = w % (1 + (uint32_t)(r >> 50) % NWORDS); /* skewed: long postings */
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? " " : "", WORDS[w]);
        }
        if (mmfs__index_add(ix, d, buf, off)) die("add");
        if (del && d % del == 0) mmfs__index_remove(ix, d);
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    char seg[MMFS__IXSEG_NAME];
    if (dfd < 0 || mmfs__ixseg_write(ix, dfd, 7, seg, NULL)) die("write");
    mmfs__index_free(ix);
    int fd = openat(dfd, seg, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) die("read");
    uint8_t *b = malloc((size_t)st.st_size);
    if (!b || pread(fd, b, (size_t)st.st_size, 0) != st.st_size) die("read");
    close(fd);
    unlinkat(dfd, seg, 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, (size_t)mmfs__ld64(b + 128), f) != mmfs__ld64(b + 128) || fclose(f)) die(path);
    free(b);
    close(dfd);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_ixseg DIR\n");
        return 2;
    }
    if (mkdir(argv[1], 0755) < 0 && access(argv[1], W_OK) != 0) die(argv[1]);
    seed(argv[1], "one-v1", 1, 5, 1, 0);
    seed(argv[1], "one-v0", 0, 1, 1, 0);
    seed(argv[1], "small-v1", 1, 1, 40, 7);
    seed(argv[1], "small-v0", 0, 100, 40, 0);
    seed(argv[1], "blocks-v1", 1, 1, 600, 5); /* terms past one block: skip tables */
    seed(argv[1], "blocks-v0", 0, 1000, 600, 0);
    return 0;
}
