/*
** test_stream.c: named append-only streams and their readers: sizes,
** sequential reads across chunks, peek/skip/seek/tell, snapshot at open.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sync none, 4 MiB segments; reopen: sync none, default segment size. */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(4u << 20);
    mmfs_options r = mmfs_test_options(0);
    return mmfs_test_fx_setup(state, "stream", &o, &r);
}

static uint64_t size_of(mmfs_db *db, const char *key) {
    uint64_t n = 12345;
    MMFS_OK_OR_FAIL(mmfs_stream_size(db, mmfs_str(key), &n));
    return n;
}

/* Reads the whole reader with reads of at most STEP bytes. */
static unsigned char *read_all(mmfs_reader *r, size_t step, size_t *total) {
    size_t cap = 1024, n = 0;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    unsigned char *tmp = malloc(step);
    assert_non_null(tmp);
    for (int guard = 0;; guard++) {
        size_t got = (size_t)-1;
        MMFS_OK_OR_FAIL(mmfs_reader_read(r, tmp, step, &got));
        assert_true(got <= step);
        if (got == 0) break;
        if (n + got > cap) {
            while (n + got > cap) cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        memcpy(buf + n, tmp, got);
        n += got;
        assert_true(guard < 10000000);
    }
    free(tmp);
    *total = n;
    return buf;
}

/* ------------------------------------------------------------------ */

static void test_append_and_read(void **state) {
    mmfs_test_fx *f = *state;
    assert_int_equal(size_of(f->db, "log"), 0);
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("log"), mmfs_str("hello ")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("log"), mmfs_str("world")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("log"), mmfs_test_slice("\0!\n", 3)));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("other"), mmfs_str("zzz")));
    static const char want[] = "hello world\0!\n";
    size_t wlen = sizeof want - 1;

    for (int round = 0; round < 2; round++) {
        assert_int_equal(size_of(f->db, "log"), wlen);
        assert_int_equal(size_of(f->db, "other"), 3);
        static const size_t steps[] = {1, 2, 5, 7, 1000};
        for (size_t s = 0; s < 5; s++) {
            mmfs_reader *r = NULL;
            MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_str("log"), &r));
            assert_non_null(r);
            assert_int_equal(mmfs_reader_size(r), wlen);
            assert_int_equal(mmfs_reader_tell(r), 0);
            size_t n;
            unsigned char *got = read_all(r, steps[s], &n);
            assert_int_equal(n, wlen);
            assert_memory_equal(got, want, wlen);
            assert_int_equal(mmfs_reader_tell(r), wlen);
            /* Reads at the end give 0, again and again. */
            size_t g = 99;
            char b[4];
            MMFS_OK_OR_FAIL(mmfs_reader_read(r, b, sizeof b, &g));
            assert_int_equal(g, 0);
            free(got);
            mmfs_reader_close(r);
        }
        mmfs_test_reopen(f);
    }
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
    assert_int_equal(st.streams, 2);
}

static void test_missing_and_empty(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_reader *r = (mmfs_reader *)f;
    MMFS_ASSERT_STATUS(mmfs_open_read(f->db, mmfs_str("nope"), &r), MMFS_NOTFOUND);
    assert_int_equal(size_of(f->db, "nope"), 0);

    /* An empty append creates the stream. */
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("empty"), mmfs_test_slice(NULL, 0)));
    mmfs_test_reopen(f);
    r = NULL;
    MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_str("empty"), &r));
    assert_int_equal(mmfs_reader_size(r), 0);
    size_t got = 99;
    char b[8];
    MMFS_OK_OR_FAIL(mmfs_reader_read(r, b, sizeof b, &got));
    assert_int_equal(got, 0);
    mmfs_slice chunk = {"x", 1};
    MMFS_OK_OR_FAIL(mmfs_reader_peek(r, &chunk));
    assert_int_equal(chunk.len, 0);
    mmfs_reader_close(r);
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
    assert_int_equal(st.streams, 1);

    /* Empty and binary stream names. */
    static const char k0[] = {'a', 0, 'b'};
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_test_slice(k0, 3), mmfs_str("zero")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_test_slice("", 0), mmfs_str("noname")));
    uint64_t n;
    MMFS_OK_OR_FAIL(mmfs_stream_size(f->db, mmfs_test_slice(k0, 3), &n));
    assert_int_equal(n, 4);
    MMFS_OK_OR_FAIL(mmfs_stream_size(f->db, mmfs_test_slice(k0, 1), &n));
    assert_int_equal(n, 0);
    MMFS_OK_OR_FAIL(mmfs_stream_size(f->db, mmfs_test_slice("", 0), &n));
    assert_int_equal(n, 6);
}

/* A reader sees the stream as it was when opened. */
static void test_reader_snapshot(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("s"), mmfs_str("abc")));
    mmfs_reader *r = NULL;
    MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_str("s"), &r));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("s"), mmfs_str("def")));
    assert_int_equal(mmfs_reader_size(r), 3);
    size_t n;
    unsigned char *got = read_all(r, 2, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(got, "abc", 3);
    free(got);
    mmfs_reader_close(r);
    assert_int_equal(size_of(f->db, "s"), 6);
    MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_str("s"), &r));
    got = read_all(r, 100, &n);
    assert_int_equal(n, 6);
    assert_memory_equal(got, "abcdef", 6);
    free(got);
    mmfs_reader_close(r);
}

static void test_seek_skip_peek(void **state) {
    mmfs_test_fx *f = *state;
    /* Chunks: "0123" "45" "6789ab" */
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("s"), mmfs_str("0123")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("s"), mmfs_str("45")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("s"), mmfs_str("6789ab")));
    mmfs_reader *r = NULL;
    MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_str("s"), &r));
    assert_int_equal(mmfs_reader_size(r), 12);

    /* Peek: to the end of the current chunk, without advancing. */
    mmfs_slice c;
    MMFS_OK_OR_FAIL(mmfs_reader_peek(r, &c));
    assert_true(c.len >= 1 && c.len <= 12);
    assert_memory_equal(c.ptr, "0123456789ab", c.len);
    assert_int_equal(mmfs_reader_tell(r), 0);

    MMFS_OK_OR_FAIL(mmfs_reader_seek(r, 5));
    assert_int_equal(mmfs_reader_tell(r), 5);
    MMFS_OK_OR_FAIL(mmfs_reader_peek(r, &c));
    assert_true(c.len >= 1);
    assert_memory_equal(c.ptr, "56789ab", c.len < 7 ? c.len : 7);
    char b[16];
    size_t got;
    MMFS_OK_OR_FAIL(mmfs_reader_read(r, b, 1, &got));
    assert_int_equal(got, 1);
    assert_int_equal(b[0], '5');
    assert_int_equal(mmfs_reader_tell(r), 6);

    MMFS_OK_OR_FAIL(mmfs_reader_skip(r, 3));
    assert_int_equal(mmfs_reader_tell(r), 9);
    MMFS_OK_OR_FAIL(mmfs_reader_read(r, b, 1, &got));
    assert_int_equal(got, 1);
    assert_int_equal(b[0], '9');

    /* Seek backwards, to 0 and to the end. */
    MMFS_OK_OR_FAIL(mmfs_reader_seek(r, 1));
    size_t n;
    unsigned char *all = read_all(r, 3, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(all, "123456789ab", 11);
    free(all);
    MMFS_OK_OR_FAIL(mmfs_reader_seek(r, 12));
    assert_int_equal(mmfs_reader_tell(r), 12);
    MMFS_OK_OR_FAIL(mmfs_reader_peek(r, &c));
    assert_int_equal(c.len, 0);
    MMFS_ASSERT_STATUS(mmfs_reader_seek(r, 13), MMFS_INVALID);
    assert_int_equal(mmfs_reader_tell(r), 12);

    /* Skip stops at the end. */
    MMFS_OK_OR_FAIL(mmfs_reader_seek(r, 10));
    MMFS_OK_OR_FAIL(mmfs_reader_skip(r, 1000));
    assert_int_equal(mmfs_reader_tell(r), 12);
    MMFS_OK_OR_FAIL(mmfs_reader_read(r, b, sizeof b, &got));
    assert_int_equal(got, 0);

    /* Walking by peek + skip yields the whole stream. */
    MMFS_OK_OR_FAIL(mmfs_reader_seek(r, 0));
    char acc[16];
    size_t an = 0;
    for (int guard = 0; guard < 100; guard++) {
        MMFS_OK_OR_FAIL(mmfs_reader_peek(r, &c));
        if (c.len == 0) break;
        assert_true(an + c.len <= 12);
        memcpy(acc + an, c.ptr, c.len);
        an += c.len;
        MMFS_OK_OR_FAIL(mmfs_reader_skip(r, c.len));
    }
    assert_int_equal(an, 12);
    assert_memory_equal(acc, "0123456789ab", 12);
    mmfs_reader_close(r);
}

/* Many interleaved streams, many chunks: every byte in order. */
static void test_many_chunks_interleaved(void **state) {
    mmfs_test_fx *f = *state;
    enum { NS = 4, NC = 500 };
    size_t expect[NS] = {0};
    for (int c = 0; c < NC; c++) {
        for (int s = 0; s < NS; s++) {
            char key[8], chunk[64];
            snprintf(key, sizeof key, "s%d", s);
            size_t len = (size_t)((c * 7 + s) % 50);
            for (size_t i = 0; i < len; i++) chunk[i] = (char)((expect[s] + i) % 251);
            MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str(key), mmfs_test_slice(chunk, len)));
            expect[s] += len;
        }
    }
    mmfs_test_reopen(f);
    for (int s = 0; s < NS; s++) {
        char key[8];
        snprintf(key, sizeof key, "s%d", s);
        assert_int_equal(size_of(f->db, key), expect[s]);
        mmfs_reader *r = NULL;
        MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_str(key), &r));
        size_t n;
        unsigned char *all = read_all(r, 4096, &n);
        assert_int_equal(n, expect[s]);
        for (size_t i = 0; i < n; i++)
            if (all[i] != (unsigned char)(i % 251)) fail_msg("stream %d byte %zu: %u, want %u", s, i, all[i], (unsigned)(i % 251));
        /* Seek into the middle. */
        MMFS_OK_OR_FAIL(mmfs_reader_seek(r, n / 2));
        unsigned char b;
        size_t got;
        MMFS_OK_OR_FAIL(mmfs_reader_read(r, &b, 1, &got));
        assert_int_equal(got, 1);
        assert_int_equal(b, (n / 2) % 251);
        free(all);
        mmfs_reader_close(r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_and_read, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_empty, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_reader_snapshot, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_seek_skip_peek, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_chunks_interleaved, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
