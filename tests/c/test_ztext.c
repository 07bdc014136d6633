/*
** test_ztext.c: compress = "zstd" (core/src/engine/ztext.c): memory texts
** compressed with a dictionary of the store come back byte for byte
** through get, list, search, snippets, hooks, compaction.keep, a
** checkpoint and a reopen without it; short texts stay raw; a damaged
** compressed text is CORRUPT, never garbage; the option is fixed at
** creation; a build without zstd refuses such a store and changes nothing.
*/
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "db.h"
#include "engine.h"

static uint64_t add(mmfs_db *db, const char *text, const char *tag) {
    uint64_t id = 0;
    mmfs_slice t = mmfs_str(tag);
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(text), tag ? &t : NULL, tag ? 1 : 0, NULL, &id));
    return id;
}

#ifdef MMFS_HAVE_ZSTD
/* Enough memories for the writer to train its dictionary (bounds.h). */
#define NTRAIN (MMFS__ZDICT_TEXTS + 100)

static const char *const words[] = {"toukd",  "glaibroyye", "stoubrofhs", "kovugouji", "ducinao",  "faveubh",
                                    "maidc",  "raikv",      "taivd",      "hanaibj",   "gaicd",    "naicud",
                                    "haroua", "koub",       "rohiw",      "naigec",    "deqpq",    "postah",
                                    "tea",    "coffee",     "morning",    "green",     "running",  "ocean"};

/* Text number I: 8 to 40 words of the list above (the same for every run). */
static char *make_text(uint64_t i) {
    uint64_t st = i * 2654435761u + 1;
    size_t n = 8 + mmfs_test_rand(&st) % 33, len = 0;
    char *s = malloc(n * 12 + 32);
    len += (size_t)sprintf(s, "m%llu", (unsigned long long)i);
    for (size_t k = 0; k < n; k++)
        len += (size_t)sprintf(s + len, " %s", words[mmfs_test_rand(&st) % (sizeof words / sizeof *words)]);
    return s;
}

static mmfs_options zopts(void) {
    mmfs_options o = mmfs_test_options(4u << 20);
    o.compress = "zstd";
    return o;
}

/* Appends texts FROM..TO-1 (make_text) in one batch. */
static void add_batch(mmfs_db *db, uint64_t from, uint64_t to) {
    mmfs_batch *b;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(db, &b));
    for (uint64_t i = from; i < to; i++) {
        char *t = make_text(i);
        MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str(t), NULL, 0, NULL));
        free(t);
    }
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, NULL, NULL));
}

/* The flag byte of memory ID's record in DB's log. */
static int rec_flags(mmfs_db *db, uint64_t id) {
    mmfs__rec r;
    MMFS_OK_OR_FAIL(mmfs__engine_get_memory(db->eng, id, &r));
    return r.flags;
}

static void assert_text(mmfs_db *db, uint64_t id, const char *want) {
    mmfs_memory *m = NULL;
    MMFS_OK_OR_FAIL(mmfs_get_memory(db, id, &m));
    MMFS_ASSERT_SLICE_STR(m->text, want);
    mmfs_free(m);
}

static const char cjk[] = "我喜欢喝绿茶, and Ann said: café au lait, Grüße aus Köln, 東京に行きました, 녹차를 마셨어요 "
                          "toukd haroua naicud glaibroyye stoubrofhs";

/* Checks, on DB, what test_roundtrip wrote (IDS: the compressed ones). */
static void check_store(mmfs_db *db, uint64_t long_id, uint64_t short_id, uint64_t cjk_id) {
    for (uint64_t i = 1; i <= NTRAIN; i += 97) {
        char *t = make_text(i);
        assert_text(db, i, t);
        free(t);
    }
    char *t = make_text(999999);
    assert_text(db, long_id, t);
    free(t);
    assert_text(db, short_id, "short tea note");
    assert_text(db, cjk_id, cjk);

    /* search: the index saw the plain text (a compressed memory is found) */
    mmfs_memories *ms = NULL;
    MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str("绿茶"), NULL, &ms));
    assert_int_equal(ms->count, 1);
    assert_int_equal(ms->items[0].id, cjk_id);
    MMFS_ASSERT_SLICE_STR(ms->items[0].text, cjk);
    char *snip = NULL;
    size_t n = 0;
    MMFS_OK_OR_FAIL(mmfs_snippet(db, mmfs_str("café"), ms->items[0].text, NULL, &snip, &n));
    assert_non_null(strstr(snip, "[café]"));
    mmfs_free(snip);
    mmfs_free(ms);
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 3;
    mmfs_slice tag = mmfs_str("z");
    f.tags = &tag;
    f.ntags = 1;
    MMFS_OK_OR_FAIL(mmfs_list_memories(db, &f, &ms));
    assert_int_equal(ms->count, 3);
    assert_int_equal(ms->items[0].id, cjk_id);
    MMFS_ASSERT_SLICE_STR(ms->items[0].text, cjk);
    MMFS_ASSERT_SLICE_STR(ms->items[1].text, "short tea note");
    mmfs_free(ms);
    MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str("m999999"), NULL, &ms));
    assert_int_equal(ms->count, 1);
    t = make_text(999999);
    MMFS_ASSERT_SLICE_STR(ms->items[0].text, t);
    free(t);
    mmfs_free(ms);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
}

/* What DB answers to a set of queries (ids and text lengths), as one
** string (malloc'd): the words, and the unique word of every 5th memory. */
static char *answers(mmfs_db *db) {
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap), q[32];
    for (size_t i = 0; i < sizeof words / sizeof *words + NTRAIN / 5; i++) {
        if (i < sizeof words / sizeof *words)
            snprintf(q, sizeof q, "%s", words[i]);
        else
            snprintf(q, sizeof q, "m%zu", (i - sizeof words / sizeof *words) * 5 + 1);
        mmfs_memories *ms = NULL;
        MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str(q), NULL, &ms));
        for (size_t k = 0; k < ms->count && n + 64 < cap; k++)
            n += (size_t)snprintf(out + n, cap - n, "%llu:%zu ", (unsigned long long)ms->items[k].id,
                                  ms->items[k].text.len);
        n += (size_t)snprintf(out + n, cap - n, "|");
        mmfs_free(ms);
    }
    return out;
}

static void test_roundtrip(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ztext");
    mmfs_options o = zopts();
    mmfs_db *db = mmfs_test_open(dir, &o);
    add_batch(db, 1, NTRAIN + 1);
    /* no dictionary yet: the first memories stay raw */
    assert_int_equal(rec_flags(db, 1) & MMFS__RF_ZTEXT, 0);
    /* a second handle, open before the dictionary: it meets the DICT record in catch-up */
    mmfs_options plain = mmfs_test_options(0); /* compress NULL: the store's own */
    mmfs_db *other = mmfs_test_open(dir, &plain);
    char *t = make_text(999999);
    uint64_t long_id = add(db, t, "z"); /* trains, then compresses */
    free(t);
    uint64_t short_id = add(db, "short tea note", "z");
    uint64_t cjk_id = add(db, cjk, "z");
    assert_int_equal(rec_flags(db, long_id) & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    assert_int_equal(rec_flags(db, cjk_id) & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    assert_int_equal(rec_flags(db, short_id) & MMFS__RF_ZTEXT, 0); /* under MMFS__ZTEXT_MIN */
    mmfs__rec r;
    MMFS_OK_OR_FAIL(mmfs__engine_get_memory(db->eng, long_id, &r));
    assert_true(r.u.mem.text.len < strlen(cjk)); /* it shrank */
    add_batch(db, NTRAIN + 1, NTRAIN + 200);   /* a batch after the dictionary: compressed */
    assert_int_equal(rec_flags(db, NTRAIN + 150) & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    check_store(db, long_id, short_id, cjk_id);
    check_store(other, long_id, short_id, cjk_id);
    assert_int_equal(rec_flags(other, long_id) & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    MMFS_OK_OR_FAIL(mmfs_close(other));

    /* reopen: the whole log replayed (the dictionary met in replay) */
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open(dir, &o);
    check_store(db, long_id, short_id, cjk_id);
    /* a checkpoint: the dictionary is found through it */
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open(dir, &plain);
    assert_true(mmfs_test_stats(db).checkpoint_lsn > 0);
    check_store(db, long_id, short_id, cjk_id);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    /* the index segments gone, the checkpoint kept: its memories are
    ** indexed from the log (compressed texts) at the first search */
    db = mmfs_test_open(dir, &plain);
    char *want = answers(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/index'", dir);
    assert_int_equal(system(cmd), 0);
    db = mmfs_test_open(dir, &plain);
    assert_true(mmfs_test_stats(db).checkpoint_lsn > 0);
    assert_int_equal(mmfs_test_stats(db).index_segments, 0);
    char *got = answers(db);
    assert_string_equal(want, got);
    free(got);
    check_store(db, long_id, short_id, cjk_id);
    /* a damaged index segment: the memories are indexed again from the log */
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    snprintf(cmd, sizeof cmd, "f=$(ls '%s'/index/*.idx | tail -1); s=$(stat -c %%s \"$f\"); "
                              "printf '\\377' | dd of=\"$f\" bs=1 seek=$((s / 2)) conv=notrunc status=none",
             dir);
    assert_int_equal(system(cmd), 0);
    db = mmfs_test_open(dir, &plain);
    assert_true(mmfs_test_stats(db).index_segments > 0);
    got = answers(db);
    assert_string_equal(want, got);
    free(got);
    free(want);
    assert_int_equal(mmfs_test_stats(db).index_segments, 0); /* it was rebuilt */
    check_store(db, long_id, short_id, cjk_id);
    MMFS_OK_OR_FAIL(mmfs_close(db));

    /* and with the checkpoint and the index moved away */
    snprintf(cmd, sizeof cmd, "rm -rf '%s/ckpt' '%s/index'", dir, dir);
    assert_int_equal(system(cmd), 0);
    db = mmfs_test_open(dir, &plain);
    assert_int_equal(mmfs_test_stats(db).checkpoint_lsn, 0);
    check_store(db, long_id, short_id, cjk_id);

    /* compaction copies compressed texts as they are and keeps the dictionary */
    int del = 0;
    MMFS_OK_OR_FAIL(mmfs_delete_memory(db, 2, &del));
    mmfs_compact_result cr;
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &cr));
    assert_true(cr.dropped >= 2);
    check_store(db, long_id, short_id, cjk_id);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open(dir, &plain);
    check_store(db, long_id, short_id, cjk_id);
    assert_int_equal(rec_flags(db, long_id) & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    /* a store never trains twice: one dictionary */
    assert_int_equal(atomic_load(&db->eng->z.n), 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* A compressed text that does not decompress is CORRUPT, never garbage:
** a wrong dictionary id, a wrong raw length, damaged frame bytes (a
** frame whose checksum still checks, as only a crafted log could be). */
static void test_bad_payload(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ztext-bad");
    mmfs_options o = zopts();
    mmfs_db *db = mmfs_test_open(dir, &o);
    add_batch(db, 1, NTRAIN + 1);
    char *t = make_text(424242);
    uint64_t id = add(db, t, NULL);
    mmfs__rec r;
    MMFS_OK_OR_FAIL(mmfs__engine_get_memory(db->eng, id, &r));
    assert_int_equal(r.flags & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    size_t len = 0;
    MMFS_OK_OR_FAIL(mmfs__mem_text_len(&r, &len));
    assert_int_equal(len, strlen(t));
    uint8_t *out = malloc(len + 64), *copy = malloc(r.u.mem.text.len);
    MMFS_OK_OR_FAIL(mmfs__mem_text_into(db->eng, &r, out));
    assert_memory_equal(out, t, len);

    mmfs__rec bad = r;
    memcpy(copy, r.u.mem.text.ptr, r.u.mem.text.len);
    bad.u.mem.text.ptr = copy;
    copy[0] = 9; /* dictionary 9: not in the log */
    MMFS_ASSERT_STATUS(mmfs__mem_text_into(db->eng, &bad, out), MMFS_CORRUPT);
    memcpy(copy, r.u.mem.text.ptr, r.u.mem.text.len);
    copy[1] ^= 1; /* the raw length one off (a one-byte varint for these texts) */
    MMFS_OK_OR_FAIL(mmfs__mem_text_len(&bad, &len));
    MMFS_ASSERT_STATUS(mmfs__mem_text_into(db->eng, &bad, out), MMFS_CORRUPT);
    memcpy(copy, r.u.mem.text.ptr, r.u.mem.text.len);
    for (size_t i = 3; i < r.u.mem.text.len; i++) copy[i] = (uint8_t)(0xA5 ^ i); /* the frame: noise */
    MMFS_ASSERT_STATUS(mmfs__mem_text_into(db->eng, &bad, out), MMFS_CORRUPT);
    mmfs_slice plain;
    MMFS_ASSERT_STATUS(mmfs__mem_text(db->eng, &bad, &plain), MMFS_CORRUPT);
    memcpy(copy, r.u.mem.text.ptr, r.u.mem.text.len);
    copy[1] = 0x80, copy[2] = 0x80, copy[3] = 0x80, copy[4] = 0x10; /* claims 32 MiB: past what is compressed */
    MMFS_ASSERT_STATUS(mmfs__mem_text_len(&bad, &len), MMFS_CORRUPT);
    MMFS_ASSERT_STATUS(mmfs__mem_text(db->eng, &bad, &plain), MMFS_CORRUPT);
    bad.u.mem.text.len = 1; /* a header cut short */
    MMFS_ASSERT_STATUS(mmfs__mem_text_len(&bad, &len), MMFS_CORRUPT);
    free(out);
    free(copy);
    free(t);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* A damaged byte of a compressed text in the log: verify and open say
** CORRUPT (the commit frame's checksum), and nothing is read from it. */
static void test_damaged_log(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ztext-damage");
    mmfs_options o = zopts();
    mmfs_db *db = mmfs_test_open(dir, &o);
    add_batch(db, 1, NTRAIN + 1);
    char *t = make_text(77);
    uint64_t id = add(db, t, NULL);
    free(t);
    add(db, "a later memory so that the damaged frame is not the log's tail, plus some words", NULL);
    MMFS_OK_OR_FAIL(mmfs_sync(db));
    mmfs__rec r;
    MMFS_OK_OR_FAIL(mmfs__engine_get_memory(db->eng, id, &r));
    assert_int_equal(r.flags & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    const mmfs__seg *s = mmfs__seg_last(&db->log);
    const uint8_t *p = (const uint8_t *)r.u.mem.text.ptr + r.u.mem.text.len / 2;
    assert_true(p > s->map && p < s->map + s->size);
    off_t off = (off_t)(p - s->map);
    char path[4200];
    snprintf(path, sizeof path, "%s/log/%08u.seg", dir, s->no);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
    MMFS_ASSERT_STATUS(mmfs_verify(db), MMFS_CORRUPT);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_db *db2 = NULL;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db2), MMFS_CORRUPT);
    assert_null(db2);
    mmfs_test_rmdir(dir);
}

/* Reader threads of one handle decompress at once (a DCtx each) while
** the writer trains the dictionary and appends compressed memories. */
typedef struct reader {
    mmfs_db *db;
    _Atomic int *stop;
    int bad;
    uint64_t reads;
} reader;

static void *read_loop(void *arg) {
    reader *rd = arg;
    uint64_t st = (uint64_t)(uintptr_t)rd + 1;
    while (!atomic_load(rd->stop) || rd->reads < 200) {
        uint64_t id = 1 + mmfs_test_rand(&st) % (NTRAIN + 400);
        mmfs_memory *m = NULL;
        int rc = mmfs_get_memory(rd->db, id, &m);
        if (rc == MMFS_OK) {
            char *t = make_text(id);
            if (m->text.len != strlen(t) || memcmp(m->text.ptr, t, m->text.len)) rd->bad++;
            free(t);
            mmfs_free(m);
        } else if (rc != MMFS_NOTFOUND) {
            rd->bad++;
        }
        mmfs_memories *ms = NULL;
        if (mmfs_search_memory(rd->db, mmfs_str("haroua toukd"), NULL, &ms) != MMFS_OK) rd->bad++;
        for (size_t i = 0; ms && i < ms->count; i++) {
            char *t = make_text(ms->items[i].id);
            if (ms->items[i].text.len != strlen(t) || memcmp(ms->items[i].text.ptr, t, strlen(t))) rd->bad++;
            free(t);
        }
        mmfs_free(ms);
        rd->reads++;
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ztext-threads");
    mmfs_options o = zopts();
    mmfs_db *db = mmfs_test_open(dir, &o);
    add_batch(db, 1, MMFS__ZDICT_TEXTS - 50);
    _Atomic int stop = 0;
    reader rd[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        rd[i] = (reader){db, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, read_loop, &rd[i]), 0);
    }
    for (uint64_t i = MMFS__ZDICT_TEXTS - 50; i < NTRAIN + 400; i += 50) add_batch(db, i, i + 50);
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rd[i].bad, 0);
    }
    assert_int_equal(rec_flags(db, NTRAIN + 300) & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

#ifdef MMFS_HAVE_POLICY
/* Hooks, tx:get_memory and compaction.keep see the plain text. */
static void test_policy_sees_plain(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ztext-policy");
    mmfs_options o = zopts();
    mmfs_db *db = mmfs_test_open(dir, &o);
    add_batch(db, 1, NTRAIN + 1);
    uint64_t keep_id = add(db, "keep me: toukd haroua naicud glaibroyye stoubrofhs kovugouji ducinao faveubh", NULL);
    uint64_t drop_id = add(db, "drop me: toukd haroua naicud glaibroyye stoubrofhs kovugouji ducinao faveubh", NULL);
    assert_int_equal(rec_flags(db, keep_id) & MMFS__RF_ZTEXT, MMFS__RF_ZTEXT);
    char pol[1024];
    snprintf(pol, sizeof pol,
             "return { hooks = { set_kv = function(cmd, tx)\n"
             "  local m = tx:get_memory(%llu)\n"
             "  if m.text ~= 'keep me: toukd haroua naicud glaibroyye stoubrofhs kovugouji ducinao faveubh' then\n"
             "    return nil, 'got ' .. m.text end\n"
             "  cmd.value = m.text:sub(1, 7) end,\n"
             "  append_memory = function(cmd) if cmd.text:find('^reject') then return nil, 'no' end end },\n"
             "  compaction = { keep = function(mem) return mem.text:find('^drop me') == nil end } }",
             (unsigned long long)keep_id);
    MMFS_OK_OR_FAIL(mmfs_set_policy(db, mmfs_str(pol)));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v")));
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("k"), &v));
    MMFS_ASSERT_SLICE_STR(v, "keep me");
    MMFS_ASSERT_STATUS(mmfs_append_memory(db, mmfs_str("reject this long text: toukd haroua naicud glaibroyye"), NULL,
                                          0, NULL, NULL),
                       MMFS_REJECTED);
    mmfs_compact_result cr;
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &cr));
    mmfs_memory *m = NULL;
    MMFS_ASSERT_STATUS(mmfs_get_memory(db, drop_id, &m), MMFS_NOTFOUND);
    assert_text(db, keep_id, "keep me: toukd haroua naicud glaibroyye stoubrofhs kovugouji ducinao faveubh");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}
#endif
#endif /* MMFS_HAVE_ZSTD */

static int read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int n = (int)fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n;
}

/* Rewrites DIR's MANIFEST as a compressed store's (format 4, "compress
** zstd"), as a library with zstd writes it. */
static void make_compressed_manifest(const char *dir) {
    char path[4200], buf[2048], out[2048];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    assert_true(read_file(path, buf, sizeof buf) > 0);
    char *crc = strstr(buf, "crc ");
    assert_non_null(crc);
    *crc = 0;
    char *nl = strchr(buf, '\n');
    int n = snprintf(out, sizeof out, "memmapfs-manifest 4%scompress zstd\n", nl);
    n += snprintf(out + n, sizeof out - (size_t)n, "crc %08x\n", mmfs__crc32c(0, out, (size_t)n));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(out, 1, (size_t)n, f), (size_t)n);
    fclose(f);
}

/* The option: a value it does not know, and a store's choice that cannot
** change (nothing changes on disk when the open is refused). */
static void test_option(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ztext-opt");
    mmfs_options o = mmfs_test_options(0);
    mmfs_db *db = NULL;
    o.compress = "lz4";
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_non_null(strstr(mmfs_errmsg(NULL), "compress"));
    o.compress = "none";
    db = mmfs_test_open(dir, &o);
    add(db, "a memory of a store that does not compress, long enough to be compressed otherwise", NULL);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char path[4200], before[2048], after[2048];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    assert_true(read_file(path, before, sizeof before) > 0);
    assert_null(strstr(before, "compress"));
    assert_non_null(strstr(before, "memmapfs-manifest 2"));
    o.compress = "zstd";
    db = NULL;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_null(db);
    read_file(path, after, sizeof after);
    assert_string_equal(before, after);
#ifdef MMFS_HAVE_ZSTD
    assert_non_null(strstr(mmfs_errmsg(NULL), "cannot change"));
    /* and the other way round */
    make_compressed_manifest(dir);
    read_file(path, before, sizeof before);
    o.compress = "none";
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_non_null(strstr(mmfs_errmsg(NULL), "cannot change"));
    read_file(path, after, sizeof after);
    assert_string_equal(before, after);
    o.compress = NULL;
    db = mmfs_test_open(dir, &o); /* its own choice: opens, keeps it */
    assert_int_equal(db->log.compress, 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
#else
    assert_non_null(strstr(mmfs_errmsg(NULL), "built without zstd"));
#endif
    mmfs_test_rmdir(dir);
}

/* A build without zstd: asking for it is INVALID; a store that
** compresses is refused at open, naming the reason, and nothing on disk
** changes.  (In a build with zstd the same store opens.) */
static void test_without_zstd(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ztext-nozstd");
    mmfs_options o = mmfs_test_options(0);
    mmfs_db *db = mmfs_test_open(dir, &o);
    add(db, "a memory", NULL);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    make_compressed_manifest(dir);
    char path[4200], before[2048];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    read_file(path, before, sizeof before);
    db = NULL;
    int rc = mmfs_open(dir, &o, &db);
#ifdef MMFS_HAVE_ZSTD
    MMFS_OK_OR_FAIL(rc);
    assert_text(db, 1, "a memory");
    MMFS_OK_OR_FAIL(mmfs_close(db));
#else
    MMFS_ASSERT_STATUS(rc, MMFS_INVALID);
    assert_null(db);
    assert_non_null(strstr(mmfs_errmsg(NULL), "built without zstd"));
    char after[2048];
    read_file(path, after, sizeof after);
    assert_string_equal(before, after);
    char *d2 = mmfs_test_dir("ztext-nozstd2");
    o.compress = "zstd";
    MMFS_ASSERT_STATUS(mmfs_open(d2, &o, &db), MMFS_INVALID);
    assert_non_null(strstr(mmfs_errmsg(NULL), "built without zstd"));
    snprintf(path, sizeof path, "%s/MANIFEST", d2);
    assert_int_equal(read_file(path, after, sizeof after), -1); /* nothing made */
    mmfs_test_rmdir(d2);
#endif
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#ifdef MMFS_HAVE_ZSTD
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bad_payload),
        cmocka_unit_test(test_damaged_log),
        cmocka_unit_test(test_threads),
#ifdef MMFS_HAVE_POLICY
        cmocka_unit_test(test_policy_sees_plain),
#endif
#endif
        cmocka_unit_test(test_option),
        cmocka_unit_test(test_without_zstd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
