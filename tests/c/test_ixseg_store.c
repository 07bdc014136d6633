/* test_ixseg_store.c: the memories' index segments of a store: written by
** checkpoints (store/ckpt_index.c), mapped at open, merged, kept by
** compaction, and damaged ones never giving a wrong answer. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "internal.h"

static const char *WORDS[] = {"coffee", "tea", "morning", "agent", "memory", "user", "likes", "cold",
                              "brew", "espresso", "espressos", "memo", "memorize", "the", "running",
                              "runner", "café", "東京", "大阪", "東京都", "日本語", "green", "black", "w1",
                              "w10", "w100"};
#define NWORDS (sizeof WORDS / sizeof *WORDS)

static const char *QUERIES[] = {"coffee", "coffee tea", "espresso*", "mem*", "w1*", "\"morning coffee\"",
                                "\"cold brew\"", "+coffee -tea", "coffee tag:t1", "東京", "東京都 大阪",
                                "café", "running", "+user +likes", "green black brew agent", "-tea"};
#define NQ (sizeof QUERIES / sizeof *QUERIES)

static uint64_t seed = 11;

static void add_some(mmfs_db *db, int n) {
    for (int i = 0; i < n; i++) {
        char buf[512];
        size_t off = 0;
        uint32_t k = 1 + mmfs_test_rand(&seed) % 16;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t r = mmfs_test_rand(&seed) % NWORDS;
            uint32_t w = r % (1 + mmfs_test_rand(&seed) % NWORDS);
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", j ? " " : "", WORDS[w]);
        }
        char tag[8];
        snprintf(tag, sizeof tag, "t%u", mmfs_test_rand(&seed) % 3);
        mmfs_slice t = mmfs_str(tag);
        MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(buf), &t, 1, NULL, NULL));
    }
}

static void del_every(mmfs_db *db, uint64_t from, uint64_t to, uint64_t step) {
    for (uint64_t id = from; id < to; id += step) MMFS_OK_OR_FAIL(mmfs_delete_memory(db, id, NULL));
}

/* Every query's hits as "id:score" (scores to 1e-10), malloc'd.  LIMIT
** large: the set of matches, in order. */
static char *answers(mmfs_db *db, size_t limit) {
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (size_t q = 0; q < NQ; q++) {
        mmfs_filter f = {0};
        f.limit = limit;
        mmfs_memories *m;
        int rc = mmfs_search_memory(db, mmfs_str(QUERIES[q]), &f, &m);
        if (rc) fail_msg("[%s]: %s", QUERIES[q], mmfs_errmsg(db));
        for (size_t i = 0; i < m->count; i++) {
            if (cap - n < 64) {
                out = realloc(out, cap *= 2);
                assert_non_null(out);
            }
            n += (size_t)snprintf(out + n, cap - n, "%llu:%.10f ", (unsigned long long)m->items[i].id,
                                  m->items[i].score);
        }
        n += (size_t)snprintf(out + n, cap - n, "\n");
        mmfs_free(m);
    }
    return out;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ANSWERS with each line's ids sorted and the scores left out. */
static char *id_sets(const char *answers) {
    size_t len = strlen(answers);
    char *out = malloc(len + 1);
    uint64_t *ids = malloc((len / 2 + 1) * sizeof *ids);
    assert_non_null(out);
    assert_non_null(ids);
    size_t off = 0;
    for (const char *p = answers; *p;) {
        size_t n = 0;
        while (*p && *p != '\n') {
            ids[n++] = strtoull(p, NULL, 10);
            p = strchr(p, ' ') + 1;
        }
        qsort(ids, n, sizeof *ids, cmp_u64);
        for (size_t i = 0; i < n; i++) off += (size_t)sprintf(out + off, "%llu ", (unsigned long long)ids[i]);
        out[off++] = '\n';
        if (*p) p++;
    }
    out[off] = 0;
    free(ids);
    return out;
}

static void same(const char *want, const char *got, const char *what) {
    if (strcmp(want, got) == 0) return;
    const char *a = want, *b = got;
    while (*a && *a == *b) a++, b++;
    fail_msg("%s: answers differ at [%.60s], want [%.60s]", what, b, a);
}

static mmfs_options options(void) {
    mmfs_options o = mmfs_test_options(64 << 10);
    o.checkpoint_bytes = (uint64_t)1 << 40; /* on (compaction ends with one), never by itself */
    return o;
}

/* The .idx files of DIR/index, sorted, space-separated, into OUT. */
static int idx_files(const char *dir, char *out, size_t len) {
    char p[4096];
    snprintf(p, sizeof p, "%s/index", dir);
    struct dirent **names;
    int n = scandir(p, &names, NULL, alphasort), k = 0;
    size_t off = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]->d_name);
        if (l > 4 && strcmp(names[i]->d_name + l - 4, ".idx") == 0) {
            off += (size_t)snprintf(out + off, len - off, "%s ", names[i]->d_name);
            k++;
        }
        free(names[i]);
    }
    if (n >= 0) free(names);
    return k;
}

/* A store reopened from checkpoints with segments (deletes before and
** after each) answers as the handle that wrote it, scores included. */
static void check_reopen(int old_tokenizer) {
    char *dir = mmfs_test_dir("ixseg-reopen");
    mmfs_options o = options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    if (old_tokenizer) {
        MMFS_OK_OR_FAIL(mmfs_close(db));
        char path[4096], buf[2048], out[2048];
        snprintf(path, sizeof path, "%s/MANIFEST", dir);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *tl = strstr(buf, "tokenizer ");
        assert_non_null(tl);
        size_t n = (size_t)(tl - buf);
        memcpy(out, buf, n);
        n += (size_t)snprintf(out + n, sizeof out - n, "crc %08x\n", mmfs__crc32c(0, out, n));
        f = fopen(path, "wb");
        assert_int_equal(fwrite(out, 1, n, f), n);
        fclose(f);
        db = mmfs_test_open(dir, &o);
    }
    add_some(db, 400);
    del_every(db, 1, 401, 13);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    add_some(db, 400);
    del_every(db, 3, 801, 7);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    add_some(db, 150);
    del_every(db, 5, 951, 31);
    char *live = answers(db, 30);
    /* the writer moved to its checkpoint: its segments, mapped */
    assert_int_equal(mmfs_test_stats(db).index_segments, 2);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char files[1024];
    assert_int_equal(idx_files(dir, files, sizeof files), 2);

    db = mmfs_test_open(dir, &o);
    mmfs_store_stats st = mmfs_test_stats(db);
    assert_true(st.checkpoint_lsn > 0);
    assert_int_equal(st.index_segments, 2);
    char *got = answers(db, 30);
    same(live, got, "reopened");
    free(got);
    /* deletes since the reopen reach the mapped segments */
    del_every(db, 2, 951, 9);
    char *after = answers(db, 30);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    /* the same from the whole log */
    char ck[4096], off[4096];
    snprintf(ck, sizeof ck, "%s/ckpt", dir);
    snprintf(off, sizeof off, "%s/ckpt.off", dir);
    assert_int_equal(rename(ck, off), 0);
    db = mmfs_test_open(dir, &o);
    assert_int_equal(mmfs_test_stats(db).index_segments, 0);
    got = answers(db, 30);
    same(got, after, "deletes after reopening");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(got);
    free(after);
    free(live);
    mmfs_test_rmdir(dir);
}

static void test_reopen(void **state) {
    (void)state;
    check_reopen(0);
}

static void test_reopen_old_tokenizer(void **state) {
    (void)state;
    check_reopen(1);
}

/* Many checkpoints: the merge keeps at most 8 segments, files no kept
** checkpoint lists are removed, answers stay the same. */
static void test_merge(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ixseg-merge");
    mmfs_options o = options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    uint64_t n = 0;
    for (int c = 0; c < 14; c++) {
        add_some(db, 40 + 10 * (c % 3));
        n += 40 + 10 * (c % 3);
        del_every(db, 1 + (uint64_t)c, n + 1, 17);
        MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
        char files[4096];
        int k = idx_files(dir, files, sizeof files);
        assert_true(k <= 2 * 8); /* the two kept checkpoints' lists */
    }
    add_some(db, 30);
    char *live = answers(db, 30);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open(dir, &o);
    mmfs_store_stats st = mmfs_test_stats(db);
    assert_true(st.index_segments >= 2 && st.index_segments <= 8);
    char *got = answers(db, 30);
    same(live, got, "after merges");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(got);
    free(live);
    mmfs_test_rmdir(dir);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, a)) > 0) assert_int_equal(fwrite(buf, 1, k, b), k);
    fclose(a);
    assert_int_equal(fclose(b), 0);
}

/* The second of three segments flipped (header, data), truncated, missing
** or of a newer format: the store opens and answers right. */
static void test_damaged(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ixseg-damaged");
    mmfs_options o = options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    for (int c = 0; c < 3; c++) {
        add_some(db, c == 1 ? 9000 : 200); /* the second one has several blocks */
        MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    }
    add_some(db, 50);
    char *live = answers(db, 30);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char files[1024], seg[4096], save[4096];
    assert_int_equal(idx_files(dir, files, sizeof files), 3);
    char *second = strchr(files, ' ') + 1;
    *strchr(second, ' ') = 0;
    snprintf(seg, sizeof seg, "%s/index/%s", dir, second);
    snprintf(save, sizeof save, "%s/saved.idx", dir);
    copy_file(seg, save);
    struct stat sb;
    assert_int_equal(stat(seg, &sb), 0);
    if (sb.st_size <= 2 * 65536) fail_msg("%s: %lld bytes", seg, (long long)sb.st_size);
    enum { FLIP_HEAD, FLIP_DATA, TRUNCATE, MISSING, NEWER, NMODES };
    for (int mode = 0; mode < NMODES; mode++) {
        copy_file(save, seg);
        int fd = open(seg, O_RDWR);
        assert_true(fd >= 0);
        uint8_t b;
        if (mode == FLIP_HEAD || mode == FLIP_DATA) {
            off_t at = mode == FLIP_HEAD ? 50 : sb.st_size / 2;
            assert_int_equal(pread(fd, &b, 1, at), 1);
            b ^= 1;
            assert_int_equal(pwrite(fd, &b, 1, at), 1);
        } else if (mode == TRUNCATE) {
            assert_int_equal(ftruncate(fd, sb.st_size - 100), 0);
        } else if (mode == MISSING) {
            assert_int_equal(unlink(seg), 0);
        } else {
            uint8_t h[136];
            assert_int_equal(pread(fd, h, sizeof h, 0), (ssize_t)sizeof h);
            h[8] = 2;
            uint32_t crc = mmfs__crc32c(0, h, sizeof h);
            assert_int_equal(pwrite(fd, h, sizeof h, 0), (ssize_t)sizeof h);
            assert_int_equal(pwrite(fd, &crc, 4, 136), 4);
        }
        close(fd);
        db = mmfs_test_open(dir, &o);
        mmfs_store_stats st = mmfs_test_stats(db);
        assert_true(st.checkpoint_lsn > 0); /* the checkpoint is still used */
        /* the first segment is mapped; a data block's damage shows at first use */
        assert_int_equal(st.index_segments, mode == FLIP_DATA ? 3 : 1);
        char *got = answers(db, 30);
        same(live, got, "damaged segment");
        free(got);
        if (mode == FLIP_DATA) assert_int_equal(mmfs_test_stats(db).index_segments, 0);
        MMFS_OK_OR_FAIL(mmfs_close(db));
    }
    free(live);
    mmfs_test_rmdir(dir);
}

/* Compaction's closing checkpoint lists the segments from before it (keyed
** by memory id); the memories it dropped are gone from search after a
** reopen. */
/* The texts and tags add_some would append, recorded (NTEXT at most). */
#define NTEXT 2000
static char *texts[NTEXT + 1];
static char tags[NTEXT + 1][8];

/* Appends N memories to DB as add_some does, recording them (ids from
** *NEXT on). */
static void add_rec(mmfs_db *db, int n, uint64_t *next) {
    for (int i = 0; i < n; i++, ++*next) {
        assert_true(*next <= NTEXT);
        char buf[512];
        size_t off = 0;
        uint32_t k = 1 + mmfs_test_rand(&seed) % 16;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t r = mmfs_test_rand(&seed) % NWORDS;
            uint32_t w = r % (1 + mmfs_test_rand(&seed) % NWORDS);
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", j ? " " : "", WORDS[w]);
        }
        texts[*next] = strdup(buf);
        snprintf(tags[*next], sizeof tags[*next], "t%u", mmfs_test_rand(&seed) % 3);
        mmfs_slice t = mmfs_str(tags[*next]);
        uint64_t id;
        MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(buf), &t, 1, NULL, &id));
        assert_int_equal(id, *next);
    }
}

/* ANSWERS with each id replaced by MAP[id] (malloc'd). */
static char *renumber(const char *answers, const uint64_t *map) {
    size_t cap = strlen(answers) * 2 + 1, off = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *p = answers; *p;) {
        if (*p == '\n') {
            out[off++] = *p++;
            continue;
        }
        char *colon;
        uint64_t id = strtoull(p, &colon, 10);
        assert_true(*colon == ':' && id <= NTEXT && map[id]);
        const char *sp = strchr(colon, ' ');
        off += (size_t)snprintf(out + off, cap - off, "%llu%.*s ", (unsigned long long)map[id],
                                (int)(sp - colon), colon);
        p = sp + 1;
    }
    out[off] = 0;
    return out;
}

/* The .ckpt files of DIR/ckpt. */
static int ckpt_files(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/ckpt", dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    int k = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        k += l > 5 && strcmp(e->d_name + l - 5, ".ckpt") == 0;
    }
    closedir(d);
    return k;
}

/* Bytes of the .idx files of DIR/index; the documents their headers
** count (live and flagged deleted: docs/format.md) into *DOCS. */
static uint64_t idx_bytes(const char *dir, uint64_t *docs) {
    char files[8192], p[4096];
    idx_files(dir, files, sizeof files);
    uint64_t n = 0;
    *docs = 0;
    for (char *f = strtok(files, " "); f; f = strtok(NULL, " ")) {
        struct stat st;
        snprintf(p, sizeof p, "%s/index/%s", dir, f);
        assert_int_equal(stat(p, &st), 0);
        n += (uint64_t)st.st_size;
        uint8_t h[144];
        int fd = open(p, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(pread(fd, h, sizeof h, 0), (ssize_t)sizeof h);
        close(fd);
        *docs += mmfs__ld64(h + 80) + mmfs__ld64(h + 136);
    }
    return n;
}

/* Compaction's checkpoint writes the segments holding memories it dropped
** again without them (deletes before a checkpoint the compacting handle
** was opened from, and its own since), removes the old files, and a
** store reopened from it answers as a store that only ever held the kept
** memories, appended in the same order: the same hits, the same scores. */
static void test_compact(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ixseg-compact");
    mmfs_options o = options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    uint64_t next = 1;
    add_rec(db, 500, &next);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    add_rec(db, 300, &next);
    del_every(db, 1, 801, 5);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char before[1024];
    assert_int_equal(idx_files(dir, before, sizeof before), 2);
    uint64_t docs0, bytes0 = idx_bytes(dir, &docs0);
    assert_int_equal(docs0, 800); /* 160 of them flagged deleted */
    db = mmfs_test_open(dir, &o); /* the deletes so far: not in its memory table */
    del_every(db, 2, 801, 5);
    add_rec(db, 100, &next);
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, NULL));
    char *live = answers(db, 100000);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char after[1024];
    int k = idx_files(dir, after, sizeof after);
    assert_true(k >= 1 && k <= 3);
    assert_int_equal(ckpt_files(dir), 1); /* the one before is stale: gone with its segments */
    for (char *f = strtok(before, " "); f; f = strtok(NULL, " "))
        if (strstr(after, f)) fail_msg("%s kept after compaction: %s", f, after);
    uint64_t docs1, bytes1 = idx_bytes(dir, &docs1);
    assert_int_equal(docs1, 800 - 320 + 100); /* none of the dropped ones */
    if (bytes1 >= bytes0) fail_msg("index/: %llu bytes before, %llu after", (unsigned long long)bytes0,
                                   (unsigned long long)bytes1);
    db = mmfs_test_open(dir, &o);
    mmfs_store_stats st = mmfs_test_stats(db);
    assert_true(st.checkpoint_lsn > 0);
    assert_int_equal(st.index_segments, k);
    assert_int_equal(st.memories, 800 - 320 + 100);
    char *got = answers(db, 100000);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    /* the compacting handle still counts the dropped memories as deleted
    ** (df): the same matches, by id */
    char *a = id_sets(live), *b = id_sets(got);
    same(a, b, "after compaction");
    free(a);
    free(b);

    /* a store that only ever held the kept ones: ids renumbered */
    char *fdir = mmfs_test_dir("ixseg-compact-fresh");
    mmfs_db *f = mmfs_test_open(fdir, &o);
    static uint64_t map[NTEXT + 1];
    uint64_t fresh = 0;
    for (uint64_t id = 1; id < next; id++) {
        if (id <= 800 && (id % 5 == 1 || id % 5 == 2)) continue;
        mmfs_slice t = mmfs_str(tags[id]);
        MMFS_OK_OR_FAIL(mmfs_append_memory(f, mmfs_str(texts[id]), &t, 1, NULL, &map[id]));
        assert_int_equal(map[id], ++fresh);
    }
    char *want = answers(f, 100000), *mine = renumber(got, map);
    same(want, mine, "compacted against a store of the kept memories");
    MMFS_OK_OR_FAIL(mmfs_checkpoint(f)); /* and from its own segments */
    MMFS_OK_OR_FAIL(mmfs_close(f));
    f = mmfs_test_open(fdir, &o);
    free(want);
    want = answers(f, 100000);
    same(want, mine, "compacted against a reopened store of the kept memories");
    MMFS_OK_OR_FAIL(mmfs_close(f));
    mmfs_test_rmdir(fdir);
    free(want);
    free(mine);
    for (uint64_t id = 1; id < next; id++) free(texts[id]);
    free(got);
    free(live);
    mmfs_test_rmdir(dir);
}

/* A compaction right after the checkpoint it was opened from (no record
** since: its closing checkpoint has that LSN, and the rewritten tail
** segment takes the name of the file that checkpoint listed): the
** reopened store answers as one indexed from the log alone, scores
** included. */
static void test_compact_same_lsn(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ixseg-compact-lsn");
    mmfs_options o = options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    add_some(db, 300);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    add_some(db, 200);
    del_every(db, 2, 501, 4); /* 301, the tail segment's first, stays */
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db)); /* at the last LSN */
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char before[1024], after[1024];
    assert_int_equal(idx_files(dir, before, sizeof before), 2);
    db = mmfs_test_open(dir, &o);
    uint64_t lsn = mmfs_test_stats(db).checkpoint_lsn;
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    int k = idx_files(dir, after, sizeof after);
    assert_true(strstr(after, strchr(before, ' ') + 1) != NULL); /* the same name, rewritten */
    db = mmfs_test_open(dir, &o);
    mmfs_store_stats st = mmfs_test_stats(db);
    assert_int_equal(st.checkpoint_lsn, lsn);
    assert_int_equal(st.index_segments, k);
    assert_int_equal(st.memories, 500 - 125);
    char *got = answers(db, 100000);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char p[4200], q[4200];
    snprintf(p, sizeof p, "%s/index", dir);
    snprintf(q, sizeof q, "%s/index.away", dir);
    assert_int_equal(rename(p, q), 0);
    db = mmfs_test_open(dir, &o);
    assert_int_equal(mmfs_test_stats(db).index_segments, 0);
    char *want = answers(db, 100000);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    same(want, got, "compacted at the checkpoint's LSN against the log alone");
    free(want);
    free(got);
    mmfs_test_rmdir(dir);
}

/* A handle keeps reading the segments it mapped while another one's
** checkpoints merge them and remove their files, and catches up with the
** other's writes: both answer alike. */
static void test_two_handles(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ixseg-two");
    mmfs_options o = options();
    mmfs_db *a = mmfs_test_open(dir, &o);
    add_some(a, 20); /* small: the first merge takes it */
    del_every(a, 1, 21, 11);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(a));
    mmfs_db *b = mmfs_test_open(dir, &o);
    assert_int_equal(mmfs_test_stats(b).index_segments, 1);
    char first[1024];
    assert_int_equal(idx_files(dir, first, sizeof first), 1);
    *strchr(first, ' ') = 0;
    for (int c = 0; c < 12; c++) {
        add_some(a, 20);
        del_every(a, 2 + (uint64_t)c, 20 + 20 * (uint64_t)(c + 1), 23);
        MMFS_OK_OR_FAIL(mmfs_checkpoint(a));
    }
    char files[4096], path[4096];
    idx_files(dir, files, sizeof files);
    snprintf(path, sizeof path, "%s/index/%s", dir, first);
    assert_int_equal(access(path, F_OK), -1); /* merged away and removed */
    char *wa = answers(a, 30), *wb = answers(b, 30);
    same(wa, wb, "the handle that mapped the removed segment");
    /* b moved to a's newest checkpoint when it caught up: the same segments */
    assert_int_equal(mmfs_test_stats(b).checkpoint_lsn, mmfs_test_stats(a).checkpoint_lsn);
    assert_int_equal(mmfs_test_stats(b).index_segments, mmfs_test_stats(a).index_segments);
    free(wa);
    free(wb);
    MMFS_OK_OR_FAIL(mmfs_close(b));
    MMFS_OK_OR_FAIL(mmfs_close(a));
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_reopen_old_tokenizer),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_compact_same_lsn),
        cmocka_unit_test(test_two_handles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
