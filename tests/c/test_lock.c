/* test_lock.c: ROOT/LOCK changed under an open store.  LOCK removed while
** a handle has the store open (a "stale lock" cleanup) lets a second writer
** in: the first must notice at its next write and refuse, never write over
** the second's acknowledged frames.  The same for LOCK replaced by another
** file and LOCK truncated (which used to kill the process with SIGBUS).
** Garbage in LOCK's shared page is named as such, and a reopen mends it. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static mmfs_db *open_always(const char *dir) {
    mmfs_options o = mmfs_test_options(0);
    o.sync = MMFS_SYNC_ALWAYS; /* no flusher thread touching the page */
    return mmfs_test_open(dir, &o);
}

static char *lock_path(const char *dir) {
    size_t n = strlen(dir) + 8;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/LOCK", dir);
    return p;
}

static void set(mmfs_db *db, const char *k, const char *v) {
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), mmfs_str(v)));
}

static void want_value(mmfs_db *db, const char *k, const char *v) {
    mmfs_slice got;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str(k), &got));
    MMFS_ASSERT_SLICE_STR(got, v);
}

/* The first handle's write after LOCK went away fails with IO naming
** LOCK, and what the second handle acknowledged survives a reopen. */
static void check_first_refused(const char *dir, mmfs_db *a, mmfs_db *b, const char *what) {
    set(b, "second", "acknowledged by the second writer");
    int rc = mmfs_set_kv(a, mmfs_str("first"), mmfs_str("over it?"));
    if (rc != MMFS_IO) fail_msg("LOCK %s: the first handle's write gives %s, want IO", what, mmfs_err_name(rc));
    assert_non_null(strstr(mmfs_errmsg(NULL), "LOCK"));
    assert_non_null(strstr(mmfs_errmsg(NULL), "replaced"));
    MMFS_OK_OR_FAIL(mmfs_close(a));
    MMFS_OK_OR_FAIL(mmfs_close(b));
    mmfs_db *c = open_always(dir);
    MMFS_OK_OR_FAIL(mmfs_verify(c));
    want_value(c, "before", "v");
    want_value(c, "second", "acknowledged by the second writer");
    mmfs_slice got;
    MMFS_ASSERT_STATUS(mmfs_get_kv(c, mmfs_str("first"), &got), MMFS_NOTFOUND);
    MMFS_OK_OR_FAIL(mmfs_close(c));
}

static void test_lock_removed(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("lock-removed");
    char *lock = lock_path(dir);
    mmfs_db *a = open_always(dir);
    set(a, "before", "v");
    assert_int_equal(unlink(lock), 0);
    /* Alone, the handle sees LOCK gone. */
    MMFS_ASSERT_STATUS(mmfs_set_kv(a, mmfs_str("first"), mmfs_str("x")), MMFS_IO);
    assert_non_null(strstr(mmfs_errmsg(NULL), "removed"));
    mmfs_db *b = open_always(dir); /* makes a new LOCK and takes it */
    check_first_refused(dir, a, b, "removed");
    free(lock);
    mmfs_test_rmdir(dir);
}

static void test_lock_replaced(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("lock-replaced");
    char *lock = lock_path(dir);
    mmfs_db *a = open_always(dir);
    set(a, "before", "v");
    size_t n = strlen(dir) + 16;
    char *other = malloc(n);
    assert_non_null(other);
    snprintf(other, n, "%s/LOCK.new", dir);
    int fd = open(other, O_RDWR | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096), 0);
    close(fd);
    assert_int_equal(rename(other, lock), 0);
    mmfs_db *b = open_always(dir);
    check_first_refused(dir, a, b, "replaced");
    free(other);
    free(lock);
    mmfs_test_rmdir(dir);
}

/* truncate -s 0 LOCK: the next write is refused (IO), not a SIGBUS. */
static void test_lock_truncated(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("lock-truncated");
    char *lock = lock_path(dir);
    mmfs_db *a = open_always(dir);
    set(a, "before", "v");
    assert_int_equal(truncate(lock, 0), 0);
    MMFS_ASSERT_STATUS(mmfs_set_kv(a, mmfs_str("after"), mmfs_str("x")), MMFS_IO);
    assert_non_null(strstr(mmfs_errmsg(NULL), "truncated"));
    MMFS_OK_OR_FAIL(mmfs_close(a));
    mmfs_db *b = open_always(dir); /* open sizes LOCK again */
    want_value(b, "before", "v");
    set(b, "after", "x");
    MMFS_OK_OR_FAIL(mmfs_close(b));
    free(lock);
    mmfs_test_rmdir(dir);
}

/* Garbage in the shared page: a read fails naming LOCK (not a healthy log
** offset as corrupt), and a reopen, which resets the page from the log,
** mends it for every handle. */
static void test_lock_page_garbage(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("lock-garbage");
    char *lock = lock_path(dir);
    mmfs_db *a = open_always(dir);
    set(a, "before", "v");
    unsigned char junk[40];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(0x11 * (i + 1));
    /* the written end: segment 1, a far offset inside it */
    unsigned char far[8] = {0x00, 0x80, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    memcpy(junk + 8, far, sizeof far);
    int fd = open(lock, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
    close(fd);
    mmfs_slice got;
    int rc = mmfs_get_kv(a, mmfs_str("before"), &got);
    if (rc == MMFS_OK) fail_msg("a read through a garbage LOCK page gives OK");
    assert_non_null(strstr(mmfs_errmsg(NULL), "LOCK"));
    /* and a written end in a segment far past the log */
    unsigned char far_seg[8] = {0x40, 0, 0, 0, 0, 0x07, 0, 0};
    fd = open(lock, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, far_seg, sizeof far_seg, 8), (ssize_t)sizeof far_seg);
    close(fd);
    rc = mmfs_set_kv(a, mmfs_str("x"), mmfs_str("y"));
    if (rc == MMFS_OK) fail_msg("a write through a garbage LOCK page gives OK");
    assert_non_null(strstr(mmfs_errmsg(NULL), "LOCK"));
    mmfs_db *b = open_always(dir);
    want_value(b, "before", "v");
    want_value(a, "before", "v");
    set(a, "after", "x");
    want_value(b, "after", "x");
    MMFS_OK_OR_FAIL(mmfs_close(a));
    MMFS_OK_OR_FAIL(mmfs_close(b));
    free(lock);
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_removed),
        cmocka_unit_test(test_lock_replaced),
        cmocka_unit_test(test_lock_truncated),
        cmocka_unit_test(test_lock_page_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
