/*
** test_limits.c: the sizes and contents the API promises to carry:
** binary-safe keys and values with embedded zeros, empty strings
** everywhere they are allowed, 16 MiB values (kv, stream, memory, state),
** 100,000 keys, and Unicode text that is searchable with case folding.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sync none, default segment size; reopened with the same options. */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(0);
    return mmfs_test_fx_setup(state, "limits", &o, &o);
}

/* Pseudo-random bytes, zeros included. */
static unsigned char *pattern(size_t n, unsigned seed) {
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (i % 7 == 0) ? 0 : (unsigned char)x;
    }
    return p;
}

/* ------------------------------------------------------------------ */

static void test_binary_everywhere(void **state) {
    mmfs_test_fx *f = *state;
    unsigned char *k = pattern(300, 1), *v = pattern(5000, 2);
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice(k, 300), mmfs_test_slice(v, 5000)));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_test_slice(k, 300), mmfs_test_slice(v, 5000)));
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_test_slice(v, 5000), NULL));
    /* A memory whose text has zeros and high bytes, and a binary tag. */
    mmfs_slice tag = mmfs_test_slice(k, 20);
    uint64_t id;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_test_slice(v, 1000), &tag, 1, NULL, &id));
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = mmfs_test_slice(k, 50);
    s.has_intent = 1;
    s.intent_id = mmfs_test_slice(k + 50, 50);
    s.has_payload = 1;
    s.payload = mmfs_test_slice(v, 5000);
    MMFS_OK_OR_FAIL(mmfs_put_session(f->db, &s));

    for (int round = 0; round < 2; round++) {
        mmfs_slice got;
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice(k, 300), &got));
        mmfs_test_assert_slice(got, v, 5000);
        /* One byte shorter is another key. */
        MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_test_slice(k, 299), &got), MMFS_NOTFOUND);
        mmfs_reader *r = NULL;
        MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_test_slice(k, 300), &r));
        unsigned char *buf = malloc(6000);
        size_t n = 0, g;
        do {
            MMFS_OK_OR_FAIL(mmfs_reader_read(r, buf + n, 6000 - n, &g));
            n += g;
        } while (g);
        assert_int_equal(n, 5000);
        assert_memory_equal(buf, v, 5000);
        free(buf);
        mmfs_reader_close(r);
        uint64_t ver;
        MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &got, &ver));
        mmfs_test_assert_slice(got, v, 5000);
        mmfs_memory *m = NULL;
        MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, id, &m));
        mmfs_test_assert_slice(m->text, v, 1000);
        assert_int_equal(m->ntags, 1);
        mmfs_test_assert_slice(m->tags[0], k, 20);
        mmfs_free(m);
        mmfs_session g2;
        MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_test_slice(k, 50), &g2));
        mmfs_test_assert_slice(g2.intent_id, k + 50, 50);
        mmfs_test_assert_slice(g2.payload, v, 5000);
        mmfs_sessions *ss = NULL;
        MMFS_OK_OR_FAIL(mmfs_list_by_intent(f->db, mmfs_test_slice(k + 50, 50), 0, &ss));
        assert_int_equal(ss->count, 1);
        mmfs_free(ss);
        mmfs_test_reopen(f);
    }
    free(k);
    free(v);
}

static void test_empty_strings(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_test_slice("", 0), mmfs_test_slice("", 0)));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_test_slice("", 0), mmfs_test_slice("", 0)));
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_test_slice("", 0), NULL));
    MMFS_OK_OR_FAIL(mmfs_index(f->db, mmfs_str("emptydoc"), mmfs_test_slice("", 0)));
    uint64_t id;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_test_slice("", 0), NULL, 0, NULL, &id));
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = mmfs_str("s");
    s.has_intent = 1;
    s.intent_id = mmfs_test_slice("", 0);
    s.has_payload = 1;
    s.payload = mmfs_test_slice("", 0);
    MMFS_OK_OR_FAIL(mmfs_put_session(f->db, &s));
    for (int round = 0; round < 2; round++) {
        mmfs_slice v;
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_test_slice("", 0), &v));
        assert_int_equal(v.len, 0);
        uint64_t n = 9;
        MMFS_OK_OR_FAIL(mmfs_stream_size(f->db, mmfs_test_slice("", 0), &n));
        assert_int_equal(n, 0);
        mmfs_reader *r = NULL;
        MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_test_slice("", 0), &r));
        mmfs_reader_close(r);
        uint64_t ver;
        MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
        assert_int_equal(v.len, 0);
        assert_int_equal(ver, 1);
        mmfs_memory *m = NULL;
        MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, id, &m));
        assert_int_equal(m->text.len, 0);
        mmfs_free(m);
        mmfs_session g;
        MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("s"), &g));
        assert_int_equal(g.has_intent, 1);
        assert_int_equal(g.intent_id.len, 0);
        assert_int_equal(g.has_payload, 1);
        assert_int_equal(g.payload.len, 0);
        mmfs_store_stats st;
        MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
        assert_int_equal(st.kv, 1);
        assert_int_equal(st.streams, 1);
        assert_int_equal(st.memories, 1);
        assert_int_equal(st.documents, 1);
        /* An empty query matches nothing (or is INVALID), never everything. */
        mmfs_doc_hits *h = NULL;
        int rc = mmfs_search(f->db, mmfs_test_slice("", 0), 0, &h);
        if (rc == MMFS_OK) assert_int_equal(h->count, 0);
        else MMFS_ASSERT_STATUS(rc, MMFS_INVALID);
        mmfs_free(h);
        mmfs_test_reopen(f);
    }
}

#define BIG ((size_t)16 << 20)

static void test_16mib_values(void **state) {
    mmfs_test_fx *f = *state;
    unsigned char *a = pattern(BIG, 3), *b = pattern(BIG, 4);
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("big"), mmfs_test_slice(a, BIG)));
    MMFS_OK_OR_FAIL(mmfs_append_stream(f->db, mmfs_str("bigstream"), mmfs_test_slice(b, BIG)));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("small-after"), mmfs_str("ok")));
    for (int round = 0; round < 2; round++) {
        mmfs_slice v;
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("big"), &v));
        assert_int_equal(v.len, BIG);
        assert_true(memcmp(v.ptr, a, BIG) == 0);
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("small-after"), &v));
        mmfs_test_assert_slice(v, "ok", 2);
        uint64_t n;
        MMFS_OK_OR_FAIL(mmfs_stream_size(f->db, mmfs_str("bigstream"), &n));
        assert_int_equal(n, BIG);
        mmfs_reader *r = NULL;
        MMFS_OK_OR_FAIL(mmfs_open_read(f->db, mmfs_str("bigstream"), &r));
        MMFS_OK_OR_FAIL(mmfs_reader_seek(r, BIG - 100));
        unsigned char tail[100];
        size_t got = 0, g;
        do {
            MMFS_OK_OR_FAIL(mmfs_reader_read(r, tail + got, sizeof tail - got, &g));
            got += g;
        } while (g && got < sizeof tail);
        assert_int_equal(got, 100);
        assert_memory_equal(tail, b + BIG - 100, 100);
        mmfs_reader_close(r);
        mmfs_test_reopen(f);
    }
    /* Overwrite the big value with a small one and back. */
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("big"), mmfs_str("tiny")));
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("big"), &v));
    mmfs_test_assert_slice(v, "tiny", 4);
    MMFS_OK_OR_FAIL(mmfs_verify(f->db));
    free(a);
    free(b);
}

/* 16 MiB values larger than the segment size of a store with small
** segments: either stored whole (a larger segment) or refused cleanly
** with INVALID, never half-written. */
static void test_value_larger_than_segment(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("limits-bigseg");
    mmfs_options o = mmfs_test_options(1u << 20);
    mmfs_db *db = mmfs_test_open(dir, &o);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("before"), mmfs_str("1")));
    unsigned char *a = pattern(BIG, 5);
    int rc = mmfs_set_kv(db, mmfs_str("big"), mmfs_test_slice(a, BIG));
    mmfs_slice v;
    if (rc == MMFS_OK) {
        MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("big"), &v));
        assert_int_equal(v.len, BIG);
        assert_true(memcmp(v.ptr, a, BIG) == 0);
    } else {
        MMFS_ASSERT_STATUS(rc, MMFS_INVALID);
        MMFS_ASSERT_STATUS(mmfs_get_kv(db, mmfs_str("big"), &v), MMFS_NOTFOUND);
    }
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("after"), mmfs_str("2")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    MMFS_OK_OR_FAIL(mmfs_open(dir, &o, &db));
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("before"), &v));
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("after"), &v));
    rc = mmfs_get_kv(db, mmfs_str("big"), &v);
    if (rc == MMFS_OK) {
        assert_int_equal(v.len, BIG);
        assert_true(memcmp(v.ptr, a, BIG) == 0);
    }
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(a);
    mmfs_test_rmdir(dir);
}

static void test_100k_keys(void **state) {
    mmfs_test_fx *f = *state;
    enum { N = 100000 };
    char k[32], val[32];
    /* Written in a scrambled order. */
    for (uint32_t i = 0; i < N; i++) {
        uint32_t j = (uint32_t)(((uint64_t)i * 7919u) % N);
        snprintf(k, sizeof k, "key:%06u", j);
        snprintf(val, sizeof val, "%u", j * 3u);
        int rc = mmfs_set_kv(f->db, mmfs_str(k), mmfs_str(val));
        if (rc) fail_msg("set_kv #%u (%s): %s: %s", i, k, mmfs_err_name(rc), mmfs_errmsg(f->db));
    }
    for (int round = 0; round < 2; round++) {
        mmfs_store_stats st;
        MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
        assert_int_equal(st.kv, N);
        for (uint32_t j = 0; j < N; j++) {
            snprintf(k, sizeof k, "key:%06u", j);
            snprintf(val, sizeof val, "%u", j * 3u);
            mmfs_slice v;
            int rc = mmfs_get_kv(f->db, mmfs_str(k), &v);
            if (rc || v.len != strlen(val) || memcmp(v.ptr, val, v.len) != 0)
                fail_msg("get_kv %s: %s", k, mmfs_err_name(rc));
        }
        mmfs_kv_iter *it = NULL;
        MMFS_OK_OR_FAIL(mmfs_kv_iter_open(f->db, mmfs_str("key:"), &it));
        mmfs_slice key, v;
        uint32_t n = 0;
        while (mmfs_kv_iter_next(it, &key, &v) == MMFS_OK) {
            snprintf(k, sizeof k, "key:%06u", n);
            if (key.len != strlen(k) || memcmp(key.ptr, k, key.len) != 0)
                fail_msg("scan item %u: \"%.*s\", want \"%s\"", n, (int)key.len, (const char *)key.ptr, k);
            n++;
        }
        mmfs_kv_iter_close(it);
        assert_int_equal(n, N);
        /* A narrow prefix in the middle. */
        MMFS_OK_OR_FAIL(mmfs_kv_iter_open(f->db, mmfs_str("key:0420"), &it));
        n = 0;
        while (mmfs_kv_iter_next(it, &key, &v) == MMFS_OK) n++;
        mmfs_kv_iter_close(it);
        assert_int_equal(n, 100);
        mmfs_test_reopen(f);
    }
}

/* Unicode: UTF-8 text is searchable, case-folded beyond ASCII. */
static void test_unicode_search(void **state) {
    mmfs_test_fx *f = *state;
    static const char *const texts[] = {
        "Café au lait in München",          /* 1 */
        "Δελφοί και ΑΘΗΝΑ",                  /* 2 */
        "Встреча в Москве, потом Москва",   /* 3 */
        "日本語 テキスト 検索",              /* 4 */
        "plain ascii text",                 /* 5 */
        "emoji 🎉 party",                    /* 6 */
    };
    uint64_t ids[6];
    for (int i = 0; i < 6; i++)
        MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str(texts[i]), NULL, 0, NULL, &ids[i]));
    MMFS_OK_OR_FAIL(mmfs_index(f->db, mmfs_str("doc-ru"), mmfs_str("ПРИВЕТ мир")));

    static const struct {
        const char *q;
        int want; /* index into texts */
    } cases[] = {
        {"café", 0},   {"CAFÉ", 0},     {"münchen", 0}, {"MÜNCHEN", 0}, {"Café", 0},
        {"αθηνα", 1},  {"ΔΕΛΦΟΊ", 1},   {"москва", 2},  {"МОСКВА", 2},  {"日本語", 3},
        {"検索", 3},   {"テキスト", 3}, {"party", 5},
    };
    for (int round = 0; round < 2; round++) {
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            mmfs_memories *ms = NULL;
            int rc = mmfs_search_memory(f->db, mmfs_str(cases[c].q), NULL, &ms);
            if (rc) fail_msg("search \"%s\": %s: %s", cases[c].q, mmfs_err_name(rc), mmfs_errmsg(f->db));
            if (ms->count != 1 || ms->items[0].id != ids[cases[c].want])
                fail_msg("search \"%s\": %zu hits (first id %llu), want only id %llu", cases[c].q, ms->count,
                         ms->count ? (unsigned long long)ms->items[0].id : 0ULL,
                         (unsigned long long)ids[cases[c].want]);
            /* The text comes back byte for byte. */
            const char *t = texts[cases[c].want];
            assert_int_equal(ms->items[0].text.len, strlen(t));
            assert_memory_equal(ms->items[0].text.ptr, t, strlen(t));
            mmfs_free(ms);
        }
        mmfs_doc_hits *h = NULL;
        MMFS_OK_OR_FAIL(mmfs_search(f->db, mmfs_str("привет"), 0, &h));
        assert_int_equal(h->count, 1);
        mmfs_test_assert_slice(h->items[0].key, "doc-ru", 6);
        mmfs_free(h);
        /* Prefix over multi-byte characters. */
        mmfs_memories *ms = NULL;
        MMFS_OK_OR_FAIL(mmfs_search_memory(f->db, mmfs_str("münch*"), NULL, &ms));
        assert_int_equal(ms->count, 1);
        assert_int_equal(ms->items[0].id, ids[0]);
        mmfs_free(ms);
        mmfs_test_reopen(f);
    }
}

/* Invalid UTF-8 in text is stored byte for byte and does not break
** indexing or search of the valid words around it. */
static void test_invalid_utf8_text(void **state) {
    mmfs_test_fx *f = *state;
    static const char bad[] = "valid \xff\xfe broken \xc3 word \xe2\x82 end";
    uint64_t id;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_test_slice(bad, sizeof bad - 1), NULL, 0, NULL, &id));
    mmfs_memories *ms = NULL;
    MMFS_OK_OR_FAIL(mmfs_search_memory(f->db, mmfs_str("valid"), NULL, &ms));
    assert_int_equal(ms->count, 1);
    mmfs_test_assert_slice(ms->items[0].text, bad, sizeof bad - 1);
    mmfs_free(ms);
    MMFS_OK_OR_FAIL(mmfs_search_memory(f->db, mmfs_str("end"), NULL, &ms));
    assert_int_equal(ms->count, 1);
    mmfs_free(ms);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_binary_everywhere, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_strings, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_16mib_values, setup, mmfs_test_fx_teardown),
        cmocka_unit_test(test_value_larger_than_segment),
        cmocka_unit_test_setup_teardown(test_100k_keys, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_unicode_search, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_text, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
