/*
** test_store.c: opening and closing a store, options, the error table,
** read-only handles, unwritable paths, the writer lock, stats, fork.
** Tests the contract in memmapfs.h, not the implementation.
*/
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Reads a whole file; *n gets its size. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
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

/* ------------------------------------------------------------------ */

static void test_options_defaults(void **state) {
    (void)state;
    mmfs_options o;
    memset(&o, 0x5a, sizeof o);
    mmfs_options_init(&o);
    assert_int_equal(o.sync, MMFS_SYNC_BATCH);
    assert_int_equal(o.sync_ms, 100);
    assert_int_equal(o.checksum, MMFS_CHECKSUM_CRC32C);
    assert_null(o.key);
    assert_int_equal(o.key_len, 0);
    assert_int_equal(o.readonly, 0);
    assert_int_equal(o.create, 1);
    assert_int_equal(o.lock_timeout_ms, 10000);
    assert_int_equal(o.segment_size, 64u << 20);
}

static void test_error_table(void **state) {
    (void)state;
    assert_int_equal(MMFS_OK, 0);
    assert_string_equal(mmfs_err_name(MMFS_OK), "OK");
    assert_string_equal(mmfs_err_name(MMFS_NOTFOUND), "NOTFOUND");
    assert_string_equal(mmfs_err_name(MMFS_INVALID), "INVALID");
    assert_string_equal(mmfs_err_name(MMFS_REJECTED), "REJECTED");
    assert_string_equal(mmfs_err_name(MMFS_CORRUPT), "CORRUPT");
    assert_string_equal(mmfs_err_name(MMFS_IO), "IO");
    assert_string_equal(mmfs_err_name(MMFS_NOSPACE), "NOSPACE");
    assert_string_equal(mmfs_err_name(MMFS_READONLY), "READONLY");
    assert_string_equal(mmfs_err_name(MMFS_CLOSED), "CLOSED");
    assert_string_equal(mmfs_err_name(MMFS_BUSY), "BUSY");
    assert_string_equal(mmfs_err_name(MMFS_LIMIT), "LIMIT");
    assert_string_equal(mmfs_err_name(MMFS_NOMEM), "NOMEM");
    assert_string_equal(mmfs_err_name(MMFS_TIMEOUT), "TIMEOUT");
    assert_string_equal(mmfs_err_name(-1), "UNKNOWN");
    assert_string_equal(mmfs_err_name(MMFS__NSTATUS), "UNKNOWN");
    assert_string_equal(mmfs_err_name(100000), "UNKNOWN");
    assert_string_equal(mmfs_strerror(MMFS_OK), "success");
    assert_string_equal(mmfs_strerror(MMFS_NOTFOUND), "not found");
    assert_string_equal(mmfs_strerror(MMFS_CORRUPT), "store is corrupt");
    assert_string_equal(mmfs_strerror(MMFS_TIMEOUT), "timed out");
    const char *u = mmfs_strerror(-7);
    assert_non_null(u);
    assert_true(strlen(u) > 0);
    u = mmfs_strerror(MMFS__NSTATUS);
    assert_non_null(u);
}

static void test_str_and_null_noops(void **state) {
    (void)state;
    mmfs_slice s = mmfs_str("abc");
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "abc", 3);
    s = mmfs_str(NULL);
    assert_int_equal(s.len, 0);
    s = mmfs_str("");
    assert_int_equal(s.len, 0);
    /* Documented no-ops. */
    mmfs_free(NULL);
    assert_int_equal(mmfs_close(NULL), MMFS_OK);
    mmfs_kv_iter_close(NULL);
    mmfs_reader_close(NULL);
    mmfs_sub_close(NULL);
    mmfs_batch_abort(NULL);
}

static void test_open_creates_layout(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-layout");
    mmfs_options o = mmfs_test_options(1u << 20);
    mmfs_db *db = mmfs_test_open(dir, &o);

    struct stat st;
    char *p = path_join(dir, "MANIFEST");
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    free(p);
    p = path_join(dir, "LOCK");
    assert_int_equal(stat(p, &st), 0);
    free(p);
    p = path_join(dir, "log/00000001.seg");
    assert_int_equal(stat(p, &st), 0);
    /* Segments are preallocated to the segment size. */
    assert_int_equal(st.st_size, 1u << 20);
    free(p);

    mmfs_store_stats s;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &s));
    assert_int_equal(s.memories, 0);
    assert_int_equal(s.kv, 0);
    assert_int_equal(s.sessions, 0);
    assert_int_equal(s.streams, 0);
    assert_int_equal(s.documents, 0);
    assert_int_equal(s.state_version, 0);
    assert_int_equal(s.segments, 1);
    assert_int_equal(s.log_bytes, s.live_bytes + s.dead_bytes);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

static void test_open_null_options(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-nullopts");
    mmfs_db *db = NULL;
    MMFS_OK_OR_FAIL(mmfs_open(dir, NULL, &db));
    assert_non_null(db);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v")));
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("k"), &v));
    mmfs_test_assert_slice(v, "v", 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

static void test_open_creates_missing_directory(void **state) {
    (void)state;
    char *base = mmfs_test_dir("store-mkdir");
    char *dir = path_join(base, "newstore");
    mmfs_db *db = NULL;
    MMFS_OK_OR_FAIL(mmfs_open(dir, NULL, &db));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(dir);
    mmfs_test_rmdir(base);
}

static void test_open_missing_without_create(void **state) {
    (void)state;
    char *base = mmfs_test_dir("store-nocreate");
    char *dir = path_join(base, "absent");
    mmfs_options o;
    mmfs_options_init(&o);
    o.create = 0;
    mmfs_db *db = (mmfs_db *)&o; /* must be reset to NULL */
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_NOTFOUND);
    assert_null(db);
    /* And nothing was created. */
    struct stat st;
    assert_int_equal(stat(dir, &st), -1);

    /* An empty existing directory is not a store either. */
    db = (mmfs_db *)&o;
    MMFS_ASSERT_STATUS(mmfs_open(base, &o, &db), MMFS_NOTFOUND);
    assert_null(db);
    free(dir);
    mmfs_test_rmdir(base);
}

/* Tests may run as root, where chmod does not stop writes: a path under a
** regular file can never be created by anyone. */
static void test_open_unwritable_path_is_io(void **state) {
    (void)state;
    char *base = mmfs_test_dir("store-io");
    char *file = path_join(base, "plainfile");
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("not a directory\n", f);
    fclose(f);
    char *dir = path_join(file, "store");

    mmfs_db *db = (mmfs_db *)file;
    int rc = mmfs_open(dir, NULL, &db);
    MMFS_ASSERT_STATUS(rc, MMFS_IO);
    assert_null(db);
    const char *msg = mmfs_errmsg(NULL);
    assert_non_null(msg);
    if (!strstr(msg, file)) fail_msg("message \"%s\" does not name the path \"%s\"", msg, file);

    free(dir);
    free(file);
    mmfs_test_rmdir(base);
}

static void test_invalid_options(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-invalid");
    mmfs_options o;
    mmfs_db *db;

    mmfs_options_init(&o);
    o.sync = (mmfs_sync_mode)42;
    db = (mmfs_db *)&o;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_null(db);

    mmfs_options_init(&o);
    o.checksum = (mmfs_checksum_type)9;
    db = (mmfs_db *)&o;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_null(db);

    /* Keys are 16..64 bytes. */
    static const unsigned char key[100] = {1, 2, 3};
    mmfs_options_init(&o);
    o.checksum = MMFS_CHECKSUM_BLAKE2B;
    o.key = key;
    o.key_len = 8;
    db = (mmfs_db *)&o;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_null(db);
    o.key_len = 65;
    db = (mmfs_db *)&o;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_null(db);

    /* A segment too small for its own 64-byte header. */
    mmfs_options_init(&o);
    o.segment_size = 16;
    db = (mmfs_db *)&o;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_null(db);

#ifndef MMFS_HAVE_SODIUM
    /* BLAKE2b needs libsodium. */
    mmfs_options_init(&o);
    o.checksum = MMFS_CHECKSUM_BLAKE2B;
    db = (mmfs_db *)&o;
    MMFS_ASSERT_STATUS(mmfs_open(dir, &o, &db), MMFS_INVALID);
    assert_null(db);
#endif
    mmfs_test_rmdir(dir);
}

static void test_readonly_handle(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-ro");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v")));
    uint64_t id = 0;
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("hello world"), NULL, 0, NULL, &id));
    MMFS_OK_OR_FAIL(mmfs_close(db));

    mmfs_options o;
    mmfs_options_init(&o);
    o.readonly = 1;
    MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &db));
    uint64_t lsn0 = mmfs_test_lsn(db);

    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("k"), &v));
    mmfs_test_assert_slice(v, "v", 1);
    mmfs_memory *m = NULL;
    MMFS_OK_OR_FAIL(mmfs_get_memory(db, id, &m));
    mmfs_test_assert_slice(m->text, "hello world", 11);
    mmfs_free(m);

    MMFS_ASSERT_STATUS(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("w")), MMFS_READONLY);
    const char *msg = mmfs_errmsg(db);
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
    MMFS_ASSERT_STATUS(mmfs_delete_kv(db, mmfs_str("k"), NULL), MMFS_READONLY);
    MMFS_ASSERT_STATUS(mmfs_append_memory(db, mmfs_str("x"), NULL, 0, NULL, NULL), MMFS_READONLY);
    MMFS_ASSERT_STATUS(mmfs_delete_memory(db, id, NULL), MMFS_READONLY);
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = mmfs_str("s1");
    MMFS_ASSERT_STATUS(mmfs_put_session(db, &s), MMFS_READONLY);
    MMFS_ASSERT_STATUS(mmfs_append_stream(db, mmfs_str("st"), mmfs_str("b")), MMFS_READONLY);
    MMFS_ASSERT_STATUS(mmfs_index(db, mmfs_str("d"), mmfs_str("text")), MMFS_READONLY);
    MMFS_ASSERT_STATUS(mmfs_update_state(db, mmfs_str("s"), NULL), MMFS_READONLY);
    mmfs_batch *b = NULL;
    int rc = mmfs_batch_begin(db, &b);
    if (rc == MMFS_OK) {
        MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("k"), mmfs_str("batch")));
        MMFS_ASSERT_STATUS(mmfs_batch_commit(b, NULL, NULL), MMFS_READONLY);
    } else {
        MMFS_ASSERT_STATUS(rc, MMFS_READONLY);
    }

    /* Nothing changed. */
    assert_int_equal(mmfs_test_lsn(db), lsn0);
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("k"), &v));
    mmfs_test_assert_slice(v, "v", 1);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));

    /* A read-only open never creates a store. */
    char *absent = path_join(dir, "absent");
    db = (mmfs_db *)&o;
    rc = mmfs_open(absent, &o, &db);
    assert_int_not_equal(rc, MMFS_OK);
    assert_null(db);
    struct stat st;
    assert_int_equal(stat(absent, &st), -1);
    free(absent);
    mmfs_test_rmdir(dir);
}

/* Close adds no record to the log: the segment's bytes are the same after
** another open/close cycle. */
static void test_close_adds_no_record(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-close");
    mmfs_options o = mmfs_test_options(64u << 10);
    mmfs_db *db = mmfs_test_open(dir, &o);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("a"), mmfs_str("1")));
    uint64_t lsn = mmfs_test_lsn(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));

    char *seg = path_join(dir, "log/00000001.seg");
    size_t n1, n2;
    unsigned char *before = slurp(seg, &n1);
    MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &db));
    assert_int_equal(mmfs_test_lsn(db), lsn);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    unsigned char *after = slurp(seg, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    free(before);
    free(after);
    free(seg);
    mmfs_test_rmdir(dir);
}

static void test_stats_counts(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-stats");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    mmfs_store_stats s0, s1;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &s0));

    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k1"), mmfs_str("v1")));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k2"), mmfs_str("v2")));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k2"), mmfs_str("v2b")));
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("m one"), NULL, 0, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("m two"), NULL, 0, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("m three"), NULL, 0, NULL, NULL));
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = mmfs_str("s1");
    MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
    MMFS_OK_OR_FAIL(mmfs_append_stream(db, mmfs_str("st1"), mmfs_str("abc")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(db, mmfs_str("st1"), mmfs_str("def")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(db, mmfs_str("st2"), mmfs_str("x")));
    MMFS_OK_OR_FAIL(mmfs_index(db, mmfs_str("d1"), mmfs_str("doc one")));
    MMFS_OK_OR_FAIL(mmfs_update_state(db, mmfs_str("st"), NULL));
    MMFS_OK_OR_FAIL(mmfs_update_state(db, mmfs_str("st2"), NULL));

    MMFS_OK_OR_FAIL(mmfs_stats(db, &s1));
    assert_int_equal(s1.kv, 2);
    assert_int_equal(s1.memories, 3);
    assert_int_equal(s1.sessions, 1);
    assert_int_equal(s1.streams, 2);
    assert_int_equal(s1.documents, 1);
    assert_int_equal(s1.state_version, 2);
    assert_true(s1.lsn > s0.lsn);
    assert_true(s1.log_bytes > s0.log_bytes);
    /* dead_bytes counts records only: frame headers and checksums are
    ** neither live nor reclaimable (issue 10, item 5). */
    assert_true(s1.log_bytes > s1.live_bytes + s1.dead_bytes);
    /* The overwritten k2 and the replaced state are dead. */
    assert_true(s1.dead_bytes > s0.dead_bytes);

    int deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_memory(db, 2, &deleted));
    assert_int_equal(deleted, 1);
    MMFS_OK_OR_FAIL(mmfs_delete_kv(db, mmfs_str("k1"), &deleted));
    assert_int_equal(deleted, 1);
    mmfs_store_stats s2;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &s2));
    assert_int_equal(s2.kv, 1);
    assert_int_equal(s2.memories, 2);
    assert_true(s2.dead_bytes > s1.dead_bytes);
    assert_true(s2.log_bytes > s2.live_bytes + s2.dead_bytes);

    MMFS_OK_OR_FAIL(mmfs_sync(db));
    MMFS_OK_OR_FAIL(mmfs_stats(db, &s2));
    assert_int_equal(s2.durable_lsn, s2.lsn);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

static void test_sync_modes_durable_lsn(void **state) {
    (void)state;
    static const mmfs_sync_mode modes[] = {MMFS_SYNC_BATCH, MMFS_SYNC_ALWAYS, MMFS_SYNC_NONE};
    for (size_t i = 0; i < 3; i++) {
        char *dir = mmfs_test_dir("store-sync");
        mmfs_options o;
        mmfs_options_init(&o);
        o.sync = modes[i];
        o.segment_size = 1u << 20;
        mmfs_db *db = NULL;
        MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &db));
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v")));
        mmfs_store_stats st;
        MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
        if (modes[i] == MMFS_SYNC_ALWAYS) assert_int_equal(st.durable_lsn, st.lsn);
        assert_true(st.durable_lsn <= st.lsn);
        MMFS_OK_OR_FAIL(mmfs_sync(db));
        MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
        assert_int_equal(st.durable_lsn, st.lsn);
        MMFS_OK_OR_FAIL(mmfs_refresh(db));
        MMFS_OK_OR_FAIL(mmfs_close(db));
        mmfs_test_rmdir(dir);
    }
}

/* Batch mode: durable at most sync_ms later, without any call. */
static void test_batch_mode_becomes_durable(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-syncms");
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_BATCH;
    o.sync_ms = 20;
    o.segment_size = 1u << 20;
    mmfs_db *db = NULL;
    MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &db));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v")));
    mmfs_store_stats st;
    int ok = 0;
    for (int i = 0; i < 200 && !ok; i++) { /* up to 2 s: generous for loaded CI */
        MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
        if (st.durable_lsn == st.lsn) ok = 1;
        else {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (!ok) fail_msg("durable_lsn %llu never reached lsn %llu", (unsigned long long)st.durable_lsn,
                      (unsigned long long)st.lsn);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* Two handles on one directory in one process: reads catch up with the
** other handle's writes without any extra call. */
static void test_two_handles_see_each_other(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-two");
    mmfs_db *a = mmfs_test_open_sync_none(dir, 0);
    mmfs_db *b = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_set_kv(a, mmfs_str("from-a"), mmfs_str("1")));
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(b, mmfs_str("from-a"), &v));
    mmfs_test_assert_slice(v, "1", 1);
    uint64_t ida = 0, idb = 0;
    MMFS_OK_OR_FAIL(mmfs_append_memory(a, mmfs_str("memory from a"), NULL, 0, NULL, &ida));
    MMFS_OK_OR_FAIL(mmfs_append_memory(b, mmfs_str("memory from b"), NULL, 0, NULL, &idb));
    /* B caught up before assigning: ids stay unique and increasing. */
    assert_int_equal(idb, ida + 1);
    mmfs_memory *m = NULL;
    MMFS_OK_OR_FAIL(mmfs_get_memory(a, idb, &m));
    mmfs_test_assert_slice(m->text, "memory from b", 13);
    mmfs_free(m);
    MMFS_OK_OR_FAIL(mmfs_delete_kv(b, mmfs_str("from-a"), NULL));
    MMFS_ASSERT_STATUS(mmfs_get_kv(a, mmfs_str("from-a"), &v), MMFS_NOTFOUND);
    MMFS_OK_OR_FAIL(mmfs_close(a));
    MMFS_OK_OR_FAIL(mmfs_close(b));

    mmfs_db *c = mmfs_test_open_sync_none(dir, 0);
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(c, &st));
    assert_int_equal(st.memories, 2);
    assert_int_equal(st.kv, 0);
    MMFS_OK_OR_FAIL(mmfs_close(c));
    mmfs_test_rmdir(dir);
}

/* A store holding a = "1" whose writer lock someone else holds: its own
** open file description of LOCK, flock'd as another process would. */
typedef struct {
    mmfs_db *db;
    int fd;       /* the other holder's LOCK, flock'd */
    uint64_t lsn; /* the log's end before the lock was taken */
} locked_store;

static locked_store lock_out(const char *dir, int lock_timeout_ms) {
    locked_store ls;
    mmfs_options o = mmfs_test_options(0);
    o.lock_timeout_ms = lock_timeout_ms;
    ls.db = NULL;
    MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &ls.db));
    MMFS_OK_OR_FAIL(mmfs_set_kv(ls.db, mmfs_str("a"), mmfs_str("1")));
    ls.lsn = mmfs_test_lsn(ls.db);
    char *lockp = path_join(dir, "LOCK");
    ls.fd = open(lockp, O_RDWR);
    free(lockp);
    assert_true(ls.fd >= 0);
    assert_int_equal(flock(ls.fd, LOCK_EX), 0);
    return ls;
}

/* Releases the other holder's lock; the refused writes wrote nothing (b is
** not there, the log did not move) and the next write goes through. */
static void lock_release(locked_store *ls) {
    mmfs_slice v;
    assert_int_equal(flock(ls->fd, LOCK_UN), 0);
    close(ls->fd);
    MMFS_ASSERT_STATUS(mmfs_get_kv(ls->db, mmfs_str("b"), &v), MMFS_NOTFOUND);
    assert_int_equal(mmfs_test_lsn(ls->db), ls->lsn);
    MMFS_OK_OR_FAIL(mmfs_set_kv(ls->db, mmfs_str("b"), mmfs_str("2")));
    MMFS_OK_OR_FAIL(mmfs_get_kv(ls->db, mmfs_str("b"), &v));
    mmfs_test_assert_slice(v, "2", 1);
    MMFS_OK_OR_FAIL(mmfs_close(ls->db));
}

/* The writer lock is flock on LOCK: while someone else holds it, a write
** waits lock_timeout_ms and then fails with BUSY, writing nothing. */
static void test_lock_timeout_busy(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-busy");
    locked_store ls = lock_out(dir, 100);
    mmfs_db *db = ls.db;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    MMFS_ASSERT_STATUS(mmfs_set_kv(db, mmfs_str("b"), mmfs_str("2")), MMFS_BUSY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms >= 50);   /* it waited */
    assert_true(ms < 5000);  /* and gave up */
    /* Reads do not wait for the writer lock. */
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("a"), &v));
    lock_release(&ls);
    mmfs_test_rmdir(dir);
}

/* mmfs_path gives the directory as given to mmfs_open, without trailing
** slashes, for as long as the handle is open. */
static void test_path(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-path");
    size_t n = strlen(dir);
    char *slashed = malloc(n + 3);
    assert_non_null(slashed);
    snprintf(slashed, n + 3, "%s//", dir);
    mmfs_db *db = NULL;
    mmfs_options o = mmfs_test_options(0);
    MMFS_OK_OR_FAIL(mmfs_open(slashed, &o, &db));
    free(slashed); /* the handle keeps its own copy */
    assert_string_equal(mmfs_path(db), dir);
    assert_null(mmfs_path(NULL));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* lock_timeout_ms = 0 (event loops): while another process holds the
** writer lock, a write is BUSY after one try, writes nothing, and the
** next write after the lock is released goes through. */
static void test_lock_timeout_zero_busy(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-nowait");
    locked_store ls = lock_out(dir, 0);
    mmfs_db *db = ls.db;
    MMFS_ASSERT_STATUS(mmfs_set_kv(db, mmfs_str("b"), mmfs_str("2")), MMFS_BUSY);
    assert_non_null(strstr(mmfs_errmsg(db), "lock_timeout_ms = 0"));
    uint64_t ver = 0;
    MMFS_ASSERT_STATUS(mmfs_update_state(db, mmfs_str("s"), &ver), MMFS_BUSY);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("a"), &v)); /* reads go on */
    lock_release(&ls);
    mmfs_test_rmdir(dir);
}

/* A hook that holds the writer (in-process mutex and flock) until the
** main thread says it is done, or 3 s pass. */
typedef struct hold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside, done;
} hold;

static int holding_hook(void *ud, mmfs_command *cmd, mmfs_batch *tx) {
    (void)cmd;
    (void)tx;
    hold *h = ud;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 3;
    pthread_mutex_lock(&h->mu);
    h->inside = 1;
    pthread_cond_broadcast(&h->cv);
    while (!h->done)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &dl) != 0) break;
    pthread_mutex_unlock(&h->mu);
    return MMFS_OK;
}

static void *holding_writer(void *arg) {
    mmfs_db *db = arg;
    return (void *)(intptr_t)mmfs_set_kv(db, mmfs_str("held"), mmfs_str("1"));
}

/* lock_timeout_ms = 0 also does not wait for another thread of the same
** process in the middle of a write on the same handle: BUSY at once.  (It
** used to wait on the handle's writer mutex until that write ended.) */
static void test_lock_timeout_zero_thread(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-nowait-thread");
    mmfs_options o = mmfs_test_options(0);
    o.lock_timeout_ms = 0;
    mmfs_db *db = NULL;
    MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &db));
    hold h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, holding_hook, &h));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, holding_writer, db), 0);
    pthread_mutex_lock(&h.mu);
    while (!h.inside) pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);

    int rc = mmfs_set_kv(db, mmfs_str("b"), mmfs_str("2")); /* the writer is inside */
    pthread_mutex_lock(&h.mu);
    int released_early = h.done;
    h.done = 1;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    void *res;
    assert_int_equal(pthread_join(t, &res), 0);
    assert_false(released_early);
    MMFS_ASSERT_STATUS(rc, MMFS_BUSY);
    assert_int_equal((int)(intptr_t)res, MMFS_OK);
    mmfs_slice v;
    MMFS_ASSERT_STATUS(mmfs_get_kv(db, mmfs_str("b"), &v), MMFS_NOTFOUND);
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("held"), &v));
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* A handle used in a forked child refuses with CLOSED. */
static void test_fork_child_refuses(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-fork");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v")));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mmfs_slice v;
        int bad = 0;
        if (mmfs_get_kv(db, mmfs_str("k"), &v) != MMFS_CLOSED) bad |= 1;
        if (mmfs_set_kv(db, mmfs_str("k"), mmfs_str("child")) != MMFS_CLOSED) bad |= 2;
        if (mmfs_append_memory(db, mmfs_str("x"), NULL, 0, NULL, NULL) != MMFS_CLOSED) bad |= 4;
        /* Closing in the child frees the handle without touching the store
        ** (no sync, no unlock of the parent's flock). */
        if (mmfs_close(db) != MMFS_OK) bad |= 8;
        free(dir);
        _exit(bad);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent is unaffected. */
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("k"), &v));
    mmfs_test_assert_slice(v, "v", 1);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k2"), mmfs_str("v2")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

static void test_verify_clean_store(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-verify");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    for (int i = 0; i < 50; i++) {
        char k[32];
        snprintf(k, sizeof k, "key%d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), mmfs_str("value")));
    }
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* CRC32C (Castagnoli), bit by bit: the MANIFEST's own check line. */
static uint32_t crc32c(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
    }
    return ~c;
}

/* A store written by a newer format version is refused with INVALID (not
** CORRUPT: nothing is damaged), and left as it was. */
static void test_newer_format_invalid(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("store-format");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char *man = path_join(dir, "MANIFEST");
    size_t n;
    unsigned char *orig = slurp(man, &n);
    /* "memmapfs-manifest <version>" first, "crc <hex>" last (manifest.c). */
    const char *first_nl = memchr(orig, '\n', n);
    assert_non_null(first_nl);
    const char *crc_line = NULL;
    for (size_t i = 0; i + 4 <= n; i++)
        if ((i == 0 || orig[i - 1] == '\n') && memcmp(orig + i, "crc ", 4) == 0) crc_line = (const char *)orig + i;
    if (!crc_line || memcmp(orig, "memmapfs-manifest ", 18) != 0) {
        free(orig);
        free(man);
        mmfs_test_rmdir(dir);
        skip(); /* the MANIFEST layout changed: nothing to forge */
    }
    char buf[4096];
    size_t body = 0;
    body += (size_t)snprintf(buf, sizeof buf, "memmapfs-manifest 999\n");
    size_t rest = (size_t)(crc_line - first_nl - 1);
    assert_true(body + rest + 32 < sizeof buf);
    memcpy(buf + body, first_nl + 1, rest);
    body += rest;
    body += (size_t)snprintf(buf + body, sizeof buf - body, "crc %08x\n", crc32c((unsigned char *)buf, body));
    FILE *f = fopen(man, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, body, f), body);
    fclose(f);

    db = (mmfs_db *)man;
    MMFS_ASSERT_STATUS(mmfs_open(dir, NULL, &db), MMFS_INVALID);
    assert_null(db);
    size_t n2;
    unsigned char *after = slurp(man, &n2);
    assert_int_equal(n2, body);
    assert_memory_equal(after, buf, body);
    free(after);

    /* Put back, it opens again. */
    f = fopen(man, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(orig, 1, n, f), n);
    fclose(f);
    db = mmfs_test_open_sync_none(dir, 0);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("k"), &v));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(orig);
    free(man);
    mmfs_test_rmdir(dir);
}

/* An open whose policy does not compile fails before it makes anything:
** before, a new store's directory, MANIFEST, LOCK and log/ were left
** behind by the failed open. */
static void test_open_bad_policy_changes_nothing(void **state) {
    (void)state;
    char *base = mmfs_test_dir("open-badpolicy");
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/store", base);
    mmfs_options o;
    mmfs_options_init(&o);
    o.policy = mmfs_str("return {");
    mmfs_db *db = NULL;
    MMFS_ASSERT_STATUS(mmfs_open(sub, &o, &db), MMFS_INVALID);
    assert_null(db);
    struct stat st;
    assert_int_equal(stat(sub, &st), -1); /* no directory made */
    MMFS_ASSERT_STATUS(mmfs_open(base, &o, &db), MMFS_INVALID);
    char p[4300];
    snprintf(p, sizeof p, "%s/MANIFEST", base);
    assert_int_equal(stat(p, &st), -1);
    snprintf(p, sizeof p, "%s/LOCK", base);
    assert_int_equal(stat(p, &st), -1);
    snprintf(p, sizeof p, "%s/log", base);
    assert_int_equal(stat(p, &st), -1);
    /* an existing store: the policy is compiled when installed, and
    ** nothing reaches the log */
    MMFS_OK_OR_FAIL(mmfs_open(base, NULL, &db));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v")));
    uint64_t lsn = mmfs_test_lsn(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = NULL;
    MMFS_ASSERT_STATUS(mmfs_open(base, &o, &db), MMFS_INVALID);
    assert_null(db);
    MMFS_OK_OR_FAIL(mmfs_open(base, NULL, &db));
    assert_int_equal(mmfs_test_lsn(db), lsn);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(base);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_bad_policy_changes_nothing),
        cmocka_unit_test(test_options_defaults),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_str_and_null_noops),
        cmocka_unit_test(test_open_creates_layout),
        cmocka_unit_test(test_open_null_options),
        cmocka_unit_test(test_open_creates_missing_directory),
        cmocka_unit_test(test_open_missing_without_create),
        cmocka_unit_test(test_open_unwritable_path_is_io),
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_readonly_handle),
        cmocka_unit_test(test_close_adds_no_record),
        cmocka_unit_test(test_stats_counts),
        cmocka_unit_test(test_sync_modes_durable_lsn),
        cmocka_unit_test(test_batch_mode_becomes_durable),
        cmocka_unit_test(test_two_handles_see_each_other),
        cmocka_unit_test(test_lock_timeout_busy),
        cmocka_unit_test(test_lock_timeout_zero_busy),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_lock_timeout_zero_thread),
        cmocka_unit_test(test_fork_child_refuses),
        cmocka_unit_test(test_verify_clean_store),
        cmocka_unit_test(test_newer_format_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
