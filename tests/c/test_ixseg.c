/* test_ixseg.c: core/src/search/segfile.c and view.c: index segments on
** disk, read with the in-memory index as one. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "search/search.h"

#define NDOC 8000

/* The corpus: texts and tags by docno, made from a seed. */
typedef struct corpus {
    char *text[NDOC + 1];
    char tag[NDOC + 1][8];
    int deleted[NDOC + 1];
} corpus;

static const char *WORDS[] = {"coffee", "tea", "morning", "agent", "memory", "user", "likes", "cold",
                              "brew", "espresso", "espressos", "esp", "memo", "memorize", "the", "a",
                              "running", "runner", "runs", "café", "naïve", "東京", "大阪", "東京都",
                              "日本語", "prefers", "green", "black", "w1", "w10", "w100", "w1000"};
#define NWORDS (sizeof WORDS / sizeof *WORDS)

static void corpus_make(corpus *c, uint64_t seed) {
    for (uint32_t d = 1; d <= NDOC; d++) {
        char buf[1024];
        size_t off = 0;
        uint32_t n = 1 + mmfs_test_rand(&seed) % 40;
        for (uint32_t i = 0; i < n; i++) {
            /* skewed: low words are frequent, so some terms span many blocks */
            uint32_t r = mmfs_test_rand(&seed) % NWORDS;
            uint32_t w = r % (1 + mmfs_test_rand(&seed) % NWORDS);
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? " " : "", WORDS[w]);
        }
        c->text[d] = strdup(buf);
        snprintf(c->tag[d], sizeof c->tag[d], "t%u", d % 3);
    }
}

static void corpus_free(corpus *c) {
    for (uint32_t d = 1; d <= NDOC; d++) free(c->text[d]);
}

static int cb_field(void *ud, uint32_t d, mmfs_slice field, mmfs_slice value) {
    corpus *c = ud;
    return field.len == 3 && memcmp(field.ptr, "tag", 3) == 0 && d <= NDOC &&
           strlen(c->tag[d]) == value.len && memcmp(c->tag[d], value.ptr, value.len) == 0;
}

static int cb_accept(void *ud, uint32_t d) {
    (void)ud;
    return d % 7 != 3;
}

static mmfs__index *ix_new(int version) {
    mmfs__index *ix = mmfs__index_new();
    assert_non_null(ix);
    assert_int_equal(mmfs__index_set_tokenizer(ix, version, version ? "english" : ""), MMFS_OK);
    return ix;
}

static void ix_add(mmfs__index *ix, corpus *c, uint32_t from, uint32_t to) {
    for (uint32_t d = from; d < to; d++)
        assert_int_equal(mmfs__index_add(ix, d, c->text[d], strlen(c->text[d])), MMFS_OK);
}

static const char *QUERIES[] = {
    "coffee", "coffee tea", "espresso*", "mem*", "w1*", "e*", "\"morning coffee\"", "\"cold brew\"",
    "\"the agent\" memory", "+coffee -tea", "coffee tag:t1", "-tea", "東京", "東京都 大阪", "日本*",
    "café naïve", "running", "+user +likes", "(tea OR coffee) -black", "green black brew agent",
    "\"w1 w10\"", "nothingatall", "user likes coffee tea morning agent the"};
#define NQ (sizeof QUERIES / sizeof *QUERIES)

/* Runs every query on REF and on GOT and asserts the same hits, ids and
** scores to 1e-9; with ALLOW_CORRUPT, GOT may instead fail MMFS_CORRUPT
** (returns how many did). */
static int same_answers(mmfs__index *ref, mmfs__index *got, corpus *c, int allow_corrupt) {
    mmfs__search_cb cb = {.ud = c, .field = cb_field, .accept = cb_accept};
    int corrupt = 0;
    for (size_t q = 0; q < NQ; q++) {
        for (size_t k = 1; k <= 50; k += 49) {
            mmfs__hit a[50], b[50];
            size_t na = 0, nb = 0;
            int ra = mmfs__index_search(ref, mmfs_str(QUERIES[q]), &cb, k, a, &na);
            assert_int_equal(ra, MMFS_OK);
            int rb = mmfs__index_search(got, mmfs_str(QUERIES[q]), &cb, k, b, &nb);
            if (rb == MMFS_CORRUPT && allow_corrupt) {
                corrupt++;
                continue;
            }
            if (rb != MMFS_OK) fail_msg("[%s]: rc %d: %s", QUERIES[q], rb, mmfs_errmsg(NULL));
            if (na != nb) fail_msg("[%s] k %zu: %zu hits, want %zu", QUERIES[q], k, nb, na);
            for (size_t i = 0; i < na; i++)
                if (a[i].docno != b[i].docno || fabs(a[i].score - b[i].score) > 1e-9)
                    fail_msg("[%s] hit %zu: %u %.12f, want %u %.12f", QUERIES[q], i, b[i].docno, b[i].score,
                             a[i].docno, a[i].score);
        }
    }
    assert_int_equal(mmfs__index_count(ref), mmfs__index_count(got));
    return corrupt;
}

/* Writes docs [from, to) of C (deleting those marked below DEL_BEFORE
** first) as a segment into DIR; its name into NAME. */
static void write_seg(int dir, corpus *c, int version, uint32_t from, uint32_t to, uint64_t lsn,
                      char name[MMFS__IXSEG_NAME]) {
    mmfs__index *w = ix_new(version);
    ix_add(w, c, from, to);
    for (uint32_t d = from; d < to; d++)
        if (c->deleted[d]) mmfs__index_remove(w, d);
    assert_int_equal(mmfs__ixseg_write(w, dir, lsn, name, NULL), MMFS_OK);
    mmfs__index_free(w);
}

static void attach(mmfs__index *ix, int dir, const char *name, int version) {
    mmfs__tokcfg cfg = {.version = version};
    snprintf(cfg.lang, sizeof cfg.lang, "%s", version ? "english" : "");
    mmfs__ixseg *s;
    int rc = mmfs__ixseg_open(dir, name, &cfg, &s);
    if (rc) fail_msg("open %s: %s", name, mmfs_errmsg(NULL));
    assert_int_equal(mmfs__index_attach(ix, s), MMFS_OK);
}

typedef struct fx {
    char *path;
    int dir;
    corpus c;
} fx;

static fx *fx_new(const char *label, uint64_t seed) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->path = mmfs_test_dir(label);
    f->dir = open(f->path, O_RDONLY | O_DIRECTORY);
    assert_true(f->dir >= 0);
    corpus_make(&f->c, seed);
    return f;
}

static void fx_free(fx *f) {
    close(f->dir);
    mmfs_test_rmdir(f->path);
    corpus_free(&f->c);
    free(f);
}

/* Three segments and an in-memory tail answer as one in-memory index
** does, with deletes before the segments were written and after. */
static void check_identical(int version) {
    fx *f = fx_new("ixseg-same", 42 + (uint64_t)version);
    corpus *c = &f->c;
    for (uint32_t d = 1; d <= NDOC; d += 11) c->deleted[d] = 1; /* before */
    mmfs__index *ref = ix_new(version);
    ix_add(ref, c, 1, NDOC + 1);
    for (uint32_t d = 1; d <= NDOC; d++)
        if (c->deleted[d]) mmfs__index_remove(ref, d);
    char n1[MMFS__IXSEG_NAME], n2[MMFS__IXSEG_NAME], n3[MMFS__IXSEG_NAME];
    write_seg(f->dir, c, version, 1, 400, 100, n1);
    write_seg(f->dir, c, version, 400, 401, 101, n2); /* one document */
    write_seg(f->dir, c, version, 401, 6000, 200, n3);
    assert_string_equal(n1, "0000000001-00000000000000000100.idx");
    mmfs__index *ix = ix_new(version);
    attach(ix, f->dir, n1, version);
    attach(ix, f->dir, n2, version);
    attach(ix, f->dir, n3, version);
    assert_int_equal(mmfs__index_segments(ix), 3);
    ix_add(ix, c, 6000, NDOC + 1);
    for (uint32_t d = 6000; d <= NDOC; d++)
        if (c->deleted[d]) mmfs__index_remove(ix, d);
    same_answers(ref, ix, c, 0);
    /* deletes since the segments: in the bitmap, in the tail */
    for (uint32_t d = 2; d <= NDOC; d += 5) {
        mmfs__index_remove(ref, d);
        mmfs__index_remove(ix, d);
    }
    same_answers(ref, ix, c, 0);
    /* a segment's documents cannot be added again */
    assert_int_equal(mmfs__index_add(ix, 5, "x", 1), MMFS_INVALID);
    mmfs__index_free(ix);
    mmfs__index_free(ref);
    fx_free(f);
}

static void test_identical_v1(void **state) {
    (void)state;
    check_identical(1);
}

static void test_identical_v0(void **state) {
    (void)state;
    check_identical(0);
}

/* Flips one byte at OFF of file NAME in DIR. */
static void flip(int dir, const char *name, uint64_t off) {
    int fd = openat(dir, name, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static uint64_t file_size(int dir, const char *name) {
    struct stat st;
    assert_int_equal(fstatat(dir, name, &st, 0), 0);
    return (uint64_t)st.st_size;
}

/* Writes docs [from, to) of C as KEEP says (MMFS__EX_*, by docno - from)
** into a segment of DIR, tokenizing them: the old checkpoint path. */
static void write_keep(int dir, corpus *c, int version, uint32_t from, uint32_t to, const uint8_t *keep,
                       uint64_t lsn, char name[MMFS__IXSEG_NAME]) {
    mmfs__index *w = ix_new(version);
    for (uint32_t d = from; d < to; d++) {
        if (keep[d - from] == MMFS__EX_OUT) continue;
        assert_int_equal(mmfs__index_add(w, d, c->text[d], strlen(c->text[d])), MMFS_OK);
        if (keep[d - from] == MMFS__EX_DELETED) mmfs__index_remove(w, d);
    }
    assert_int_equal(mmfs__ixseg_write(w, dir, lsn, name, NULL), MMFS_OK);
    mmfs__index_free(w);
}

/* Asserts that segment NAME is the same file in directories A and B. */
static void same_file(int a, int b, const char *name) {
    uint64_t n = file_size(a, name);
    assert_int_equal(n, file_size(b, name));
    char *x = malloc(n + 1), *y = malloc(n + 1);
    assert_true(x && y);
    int fa = openat(a, name, O_RDONLY), fb = openat(b, name, O_RDONLY);
    assert_true(fa >= 0 && fb >= 0);
    assert_int_equal(pread(fa, x, n, 0), (ssize_t)n);
    assert_int_equal(pread(fb, y, n, 0), (ssize_t)n);
    if (memcmp(x, y, n) != 0) fail_msg("%s differs", name);
    close(fa);
    close(fb);
    free(x);
    free(y);
}

/* An index with just segment NAME of DIR. */
static mmfs__index *seg_only(int dir, const char *name, int version) {
    mmfs__index *ix = ix_new(version);
    attach(ix, dir, name, version);
    return ix;
}

/* mmfs__index_extract of a range of a live index (a segment below it,
** documents above the range, deletes), written as a segment, is the file
** the texts tokenized again make, and answers alike: as the live index
** flags them, and as KEEP says (left out, deleted since, deleted in KEEP
** only). */
static void check_extract(int version) {
    fx *f = fx_new("ixseg-extract", 7 + (uint64_t)version);
    char *path2 = mmfs_test_dir("ixseg-extract2");
    int dir2 = open(path2, O_RDONLY | O_DIRECTORY);
    assert_true(dir2 >= 0);
    corpus *c = &f->c;
    for (uint32_t d = 1; d <= NDOC; d += 9) c->deleted[d] = 1;
    char n0[MMFS__IXSEG_NAME], na[MMFS__IXSEG_NAME], nb[MMFS__IXSEG_NAME];
    write_seg(f->dir, c, version, 1, 1000, 50, n0);
    mmfs__index *live = ix_new(version);
    attach(live, f->dir, n0, version);
    ix_add(live, c, 1000, NDOC + 1);
    for (uint32_t d = 1000; d <= NDOC; d++)
        if (c->deleted[d]) mmfs__index_remove(live, d);
    mmfs__index_remove(live, 1000 + 9 * 3); /* again: no drift */
    mmfs__index *x = (mmfs__index *)1;
    assert_int_equal(mmfs__index_extract(&live, NULL, 2000, 2000, NULL, &x), MMFS_NOTFOUND); /* empty */
    assert_null(x);

    /* as the live index flags them */
    assert_int_equal(mmfs__index_extract(&live, NULL, 1000, 6000, NULL, &x), MMFS_OK);
    assert_int_equal(mmfs__ixseg_write(x, f->dir, 300, na, NULL), MMFS_OK);
    mmfs__index_free(x);
    write_seg(dir2, c, version, 1000, 6000, 300, nb);
    assert_string_equal(na, nb);
    same_file(f->dir, dir2, na);
    mmfs__index *ref = seg_only(dir2, nb, version), *got = seg_only(f->dir, na, version);
    same_answers(ref, got, c, 0);
    mmfs__index_free(ref);
    mmfs__index_free(got);

    /* as KEEP says: the live index has deletes KEEP has not */
    for (uint32_t d = 1000; d <= NDOC; d += 5) mmfs__index_remove(live, d);
    uint32_t lo = 1001, hi = 7001;
    uint8_t *keep = malloc(hi - lo);
    assert_non_null(keep);
    for (uint32_t d = lo; d < hi; d++)
        keep[d - lo] = d % 13 == 0 ? MMFS__EX_OUT : c->deleted[d] || d % 17 == 0 ? MMFS__EX_DELETED : MMFS__EX_LIVE;
    assert_int_equal(mmfs__index_extract(&live, NULL, lo, hi, keep, &x), MMFS_OK);
    assert_int_equal(mmfs__ixseg_write(x, f->dir, 400, na, NULL), MMFS_OK);
    mmfs__index_free(x);
    write_keep(dir2, c, version, lo, hi, keep, 400, nb);
    same_file(f->dir, dir2, na);
    ref = seg_only(dir2, nb, version);
    got = seg_only(f->dir, na, version);
    same_answers(ref, got, c, 0);
    mmfs__index_free(ref);
    mmfs__index_free(got);
    free(keep);

    /* a document KEEP wants that the live index lacks: tokenize instead */
    uint8_t k2[4] = {MMFS__EX_LIVE, MMFS__EX_LIVE, MMFS__EX_LIVE, MMFS__EX_LIVE};
    assert_int_equal(mmfs__index_extract(&live, NULL, NDOC - 1, NDOC + 3, k2, &x), MMFS_NOTFOUND);
    assert_null(x);
    mmfs__index_free(live);
    close(dir2);
    mmfs_test_rmdir(path2);
    fx_free(f);
}

/* Extract over mapped segments too: a range across three segments (one
** of one document), their deletes since (the bitmap) and the in-memory
** part is the file tokenizing makes, as the source flags them and as
** KEEP says; a damaged segment block stops it (MMFS_CORRUPT). */
static void check_extract_mapped(int version) {
    fx *f = fx_new("ixseg-exmap", 11 + (uint64_t)version);
    char *path2 = mmfs_test_dir("ixseg-exmap2");
    int dir2 = open(path2, O_RDONLY | O_DIRECTORY);
    assert_true(dir2 >= 0);
    corpus *c = &f->c;
    for (uint32_t d = 1; d <= NDOC; d += 9) c->deleted[d] = 1;
    char n1[MMFS__IXSEG_NAME], n2[MMFS__IXSEG_NAME], n3[MMFS__IXSEG_NAME];
    char na[MMFS__IXSEG_NAME], nb[MMFS__IXSEG_NAME];
    write_seg(f->dir, c, version, 1, 400, 10, n1);
    write_seg(f->dir, c, version, 400, 401, 11, n2);
    write_seg(f->dir, c, version, 401, 3000, 12, n3);
    mmfs__index *live = ix_new(version);
    attach(live, f->dir, n1, version);
    attach(live, f->dir, n2, version);
    attach(live, f->dir, n3, version);
    ix_add(live, c, 3000, NDOC + 1);
    for (uint32_t d = 3000; d <= NDOC; d++)
        if (c->deleted[d]) mmfs__index_remove(live, d);
    for (uint32_t d = 3; d <= NDOC; d += 23) { /* deleted since: the segments' bitmaps */
        c->deleted[d] = 1;
        mmfs__index_remove(live, d);
    }
    const uint32_t ranges[][2] = {{1, 400}, {200, 3500}, {1, NDOC + 1}, {400, 401}, {2999, 3001}};
    for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++) {
        uint32_t lo = ranges[r][0], hi = ranges[r][1];
        mmfs__index *x;
        assert_int_equal(mmfs__index_extract(&live, NULL, lo, hi, NULL, &x), MMFS_OK);
        assert_int_equal(mmfs__ixseg_write(x, f->dir, 500 + r, na, NULL), MMFS_OK);
        mmfs__index_free(x);
        write_seg(dir2, c, version, lo, hi, 500 + r, nb);
        assert_string_equal(na, nb);
        same_file(f->dir, dir2, na);
        mmfs__index *ref = seg_only(dir2, nb, version), *got = seg_only(f->dir, na, version);
        same_answers(ref, got, c, 0);
        mmfs__index_free(ref);
        mmfs__index_free(got);
    }
    /* as KEEP says: a merge that drops what compaction dropped */
    uint32_t lo = 100, hi = 5000;
    uint8_t *keep = malloc(hi - lo);
    assert_non_null(keep);
    for (uint32_t d = lo; d < hi; d++)
        keep[d - lo] = d % 2 == 0 || d % 13 == 0 ? MMFS__EX_OUT : c->deleted[d] ? MMFS__EX_DELETED : MMFS__EX_LIVE;
    mmfs__index *x;
    assert_int_equal(mmfs__index_extract(&live, NULL, lo, hi, keep, &x), MMFS_OK);
    assert_int_equal(mmfs__ixseg_write(x, f->dir, 600, na, NULL), MMFS_OK);
    mmfs__index_free(x);
    write_keep(dir2, c, version, lo, hi, keep, 600, nb);
    same_file(f->dir, dir2, na);
    mmfs__index *ref = seg_only(dir2, nb, version), *got = seg_only(f->dir, na, version);
    same_answers(ref, got, c, 0);
    mmfs__index_free(ref);
    mmfs__index_free(got);
    free(keep);
    mmfs__index_free(live);

    /* a damaged block of a mapped segment: no copy */
    flip(f->dir, n3, file_size(f->dir, n3) / 2);
    live = ix_new(version);
    attach(live, f->dir, n1, version);
    attach(live, f->dir, n2, version);
    attach(live, f->dir, n3, version);
    x = (mmfs__index *)1;
    assert_int_equal(mmfs__index_extract(&live, NULL, 1, 3000, NULL, &x), MMFS_CORRUPT);
    assert_null(x);
    mmfs__index_free(live);
    close(dir2);
    mmfs_test_rmdir(path2);
    fx_free(f);
}

static void test_extract_mapped_v1(void **state) {
    (void)state;
    check_extract_mapped(1);
}

static void test_extract_mapped_v0(void **state) {
    (void)state;
    check_extract_mapped(0);
}

static void test_extract_v1(void **state) {
    (void)state;
    check_extract(1);
}

static void test_extract_v0(void **state) {
    (void)state;
    check_extract(0);
}

/* A flipped byte anywhere: the segment does not open, or every query
** answers right or fails MMFS_CORRUPT, never a wrong hit. */
static void test_flipped_bytes(void **state) {
    (void)state;
    fx *f = fx_new("ixseg-flip", 7);
    corpus *c = &f->c;
    mmfs__index *ref = ix_new(1);
    ix_add(ref, c, 1, NDOC + 1);
    char name[MMFS__IXSEG_NAME];
    write_seg(f->dir, c, 1, 1, NDOC + 1, 9, name);
    uint64_t size = file_size(f->dir, name);
    assert_true(size > 3 * MMFS__IXSEG_BLOCK); /* blocks open does not read */
    int refused = 0, corrupt = 0;
    uint64_t seed = 3;
    for (int i = 0; i < 60; i++) {
        uint64_t off = i < 20 ? (uint64_t)i * 13 : mmfs_test_rand(&seed) % size;
        flip(f->dir, name, off);
        mmfs__tokcfg cfg = {.version = 1};
        snprintf(cfg.lang, sizeof cfg.lang, "english");
        mmfs__ixseg *s;
        int rc = mmfs__ixseg_open(f->dir, name, &cfg, &s);
        if (rc) {
            assert_true(rc == MMFS_CORRUPT || rc == MMFS_INVALID);
            refused++;
        } else {
            mmfs__index *ix = ix_new(1);
            assert_int_equal(mmfs__index_attach(ix, s), MMFS_OK);
            corrupt += same_answers(ref, ix, c, 1) > 0;
            mmfs__index_free(ix);
        }
        flip(f->dir, name, off); /* back */
    }
    assert_true(refused > 0);
    assert_true(corrupt > 0);
    /* and the file as written answers right again */
    mmfs__index *ix = ix_new(1);
    attach(ix, f->dir, name, 1);
    assert_int_equal(same_answers(ref, ix, c, 0), 0);
    mmfs__index_free(ix);
    mmfs__index_free(ref);
    fx_free(f);
}

/* Truncated, missing, newer format, another tokenizer: refused. */
/* Recomputes the block checksums of segment NAME (and their table's), as
** a crafted file would carry them. */
static void reseal(int dir, const char *name) {
    uint64_t n = file_size(dir, name);
    uint8_t *b = malloc(n);
    assert_non_null(b);
    int fd = openat(dir, name, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, n, 0), (ssize_t)n);
    uint64_t off_sums = mmfs__ld64(b + 128), nblk = (off_sums + MMFS__IXSEG_BLOCK - 1) / MMFS__IXSEG_BLOCK;
    for (uint64_t k = 0; k < nblk; k++) {
        uint64_t start = k * MMFS__IXSEG_BLOCK, end = start + MMFS__IXSEG_BLOCK;
        if (end > off_sums) end = off_sums;
        mmfs__st32(b + off_sums + 4 * k, mmfs__crc32c(0, b + start, (size_t)(end - start)));
    }
    mmfs__st32(b + off_sums + 4 * nblk, mmfs__crc32c(0, b + off_sums, (size_t)(4 * nblk)));
    assert_int_equal(pwrite(fd, b, n, 0), (ssize_t)n);
    close(fd);
    free(b);
}

/* Runs every query on IX and an extract of its documents: each may fail
** MMFS_CORRUPT, nothing else.  Returns how many did. */
static int any_answers(mmfs__index *ix, corpus *c) {
    mmfs__search_cb cb = {.ud = c, .field = cb_field, .accept = cb_accept};
    int corrupt = 0;
    for (size_t q = 0; q < NQ; q++) {
        mmfs__hit h[50];
        size_t n = 0;
        int rc = mmfs__index_search(ix, mmfs_str(QUERIES[q]), &cb, 50, h, &n);
        if (rc != MMFS_OK && rc != MMFS_CORRUPT) fail_msg("[%s]: rc %d: %s", QUERIES[q], rc, mmfs_errmsg(NULL));
        corrupt += rc == MMFS_CORRUPT;
    }
    mmfs__index *x = NULL;
    int rc = mmfs__index_extract(&ix, NULL, 0, NDOC + 1, NULL, &x);
    if (rc != MMFS_OK && rc != MMFS_CORRUPT && rc != MMFS_NOTFOUND) fail_msg("extract: rc %d", rc);
    mmfs__index_free(x);
    return corrupt;
}

/* A crafted segment: its postings, positions and skip tables changed
** byte by byte with the checksums made right again.  Open and every query
** either answer or fail MMFS_CORRUPT: never a read outside the term's
** bytes, a loop, or an allocation from a made-up tf (ASan, valgrind). */
static void test_crafted(void **state) {
    (void)state;
    fx *f = fx_new("ixseg-crafted", 5);
    corpus *c = &f->c;
    char name[MMFS__IXSEG_NAME];
    for (uint32_t d = 1; d <= 300; d += 7) c->deleted[d] = 1;
    write_seg(f->dir, c, 1, 1, 301, 9, name); /* one block: every byte read */
    uint64_t size = file_size(f->dir, name);
    int fd = openat(f->dir, name, O_RDONLY);
    uint8_t h[256];
    assert_int_equal(pread(fd, h, sizeof h, 0), (ssize_t)sizeof h);
    close(fd);
    uint64_t off_data = mmfs__ld64(h + 120), off_sums = mmfs__ld64(h + 128);
    assert_true(off_sums < size && off_data < off_sums);
    static const uint8_t vals[] = {0xFF, 0x00, 0x7F};
    int corrupt = 0, opened = 0;
    uint64_t seed = 9;
    for (uint64_t off = mmfs__ld64(h + 104); off < off_sums; off += 1 + mmfs_test_rand(&seed) % 48) {
        int rfd = openat(f->dir, name, O_RDONLY);
        uint8_t old;
        assert_int_equal(pread(rfd, &old, 1, (off_t)off), 1);
        close(rfd);
        for (size_t v = 0; v < sizeof vals; v++) {
            int wfd = openat(f->dir, name, O_RDWR);
            assert_int_equal(pwrite(wfd, &vals[v], 1, (off_t)off), 1);
            close(wfd);
            reseal(f->dir, name);
            mmfs__tokcfg cfg = {.version = 1};
            snprintf(cfg.lang, sizeof cfg.lang, "english");
            mmfs__ixseg *sg;
            if (mmfs__ixseg_open(f->dir, name, &cfg, &sg) != MMFS_OK) continue;
            mmfs__index *ix = ix_new(1);
            assert_int_equal(mmfs__index_attach(ix, sg), MMFS_OK);
            corrupt += any_answers(ix, c) > 0;
            opened++;
            mmfs__index_free(ix);
        }
        int wfd = openat(f->dir, name, O_RDWR);
        assert_int_equal(pwrite(wfd, &old, 1, (off_t)off), 1);
        close(wfd);
    }
    reseal(f->dir, name);
    assert_true(opened > 0);
    assert_true(corrupt > 0);

    /* a made-up tf of 2^32 - 1 on the first posting of a term: a phrase
    ** with it would read that many positions, an extract allocate them */
    fd = openat(f->dir, name, O_RDWR);
    uint64_t off_terms = mmfs__ld64(h + 104), off_strs = mmfs__ld64(h + 112);
    uint32_t nterms = mmfs__ld32(h + 72), t = 0;
    uint8_t e[40];
    for (; t < nterms; t++) {
        assert_int_equal(pread(fd, e, sizeof e, (off_t)(off_terms + 40 * t)), (ssize_t)sizeof e);
        if (mmfs__ld32(e + 24) >= 8) break;
    }
    assert_true(t < nterms);
    char term[64] = {0}, q[160];
    uint16_t slen;
    memcpy(&slen, e + 4, 2);
    assert_true(slen < sizeof term);
    assert_int_equal(pread(fd, term, slen, (off_t)(off_strs + mmfs__ld32(e))), (ssize_t)slen);
    uint8_t post[8] = {0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
    uint64_t at = off_data + mmfs__ld64(e + 16);
    assert_int_equal(pread(fd, post, 1, (off_t)at), 1);
    assert_true(post[0] < 0x80);
    post[0] |= 1;
    assert_int_equal(pwrite(fd, post, 6, (off_t)at), 6);
    close(fd);
    reseal(f->dir, name);
    mmfs__index *ix = seg_only(f->dir, name, 1);
    snprintf(q, sizeof q, "\"%s %s\"", term, term);
    mmfs__hit hit[10];
    size_t nh;
    assert_int_equal(mmfs__index_search(ix, mmfs_str(q), NULL, 10, hit, &nh), MMFS_CORRUPT);
    mmfs__index_free(ix);
    ix = seg_only(f->dir, name, 1);
    mmfs__index *x = NULL;
    assert_int_equal(mmfs__index_extract(&ix, NULL, 1, 301, NULL, &x), MMFS_CORRUPT);
    mmfs__index_free(ix);
    fx_free(f);
}

static void test_refused(void **state) {
    (void)state;
    fx *f = fx_new("ixseg-refused", 9);
    char name[MMFS__IXSEG_NAME];
    write_seg(f->dir, &f->c, 1, 1, 300, 5, name);
    mmfs__tokcfg cfg = {.version = 1};
    snprintf(cfg.lang, sizeof cfg.lang, "english");
    mmfs__ixseg *s;
    assert_int_equal(mmfs__ixseg_open(f->dir, "0000000001-00000000000000000006.idx", &cfg, &s),
                     MMFS_NOTFOUND);
    mmfs__tokcfg other = {.version = 1};
    snprintf(other.lang, sizeof other.lang, "none");
    assert_int_equal(mmfs__ixseg_open(f->dir, name, &other, &s), MMFS_CORRUPT);
    assert_non_null(strstr(mmfs_errmsg(NULL), "tokenizer"));
    /* a newer format, its header checksum right */
    int fd = openat(f->dir, name, O_RDWR);
    assert_true(fd >= 0);
    uint8_t h[144]; /* the header its checksum covers */
    assert_int_equal(pread(fd, h, sizeof h, 0), (ssize_t)sizeof h);
    uint32_t v = MMFS__IXSEG_FORMAT + 1;
    memcpy(h + 8, &v, 4);
    uint32_t crc = mmfs__crc32c(0, h, sizeof h);
    assert_int_equal(pwrite(fd, h, sizeof h, 0), (ssize_t)sizeof h);
    assert_int_equal(pwrite(fd, &crc, 4, sizeof h), 4);
    assert_int_equal(mmfs__ixseg_open(f->dir, name, &cfg, &s), MMFS_INVALID);
    assert_non_null(strstr(mmfs_errmsg(NULL), "newer"));
    v = MMFS__IXSEG_FORMAT;
    memcpy(h + 8, &v, 4);
    crc = mmfs__crc32c(0, h, sizeof h);
    assert_int_equal(pwrite(fd, h, sizeof h, 0), (ssize_t)sizeof h);
    assert_int_equal(pwrite(fd, &crc, 4, sizeof h), 4);
    assert_int_equal(mmfs__ixseg_open(f->dir, name, &cfg, &s), MMFS_OK);
    mmfs__ixseg_close(s);
    /* truncated: by one byte, to half, to nothing */
    uint64_t size = file_size(f->dir, name);
    uint64_t cuts[] = {size - 1, size / 2, 100, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        assert_int_equal(ftruncate(fd, (off_t)cuts[i]), 0);
        assert_int_equal(mmfs__ixseg_open(f->dir, name, &cfg, &s), MMFS_CORRUPT);
    }
    close(fd);
    /* an empty index is not written */
    mmfs__index *ix = ix_new(1);
    char n2[MMFS__IXSEG_NAME];
    assert_int_equal(mmfs__ixseg_write(ix, f->dir, 1, n2, NULL), MMFS_INVALID);
    mmfs__index_free(ix);
    fx_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_v1),
        cmocka_unit_test(test_identical_v0),
        cmocka_unit_test(test_extract_v1),
        cmocka_unit_test(test_extract_v0),
        cmocka_unit_test(test_extract_mapped_v1),
        cmocka_unit_test(test_extract_mapped_v0),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_crafted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
