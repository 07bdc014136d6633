/*
** test_ckpt_tables.c: a checkpoint's mapped sessions, streams and
** documents (format 3, section 15: store/ckpt_tables.c, and the engine's
** reads of them in session.c, stream.c, memory.c).  A store large enough
** that every table spans several 64 KiB blocks, with changes of every
** kind after its checkpoint (overwrites, deletes, re-puts, appends, new
** streams, re-indexed and removed documents), must answer alike from its
** writer, from the checkpoint and from the log alone; a damaged block of
** any table gives CORRUPT or a fallback, never a wrong answer; an older
** format is skipped and replaced.  (test_ckpt.c's model test mixes these
** kinds with every other at random.)
*/
#include "testutil.h"

#include "checksum.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PS(x) (int)(x).len, (const char *)(x).ptr

#define NSESS 6000
#define NINTENT 61
#define NDOCS 5000
#define NSTREAMS 300
#define NCHUNKS 12

static const char *WORDS[] = {"apple", "river", "stone", "cloud", "ember", "frost", "grove", "harbor"};

static mmfs_options tab_options(void) {
    mmfs_options o = mmfs_test_options(1u << 20);
    o.checkpoint_bytes = 0;
    return o;
}

static void put_session(mmfs_db *db, int i, int version) {
    char id[16], in[16], pl[48];
    snprintf(id, sizeof id, "s%05d", i);
    snprintf(in, sizeof in, "i%d", (i + version) % NINTENT);
    snprintf(pl, sizeof pl, "payload %d v%d", i, version);
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = mmfs_str(id);
    s.has_intent = i % 7 != 0;
    s.intent_id = mmfs_str(in);
    s.has_created_at = 1;
    s.created_at = 1000 + (i * 37 + version) % 500; /* many ties: broken by LSN */
    s.has_payload = 1;
    s.payload = mmfs_str(pl);
    MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
}

static void append(mmfs_db *db, int st, int c) {
    char key[16], bytes[40];
    snprintf(key, sizeof key, "st%03d", st);
    /* chunks of different lengths; some empty */
    int n = c % 5 == 4 ? 0 : snprintf(bytes, sizeof bytes, "<%d.%d%.*s>", st, c, c % 9, "xxxxxxxxx");
    MMFS_OK_OR_FAIL(mmfs_append_stream(db, mmfs_str(key), (mmfs_slice){bytes, (size_t)n}));
}

static void index_doc(mmfs_db *db, int d, int version) {
    char key[16], text[80];
    snprintf(key, sizeof key, "d%05d", d);
    snprintf(text, sizeof text, "%s %s doc %d v%d", WORDS[(d + version) % 8], WORDS[(d / 8) % 8], d, version);
    MMFS_OK_OR_FAIL(mmfs_index(db, mmfs_str(key), mmfs_str(text)));
}

/* The store: everything, a checkpoint, then changes of every kind. */
static void make_store(const char *dir) {
    mmfs_options o = tab_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    for (int i = 0; i < NSESS; i++) put_session(db, i, 0);
    for (int d = 0; d < NDOCS; d++) index_doc(db, d, 0);
    for (int c = 0; c < NCHUNKS; c++)
        for (int st = 0; st < NSTREAMS; st++) append(db, st, c);
    /* before the checkpoint too: overwrites and deletes */
    for (int i = 0; i < NSESS; i += 11) put_session(db, i, 1);
    for (int i = 5; i < NSESS; i += 13) {
        char id[16];
        snprintf(id, sizeof id, "s%05d", i);
        MMFS_OK_OR_FAIL(mmfs_delete_session(db, mmfs_str(id), NULL));
    }
    for (int d = 0; d < NDOCS; d += 17) index_doc(db, d, 1);
    for (int d = 3; d < NDOCS; d += 19) {
        char key[16];
        snprintf(key, sizeof key, "d%05d", d);
        MMFS_OK_OR_FAIL(mmfs_unindex(db, mmfs_str(key), NULL));
    }
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    /* after it */
    for (int i = 2; i < NSESS; i += 9) put_session(db, i, 2);
    for (int i = 4; i < NSESS; i += 23) {
        char id[16];
        snprintf(id, sizeof id, "s%05d", i);
        MMFS_OK_OR_FAIL(mmfs_delete_session(db, mmfs_str(id), NULL));
    }
    for (int i = 4; i < NSESS; i += 46) put_session(db, i, 3); /* deleted, then back */
    for (int i = NSESS; i < NSESS + 50; i++) put_session(db, i, 0);
    for (int st = 0; st < NSTREAMS; st += 3) append(db, st, NCHUNKS);
    for (int st = NSTREAMS; st < NSTREAMS + 5; st++) append(db, st, 0);
    for (int d = 1; d < NDOCS; d += 29) index_doc(db, d, 2);
    for (int d = 2; d < NDOCS; d += 31) {
        char key[16];
        snprintf(key, sizeof key, "d%05d", d);
        MMFS_OK_OR_FAIL(mmfs_unindex(db, mmfs_str(key), NULL));
    }
    for (int d = NDOCS; d < NDOCS + 20; d++) index_doc(db, d, 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
}

static void put_sessions(FILE *out, const char *what, int rc, mmfs_sessions *ss) {
    if (rc != MMFS_OK) {
        fprintf(out, "%s: %s\n", what, mmfs_err_name(rc));
        return;
    }
    fprintf(out, "%s %zu:", what, ss->count);
    for (size_t i = 0; i < ss->count; i++) fprintf(out, " %.*s", PS(ss->items[i].id));
    fputc('\n', out);
    mmfs_free(ss);
}

static int cmp_key(const void *a, const void *b) {
    const mmfs_doc_hit *x = a, *y = b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.ptr, y->key.ptr, n);
    return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

/* Every read of the store's sessions, streams and documents, one line
** each ("...: CORRUPT" when it failed so). */
static char *answers(mmfs_db *db) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    mmfs_store_stats st = mmfs_test_stats(db);
    /* Once a damaged block dropped the checkpoint, the counts applied over
    ** it are not to be trusted (checkpoint_dropped says so): like a read
    ** that needed it. */
    if (st.checkpoint_dropped) fprintf(out, "stats: CORRUPT\n");
    else fprintf(out, "stats sessions=%llu streams=%llu documents=%llu live=%llu\n", (unsigned long long)st.sessions,
            (unsigned long long)st.streams, (unsigned long long)st.documents, (unsigned long long)st.live_bytes);
    for (int i = 0; i < NSESS + 60; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%05d", i);
        mmfs_session s;
        int rc = mmfs_get_session(db, mmfs_str(id), &s);
        if (rc == MMFS_NOTFOUND) fprintf(out, "sess %s none\n", id);
        else if (rc) fprintf(out, "sess %s: %s\n", id, mmfs_err_name(rc));
        else
            fprintf(out, "sess %s %.*s %lld %.*s\n", id, s.has_intent ? (int)s.intent_id.len : 0,
                    s.has_intent ? (const char *)s.intent_id.ptr : "", (long long)s.created_at, PS(s.payload));
    }
    mmfs_sessions *ss = NULL;
    int rc = mmfs_list_sessions(db, 0, &ss);
    put_sessions(out, "list", rc, ss);
    rc = mmfs_list_sessions(db, 25, &ss);
    put_sessions(out, "list 25", rc, ss);
    for (int i = 0; i <= NINTENT; i++) {
        char in[16], what[32];
        snprintf(in, sizeof in, "i%d", i);
        snprintf(what, sizeof what, "intent %s", in);
        rc = mmfs_list_by_intent(db, mmfs_str(in), 0, &ss);
        put_sessions(out, what, rc, ss);
        snprintf(what, sizeof what, "intent %s 3", in);
        rc = mmfs_list_by_intent(db, mmfs_str(in), 3, &ss);
        put_sessions(out, what, rc, ss);
    }
    for (int s = 0; s < NSTREAMS + 6; s++) {
        char key[16];
        snprintf(key, sizeof key, "st%03d", s);
        mmfs_reader *r;
        rc = mmfs_open_read(db, mmfs_str(key), &r);
        if (rc == MMFS_NOTFOUND) {
            fprintf(out, "stream %s none\n", key);
            continue;
        }
        if (rc) {
            fprintf(out, "stream %s: %s\n", key, mmfs_err_name(rc));
            continue;
        }
        /* the line is made aside: a read that fails midway makes it
        ** "stream KEY: CORRUPT" alone */
        char *line = NULL, b[64];
        size_t llen = 0, got = 0, total = 0;
        FILE *lo = open_memstream(&line, &llen);
        uint64_t size = mmfs_reader_size(r);
        fprintf(lo, "stream %s %llu ", key, (unsigned long long)size);
        while ((rc = mmfs_reader_read(r, b, 7, &got)) == MMFS_OK && got) { /* 7: across chunk ends */
            fwrite(b, 1, got, lo);
            total += got;
        }
        if (rc == MMFS_OK) MMFS_OK_OR_FAIL(mmfs_reader_seek(r, size / 2));
        if (rc == MMFS_OK && (rc = mmfs_reader_read(r, b, 20, &got)) == MMFS_OK)
            fprintf(lo, " [%zu: %.*s]", total, (int)got, b);
        fclose(lo);
        if (rc) fprintf(out, "stream %s: %s\n", key, mmfs_err_name(rc));
        else fprintf(out, "%s\n", line);
        free(line);
        mmfs_reader_close(r);
    }
    for (size_t w = 0; w < 8; w++) {
        mmfs_doc_hits *dh;
        rc = mmfs_search(db, mmfs_str(WORDS[w]), 100000, &dh);
        if (rc) {
            fprintf(out, "docs %s: %s\n", WORDS[w], mmfs_err_name(rc));
            continue;
        }
        /* keys as a set: a replay's df counts replaced documents */
        qsort(dh->items, dh->count, sizeof *dh->items, cmp_key);
        fprintf(out, "docs %s %zu:", WORDS[w], dh->count);
        for (size_t i = 0; i < dh->count; i++) fprintf(out, " %.*s", PS(dh->items[i].key));
        fputc('\n', out);
        mmfs_free(dh);
    }
    fclose(out);
    return buf;
}

/* Ranked answers with scores: two handles built from the same checkpoint
** (or the same log) must rank alike. */
static char *ranked(mmfs_db *db) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    for (size_t w = 0; w < 8; w++) {
        mmfs_doc_hits *dh;
        MMFS_OK_OR_FAIL(mmfs_search(db, mmfs_str(WORDS[w]), 50, &dh));
        fprintf(out, "%s:", WORDS[w]);
        for (size_t i = 0; i < dh->count; i++) fprintf(out, " %.*s/%.6f", PS(dh->items[i].key), dh->items[i].score);
        fputc('\n', out);
        mmfs_free(dh);
    }
    fclose(out);
    return buf;
}

/* Opens DIR (read-only unless WRITABLE), answers, closes; *LSN gets the
** checkpoint used. */
static char *open_answers(const char *dir, int writable, uint64_t *lsn, mmfs_store_stats *stp) {
    mmfs_options o = tab_options();
    o.readonly = !writable;
    mmfs_db *db = mmfs_test_open(dir, &o);
    char *a = answers(db);
    mmfs_store_stats st = mmfs_test_stats(db);
    if (lsn) *lsn = st.checkpoint_lsn;
    if (stp) *stp = st;
    MMFS_OK_OR_FAIL(mmfs_close(db));
    return a;
}

/* DIR's answers from the log alone (ckpt/ moved away meanwhile). */
static char *log_answers(const char *dir) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/ckpt", dir);
    snprintf(b, sizeof b, "%s/ckpt.off", dir);
    assert_int_equal(rename(a, b), 0);
    uint64_t lsn;
    char *ans = open_answers(dir, 0, &lsn, NULL);
    assert_int_equal(lsn, 0);
    assert_int_equal(rename(b, a), 0);
    return ans;
}

/* The newest checkpoint file of DIR. */
static void newest(const char *dir, char *out, size_t len) {
    char p[4096];
    snprintf(p, sizeof p, "%s/ckpt", dir);
    struct dirent **names;
    int n = scandir(p, &names, NULL, alphasort);
    assert_true(n > 0);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (strlen(nm) > 5 && !strcmp(nm + strlen(nm) - 5, ".ckpt")) snprintf(out, len, "%s/%s", p, nm);
        free(names[i]);
    }
    free(names);
    assert_true(out[0] != 0);
}

static uint64_t ld64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ------------------------------------------------------------- tests */

/* The writer, a handle from the checkpoint and one from the log alone
** answer alike; two handles from the checkpoint rank documents alike,
** with scores; the checkpoint is format 3 and section 4 holds only the
** state and the policy. */
static void test_same_answers(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("cktab-same");
    make_store(dir);
    uint64_t lsn;
    char *ck = open_answers(dir, 0, &lsn, NULL);
    assert_true(lsn > 0);
    char *full = log_answers(dir);
    mmfs_test_assert_same_text(full, ck, "from the checkpoint vs from the log");
    /* the writer, opened from the checkpoint, then writing */
    mmfs_options o = tab_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    put_session(db, 1, 9);
    append(db, 1, 99);
    index_doc(db, 4, 9);
    MMFS_OK_OR_FAIL(mmfs_delete_session(db, mmfs_str("s00003"), NULL));
    char *live = answers(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char *full2 = log_answers(dir);
    mmfs_test_assert_same_text(full2, live, "the writer from the checkpoint vs from the log");
    db = mmfs_test_open(dir, &o);
    free(live);
    live = answers(db);
    mmfs_test_assert_same_text(full2, live, "reopened from the checkpoint, log after it");
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db)); /* the mapped tables merged with the changes */
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char *ck2 = open_answers(dir, 0, &lsn, NULL);
    assert_true(lsn > 0);
    mmfs_test_assert_same_text(full2, ck2, "from a checkpoint of a handle from a checkpoint");
    /* the same checkpoint twice ranks alike */
    char path[4200];
    newest(dir, path, sizeof path);
    uint8_t *b;
    size_t len;
    mmfs_test_read_file(path, &b, &len);
    uint32_t fmt;
    memcpy(&fmt, b + 8, 4);
    assert_int_equal(fmt, 3);
    assert_int_equal(ld64(b + 120 + 16 * 3 + 8), 0); /* section 4: no state, no policy here */
    free(b);
    o.readonly = 1;
    db = mmfs_test_open(dir, &o);
    char *r1 = ranked(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open(dir, &o);
    char *r2 = ranked(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_assert_same_text(r1, r2, "ranked twice from one checkpoint");
    free(r1);
    free(r2);
    free(ck);
    free(ck2);
    free(full);
    free(full2);
    free(live);
    mmfs_test_rmdir(dir);
}

/* Fails unless every line of GOT is WANT's, or the same read's
** ": CORRUPT"; returns the number of those. */
static int same_or_corrupt(const char *want, const char *got) {
    int corrupt = 0;
    while (*want || *got) {
        const char *we = strchr(want, '\n'), *ge = strchr(got, '\n');
        assert_non_null(we);
        assert_non_null(ge);
        size_t wl = (size_t)(we - want), gl = (size_t)(ge - got);
        if (gl > 9 && !memcmp(ge - 9, ": CORRUPT", 9)) {
            corrupt++;
            /* the same read: its words before the colon */
            size_t k = gl - 9;
            assert_true(wl > k && !memcmp(want, got, k) && (want[k] == ' ' || want[k] == ':'));
        } else if (wl != gl || memcmp(want, got, wl) != 0) {
            fail_msg("a wrong answer from a damaged checkpoint:\n  %.*s\nwant\n  %.*s", (int)gl, got, (int)wl, want);
        }
        want = we + 1;
        got = ge + 1;
    }
    return corrupt;
}

/* A flipped byte in the middle of each table of section 15: open falls
** back to the log (the block open reads), or the reads that need it fail
** CORRUPT, the checkpoint is dropped and removed, and the next open
** answers from the log; never a wrong answer. */
static void test_damaged_tables(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("cktab-damage");
    make_store(dir);
    char *want = log_answers(dir);
    char path[4200];
    newest(dir, path, sizeof path);
    uint8_t *orig;
    size_t len;
    mmfs_test_read_file(path, &orig, &len);
    uint64_t sec = ld64(orig + 408);
    assert_true(sec > 0 && ld64(orig + sec) == 9);
    static const size_t esz[9] = {16, 8, 24, 8, 16, 32, 16, 16, 8};
    int lazily = 0;
    for (int k = 0; k < 9; k++) {
        uint64_t off = ld64(orig + sec + 8 + 16 * k), cnt = ld64(orig + sec + 16 + 16 * k);
        assert_true(cnt > 0); /* the store has every table */
        uint8_t *b = malloc(len);
        memcpy(b, orig, len);
        /* a byte of a position: a slot's value, an entry's first word */
        size_t at = (size_t)(off + (cnt / 2) * esz[k] + (esz[k] == 8 ? 0 : 8));
        if (esz[k] == 32) at = (size_t)(off + (cnt / 2) * esz[k]);
        b[at] ^= 0x04;
        mmfs_test_write_file(path, b, len);
        free(b);
        uint64_t lsn;
        mmfs_store_stats st;
        char *got = open_answers(dir, 1, &lsn, &st);
        if (lsn == 0) {
            mmfs_test_assert_same_text(want, got, "fell back at open");
        } else if (same_or_corrupt(want, got)) {
            lazily++;
            assert_int_equal(st.checkpoint_dropped, 1);
            assert_int_equal(access(path, F_OK), -1);
            char *again = open_answers(dir, 0, &lsn, NULL);
            assert_int_equal(lsn, 0);
            mmfs_test_assert_same_text(want, again, "reopened after the checkpoint was dropped");
            free(again);
        } else {
            fail_msg("table %d: a flipped byte was neither found nor harmless", k);
        }
        free(got);
        mmfs_test_write_file(path, orig, len);
    }
    /* every table's middle lies past the blocks open checks: found by a read */
    assert_int_equal(lazily, 9);
    free(orig);
    free(want);
    mmfs_test_rmdir(dir);
}

/* A checkpoint of an older format (format 2's number, the checksum made
** right) is skipped: open replays the log, answers alike, and the next
** checkpoint is written in format 3 and used. */
static void test_older_format(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("cktab-older");
    make_store(dir);
    char *want = log_answers(dir);
    char path[4200];
    newest(dir, path, sizeof path);
    uint8_t *b;
    size_t len;
    mmfs_test_read_file(path, &b, &len);
    uint32_t two = 2;
    memcpy(b + 8, &two, 4);
    uint32_t c = mmfs__crc32c(0, b, 496); /* a CRC32C store's header checksum */
    memset(b + 496, 0, 16);
    memcpy(b + 496, &c, 4);
    mmfs_test_write_file(path, b, len);
    free(b);
    uint64_t lsn;
    char *got = open_answers(dir, 1, &lsn, NULL);
    assert_int_equal(lsn, 0);
    mmfs_test_assert_same_text(want, got, "an older format: from the log");
    free(got);
    mmfs_options o = tab_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    assert_int_equal(mmfs_test_stats(db).checkpoint_lsn, 0);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    newest(dir, path, sizeof path);
    mmfs_test_read_file(path, &b, &len);
    uint32_t fmt;
    memcpy(&fmt, b + 8, 4);
    assert_int_equal(fmt, 3);
    free(b);
    got = open_answers(dir, 0, &lsn, NULL);
    assert_true(lsn > 0);
    mmfs_test_assert_same_text(want, got, "the format-3 checkpoint written after");
    free(got);
    free(want);
    mmfs_test_rmdir(dir);
}

/* Documents never replaced or removed: BM25 counts the same documents
** in every index, so the writer, a handle from the checkpoint and one from
** the log rank alike, scores and ties included. */
static void test_same_scores(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("cktab-scores");
    mmfs_options o = tab_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    for (int d = 0; d < 700; d++) index_doc(db, d, d % 3);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    for (int d = 700; d < 760; d++) index_doc(db, d, 0);
    char *live = ranked(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    o.readonly = 1;
    db = mmfs_test_open(dir, &o);
    assert_true(mmfs_test_stats(db).checkpoint_lsn > 0);
    char *ck = ranked(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/ckpt", dir);
    snprintf(b, sizeof b, "%s/ckpt.off", dir);
    assert_int_equal(rename(a, b), 0);
    db = mmfs_test_open(dir, &o);
    assert_int_equal(mmfs_test_stats(db).checkpoint_lsn, 0);
    char *full = ranked(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_assert_same_text(full, ck, "ranked from the checkpoint vs from the log");
    mmfs_test_assert_same_text(full, live, "ranked by the writer vs from the log");
    free(live);
    free(ck);
    free(full);
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_answers),
        cmocka_unit_test(test_damaged_tables),
        cmocka_unit_test(test_older_format),
        cmocka_unit_test(test_same_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
