/*
** test_kv.c: the key-value API (set, get, delete, prefix iterators) as
** memmapfs.h documents it: binary-safe keys and values, byte order,
** deletes reporting whether anything went, slices valid until close.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sync none, 4 MiB segments; reopen: sync none, default segment size. */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(4u << 20);
    mmfs_options r = mmfs_test_options(0);
    return mmfs_test_fx_setup(state, "kv", &o, &r);
}

static void assert_kv(mmfs_db *db, const char *k, const char *want) {
    mmfs_slice v;
    int rc = mmfs_get_kv(db, mmfs_str(k), &v);
    if (rc != MMFS_OK) fail_msg("get_kv(\"%s\") -> %s, want \"%s\"", k, mmfs_err_name(rc), want);
    mmfs_test_assert_slice(v, want, strlen(want));
}

static uint64_t kv_count(mmfs_db *db) { return mmfs_test_stats(db).kv; }

/* ------------------------------------------------------------------ */

static void test_set_get(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_slice v = {"junk", 4};
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("missing"), &v), MMFS_NOTFOUND);
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("alpha"), mmfs_str("one")));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("beta"), mmfs_str("two")));
    assert_kv(f->db, "alpha", "one");
    assert_kv(f->db, "beta", "two");
    /* Keys are exact: no prefix or case matching. */
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("alph"), &v), MMFS_NOTFOUND);
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("Alpha"), &v), MMFS_NOTFOUND);
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("alphab"), &v), MMFS_NOTFOUND);
    assert_int_equal(kv_count(f->db), 2);
}

static void test_overwrite(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k"), mmfs_str("first value")));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k"), mmfs_str("2nd")));
    assert_kv(f->db, "k", "2nd");
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k"), mmfs_str("a third, longer value")));
    assert_kv(f->db, "k", "a third, longer value");
    assert_int_equal(kv_count(f->db), 1);
    mmfs_test_reopen(f);
    assert_kv(f->db, "k", "a third, longer value");
    assert_int_equal(kv_count(f->db), 1);
}

static void test_delete(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k1"), mmfs_str("v1")));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k2"), mmfs_str("v2")));
    int deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_kv(f->db, mmfs_str("k1"), &deleted));
    assert_int_equal(deleted, 1);
    mmfs_slice v;
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("k1"), &v), MMFS_NOTFOUND);
    assert_kv(f->db, "k2", "v2");
    assert_int_equal(kv_count(f->db), 1);

    /* Deleting what is not there reports 0 and writes nothing. */
    uint64_t lsn = mmfs_test_lsn(f->db);
    deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_kv(f->db, mmfs_str("k1"), &deleted));
    assert_int_equal(deleted, 0);
    deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_kv(f->db, mmfs_str("never"), &deleted));
    assert_int_equal(deleted, 0);
    assert_int_equal(mmfs_test_lsn(f->db), lsn);
    /* DELETED may be NULL. */
    MMFS_OK_OR_FAIL(mmfs_delete_kv(f->db, mmfs_str("k2"), NULL));
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("k2"), &v), MMFS_NOTFOUND);
    assert_int_equal(kv_count(f->db), 0);

    /* Set again after delete. */
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k1"), mmfs_str("back")));
    assert_kv(f->db, "k1", "back");
    mmfs_test_reopen(f);
    assert_kv(f->db, "k1", "back");
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("k2"), &v), MMFS_NOTFOUND);
    assert_int_equal(kv_count(f->db), 1);
}

static void test_binary_and_empty(void **state) {
    mmfs_test_fx *f = *state;
    static const unsigned char k1[] = {0, 0, 0};
    static const unsigned char k2[] = {0, 0};
    static const unsigned char k3[] = {'a', 0, 'b'};
    static const unsigned char k4[] = {'a', 0, 'c'};
    static const unsigned char v1[] = {0, 1, 2, 0, 255, 0};
    static const unsigned char v3[] = {0xff, 0xfe, 0, 0x80};
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice(k1, 3), mmfs_test_slice(v1, sizeof v1)));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice(k2, 2), mmfs_test_slice("two zeros", 9)));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice(k3, 3), mmfs_test_slice(v3, sizeof v3)));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice(k4, 3), mmfs_test_slice("", 0)));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice("", 0), mmfs_test_slice("empty key", 9)));
    /* A NULL pointer with length 0 is the empty string too. */
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice("ek", 2), mmfs_test_slice(NULL, 0)));

    for (int round = 0; round < 2; round++) {
        mmfs_slice v;
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice(k1, 3), &v));
        mmfs_test_assert_slice(v, v1, sizeof v1);
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice(k2, 2), &v));
        mmfs_test_assert_slice(v, "two zeros", 9);
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice(k3, 3), &v));
        mmfs_test_assert_slice(v, v3, sizeof v3);
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice(k4, 3), &v));
        assert_int_equal(v.len, 0);
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice("", 0), &v));
        mmfs_test_assert_slice(v, "empty key", 9);
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice("ek", 2), &v));
        assert_int_equal(v.len, 0);
        /* "a" alone and "a\0" are different keys from "a\0b". */
        MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_test_slice(k3, 1), &v), MMFS_NOTFOUND);
        MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_test_slice(k3, 2), &v), MMFS_NOTFOUND);
        MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_test_slice(k1, 1), &v), MMFS_NOTFOUND);
        assert_int_equal(kv_count(f->db), 6);
        mmfs_test_reopen(f);
    }
    int deleted = 0;
    MMFS_OK_OR_FAIL(mmfs_delete_kv(f->db, mmfs_test_slice("", 0), &deleted));
    assert_int_equal(deleted, 1);
    MMFS_OK_OR_FAIL(mmfs_delete_kv(f->db, mmfs_test_slice(k2, 2), &deleted));
    assert_int_equal(deleted, 1);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice(k1, 3), &v));
    mmfs_test_assert_slice(v, v1, sizeof v1);
}

/* The library copies what it keeps: changing the caller's buffers after
** the call changes nothing. */
static void test_copies_arguments(void **state) {
    mmfs_test_fx *f = *state;
    char key[16], val[16];
    strcpy(key, "mutable");
    strcpy(val, "original");
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str(key), mmfs_str(val)));
    strcpy(val, "CLOBBERD");
    assert_kv(f->db, "mutable", "original");
    strcpy(key, "mutablX");
    assert_kv(f->db, "mutable", "original");
}

/* Returned slices stay valid (and unchanged) until close, even after the
** key is overwritten or deleted and many more writes follow. */
static void test_slices_stay_valid(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k"), mmfs_str("old value")));
    mmfs_slice old;
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("k"), &old));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k"), mmfs_str("new value")));
    char buf[64], big[1000];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 2000; i++) {
        snprintf(buf, sizeof buf, "filler%04d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str(buf), mmfs_test_slice(big, sizeof big)));
    }
    MMFS_OK_OR_FAIL(mmfs_delete_kv(f->db, mmfs_str("k"), NULL));
    mmfs_test_assert_slice(old, "old value", 9);
}

static void expect_scan(mmfs_db *db, mmfs_slice prefix, const char *const *keys, size_t n) {
    mmfs_kv_iter *it = NULL;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(db, prefix, &it));
    assert_non_null(it);
    for (size_t i = 0; i < n; i++) {
        mmfs_slice k, v;
        int rc = mmfs_kv_iter_next(it, &k, &v);
        if (rc != MMFS_OK) fail_msg("scan item %zu: %s, want key \"%s\"", i, mmfs_err_name(rc), keys[i]);
        if (k.len != strlen(keys[i]) || memcmp(k.ptr, keys[i], k.len) != 0)
            fail_msg("scan item %zu: key \"%.*s\", want \"%s\"", i, (int)k.len, (const char *)k.ptr,
                     keys[i]);
        /* Values are "v:" + key. */
        assert_int_equal(v.len, k.len + 2);
        assert_memory_equal(v.ptr, "v:", 2);
        assert_memory_equal((const char *)v.ptr + 2, k.ptr, k.len);
    }
    mmfs_slice k, v;
    int rc = mmfs_kv_iter_next(it, &k, &v);
    if (rc != MMFS_NOTFOUND)
        fail_msg("scan: extra item (%s) \"%.*s\" after %zu", mmfs_err_name(rc), rc ? 0 : (int)k.len,
                 rc ? "" : (const char *)k.ptr, n);
    /* Stays at the end. */
    MMFS_ASSERT_STATUS(mmfs_kv_iter_next(it, &k, &v), MMFS_NOTFOUND);
    mmfs_kv_iter_close(it);
}

static void set_v(mmfs_db *db, const char *k) {
    char v[128];
    snprintf(v, sizeof v, "v:%s", k);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), mmfs_str(v)));
}

static void test_scan_prefix_order(void **state) {
    mmfs_test_fx *f = *state;
    /* Inserted out of order. */
    static const char *const ins[] = {"user:2", "user:10", "a", "user:1", "userx", "user:",
                                      "user", "b", "user:1:x", "us"};
    for (size_t i = 0; i < sizeof ins / sizeof *ins; i++) set_v(f->db, ins[i]);

    /* '0' (0x30) sorts before ':' (0x3a). */
    static const char *const all[] = {"a", "b", "us", "user", "user:", "user:1", "user:10",
                                      "user:1:x", "user:2", "userx"};
    expect_scan(f->db, mmfs_str(""), all, 10);
    expect_scan(f->db, mmfs_str(NULL), all, 10);
    static const char *const users[] = {"user:", "user:1", "user:10", "user:1:x", "user:2"};
    expect_scan(f->db, mmfs_str("user:"), users, 5);
    static const char *const u1[] = {"user:1", "user:10", "user:1:x"};
    expect_scan(f->db, mmfs_str("user:1"), u1, 3);
    static const char *const exact[] = {"userx"};
    expect_scan(f->db, mmfs_str("userx"), exact, 1);
    expect_scan(f->db, mmfs_str("zzz"), NULL, 0);
    expect_scan(f->db, mmfs_str("user:10:"), NULL, 0);

    /* Deleted keys are gone; overwritten keys show their latest value. */
    MMFS_OK_OR_FAIL(mmfs_delete_kv(f->db, mmfs_str("user:1"), NULL));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("user:2"), mmfs_str("v:user:2")));
    static const char *const users2[] = {"user:", "user:10", "user:1:x", "user:2"};
    expect_scan(f->db, mmfs_str("user:"), users2, 4);
    mmfs_test_reopen(f);
    expect_scan(f->db, mmfs_str("user:"), users2, 4);
}

/* Byte order is unsigned: 0x80..0xff sort after ASCII; a key that is a
** prefix of another sorts first; embedded zeros sort lowest. */
static void test_scan_byte_order_binary(void **state) {
    mmfs_test_fx *f = *state;
    static const unsigned char keys[][4] = {
        {'p', 0xff, 0, 0}, {'p', 0x80, 0, 0}, {'p', 0x7f, 0, 0}, {'p', 0x00, 0, 0},
        {'p', 0x00, 0x00, 0}, {'p', 'a', 0, 0}, {'p', 0xff, 0xff, 0},
    };
    static const size_t lens[] = {2, 2, 2, 2, 3, 2, 3};
    for (size_t i = 0; i < 7; i++)
        MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice(keys[i], lens[i]), mmfs_test_slice(&i, sizeof i)));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("q"), mmfs_str("outside")));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("o\xff"), mmfs_str("outside")));

    static const size_t order[] = {3, 4, 5, 2, 1, 0, 6};
    mmfs_kv_iter *it = NULL;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(f->db, mmfs_str("p"), &it));
    for (size_t i = 0; i < 7; i++) {
        mmfs_slice k, v;
        MMFS_OK_OR_FAIL(mmfs_kv_iter_next(it, &k, &v));
        size_t want = order[i];
        mmfs_test_assert_slice(k, keys[want], lens[want]);
        mmfs_test_assert_slice(v, &want, sizeof want);
    }
    mmfs_slice k, v;
    MMFS_ASSERT_STATUS(mmfs_kv_iter_next(it, &k, &v), MMFS_NOTFOUND);
    mmfs_kv_iter_close(it);

    /* A prefix with an embedded zero. */
    static const unsigned char pz[] = {'p', 0};
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(f->db, mmfs_test_slice(pz, 2), &it));
    MMFS_OK_OR_FAIL(mmfs_kv_iter_next(it, &k, &v));
    mmfs_test_assert_slice(k, keys[3], 2);
    MMFS_OK_OR_FAIL(mmfs_kv_iter_next(it, &k, &v));
    mmfs_test_assert_slice(k, keys[4], 3);
    MMFS_ASSERT_STATUS(mmfs_kv_iter_next(it, &k, &v), MMFS_NOTFOUND);
    mmfs_kv_iter_close(it);
}

/* An iterator sees writes made after it was opened only past its current
** position. */
static void test_iter_concurrent_writes(void **state) {
    mmfs_test_fx *f = *state;
    set_v(f->db, "k2");
    set_v(f->db, "k4");
    set_v(f->db, "k6");
    mmfs_kv_iter *it = NULL;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(f->db, mmfs_str("k"), &it));
    mmfs_slice k, v;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_next(it, &k, &v));
    mmfs_test_assert_slice(k, "k2", 2);
    set_v(f->db, "k1"); /* behind the position: not seen */
    set_v(f->db, "k5"); /* ahead: seen */
    MMFS_OK_OR_FAIL(mmfs_kv_iter_next(it, &k, &v));
    mmfs_test_assert_slice(k, "k4", 2);
    MMFS_OK_OR_FAIL(mmfs_kv_iter_next(it, &k, &v));
    mmfs_test_assert_slice(k, "k5", 2);
    mmfs_test_assert_slice(v, "v:k5", 4);
    MMFS_OK_OR_FAIL(mmfs_kv_iter_next(it, &k, &v));
    mmfs_test_assert_slice(k, "k6", 2);
    MMFS_ASSERT_STATUS(mmfs_kv_iter_next(it, &k, &v), MMFS_NOTFOUND);
    mmfs_kv_iter_close(it);
    static const char *const all[] = {"k1", "k2", "k4", "k5", "k6"};
    expect_scan(f->db, mmfs_str("k"), all, 5);
}

static void test_many_keys_scan_count(void **state) {
    mmfs_test_fx *f = *state;
    char k[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "n%05d", (i * 7919) % 3000); /* a permutation */
        set_v(f->db, k);
    }
    assert_int_equal(kv_count(f->db), 3000);
    mmfs_kv_iter *it = NULL;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(f->db, mmfs_str("n"), &it));
    mmfs_slice key, v;
    int n = 0;
    while (mmfs_kv_iter_next(it, &key, &v) == MMFS_OK) {
        snprintf(k, sizeof k, "n%05d", n);
        mmfs_test_assert_slice(key, k, strlen(k));
        n++;
    }
    mmfs_kv_iter_close(it);
    assert_int_equal(n, 3000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_overwrite, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_binary_and_empty, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_copies_arguments, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_slices_stay_valid, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_scan_prefix_order, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_scan_byte_order_binary, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_iter_concurrent_writes, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_keys_scan_count, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
