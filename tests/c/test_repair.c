/* test_repair.c: mmfs_options.repair.  A bad frame followed by valid ones
** in the last segment (what a power cut can leave when unsynced pages reach
** the disk out of order) is CORRUPT; with repair, open cuts there and keeps
** the cut bytes in ROOT/repair/.  Damage in a sealed segment stays CORRUPT. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static mmfs_db *open_opts(const char *dir, int repair, uint64_t segsize, int *rc) {
    mmfs_options o = mmfs_test_options(segsize);
    o.repair = repair;
    mmfs_db *db = NULL;
    *rc = mmfs_open(dir, &o, &db);
    return db;
}

/* Offsets of the frames in segment file PATH (up to MAX). */
static int frame_offsets(const char *path, uint64_t *offs, int max) {
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    int n = 0;
    uint64_t off = MMFS__SEG_HDR;
    while (n < max && off + MMFS__FRAME_HDR <= (uint64_t)st.st_size && mmfs__frame_header_ok(buf + off)) {
        offs[n++] = off;
        off += mmfs__ld32(buf + off + 4);
    }
    free(buf);
    return n;
}

static void flip(const char *path, uint64_t off) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* Fills DIR's store (64 KiB segments) until its log spans two segments,
** then damages the body of the second frame of the first, now sealed. */
static void damage_sealed_segment(const char *dir) {
    int rc;
    mmfs_db *db = open_opts(dir, 0, 65536, &rc);
    MMFS_OK_OR_FAIL(rc);
    char val[2000];
    memset(val, 'v', sizeof val);
    mmfs_slice vs = {val, sizeof val};
    for (int i = 0; i < 80; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), vs));
    }
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    assert_true(st.segments >= 2);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char seg[4096];
    snprintf(seg, sizeof seg, "%s/log/00000001.seg", dir);
    uint64_t offs[4];
    assert_true(frame_offsets(seg, offs, 4) >= 2);
    flip(seg, offs[1] + MMFS__FRAME_HDR + 30);
}

static void test_repair_cuts_last_segment(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("repair");
    int rc;
    mmfs_db *db = open_opts(dir, 0, 0, &rc);
    MMFS_OK_OR_FAIL(rc);
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(keys[i]), mmfs_str("value")));
    MMFS_OK_OR_FAIL(mmfs_close(db));

    char seg[4096];
    snprintf(seg, sizeof seg, "%s/log/00000001.seg", dir);
    uint64_t offs[8];
    assert_int_equal(frame_offsets(seg, offs, 8), 4);
    /* Damage the body of frame 2 (key "b"); frames 3 and 4 stay valid. */
    flip(seg, offs[1] + MMFS__FRAME_HDR + 20);

    db = open_opts(dir, 0, 0, &rc);
    assert_null(db);
    assert_int_equal(rc, MMFS_CORRUPT);
    char want[64];
    snprintf(want, sizeof want, "offset %llu", (unsigned long long)offs[1]);
    assert_non_null(strstr(mmfs_errmsg(NULL), want));

    db = open_opts(dir, 1, 0, &rc);
    MMFS_OK_OR_FAIL(rc);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("a"), &v));
    for (int i = 1; i < 4; i++) assert_int_equal(mmfs_get_kv(db, mmfs_str(keys[i]), &v), MMFS_NOTFOUND);
    /* The cut bytes are kept, from the bad frame to the end of the data. */
    char side[4200];
    snprintf(side, sizeof side, "%s/repair/00000001.seg.%llu.cut", dir, (unsigned long long)offs[1]);
    struct stat st;
    assert_int_equal(stat(side, &st), 0);
    assert_true((uint64_t)st.st_size >= offs[3] + MMFS__FRAME_HDR - offs[1]);
    /* The store goes on: a write lands, and a plain open is clean again. */
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("e"), mmfs_str("after")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = open_opts(dir, 0, 0, &rc);
    MMFS_OK_OR_FAIL(rc);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("e"), &v));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

static void test_repair_leaves_sealed_damage_corrupt(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("repair-sealed");
    int rc;
    damage_sealed_segment(dir);
    mmfs_db *db = open_opts(dir, 1, 65536, &rc);
    assert_null(db);
    assert_int_equal(rc, MMFS_CORRUPT);
    assert_non_null(strstr(mmfs_errmsg(NULL), "00000001.seg"));
    mmfs_test_rmdir(dir);
}

/* A second repair at the same offset keeps the first one's cut file
** (it used to be truncated and overwritten): every generation stays. */
static void test_repair_keeps_every_generation(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("repair-gen");
    int rc;
    mmfs_db *db = open_opts(dir, 0, 0, &rc);
    MMFS_OK_OR_FAIL(rc);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("a"), mmfs_str("value")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char seg[4096], side1[4200], side2[4300];
    snprintf(seg, sizeof seg, "%s/log/00000001.seg", dir);
    uint64_t offs[8];
    size_t sizes[2];
    for (int round = 0; round < 2; round++) {
        db = open_opts(dir, 0, 0, &rc);
        MMFS_OK_OR_FAIL(rc);
        char v[32];
        for (int i = 0; i < 3; i++) {
            snprintf(v, sizeof v, "round %d value %d", round, i);
            MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(i == 0 ? "b" : i == 1 ? "c" : "d"), mmfs_str(v)));
        }
        MMFS_OK_OR_FAIL(mmfs_close(db));
        assert_int_equal(frame_offsets(seg, offs, 8), 4);
        flip(seg, offs[1] + MMFS__FRAME_HDR + 20);
        db = open_opts(dir, 1, 0, &rc);
        MMFS_OK_OR_FAIL(rc);
        MMFS_OK_OR_FAIL(mmfs_close(db));
        struct stat st;
        snprintf(side1, sizeof side1, "%s/repair/00000001.seg.%llu.cut", dir, (unsigned long long)offs[1]);
        assert_int_equal(stat(side1, &st), 0);
        sizes[round] = (size_t)st.st_size;
    }
    snprintf(side2, sizeof side2, "%s.2", side1);
    struct stat st;
    assert_int_equal(stat(side1, &st), 0);
    assert_int_equal((size_t)st.st_size, sizes[0]); /* the first generation untouched */
    assert_int_equal(stat(side2, &st), 0);
    /* the second generation holds the second round's values */
    FILE *f = fopen(side2, "rb");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_non_null(memmem(buf, n, "round 1 value 2", 15));
    f = fopen(side1, "rb");
    assert_non_null(f);
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_non_null(memmem(buf, n, "round 0 value 2", 15));
    mmfs_test_rmdir(dir);
}

/* Damage in a sealed segment: the message does not offer a repair that
** repair then refuses. */
static void test_sealed_message_offers_no_cut(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("repair-msg");
    int rc;
    damage_sealed_segment(dir);
    mmfs_db *db = open_opts(dir, 0, 65536, &rc);
    assert_null(db);
    assert_int_equal(rc, MMFS_CORRUPT);
    const char *m = mmfs_errmsg(NULL);
    if (strstr(m, "repair cuts here")) fail_msg("sealed damage offers a cut: %s", m);
    assert_non_null(strstr(m, "sealed"));
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repair_cuts_last_segment),
        cmocka_unit_test(test_repair_leaves_sealed_damage_corrupt),
        cmocka_unit_test(test_repair_keeps_every_generation),
        cmocka_unit_test(test_sealed_message_offers_no_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
