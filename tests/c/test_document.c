/*
** test_document.c: documents (index, unindex, search) as memmapfs.h
** documents them: replace under one key, best first, limits, separation
** from memories, persistence.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "engine.h"

/* Sync none, 4 MiB segments; reopen: sync none, default segment size. */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(4u << 20);
    mmfs_options r = mmfs_test_options(0);
    return mmfs_test_fx_setup(state, "document", &o, &r);
}

static void idx(mmfs_db *db, const char *key, const char *text) {
    MMFS_OK_OR_FAIL(mmfs_index(db, mmfs_str(key), mmfs_str(text)));
}

static mmfs_doc_hits *search(mmfs_db *db, const char *q, size_t limit) {
    mmfs_doc_hits *h = NULL;
    int rc = mmfs_search(db, mmfs_str(q), limit, &h);
    if (rc != MMFS_OK) fail_msg("search(\"%s\") -> %s: %s", q, mmfs_err_name(rc), mmfs_errmsg(db));
    assert_non_null(h);
    return h;
}

/* Asserts the hit keys, in order (NULL-terminated list). */
static void assert_keys(const mmfs_doc_hits *h, const char *const *keys) {
    size_t n = 0;
    while (keys[n]) n++;
    char got[512] = "";
    size_t gl = 0;
    for (size_t i = 0; i < h->count && gl < 400; i++)
        gl += (size_t)snprintf(got + gl, sizeof got - gl, "%.*s ", (int)h->items[i].key.len,
                               (const char *)h->items[i].key.ptr);
    int ok = h->count == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = h->items[i].key.len == strlen(keys[i]) &&
             memcmp(h->items[i].key.ptr, keys[i], h->items[i].key.len) == 0;
    if (!ok) {
        char exp[512] = "";
        size_t el = 0;
        for (size_t i = 0; i < n && el < 400; i++) el += (size_t)snprintf(exp + el, sizeof exp - el, "%s ", keys[i]);
        fail_msg("hits [%s], want [%s]", got, exp);
    }
    for (size_t i = 0; i < h->count; i++) {
        assert_true(h->items[i].score > 0.0);
        if (i) assert_true(h->items[i - 1].score >= h->items[i].score);
    }
}

/* ------------------------------------------------------------------ */

static void test_index_search(void **state) {
    mmfs_test_fx *f = *state;
    idx(f->db, "doc/a", "The quick brown fox jumps over the lazy dog");
    idx(f->db, "doc/b", "A fox, a fox, a fox in the henhouse");
    idx(f->db, "doc/c", "Nothing to see here");
    for (int round = 0; round < 2; round++) {
        mmfs_doc_hits *h = search(f->db, "fox", 0);
        static const char *const w[] = {"doc/b", "doc/a", NULL};
        assert_keys(h, w);
        mmfs_free(h);
        h = search(f->db, "LAZY", 0);
        static const char *const w2[] = {"doc/a", NULL};
        assert_keys(h, w2);
        mmfs_free(h);
        h = search(f->db, "\"brown fox\"", 0);
        assert_keys(h, w2);
        mmfs_free(h);
        h = search(f->db, "fox -henhouse", 0);
        assert_keys(h, w2);
        mmfs_free(h);
        h = search(f->db, "hen*", 0);
        static const char *const w3[] = {"doc/b", NULL};
        assert_keys(h, w3);
        mmfs_free(h);
        h = search(f->db, "elephant", 0);
        static const char *const none[] = {NULL};
        assert_keys(h, none);
        mmfs_free(h);
        mmfs_test_reopen(f);
    }
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
    assert_int_equal(st.documents, 3);
}

static void test_replace_and_unindex(void **state) {
    mmfs_test_fx *f = *state;
    idx(f->db, "k", "apples and pears");
    idx(f->db, "k", "bananas only");
    static const char *const none[] = {NULL};
    static const char *const k[] = {"k", NULL};
    mmfs_doc_hits *h = search(f->db, "apples", 0);
    assert_keys(h, none);
    mmfs_free(h);
    h = search(f->db, "bananas", 0);
    assert_keys(h, k);
    mmfs_free(h);
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
    assert_int_equal(st.documents, 1);

    int deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_unindex(f->db, mmfs_str("k"), &deleted));
    assert_int_equal(deleted, 1);
    h = search(f->db, "bananas", 0);
    assert_keys(h, none);
    mmfs_free(h);
    deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_unindex(f->db, mmfs_str("k"), &deleted));
    assert_int_equal(deleted, 0);
    MMFS_OK_OR_FAIL(mmfs_unindex(f->db, mmfs_str("never"), NULL));
    MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
    assert_int_equal(st.documents, 0);

    idx(f->db, "k2", "cherries");
    mmfs_test_reopen(f);
    h = search(f->db, "bananas OR apples", 0);
    assert_keys(h, none);
    mmfs_free(h);
    h = search(f->db, "cherries", 0);
    static const char *const k2[] = {"k2", NULL};
    assert_keys(h, k2);
    mmfs_free(h);
}

static void test_limit(void **state) {
    mmfs_test_fx *f = *state;
    char key[32], text[64];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "d%02d", i);
        snprintf(text, sizeof text, "common word number %d", i);
        idx(f->db, key, text);
    }
    mmfs_doc_hits *h = search(f->db, "common", 0);
    assert_int_equal(h->count, 20); /* 0 = 20 */
    mmfs_free(h);
    h = search(f->db, "common", 5);
    assert_int_equal(h->count, 5);
    mmfs_free(h);
    h = search(f->db, "common", 100);
    assert_int_equal(h->count, 30);
    /* Each key at most once. */
    for (size_t i = 0; i < h->count; i++)
        for (size_t j = i + 1; j < h->count; j++)
            assert_false(h->items[i].key.len == h->items[j].key.len &&
                         memcmp(h->items[i].key.ptr, h->items[j].key.ptr, h->items[i].key.len) == 0);
    mmfs_free(h);
}

/* Documents and memories are separate collections in the same engine. */
static void test_separate_from_memories(void **state) {
    mmfs_test_fx *f = *state;
    idx(f->db, "d", "walrus document");
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("narwhal memory"), NULL, 0, NULL, NULL));
    mmfs_doc_hits *h = search(f->db, "narwhal", 0);
    assert_int_equal(h->count, 0);
    mmfs_free(h);
    mmfs_memories *ms = NULL;
    MMFS_OK_OR_FAIL(mmfs_search_memory(f->db, mmfs_str("walrus"), NULL, &ms));
    assert_int_equal(ms->count, 0);
    mmfs_free(ms);
    MMFS_OK_OR_FAIL(mmfs_search_memory(f->db, mmfs_str("narwhal"), NULL, &ms));
    assert_int_equal(ms->count, 1);
    mmfs_free(ms);
}

static void test_malformed_query(void **state) {
    mmfs_test_fx *f = *state;
    idx(f->db, "d", "text");
    mmfs_doc_hits *h = NULL;
    MMFS_ASSERT_STATUS(mmfs_search(f->db, mmfs_str("\"open phrase"), 0, &h), MMFS_INVALID);
    mmfs_free(h);
    h = NULL;
    MMFS_ASSERT_STATUS(mmfs_search(f->db, mmfs_str("(text"), 0, &h), MMFS_INVALID);
    mmfs_free(h);
}

static void test_binary_keys(void **state) {
    mmfs_test_fx *f = *state;
    static const char k[] = {'d', 0, 1};
    mmfs_slice key = {k, 3};
    MMFS_OK_OR_FAIL(mmfs_index(f->db, key, mmfs_str("platypus")));
    mmfs_doc_hits *h = search(f->db, "platypus", 0);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->items[0].key.len, 3);
    assert_memory_equal(h->items[0].key.ptr, k, 3);
    mmfs_free(h);
}

/* Documents use the store's tokenizer: stemming, CJK bigrams (also in
** phrases), normalisation. */
static void test_tokenizer(void **state) {
    mmfs_test_fx *f = *state;
    idx(f->db, "run", "She was running home");
    idx(f->db, "tea", "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6"); /* 我喜欢喝绿茶 */
    idx(f->db, "tokyo", "\xe6\x9d\xb1\xe4\xba\xac\xe3\x81\xab\xe8\xa1\x8c\xe3\x81\x8d\xe3\x81\xbe\xe3\x81\x97\xe3\x81\x9f");
    idx(f->db, "cafe", "CAFE\xcc\x81 noir"); /* decomposed */
    mmfs_doc_hits *h = search(f->db, "runs", 10);
    assert_keys(h, (const char *const[]){"run", NULL});
    mmfs_free(h);
    h = search(f->db, "\xe7\xbb\xbf\xe8\x8c\xb6", 10); /* 绿茶 */
    assert_keys(h, (const char *const[]){"tea", NULL});
    mmfs_free(h);
    h = search(f->db, "\"\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\"", 10); /* "喜欢喝" */
    assert_keys(h, (const char *const[]){"tea", NULL});
    mmfs_free(h);
    h = search(f->db, "\"\xe4\xba\xac\xe6\x9d\xb1\"", 10); /* "京東": wrong order */
    assert_keys(h, (const char *const[]){NULL});
    mmfs_free(h);
    h = search(f->db, "\xe6\x9d\xb1\xe4\xba\xac", 10); /* 東京 */
    assert_keys(h, (const char *const[]){"tokyo", NULL});
    mmfs_free(h);
    h = search(f->db, "\"caf\xc3\xa9 NOIR\"", 10);
    assert_keys(h, (const char *const[]){"cafe", NULL});
    mmfs_free(h);
}

/* Applies a DOC_INDEX (TEXT not NULL) or DOC_UNINDEX record of KEY to DB's
** engine under its write side, as a catch-up does.  RAW must outlive DB. */
static void apply_doc(mmfs_db *db, uint8_t *raw, size_t cap, uint64_t lsn, const char *key, const char *text) {
    mmfs__rec r, d;
    memset(&r, 0, sizeof r);
    r.type = text ? MMFS__R_DOC_INDEX : MMFS__R_DOC_UNINDEX;
    r.lsn = lsn;
    r.u.doc.key = mmfs_str(key);
    if (text) r.u.doc.text = mmfs_str(text);
    assert_true(mmfs__rec_size(&r) <= cap);
    mmfs__rec_encode(&r, raw);
    assert_int_equal(mmfs__rec_decode(raw, cap, &d), MMFS_OK);
    pthread_rwlock_wrlock(&db->rw);
    int rc = mmfs__engine_apply(db->eng, &d);
    pthread_rwlock_unlock(&db->rw);
    MMFS_OK_OR_FAIL(rc);
}

/* Documents are indexed as memories are (one concurrency model): applying
** a record under the engine's write lock only queues its index work; the
** drain does it after the lock (the indexer a commit wakes, a catch-up)
** or before a search.  Indexed inside apply, the count would move at once. */
static void test_index_work_queued(void **state) {
    mmfs_test_fx *f = *state;
    static uint8_t raw1[256], raw2[256];
    idx(f->db, "a", "first words");
    const mmfs__engine *e = f->db->eng;
    MMFS_OK_OR_FAIL(mmfs__engine_index_drain(f->db->eng)); /* what the indexer does */
    assert_int_equal(mmfs__index_count(e->docs.ix), 1);
    uint64_t lsn = mmfs_test_stats(f->db).lsn;
    apply_doc(f->db, raw1, sizeof raw1, lsn + 1, "b", "second words");
    assert_int_equal(mmfs__index_count(e->docs.ix), 1); /* queued, not done */
    apply_doc(f->db, raw2, sizeof raw2, lsn + 2, "a", NULL);
    mmfs_doc_hits *h = search(f->db, "first", 10); /* the search drained both */
    assert_keys(h, (const char *const[]){NULL});
    mmfs_free(h);
    h = search(f->db, "words", 10);
    assert_keys(h, (const char *const[]){"b", NULL});
    mmfs_free(h);
    assert_int_equal(mmfs__index_count(e->docs.ix), 1); /* b in, a out */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_index_search, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_replace_and_unindex, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_limit, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_separate_from_memories, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_query, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_binary_keys, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_tokenizer, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_index_work_queued, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
