/*
** fuzz_ixseg.c: a libFuzzer target for index segment files (ROOT/index/,
** docs/format.md; core/src/search/segfile.c, view.c, the cursors).
**
** Each input is the body of a segment: its bytes before the table of
** block checksums.  The target makes the rest right, as a crafted file
** would: the header's size, checksum-table offset and block size, the
** tokenizer fields (v1 "english" or v0, from the input's version), the
** block checksums and the header's checksum.  So the file is judged by its
** structure alone.  It is written into a temporary directory, opened,
** put under an in-memory part with one document, and searched (fixed
** queries and queries made of its own terms), its live documents
** listed, and its documents extracted.  Anything may fail (MMFS_CORRUPT
** above all); nothing may crash, hang, trip a sanitizer or leak.
**
** Built two ways, as fuzz_recover.c: with clang -fsanitize=fuzzer (the
** 60 s ctest when clang has libFuzzer), and with replay_main.c and the
** sanitizers to run the seeds (gen_ixseg writes them) everywhere.
*/
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"
#include "internal.h"
#include "search/search.h"

#define HEAD 256
#define HEAD_SUM 144
#define MAX_INPUT (1u << 22)

static char dirpath[4096];
static int dirfd_ = -1;

static void cleanup(void) {
    if (dirfd_ >= 0) {
        (void)unlinkat(dirfd_, "seg.idx", 0);
        close(dirfd_);
    }
    if (dirpath[0]) rmdir(dirpath);
}

static void setup(void) {
    const char *base = getenv("MMFS_FUZZ_DIR");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
    if (!base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(dirpath, sizeof dirpath, "%s/mmfs-fuzz-ixseg-XXXXXX", base);
    if (!mkdtemp(dirpath) || (dirfd_ = open(dirpath, O_RDONLY | O_DIRECTORY)) < 0) {
        perror("fuzz_ixseg: temporary directory");
        abort();
    }
    atexit(cleanup);
}

/* Writes the segment file made of BODY[0..n): the checksum table after it
** and the header fields that depend on it.  Returns 0, or -1 if too short. */
static int write_file(const uint8_t *body, size_t n, int *version) {
    if (n < HEAD || n > MAX_INPUT) return -1;
    uint64_t off_sums = ((uint64_t)n + 7) & ~(uint64_t)7;
    uint64_t nblk = (off_sums + MMFS__IXSEG_BLOCK - 1) >> MMFS__IXSEG_BLOCK_BITS;
    uint64_t size = off_sums + 4 * nblk + 4;
    uint8_t *b = calloc(1, (size_t)size);
    if (!b) abort();
    memcpy(b, body, n);
    *version = mmfs__ld32(b + 12) ? 1 : 0;
    mmfs__st32(b + 12, (uint32_t)*version);
    memset(b + 16, 0, MMFS__TOK_LANG);
    if (*version) memcpy(b + 16, "english", 7);
    mmfs__st64(b + 64, size);
    mmfs__st32(b + 76, MMFS__IXSEG_BLOCK_BITS);
    mmfs__st64(b + 128, off_sums);
    mmfs__st32(b + HEAD_SUM, mmfs__crc32c(0, b, HEAD_SUM));
    for (uint64_t k = 0; k < nblk; k++) {
        uint64_t start = k << MMFS__IXSEG_BLOCK_BITS, end = start + MMFS__IXSEG_BLOCK;
        if (end > off_sums) end = off_sums;
        mmfs__st32(b + off_sums + 4 * k, mmfs__crc32c(0, b + start, (size_t)(end - start)));
    }
    mmfs__st32(b + off_sums + 4 * nblk, mmfs__crc32c(0, b + off_sums, (size_t)(4 * nblk)));
    int fd = openat(dirfd_, "seg.idx", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, b, (size_t)size) != (ssize_t)size) {
        perror("fuzz_ixseg: write");
        abort();
    }
    close(fd);
    free(b);
    return 0;
}

static void search(mmfs__index *ix, const char *q, size_t qlen) {
    mmfs__hit hits[20];
    size_t n;
    (void)mmfs__index_search(ix, (mmfs_slice){q, qlen}, NULL, 20, hits, &n);
}

/* Queries made of term I of S: as a term, a prefix and a phrase. */
static void term_queries(mmfs__index *ix, mmfs__ixseg *s, uint32_t i) {
    const uint8_t *t;
    size_t n;
    if (i >= s->nterms || mmfs__ixseg_term(s, i, &t, &n) != MMFS_OK || n > 64) return;
    char q[200];
    for (size_t k = 0; k < n; k++) /* keep the query language out of it */
        q[k] = t[k] == '"' || t[k] == '*' || t[k] == '(' || t[k] == ')' || t[k] == ':' ? 'x' : (char)t[k];
    search(ix, q, n);
    q[n] = '*';
    search(ix, q, n + 1);
    int m = snprintf(q, sizeof q, "\"%.*s %.*s\"", (int)n, (const char *)t, (int)n, (const char *)t);
    if (m > 0 && (size_t)m < sizeof q && !memchr(t, '"', n)) search(ix, q, (size_t)m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (dirfd_ < 0) setup();
    int version;
    if (write_file(data, size, &version)) return 0;
    mmfs__tokcfg cfg = {.version = version};
    snprintf(cfg.lang, sizeof cfg.lang, "%s", version ? "english" : "");
    mmfs__ixseg *s;
    if (mmfs__ixseg_open(dirfd_, "seg.idx", &cfg, &s) != MMFS_OK) return 0;
    mmfs__index *ix = mmfs__index_new();
    if (!ix || mmfs__index_set_tokenizer(ix, version, cfg.lang) != MMFS_OK || mmfs__index_attach(ix, s) != MMFS_OK) {
        mmfs__ixseg_close(s);
        mmfs__index_free(ix);
        return 0;
    }
    uint32_t lo = s->lo, hi = s->hi;
    if (hi < UINT32_MAX - 1) (void)mmfs__index_add(ix, hi, "morning coffee tea", 18);
    static const char *fixed[] = {"coffee", "coffee tea", "esp*", "\"morning coffee\"", "+user -tea", "東京*"};
    for (size_t q = 0; q < sizeof fixed / sizeof *fixed; q++) search(ix, fixed[q], strlen(fixed[q]));
    term_queries(ix, s, 0);
    term_queries(ix, s, s->nterms / 2);
    term_queries(ix, s, s->nterms ? s->nterms - 1 : 0);
    uint32_t steps = 0;
    for (uint64_t d = mmfs__doc_next_live(ix, lo); d < hi && steps < 100000; d = mmfs__doc_next_live(ix, d + 1))
        steps++;
    mmfs__index *x = NULL;
    if (mmfs__index_extract(&ix, NULL, lo, hi < UINT32_MAX ? hi + 1 : hi, NULL, &x) == MMFS_OK) mmfs__index_free(x);
    mmfs__index_remove(ix, lo);
    search(ix, "coffee", 6);
    mmfs__index_free(ix);
    return 0;
}
