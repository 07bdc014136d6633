/*
** powerloss_test.c: what a power cut can leave in the log, applied to a
** copy of a real store, then reopened.
**
** A store is written (several segments, kv frames of different sizes, some
** of them batches), closed, and its last segment kept as the golden image.
** Then, each time from the golden image:
**
**   1. truncation: for every byte offset from the start of the third-last
**      frame to the end of the data, the bytes from there on are zeroed
**      (the file is preallocated, so a lost write reads as zeros);
**   2. torn pages: single 4 KiB pages of the last segment's data zeroed or
**      filled with garbage, and garbage from a page to past the end of
**      the data;
**   3. bit flips: a byte flipped inside an earlier frame's body and inside
**      its length field, in the last segment and in a sealed one;
**   4. synced loss: with the segment's durable stamp kept, one of the last
**      frames and all after it zeroed, or the file truncated there: frames
**      a sync covered are gone, so open must fail CORRUPT, changing nothing.
**
** Phases 1-3 clear the durable stamp first: a power cut tears only what
** no sync covered yet.
** The oracle follows the recovery rule (DESIGN.md): let d be the first
** frame whose bytes (header, records, checksum; not padding) changed.  If
** some later frame is unchanged, the store is corrupt: mmfs_open fails with
** MMFS_CORRUPT and the message names the segment file and frame d's offset
** (and mmfs_verify on a handle opened before the damage says the same).
** Otherwise it is a torn tail: open succeeds with exactly the frames
** before d, and a next write survives a reopen.
**
** --soak or MMFS_SOAK=1: the next-write check at every damage point (else
** at every 16th) and more garbage patterns per page.
*/
#include "crashutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define NWRITES 64
#define SEG_SIZE (64u << 10)

typedef struct wr {
    int nkeys;     /* keys set by this write (one frame) */
    int first_key; /* keys first_key .. first_key + nkeys - 1 */
} wr;

typedef struct frame_pos {
    uint32_t seg;
    uint64_t off, len, used; /* used: bytes before the padding */
} frame_pos;

static wr writes[NWRITES];
static int nkeys_total;
static frame_pos frames[NWRITES];
static int nframes;
static char *dir;
static int soak;
static uint32_t last_seg;
static uint8_t *golden; /* the last segment as written */
static size_t golden_len;
static uint8_t golden_stamp[12]; /* the last segment's durable stamp */
static uint64_t data_end; /* end of the last frame in the last segment */
static long points, next_writes, corrupt_cases, torn_cases;

/* Value of key K: deterministic, of a size that depends on the write. */
static size_t key_value(int k, uint8_t *out) {
    static const size_t sizes[] = {40, 700, 1500, 90, 5000, 300, 2200, 12};
    size_t n = sizes[k % 8] + (size_t)k;
    ct_rng r = {(uint64_t)k * 7919u + 1};
    ct_fill(&r, out, n);
    return n;
}

static void key_name(int k, char out[16]) { snprintf(out, 16, "p%03d", k); }

static void seg_path(uint32_t no, char *out, size_t len) { snprintf(out, len, "%s/log/%08u.seg", dir, no); }

static mmfs_options opts(void) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_NONE;
    o.segment_size = SEG_SIZE;
    return o;
}

static void build_store(void) {
    mmfs_options o = opts();
    mmfs_db *db;
    REQUIRE_OK(mmfs_open(dir, &o, &db));
    uint8_t val[8192];
    int k = 0;
    for (int w = 0; w < NWRITES; w++) {
        writes[w].first_key = k;
        writes[w].nkeys = (w % 5 == 4) ? 3 : 1; /* every fifth frame: a batch */
        char name[16];
        if (writes[w].nkeys == 1) {
            key_name(k, name);
            size_t n = key_value(k, val);
            REQUIRE_OK(mmfs_set_kv(db, mmfs_str(name), (mmfs_slice){val, n}));
            k++;
        } else {
            mmfs_batch *b;
            REQUIRE_OK(mmfs_batch_begin(db, &b));
            for (int i = 0; i < writes[w].nkeys; i++, k++) {
                key_name(k, name);
                size_t n = key_value(k, val);
                REQUIRE_OK(mmfs_batch_set_kv(b, mmfs_str(name), (mmfs_slice){val, n}));
            }
            REQUIRE_OK(mmfs_batch_commit(b, NULL, NULL));
        }
    }
    nkeys_total = k;
    mmfs_store_stats st;
    REQUIRE_OK(mmfs_stats(db, &st));
    last_seg = (uint32_t)st.segments;
    REQUIRE_OK(mmfs_close(db));
    if (last_seg < 2) ct_fatal(__FILE__, __LINE__, "want a store of several segments, got %u", last_seg);
}

/* Finds the frames of every segment (CRC32C: 4 checksum bytes). */
static void find_frames(void) {
    nframes = 0;
    for (uint32_t no = 1; no <= last_seg; no++) {
        char path[4200];
        seg_path(no, path, sizeof path);
        size_t len;
        uint8_t *img = ct_read_file(path, &len);
        if (!img) ct_fatal(__FILE__, __LINE__, "read %s", path);
        uint64_t off = MMFS__SEG_HDR;
        while (off + MMFS__FRAME_HDR <= len && mmfs__ld32(img + off) == MMFS__FRAME_MAGIC) {
            uint32_t flen = mmfs__ld32(img + off + 4), body = mmfs__ld32(img + off + 24);
            uint32_t flags = mmfs__ld32(img + off + 20);
            if (!(flags & MMFS__FRAME_SEAL)) {
                if (nframes == NWRITES) ct_fatal(__FILE__, __LINE__, "more frames than writes");
                frames[nframes++] = (frame_pos){no, off, flen, MMFS__FRAME_HDR + body + 4};
            }
            off += flen;
        }
        if (no == last_seg) {
            /* The phases below damage frames as a power cut before their
            ** sync would: keep the durable stamp aside and clear it (a
            ** stamp says what was synced; synced_loss() uses it). */
            memcpy(golden_stamp, img + 32, sizeof golden_stamp);
            memset(img + 32, 0, sizeof golden_stamp);
            golden = img;
            golden_len = len;
            data_end = off;
        } else
            free(img);
    }
    if (nframes != NWRITES) ct_fatal(__FILE__, __LINE__, "found %d frames, want %d", nframes, NWRITES);
}

static void restore_golden(void) {
    char path[4200];
    seg_path(last_seg, path, sizeof path);
    if (ct_pwrite_file(path, golden, golden_len, 0) != 0) ct_fatal(__FILE__, __LINE__, "restore %s", path);
}

/* The first frame of the last segment that IMG changed (nframes if none),
** and whether a later one is unchanged. */
static int first_damaged(const uint8_t *img, int *later_intact) {
    int d = nframes;
    *later_intact = 0;
    for (int i = 0; i < nframes; i++) {
        if (frames[i].seg != last_seg) continue;
        int same = memcmp(img + frames[i].off, golden + frames[i].off, frames[i].used) == 0;
        if (!same && d == nframes) d = i;
        else if (same && d < i) *later_intact = 1;
    }
    return d;
}

/* Checks that DB holds exactly the writes before frame D. */
static void check_prefix(mmfs_db *db, int d, const char *what) {
    uint8_t val[8192];
    uint64_t want = 0;
    int bad = 0;
    for (int w = 0; w < NWRITES; w++) {
        for (int i = 0; i < writes[w].nkeys; i++) {
            int k = writes[w].first_key + i;
            char name[16];
            key_name(k, name);
            mmfs_slice v;
            int rc = mmfs_get_kv(db, mmfs_str(name), &v);
            if (w < d) {
                size_t n = key_value(k, val);
                want++;
                if (rc != MMFS_OK || v.len != n || memcmp(v.ptr, val, n) != 0) {
                    if (!bad++)
                        ct_fail(__FILE__, __LINE__, "%s: write %d (key %s) before the damage: %s", what, w, name,
                                rc ? mmfs_err_name(rc) : "value differs");
                }
            } else if (rc != MMFS_NOTFOUND) {
                if (!bad++)
                    ct_fail(__FILE__, __LINE__, "%s: write %d (key %s) at/after the damage is there (%s)", what,
                            w, name, mmfs_err_name(rc));
            }
        }
    }
    mmfs_store_stats st;
    CHECK_OK(mmfs_stats(db, &st));
    if (!bad && st.kv != want)
        ct_fail(__FILE__, __LINE__, "%s: %" PRIu64 " keys, want %" PRIu64, what, st.kv, want);
    CHECK(mmfs_verify(db) == MMFS_OK, "%s: verify after recovery: %s", what, mmfs_errmsg(NULL));
}

static int has_location(const char *msg, uint32_t seg, uint64_t off) {
    char name[32], at[48];
    snprintf(name, sizeof name, "%08u.seg", seg);
    snprintf(at, sizeof at, "offset %" PRIu64 ":", off);
    return strstr(msg, name) && strstr(msg, at);
}

/* Applies the damaged image IMG of the last segment and checks what open
** does with it.  NEXT: also check that a next write survives a reopen. */
static void try_image(const uint8_t *img, const char *what, int next) {
    char path[4200];
    seg_path(last_seg, path, sizeof path);
    if (ct_pwrite_file(path, img, golden_len, 0) != 0) ct_fatal(__FILE__, __LINE__, "write %s", path);
    points++;
    int later;
    int d = first_damaged(img, &later);
    mmfs_options o = opts();
    mmfs_db *db = NULL;
    int rc = mmfs_open(dir, &o, &db);
    if (later) {
        corrupt_cases++;
        if (rc != MMFS_CORRUPT)
            ct_fail(__FILE__, __LINE__, "%s: frame %d damaged, a later one intact: open gives %s, want CORRUPT", what,
                    d, mmfs_err_name(rc));
        else if (!has_location(mmfs_errmsg(NULL), last_seg, frames[d].off))
            ct_fail(__FILE__, __LINE__, "%s: CORRUPT message '%s' does not name %08u.seg offset %" PRIu64, what,
                    mmfs_errmsg(NULL), last_seg, frames[d].off);
        mmfs_close(db);
        return;
    }
    if (rc != MMFS_OK) {
        ct_fail(__FILE__, __LINE__, "%s: torn tail from frame %d: open gives %s (%s), want OK", what, d,
                mmfs_err_name(rc), mmfs_errmsg(NULL));
        return;
    }
    torn_cases++;
    check_prefix(db, d, what);
    if (!next) {
        CHECK_OK(mmfs_close(db));
        return;
    }
    next_writes++;
    uint8_t val[3000];
    ct_rng r = {(uint64_t)points};
    ct_fill(&r, val, sizeof val);
    CHECK_OK(mmfs_set_kv(db, mmfs_str("after"), (mmfs_slice){val, sizeof val}));
    CHECK_OK(mmfs_close(db));
    db = NULL;
    rc = mmfs_open(dir, &o, &db);
    if (rc != MMFS_OK) {
        ct_fail(__FILE__, __LINE__, "%s: reopen after the next write: %s (%s)", what, mmfs_err_name(rc),
                mmfs_errmsg(NULL));
        return;
    }
    mmfs_slice v;
    rc = mmfs_get_kv(db, mmfs_str("after"), &v);
    CHECK(rc == MMFS_OK && v.len == sizeof val && memcmp(v.ptr, val, sizeof val) == 0,
          "%s: the write after recovery is lost or changed (%s)", what, mmfs_err_name(rc));
    CHECK_OK(mmfs_delete_kv(db, mmfs_str("after"), NULL));
    CHECK_OK(mmfs_close(db));
}

static void truncations(void) {
    int first = nframes - 3;
    if (frames[first].seg != last_seg) ct_fatal(__FILE__, __LINE__, "want 3 frames in the last segment");
    uint8_t *img = malloc(golden_len);
    long before = points;
    for (uint64_t t = frames[first].off; t <= data_end; t++) {
        memcpy(img, golden, golden_len);
        memset(img + t, 0, data_end - t);
        char what[64];
        snprintf(what, sizeof what, "zeroed from byte %" PRIu64, t);
        try_image(img, what, soak || t % 16 == 0 || t == data_end);
        if (ct_failures() > 30) break;
    }
    printf("powerloss: %ld truncation points\n", points - before);
    free(img);
}

static void torn_pages(void) {
    uint8_t *img = malloc(golden_len);
    ct_rng r = {12345};
    long before = points;
    /* Every page of the last segment's data but the first (its header
    ** is made durable before the segment gets its name). */
    uint64_t from = 4096;
    uint64_t to = (data_end + 4096 + 4095) & ~(uint64_t)4095;
    if (to > golden_len) to = golden_len;
    int reps = soak ? 16 : 2;
    for (uint64_t p = from; p < to; p += 4096) {
        char what[96];
        /* one page of zeros (a page that never reached the disk) */
        memcpy(img, golden, golden_len);
        memset(img + p, 0, 4096);
        snprintf(what, sizeof what, "page at %" PRIu64 " zeroed", p);
        try_image(img, what, 1);
        for (int k = 0; k < reps; k++) {
            /* one page of garbage */
            memcpy(img, golden, golden_len);
            ct_fill(&r, img + p, 4096);
            snprintf(what, sizeof what, "page at %" PRIu64 " garbage #%d", p, k);
            try_image(img, what, 1);
            /* garbage from this page to past the end of the data */
            memcpy(img, golden, golden_len);
            ct_fill(&r, img + p, to - p);
            snprintf(what, sizeof what, "garbage from page %" PRIu64 " to %" PRIu64 " #%d", p, to, k);
            try_image(img, what, 1);
            /* the first half of the page written, the rest garbage */
            memcpy(img, golden, golden_len);
            ct_fill(&r, img + p + 2048, 2048);
            snprintf(what, sizeof what, "second half of page %" PRIu64 " garbage #%d", p, k);
            try_image(img, what, 1);
        }
    }
    printf("powerloss: %ld torn-page patterns\n", points - before);
    free(img);
}

/* Flips a byte of frame F (at REL inside it) in a fresh copy of the store;
** the flip is made after a handle is open, so that verify sees it through
** its mapping, and then a new open must fail too. */
static void flip(int f, uint64_t rel, const char *what, int expect_corrupt) {
    restore_golden();
    mmfs_options o = opts();
    mmfs_db *db;
    REQUIRE_OK(mmfs_open(dir, &o, &db));
    CHECK_OK(mmfs_verify(db));
    char path[4200];
    seg_path(frames[f].seg, path, sizeof path);
    size_t len;
    uint8_t *img = ct_read_file(path, &len);
    uint64_t at = frames[f].off + rel;
    uint8_t old = img[at], b = old ^ 0x5a;
    if (ct_pwrite_file(path, &b, 1, at) != 0) ct_fatal(__FILE__, __LINE__, "flip %s", path);
    int rc = mmfs_verify(db);
    if (expect_corrupt) {
        if (rc != MMFS_CORRUPT)
            ct_fail(__FILE__, __LINE__, "%s: verify gives %s, want CORRUPT", what, mmfs_err_name(rc));
        else if (!has_location(mmfs_errmsg(NULL), frames[f].seg, frames[f].off))
            ct_fail(__FILE__, __LINE__, "%s: verify message '%s' does not name %08u.seg offset %" PRIu64, what,
                    mmfs_errmsg(NULL), frames[f].seg, frames[f].off);
    }
    mmfs_close(db);
    db = NULL;
    rc = mmfs_open(dir, &o, &db);
    if (expect_corrupt) {
        if (rc != MMFS_CORRUPT)
            ct_fail(__FILE__, __LINE__, "%s: open gives %s, want CORRUPT", what, mmfs_err_name(rc));
        else if (!has_location(mmfs_errmsg(NULL), frames[f].seg, frames[f].off))
            ct_fail(__FILE__, __LINE__, "%s: open message '%s' does not name %08u.seg offset %" PRIu64, what,
                    mmfs_errmsg(NULL), frames[f].seg, frames[f].off);
        mmfs_close(db);
    } else {
        /* the last frame damaged: nothing valid follows, a torn tail */
        if (rc != MMFS_OK)
            ct_fail(__FILE__, __LINE__, "%s: open gives %s (%s), want OK without the last frame", what,
                    mmfs_err_name(rc), mmfs_errmsg(NULL));
        else {
            check_prefix(db, f, what);
            CHECK_OK(mmfs_close(db));
        }
    }
    /* undo, for the next case (a torn-tail cut only touched the last segment) */
    if (frames[f].seg != last_seg && ct_pwrite_file(path, &old, 1, at) != 0)
        ct_fatal(__FILE__, __LINE__, "unflip %s", path);
    free(img);
}

static void flips(void) {
    int L = nframes - 1;
    int sealed = 2; /* a frame in segment 1 */
    if (frames[sealed].seg == last_seg) ct_fatal(__FILE__, __LINE__, "frame 2 is in the last segment");
    flip(L - 2, MMFS__FRAME_HDR + 20, "byte flipped in the body of the third-last frame", 1);
    flip(L - 2, 4, "byte flipped in the length field of the third-last frame", 1);
    flip(L - 1, MMFS__FRAME_HDR + 5, "byte flipped in the body of the second-last frame", 1);
    flip(L - 1, 8, "byte flipped in the LSN of the second-last frame", 1);
    flip(sealed, MMFS__FRAME_HDR + 30, "byte flipped in a frame of the sealed segment", 1);
    flip(sealed, 5, "byte flipped in a length field in the sealed segment", 1);
    /* the last frame of the first segment: only its seal follows */
    int lastsealed = 0;
    while (frames[lastsealed + 1].seg != last_seg) lastsealed++;
    flip(lastsealed, MMFS__FRAME_HDR + 1, "byte flipped in the last frame before a seal", 1);
    flip(L, MMFS__FRAME_HDR + 3, "byte flipped in the last frame", 0);
}

/* Frames that a sync covered (the durable stamp says so) lost by zeroing
** or by truncating the file: never a torn tail, always CORRUPT naming the
** first lost frame, and the open changes nothing (the image stays). */
static void synced_loss(void) {
    char path[4200];
    seg_path(last_seg, path, sizeof path);
    uint8_t *img = malloc(golden_len);
    long before = points;
    for (int i = nframes - 3; i < nframes; i++) {
        for (int trunc = 0; trunc < 2; trunc++) {
            memcpy(img, golden, golden_len);
            memcpy(img + 32, golden_stamp, sizeof golden_stamp);
            memset(img + frames[i].off, 0, data_end - frames[i].off);
            size_t len = trunc ? frames[i].off : golden_len;
            if (ct_pwrite_file(path, img, len, 0) != 0 || truncate(path, (off_t)len) != 0)
                ct_fatal(__FILE__, __LINE__, "write %s", path);
            points++;
            mmfs_options o = opts();
            mmfs_db *db = NULL;
            int rc = mmfs_open(dir, &o, &db);
            corrupt_cases++;
            if (rc != MMFS_CORRUPT)
                ct_fail(__FILE__, __LINE__, "synced frame %d %s: open gives %s, want CORRUPT", i,
                        trunc ? "truncated" : "zeroed", mmfs_err_name(rc));
            else if (!strstr(mmfs_errmsg(NULL), "synced up to offset"))
                ct_fail(__FILE__, __LINE__, "synced frame %d lost: message '%s' does not say so", i,
                        mmfs_errmsg(NULL));
            mmfs_close(db);
            size_t now_len;
            uint8_t *now = ct_read_file(path, &now_len);
            CHECK(now && now_len == len && !memcmp(now, img, len), "synced frame %d lost: the failed open changed the segment", i);
            free(now);
        }
    }
    printf("powerloss: %ld synced-loss points\n", points - before);
    free(img);
    restore_golden();
}

int main(int argc, char **argv) {
    soak = ct_soak(argc, argv);
    uint64_t t0 = ct_now_ms();
    char *root = ct_tmpdir("powerloss");
    size_t n = strlen(root) + 16;
    dir = malloc(n);
    snprintf(dir, n, "%s/store", root);
    build_store();
    find_frames();
    printf("powerloss: %d frames in %u segments; last segment data ends at %" PRIu64 "\n", nframes, last_seg,
           data_end);
    truncations();
    torn_pages();
    flips();
    synced_loss();
    printf("powerloss: %ld images (%ld torn tails, %ld corrupt), %ld next-write checks, %.1f s, %d failed checks\n",
           points, torn_cases, corrupt_cases, next_writes, (double)(ct_now_ms() - t0) / 1000.0, ct_failures());
    free(golden);
    ct_rmrf(root);
    free(root);
    free(dir);
    return ct_failures() ? 1 : 0;
}
