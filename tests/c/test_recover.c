/*
** test_recover.c: what a reopen gives back.  Close then open returns
** exactly what was written, in every sync mode; a torn tail of the last
** segment (cut or zeroed from any byte) is cut and every earlier frame
** survives; damage anywhere else (a flipped byte in an earlier frame, its
** length field included, or any damage to a sealed segment) is
** MMFS_CORRUPT from mmfs_open and mmfs_verify, naming segment and offset;
** roll-over across many small segments; BLAKE2b keys.
**
** The on-disk facts used: segments are log/NNNNNNNN.seg, preallocated and
** zero past the written end, a 64-byte segment header, then frames of
**   u32 magic | u32 frame_len | u64 first_lsn | u32 count | u32 flags |
**   u32 body_len | u32 header crc | records | checksum | zero padding
** with frame_len a multiple of 8; a full segment ends with a seal frame.
*/
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEG_HDR 64
#define FRAME_HDR 32
#define SMALL_SEG (64u << 10)

static uint32_t ld32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------- files */

/* Clears the durable stamp in the segment header at IMG (bytes 32..43),
** as if the process had died before any sync covered its frames: a torn
** write can only lie past what was synced, and a tear below the stamp is
** CORRUPT (test_truncated_synced_segment_corrupt). */
static void unstamp(unsigned char *img) { memset(img + 32, 0, 12); }

static char *seg_path(const char *dir, unsigned n) {
    size_t len = strlen(dir) + 32;
    char *p = malloc(len);
    assert_non_null(p);
    snprintf(p, len, "%s/log/%08u.seg", dir, n);
    return p;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(sz > 0 ? (size_t)sz : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

/* Writes BUF[0..N) as the whole file PATH (same inode: the store may
** still have it mapped elsewhere, and that is the point of some tests). */
static void spit(const char *path, const unsigned char *buf, size_t n) {
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)n), 0);
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, buf + done, n - done, (off_t)done);
        assert_true(w > 0);
        done += (size_t)w;
    }
    close(fd);
}

static void poke(const char *path, size_t off, const void *bytes, size_t n) {
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
    close(fd);
}

/* ---------------------------------------------------------- frames */

typedef struct frame {
    size_t off, len;
    size_t body_len;
    uint32_t count, flags;
} frame;

/* Walks the frames of a segment image.  Returns how many (at most MAX). */
static size_t frames_of(const unsigned char *seg, size_t n, frame *out, size_t max) {
    size_t off = SEG_HDR, k = 0;
    while (off + FRAME_HDR <= n && k < max) {
        const unsigned char *p = seg + off;
        uint32_t len = ld32(p + 4);
        if (ld32(p) == 0 || len < FRAME_HDR || (len & 7) || off + len > n) break;
        out[k].off = off;
        out[k].len = len;
        out[k].count = ld32(p + 16);
        out[k].flags = ld32(p + 20);
        out[k].body_len = ld32(p + 24);
        k++;
        off += len;
    }
    return k;
}

/* 1 if MSG contains the decimal number N as a whole number. */
static int has_number(const char *msg, uint64_t n) {
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)n);
    size_t l = strlen(num);
    for (const char *p = strstr(msg, num); p; p = strstr(p + 1, num)) {
        int before = p > msg && p[-1] >= '0' && p[-1] <= '9';
        int after = p[l] >= '0' && p[l] <= '9';
        if (!before && !after) return 1;
    }
    return 0;
}

/* The last error message must name segment file SEG and offset OFF. */
static void assert_names(const char *msg, unsigned seg, size_t off) {
    char name[32];
    snprintf(name, sizeof name, "%08u.seg", seg);
    if (!msg || !strstr(msg, name) || !has_number(msg, off))
        fail_msg("message \"%s\" should name %s and offset %zu", msg ? msg : "(null)", name, off);
}

/* ---------------------------------------------------------- stores */

typedef struct cfg {
    mmfs_sync_mode sync;
    mmfs_checksum_type checksum;
    const void *key;
    size_t key_len;
    uint64_t segment_size;
} cfg;

static int open_cfg(const char *dir, const cfg *c, mmfs_db **db) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = c->sync;
    o.checksum = c->checksum;
    o.key = c->key;
    o.key_len = c->key_len;
    o.segment_size = c->segment_size ? c->segment_size : SMALL_SEG;
    *db = NULL;
    return mmfs_open(dir, &o, db);
}

static mmfs_db *must_open(const char *dir, const cfg *c) {
    mmfs_db *db = NULL;
    int rc = open_cfg(dir, c, &db);
    if (rc != MMFS_OK) fail_msg("mmfs_open -> %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
    return db;
}

static void kv_name(char *buf, size_t n, int i) { snprintf(buf, n, "key-%03d", i); }

/* Value i: a length that varies, so frames differ in size. */
static size_t kv_value(char *buf, int i) {
    size_t len = (size_t)(5 + (i * 13) % 40);
    for (size_t j = 0; j < len; j++) buf[j] = (char)('a' + (i + j) % 26);
    return len;
}

static void put_kv(mmfs_db *db, int i) {
    char k[32], v[64];
    kv_name(k, sizeof k, i);
    size_t vl = kv_value(v, i);
    mmfs_slice vs = {v, vl};
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), vs));
}

/* Keys 0..present-1 are there with their values; present..upto-1 are not. */
static void check_kvs(mmfs_db *db, int present, int upto, const char *ctx, size_t ctxn) {
    for (int i = 0; i < upto; i++) {
        char k[32], v[64];
        kv_name(k, sizeof k, i);
        mmfs_slice got;
        int rc = mmfs_get_kv(db, mmfs_str(k), &got);
        if (i < present) {
            if (rc != MMFS_OK) fail_msg("%s %zu: %s -> %s, want it present", ctx, ctxn, k, mmfs_err_name(rc));
            size_t vl = kv_value(v, i);
            assert_int_equal(got.len, vl);
            assert_memory_equal(got.ptr, v, vl);
        } else if (rc != MMFS_NOTFOUND) {
            fail_msg("%s %zu: %s -> %s, want NOTFOUND", ctx, ctxn, k, mmfs_err_name(rc));
        }
    }
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    if (st.kv != (uint64_t)present)
        fail_msg("%s %zu: stats.kv %llu, want %d", ctx, ctxn, (unsigned long long)st.kv, present);
}

/* Builds a store of NF single-kv frames in one segment.  *lsn0 gets the
** LSN before the first; F/NFR the frames of those writes. */
static unsigned char *build_kv_store(const char *dir, const cfg *c, int nf, uint64_t *lsn0,
                                     frame *fr, size_t *nfr, size_t *seglen) {
    mmfs_db *db = must_open(dir, c);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char *seg = seg_path(dir, 1);
    size_t n;
    unsigned char *img = slurp(seg, &n);
    frame tmp[64];
    size_t before = frames_of(img, n, tmp, 64);
    free(img);

    db = must_open(dir, c);
    *lsn0 = mmfs_test_lsn(db);
    for (int i = 0; i < nf; i++) put_kv(db, i);
    assert_int_equal(mmfs_test_lsn(db), *lsn0 + (uint64_t)nf);
    MMFS_OK_OR_FAIL(mmfs_close(db));

    img = slurp(seg, seglen);
    unstamp(img);
    frame all[64];
    size_t k = frames_of(img, *seglen, all, 64);
    assert_int_equal(k, before + (size_t)nf);
    for (int i = 0; i < nf; i++) {
        fr[i] = all[before + (size_t)i];
        assert_int_equal(fr[i].count, 1);
        assert_int_equal(fr[i].flags & 1, 0);
    }
    *nfr = (size_t)nf;
    free(seg);
    return img;
}

/* Whether byte B of frame F (of checksum length SUMLEN) is one of the
** offsets worth a (slow: each costs an open with fsyncs) probe when not
** every byte is: the header fields and their edges, the first and last
** record bytes, the checksum and the padding, and every 8th byte. */
static int probe_at(const frame *f, size_t b, size_t sumlen) {
    size_t body_end = FRAME_HDR + f->body_len, sum_end = body_end + sumlen;
    if (b < FRAME_HDR) return b % 4 == 0 || b % 4 == 3;
    if (b < FRAME_HDR + 2 || (b + 2 >= body_end && b < body_end)) return 1;
    if (b >= body_end && b < sum_end) return 1;
    if (b == sum_end || b + 1 == f->len) return 1;
    return b % 8 == 5;
}

/* ================================================================== */

/* Close then open returns exactly what was written, for each sync mode. */
static void test_reopen_each_sync_mode(void **state) {
    (void)state;
    static const mmfs_sync_mode modes[] = {MMFS_SYNC_BATCH, MMFS_SYNC_ALWAYS, MMFS_SYNC_NONE};
    for (size_t m = 0; m < 3; m++) {
        char *dir = mmfs_test_dir("recover-sync");
        cfg c = {modes[m], MMFS_CHECKSUM_CRC32C, NULL, 0, 1u << 20};
        mmfs_db *db = must_open(dir, &c);
        for (int i = 0; i < 10; i++) put_kv(db, i);
        MMFS_OK_OR_FAIL(mmfs_delete_kv(db, mmfs_str("key-009"), NULL));
        mmfs_slice tags[2] = {mmfs_str("t1"), mmfs_str("T2")};
        mmfs_memory_opts mo;
        memset(&mo, 0, sizeof mo);
        mo.has_created_at = 1;
        mo.created_at = 1234567;
        mo.route = mmfs_str("r");
        uint64_t id1, id2;
        MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("remember the milk"), tags, 2, &mo, &id1));
        MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("second memory"), NULL, 0, NULL, &id2));
        mmfs_session s;
        memset(&s, 0, sizeof s);
        s.id = mmfs_str("sess");
        s.has_intent = 1;
        s.intent_id = mmfs_str("intent");
        s.has_created_at = 1;
        s.created_at = 99;
        s.has_payload = 1;
        s.payload = mmfs_str("payload");
        MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
        MMFS_OK_OR_FAIL(mmfs_append_stream(db, mmfs_str("st"), mmfs_str("abc")));
        MMFS_OK_OR_FAIL(mmfs_append_stream(db, mmfs_str("st"), mmfs_str("def")));
        MMFS_OK_OR_FAIL(mmfs_index(db, mmfs_str("doc"), mmfs_str("searchable words")));
        MMFS_OK_OR_FAIL(mmfs_update_state(db, mmfs_str("state-1"), NULL));
        MMFS_OK_OR_FAIL(mmfs_update_state(db, mmfs_str("state-2"), NULL));
        uint64_t lsn = mmfs_test_lsn(db);
        MMFS_OK_OR_FAIL(mmfs_close(db));

        for (int round = 0; round < 2; round++) {
            db = must_open(dir, &c);
            assert_int_equal(mmfs_test_lsn(db), lsn);
            check_kvs(db, 9, 10, "sync mode", m);
            mmfs_memory *mem = NULL;
            MMFS_OK_OR_FAIL(mmfs_get_memory(db, id1, &mem));
            assert_int_equal(mem->text.len, 17);
            assert_memory_equal(mem->text.ptr, "remember the milk", 17);
            assert_int_equal(mem->ntags, 2);
            assert_int_equal(mem->tags[1].len, 2);
            assert_memory_equal(mem->tags[1].ptr, "T2", 2);
            assert_int_equal(mem->created_at, 1234567);
            assert_int_equal(mem->route.len, 1);
            mmfs_free(mem);
            MMFS_OK_OR_FAIL(mmfs_get_memory(db, id2, &mem));
            mmfs_free(mem);
            mmfs_session g;
            MMFS_OK_OR_FAIL(mmfs_get_session(db, mmfs_str("sess"), &g));
            assert_int_equal(g.payload.len, 7);
            assert_memory_equal(g.payload.ptr, "payload", 7);
            assert_int_equal(g.created_at, 99);
            uint64_t sz;
            MMFS_OK_OR_FAIL(mmfs_stream_size(db, mmfs_str("st"), &sz));
            assert_int_equal(sz, 6);
            mmfs_doc_hits *h = NULL;
            MMFS_OK_OR_FAIL(mmfs_search(db, mmfs_str("searchable"), 0, &h));
            assert_int_equal(h->count, 1);
            mmfs_free(h);
            mmfs_slice v;
            uint64_t ver;
            MMFS_OK_OR_FAIL(mmfs_get_state(db, &v, &ver));
            assert_int_equal(ver, 2);
            assert_int_equal(v.len, 7);
            assert_memory_equal(v.ptr, "state-2", 7);
            MMFS_OK_OR_FAIL(mmfs_verify(db));
            /* The next id continues. */
            if (round == 1) {
                uint64_t id3;
                MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("third"), NULL, 0, NULL, &id3));
                assert_int_equal(id3, id2 + 1);
                MMFS_OK_OR_FAIL(mmfs_delete_memory(db, id3, NULL));
                lsn += 2;
            }
            MMFS_OK_OR_FAIL(mmfs_close(db));
        }
        mmfs_test_rmdir(dir);
    }
}

/* A store of NF (at most 8) single-kv frames in one segment, from
** build_kv_store: its directory, the path and image of its segment as
** written, the LSN before the first frame, and the frames. */
typedef struct kv_store {
    char *dir, *seg;
    unsigned char *img;
    size_t seglen;
    uint64_t lsn0;
    frame fr[8];
} kv_store;

static void kv_store_build(kv_store *s, const char *name, const cfg *c, int nf) {
    size_t nfr;
    assert_true(nf <= 8);
    s->dir = mmfs_test_dir(name);
    s->img = build_kv_store(s->dir, c, nf, &s->lsn0, s->fr, &nfr, &s->seglen);
    s->seg = seg_path(s->dir, 1);
}

static void kv_store_free(kv_store *s) {
    free(s->img);
    free(s->seg);
    mmfs_test_rmdir(s->dir);
}

/* Cutting the log at ANY byte, by truncating the file (TRUNC) or zeroing
** everything from there (else), keeps exactly the frames that end at or
** before the cut.  Afterwards the store takes new writes and reopens. */
static void torn_tail_sweep(const cfg *c, int trunc) {
    enum { NF = 5 };
    kv_store s;
    kv_store_build(&s, "recover-torn", c, NF);
    unsigned char *img = malloc(s.seglen);
    assert_non_null(img);
    size_t start = s.fr[0].off, end = s.fr[NF - 1].off + s.fr[NF - 1].len;

    size_t sumlen_c = c->checksum == MMFS_CHECKSUM_BLAKE2B ? 16 : 4;
    for (size_t cut = start; cut < end; cut++) {
        /* Every byte of the last frame; sampled bytes of the earlier ones. */
        if (cut < s.fr[NF - 1].off) {
            int fi = 0;
            while (s.fr[fi].off + s.fr[fi].len <= cut) fi++;
            if (!probe_at(&s.fr[fi], cut - s.fr[fi].off, sumlen_c)) continue;
        }
        memcpy(img, s.img, s.seglen);
        if (trunc) {
            spit(s.seg, img, cut);
        } else {
            memset(img + cut, 0, end - cut);
            spit(s.seg, img, s.seglen);
        }
        /* A frame survives when its checked bytes (header, records,
        ** checksum) are all before the cut: zeroing its padding changes
        ** nothing.  A truncation inside the padding may keep the frame or
        ** cut it; both are whole-or-nothing. */
        size_t sumlen = c->checksum == MMFS_CHECKSUM_BLAKE2B ? 16 : 4;
        int keep = 0, keep_whole = 0;
        while (keep < NF && s.fr[keep].off + FRAME_HDR + s.fr[keep].body_len + sumlen <= cut) keep++;
        while (keep_whole < NF && s.fr[keep_whole].off + s.fr[keep_whole].len <= cut) keep_whole++;

        mmfs_db *db = NULL;
        int rc = open_cfg(s.dir, c, &db);
        if (rc != MMFS_OK)
            fail_msg("%s at byte %zu (frame %d at %zu): open -> %s: %s", trunc ? "truncated" : "zeroed", cut,
                     keep, s.fr[keep < NF ? keep : NF - 1].off, mmfs_err_name(rc), mmfs_errmsg(NULL));
        if (trunc && keep != keep_whole) {
            char k[32];
            mmfs_slice v;
            kv_name(k, sizeof k, keep_whole);
            if (mmfs_get_kv(db, mmfs_str(k), &v) != MMFS_OK) keep = keep_whole;
        }
        check_kvs(db, keep, NF, trunc ? "truncated at" : "zeroed from", cut);
        assert_int_equal(mmfs_test_lsn(db), s.lsn0 + (uint64_t)keep);
        MMFS_OK_OR_FAIL(mmfs_verify(db));
        /* New writes go after the surviving frames. */
        if (cut % 7 == 0 || cut == start || cut == end - 1) {
            MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("after"), mmfs_str("cut")));
            MMFS_OK_OR_FAIL(mmfs_close(db));
            rc = open_cfg(s.dir, c, &db);
            if (rc != MMFS_OK)
                fail_msg("cut at %zu, rewritten: reopen -> %s: %s", cut, mmfs_err_name(rc), mmfs_errmsg(NULL));
            mmfs_slice v;
            MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("after"), &v));
            assert_int_equal(v.len, 3);
            assert_memory_equal(v.ptr, "cut", 3);
            assert_int_equal(mmfs_test_lsn(db), s.lsn0 + (uint64_t)keep + 1);
            MMFS_OK_OR_FAIL(mmfs_delete_kv(db, mmfs_str("after"), NULL));
            check_kvs(db, keep, NF, "rewritten after cut", cut);
        }
        MMFS_OK_OR_FAIL(mmfs_close(db));
    }
    free(img);
    kv_store_free(&s);
}

static const cfg crc_cfg = {MMFS_SYNC_NONE, MMFS_CHECKSUM_CRC32C, NULL, 0, SMALL_SEG};

static void test_torn_tail_zeroed_any_byte(void **state) {
    (void)state;
    torn_tail_sweep(&crc_cfg, 0);
}

static void test_torn_tail_truncated_any_byte(void **state) {
    (void)state;
    torn_tail_sweep(&crc_cfg, 1);
}

/* The last frame damaged anywhere (not zeroed: garbage) and followed by
** nothing valid is a torn tail too: cut, the earlier frames kept. */
static void test_torn_tail_garbage_last_frame(void **state) {
    (void)state;
    enum { NF = 4 };
    kv_store s;
    kv_store_build(&s, "recover-garbage", &crc_cfg, NF);
    frame last = s.fr[NF - 1];
    size_t covered = FRAME_HDR + last.body_len + 4;
    for (size_t b = 0; b < covered; b++) {
        if (!probe_at(&last, b, 4)) continue;
        spit(s.seg, s.img, s.seglen);
        unsigned char x = s.img[last.off + b] ^ 0x40;
        poke(s.seg, last.off + b, &x, 1);
        mmfs_db *db = NULL;
        int rc = open_cfg(s.dir, &crc_cfg, &db);
        if (rc != MMFS_OK)
            fail_msg("last frame byte %zu flipped: open -> %s: %s", b, mmfs_err_name(rc), mmfs_errmsg(NULL));
        check_kvs(db, NF - 1, NF, "last frame flipped at", b);
        MMFS_OK_OR_FAIL(mmfs_close(db));
    }
    kv_store_free(&s);
}

/* A flipped byte anywhere in an earlier frame (header, length, LSN,
** records, checksum) is corruption: open fails naming segment and offset,
** and returns no handle. */
static void flip_sweep(const cfg *c, int which) {
    enum { NF = 5 };
    kv_store s;
    kv_store_build(&s, "recover-flip", c, NF);
    frame t = s.fr[which];
    size_t sumlen = c->checksum == MMFS_CHECKSUM_BLAKE2B ? 16 : 4;
    size_t covered = FRAME_HDR + t.body_len + sumlen; /* the zero padding after is not checked here */
    assert_true(covered <= t.len);
    for (size_t b = 0; b < covered; b++) {
        if (!probe_at(&t, b, sumlen)) continue;
        static const unsigned char masks[] = {0x01, 0x80, 0xff};
        unsigned char mask = masks[b % 3];
        spit(s.seg, s.img, s.seglen);
        unsigned char x = s.img[t.off + b] ^ mask;
        poke(s.seg, t.off + b, &x, 1);
        mmfs_db *db = (mmfs_db *)s.seg;
        int rc = open_cfg(s.dir, c, &db);
        if (rc != MMFS_CORRUPT) {
            if (rc == MMFS_OK) mmfs_close(db);
            fail_msg("frame %d (offset %zu) byte %zu ^ 0x%02x: open -> %s, want CORRUPT", which, t.off, b, mask,
                     mmfs_err_name(rc));
        }
        assert_null(db);
        assert_names(mmfs_errmsg(NULL), 1, t.off);
    }
    /* Restored: opens again with everything. */
    spit(s.seg, s.img, s.seglen);
    mmfs_db *db = must_open(s.dir, c);
    check_kvs(db, NF, NF, "restored", 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    kv_store_free(&s);
}

static void test_flip_middle_frame_corrupt(void **state) {
    (void)state;
    flip_sweep(&crc_cfg, 2);
}

static void test_flip_first_frame_corrupt(void **state) {
    (void)state;
    flip_sweep(&crc_cfg, 0);
}

/* A frame wiped to zeros but followed by a valid frame is not a tail. */
static void test_zeroed_middle_frame_corrupt(void **state) {
    (void)state;
    enum { NF = 5 };
    kv_store s;
    kv_store_build(&s, "recover-hole", &crc_cfg, NF);
    memset(s.img + s.fr[2].off, 0, s.fr[2].len);
    spit(s.seg, s.img, s.seglen);
    mmfs_db *db = (mmfs_db *)s.seg;
    MMFS_ASSERT_STATUS(open_cfg(s.dir, &crc_cfg, &db), MMFS_CORRUPT);
    assert_null(db);
    assert_names(mmfs_errmsg(NULL), 1, s.fr[2].off);
    kv_store_free(&s);
}

/* mmfs_verify re-reads the log: damage done under an open handle is
** reported with segment and offset, and goes away when repaired. */
static void test_verify_reports_damage(void **state) {
    (void)state;
    enum { NF = 5 };
    kv_store s;
    kv_store_build(&s, "recover-verify", &crc_cfg, NF);
    mmfs_db *db = must_open(s.dir, &crc_cfg);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    static const size_t at[] = {4, 12, FRAME_HDR + 2};
    for (size_t i = 0; i < 3; i++) {
        size_t off = s.fr[1].off + at[i];
        unsigned char x = s.img[off] ^ 0x10;
        poke(s.seg, off, &x, 1);
        MMFS_ASSERT_STATUS(mmfs_verify(db), MMFS_CORRUPT);
        assert_names(mmfs_errmsg(db), 1, s.fr[1].off);
        poke(s.seg, off, &s.img[off], 1);
        MMFS_OK_OR_FAIL(mmfs_verify(db));
    }
    MMFS_OK_OR_FAIL(mmfs_close(db));
    kv_store_free(&s);
}

/* ---------------------------------------------------------- segments */

enum { ROLL_KV = 700, ROLL_MEM = 300, ROLL_VAL = 400 };

static void roll_value(char *v, int i) {
    for (int j = 0; j < ROLL_VAL; j++) v[j] = (char)(' ' + (i * 31 + j) % 95);
}

/* Fills a store with 64 KiB segments: about 400 KB over many segments.
** Returns the number of segments. */
static unsigned build_rolled_store(const char *dir) {
    mmfs_db *db = must_open(dir, &crc_cfg);
    char k[32], v[ROLL_VAL];
    for (int i = 0; i < ROLL_KV; i++) {
        snprintf(k, sizeof k, "roll-%04d", i);
        roll_value(v, i);
        mmfs_slice vs = {v, ROLL_VAL};
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), vs));
        if (i < ROLL_MEM) {
            char text[64];
            snprintf(text, sizeof text, "memory number %d of the roll test", i);
            uint64_t id;
            MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(text), NULL, 0, NULL, &id));
            assert_int_equal(id, (uint64_t)i + 1);
        }
    }
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    return (unsigned)st.segments;
}

static void check_rolled(mmfs_db *db, int nkv) {
    char k[32], v[ROLL_VAL];
    for (int i = 0; i < nkv; i++) {
        snprintf(k, sizeof k, "roll-%04d", i);
        roll_value(v, i);
        mmfs_slice got;
        int rc = mmfs_get_kv(db, mmfs_str(k), &got);
        if (rc != MMFS_OK) fail_msg("%s -> %s", k, mmfs_err_name(rc));
        assert_int_equal(got.len, ROLL_VAL);
        assert_memory_equal(got.ptr, v, ROLL_VAL);
    }
}

static void test_rollover_many_segments(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-roll");
    unsigned nseg = build_rolled_store(dir);
    if (nseg < 5) fail_msg("only %u segments for ~400 KB in 64 KiB segments", nseg);

    /* Every segment exists, preallocated; every full one ends with a seal. */
    for (unsigned s = 1; s <= nseg; s++) {
        char *p = seg_path(dir, s);
        struct stat st;
        if (stat(p, &st) != 0) fail_msg("missing %s", p);
        assert_int_equal(st.st_size, SMALL_SEG);
        size_t n;
        unsigned char *img = slurp(p, &n);
        frame fr[512];
        size_t k = frames_of(img, n, fr, 512);
        assert_true(k >= 1);
        if (s < nseg && !(fr[k - 1].flags & 1))
            fail_msg("segment %u (not the last) does not end with a seal frame", s);
        for (size_t i = 0; i + 1 < k; i++) assert_int_equal(fr[i].flags & 1, 0);
        free(img);
        free(p);
    }
    char *p = seg_path(dir, nseg + 1);
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0);
    free(p);

    for (int round = 0; round < 2; round++) {
        mmfs_db *db = must_open(dir, &crc_cfg);
        mmfs_store_stats s;
        MMFS_OK_OR_FAIL(mmfs_stats(db, &s));
        assert_int_equal(s.segments, nseg);
        assert_int_equal(s.kv, ROLL_KV);
        assert_int_equal(s.memories, ROLL_MEM);
        check_rolled(db, ROLL_KV);
        for (int i = 0; i < ROLL_MEM; i += 37) {
            mmfs_memory *m = NULL;
            MMFS_OK_OR_FAIL(mmfs_get_memory(db, (uint64_t)i + 1, &m));
            char text[64];
            snprintf(text, sizeof text, "memory number %d of the roll test", i);
            assert_int_equal(m->text.len, strlen(text));
            assert_memory_equal(m->text.ptr, text, strlen(text));
            mmfs_free(m);
        }
        mmfs_memories *ms = NULL;
        MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str("roll"), NULL, &ms));
        assert_int_equal(ms->count, 20);
        mmfs_free(ms);
        MMFS_OK_OR_FAIL(mmfs_verify(db));
        MMFS_OK_OR_FAIL(mmfs_close(db));
    }
    mmfs_test_rmdir(dir);
}

/* Damage to a sealed segment is corruption, whatever it looks like: even
** a zeroed tail there is not a torn tail. */
static void test_sealed_segment_damage_corrupt(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-sealed");
    unsigned nseg = build_rolled_store(dir);
    assert_true(nseg >= 3);
    char *seg2 = seg_path(dir, 2);
    size_t n;
    unsigned char *img = slurp(seg2, &n);
    frame fr[512];
    size_t k = frames_of(img, n, fr, 512);
    assert_true(k >= 3);
    unsigned char *work = malloc(n);
    assert_non_null(work);

    /* (a) a flipped byte in the last data frame before the seal */
    memcpy(work, img, n);
    work[fr[k - 2].off + FRAME_HDR + 1] ^= 0x20;
    spit(seg2, work, n);
    mmfs_db *db = (mmfs_db *)img;
    MMFS_ASSERT_STATUS(open_cfg(dir, &crc_cfg, &db), MMFS_CORRUPT);
    assert_null(db);
    assert_names(mmfs_errmsg(NULL), 2, fr[k - 2].off);

    /* (b) the seal frame zeroed */
    memcpy(work, img, n);
    memset(work + fr[k - 1].off, 0, fr[k - 1].len);
    spit(seg2, work, n);
    db = (mmfs_db *)img;
    MMFS_ASSERT_STATUS(open_cfg(dir, &crc_cfg, &db), MMFS_CORRUPT);
    assert_null(db);
    assert_names(mmfs_errmsg(NULL), 2, fr[k - 1].off);

    /* (c) everything from the middle frame on zeroed */
    memcpy(work, img, n);
    size_t mid = fr[k / 2].off;
    memset(work + mid, 0, n - mid);
    spit(seg2, work, n);
    db = (mmfs_db *)img;
    MMFS_ASSERT_STATUS(open_cfg(dir, &crc_cfg, &db), MMFS_CORRUPT);
    assert_null(db);
    assert_names(mmfs_errmsg(NULL), 2, mid);

    /* (d) the seal frame's last checksum byte flipped */
    memcpy(work, img, n);
    work[fr[k - 1].off + FRAME_HDR + fr[k - 1].body_len + 3] ^= 1;
    spit(seg2, work, n);
    db = (mmfs_db *)img;
    MMFS_ASSERT_STATUS(open_cfg(dir, &crc_cfg, &db), MMFS_CORRUPT);
    assert_null(db);
    assert_names(mmfs_errmsg(NULL), 2, fr[k - 1].off);

    /* Repaired: everything is back. */
    spit(seg2, img, n);
    db = must_open(dir, &crc_cfg);
    check_rolled(db, ROLL_KV);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(work);
    free(img);
    free(seg2);
    mmfs_test_rmdir(dir);
}

/* A torn tail in the last of many segments is cut like in a single one. */
static void test_torn_tail_last_of_many_segments(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-lastseg");
    unsigned nseg = build_rolled_store(dir);
    mmfs_db *db = must_open(dir, &crc_cfg);
    /* Three more kv frames at the end, in the last segment. */
    char k[32];
    for (int i = 0; i < 3; i++) {
        snprintf(k, sizeof k, "tail-%d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), mmfs_str("tail value")));
    }
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    assert_int_equal(st.segments, nseg); /* small enough not to roll */
    char *last = seg_path(dir, nseg);
    size_t n;
    unsigned char *img = slurp(last, &n);
    frame fr[512];
    size_t kf = frames_of(img, n, fr, 512);
    assert_true(kf >= 3);
    /* Zero the second half of the last frame (never synced). */
    unstamp(img);
    frame t = fr[kf - 1];
    memset(img + t.off + t.len / 2, 0, t.len - t.len / 2);
    spit(last, img, n);
    db = must_open(dir, &crc_cfg);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("tail-1"), &v));
    MMFS_ASSERT_STATUS(mmfs_get_kv(db, mmfs_str("tail-2"), &v), MMFS_NOTFOUND);
    check_rolled(db, ROLL_KV);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(img);
    free(last);
    mmfs_test_rmdir(dir);
}

/* ------------------------------------------- what is known durable */

static char *root_file(const char *dir, const char *name) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    assert_non_null(p);
    snprintf(p, len, "%s/%s", dir, name);
    return p;
}

/* An open that fails leaves every file as it was: compares the segment
** files 1..NSEG with IMGS and says whether MANIFEST exists (WANT). */
static void assert_unchanged(const char *dir, unsigned nseg, unsigned char **imgs, size_t *lens, int manifest) {
    for (unsigned i = 0; i < nseg; i++) {
        char *p = seg_path(dir, i + 1);
        size_t n;
        unsigned char *now = slurp(p, &n);
        assert_int_equal(n, lens[i]);
        assert_memory_equal(now, imgs[i], n);
        free(now);
        free(p);
    }
    char *m = root_file(dir, "MANIFEST");
    struct stat st;
    assert_int_equal(stat(m, &st) == 0, manifest);
    free(m);
}

/* Synced frames lost off the end of the last segment (the file truncated
** after a sync covered them): CORRUPT naming where the log ends and what
** was synced, and the failed open changes nothing; before, they were cut
** as a torn tail and their LSNs given again to new writes. */
static void truncated_synced(const cfg *c) {
    char *dir = mmfs_test_dir("recover-truncsync");
    mmfs_db *db = must_open(dir, c);
    for (int i = 0; i < 6; i++) put_kv(db, i);
    MMFS_OK_OR_FAIL(mmfs_close(db)); /* syncs: the frames are durable */
    char *seg = seg_path(dir, 1);
    size_t n;
    unsigned char *img = slurp(seg, &n);
    frame fr[16];
    size_t k = frames_of(img, n, fr, 16);
    assert_true(k >= 6);
    for (int mode = 0; mode < 2; mode++) {
        size_t cut = fr[k - 2].off + (mode ? 5 : 0);
        unsigned char *dam = malloc(n);
        assert_non_null(dam);
        memcpy(dam, img, n);
        size_t len = n;
        if (mode == 0) {
            len = cut; /* truncated */
        } else {
            memset(dam + cut, 0, fr[k - 1].off + fr[k - 1].len - cut); /* zeroed */
        }
        spit(seg, dam, len);
        mmfs_db *bad = NULL;
        int rc = open_cfg(dir, c, &bad);
        if (rc != MMFS_CORRUPT)
            fail_msg("synced frames %s: open -> %s, want CORRUPT", mode ? "zeroed" : "truncated", mmfs_err_name(rc));
        assert_null(bad);
        assert_non_null(strstr(mmfs_errmsg(NULL), "00000001.seg"));
        assert_non_null(strstr(mmfs_errmsg(NULL), "synced up to offset"));
        size_t now_len;
        unsigned char *now = slurp(seg, &now_len);
        assert_int_equal(now_len, len);
        assert_memory_equal(now, dam, len);
        free(now);
        free(dam);
    }
    /* repair cuts there, and the store goes on after the surviving frames */
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_NONE;
    o.repair = 1;
    MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &db));
    uint64_t lsn = mmfs_test_lsn(db);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("after"), mmfs_str("repair")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = must_open(dir, c);
    assert_int_equal(mmfs_test_lsn(db), lsn + 1);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(img);
    free(seg);
    mmfs_test_rmdir(dir);
}

static void test_truncated_synced_segment_corrupt(void **state) {
    (void)state;
    truncated_synced(&crc_cfg);
}

/* The same in "always" mode, where syncs move the durable stamp on at most
** every 100 ms (sync.c): close writes the stamp it held back, so the six
** quick writes are all known synced. */
static void test_truncated_synced_always_corrupt(void **state) {
    (void)state;
    static const cfg always = {MMFS_SYNC_ALWAYS, MMFS_CHECKSUM_CRC32C, NULL, 0, SMALL_SEG};
    truncated_synced(&always);
}

/* The last segment removed: MANIFEST records it, so open is CORRUPT;
** before, the store opened on the earlier segments and new writes reused
** the lost LSNs and ids. */
static void test_missing_last_segment_corrupt(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-lastmissing");
    unsigned nseg = build_rolled_store(dir);
    assert_true(nseg >= 3);
    char *last = seg_path(dir, nseg);
    assert_int_equal(unlink(last), 0);
    mmfs_db *db = NULL;
    MMFS_ASSERT_STATUS(open_cfg(dir, &crc_cfg, &db), MMFS_CORRUPT);
    assert_null(db);
    char want[32];
    snprintf(want, sizeof want, "%08u.seg", nseg);
    assert_non_null(strstr(mmfs_errmsg(NULL), want));
    assert_non_null(strstr(mmfs_errmsg(NULL), "missing"));
    /* and nothing was made in its place */
    struct stat st;
    assert_int_equal(stat(last, &st), -1);
    free(last);
    mmfs_test_rmdir(dir);
}

/* MANIFEST removed: a log that verifies whole opens, and MANIFEST is
** written again from it. */
static void test_missing_manifest_rebuilt(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-nomanifest");
    unsigned nseg = build_rolled_store(dir);
    char *m = root_file(dir, "MANIFEST");
    assert_int_equal(unlink(m), 0);
    unsigned char **imgs = calloc(nseg, sizeof *imgs);
    size_t *lens = calloc(nseg, sizeof *lens);
    assert_true(imgs && lens);
    for (unsigned i = 0; i < nseg; i++) {
        char *p = seg_path(dir, i + 1);
        imgs[i] = slurp(p, &lens[i]);
        free(p);
    }
    mmfs_options ro;
    mmfs_options_init(&ro);
    ro.readonly = 1;
    mmfs_db *db = NULL;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &ro, &db), MMFS_CORRUPT); /* read-only cannot rebuild it */
    assert_non_null(strstr(mmfs_errmsg(NULL), "MANIFEST"));
    assert_unchanged(dir, nseg, imgs, lens, 0); /* a failed open changes nothing */
    for (unsigned i = 0; i < nseg; i++) free(imgs[i]);
    free(imgs);
    free(lens);
    db = must_open(dir, &crc_cfg);
    check_rolled(db, ROLL_KV);
    mmfs_store_stats st = mmfs_test_stats(db);
    assert_int_equal(st.segments, nseg);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    struct stat sb;
    assert_int_equal(stat(m, &sb), 0);
    /* it records a tokenizer too: the lost MANIFEST was its only record,
    ** and a rebuilt one without the line would mean tokenizer 0 */
    size_t mlen;
    unsigned char *mtext = slurp(m, &mlen);
    char *mstr = calloc(1, mlen + 1);
    memcpy(mstr, mtext, mlen);
    assert_non_null(strstr(mstr, "\ntokenizer 1 english\n"));
    free(mstr);
    free(mtext);
    /* the rebuilt MANIFEST records the last segment: losing it is caught */
    char *last = seg_path(dir, nseg);
    assert_int_equal(unlink(last), 0);
    MMFS_ASSERT_STATUS(open_cfg(dir, &crc_cfg, &db), MMFS_CORRUPT);
    free(last);
    free(m);
    mmfs_test_rmdir(dir);
}

/* The checksum type is fixed at creation: asking for another later is
** ignored and the store opens. */
static void test_checksum_fixed_at_creation(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-cksum");
    mmfs_db *db = must_open(dir, &crc_cfg);
    put_kv(db, 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
#ifdef MMFS_HAVE_SODIUM
    cfg c2 = crc_cfg;
    c2.checksum = MMFS_CHECKSUM_BLAKE2B;
    db = must_open(dir, &c2);
    check_kvs(db, 1, 1, "crc store opened asking blake2b", 0);
    put_kv(db, 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = must_open(dir, &crc_cfg);
    check_kvs(db, 2, 2, "reopened", 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
#endif
    mmfs_test_rmdir(dir);
}

#ifdef MMFS_HAVE_SODIUM
static const unsigned char key1[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char key2[32] = "0123456789abcdef0123456789abcdeF";

static void test_blake2b_roundtrip_and_torn_tail(void **state) {
    (void)state;
    cfg c = {MMFS_SYNC_NONE, MMFS_CHECKSUM_BLAKE2B, NULL, 0, SMALL_SEG};
    torn_tail_sweep(&c, 0);
    flip_sweep(&c, 1);
}

static void test_blake2b_keyed(void **state) {
    (void)state;
    cfg c = {MMFS_SYNC_NONE, MMFS_CHECKSUM_BLAKE2B, key1, sizeof key1, SMALL_SEG};
    torn_tail_sweep(&c, 1);
    flip_sweep(&c, 3);
}

/* The wrong key (or none) is CORRUPT and returns no data. */
static void test_blake2b_wrong_key(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-key");
    cfg good = {MMFS_SYNC_NONE, MMFS_CHECKSUM_BLAKE2B, key1, sizeof key1, SMALL_SEG};
    mmfs_db *db = must_open(dir, &good);
    for (int i = 0; i < 3; i++) put_kv(db, i);
    MMFS_OK_OR_FAIL(mmfs_close(db));

    cfg bad = good;
    bad.key = key2;
    db = (mmfs_db *)dir;
    MMFS_ASSERT_STATUS(open_cfg(dir, &bad, &db), MMFS_CORRUPT);
    assert_null(db);
    const char *msg = mmfs_errmsg(NULL);
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);

    bad.key_len = 16; /* a prefix of the right key is still wrong */
    bad.key = key1;
    db = (mmfs_db *)dir;
    MMFS_ASSERT_STATUS(open_cfg(dir, &bad, &db), MMFS_CORRUPT);
    assert_null(db);

    bad.key = NULL;
    bad.key_len = 0;
    db = (mmfs_db *)dir;
    MMFS_ASSERT_STATUS(open_cfg(dir, &bad, &db), MMFS_CORRUPT);
    assert_null(db);

    /* A failed open changed nothing: the right key still works. */
    db = must_open(dir, &good);
    check_kvs(db, 3, 3, "right key", 0);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));

    /* And a keyed frame really differs from an unkeyed one: the same
    ** writes in an unkeyed blake2b store give other checksum bytes. */
    char *dir2 = mmfs_test_dir("recover-key2");
    cfg unkeyed = good;
    unkeyed.key = NULL;
    unkeyed.key_len = 0;
    db = must_open(dir2, &unkeyed);
    for (int i = 0; i < 3; i++) put_kv(db, i);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char *s1 = seg_path(dir, 1), *s2 = seg_path(dir2, 1);
    size_t n1, n2;
    unsigned char *a = slurp(s1, &n1), *b = slurp(s2, &n2);
    frame fa[16], fb[16];
    size_t ka = frames_of(a, n1, fa, 16), kb = frames_of(b, n2, fb, 16);
    assert_int_equal(ka, kb);
    assert_true(ka >= 1);
    frame x = fa[ka - 1], y = fb[kb - 1];
    assert_int_equal(x.len, y.len);
    assert_memory_not_equal(a + x.off + FRAME_HDR + x.body_len, b + y.off + FRAME_HDR + y.body_len, 16);
    free(a);
    free(b);
    free(s1);
    free(s2);
    mmfs_test_rmdir(dir2);
    mmfs_test_rmdir(dir);
}
#endif

/* A writer process killed with SIGKILL mid-stream: every write it had been
** told was done (batch and none modes: once written) is there on reopen,
** and the store opens (a torn tail, if any, is cut). */
static void kill_writer(mmfs_sync_mode mode) {
    char *dir = mmfs_test_dir("recover-kill");
    cfg c = {mode, MMFS_CHECKSUM_CRC32C, NULL, 0, SMALL_SEG};
    mmfs_db *db = must_open(dir, &c); /* created before the child starts */
    MMFS_OK_OR_FAIL(mmfs_close(db));
    int pfd[2];
    pid_t pid = mmfs_test_fork_piped(pfd);
    if (pid == 0) {
        mmfs_db *cdb = NULL;
        if (open_cfg(dir, &c, &cdb) != MMFS_OK) _exit(10);
        for (int i = 0;; i++) {
            char k[32], v[64];
            snprintf(k, sizeof k, "kill-%06d", i);
            size_t vl = kv_value(v, i);
            mmfs_slice vs = {v, vl};
            if (mmfs_set_kv(cdb, mmfs_str(k), vs) != MMFS_OK) _exit(11);
            uint32_t done = (uint32_t)i;
            if (write(pfd[1], &done, sizeof done) != sizeof done) _exit(12);
        }
    }
    uint32_t last = 0, x;
    int got = 0;
    while (read(pfd[0], &x, sizeof x) == sizeof x) {
        last = x;
        got = 1;
        if (last >= 2000) break; /* ~200 KB: crosses 64 KiB segments */
    }
    kill(pid, SIGKILL);
    while (read(pfd[0], &x, sizeof x) == sizeof x) last = x; /* acks sent before the kill */
    close(pfd[0]);
    int status = mmfs_test_wait(pid);
    if (!got) fail_msg("the child acknowledged nothing (status 0x%x)", status);
    if (WIFEXITED(status)) fail_msg("child exited with %d instead of being killed", WEXITSTATUS(status));

    db = must_open(dir, &c);
    for (uint32_t i = 0; i <= last; i++) {
        char k[32], v[64];
        snprintf(k, sizeof k, "kill-%06u", i);
        size_t vl = kv_value(v, (int)i);
        mmfs_slice g;
        int rc = mmfs_get_kv(db, mmfs_str(k), &g);
        if (rc != MMFS_OK) fail_msg("acknowledged %s (of %u) lost: %s", k, last, mmfs_err_name(rc));
        assert_int_equal(g.len, vl);
        assert_memory_equal(g.ptr, v, vl);
    }
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    /* At most the one write in flight at the kill is there beyond the acks. */
    assert_true(st.kv == (uint64_t)last + 1 || st.kv == (uint64_t)last + 2);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("after-kill"), mmfs_str("ok")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

#ifdef MMFS_HAVE_SODIUM
/* MANIFEST lost and a wrong key (or none): every frame fails its checksum,
** which used to make the whole segment a torn tail, zeroed; and the failed
** open left a MANIFEST behind after which the right key was refused.  Now
** it is CORRUPT and changes nothing; the right key then opens the log and
** rebuilds MANIFEST. */
static void test_missing_manifest_wrong_key(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-nomanifest-key");
    cfg good = {MMFS_SYNC_NONE, MMFS_CHECKSUM_BLAKE2B, key1, sizeof key1, SMALL_SEG};
    mmfs_db *db = must_open(dir, &good);
    for (int i = 0; i < 4; i++) put_kv(db, i);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char *m = root_file(dir, "MANIFEST");
    assert_int_equal(unlink(m), 0);
    char *seg = seg_path(dir, 1);
    unsigned char *img[1];
    size_t len[1];
    img[0] = slurp(seg, &len[0]);

    cfg wrong = good;
    wrong.key = key2;
    MMFS_ASSERT_STATUS(open_cfg(dir, &wrong, &db), MMFS_CORRUPT);
    if (!strstr(mmfs_errmsg(NULL), "wrong key")) fail_msg("message: %s", mmfs_errmsg(NULL));
    assert_unchanged(dir, 1, img, len, 0);
    cfg none = good;
    none.key = NULL;
    none.key_len = 0;
    int rc = open_cfg(dir, &none, &db);
    if (rc == MMFS_OK) fail_msg("a keyed log without MANIFEST opened without its key");
    assert_unchanged(dir, 1, img, len, 0);

    db = must_open(dir, &good);
    check_kvs(db, 4, 4, "right key after MANIFEST lost", 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    /* rebuilt, keyed: a wrong key is now told by MANIFEST */
    MMFS_ASSERT_STATUS(open_cfg(dir, &wrong, &db), MMFS_CORRUPT);
    assert_non_null(strstr(mmfs_errmsg(NULL), "MANIFEST: wrong key"));
    free(img[0]);
    free(seg);
    free(m);
    mmfs_test_rmdir(dir);
}

/* A keyed store is tamper-evident: the last, synced frame changed (its
** header checksum fixed up, as anyone can) is CORRUPT, not cut. */
static void test_keyed_tampered_last_frame_corrupt(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("recover-tamper");
    cfg good = {MMFS_SYNC_NONE, MMFS_CHECKSUM_BLAKE2B, key1, sizeof key1, SMALL_SEG};
    mmfs_db *db = must_open(dir, &good);
    for (int i = 0; i < 4; i++) put_kv(db, i);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char *seg = seg_path(dir, 1);
    size_t n;
    unsigned char *img = slurp(seg, &n);
    frame fr[16];
    size_t k = frames_of(img, n, fr, 16);
    assert_true(k >= 4);
    img[fr[k - 1].off + FRAME_HDR + fr[k - 1].body_len - 1] ^= 1; /* the value's last byte */
    spit(seg, img, n);
    MMFS_ASSERT_STATUS(open_cfg(dir, &good, &db), MMFS_CORRUPT);
    char want[48];
    snprintf(want, sizeof want, "offset %zu:", fr[k - 1].off);
    assert_non_null(strstr(mmfs_errmsg(NULL), want));
    size_t now_len;
    unsigned char *now = slurp(seg, &now_len);
    assert_memory_equal(now, img, n); /* not cut */
    free(now);
    free(img);
    free(seg);
    mmfs_test_rmdir(dir);
}
#endif

static void test_killed_writer_batch(void **state) {
    (void)state;
    kill_writer(MMFS_SYNC_BATCH);
}

static void test_killed_writer_none(void **state) {
    (void)state;
    kill_writer(MMFS_SYNC_NONE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen_each_sync_mode),
        cmocka_unit_test(test_torn_tail_zeroed_any_byte),
        cmocka_unit_test(test_torn_tail_truncated_any_byte),
        cmocka_unit_test(test_torn_tail_garbage_last_frame),
        cmocka_unit_test(test_flip_middle_frame_corrupt),
        cmocka_unit_test(test_flip_first_frame_corrupt),
        cmocka_unit_test(test_zeroed_middle_frame_corrupt),
        cmocka_unit_test(test_verify_reports_damage),
        cmocka_unit_test(test_rollover_many_segments),
        cmocka_unit_test(test_sealed_segment_damage_corrupt),
        cmocka_unit_test(test_torn_tail_last_of_many_segments),
        cmocka_unit_test(test_checksum_fixed_at_creation),
        cmocka_unit_test(test_killed_writer_batch),
        cmocka_unit_test(test_killed_writer_none),
        cmocka_unit_test(test_truncated_synced_segment_corrupt),
        cmocka_unit_test(test_truncated_synced_always_corrupt),
        cmocka_unit_test(test_missing_last_segment_corrupt),
        cmocka_unit_test(test_missing_manifest_rebuilt),
#ifdef MMFS_HAVE_SODIUM
        cmocka_unit_test(test_blake2b_roundtrip_and_torn_tail),
        cmocka_unit_test(test_blake2b_keyed),
        cmocka_unit_test(test_blake2b_wrong_key),
        cmocka_unit_test(test_missing_manifest_wrong_key),
        cmocka_unit_test(test_keyed_tampered_last_frame_corrupt),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
